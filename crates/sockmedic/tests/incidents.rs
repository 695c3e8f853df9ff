//! `sockmedic check` against the kernel: each test reproduces one incident family in
//! a network namespace of its own (support/incidents.py, support/holder.py), checks
//! with `ss` (and /proc) inside the namespace that the incident is really there, then
//! runs `sockmedic check --json` from the host namespace WITHOUT `--netns` (it must
//! find the namespace itself) and asserts the finding about that namespace: code,
//! severity and subject (state, endpoint, process, count against `ss` read just
//! before and just after the run).
//!
//! Other tests run at the same time in other namespaces, so findings are always
//! selected by `subject.netns`, and the exit code is checked against the worst
//! finding of the whole report, not against this test's alone.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// `sockmedic check --json` + `extra`, from the host namespace (see
/// `common::check_report`).
fn check(extra: &[&str]) -> (Run, Value) {
    check_json(extra)
}

/// Findings with `code` about the namespace `ns`.
fn findings<'a>(report: &'a Value, ns: &TestNetns, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("report.findings")
        .iter()
        .filter(|f| f["code"] == code && f["subject"]["netns"] == ns.name.as_str())
        .collect()
}

/// The one finding with `code` about `ns` that `pick` accepts; a panic listing
/// every finding about `ns` otherwise.
fn the_finding(report: &Value, ns: &TestNetns, code: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let all = findings(report, ns, code);
    let picked: Vec<&&Value> = all.iter().filter(|f| pick(&f["subject"])).collect();
    let about_ns: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["subject"]["netns"] == ns.name.as_str())
        .map(|f| serde_json::to_string_pretty(f).unwrap())
        .collect();
    assert_eq!(
        picked.len(),
        1,
        "exactly one {code} finding for namespace {} with the expected subject; \
         the findings about it:\n{}\n--- all findings\n{}--- skipped\n{}",
        ns.name,
        about_ns.join("\n"),
        findings_summary(report),
        report["skipped"]
    );
    (*picked[0]).clone()
}

/// `subject.FIELD` as an endpoint.
fn subject_ep(f: &Value, field: &str) -> Option<SocketAddr> {
    f["subject"][field].as_str().map(parse_endpoint)
}

/// `subject.count`, which every finding of these tests has.
fn subject_count(f: &Value) -> u64 {
    f["subject"]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("subject.count is not a number: {f}"))
}

/// Whether `got` is within 5% of `want` (at least 1 either way).
fn near(got: u64, want: u64) -> bool {
    let tol = ((want as f64) * 0.05).ceil().max(1.0) as u64;
    got.abs_diff(want) <= tol
}

/// Asserts the count is within 5% of each of the truths read around the run.
fn assert_count(f: &Value, what: &str, truths: &[u64]) {
    let got = subject_count(f);
    for t in truths {
        assert!(
            near(got, *t),
            "{what}: subject.count {got}, ss/proc says {truths:?} (5% tolerance)\n{}",
            serde_json::to_string_pretty(f).unwrap()
        );
    }
}

fn assert_limit(f: &Value, want: u64) {
    assert_eq!(
        f["subject"]["limit"].as_u64(),
        Some(want),
        "subject.limit\n{}",
        serde_json::to_string_pretty(f).unwrap()
    );
}

/// `subject.pid` and `subject.process` name this python3 process.
fn assert_process(f: &Value, pid: u32) {
    assert_eq!(
        f["subject"]["pid"].as_u64(),
        Some(pid as u64),
        "subject.pid\n{}",
        serde_json::to_string_pretty(f).unwrap()
    );
    assert_eq!(
        f["subject"]["process"],
        "python3",
        "subject.process\n{}",
        serde_json::to_string_pretty(f).unwrap()
    );
}

fn assert_severity(f: &Value, want: &str) {
    assert_eq!(
        f["severity"],
        want,
        "severity\n{}",
        serde_json::to_string_pretty(f).unwrap()
    );
}

/// The severity of a teardown stall below teardown.critical: a warning, unless the
/// host's orphans (host-wide: other tests' too) are at orphans.critical (0.5) of
/// tcp_max_orphans, which makes every stall critical.
fn teardown_severity(report: &Value) -> &'static str {
    let orphans = report["host"]["sockstat"]["tcp_orphan"].as_f64();
    let max = report["host"]["limits"]["tcp_max_orphans"].as_f64();
    match (orphans, max) {
        (Some(o), Some(m)) if o >= 0.5 * m => "critical",
        _ => "warning",
    }
}

/// Evidence and explanation are there and say something.
fn assert_explained(f: &Value) {
    let ev = f["evidence"].as_array();
    assert!(
        ev.is_some_and(|e| !e.is_empty()),
        "no evidence: {}",
        serde_json::to_string_pretty(f).unwrap()
    );
    assert!(
        f["explanation"].as_str().is_some_and(|s| !s.is_empty()),
        "no explanation: {f}"
    );
    assert!(f["title"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(f["remedy"].is_array(), "remedy is not an array: {f}");
}

/// A TcpExt / Tcp counter of the namespace (`/proc/net/netstat`, `/proc/net/snmp`).
fn counter(ns: &TestNetns, file: &str, section: &str, name: &str) -> u64 {
    let text = ns.proc_net(file);
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(h), Some(v)) = (lines.next(), lines.next()) {
        let names: Vec<&str> = h.split_whitespace().collect();
        let vals: Vec<&str> = v.split_whitespace().collect();
        if let Some(i) = names.iter().position(|n| *n == name) {
            return vals[i].parse().unwrap();
        }
    }
    panic!("{section} {name} not in /proc/net/{file}");
}

fn tcpext(ns: &TestNetns, name: &str) -> u64 {
    counter(ns, "netstat", "TcpExt", name)
}

/// `rates.netns["<id>"].SECTION.NAME` of a report made with an interval.
fn rate(report: &Value, ns: &TestNetns, section: &str, name: &str) -> f64 {
    let rates = &report["rates"];
    assert!(
        rates["interval_s"].as_f64().is_some_and(|i| i > 0.0),
        "rates.interval_s: {}",
        rates["interval_s"]
    );
    let id = ns.inode().to_string();
    rates["netns"][&id][section][name]
        .as_f64()
        .unwrap_or_else(|| {
            panic!(
                "rates.netns[{id}].{section}.{name} missing; rates.netns[{id}] = {}",
                rates["netns"][&id]
            )
        })
}

/// Runs `f` (a sockmedic run) between two readings of `observe`.
fn around<O, T>(mut observe: impl FnMut() -> O, f: impl FnOnce() -> T) -> (O, T, O) {
    let before = observe();
    let t = f();
    let after = observe();
    (before, t, after)
}

// ---------------------------------------------------------------------------------
// 1. LAST-ACK storm on one listener (incident 1)
// ---------------------------------------------------------------------------------

#[test]
fn last_ack_storm_on_one_listener_is_a_teardown_stall() {
    const N: u64 = 300;
    let mut ns = TestNetns::new("inc-last-ack");
    let _unblock = Unblock::new(&ns);
    // Keep the orphans retransmitting their FIN for longer than the test (the script
    // caps their life at 90 s with TCP_USER_TIMEOUT).
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    let (server, info) = teardown_incident(&mut ns, "last-ack", 8001, N, &[]);
    let listener = parse_endpoint(info["listener"].as_str().unwrap());
    assert_eq!(listener, lo4(8001));

    let on_listener = |t: &SsTable| {
        t.by_local()
            .get(&("LAST-ACK".to_string(), listener))
            .copied()
            .unwrap_or(0)
    };
    wait_for("LAST-ACK on the listener in ss", 20, || {
        let n = on_listener(&ns.ss_tan());
        ((n == N).then_some(()), n)
    });

    let (before, (_, report), after) = around(|| on_listener(&ns.ss_tan()), || check(&[]));
    assert!(before >= N * 95 / 100, "LAST-ACK before: {before}");

    let f = the_finding(&report, &ns, "teardown-stall", |s| {
        s["state"] == "LAST-ACK" && s["local"].as_str().map(parse_endpoint) == Some(listener)
    });
    assert_severity(&f, teardown_severity(&report));
    assert_count(&f, "LAST-ACK on the listener", &[before, after]);
    assert_eq!(subject_ep(&f, "local"), Some(listener));
    // The orphans have no process; the listener on their port has one.
    assert_process(&f, server);
    assert_explained(&f);
}

// ---------------------------------------------------------------------------------
// 2. FIN-WAIT-1 towards one remote endpoint (incident 2)
// ---------------------------------------------------------------------------------

#[test]
fn fin_wait_1_towards_one_remote_is_a_teardown_stall() {
    const N: u64 = 300;
    let mut ns = TestNetns::new("inc-fin-wait-1");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    let (_, info) = teardown_incident(&mut ns, "fin-wait-1", 8002, N, &[]);
    let server = parse_endpoint(info["listener"].as_str().unwrap());
    assert_eq!(server, lo4(8002));

    let towards = |t: &SsTable| {
        t.by_server()
            .get(&("FIN-WAIT-1".to_string(), server))
            .copied()
            .unwrap_or(0)
    };
    wait_for("FIN-WAIT-1 towards the server in ss", 20, || {
        let n = towards(&ns.ss_tan());
        ((n == N).then_some(()), n)
    });
    // The clients are spread over N local ports: no single local endpoint holds them.
    let ss = ns.ss_tan();
    let locals: BTreeSet<SocketAddr> = ss
        .rows
        .iter()
        .filter(|r| r.state == "FIN-WAIT-1")
        .map(|r| r.local)
        .collect();
    assert_eq!(locals.len() as u64, N, "one local port per client");

    let (before, (_, report), after) = around(|| towards(&ns.ss_tan()), || check(&[]));

    let f = the_finding(&report, &ns, "teardown-stall", |s| {
        s["state"] == "FIN-WAIT-1" && s["remote"].as_str().map(parse_endpoint) == Some(server)
    });
    assert_severity(&f, teardown_severity(&report));
    assert_count(&f, "FIN-WAIT-1 towards the server", &[before, after]);
    assert_explained(&f);
}

// ---------------------------------------------------------------------------------
// 3. A process holding reset and never-used sockets (incidents 3 and 5)
// ---------------------------------------------------------------------------------

#[test]
fn process_holding_reset_and_never_used_sockets_is_a_socket_leak() {
    const RESETS: u64 = 20;
    const NEVER: u64 = 30;
    let mut ns = TestNetns::new("inc-socket-leak");
    let _unblock = Unblock::new(&ns);
    let mut h = ns.start_holder(&[
        "--listen",
        "127.0.0.1:7700",
        "--connect",
        &format!("self:r:{RESETS}"),
        "--never",
        &NEVER.to_string(),
    ]);
    let books = h.ready.clone();
    assert_eq!(books.resets, RESETS);
    assert_eq!(
        books.unhashed,
        RESETS + NEVER,
        "holder's books: {}",
        books.json
    );

    // The kernel agrees with the books: the holder has LISTENER + unhashed TCP fds,
    // and ss sees only the listener of them.
    let truth = fd_truth(&[h.pid]);
    let tcp_fds = truth[&h.pid].by_proto().get("TCP").copied().unwrap_or(0);
    assert_eq!(tcp_fds, 1 + RESETS + NEVER, "TCP fds of the holder");
    let seen = ns.ss_tanp().rows_of(h.pid);
    assert_eq!(seen.len(), 1, "ss -tanp sees only the listener: {seen:?}");
    assert!(
        ns.bound_inactive().rows.is_empty(),
        "nothing bound-inactive"
    );

    let (before, (_, report), after) = around(|| h.report().unhashed, || check(&[]));

    let f = the_finding(&report, &ns, "socket-leak", |s| {
        s["pid"].as_u64() == Some(h.pid as u64)
    });
    assert_severity(&f, "warning");
    assert_process(&f, h.pid);
    assert_count(&f, "unhashed sockets of the holder", &[before, after]);
    assert_explained(&f);
}

// ---------------------------------------------------------------------------------
// 4. A narrowed ephemeral port range, filled (incident 3)
// ---------------------------------------------------------------------------------

#[test]
fn narrowed_port_range_filled_is_port_exhaustion() {
    const LOW: u16 = 40000;
    const HIGH: u16 = 40099;
    const SIZE: u64 = (HIGH - LOW + 1) as u64;
    const CONNECTS: u64 = 40;
    let mut ns = TestNetns::new("inc-ports");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.ip_local_port_range", &format!("{LOW} {HIGH}"));
    let h = ns.start_holder(&[
        "--listen",
        "127.0.0.1:7500",
        "--connect",
        &format!("self:k:{CONNECTS}"),
        "--bound-ephemeral",
        &(SIZE - CONNECTS).to_string(),
    ]);
    assert_eq!(h.ready.state("BOUND-INACTIVE"), SIZE - CONNECTS);

    // Ports of the range in use, as ss shows them (connected + bound).
    let in_range = || {
        let all = ns.ss_tan().merged(&ns.bound_inactive());
        all.rows
            .iter()
            .map(|r| r.local.port())
            .filter(|p| (LOW..=HIGH).contains(p))
            .collect::<BTreeSet<u16>>()
            .len() as u64
    };
    assert_eq!(in_range(), SIZE, "every port of the range is taken");

    // The consequence is real: connect() fails with EADDRNOTAVAIL.
    let path = support_dir().join("incidents.py");
    let out = ns.exec_ok(&[
        "python3",
        path.to_str().unwrap(),
        "connect",
        "--port",
        "7500",
    ]);
    let v: Value = serde_json::from_str(out.trim()).expect("connect JSON");
    assert_eq!(
        v["errno"], 99,
        "a further connect() in the namespace: {v} (want EADDRNOTAVAIL)"
    );

    let (before, (_, report), after) = around(in_range, || check(&[]));

    let f = the_finding(&report, &ns, "port-exhaustion", |_| true);
    assert_severity(&f, "critical");
    assert_count(&f, "ephemeral ports in use", &[before, after]);
    assert_limit(&f, SIZE);
    // The bound-only ports, most of the range, are the holder's.
    assert_process(&f, h.pid);
    // Towards one destination, or in the whole namespace: both are true here.
    if let Some(remote) = subject_ep(&f, "remote") {
        assert_eq!(remote, lo4(7500), "subject.remote");
    }
    assert_explained(&f);
    let text = f.to_string();
    assert!(
        text.contains("EADDRNOTAVAIL") || text.contains("Cannot assign requested address"),
        "the finding names the consequence (EADDRNOTAVAIL): {f}"
    );
}

// ---------------------------------------------------------------------------------
// 5. A server out of fds, its accept queue overflowing (incident 4)
// ---------------------------------------------------------------------------------

#[test]
fn server_out_of_fds_overflows_its_accept_queue() {
    const NOFILE: u64 = 64;
    const BACKLOG: u64 = 8;
    let mut ns = TestNetns::new("inc-fd-accept");
    let _unblock = Unblock::new(&ns);
    let (server, info) = incident(
        &mut ns,
        &[
            "fd-server",
            "--port",
            "8004",
            "--backlog",
            &BACKLOG.to_string(),
            "--nofile",
            &NOFILE.to_string(),
        ],
    );
    let listener = parse_endpoint(info["listener"].as_str().unwrap());
    assert_eq!(proc_nofile(server).0, NOFILE);
    // Clients keep arriving for the rest of the test.
    incident(&mut ns, &["flood", "--port", "8004", "--every", "0.02"]);

    // The server runs out of fds, then its queue fills (backlog + 1) and overflows.
    let queue = |ns: &TestNetns| {
        ns.ss_listen()
            .rows
            .iter()
            .find(|r| r.local == listener)
            .map(|r| (r.recv_q, r.send_q))
            .expect("the listener in ss -tanl")
    };
    wait_for("the server out of fds and its queue full", 30, || {
        let fds = proc_fd_count(server);
        let q = queue(&ns);
        let ovf = tcpext(&ns, "ListenOverflows");
        let done = fds >= NOFILE && q.0 > BACKLOG && ovf > 0;
        (done.then_some(()), (fds, q, ovf))
    });

    let observe = || (proc_fd_count(server), queue(&ns));
    let (before, (_, report), after) = around(observe, || check(&["--interval", "2"]));
    let ovf_after = tcpext(&ns, "ListenOverflows");

    let fd = the_finding(&report, &ns, "fd-exhaustion", |s| {
        s["pid"].as_u64() == Some(server as u64)
    });
    assert_severity(&fd, "critical");
    assert_process(&fd, server);
    assert_count(&fd, "open fds of the server", &[before.0, after.0]);
    assert_limit(&fd, NOFILE);
    assert_explained(&fd);

    let aq = the_finding(&report, &ns, "accept-queue-overflow", |s| {
        s["local"].as_str().map(parse_endpoint) == Some(listener)
    });
    assert_severity(&aq, "critical");
    assert_process(&aq, server);
    assert_count(
        &aq,
        "accept queue of the listener",
        &[before.1 .0, after.1 .0],
    );
    assert_limit(&aq, BACKLOG);
    assert_explained(&aq);

    let r = rate(&report, &ns, "TcpExt", "ListenOverflows");
    assert!(
        r > 0.0,
        "rates: ListenOverflows {r}/s while clients kept arriving (counter now {ovf_after})"
    );
}

// ---------------------------------------------------------------------------------
// 6. SYN-RECV piling up on a listener (incident 4)
// ---------------------------------------------------------------------------------

#[test]
fn syn_recv_pile_up_on_a_listener_is_a_syn_backlog() {
    const N: u64 = 100;
    const BACKLOG: u64 = 128;
    let mut ns = TestNetns::new("inc-syn-recv");
    let _unblock = Unblock::new(&ns);
    // The server retransmits its SYN-ACK for far longer than the test.
    ns.set_sysctl("net.ipv4.tcp_synack_retries", "10");
    let (server, info) = incident(
        &mut ns,
        &[
            "syn-recv",
            "--port",
            "8003",
            "--count",
            &N.to_string(),
            "--backlog",
            &BACKLOG.to_string(),
        ],
    );
    let listener = parse_endpoint(info["listener"].as_str().unwrap());
    let on_listener = |ns: &TestNetns| {
        ns.ss_tan()
            .syn_recv_per_listener()
            .get(&listener)
            .copied()
            .unwrap_or(0)
    };
    wait_for("SYN-RECV on the listener in ss", 20, || {
        let n = on_listener(&ns);
        ((n == N).then_some(()), n)
    });
    let backlog = ns
        .ss_listen()
        .rows
        .iter()
        .find(|r| r.local == listener)
        .map(|r| r.send_q)
        .expect("listener");
    assert_eq!(backlog, BACKLOG);

    let (before, (_, report), after) = around(|| on_listener(&ns), || check(&[]));

    let f = the_finding(&report, &ns, "syn-backlog", |s| {
        s["local"].as_str().map(parse_endpoint) == Some(listener)
    });
    assert_severity(&f, "warning");
    assert_count(&f, "SYN-RECV on the listener", &[before, after]);
    assert_limit(&f, BACKLOG);
    assert_eq!(f["subject"]["state"], "SYN-RECV", "subject.state");
    assert_process(&f, server);
    assert_explained(&f);
}

// ---------------------------------------------------------------------------------
// 7. TIME-WAIT buckets overflowing (incident 2, incident 4's sysctl audit)
// ---------------------------------------------------------------------------------

#[test]
fn tiny_tw_buckets_overflowing_is_timewait_pressure() {
    const BUCKETS: u64 = 32;
    let mut ns = TestNetns::new("inc-timewait");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_max_tw_buckets", &BUCKETS.to_string());
    incident(&mut ns, &["churn", "--port", "8005", "--every", "0.005"]);

    let tw = |ns: &TestNetns| ns.ss_tan().count("TIME-WAIT");
    wait_for("TIME-WAIT at the bucket limit and overflowing", 20, || {
        let n = tw(&ns);
        let ovf = tcpext(&ns, "TCPTimeWaitOverflow");
        ((n >= BUCKETS - 1 && ovf > 0).then_some(()), (n, ovf))
    });

    let (before, (_, report), after) = around(|| tw(&ns), || check(&["--interval", "2"]));

    // The namespace-wide finding (a per-destination one names a remote).
    let f = the_finding(&report, &ns, "timewait-pressure", |s| s["remote"].is_null());
    assert_severity(&f, "critical");
    assert_eq!(f["subject"]["state"], "TIME-WAIT", "subject.state");
    assert_count(&f, "TIME-WAIT in the namespace", &[before, after]);
    assert_limit(&f, BUCKETS);
    assert_explained(&f);

    let r = rate(&report, &ns, "TcpExt", "TCPTimeWaitOverflow");
    assert!(
        r > 0.0,
        "rates: TCPTimeWaitOverflow {r}/s while connections kept closing"
    );
}

// ---------------------------------------------------------------------------------
// 8. A server that never closes after the peer did (incident 5)
// ---------------------------------------------------------------------------------

#[test]
fn server_never_closing_after_the_peer_is_a_close_wait_leak() {
    const N: u64 = 50;
    let mut ns = TestNetns::new("inc-close-wait");
    let _unblock = Unblock::new(&ns);
    let server = ns.start_holder(&["--listen", "127.0.0.1:7600"]);
    let mut clients = ns.start_holder(&["--connect", &format!("127.0.0.1:7600:k:{N}")]);
    assert_eq!(clients.ready.state("ESTABLISHED"), N);
    // The peers leave; the server keeps every socket.
    let closed = clients.ask("close");
    assert_eq!(closed["closed"].as_u64(), Some(N));

    let close_wait = |ns: &TestNetns| {
        ns.ss_tanp()
            .states_of(server.pid)
            .get("CLOSE-WAIT")
            .copied()
            .unwrap_or(0)
    };
    wait_for("the server's CLOSE-WAIT in ss -tanp", 20, || {
        let n = close_wait(&ns);
        ((n == N).then_some(()), n)
    });

    let (before, (_, report), after) = around(|| close_wait(&ns), || check(&[]));

    let f = the_finding(&report, &ns, "close-wait-leak", |s| {
        s["pid"].as_u64() == Some(server.pid as u64)
    });
    assert_severity(&f, "warning");
    assert_process(&f, server.pid);
    assert_eq!(f["subject"]["state"], "CLOSE-WAIT", "subject.state");
    assert_count(&f, "CLOSE-WAIT of the server", &[before, after]);
    assert_explained(&f);
    // The threshold decides: above the server's count, no finding about it.
    let above = format!("close-wait.warning={}", N + 1);
    let (_, quiet) = check(&["--once", "--threshold", &above]);
    assert!(
        findings(&quiet, &ns, "close-wait-leak")
            .iter()
            .all(|f| f["subject"]["pid"].as_u64() != Some(server.pid as u64)),
        "--threshold {above}: still a close-wait-leak for the server\n{}",
        findings_summary(&quiet)
    );
    assert!(quiet["rates"].is_null(), "--once: rates {}", quiet["rates"]);
    // The clients are not the culprit.
    assert!(
        findings(&report, &ns, "close-wait-leak")
            .iter()
            .all(|f| f["subject"]["pid"].as_u64() != Some(clients.pid as u64)),
        "the clients hold no CLOSE-WAIT\n{}",
        findings_summary(&report)
    );
}
