//! `sockmedic procs`: who holds the sockets. Real processes (support/holder.py) in
//! several network namespaces hold sockets in known states; every figure sockmedic
//! gives for them is checked against what the kernel shows from the outside (`ss
//! -tanp`, a raw bound-inactive dump, `/proc/PID/fd`, `/proc/PID/limits`) and, where
//! nothing outside can see (sockets in no table), against the holder's own books.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Inodes of the bound-inactive sockets of a namespace (raw sock_diag dump: this
/// iproute2 predates `ss state bound-inactive`).
fn bound_inactive_inodes(ns: &TestNetns) -> BTreeSet<u64> {
    ns.sockdiag(&[13]).into_iter().map(|d| d.inode).collect()
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or_else(|| panic!("{k} = {n}"))))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn nonzero(m: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    m.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

/// Ground truth for one holder: ss for what it can see, the raw dump for
/// BOUND-INACTIVE, the holder's books for UNHASHED.
fn truth_states(
    pid: u32,
    ss: &SsProcs,
    bound: &BTreeSet<u64>,
    fds: &FdTruth,
    books: &HolderReport,
) -> BTreeMap<String, u64> {
    let mut want = ss.states_of(pid);
    let bi = fds
        .sockets
        .iter()
        .filter(|(_, i, _)| bound.contains(i))
        .count() as u64;
    want.insert("BOUND-INACTIVE".into(), bi);
    want.insert("UNHASHED".into(), books.state("UNHASHED"));
    nonzero(&want)
}

/// Checks everything `procs` says about one holder.
fn check_holder(
    report: &Value,
    books: &HolderReport,
    netns: u64,
    ss: &SsProcs,
    bound: &BTreeSet<u64>,
    fds: &FdTruth,
) {
    let pid = books.pid;
    let p = process_entry(report, pid);
    let diag = format!(
        "pid {pid}\n--- sockmedic\n{}\n--- holder's books\n{}\n--- ss -tanp\n{}--- /proc/{pid}/fd\n{fds:?}",
        serde_json::to_string_pretty(p).unwrap(),
        books.json,
        ss.text()
    );
    assert_eq!(p["comm"], "python3", "comm\n{diag}");
    assert_eq!(p["uid"].as_u64(), Some(books.uid as u64), "uid\n{diag}");
    assert_eq!(p["netns"].as_u64(), Some(netns), "netns\n{diag}");
    assert_eq!(
        p["thread_netns"],
        serde_json::json!([]),
        "thread_netns\n{diag}"
    );
    assert!(
        p["cmdline"].is_null(),
        "cmdline only with --cmdline\n{diag}"
    );
    assert!(p["pod"].is_null() && p["container"].is_null(), "{diag}");

    // States: ss where it sees them, the dump for BOUND-INACTIVE, the books for the
    // rest; and the books agree with the outside where both see.
    let want = truth_states(pid, ss, bound, fds, books);
    assert_eq!(
        want,
        nonzero(&books.states),
        "the fixture: what ss and the dump see of pid {pid} is what it made\n{diag}"
    );
    assert_eq!(counts(&p["states"]), want, "states of pid {pid}\n{diag}");
    assert_eq!(
        p["unhashed"].as_u64(),
        Some(books.unhashed),
        "unhashed = BOUND-INACTIVE + UNHASHED\n{diag}"
    );

    // File descriptors, against /proc from the outside and the books.
    assert_eq!(
        p["socket_fds"].as_u64(),
        Some(fds.socket_fds()),
        "socket_fds\n{diag}"
    );
    assert_eq!(fds.socket_fds(), books.socket_fds, "the fixture\n{diag}");
    assert_eq!(
        counts(&p["sockets_by_proto"]),
        fds.by_proto(),
        "sockets_by_proto vs the sockprotoname xattrs\n{diag}"
    );
    assert_eq!(fds.by_proto(), books.by_proto, "the fixture\n{diag}");
    assert_eq!(
        p["fds"].as_u64(),
        Some(proc_fd_count(pid)),
        "fds vs ls /proc/{pid}/fd\n{diag}"
    );
    assert_eq!(proc_fd_count(pid), books.fds, "the fixture\n{diag}");
    let (soft, hard) = proc_nofile(pid);
    assert_eq!(p["fd_limit"].as_u64(), Some(soft), "fd_limit\n{diag}");
    assert_eq!(
        p["fd_limit_hard"].as_u64(),
        Some(hard),
        "fd_limit_hard\n{diag}"
    );
    assert_eq!((soft, hard), books.nofile, "the fixture\n{diag}");

    // Listeners: its own, with the queues.
    let mut got: Vec<(std::net::SocketAddr, u64, u64)> = p["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                parse_endpoint(l["local"].as_str().unwrap()),
                l["accept_queue"].as_u64().unwrap(),
                l["backlog"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(std::net::SocketAddr, u64, u64)> = ss
        .rows_of(pid)
        .into_iter()
        .filter(|r| r.state == "LISTEN")
        .map(|r| (r.local, r.recv_q, r.send_q))
        .collect();
    want.sort();
    assert_eq!(got, want, "listeners of pid {pid}\n{diag}");
    let mut books_l = books.listeners.clone();
    books_l.sort();
    assert_eq!(
        got.iter().map(|l| l.0).collect::<Vec<_>>(),
        books_l,
        "listeners\n{diag}"
    );

    // The ports its bound-inactive sockets hold.
    let mut ports: Vec<u16> = p["bound_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u16)
        .collect();
    ports.sort();
    assert_eq!(ports, books.bound_ports, "bound_ports\n{diag}");

    // The sample of sockets in no table: all of them here (fewer than 8), each
    // CLOSE; the reset ones still show the port they had. Without --so-error the
    // pending errors are left alone (reading SO_ERROR would consume them).
    let un = books.state("UNHASHED");
    let check = &p["unhashed_check"];
    if un == 0 {
        assert!(
            check.is_null(),
            "no unhashed_check without UNHASHED sockets\n{diag}"
        );
        return;
    }
    assert!(un <= 8, "the fixture keeps the sample complete");
    assert!(
        check["unavailable"].is_null(),
        "root can pidfd_getfd\n{diag}"
    );
    assert_eq!(check["checked"].as_u64(), Some(un), "checked\n{diag}");
    assert_eq!(check["close"].as_u64(), Some(un), "all CLOSE\n{diag}");
    assert_eq!(
        check["errors"],
        serde_json::json!({}),
        "errors are read only with --so-error\n{diag}"
    );
    let mut last: Vec<u16> = check["last_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u16)
        .collect();
    last.sort();
    assert_eq!(
        last, books.reset_ports,
        "last_ports: the reset connections' ports\n{diag}"
    );
}

/// Processes in two namespaces (one named, one held only by its processes) holding
/// ESTABLISHED, CLOSE-WAIT, reset and never-used sockets, sockets bound to ephemeral
/// ports, UDP and UNIX sockets, one with RLIMIT_NOFILE lowered and nearly every fd
/// used, one with no socket but most of its fds used.
#[test]
fn holdings_match_ss_proc_and_the_holders_books() {
    let mut a = TestNetns::new("procs-holdings");
    let mut b = TestNetns::unnamed();
    let mut sa = a.start_holder(&[
        "--listen",
        "127.0.0.1:8001",
        "--listen",
        "[::1]:8002",
        "--udp",
        "2",
        "--unix",
        "1",
    ]);
    let ca = a.start_holder(&[
        "--connect",
        "127.0.0.1:8001:k:4",
        "--connect",
        "127.0.0.1:8001:c:3",
        "--connect",
        "127.0.0.1:8001:r:2",
        "--connect",
        "[::1]:8002:k:2",
        "--connect",
        "[::1]:8002:c:1",
        "--never",
        "3",
        "--never",
        "1:v6",
        "--bound-ephemeral",
        "2",
        "--bound-ephemeral",
        "1:v6",
        "--unix",
        "2",
    ]);
    let mut sb = b.start_holder(&[
        "--listen",
        "127.0.0.1:8001",
        "--listen",
        "[::1]:8003",
        "--connect",
        "self:k:2",
    ]);
    let cb = b.start_holder(&[
        "--nofile",
        "64:128",
        "--connect",
        "127.0.0.1:8001:k:5",
        "--connect",
        "[::1]:8003:c:2",
        "--connect",
        "127.0.0.1:8001:r:1",
        "--never",
        "2",
        "--bound-ephemeral",
        "1",
        "--udp",
        "1",
        "--fill-fds-to",
        "62",
    ]);
    let fb = b.start_holder(&["--nofile", "40:40", "--fill-fds-to", "30"]);
    // The servers' books, now that every client is served.
    let sa_books = sa.report();
    let sb_books = sb.report();
    assert_eq!(sa_books.state("ESTABLISHED"), 6, "{}", sa_books.json);
    assert_eq!(sb_books.state("ESTABLISHED"), 9, "{}", sb_books.json);
    assert_eq!(
        cb.ready.fds, 62,
        "nearly every fd of 64 used: {}",
        cb.ready.json
    );

    let holders: Vec<(HolderReport, u64, &TestNetns)> = vec![
        (sa_books, a.inode(), &a),
        (ca.ready.clone(), a.inode(), &a),
        (sb_books, b.inode(), &b),
        (cb.ready.clone(), b.inode(), &b),
        (fb.ready.clone(), b.inode(), &b),
    ];
    let pids: Vec<String> = holders.iter().map(|h| h.0.pid.to_string()).collect();
    let pid_list = pids.join(",");
    let ((ss_a, ss_b), run) = stable_by(
        || (a.ss_tanp(), b.ss_tanp()),
        || sockmedic(&["procs", "--json", "--all", "--pid", &pid_list]),
    );
    let report = run.report();
    assert_eq!(
        process_pids(report).len(),
        holders.len(),
        "exactly the pids asked for\n{}",
        run.describe()
    );
    let bound_a = bound_inactive_inodes(&a);
    let bound_b = bound_inactive_inodes(&b);
    let truth = fd_truth(&holders.iter().map(|h| h.0.pid).collect::<Vec<_>>());
    for (books, netns, ns) in &holders {
        let (ss, bound) = if std::ptr::eq(*ns, &a) {
            (&ss_a, &bound_a)
        } else {
            (&ss_b, &bound_b)
        };
        check_holder(report, books, *netns, ss, bound, &truth[&books.pid]);
    }
    // The namespaces are in the report, the unnamed one named after a process.
    let ids: Vec<u64> = report["netns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert!(
        ids.contains(&a.inode()) && ids.contains(&b.inode()),
        "{ids:?}"
    );

    // The one with no socket is there for its fd use alone.
    let f = process_entry(report, fb.pid);
    assert_eq!(f["socket_fds"].as_u64(), Some(0), "{f}");
    assert_eq!(f["fds"].as_u64(), Some(30), "{f}");
    assert_eq!(f["fd_limit"].as_u64(), Some(40), "{f}");

    // --netns keeps the processes of that namespace only.
    let run = sockmedic(&["procs", "--json", "--all", "--netns", &a.name]);
    let report = run.report();
    let listed = process_pids(report);
    for h in &holders {
        assert_eq!(
            listed.contains(&h.0.pid),
            h.1 == a.inode(),
            "--netns {}: pid {} (netns {})\n{}",
            a.name,
            h.0.pid,
            h.1,
            run.describe()
        );
    }
    for p in report["processes"].as_array().unwrap() {
        let inside = p["netns"].as_u64() == Some(a.inode())
            || p["thread_netns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.as_u64() == Some(a.inode()));
        assert!(inside, "--netns {}: a process from elsewhere: {p}", a.name);
    }

    // --so-error reads the pending errors: every reset connection's ECONNRESET is
    // still there (no run before consumed it).
    let resets = format!("{},{}", ca.pid, cb.pid);
    let run = sockmedic(&["procs", "--json", "--pid", &resets, "--so-error"]);
    for h in [&ca, &cb] {
        let p = process_entry(run.report(), h.pid);
        assert_eq!(
            p["unhashed_check"]["errors"],
            serde_json::json!({"ECONNRESET": h.ready.resets}),
            "--so-error: pid {} holds {} reset connections\n{}",
            h.pid,
            h.ready.resets,
            serde_json::to_string_pretty(p).unwrap()
        );
    }

    // --cmdline adds the command line.
    let ca_pid = ca.pid.to_string();
    let run = sockmedic(&["procs", "--json", "--pid", &ca_pid, "--cmdline"]);
    let p = process_entry(run.report(), ca.pid);
    let cmd = p["cmdline"]
        .as_str()
        .unwrap_or_else(|| panic!("cmdline: {p}"));
    let want = std::fs::read_to_string(format!("/proc/{}/cmdline", ca.pid))
        .unwrap()
        .trim_end_matches('\0')
        .replace('\0', " ");
    assert!(
        cmd.contains("python3") && cmd.contains("holder.py") && want.starts_with(cmd),
        "cmdline {cmd:?}, /proc says {want:?}"
    );
}

/// The orders `--sort` promises, checked on holders with distinct profiles, with
/// `--top`, `--all` and `--pid`; and `stat --json` carries the same processes.
#[test]
fn sort_top_and_pid_select_the_right_processes() {
    let mut ns = TestNetns::new("procs-sort");
    // Profiles chosen so that each sort key orders them differently.
    let p1 = ns.start_holder(&["--listen", "127.0.0.1:0", "--connect", "self:k:6"]);
    let p2 = ns.start_holder(&[
        "--listen",
        "127.0.0.1:0",
        "--connect",
        "self:c:5",
        "--never",
        "4",
    ]);
    let p3 = ns.start_holder(&[
        "--listen",
        "127.0.0.1:0",
        "--connect",
        "self:k:1",
        "--connect",
        "self:c:1",
        "--never",
        "1",
        "--bound-ephemeral",
        "6",
        "--udp",
        "3",
    ]);
    let p4 = ns.start_holder(&[
        "--nofile",
        "64:64",
        "--listen",
        "127.0.0.1:0",
        "--connect",
        "self:k:2",
        "--fill-fds-to",
        "60",
    ]);
    // No socket and few fds: never listed.
    let quiet = ns.start_holder(&[]);
    let ours = [p1.pid, p2.pid, p3.pid, p4.pid];
    let books: BTreeMap<u32, HolderReport> = [&p1, &p2, &p3, &p4]
        .iter()
        .map(|h| (h.pid, h.ready.clone()))
        .collect();

    // Ground truth per holder, from the outside (books for UNHASHED).
    let ss = ns.ss_tanp();
    let bound = bound_inactive_inodes(&ns);
    let fds = fd_truth(&ours);
    struct Truth {
        sockets: u64,
        tcp: u64,
        fds: u64,
        fd_use: u64,
        unhashed: u64,
        close_wait: u64,
        established: u64,
    }
    let truth: BTreeMap<u32, Truth> = ours
        .iter()
        .map(|&pid| {
            let t = &fds[&pid];
            let st = truth_states(pid, &ss, &bound, t, &books[&pid]);
            let g = |s: &str| st.get(s).copied().unwrap_or(0);
            let (soft, _) = proc_nofile(pid);
            let n = proc_fd_count(pid);
            (
                pid,
                Truth {
                    sockets: t.socket_fds(),
                    tcp: st.values().sum(),
                    fds: n,
                    fd_use: n * 1_000_000 / soft,
                    unhashed: g("UNHASHED") + g("BOUND-INACTIVE"),
                    close_wait: g("CLOSE-WAIT"),
                    established: g("ESTABLISHED"),
                },
            )
        })
        .collect();
    let expected = |key: &dyn Fn(&Truth) -> u64| -> Vec<u32> {
        let mut v = ours.to_vec();
        v.sort_by(|a, b| {
            let (ta, tb) = (&truth[a], &truth[b]);
            (key(tb), tb.sockets)
                .cmp(&(key(ta), ta.sockets))
                .then(a.cmp(b))
        });
        v
    };
    let sorts: Vec<(&str, Vec<u32>)> = vec![
        ("sockets", expected(&|t| t.sockets)),
        ("tcp", expected(&|t| t.tcp)),
        ("fds", expected(&|t| t.fds)),
        ("fd-use", expected(&|t| t.fd_use)),
        ("unhashed", expected(&|t| t.unhashed)),
        ("close-wait", expected(&|t| t.close_wait)),
        ("established", expected(&|t| t.established)),
        ("pid", {
            let mut v = ours.to_vec();
            v.sort();
            v
        }),
    ];
    // The profiles really differ per key (else the test would prove little).
    let distinct: BTreeSet<&Vec<u32>> = sorts.iter().map(|(_, v)| v).collect();
    assert!(distinct.len() >= 6, "profiles too alike: {sorts:?}");

    for (key, want) in &sorts {
        // The default order is by socket fds.
        let run = if *key == "sockets" {
            sockmedic(&["procs", "--json", "--all", "--netns", &ns.name])
        } else {
            sockmedic(&[
                "procs", "--json", "--all", "--netns", &ns.name, "--sort", key,
            ])
        };
        let listed = process_pids(run.report());
        let got: Vec<u32> = listed
            .iter()
            .copied()
            .filter(|p| ours.contains(p))
            .collect();
        assert_eq!(
            &got,
            want,
            "--sort {key}: the holders' order\n{}",
            run.describe()
        );
        assert!(
            !listed.contains(&quiet.pid),
            "a process with no socket and low fd use"
        );
        // Everyone listed (other processes may visit the namespace) is in order.
        let procs = run.report()["processes"].as_array().unwrap().clone();
        let k = |p: &Value| -> (u64, u64) {
            let s = |name: &str| p["states"][name].as_u64().unwrap_or(0);
            let first = match *key {
                "sockets" => p["socket_fds"].as_u64().unwrap_or(0),
                "tcp" => p["states"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(n, _)| !matches!(n.as_str(), "SYN-RECV" | "TIME-WAIT"))
                    .map(|(_, v)| v.as_u64().unwrap())
                    .sum(),
                "fds" => p["fds"].as_u64().unwrap_or(0),
                "fd-use" => match (p["fds"].as_u64(), p["fd_limit"].as_u64()) {
                    (Some(f), Some(l)) if l > 0 && l != u64::MAX => f * 1_000_000 / l,
                    _ => 0,
                },
                "unhashed" => p["unhashed"].as_u64().unwrap_or(0),
                "close-wait" => s("CLOSE-WAIT"),
                "established" => s("ESTABLISHED"),
                _ => 0,
            };
            (first, p["socket_fds"].as_u64().unwrap_or(0))
        };
        for w in procs.windows(2) {
            let ordered = if *key == "pid" {
                w[0]["pid"].as_u64() < w[1]["pid"].as_u64()
            } else {
                k(&w[0]) > k(&w[1])
                    || (k(&w[0]) == k(&w[1]) && w[0]["pid"].as_u64() < w[1]["pid"].as_u64())
            };
            assert!(ordered, "--sort {key}: out of order:\n{}\n{}", w[0], w[1]);
        }
    }

    // --top N cuts after the N first; nothing else in the namespace has ESTABLISHED.
    let run = sockmedic(&[
        "procs",
        "--json",
        "--netns",
        &ns.name,
        "--sort",
        "established",
        "--top",
        "2",
    ]);
    let want_est: Vec<u32> = sorts[6].1[..2].to_vec();
    assert_eq!(
        process_pids(run.report()),
        want_est,
        "--top 2\n{}",
        run.describe()
    );
    // Without --all, --top's default (10) applies; with --pid, the rows asked for.
    let list = ours.map(|p| p.to_string()).join(",");
    let run = sockmedic(&[
        "procs", "--json", "--pid", &list, "--sort", "fds", "--top", "2",
    ]);
    assert_eq!(
        process_pids(run.report()),
        sorts[2].1[..2].to_vec(),
        "--pid .. --sort fds --top 2\n{}",
        run.describe()
    );
    let two = format!("{},{}", p4.pid, p2.pid);
    let run = sockmedic(&["procs", "--json", "--pid", &two, "--sort", "pid"]);
    let mut want = vec![p2.pid, p4.pid];
    want.sort();
    assert_eq!(
        process_pids(run.report()),
        want,
        "--pid two\n{}",
        run.describe()
    );
    // --pid given twice (clap: repeat or commas) adds up.
    let (x, y) = (p1.pid.to_string(), p3.pid.to_string());
    let run = sockmedic(&["procs", "--json", "--pid", &x, "--pid", &y, "--sort", "pid"]);
    let mut want = vec![p1.pid, p3.pid];
    want.sort();
    assert_eq!(
        process_pids(run.report()),
        want,
        "--pid repeated\n{}",
        run.describe()
    );
    // A pid with nothing to report: an empty list, not an error.
    let q = quiet.pid.to_string();
    let run = sockmedic(&["procs", "--json", "--pid", &q]);
    assert_eq!(
        process_pids(run.report()),
        Vec::<u32>::new(),
        "{}",
        run.describe()
    );

    // stat --json carries the same processes (all of them); --no-procs none.
    let (_, runs) = stable_by(
        || ns.ss_tanp(),
        || {
            (
                sockmedic(&["procs", "--json", "--all", "--netns", &ns.name]),
                sockmedic(&["stat", "--json", "--netns", &ns.name]),
            )
        },
    );
    let (procs, stat) = (runs.0.report(), runs.1.report());
    for pid in ours {
        let a = process_entry(procs, pid);
        let b = process_entry(stat, pid);
        for field in [
            "comm",
            "netns",
            "fds",
            "fd_limit",
            "fd_limit_hard",
            "socket_fds",
            "sockets_by_proto",
            "states",
            "unhashed",
            "bound_ports",
            "listeners",
        ] {
            assert_eq!(
                a[field], b[field],
                "pid {pid}: {field} in procs and in stat"
            );
        }
    }
    let run = sockmedic(&["stat", "--json", "--no-procs", "--netns", &ns.name]);
    assert_eq!(
        run.report()["processes"],
        serde_json::json!([]),
        "stat --no-procs\n{}",
        run.describe()
    );
}

/// A storm of processes that open sockets and exit while sockmedic scans: every run
/// ends well (exit 0, one valid report, no panic) and does not call the vanished
/// processes missing.
#[test]
fn processes_exiting_during_the_scan() {
    let mut ns = TestNetns::new("procs-storm");
    let dir = std::env::temp_dir().join(unique_name("sm-storm"));
    std::fs::create_dir_all(&dir).unwrap();
    struct RmDir(PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = RmDir(dir.clone());
    let bin = dir.join("storm");
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&bin)
            .arg(support_dir().join("storm.c")),
    );
    let mut cmd = ns.cmd(&[bin.to_str().unwrap(), "3"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let child = ns.spawn(&mut cmd);
    let storm_pid = child.id();
    let mut storm_in = child.stdin.take().unwrap();
    let mut storm_out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut storm_out, &mut line).unwrap();
    assert!(line.starts_with("ready"), "storm: {line:?}");
    let mut created = || -> u64 {
        use std::io::Write;
        writeln!(storm_in, "count").unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut storm_out, &mut line).unwrap();
        line.trim()
            .parse()
            .unwrap_or_else(|_| panic!("storm count: {line:?}"))
    };
    let before = created();
    let runs: [&[&str]; 6] = [
        &["procs", "--json", "--all", "--netns", &ns.name],
        &["procs", "--json", "--all"],
        &["stat", "--json", "--netns", &ns.name],
        &["stat", "--json"],
        &[
            "procs",
            "--json",
            "--all",
            "--netns",
            &ns.name,
            "--sort",
            "fds",
            "--cmdline",
        ],
        &["procs", "--json", "--all", "--sort", "fd-use"],
    ];
    let mut storm_seen = 0;
    let mut vanished = Vec::new();
    for args in runs {
        let run = sockmedic(args);
        let report = run.report();
        // A process (and the namespace it alone held) that exited meanwhile is
        // gone, not missing.
        for m in report["missing"].as_array().unwrap() {
            let text = format!("{} {}", m["what"], m["why"]).to_lowercase();
            if [
                "no such file",
                "no such process",
                "os error 2)",
                "os error 3)",
            ]
            .iter()
            .any(|w| text.contains(w))
            {
                vanished.push(format!("sockmedic {}: {m}", args.join(" ")));
            }
        }
        for p in report["processes"].as_array().unwrap() {
            assert!(
                p["pid"].as_u64().unwrap() > 0 && p["comm"].is_string(),
                "{p}"
            );
        }
        // The storm's parent holds the listener: it is in every run.
        if process_pids(report).contains(&storm_pid) {
            storm_seen += 1;
        }
    }
    let spawned = created() - before;
    assert!(
        spawned > 100,
        "the storm ran while sockmedic scanned ({spawned} processes created)"
    );
    assert!(
        vanished.is_empty(),
        "things that vanished during the runs are reported missing:\n  {}",
        vanished.join("\n  ")
    );
    assert_eq!(
        storm_seen,
        runs.len(),
        "the storm's parent (it holds the listener, pid {storm_pid}) is in every run"
    );
}

/// As nobody, `procs` reports nobody's own process with its sockets counted, and lists
/// what it could not read (root's processes) under `missing`.
#[test]
fn non_root_reports_its_own_processes() {
    let nb = NobodyBinary::new("procs");
    let mut ns = TestNetns::new("procs-nonroot");
    // root's holder: its fds are not nobody's to read.
    let root_h = ns.start_holder(&[
        "--listen",
        "127.0.0.1:9001",
        "--connect",
        "self:k:3",
        "--never",
        "2",
    ]);
    // nobody's: ESTABLISHED and CLOSE-WAIT to root's listener, reset, never used,
    // bound, UDP and UNIX.
    let mine = ns.start_holder_full(
        &AS_NOBODY,
        &[
            "--listen",
            "127.0.0.1:9002",
            "--connect",
            "self:k:2",
            "--connect",
            "127.0.0.1:9001:k:2",
            "--connect",
            "127.0.0.1:9001:c:2",
            "--connect",
            "127.0.0.1:9001:r:1",
            "--never",
            "2",
            "--bound-ephemeral",
            "1",
            "--udp",
            "1",
            "--unix",
            "1",
        ],
        None,
    );
    assert_ne!(mine.ready.uid, 0, "the holder runs as nobody");
    let nobody_uid = mine.ready.uid;

    let mut args: Vec<String> = vec!["ip".into(), "netns".into(), "exec".into(), ns.name.clone()];
    args.extend(AS_NOBODY.iter().map(|s| s.to_string()));
    args.extend(
        [
            nb.bin().as_str(),
            "procs",
            "--json",
            "--all",
            "--netns",
            "self",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let (ss, run) = stable_by(
        || ns.ss_tanp(),
        || {
            let output = Command::new(&args[0])
                .args(&args[1..])
                .current_dir("/")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            Run {
                args: args.clone(),
                json: serde_json::from_slice(&output.stdout).ok(),
                output,
            }
        },
    );
    let report = run.report();
    assert_eq!(report["source"]["privileged"], false, "{}", run.describe());
    let n = only_netns(report);
    assert_eq!(n["id"].as_u64(), Some(ns.inode()), "{}", run.describe());

    // nobody's holder, counted in full.
    let bound = bound_inactive_inodes(&ns);
    let truth = fd_truth(&[mine.pid]);
    let books = mine.ready.clone();
    assert_eq!(books.uid, nobody_uid);
    let p = process_entry(report, mine.pid);
    let diag = format!(
        "{}\n{}",
        serde_json::to_string_pretty(p).unwrap(),
        run.describe()
    );
    assert_eq!(p["uid"].as_u64(), Some(nobody_uid as u64), "{diag}");
    let want = truth_states(mine.pid, &ss, &bound, &truth[&mine.pid], &books);
    assert_eq!(want, nonzero(&books.states), "the fixture\n{}", ss.text());
    assert_eq!(counts(&p["states"]), want, "nobody's own states\n{diag}");
    assert_eq!(p["unhashed"].as_u64(), Some(books.unhashed), "{diag}");
    assert_eq!(p["socket_fds"].as_u64(), Some(books.socket_fds), "{diag}");
    assert_eq!(counts(&p["sockets_by_proto"]), books.by_proto, "{diag}");
    assert_eq!(p["fds"].as_u64(), Some(proc_fd_count(mine.pid)), "{diag}");
    let (soft, hard) = proc_nofile(mine.pid);
    assert_eq!(p["fd_limit"].as_u64(), Some(soft), "{diag}");
    assert_eq!(p["fd_limit_hard"].as_u64(), Some(hard), "{diag}");
    // Its own CLOSE sockets can be checked (same uid, ptrace allowed) or say why not.
    let check = &p["unhashed_check"];
    assert!(
        !check.is_null(),
        "UNHASHED sockets held: a check or why not\n{diag}"
    );
    if check["unavailable"].is_null() {
        assert_eq!(check["checked"], check["close"], "{diag}");
        assert_eq!(
            check["checked"].as_u64(),
            Some(books.state("UNHASHED")),
            "{diag}"
        );
    }

    // root's holder: its fds could not be read; it is not counted as holding none.
    if let Some(r) = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(root_h.pid as u64))
    {
        assert!(
            r["socket_fds"].is_null() && r["fds"].is_null(),
            "root's process: unknown, not zero\n{r}"
        );
    }
    let missing = report["missing"].as_array().unwrap();
    let fds_missing = missing.iter().any(|m| {
        m["what"].as_str().unwrap_or("").contains("fds")
            && m["why"]
                .as_str()
                .unwrap_or("")
                .contains("permission denied")
    });
    assert!(
        fds_missing,
        "missing lists the fds it could not read\n{}",
        run.describe()
    );
}

/// A process can hold sockets of a namespace it is not in: made by a thread that
/// entered it and came back (CNI plugins, proxies, `ip netns exec`-style tools do).
/// They live in that namespace's tables: counted in their states when it is dumped,
/// and never taken for sockets in no table (UNHASHED) when it is not.
#[test]
fn sockets_of_another_namespace_are_not_unhashed() {
    let mut home = TestNetns::new("procs-home");
    let mut away = TestNetns::new("procs-away");
    let _server = away.start_holder(&["--listen", "127.0.0.1:8001"]);
    let away_path = away.path().display().to_string();
    let x = home.start_holder(&[
        "--setns",
        &away_path,
        "--connect",
        "127.0.0.1:8001:k:3",
        "--connect",
        "127.0.0.1:8001:c:2",
        "--never",
        "1",
    ]);
    assert_eq!(x.ready.netns_inode, home.inode(), "the holder is back home");
    let xpid = x.pid.to_string();

    // Every namespace dumped: its sockets in `away` are found there.
    let (ss, run) = stable_by(
        || away.ss_tanp(),
        || sockmedic(&["procs", "--json", "--pid", &xpid]),
    );
    let p = process_entry(run.report(), x.pid);
    let diag = format!(
        "{}\n--- ss -tanp in {}\n{}",
        serde_json::to_string_pretty(p).unwrap(),
        away.name,
        ss.text()
    );
    assert_eq!(p["netns"].as_u64(), Some(home.inode()), "{diag}");
    assert_eq!(p["thread_netns"], serde_json::json!([]), "{diag}");
    let mut want = ss.states_of(x.pid);
    assert_eq!(
        want,
        [
            ("CLOSE-WAIT".to_string(), 2),
            ("ESTABLISHED".to_string(), 3)
        ]
        .into_iter()
        .collect(),
        "the fixture\n{diag}"
    );
    want.insert("UNHASHED".into(), 1);
    assert_eq!(counts(&p["states"]), want, "host-wide run\n{diag}");
    assert_eq!(p["unhashed"].as_u64(), Some(1), "{diag}");

    // Only `home` dumped: the sockets living in `away` are not in its tables, but
    // they are not in no table either: they must not be counted UNHASHED (a
    // CLOSE-socket leak that does not exist).
    let run = sockmedic(&["procs", "--json", "--netns", &home.name, "--pid", &xpid]);
    let p = process_entry(run.report(), x.pid);
    let diag = serde_json::to_string_pretty(p).unwrap();
    let unhashed = p["states"]["UNHASHED"].as_u64().unwrap_or(0);
    assert!(
        unhashed <= 1,
        "--netns {}: {unhashed} sockets called UNHASHED, but 3 ESTABLISHED and 2 CLOSE-WAIT of them are in {}'s tables (only the never-used one is in none)\n{diag}",
        home.name,
        away.name
    );
    // Every TCP socket no dump returned is asked for TCP_INFO: the CLOSE one is
    // UNHASHED, the others are counted under their real state, as living elsewhere.
    let check = &p["unhashed_check"];
    assert!(
        check["unavailable"].is_null(),
        "pidfd_getfd works as root\n{diag}"
    );
    assert_eq!(check["checked"].as_u64(), Some(6), "{diag}");
    assert_eq!(check["close"].as_u64(), Some(1), "{diag}");
    assert_eq!(check["in_other_netns"].as_u64(), Some(5), "{diag}");
    assert_eq!(
        counts(&p["states"]),
        want,
        "--netns {}: states\n{diag}",
        home.name
    );
}
