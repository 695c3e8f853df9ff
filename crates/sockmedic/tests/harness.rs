//! Tests of the test harness itself: the namespace guard cleans up, and the state
//! maker puts what it says into the kernel's tables, as `ss` sees them.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};

#[test]
fn state_maker_reaches_every_state() {
    let mut ns = TestNetns::new("harness-states");
    let sm = ns.start_state_maker();

    // Distinct counts per state, so that a mix-up of two states shows.
    let nonzero: Vec<u64> = sm.expect.values().copied().filter(|n| *n > 0).collect();
    let distinct: BTreeSet<u64> = nonzero.iter().copied().collect();
    assert_eq!(
        nonzero.len(),
        distinct.len(),
        "state counts not distinct: {:?}",
        sm.expect
    );

    let ss = ns.ss_tan();
    let mut want = sm.expect.clone();
    want.remove("BOUND-INACTIVE");
    want.retain(|_, n| *n > 0);
    assert_eq!(ss.states(), want, "ss -tan in the namespace\n{}", ss.text());

    // Both families are there, in every state.
    for state in want.keys() {
        let v4 = ss
            .rows
            .iter()
            .any(|r| &r.state == state && r.local.is_ipv4());
        let v6 = ss
            .rows
            .iter()
            .any(|r| &r.state == state && r.local.is_ipv6());
        assert!(v4 && v6, "{state}: IPv4 {v4}, IPv6 {v6}\n{}", ss.text());
    }

    // Bound-inactive: from ss where it can, else a raw sock_diag dump.
    let bi = ns.bound_inactive();
    assert_eq!(
        bi.rows.len() as u64,
        sm.expect["BOUND-INACTIVE"],
        "bound-inactive\n{}",
        bi.text()
    );
    let mut bound: Vec<_> = bi.rows.iter().map(|r| r.local).collect();
    bound.sort();
    let mut made: Vec<_> = sm.info["bound_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| parse_endpoint(e.as_str().unwrap()))
        .collect();
    made.sort();
    assert_eq!(bound, made, "bound-inactive endpoints");

    // Listeners: Recv-Q is the accept queue, Send-Q the backlog; SYN-RECV per listener.
    let listen = ns.ss_listen();
    let syn_recv = ss.syn_recv_per_listener();
    let mut got: Vec<ExpectedListener> = listen
        .rows
        .iter()
        .map(|r| ExpectedListener {
            local: r.local,
            backlog: r.send_q,
            accept_queue: r.recv_q,
            syn_recv: syn_recv[&r.local],
        })
        .collect();
    got.sort();
    let mut expected = sm.listeners.clone();
    expected.sort();
    assert_eq!(got, expected, "listeners\n{}", listen.text());
    assert!(
        expected.iter().filter(|l| l.syn_recv > 0).count() >= 5,
        "SYN-RECV on specific, dual-stack and per-family wildcard listeners"
    );
    assert!(
        expected.iter().any(|l| l.accept_queue > l.backlog),
        "a listener has a full accept queue"
    );

    // The concentrations the tests of sockmedic look for.
    let by_local = ss.by_local();
    assert_eq!(
        by_local[&("LAST-ACK".to_string(), lo4(sm.port("v4", "last_ack")))],
        8
    );
    assert_eq!(
        by_local[&("FIN-WAIT-1".to_string(), lo6(sm.port("v6", "fin_wait1")))],
        4
    );
    assert_eq!(
        by_local[&("CLOSE-WAIT".to_string(), lo4(sm.port("v4", "fin_wait2")))],
        6
    );
    let by_server = ss.by_server();
    assert_eq!(
        by_server[&("SYN-SENT".to_string(), lo4(sm.port("v4", "syn_sent")))],
        2
    );
    assert_eq!(
        by_server[&("TIME-WAIT".to_string(), lo6(sm.port("v6", "last_ack")))],
        7
    );

    // Orphans: FIN-WAIT-1 and LAST-ACK full sockets without an inode.
    let orphans = ns
        .sockdiag(&[4, 5, 9, 11])
        .iter()
        .filter(|d| d.is_orphan())
        .count() as u64;
    assert_eq!(orphans, sm.orphans, "orphans in a raw dump");

    // v4-mapped IPv6 connections on the dual-stack listener.
    let mapped = ss
        .rows
        .iter()
        .filter(|r| r.local.to_string().starts_with("[::ffff:"))
        .count();
    assert_eq!(
        mapped,
        4,
        "2 ESTABLISHED + 2 SYN-RECV v4-mapped sockets\n{}",
        ss.text()
    );

    // CurrEstab counts ESTABLISHED and CLOSE-WAIT.
    assert_eq!(
        ns.curr_estab(),
        (sm.expect["ESTABLISHED"] + sm.expect["CLOSE-WAIT"]) as i64,
        "snmp CurrEstab"
    );
}

#[test]
fn netns_guard_cleans_up_after_itself() {
    let name;
    let pid;
    {
        let mut ns = TestNetns::new("harness-guard");
        name = ns.name.clone();
        assert!(ip_netns_list().contains(&name));
        let mut cmd = ns.cmd(&["sleep", "600"]);
        cmd.stdin(Stdio::null());
        pid = ns.spawn(&mut cmd).id();
        // A process the test did not register: started in the background by a shell.
        ns.exec_ok(&["sh", "-c", "sleep 600 >/dev/null 2>&1 </dev/null &"]);
        assert_eq!(
            Command::new("ip")
                .args(["netns", "pids", &name])
                .output()
                .unwrap()
                .stdout
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count(),
            2
        );
    }
    assert!(!ip_netns_list().contains(&name), "{name} left behind");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} left behind"
    );

    // An unnamed namespace goes with its processes.
    let holder;
    let inode;
    {
        let mut ns = TestNetns::unnamed();
        holder = ns.holder_pid().unwrap();
        inode = ns.inode();
        let own = std::fs::metadata("/proc/self/ns/net").unwrap();
        assert_ne!(inode, std::os::unix::fs::MetadataExt::ino(&own));
        let mut cmd = ns.cmd(&["sleep", "600"]);
        cmd.stdin(Stdio::null());
        ns.spawn(&mut cmd);
        ns.exec_ok(&["sh", "-c", "sleep 600 >/dev/null 2>&1 </dev/null &"]);
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{holder}")).exists(),
        "holder {holder} left behind"
    );
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::metadata(e.path().join("ns/net"))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .ok()
                == Some(inode)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "processes left in the unnamed namespace: {left:?}"
    );

    // Also when the test panics.
    let result = std::panic::catch_unwind(|| {
        let ns = TestNetns::new("harness-panic");
        let n = ns.name.clone();
        panic!("{n}");
    });
    let msg = result.unwrap_err();
    let n = msg.downcast_ref::<String>().unwrap();
    assert!(
        !ip_netns_list().contains(n),
        "{n} left behind after a panic"
    );
}
