//! `sockmedic record`: collect and diagnose every `--interval`, and write each cycle
//! into the history file (`history`). Processes are scanned every `--procs-every`th
//! cycle (the scan reads every process's fds: the costly part on an idle host); the
//! cycles between reuse the last scan, so the process checks and the subjects that
//! name a process stay steady. The kernel log is read on the same cycles.

use crate::cli::{Common, RecordArgs};
use crate::history::{self, CycleIn, RunInfo, Writer};
use crate::{config, kernel_log, options};
use anyhow::{bail, Result};
use sockmedic_collect::{collect, CollectError, CollectOptions, DumpMode};
use sockmedic_diagnose::{diagnose, Thresholds};
use sockmedic_model::{KernelLog, Process, Report, Snapshot};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The shortest and longest `--interval` taken.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The smallest `--max-size`: the empty schema alone takes some 60 KiB.
const MIN_MAX_SIZE: u64 = 1 << 20;
/// The same error is printed at most this often.
const ERROR_REPEAT: Duration = Duration::from_secs(60);

pub fn run(common: &Common, args: &RecordArgs) -> Result<ExitCode> {
    let thresholds = config::thresholds(&args.limits)?;
    if args.interval < MIN_INTERVAL || args.interval > MAX_INTERVAL {
        bail!(
            "--interval {}: expected between 10ms and 1h",
            humantime::format_duration(args.interval)
        );
    }
    if args.max_size < MIN_MAX_SIZE {
        bail!("--max-size {}: expected at least 1M", args.max_size);
    }
    if args.retention < Duration::from_secs(1) {
        bail!("--retention: expected at least 1s");
    }
    let stop = Stop::install()?;

    let base = CollectOptions {
        // Every state, ESTABLISHED too, on every cycle: the ephemeral-port figures
        // count ESTABLISHED sockets, and must mean the same thing from cycle to cycle.
        mode: DumpMode::Full,
        ..options(common)
    };
    let mut rec = Recorder {
        scan: CollectOptions {
            processes: !args.no_procs,
            ..base.clone()
        },
        light: CollectOptions {
            processes: false,
            ..base
        },
        thresholds,
        args,
        n: 0,
        began_at: None,
        prev: None,
        procs: None,
        log: None,
        errors: ErrorLog::default(),
    };
    // The first cycle runs before the file is touched: an unknown --netns fails here.
    let first = match rec.cycle() {
        Ok(c) => c,
        Err(CycleError::Fatal(e)) => return Err(e),
        Err(CycleError::Passing(e)) => return Err(e),
    };
    let host = first.report.snapshot.source.host.clone();
    let kernel = first.report.snapshot.source.kernel.clone();
    let mut writer = Writer::start(
        &args.db,
        &RunInfo {
            host: &host,
            kernel: kernel.as_deref(),
            interval_ms: args.interval.as_millis() as i64,
            procs_every: if args.no_procs { 0 } else { args.procs_every },
            netns: common.netns.as_deref(),
        },
    )?;
    eprintln!(
        "sockmedic record: every {} into {} (retention {}, max size {}; processes {}); SIGINT or SIGTERM stops",
        duration_words(args.interval),
        args.db.display(),
        duration_words(args.retention),
        size_words(args.max_size),
        if args.no_procs {
            "not scanned".to_string()
        } else if args.procs_every == 1 {
            "scanned every cycle".to_string()
        } else {
            format!("scanned every {} cycles", args.procs_every)
        }
    );

    let retention_ms = args.retention.as_millis().min(i64::MAX as u128) as i64;
    // Pruning runs at least every minute, and ten times per retention period.
    let prune_every =
        (args.retention / 10).clamp(Duration::from_millis(1), Duration::from_secs(60));
    let mut last_prune: Option<Instant> = None;
    let mut cycles = 0u64;
    let mut pending = Some(first);
    while !stop.stopped() {
        let cycle = match pending.take() {
            Some(c) => Ok(c),
            None => rec.cycle(),
        };
        match cycle {
            Ok(c) => {
                let input = CycleIn {
                    ts_ms: c.ts_ms,
                    duration_ms: c.duration.as_secs_f64() * 1000.0,
                    report: &c.report,
                    procs_scanned: c.scanned,
                    top: common.top,
                };
                match writer.write(&input) {
                    Ok(w) => {
                        cycles += 1;
                        if args.verbose {
                            verbose_line(common, &c, &w);
                        }
                    }
                    Err(e) => rec
                        .errors
                        .log(&format!("writing {}: {e:#}", args.db.display())),
                }
                rec.prev = Some(c.report.snapshot);
            }
            Err(CycleError::Fatal(e)) | Err(CycleError::Passing(e)) => {
                rec.errors.log(&format!("{e:#}"))
            }
        }
        if last_prune.is_none_or(|t| t.elapsed() >= prune_every) {
            last_prune = Some(Instant::now());
            if let Err(e) = writer.prune(history::now_ms(), retention_ms, args.max_size) {
                rec.errors
                    .log(&format!("pruning {}: {e:#}", args.db.display()));
            }
        }
        stop.sleep_until(rec.began_at.unwrap_or_else(Instant::now) + args.interval);
    }
    let size = writer.finish()?;
    eprintln!(
        "sockmedic record: stopped after {cycles} cycles; {} is {}",
        args.db.display(),
        size_words(size)
    );
    Ok(ExitCode::SUCCESS)
}

/// One finished cycle.
struct Cycle {
    ts_ms: i64,
    duration: Duration,
    scanned: bool,
    report: Report,
}

enum CycleError {
    /// The namespace asked for does not exist (fatal on the first cycle only).
    Fatal(anyhow::Error),
    Passing(anyhow::Error),
}

struct Recorder<'a> {
    scan: CollectOptions,
    light: CollectOptions,
    thresholds: Thresholds,
    args: &'a RecordArgs,
    /// Cycles begun.
    n: u64,
    began_at: Option<Instant>,
    prev: Option<Snapshot>,
    /// The last process scan and kernel log, reused between scans.
    procs: Option<Vec<Process>>,
    log: Option<KernelLog>,
    errors: ErrorLog,
}

impl Recorder<'_> {
    fn cycle(&mut self) -> Result<Cycle, CycleError> {
        let began = Instant::now();
        self.began_at = Some(began);
        let started = SystemTime::now();
        let due = self.n.is_multiple_of(u64::from(self.args.procs_every));
        self.n += 1;
        let scan = due && !self.args.no_procs;
        let opts = if scan { &self.scan } else { &self.light };
        let mut snap = collect(opts).map_err(|e| match e {
            CollectError::NoSuchNetns { .. } => CycleError::Fatal(e.into()),
        })?;
        if due && !self.args.no_kernel_log {
            match kernel_log::read(None) {
                Ok((log, missing)) => {
                    self.log = log;
                    snap.missing.extend(missing);
                }
                Err(e) => return Err(CycleError::Passing(e)),
            }
        }
        snap.kernel_log = self.log.clone();
        if scan {
            self.procs = Some(snap.processes.clone());
        } else if let Some(p) = &self.procs {
            snap.processes = p.clone();
        }
        let report = diagnose(&snap, self.prev.as_ref(), &self.thresholds).into_report(snap);
        Ok(Cycle {
            ts_ms: started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            duration: began.elapsed(),
            scanned: scan,
            report,
        })
    }
}

/// `-v`: one line per cycle.
fn verbose_line(common: &Common, c: &Cycle, w: &history::Written) {
    let snap = &c.report.snapshot;
    let host = &snap.host;
    let score = history::Score::of(&c.report.findings);
    let tw: u64 = snap.netns.iter().filter_map(|n| n.sockstat.tcp_tw).sum();
    let line = if common.json {
        serde_json::json!({
            "taken_at": snap.source.taken_at,
            "cycle": w.cycle_id,
            "duration_ms": (c.duration.as_secs_f64() * 1e6).round() / 1e3,
            "processes_scanned": c.scanned,
            "orphans": host.sockstat.tcp_orphan,
            "tcp_max_orphans": host.limits.tcp_max_orphans,
            "alloc": host.sockstat.tcp_alloc,
            "tw": tw,
            "mem_pages": host.sockstat.tcp_mem_pages,
            "netns": snap.netns.len(),
            "findings": {"critical": score.critical, "warning": score.warning, "info": score.info},
            "opened": w.opened,
            "closed": w.closed,
        })
        .to_string()
    } else {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |x| x.to_string());
        format!(
            "{} cycle {} {:.1} ms{}: orphans {}/{} alloc {} tw {} mem {} pages, {} netns; findings {} critical {} warning {} info (+{} opened, -{} closed)",
            snap.source.taken_at,
            w.cycle_id,
            c.duration.as_secs_f64() * 1000.0,
            if c.scanned { " (processes scanned)" } else { "" },
            n(host.sockstat.tcp_orphan),
            n(host.limits.tcp_max_orphans),
            n(host.sockstat.tcp_alloc),
            tw,
            n(host.sockstat.tcp_mem_pages),
            snap.netns.len(),
            score.critical,
            score.warning,
            score.info,
            w.opened,
            w.closed
        )
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

/// Errors on stderr, the same one at most once a minute.
#[derive(Default)]
struct ErrorLog {
    last: Option<(String, Instant, u64)>,
}

impl ErrorLog {
    fn log(&mut self, msg: &str) {
        match &mut self.last {
            Some((m, at, repeats)) if m == msg && at.elapsed() < ERROR_REPEAT => {
                *repeats += 1;
            }
            _ => {
                let again = match &self.last {
                    Some((m, _, r)) if m == msg && *r > 0 => format!(" (and {r} times since)"),
                    _ => String::new(),
                };
                eprintln!("sockmedic record: {msg}{again}");
                self.last = Some((msg.to_string(), Instant::now(), 0));
            }
        }
    }
}

/// `7d`, `12h`, `30m`, `1s`, `200ms`.
fn duration_words(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, n) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= n && ms.is_multiple_of(n) {
            return format!("{}{unit}", ms / n);
        }
    }
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// `1.5 MiB`.
pub fn size_words(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// SIGINT and SIGTERM: the first asks the loop to stop after the cycle under way
/// (the sleep between cycles is cut short); a second one exits at once, which the
/// WAL makes safe.
struct Stop {
    shared: Arc<(Mutex<bool>, Condvar)>,
    flag: Arc<AtomicBool>,
}

impl Stop {
    fn install() -> Result<Stop> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let shared = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::new(AtomicBool::new(false));
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let (s, f) = (shared.clone(), flag.clone());
        std::thread::Builder::new()
            .name("sockmedic-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if f.swap(true, Ordering::SeqCst) {
                        std::process::exit(128 + sig);
                    }
                    *s.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    s.1.notify_all();
                }
            })?;
        Ok(Stop { shared, flag })
    }

    fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sleeps until `wake`, or until a signal comes.
    fn sleep_until(&self, wake: Instant) {
        let (lock, cvar) = &*self.shared;
        let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let left = wake.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stopped = cvar
                .wait_timeout(stopped, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
