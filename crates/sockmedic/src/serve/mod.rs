//! `sockmedic serve`: the Prometheus exporter and JSON API.
//!
//! Three kinds of threads, none of which waits for another's work:
//! - the watcher ([`crate::watch`]) collects and diagnoses every `--interval`;
//! - the renderer waits for each new cycle and renders it once: the metrics text and
//!   the JSON report, kept as shared bytes ([`Rendered`]);
//! - [`WORKERS`] request threads answer HTTP requests from those bytes: a scrape is a
//!   copy of the last cycle's text plus a few lines about sockmedic itself, and never
//!   starts a collection, however many scrapes come.
//!
//! SIGTERM and SIGINT stop everything: the server stops accepting, the workers finish
//! the request at hand, the watcher is stopped (at most one collection's wait), and
//! the process exits 0.

#[cfg(test)]
mod deploy_check;
pub mod metrics;

use crate::cli::{Common, ServeArgs};
use crate::config;
use crate::watch::{Cycle, WatchConfig, Watcher};
use anyhow::{anyhow, bail, Context, Result};
use sockmedic_collect::{collect, CollectOptions, DumpMode};
use std::io::{Cursor, Read};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Request threads.
pub const WORKERS: usize = 4;

/// A collection older than this many intervals (or this many times its own
/// duration, when it takes longer than the interval) makes `/healthz` fail.
const STALE_AFTER: u32 = 3;

/// One cycle, rendered once for every request that comes until the next.
pub struct Rendered {
    pub cycle: Arc<Cycle>,
    pub metrics: Bytes,
    pub report: Bytes,
}

/// Shared bytes a response can read from without copying them first.
#[derive(Clone)]
pub struct Bytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Everything the request threads share.
struct State {
    watcher: Watcher,
    rendered: Mutex<Option<Arc<Rendered>>>,
    /// `/metrics` before the first cycle.
    empty_metrics: Bytes,
    interval: Duration,
    started: Instant,
    scrapes: AtomicU64,
    /// Nanoseconds the previous `/metrics` request took.
    last_scrape_ns: AtomicU64,
    stop: AtomicBool,
    /// Why the server cannot go on (its accept loop ended), if it cannot.
    failed: Mutex<Option<String>>,
}

pub fn run(common: &Common, args: &ServeArgs) -> Result<ExitCode> {
    exit_on_panic();
    raise_nofile();
    let thresholds = config::thresholds(&args.limits)?;
    let options = CollectOptions {
        mode: crate::dump_mode(&args.procs),
        processes: !args.procs.no_procs,
        ..crate::options(common)
    };
    // An unknown --netns is "could not run" (exit 3) now, not an error every cycle.
    if options.netns.is_some() {
        collect(&CollectOptions {
            mode: DumpMode::CountersOnly,
            processes: false,
            ..options.clone()
        })?;
    }
    let server = tiny_http::Server::http(args.listen.as_str())
        .map_err(|e| anyhow!("--listen {}: {e}", args.listen))?;
    let addr = server
        .server_addr()
        .to_ip()
        .context("the server has no IP address")?;

    // Signals are caught from here on: a TERM during the first collection stops too.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing the SIGTERM/SIGINT handlers")?;

    let watcher = Watcher::start(WatchConfig {
        interval: args.interval,
        options,
        thresholds,
        kernel_log: !args.no_kernel_log,
    });
    let state = Arc::new(State {
        watcher,
        rendered: Mutex::new(None),
        empty_metrics: Bytes(Arc::new(
            metrics::render_before_first(args.interval).into_bytes(),
        )),
        interval: args.interval,
        started: Instant::now(),
        scrapes: AtomicU64::new(0),
        last_scrape_ns: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        failed: Mutex::new(None),
    });
    eprintln!(
        "sockmedic serve: listening on http://{addr} (/metrics, /api/report, /healthz); collecting every {}",
        humantime::format_duration(args.interval)
    );

    let server = Arc::new(server);
    let top = common.top;
    let renderer = {
        let state = state.clone();
        std::thread::Builder::new()
            .name("sockmedic-render".into())
            .spawn(move || render_loop(&state, top))
            .context("spawning the renderer")?
    };
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let (state, server, wake) = (state.clone(), server.clone(), signals.handle());
        workers.push(
            std::thread::Builder::new()
                .name(format!("sockmedic-http-{i}"))
                .spawn(move || worker(&state, &server, &wake))
                .context("spawning a request thread")?,
        );
    }

    // A signal, or the end of the signal loop: a request thread closed it because
    // the server stopped accepting connections.
    match signals.forever().next() {
        Some(signal_hook::consts::SIGINT) => eprintln!("sockmedic serve: SIGINT: stopping"),
        Some(_) => eprintln!("sockmedic serve: SIGTERM: stopping"),
        None => {}
    }
    state.stop.store(true, Ordering::Relaxed);
    for _ in 0..WORKERS {
        server.unblock();
    }
    for w in workers {
        let _ = w.join();
    }
    let _ = renderer.join();
    // The watcher stops when the last reference to the state goes.
    drop(server);
    let failed = match Arc::try_unwrap(state) {
        Ok(s) => {
            let failed = s.failed.lock().unwrap_or_else(|e| e.into_inner()).take();
            s.watcher.stop();
            failed
        }
        Err(_) => unreachable!("every thread holding the state has been joined"),
    };
    if let Some(why) = failed {
        bail!("--listen {addr}: {why}");
    }
    eprintln!("sockmedic serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// A panic in any thread (tiny_http's accept thread panics when it runs out of
/// fds, and then nothing is served any more) ends the process, non-zero, so that a
/// supervisor (systemd, the kubelet) starts a new one instead of keeping a server
/// that answers nobody.
fn exit_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        eprintln!(
            "sockmedic serve: a thread panicked: exiting so that a supervisor starts a new one"
        );
        std::process::exit(crate::EXIT_CANNOT_RUN.into());
    }));
}

/// Every connection holds an fd: the soft RLIMIT_NOFILE goes up to the hard one.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut r = getrlimit(Resource::Nofile);
    if r.current < r.maximum {
        r.current = r.maximum;
        let _ = setrlimit(Resource::Nofile, r);
    }
}

/// Renders each new cycle once, as soon as the watcher publishes it.
fn render_loop(state: &State, top: usize) {
    let mut seq = 0;
    while !state.stop.load(Ordering::Relaxed) {
        let Some(cycle) = state.watcher.wait_newer(seq, Duration::from_millis(500)) else {
            continue;
        };
        seq = cycle.seq;
        let text = metrics::render_cycle(&cycle, state.interval, top);
        let report = match serde_json::to_vec(&cycle.report) {
            Ok(v) => v,
            Err(e) => format!("{{\"error\": \"{e}\"}}").into_bytes(),
        };
        let r = Rendered {
            cycle,
            metrics: Bytes(Arc::new(text.into_bytes())),
            report: Bytes(Arc::new(report)),
        };
        *state.rendered.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(r));
    }
}

fn worker(state: &State, server: &tiny_http::Server, wake: &signal_hook::iterator::Handle) {
    loop {
        match server.recv() {
            Ok(rq) => {
                let began = Instant::now();
                let is_metrics = rq.url().split('?').next() == Some("/metrics");
                let resp = respond(state, &rq, began);
                // A client that went away is not sockmedic's problem.
                let _ = rq.respond(resp);
                if is_metrics {
                    let ns = began.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                    state.last_scrape_ns.store(ns, Ordering::Relaxed);
                }
            }
            Err(_) if state.stop.load(Ordering::Relaxed) => return,
            // tiny_http's accept loop ends on its first error (EMFILE...) and hands
            // the error over: nothing will be served any more. Exit non-zero, so a
            // supervisor (systemd, the kubelet) starts a new one.
            Err(e) => {
                let mut failed = state.failed.lock().unwrap_or_else(|e| e.into_inner());
                if failed.is_none() {
                    eprintln!(
                        "sockmedic serve: accepting connections failed: {e}: exiting so that a supervisor starts a new one"
                    );
                    *failed = Some(format!("accepting connections failed: {e}"));
                }
                drop(failed);
                state.stop.store(true, Ordering::Relaxed);
                wake.close();
                return;
            }
        }
    }
}

type Response = tiny_http::Response<Box<dyn Read + Send>>;

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|_| unreachable!("a fixed ASCII header: {name}: {value}"))
}

fn text(status: u16, content_type: &str, body: String) -> Response {
    let len = body.len();
    tiny_http::Response::new(
        status.into(),
        vec![header("Content-Type", content_type)],
        Box::new(Cursor::new(body.into_bytes())),
        Some(len),
        None,
    )
}

const TEXT: &str = "text/plain; charset=utf-8";

fn respond(state: &State, rq: &tiny_http::Request, began: Instant) -> Response {
    let path = rq.url().split('?').next().unwrap_or("");
    let known = ["/", "/metrics", "/api/report", "/healthz"];
    if !known.contains(&path) {
        return text(404, TEXT, format!("404 not found: {path} (try /)\n"));
    }
    if !matches!(
        rq.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        let mut r = text(
            405,
            TEXT,
            format!("405 method not allowed: {} {path}\n", rq.method()),
        );
        r.add_header(header("Allow", "GET, HEAD"));
        return r;
    }
    let rendered = state
        .rendered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match path {
        "/metrics" => metrics_response(state, rendered.as_deref(), began),
        "/api/report" => match rendered {
            Some(r) => with_cycle(
                shared(200, "application/json", r.report.clone(), Vec::new()),
                &r,
            ),
            None => text(503, TEXT, "503 no collection has finished yet\n".into()),
        },
        "/healthz" => {
            let (ok, why) = health(state, rendered.as_deref());
            let status = if ok { 200 } else { 503 };
            let prefix = if ok { "ok" } else { "unavailable" };
            let r = text(status, TEXT, format!("{prefix}: {why}\n"));
            match rendered {
                Some(c) => with_cycle(r, &c),
                None => r,
            }
        }
        _ => index(state, rendered.as_deref()),
    }
}

/// A response whose body is shared bytes followed by `tail`.
fn shared(status: u16, content_type: &str, body: Bytes, tail: Vec<u8>) -> Response {
    let len = body.0.len() + tail.len();
    let reader = Cursor::new(body).chain(Cursor::new(tail));
    tiny_http::Response::new(
        status.into(),
        vec![header("Content-Type", content_type)],
        Box::new(reader),
        Some(len),
        None,
    )
}

fn with_cycle(mut r: Response, c: &Rendered) -> Response {
    r.add_header(header("X-Sockmedic-Cycle", &c.cycle.seq.to_string()));
    r
}

fn metrics_response(state: &State, rendered: Option<&Rendered>, _began: Instant) -> Response {
    let stats = state.watcher.stats();
    let live = metrics::Live {
        collections: stats.cycles.load(Ordering::Relaxed),
        errors: stats.errors.load(Ordering::Relaxed),
        last_success: rendered.is_some() && stats.consecutive_errors.load(Ordering::Relaxed) == 0,
        scrapes: state.scrapes.fetch_add(1, Ordering::Relaxed) + 1,
        previous_scrape: Duration::from_nanos(state.last_scrape_ns.load(Ordering::Relaxed)),
    };
    let tail = metrics::render_live(&live).into_bytes();
    const FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
    match rendered {
        Some(r) => with_cycle(shared(200, FORMAT, r.metrics.clone(), tail), r),
        None => shared(200, FORMAT, state.empty_metrics.clone(), tail),
    }
}

/// Whether the served collection is fresh, and a sentence saying so or why not.
fn health(state: &State, rendered: Option<&Rendered>) -> (bool, String) {
    let stats = state.watcher.stats();
    let last_error = || {
        stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    };
    judge(
        rendered.map(|r| &*r.cycle),
        stats.consecutive_errors.load(Ordering::Relaxed),
        &last_error,
        state.interval,
        state.started.elapsed(),
        SystemTime::now(),
    )
}

/// `/healthz`'s verdict: no cycle yet, collections failing (`failing` in a row), the
/// last cycle older than [`STALE_AFTER`] intervals (or durations), or fresh.
fn judge(
    cycle: Option<&Cycle>,
    failing: u64,
    last_error: &dyn Fn() -> String,
    interval: Duration,
    running_for: Duration,
    now: SystemTime,
) -> (bool, String) {
    let Some(c) = cycle else {
        let waited = humantime::format_duration(Duration::from_secs(running_for.as_secs()));
        return if failing > 0 {
            (
                false,
                format!("collection failing ({failing} in a row): {}", last_error()),
            )
        } else {
            (
                false,
                format!("no collection has finished yet (started {waited} ago)"),
            )
        };
    };
    if failing > 0 {
        return (
            false,
            format!(
                "collection failing ({failing} in a row; serving cycle {} from before): {}",
                c.seq,
                last_error()
            ),
        );
    }
    let age = now
        .duration_since(c.started + c.duration)
        .unwrap_or(Duration::ZERO);
    let limit = interval.max(c.duration) * STALE_AFTER;
    let age_s = format!("{:.1}s", age.as_secs_f64());
    let took = format!("{:.3}s", c.duration.as_secs_f64());
    if age > limit {
        (
            false,
            format!(
                "stale: cycle {} finished {age_s} ago (more than {STALE_AFTER} intervals); it took {took}",
                c.seq
            ),
        )
    } else {
        (
            true,
            format!(
                "cycle {} finished {age_s} ago in {took}; {} findings",
                c.seq,
                c.report.findings.len()
            ),
        )
    }
}

fn index(state: &State, rendered: Option<&Rendered>) -> Response {
    let (ok, why) = health(state, rendered);
    let mut esc = String::new();
    for c in why.chars() {
        match c {
            '<' => esc.push_str("&lt;"),
            '>' => esc.push_str("&gt;"),
            '&' => esc.push_str("&amp;"),
            c => esc.push(c),
        }
    }
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>sockmedic</title></head><body>\n\
         <h1>sockmedic {version}</h1>\n<p>{status}: {esc}</p>\n<ul>\n\
         <li><a href=\"metrics\">/metrics</a>: Prometheus metrics</li>\n\
         <li><a href=\"api/report\">/api/report</a>: the JSON report (sockmedic.report/v1) of the latest collection</li>\n\
         <li><a href=\"healthz\">/healthz</a>: 200 while collections are fresh, 503 otherwise</li>\n\
         </ul>\n<p>Collecting every {interval}.</p>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        status = if ok { "ok" } else { "unavailable" },
        interval = humantime::format_duration(state.interval),
    );
    text(200, "text/html; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockmedic_model::{Report, Snapshot};

    fn cycle(finished_ago: u64, took: u64) -> Cycle {
        let now = SystemTime::now();
        Cycle {
            seq: 4,
            report: Report::new(Snapshot::default(), vec![]),
            started: now - Duration::from_secs(finished_ago + took),
            duration: Duration::from_secs(took),
        }
    }

    fn verdict(c: Option<&Cycle>, failing: u64) -> (bool, String) {
        let err = || "--netns x: gone".to_string();
        judge(
            c,
            failing,
            &err,
            Duration::from_secs(15),
            Duration::from_secs(3),
            SystemTime::now(),
        )
    }

    #[test]
    fn healthz_verdicts() {
        let (ok, why) = verdict(None, 0);
        assert!(!ok);
        assert_eq!(why, "no collection has finished yet (started 3s ago)");
        let (ok, why) = verdict(None, 2);
        assert!(!ok);
        assert_eq!(why, "collection failing (2 in a row): --netns x: gone");
        let fresh = cycle(10, 1);
        let (ok, why) = verdict(Some(&fresh), 0);
        assert!(ok, "{why}");
        assert!(why.starts_with("cycle 4 finished 10."), "{why}");
        let (ok, why) = verdict(Some(&fresh), 1);
        assert!(!ok);
        assert!(
            why.contains("serving cycle 4 from before): --netns x: gone"),
            "{why}"
        );
        // 3 intervals of 15 s.
        let (ok, why) = verdict(Some(&cycle(46, 1)), 0);
        assert!(!ok);
        assert!(why.starts_with("stale: cycle 4 finished 46."), "{why}");
        // A collection longer than the interval: 3 of its durations.
        assert!(verdict(Some(&cycle(100, 40)), 0).0);
        assert!(!verdict(Some(&cycle(130, 40)), 0).0);
    }
}
