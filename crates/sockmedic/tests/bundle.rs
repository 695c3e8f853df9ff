//! `sockmedic collect` and `check --from BUNDLE`: for each incident reproduction of
//! tests/incidents.rs (support/incidents.py, support/holder.py), a bundle collected
//! on this host must give the same findings about the incident's namespace as the
//! live `check` taken at the same time (code, severity, subject; counts within 5%).
//! Also: what a bundle must never hold (environment variables, command lines unless
//! asked), the cap on raw socket data, `collect --script` under dash (and busybox
//! sh when installed) read back with `--from`, and an unwritable `-o`.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `sockmedic collect -o FILE` (+ extra); panics unless it wrote the file.
fn collect(file: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["collect", "-o", s(file)];
    args.extend_from_slice(extra);
    let run = sockmedic(&args);
    run.assert_no_panic();
    assert!(
        run.output.status.success() && file.exists(),
        "collect failed\n{}",
        run.describe()
    );
    run
}

/// `check --from FILE --once --json`: the report (exit code checked as live).
fn check_from(file: &Path) -> Value {
    let run = sockmedic(&["check", "--from", s(file), "--once", "--json"]);
    let report = check_report(&run);
    assert_eq!(report["source"]["kind"], "bundle", "source.kind");
    report
}

/// The bundle's bytes, uncompressed (the tar stream).
fn bundle_bytes(file: &Path) -> Vec<u8> {
    let out = Command::new("gzip")
        .args(["-dc", s(file)])
        .output()
        .expect("gzip -dc");
    assert!(out.status.success(), "gzip -dc {}", file.display());
    out.stdout
}

/// One file of a bundle (by its path under the top directory).
fn bundle_file(file: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["-xzOf", s(file), "--wildcards", &format!("*/{name}")])
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "tar -xzOf {} */{name}",
        file.display()
    );
    out.stdout
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A finding reduced to what must be equal live and offline, plus its count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    code: String,
    severity: String,
    subject: String,
}

fn keyed(report: &Value, ns: &str) -> Vec<(Key, Option<u64>)> {
    let mut out: Vec<(Key, Option<u64>)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["subject"]["netns"] == ns)
        .map(|f| {
            let mut sub = f["subject"].clone();
            let count = sub["count"].as_u64();
            sub["count"] = Value::Null;
            (
                Key {
                    code: f["code"].as_str().unwrap_or("").into(),
                    severity: f["severity"].as_str().unwrap_or("").into(),
                    subject: sub.to_string(),
                },
                count,
            )
        })
        .collect();
    out.sort();
    out
}

fn near(a: u64, b: u64) -> bool {
    let tol = ((b.max(a) as f64) * 0.05).ceil().max(1.0) as u64;
    a.abs_diff(b) <= tol
}

/// Why two reports disagree about namespace `ns`, if they do.
fn differences(live: &Value, offline: &Value, ns: &str) -> Option<String> {
    let (a, b) = (keyed(live, ns), keyed(offline, ns));
    let same = a.len() == b.len()
        && a.iter().zip(&b).all(|((ka, ca), (kb, cb))| {
            ka == kb
                && match (ca, cb) {
                    (Some(x), Some(y)) => near(*x, *y),
                    (x, y) => x == y,
                }
        });
    (!same).then(|| format!("live:\n{a:#?}\nbundle:\n{b:#?}"))
}

/// Collects a bundle and checks it against a live `check --once` taken right
/// before it: the same findings about `ns`, among them `want`. Sockets move while
/// the incident runs, so a disagreement is retried twice before it fails.
fn round_trip(ns: &TestNetns, want: &[&str]) {
    let dir = TempDir::new(&ns.name);
    let file = dir.join("b.tar.gz");
    let mut last = String::new();
    for _ in 0..3 {
        let (_, live) = check_json(&["--once"]);
        collect(&file, &[]);
        let offline = check_from(&file);
        assert_eq!(offline["source"]["host"], live["source"]["host"]);
        let found: Vec<String> = keyed(&offline, &ns.name)
            .into_iter()
            .map(|(k, _)| k.code)
            .collect();
        for code in want {
            assert!(
                found.iter().any(|c| c == code),
                "the bundle's check has no {code} about {}: {found:?}\n{}",
                ns.name,
                findings_summary(&offline)
            );
        }
        match differences(&live, &offline, &ns.name) {
            None => return,
            Some(d) => last = d,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "check --from the bundle disagrees with the live check about {}:\n{last}",
        ns.name
    );
}

/// Polls `f` every 50 ms until it is true; panics after `secs`.
fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tcpext(ns: &TestNetns, name: &str) -> u64 {
    let text = ns.proc_net("netstat");
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    while let (Some(h), Some(v)) = (lines.next(), lines.next()) {
        let names: Vec<&str> = h.split_whitespace().collect();
        let vals: Vec<&str> = v.split_whitespace().collect();
        if let Some(i) = names.iter().position(|n| *n == name) {
            return vals[i].parse().unwrap_or(0);
        }
    }
    0
}

// ---------------------------------------------------------------------------------
// Round trips: the incidents of tests/incidents.rs
// ---------------------------------------------------------------------------------

fn teardown(state: &str, port: &str, test: &str) {
    const N: u64 = 300;
    let mut ns = TestNetns::new(test);
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    teardown_incident(&mut ns, state, port, N, &[]);
    let want = state.to_uppercase();
    wait_until(&format!("{N} {want}"), 20, || ns.ss_tan().count(&want) >= N);
    round_trip(&ns, &["teardown-stall"]);
}

#[test]
fn last_ack_storm_round_trips() {
    teardown("last-ack", "8101", "bun-last-ack");
}

#[test]
fn fin_wait_1_round_trips() {
    teardown("fin-wait-1", "8102", "bun-fin-wait-1");
}

#[test]
fn socket_leak_round_trips() {
    let mut ns = TestNetns::new("bun-socket-leak");
    let _unblock = Unblock::new(&ns);
    let h = ns.start_holder(&[
        "--listen",
        "127.0.0.1:7710",
        "--connect",
        "self:r:20",
        "--never",
        "30",
    ]);
    assert_eq!(h.ready.unhashed, 50, "holder's books: {}", h.ready.json);
    round_trip(&ns, &["socket-leak"]);
}

#[test]
fn port_exhaustion_round_trips() {
    let mut ns = TestNetns::new("bun-ports");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.ip_local_port_range", "40000 40099");
    let h = ns.start_holder(&[
        "--listen",
        "127.0.0.1:7510",
        "--connect",
        "self:k:40",
        "--bound-ephemeral",
        "60",
    ]);
    assert_eq!(h.ready.state("BOUND-INACTIVE"), 60);
    round_trip(&ns, &["port-exhaustion"]);
}

#[test]
fn fd_exhaustion_and_accept_overflow_round_trip() {
    let mut ns = TestNetns::new("bun-fd-accept");
    let _unblock = Unblock::new(&ns);
    let (server, info) = incident(
        &mut ns,
        &[
            "fd-server",
            "--port",
            "8104",
            "--backlog",
            "8",
            "--nofile",
            "64",
        ],
    );
    let listener = parse_endpoint(info["listener"].as_str().unwrap());
    incident(&mut ns, &["flood", "--port", "8104", "--every", "0.02"]);
    wait_until("the server out of fds and its queue full", 30, || {
        let q = ns
            .ss_listen()
            .rows
            .iter()
            .find(|r| r.local == listener)
            .map_or(0, |r| r.recv_q);
        proc_fd_count(server) >= 64 && q > 8 && tcpext(&ns, "ListenOverflows") > 0
    });
    round_trip(&ns, &["fd-exhaustion", "accept-queue-overflow"]);
}

#[test]
fn syn_recv_round_trips() {
    let mut ns = TestNetns::new("bun-syn-recv");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_synack_retries", "10");
    incident(
        &mut ns,
        &[
            "syn-recv",
            "--port",
            "8103",
            "--count",
            "100",
            "--backlog",
            "128",
        ],
    );
    wait_until("100 SYN-RECV", 20, || ns.ss_tan().count("SYN-RECV") >= 100);
    round_trip(&ns, &["syn-backlog"]);
}

#[test]
fn time_wait_round_trips() {
    let mut ns = TestNetns::new("bun-timewait");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_max_tw_buckets", "32");
    incident(&mut ns, &["churn", "--port", "8105", "--every", "0.005"]);
    wait_until("TIME-WAIT at the bucket limit, overflowing", 20, || {
        ns.ss_tan().count("TIME-WAIT") >= 31 && tcpext(&ns, "TCPTimeWaitOverflow") > 0
    });
    round_trip(&ns, &["timewait-pressure"]);
}

#[test]
fn close_wait_round_trips() {
    const N: u64 = 50;
    let mut ns = TestNetns::new("bun-close-wait");
    let _unblock = Unblock::new(&ns);
    let server = ns.start_holder(&["--listen", "127.0.0.1:7610"]);
    let mut clients = ns.start_holder(&["--connect", &format!("127.0.0.1:7610:k:{N}")]);
    assert_eq!(clients.ask("close")["closed"].as_u64(), Some(N));
    wait_until("the server's CLOSE-WAIT", 20, || {
        ns.ss_tanp().states_of(server.pid).get("CLOSE-WAIT") == Some(&N)
    });
    round_trip(&ns, &["close-wait-leak"]);
}

// ---------------------------------------------------------------------------------
// What a bundle holds, and what it never holds
// ---------------------------------------------------------------------------------

/// A python3 holding a listener in `ns`, with `marker` in its environment and
/// `arg` on its command line.
fn marked_holder(ns: &mut TestNetns, env_marker: &str, arg: &str) -> u32 {
    let code = "import socket,sys,time\n\
                s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(4)\n\
                print('ready', flush=True); time.sleep(1000)";
    let mut cmd = ns.cmd(&["python3", "-c", code, arg]);
    cmd.env("SOCKMEDIC_TEST_SECRET", env_marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let child = ns.spawn(&mut cmd);
    let pid = child.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    pid
}

#[test]
fn a_bundle_never_holds_the_environment_and_holds_cmdlines_only_when_asked() {
    let mut ns = TestNetns::new("bun-secrets");
    let env_marker = unique_name("envsecret");
    let arg_marker = unique_name("argsecret");
    let pid = marked_holder(&mut ns, &env_marker, &arg_marker);
    // The marker really is in the process's environment and command line.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        contains(&environ, &env_marker),
        "the marker is in /proc/PID/environ"
    );
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(contains(&cmdline, &arg_marker));

    let dir = TempDir::new("secrets");
    let plain = dir.join("plain.tar.gz");
    collect(&plain, &[]);
    let bytes = bundle_bytes(&plain);
    assert!(
        !contains(&bytes, &env_marker),
        "the environment is in the bundle"
    );
    assert!(
        !contains(&bytes, &arg_marker),
        "a command line is in the bundle without --include-cmdline"
    );
    // The process is there, by pid and name.
    let procs = String::from_utf8(bundle_file(&plain, "processes.jsonl")).unwrap();
    assert!(
        procs
            .lines()
            .any(|l| l.contains(&format!("\"pid\":{pid},"))),
        "the holder is in processes.jsonl"
    );

    let with = dir.join("with.tar.gz");
    collect(&with, &["--include-cmdline"]);
    let bytes = bundle_bytes(&with);
    assert!(
        !contains(&bytes, &env_marker),
        "the environment is in the bundle"
    );
    let procs = String::from_utf8(bundle_file(&with, "processes.jsonl")).unwrap();
    assert!(
        procs.contains(&arg_marker),
        "--include-cmdline: the holder's command line is in processes.jsonl"
    );
    let manifest: Value = serde_json::from_slice(&bundle_file(&with, "manifest.json")).unwrap();
    assert_eq!(manifest["options"]["include_cmdline"], true);
}

#[test]
fn the_manifest_says_what_was_collected() {
    let ns = TestNetns::new("bun-manifest");
    let dir = TempDir::new("manifest");
    let file = dir.join("b.tar.gz");
    collect(&file, &[]);
    let m: Value = serde_json::from_slice(&bundle_file(&file, "manifest.json")).unwrap();
    assert_eq!(m["format"], "sockmedic.bundle/v1");
    assert_eq!(
        m["tool"],
        format!("sockmedic {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        m["taken_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{}",
        m["taken_at"]
    );
    assert_eq!(m["who"]["root"], true);
    assert_eq!(m["who"]["uid"], 0);
    assert!(m["uname"]["release"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let id = ns.inode();
    let entry = m["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("namespace {} not in the manifest", ns.name));
    assert!(entry["names"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == ns.name.as_str()));
    assert_eq!(entry["outcome"], "read");
    // Its files, as read inside it: its own somaxconn.
    ns.set_sysctl("net.core.somaxconn", "1234");
    collect(&file, &[]);
    let v = bundle_file(&file, &format!("netns/{id}/proc/sys/net/core/somaxconn"));
    assert_eq!(String::from_utf8_lossy(&v).trim(), "1234");
    let sockstat = bundle_file(&file, &format!("netns/{id}/proc/net/sockstat"));
    assert!(contains(&sockstat, "TCP: inuse"));
    for f in [
        "host/proc/net/sockstat",
        "host/proc/sys/fs/file-nr",
        "uname.txt",
        "snapshot.json",
    ] {
        assert!(!bundle_file(&file, f).is_empty(), "{f} is empty");
    }
    // Unpacked, the directory reads as the file does.
    let unpacked = dir.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    run_ok(Command::new("tar").args(["-xzf", s(&file), "-C", s(&unpacked)]));
    let from_file = check_from(&file);
    let from_dir = check_from(&unpacked);
    assert_eq!(from_dir["netns"], from_file["netns"]);
    assert_eq!(from_dir["findings"], from_file["findings"]);
    assert_eq!(from_dir["source"], from_file["source"]);
    // `check --from` says where the figures come from.
    let run = sockmedic(&["check", "--from", s(&file), "--once"]);
    let first = run.stdout().lines().next().unwrap_or("").to_string();
    assert!(
        first.contains("bundle from") && first.contains("not live"),
        "header: {first}"
    );
}

#[test]
fn the_cap_on_raw_socket_data_is_noted_and_counts_stay_exact() {
    let mut ns = TestNetns::new("bun-cap");
    let _server = ns.start_holder(&["--listen", "127.0.0.1:7620"]);
    let _clients = ns.start_holder(&["--connect", "127.0.0.1:7620:k:40"]);
    let dir = TempDir::new("cap");
    let file = dir.join("b.tar.gz");
    collect(&file, &["--max-socket-bytes", "1"]);
    let m: Value = serde_json::from_slice(&bundle_file(&file, "manifest.json")).unwrap();
    let cut: Vec<u64> = m["socket_data"]["cut"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        cut.contains(&ns.inode()),
        "the namespace is cut: {}",
        m["socket_data"]
    );
    assert!(
        m["socket_data"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("cap")),
        "{}",
        m["socket_data"]
    );
    assert_eq!(m["socket_data"]["bytes"], 0);
    let report = check_from(&file);
    let entry = netns_named(&report, &ns.name);
    assert_eq!(states_of(entry).get("ESTABLISHED"), Some(&80), "{entry}");
    assert!(
        report["missing"]
            .to_string()
            .contains("cap on raw socket data"),
        "missing: {}",
        report["missing"]
    );
}

#[test]
fn an_unwritable_output_is_exit_3_with_one_line() {
    let run = sockmedic(&["collect", "-o", "/nonexistent-dir/sub/b.tar.gz"]);
    run.assert_no_panic();
    assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
    let err = run.stderr();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("/nonexistent-dir/sub/b.tar.gz"), "{err}");
    assert!(run.stdout().is_empty(), "{}", run.describe());
}

// ---------------------------------------------------------------------------------
// collect --script
// ---------------------------------------------------------------------------------

/// Runs the script with `shell` inside `ns`; returns its output directory.
fn run_script(ns: &TestNetns, shell: &str, dir: &TempDir) -> PathBuf {
    let script = dir.join("collect.sh");
    let run = sockmedic(&["collect", "--script"]);
    assert!(run.output.status.success(), "{}", run.describe());
    std::fs::write(&script, &run.output.stdout).unwrap();
    let out = dir.join(&format!("out-{}", shell.replace(' ', "-")));
    let mut args: Vec<&str> = shell.split(' ').collect();
    args.extend([s(&script), s(&out)]);
    let o = ns
        .cmd(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run the script");
    assert!(
        o.status.success(),
        "{shell} collect.sh failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.is_dir(), "no output directory {}", out.display());
    out
}

fn script_reads_back(shell: &str) {
    let mut ns = TestNetns::new(&format!("bun-script-{}", shell.replace(' ', "-")));
    let h = ns.start_holder(&[
        "--listen",
        "127.0.0.1:7630",
        "--connect",
        "127.0.0.1:7630:k:5",
    ]);
    let dir = TempDir::new("script");
    let out = run_script(&ns, shell, &dir);
    for f in [
        "sos_commands/networking/ss_-s",
        "sos_commands/kernel/uname_-a",
        "sos_commands/host/hostname",
        "proc/net/sockstat",
        "proc/net/snmp",
        "proc/sys/net/ipv4/ip_local_port_range",
        "proc/sys/fs/file-nr",
    ] {
        assert!(
            out.join(f).is_file(),
            "{f} missing from the script's output"
        );
    }
    let listing = ["ss_-tanpoemi", "ss_-tanp"]
        .iter()
        .any(|f| out.join("sos_commands/networking").join(f).is_file());
    assert!(listing, "no ss listing in the script's output");
    let run = sockmedic(&["check", "--from", s(&out), "--once", "--json"]);
    let report = check_report(&run);
    assert_eq!(report["source"]["kind"], "text");
    // The namespace's sockets are seen: 5 connections both ways and one listener,
    // in its sockstat and in the ss listing.
    let ns0 = &report["netns"][0];
    assert_eq!(ns0["sockstat"]["tcp_inuse"].as_u64(), Some(11), "{ns0}");
    assert_eq!(
        ns0["sysctl"]["net.ipv4.ip_local_port_range"],
        ns.sysctl("net.ipv4.ip_local_port_range")
            .replace('\t', " ")
            .as_str(),
        "{ns0}"
    );
    let states = states_of(ns0);
    assert_eq!(states.get("ESTABLISHED"), Some(&10), "{ns0}");
    assert_eq!(states.get("LISTEN"), Some(&1), "{ns0}");
    // The holders are named, from ss -p, with their fd limits.
    let holder = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(h.pid as u64));
    assert!(
        holder.is_some(),
        "the holder is not among the processes: {}",
        report["processes"]
    );
    // Other namespaces are kept apart, each readable alone.
    let others = out.join("netns");
    assert!(others.is_dir(), "no netns/ in the script's output");
    let one = std::fs::read_dir(&others)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run = sockmedic(&["check", "--from", s(&one), "--once", "--json"]);
    check_report(&run);
}

#[test]
fn the_script_runs_under_dash_and_its_output_reads_back() {
    script_reads_back("dash");
}

#[test]
fn the_script_runs_under_busybox_sh_when_installed() {
    if Command::new("busybox").arg("true").status().is_err() {
        eprintln!("busybox is not installed: scripts/install-deps installs it");
        return;
    }
    script_reads_back("busybox sh");
}

#[test]
fn a_damaged_or_foreign_archive_is_exit_3_with_one_line() {
    let dir = TempDir::new("damaged");
    let file = dir.join("b.tar.gz");
    collect(&file, &[]);
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // A tar.gz of saved outputs that is not a bundle.
    let sockstat = dir.join("sockstat");
    std::fs::write(&sockstat, std::fs::read("/proc/net/sockstat").unwrap()).unwrap();
    let foreign = dir.join("outputs.tar.gz");
    run_ok(Command::new("tar").args(["-czf", s(&foreign), "-C", s(&dir.0), "sockstat"]));
    for (f, says) in [(&cut, "truncated"), (&foreign, "not a sockmedic bundle")] {
        let run = sockmedic(&["check", "--from", s(f), "--once", "--json"]);
        run.assert_no_panic();
        assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
        let err = run.stderr();
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(s(f)) && err.contains(says), "{err}");
    }
}
