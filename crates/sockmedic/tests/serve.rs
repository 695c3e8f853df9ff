//! `sockmedic serve` against the kernel: the exporter runs on a loopback port with a
//! short interval, watching a network namespace where incidents are reproduced (a
//! LAST-ACK storm on one listener, incidents.py; a process leaking CLOSE-WAIT,
//! holder.py). `/metrics` is parsed with a real Prometheus text-format parser (the
//! `prometheus-parse` crate, and `promtool check metrics`) and its values are compared
//! with `/api/report` of the same cycle (the `X-Sockmedic-Cycle` header) and with `ss`
//! in the namespace. Then: `/healthz` when collection works and when it fails, 404 and
//! 405, many concurrent scrapes with the server's memory flat, and SIGTERM / SIGINT.
//! No timing is asserted.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// A running `sockmedic serve`, and a minimal HTTP client
// ---------------------------------------------------------------------------------

struct Serve {
    child: Option<Child>,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    /// `sockmedic serve --listen 127.0.0.1:0 ARGS`, once it has said where it listens.
    fn start(args: &[&str]) -> Serve {
        Serve::start_as(&[], SOCKMEDIC, args)
    }

    /// `PREFIX... BIN serve --listen 127.0.0.1:0 ARGS` (a prefix such as setpriv).
    fn start_as(prefix: &[&str], bin: &str, args: &[&str]) -> Serve {
        require_root();
        let mut full: Vec<&str> = prefix.to_vec();
        full.extend([bin, "serve", "--listen", "127.0.0.1:0"]);
        full.extend_from_slice(args);
        let mut child = Command::new(full[0])
            .args(&full[1..])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockmedic serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        lines.read_line(&mut first).expect("read serve's stderr");
        stderr.lock().unwrap().push_str(&first);
        let addr = first
            .split("listening on http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("sockmedic serve {args:?} did not say where it listens: {first:?}")
            })
            .to_string();
        // Keep reading stderr so that it never blocks, and keep it for messages.
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines() {
                let Ok(line) = line else { break };
                let mut k = keep.lock().unwrap();
                k.push_str(&line);
                k.push('\n');
            }
        });
        Serve {
            child: Some(child),
            addr,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn get(&self, path: &str) -> Http {
        http(&self.addr, "GET", path)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `/healthz` answers 200 for a cycle at least `min`; returns it.
    fn wait_healthy(&self, min: u64) -> u64 {
        wait_for(&format!("/healthz 200 with cycle >= {min}"), 60, || {
            let h = self.get("/healthz");
            let seq = h.cycle().filter(|s| h.status == 200 && *s >= min);
            (seq, (h.status, h.text()))
        })
    }

    /// `/metrics` and `/api/report` of one same cycle.
    fn same_cycle(&self) -> (Http, Value) {
        for _ in 0..50 {
            let m = self.get("/metrics");
            let r = self.get("/api/report");
            assert_eq!(m.status, 200, "/metrics: {}", m.text());
            assert_eq!(r.status, 200, "/api/report: {}", r.text());
            if m.cycle().is_some() && m.cycle() == r.cycle() {
                let report: Value = serde_json::from_slice(&r.body).expect("/api/report is JSON");
                return (m, report);
            }
        }
        panic!("/metrics and /api/report never came from the same cycle");
    }

    /// Sends a signal and waits for the exit.
    fn signal(&mut self, sig: &str) -> ExitStatus {
        let pid = self.pid().to_string();
        run_ok(Command::new("kill").args([&format!("-{sig}"), &pid]));
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "sockmedic serve did not stop after SIG{sig}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug)]
struct Http {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Http {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    fn cycle(&self) -> Option<u64> {
        self.header("x-sockmedic-cycle")?.parse().ok()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
fn http(addr: &str, method: &str, path: &str) -> Http {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if method != "HEAD" {
        if let Some(len) = headers.get("content-length") {
            assert_eq!(len.parse::<usize>().unwrap(), body.len(), "Content-Length");
        }
    }
    Http {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------------
// The exposition, parsed
// ---------------------------------------------------------------------------------

/// One sample as the parser read it.
#[derive(Debug)]
struct Sample {
    metric: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

struct Metrics {
    samples: Vec<Sample>,
    text: String,
}

impl Metrics {
    /// Parsed by the Prometheus project's own Python client (support/promparse.py,
    /// Debian's python3-prometheus-client: scripts/install-deps installs it).
    fn parse(text: &str) -> Metrics {
        let mut child = Command::new("/usr/bin/python3")
            .arg(support_dir().join("promparse.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run support/promparse.py with /usr/bin/python3");
        let mut stdin = child.stdin.take().unwrap();
        let owned = text.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(owned.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "the Prometheus text-format parser refused /metrics: {}\n(scripts/install-deps installs python3-prometheus-client)\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("promparse.py JSON");
        let samples: Vec<Sample> = parsed
            .iter()
            .map(|v| Sample {
                metric: v["name"].as_str().unwrap().to_string(),
                labels: v["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
                    .collect(),
                value: v["value"].as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        let data_lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        assert_eq!(
            samples.len(),
            data_lines,
            "the parser read every sample line"
        );
        Metrics {
            samples,
            text: text.to_string(),
        }
    }

    /// The samples of `metric` whose labels include `with` (an empty value: the
    /// label is empty or absent, which Prometheus does not tell apart).
    fn find(&self, metric: &str, with: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.metric == metric
                    && with
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str).unwrap_or("") == *v)
            })
            .collect()
    }

    /// The one sample of `metric` with these labels, if any.
    fn get(&self, metric: &str, with: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(metric, with);
        assert!(
            found.len() <= 1,
            "{metric} {with:?}: {} series, expected one",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    fn must(&self, metric: &str, with: &[(&str, &str)]) -> f64 {
        self.get(metric, with).unwrap_or_else(|| {
            let same: Vec<&str> = self
                .text
                .lines()
                .filter(|l| l.starts_with(metric))
                .collect();
            panic!(
                "no {metric} {with:?}; the {metric} lines:\n{}",
                same.join("\n")
            )
        })
    }
}

/// A sample's label.
fn label<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.labels.get(name).map(String::as_str)
}

/// `promtool check metrics` on the exposition: no parse error; the only lint allowed
/// is the camelCase of the kernel counters, whose names mirror node_exporter's
/// `node_netstat_<section>_<Counter>`. promtool comes with Debian's `prometheus`
/// (scripts/install-deps); without it the check is skipped with a message, except
/// in CI, where it must run.
fn promtool_check_metrics(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not found ({e}): scripts/install-deps installs it; check skipped");
            return;
        }
        Err(e) => {
            panic!("promtool not found ({e}); CI must have it: scripts/install-deps installs it")
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(3)),
        "promtool check metrics: exit {code:?} (1 = it could not parse)\n{said}"
    );
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("sockmedic_netstat_") && line.contains("camelCase"),
            "promtool check metrics: {line}\n(all it said:\n{said})"
        );
    }
}

fn u(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// Incident 1 (a LAST-ACK storm on one listener) and a CLOSE-WAIT leak in one
/// namespace: every figure of `/metrics` is the figure of `/api/report` of the same
/// cycle, the counts are `ss`'s, and the findings are there.
#[test]
fn metrics_are_the_reports_figures_during_an_incident() {
    const N: u64 = 300;
    let mut ns = TestNetns::new("serve-metrics");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    let (server, _) = teardown_incident(&mut ns, "last-ack", 8001, N, &[]);
    let holder = ns.start_holder(&["--listen", "127.0.0.1:8080", "--connect", "self:c:30"]);
    let leaker = holder.pid;
    assert_eq!(holder.ready.states.get("CLOSE-WAIT"), Some(&30));
    let listener = lo4(8001);
    let last_ack = |t: &SsTable| {
        t.by_local()
            .get(&("LAST-ACK".to_string(), listener))
            .copied()
            .unwrap_or(0)
    };
    wait_for("LAST-ACK on the listener in ss", 20, || {
        let n = last_ack(&ns.ss_tan());
        ((n == N).then_some(()), n)
    });

    let serve = Serve::start(&["--netns", &ns.name, "--interval", "1s", "--top", "5"]);
    // From the second cycle on the diagnosis has rates.
    serve.wait_healthy(2);
    let ss_before = ns.ss_tan();
    let (m, report) = serve.same_cycle();
    let ss_after = ns.ss_tan();
    let text = m.text();
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    promtool_check_metrics(&text);
    let mx = Metrics::parse(&text);
    let seq = m.cycle().unwrap();
    assert_eq!(mx.must("sockmedic_collection_cycle", &[]), seq as f64);
    assert_eq!(report["schema"], SCHEMA);

    // Host-wide figures: no netns label, the report's values.
    let host = &report["host"];
    for (metric, field) in [
        (
            "sockmedic_tcp_orphan_sockets",
            &host["sockstat"]["tcp_orphan"],
        ),
        (
            "sockmedic_tcp_allocated_sockets",
            &host["sockstat"]["tcp_alloc"],
        ),
        (
            "sockmedic_tcp_memory_pages",
            &host["sockstat"]["tcp_mem_pages"],
        ),
        (
            "sockmedic_tcp_max_orphans",
            &host["limits"]["tcp_max_orphans"],
        ),
        ("sockmedic_filefd_allocated", &host["file_nr"]["allocated"]),
        ("sockmedic_page_size_bytes", &host["page_size"]),
    ] {
        assert_eq!(mx.must(metric, &[]), u(field), "{metric}");
        assert!(
            label(mx.find(metric, &[])[0], "netns").is_none(),
            "{metric} is host-wide"
        );
    }
    for level in ["min", "pressure", "max"] {
        assert_eq!(
            mx.must("sockmedic_tcp_mem_limit_pages", &[("level", level)]),
            u(&host["limits"]["tcp_mem"][level])
        );
    }
    let max_orphans = u(&host["limits"]["tcp_max_orphans"]);
    for p in [1.0, 2.0, 4.0] {
        assert_eq!(
            mx.must(
                "sockmedic_tcp_orphan_limit_penalized",
                &[("penalty", &(p as u64).to_string())]
            ),
            max_orphans / p
        );
    }

    // The namespace: every state, sockstat, the counters, the ports, the listeners.
    let nsr = only_netns(&report);
    let id = nsr["id"].as_u64().unwrap().to_string();
    assert_eq!(id, ns.inode().to_string());
    let at = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, String)> {
        let mut v = vec![("netns", id.clone())];
        v.extend(extra.iter().map(|(k, x)| (*k, x.to_string())));
        v
    };
    let get = |metric: &str, with: &[(&str, String)]| -> Option<f64> {
        let w: Vec<(&str, &str)> = with.iter().map(|(k, v)| (*k, v.as_str())).collect();
        mx.get(metric, &w)
    };
    let s = mx.find("sockmedic_tcp_sockets", &[("netns", &id)]);
    assert_eq!(label(s[0], "netns_name"), Some(ns.name.as_str()));
    assert_eq!(label(s[0], "pod"), Some(""), "no pod: an empty label");
    let states = states_of(nsr);
    assert!(!states.is_empty());
    for (state, n) in &states {
        let mut w = at(&[]);
        w.push(("state", state.clone()));
        assert_eq!(
            get("sockmedic_tcp_sockets", &w),
            Some(*n as f64),
            "state {state}"
        );
    }
    assert_eq!(s.len(), states.len(), "one series per state of the report");
    // ... and the namespace's states are ss's (read just before and just after).
    for state in ["LAST-ACK", "CLOSE-WAIT", "LISTEN"] {
        let mut w = at(&[]);
        w.push(("state", state.to_string()));
        let got = get("sockmedic_tcp_sockets", &w).unwrap() as u64;
        assert!(
            got == ss_before.count(state) || got == ss_after.count(state),
            "{state}: metric {got}, ss {} / {}",
            ss_before.count(state),
            ss_after.count(state)
        );
    }
    assert_eq!(
        get(
            "sockmedic_tcp_sockets",
            &[("netns", id.clone()), ("state", "LAST-ACK".into())]
        ),
        Some(N as f64)
    );
    let sockstat = &nsr["sockstat"];
    assert_eq!(
        get("sockmedic_tcp_inuse_sockets", &at(&[])),
        Some(u(&sockstat["tcp_inuse"]) + u(&sockstat["tcp6_inuse"]))
    );
    assert_eq!(
        get("sockmedic_tcp_timewait_sockets", &at(&[])),
        Some(u(&sockstat["tcp_tw"]))
    );
    assert_eq!(
        get("sockmedic_netns_orphan_sockets", &at(&[])),
        Some(u(&nsr["orphans"]))
    );
    assert!(
        u(&nsr["orphans"]) >= N as f64,
        "the LAST-ACK sockets are orphans"
    );
    assert_eq!(
        get("sockmedic_tcp_max_tw_buckets", &at(&[])),
        Some(ns.sysctl("net.ipv4.tcp_max_tw_buckets").parse().unwrap())
    );
    for (section, counters) in nsr["counters"].as_object().unwrap() {
        for (name, v) in counters.as_object().unwrap() {
            let metric = format!("sockmedic_netstat_{section}_{name}_total");
            if let Some(got) = get(&metric, &at(&[])) {
                assert_eq!(got, u(v), "{metric}");
            }
        }
    }
    assert!(get("sockmedic_netstat_TcpExt_ListenOverflows_total", &at(&[])).is_some());
    let eph = &nsr["ephemeral"];
    assert_eq!(
        get("sockmedic_ephemeral_port_range_size", &at(&[])),
        Some(u(&eph["size"]))
    );
    assert_eq!(
        get("sockmedic_ephemeral_ports_in_use", &at(&[])),
        Some(u(&eph["ports_in_use"]))
    );
    assert_eq!(
        get("sockmedic_ephemeral_port_sockets", &at(&[])),
        Some(u(&eph["sockets"]))
    );
    for l in nsr["listeners"].as_array().unwrap() {
        let local = l["local"].as_str().unwrap().to_string();
        let w = vec![("netns", id.clone()), ("local", local.clone())];
        assert_eq!(
            get("sockmedic_listen_backlog", &w),
            Some(u(&l["backlog"])),
            "{local}"
        );
        assert_eq!(
            get("sockmedic_listen_accept_queue", &w),
            Some(u(&l["accept_queue"])),
            "{local}"
        );
        assert_eq!(
            get("sockmedic_listen_syn_recv", &w),
            Some(u(&l["syn_recv"])),
            "{local}"
        );
    }
    // The busiest LAST-ACK endpoint: the listener, with its N sockets.
    assert_eq!(
        get(
            "sockmedic_endpoint_sockets",
            &[
                ("netns", id.clone()),
                ("side", "local".into()),
                ("state", "LAST-ACK".into()),
                ("endpoint", "127.0.0.1:8001".into())
            ]
        ),
        Some(N as f64)
    );
    assert!(
        mx.find(
            "sockmedic_endpoint_sockets",
            &[("netns", &id), ("side", "local")]
        )
        .len()
            <= 5
    );

    // The processes: the leaker's figures are the report's and the holder's own.
    let p = process_entry(&report, leaker);
    let pid = leaker.to_string();
    let pw = [("pid", pid.as_str())];
    assert_eq!(mx.must("sockmedic_process_fds", &pw), u(&p["fds"]));
    assert_eq!(
        mx.must("sockmedic_process_fd_limit", &pw),
        u(&p["fd_limit"])
    );
    assert_eq!(
        mx.must("sockmedic_process_socket_fds", &pw),
        u(&p["socket_fds"])
    );
    assert_eq!(
        mx.must(
            "sockmedic_process_tcp_sockets",
            &[("pid", &pid), ("state", "CLOSE-WAIT")]
        ),
        30.0
    );
    assert_eq!(
        mx.must("sockmedic_process_unhashed_sockets", &pw),
        u(&p["unhashed"])
    );
    let ps = mx.find("sockmedic_process_fds", &pw);
    assert_eq!(label(ps[0], "process"), Some("python3"));
    assert_eq!(label(ps[0], "netns"), Some(id.as_str()));
    assert_eq!(
        mx.must("sockmedic_processes", &[]),
        report["processes"].as_array().unwrap().len() as f64
    );

    // The findings: one series each, with the report's count and limit.
    let findings = report["findings"].as_array().unwrap();
    let series = mx.find("sockmedic_finding", &[]);
    assert!(!series.is_empty());
    assert!(series.len() <= findings.len());
    for f in findings {
        let code = f["code"].as_str().unwrap();
        let sev = f["severity"].as_str().unwrap();
        let matching = mx.find("sockmedic_finding", &[("code", code), ("severity", sev)]);
        assert!(!matching.is_empty(), "no series for finding {code} {sev}");
    }
    let leak = mx.find(
        "sockmedic_finding",
        &[("code", "close-wait-leak"), ("severity", "warning")],
    );
    let leak: Vec<_> = leak
        .into_iter()
        .filter(|s| {
            label(s, "subject").is_some_and(|x| x.contains(&format!("pid {leaker} (python3)")))
        })
        .collect();
    assert_eq!(
        leak.len(),
        1,
        "the close-wait-leak series of pid {leaker}:\n{text}"
    );
    let subject = label(leak[0], "subject").unwrap();
    assert!(subject.contains(&format!("netns {}", ns.name)), "{subject}");
    let sw = [("code", "close-wait-leak"), ("subject", subject)];
    assert_eq!(mx.must("sockmedic_finding", &sw), 1.0);
    assert_eq!(mx.must("sockmedic_finding_value", &sw), 30.0);
    let stall = mx.find("sockmedic_finding", &[("code", "teardown-stall")]);
    assert!(
        stall.iter().any(|s| label(s, "subject")
            .is_some_and(|x| x.contains("state LAST-ACK") && x.contains("local 127.0.0.1:8001"))),
        "no teardown-stall series for the LAST-ACK storm:\n{text}"
    );
    let _ = server;
    for sev in ["critical", "warning", "info"] {
        let n = findings.iter().filter(|f| f["severity"] == sev).count();
        assert_eq!(
            mx.must("sockmedic_findings", &[("severity", sev)]),
            n as f64,
            "{sev}"
        );
    }

    // sockmedic itself.
    assert_eq!(mx.must("sockmedic_collection_interval_seconds", &[]), 1.0);
    assert!(mx.must("sockmedic_collections_total", &[]) >= seq as f64);
    assert_eq!(mx.must("sockmedic_collection_errors_total", &[]), 0.0);
    assert_eq!(mx.must("sockmedic_last_collection_success", &[]), 1.0);
    assert!(mx.must("sockmedic_collection_duration_seconds", &[]) > 0.0);
    assert_eq!(
        label(mx.find("sockmedic_build_info", &[])[0], "version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(mx.must("sockmedic_network_namespaces", &[]), 1.0);
    let missing = report["missing"].as_array().unwrap();
    assert_eq!(
        mx.find("sockmedic_missing", &[]).len(),
        missing
            .iter()
            .map(|m| m["what"].as_str().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            .min(50)
    );
}

/// `/healthz` is 200 while collections succeed and 503 with the reason once they
/// fail (the namespace watched was deleted); the last good cycle is still served.
/// Unknown paths are 404, other methods than GET and HEAD 405; `/` is an index.
#[test]
fn healthz_follows_the_collection_and_bad_requests_are_refused() {
    let ns = TestNetns::new("serve-health");
    let serve = Serve::start(&["--netns", &ns.name, "--interval", "200ms", "--no-procs"]);
    let good = serve.wait_healthy(1);
    let h = serve.get("/healthz");
    assert!(h.text().starts_with("ok: cycle "), "{}", h.text());

    let idx = serve.get("/");
    assert_eq!(idx.status, 200);
    assert!(idx.header("content-type").unwrap().starts_with("text/html"));
    for link in ["/metrics", "/api/report", "/healthz"] {
        assert!(idx.text().contains(link), "{}", idx.text());
    }
    assert_eq!(serve.get("/nope").status, 404);
    assert_eq!(serve.get("/metrics/x").status, 404);
    assert_eq!(
        serve.get("/metrics?name[]=x").status,
        200,
        "a query string is ignored"
    );
    for method in ["POST", "PUT", "DELETE"] {
        let r = http(&serve.addr, method, "/metrics");
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    let head = http(&serve.addr, "HEAD", "/metrics");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // The namespace goes: every collection fails from now on.
    let name = ns.name.clone();
    drop(ns);
    let why = wait_for("/healthz 503", 30, || {
        let h = serve.get("/healthz");
        ((h.status == 503).then(|| h.text()), (h.status, h.text()))
    });
    assert!(why.starts_with("unavailable: collection failing"), "{why}");
    assert!(why.contains(&name), "the reason names the namespace: {why}");
    let m = serve.get("/metrics");
    assert_eq!(m.status, 200);
    let mx = Metrics::parse(&m.text());
    assert!(mx.must("sockmedic_collection_errors_total", &[]) >= 1.0);
    assert_eq!(mx.must("sockmedic_last_collection_success", &[]), 0.0);
    let last = mx.must("sockmedic_collection_cycle", &[]) as u64;
    assert!(last >= good, "the last good cycle is still served");
    assert_eq!(serve.get("/api/report").status, 200);
}

/// 8 threads × 200 requests: every answer complete and parseable, no error; the
/// server's resident memory does not grow with the requests; the scrapes did not
/// cause collections (a collection takes its own time; there are far fewer of them
/// than scrapes).
#[test]
fn concurrent_scrapes_are_served_with_flat_memory() {
    let mut ns = TestNetns::new("serve-load");
    let _holder = ns.start_holder(&["--listen", "127.0.0.1:8080", "--connect", "self:k:50"]);
    let serve = Serve::start(&["--netns", &ns.name, "--interval", "2s"]);
    serve.wait_healthy(1);
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    };
    let hammer = |threads: usize, per: usize| -> u64 {
        let addr = serve.addr.clone();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    for i in 0..per {
                        let path = if (t + i) % 4 == 3 {
                            "/api/report"
                        } else {
                            "/metrics"
                        };
                        let r = http(&addr, "GET", path);
                        assert_eq!(r.status, 200, "{path}: {}", r.text());
                        if path == "/metrics" {
                            let text = r.text();
                            assert!(text.starts_with("# HELP "), "{text}");
                            assert!(
                                text.trim_end()
                                    .lines()
                                    .last()
                                    .unwrap()
                                    .starts_with("sockmedic_scrape_duration_seconds "),
                                "a complete exposition"
                            );
                        } else {
                            let v: Value = serde_json::from_slice(&r.body).expect("JSON");
                            assert_eq!(v["schema"], SCHEMA);
                        }
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread failed"))
            .sum()
    };
    // Warm up: threads, arenas and buffers reach their working size.
    assert_eq!(hammer(8, 50), 400);
    let before = rss(serve.pid());
    let scrapes_before =
        Metrics::parse(&serve.get("/metrics").text()).must("sockmedic_scrapes_total", &[]);
    assert_eq!(hammer(8, 200), 1600);
    let after = rss(serve.pid());
    let mx = Metrics::parse(&serve.get("/metrics").text());
    let scrapes = mx.must("sockmedic_scrapes_total", &[]) - scrapes_before;
    assert!(
        scrapes >= 1200.0,
        "the /metrics requests were counted: {scrapes}"
    );
    let collections = mx.must("sockmedic_collections_total", &[]);
    assert!(
        collections < scrapes / 4.0,
        "{collections} collections for {scrapes} scrapes: scrapes must not trigger collections"
    );
    assert_eq!(mx.must("sockmedic_collection_errors_total", &[]), 0.0);
    eprintln!("VmRSS before {before} KiB, after 1600 requests {after} KiB");
    assert!(
        after <= before + 8 * 1024,
        "resident memory grew from {before} KiB to {after} KiB over 1600 requests"
    );
}

/// SIGTERM and SIGINT stop the server cleanly: exit 0, "stopped" said, the port closed.
/// (With `--no-procs --no-kernel-log`: no process series, no kernel-log series, no
/// zeros standing in for them.)
#[test]
fn sigterm_and_sigint_stop_it_with_exit_0() {
    for sig in ["TERM", "INT"] {
        let mut serve = Serve::start(&[
            "--netns",
            "self",
            "--interval",
            "1s",
            "--no-procs",
            "--no-kernel-log",
        ]);
        serve.wait_healthy(1);
        let text = serve.get("/metrics").text();
        for absent in ["sockmedic_process_", "sockmedic_kernel_log_messages"] {
            assert!(!text.contains(absent), "{absent} without the data:\n{text}");
        }
        assert!(text.contains("sockmedic_tcp_sockets{"), "{text}");
        let st = serve.signal(sig);
        assert_eq!(st.code(), Some(0), "SIG{sig}: {st:?}\n{}", serve.stderr());
        // The stderr reader may still be catching the last lines.
        wait_for("the stop message", 10, || {
            let e = serve.stderr();
            (e.contains("stopped").then_some(()), e)
        });
        assert!(
            TcpStream::connect(&serve.addr).is_err(),
            "the port is closed after SIG{sig}"
        );
    }
}

/// Bad arguments are "could not run" (exit 3) with one line, before listening.
#[test]
fn bad_arguments_are_exit_3() {
    for args in [
        &["serve", "--listen", "nonsense"][..],
        &["serve", "--interval", "0s"],
        &["serve", "--interval", "often"],
        &["serve", "--json"],
        &["serve", "--from", "/nonexistent"],
        &["serve", "--netns", "no-such-namespace-sm"],
        &["serve", "--threshold", "nope=1"],
    ] {
        let run = sockmedic(args);
        run.assert_no_panic();
        assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
        assert!(!run.stderr().trim().is_empty(), "{}", run.describe());
    }
}

/// As an unprivileged user, serve runs, is healthy, and exports what it can see: its
/// own namespace, with what it could not read listed in `sockmedic_missing` (the
/// kernel log where dmesg_restrict is set, other users' fds), never as zeros.
#[test]
fn unprivileged_it_serves_what_it_can_see() {
    let copy = NobodyBinary::new("serve");
    let mut serve = Serve::start_as(&AS_NOBODY, &copy.bin(), &["--interval", "1s"]);
    serve.wait_healthy(1);
    let (m, report) = serve.same_cycle();
    assert_eq!(report["source"]["privileged"], false);
    let mx = Metrics::parse(&m.text());
    let missing = mx.find("sockmedic_missing", &[]);
    assert!(
        !missing.is_empty(),
        "an unprivileged run misses something: {}",
        report["missing"]
    );
    // Only the namespace it runs in (others cannot be entered).
    let names: std::collections::BTreeSet<&str> = mx
        .find("sockmedic_tcp_sockets", &[])
        .iter()
        .filter_map(|s| label(s, "netns"))
        .collect();
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let own = own.to_string_lossy();
    let own = own.trim_start_matches("net:[").trim_end_matches(']');
    assert_eq!(names.into_iter().collect::<Vec<_>>(), [own]);
    assert_eq!(
        mx.must("sockmedic_network_namespaces", &[]),
        report["netns"].as_array().unwrap().len() as f64
    );
    if report["kernel_log"].is_null() {
        assert!(mx.find("sockmedic_kernel_log_messages", &[]).is_empty());
    }
    assert_eq!(serve.signal("TERM").code(), Some(0), "{}", serve.stderr());
}

/// Out of file descriptors (a hard RLIMIT_NOFILE of 40 and a flood of idle
/// connections), the HTTP server's accept loop dies: sockmedic then exits non-zero
/// (3) with a message, for a supervisor to start a new one, instead of running on
/// and answering nobody. Which way the accept loop dies (tiny_http's thread panics,
/// or it hands the accept error over) depends on timing; both must say so.
#[test]
fn out_of_fds_it_exits_instead_of_serving_nobody() {
    let mut serve = Serve::start_as(
        &["prlimit", "--nofile=40:40", "--"],
        SOCKMEDIC,
        &[
            "--netns",
            "self",
            "--no-procs",
            "--no-kernel-log",
            "--interval",
            "1s",
        ],
    );
    serve.wait_healthy(1);
    let mut held = Vec::new();
    for _ in 0..200 {
        match TcpStream::connect(&serve.addr) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
        if serve.child.as_mut().unwrap().try_wait().unwrap().is_some() {
            break;
        }
    }
    let child = serve.child.as_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "sockmedic serve kept running without accepting ({} connections held):\n{}",
            held.len(),
            serve.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    serve.child = None;
    assert_eq!(status.code(), Some(3), "{status:?}\n{}", serve.stderr());
    wait_for("the reason on stderr", 10, || {
        let e = serve.stderr();
        (
            e.contains("exiting so that a supervisor starts a new one")
                .then_some(()),
            e,
        )
    });
}

// ---------------------------------------------------------------------------------
// A real Prometheus scraping it
// ---------------------------------------------------------------------------------

/// A GET over HTTP/1.0 (so that the answer is never chunked), the body as text.
fn get10(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server on a loopback port, scraping one target every second, with
/// rule files; killed and its data removed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Prometheus {
    fn start(target: &str, rule_files: &[std::path::PathBuf]) -> Option<Prometheus> {
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "prometheus not found; CI must have it: scripts/install-deps installs it"
            );
            eprintln!("prometheus not found: scripts/install-deps installs it; skipped");
            return None;
        }
        let dir = std::env::temp_dir().join(unique_name("sm-prometheus"));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("  - {}\n", p.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}scrape_configs:\n  - job_name: sockmedic\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.concat()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // A free loopback port for its web server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus { child, addr, dir };
        wait_for("prometheus ready", 60, || {
            let ok = TcpStream::connect(&p.addr).is_ok() && get10(&p.addr, "/-/ready").0 == 200;
            (ok.then_some(()), p.log())
        });
        Some(p)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn api(&self, path: &str) -> Value {
        let (status, body) = get10(&self.addr, path);
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("prometheus {path}: {status} {e}: {body}"));
        assert_eq!(v["status"], "success", "prometheus {path}: {v}");
        v["data"].clone()
    }

    /// An instant query's samples.
    fn query(&self, q: &str) -> Vec<Value> {
        let d = self.api(&format!("/api/v1/query?query={}", urlencode(q)));
        d["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The whole path of deploy/: a real Prometheus scrapes `sockmedic serve` (the
/// target is up, the figures are there with their labels), every alert rule of
/// deploy/prometheus/alerts.yml and every query of the Grafana dashboard evaluates
/// without error against the real series, and the ratios the alerts are built on
/// find both of their sides (their label matching is right).
#[test]
fn prometheus_scrapes_it_and_the_rules_and_dashboard_evaluate() {
    let mut ns = TestNetns::new("serve-prom");
    let holder = ns.start_holder(&["--listen", "127.0.0.1:8080", "--connect", "self:c:30"]);
    let serve = Serve::start(&["--netns", &ns.name, "--interval", "1s"]);
    serve.wait_healthy(1);

    let deploy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    // The dashboard's queries as recording rules (its variables: every value).
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("grafana/sockmedic.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = t["expr"].as_str().unwrap();
            exprs.push(e.replace("$instance", ".*").replace("$netns", ".*"));
        }
    }
    let tmp = std::env::temp_dir().join(unique_name("sm-dash-rules"));
    std::fs::create_dir_all(&tmp).unwrap();
    let dash_rules = tmp.join("dashboard.yml");
    let mut text = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        text.push_str(&format!(
            "      - record: sockmedic_dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    std::fs::write(&dash_rules, text).unwrap();

    let Some(prom) = Prometheus::start(
        &serve.addr,
        &[deploy.join("prometheus/alerts.yml"), dash_rules.clone()],
    ) else {
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    };
    // Scraped: the target is up and the leak is there, labels and all.
    let pid = holder.pid.to_string();
    let q = format!("sockmedic_process_tcp_sockets{{pid=\"{pid}\",state=\"CLOSE-WAIT\"}}");
    let leak = wait_for("the leak in Prometheus", 60, || {
        let r = prom.query(&q);
        (r.first().cloned(), (r, prom.log()))
    });
    assert_eq!(leak["value"][1], "30", "{leak}");
    assert_eq!(leak["metric"]["process"], "python3");
    assert_eq!(leak["metric"]["netns"], ns.inode().to_string());
    let up = prom.query("up{job=\"sockmedic\"}");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["value"][1], "1");

    // Every rule (alerts and dashboard queries) evaluated, none in error.
    let rules = wait_for("every rule evaluated", 60, || {
        let d = prom.api("/api/v1/rules");
        let all: Vec<Value> = d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        let pending = all.iter().filter(|r| r["health"] == "unknown").count();
        (
            (pending == 0 && !all.is_empty()).then_some(all.clone()),
            pending,
        )
    });
    let bad: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    assert!(bad.is_empty(), "rules in error:\n{}", bad.join("\n"));
    let alerts: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy.join("prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let n_alerts: usize = alerts["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_sequence().unwrap().len())
        .sum();
    assert_eq!(
        rules.len(),
        exprs.len() + n_alerts,
        "the alerts and the dashboard's queries"
    );

    // The ratios the alerts divide: both sides found, one result per numerator.
    for q in [
        "sockmedic_tcp_orphan_sockets / ignoring(penalty) sockmedic_tcp_orphan_limit_penalized{penalty=\"4\"}",
        "sockmedic_tcp_memory_pages / ignoring(level) sockmedic_tcp_mem_limit_pages{level=\"max\"}",
        "sockmedic_process_fds / sockmedic_process_fd_limit",
        "sockmedic_filefd_allocated / sockmedic_filefd_maximum",
        "sockmedic_ephemeral_ports_in_use / sockmedic_ephemeral_port_range_size",
        "sockmedic_ephemeral_destination_sockets / ignoring(remote) group_left sockmedic_ephemeral_port_range_size",
        "sockmedic_tcp_timewait_sockets / sockmedic_tcp_max_tw_buckets",
        "sockmedic_listen_accept_queue / sockmedic_listen_backlog",
    ] {
        let numerator = q.split(" / ").next().unwrap();
        let want = prom.query(numerator).len();
        assert!(want > 0, "no {numerator} in Prometheus");
        assert_eq!(prom.query(q).len(), want, "{q}");
    }
    if !prom.query("sockmedic_nf_conntrack_entries").is_empty() {
        let q = "sockmedic_nf_conntrack_entries / ignoring(netns, netns_name, pod, namespace) group_left sockmedic_nf_conntrack_entries_limit";
        assert!(!prom.query(q).is_empty(), "{q}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
