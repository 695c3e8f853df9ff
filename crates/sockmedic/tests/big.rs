//! A namespace with more than 50 000 sockets, which sockmedic dumps in parallel parts
//! split by local port: the figures must still equal `ss`, including the sockets on
//! either side of the seam between the parts (ports 32767 and 32768).

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

type ListenerRow = (SocketAddr, u64, u64, u64);

/// (local, accept queue, backlog, SYN-RECV) per listener, as ss shows them.
fn ss_listeners(ss: &SsTable) -> Vec<ListenerRow> {
    let syn_recv = ss.syn_recv_per_listener();
    let mut v: Vec<ListenerRow> = ss
        .rows
        .iter()
        .filter(|r| r.state == "LISTEN")
        .map(|r| (r.local, r.recv_q, r.send_q, syn_recv[&r.local]))
        .collect();
    v.sort();
    v
}

/// The same, from a report namespace.
fn listeners_of(n: &Value) -> Vec<ListenerRow> {
    let mut v: Vec<ListenerRow> = n["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                parse_endpoint(l["local"].as_str().unwrap()),
                l["accept_queue"].as_u64().unwrap(),
                l["backlog"].as_u64().unwrap(),
                l["syn_recv"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn assert_parallel(n: &Value) {
    let parallel = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1);
    if parallel > 1 {
        assert!(
            n["dump"]["parts"].as_u64().unwrap_or(0) >= 2,
            "this test is meant to cover the parallel dump (if its threshold moved, make more sockets): {}",
            n["dump"]
        );
    }
}

const PAIRS: &str = "26000";
const TOP: usize = 20;

#[test]
fn big_namespace_is_dumped_in_parts_and_matches_ss() {
    let mut ns = TestNetns::new("big");
    // Ephemeral ports in both halves of the port space, above the fixed ports of the
    // state maker and bulk.py (7000-7999: the state maker's drop rules match them).
    // bulk.py binds the seam before anything takes an ephemeral port.
    ns.set_sysctl("net.ipv4.ip_local_port_range", "10000 65000");
    let (_, bulk) = ns.start_support(
        "bulk.py",
        &["--pairs", PAIRS, "--holders", "4", "--boundary"],
    );
    let sm = ns.start_state_maker();

    let top = TOP.to_string();
    let (ss, run) = stable(
        || ns.ss_tan(),
        || sockmedic(&["sockets", "--json", "--netns", &ns.name, "--top", &top]),
    );
    let report = run.report();
    let n = only_netns(report);
    assert_parallel(n);

    let bi = ns.bound_inactive();
    let all = ss.merged(&bi);
    let mut required = DUMPABLE.to_vec();
    required.push("BOUND-INACTIVE");
    let states = states_of(n);
    assert_no_diffs(
        "states",
        &state_diffs(&states, &all.states(), &required, &[]),
        &all,
        n,
    );
    let pairs: u64 = PAIRS.parse().unwrap();
    assert_eq!(states["ESTABLISHED"], sm.expect["ESTABLISHED"] + 2 * pairs);

    // Listeners, including the ones on the seam.
    let got = listeners_of(n);
    assert_eq!(got, ss_listeners(&ss), "listeners");
    for l in bulk["listeners"].as_array().unwrap() {
        let ep = parse_endpoint(l.as_str().unwrap());
        assert!(got.iter().any(|g| g.0 == ep), "listener {ep}");
    }
    for b in bulk["bound"].as_array().unwrap() {
        let ep = parse_endpoint(b.as_str().unwrap());
        let row = top_rows(n, "top_local")
            .into_iter()
            .find(|r| r.state == "BOUND-INACTIVE" && r.endpoint == ep);
        assert!(
            row.is_some_and(|r| r.count == 1),
            "bound-inactive {ep} on the seam"
        );
    }

    // Top tables, cut at TOP rows per state, with bounded counts where more distinct
    // endpoints went by than a table keeps.
    let local = top_rows(n, "top_local");
    assert_no_diffs(
        "top_local",
        &top_n_diffs(&local, &all.by_local(), TOP),
        &all,
        n,
    );
    let remote = top_rows(n, "top_remote");
    assert_no_diffs(
        "top_remote",
        &top_n_diffs(&remote, &all.by_server(), TOP),
        &all,
        n,
    );
    // The busiest endpoints are listed (their counts are checked above, within the
    // bounds the table gives).
    for port in 7400..7404u16 {
        let ep = lo4(port);
        for (table, rows) in [("top_local", &local), ("top_remote", &remote)] {
            let r = rows
                .iter()
                .find(|r| r.state == "ESTABLISHED" && r.endpoint == ep);
            assert!(r.is_some(), "{table}: {ep} with 6500 ESTABLISHED is listed");
        }
    }

    // Ephemeral ports, counted in bitsets across the parts.
    let e = &n["ephemeral"];
    assert_eq!(e["range"], serde_json::json!([10000, 65000]));
    let in_range = |p: u16| (10000..=65000).contains(&p);
    let used = ss.filter(|r| r.state != "LISTEN" && in_range(r.local.port()));
    let ports: BTreeSet<u16> = used.rows.iter().map(|r| r.local.port()).collect();
    let bound: BTreeSet<u16> = bi
        .rows
        .iter()
        .map(|r| r.local.port())
        .filter(|p| in_range(*p))
        .collect();
    assert_eq!(
        e["sockets"].as_u64(),
        Some(used.rows.len() as u64),
        "ephemeral.sockets"
    );
    assert_eq!(
        e["ports_in_use"].as_u64(),
        Some(ports.len() as u64),
        "ephemeral.ports_in_use"
    );
    assert_eq!(
        e["bound_inactive_ports"].as_u64(),
        Some(bound.len() as u64),
        "ephemeral.bound_inactive_ports"
    );
    let mut by_server: BTreeMap<(String, SocketAddr), u64> = BTreeMap::new();
    for r in &used.rows {
        *by_server
            .entry((String::new(), r.remote.unwrap()))
            .or_insert(0) += 1;
    }
    let eph_rows: Vec<TopRow> = e["top_remote"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| TopRow {
            state: String::new(),
            endpoint: parse_endpoint(r["endpoint"].as_str().unwrap()),
            count: r["count"].as_u64().unwrap(),
            error: r["error"].as_u64().unwrap(),
        })
        .collect();
    assert_no_diffs(
        "ephemeral.top_remote",
        &top_n_diffs(&eph_rows, &by_server, TOP),
        &used,
        n,
    );

    // stat: ESTABLISHED derived from CurrEstab, at this size too.
    let (ss, run) = stable(
        || ns.ss_tan(),
        || sockmedic(&["stat", "--json", "--netns", &ns.name]),
    );
    let n = only_netns(run.report());
    let states = states_of(n);
    let curr = n["counters"]["Tcp"]["CurrEstab"].as_i64().unwrap();
    assert_eq!(
        states["ESTABLISHED"] as i64,
        curr - states["CLOSE-WAIT"] as i64
    );
    assert_eq!(states["ESTABLISHED"], ss.count("ESTABLISHED"));
    let all = ss.merged(&bi);
    assert_no_diffs(
        "stat states",
        &state_diffs(&states, &all.states(), &required, &[]),
        &all,
        n,
    );
}

#[test]
fn many_listeners_stat_dumps_in_parts_and_matches_ss() {
    let mut ns = TestNetns::new("big-listen");
    // 52 000 listeners (26 000 ports on 127.0.0.1 and ::1) across the seam at 32768:
    // not in CurrEstab, so `stat` dumps every one of them.
    let (_, bulk) = ns.start_support(
        "bulk.py",
        &[
            "--pairs",
            "0",
            "--holders",
            "4",
            "--listen-ports",
            "26000",
            "--listen-base",
            "20000",
        ],
    );
    let backlog = bulk["listen_backlog"].as_u64().unwrap();
    let sm = ns.start_state_maker();
    let bi = ns.bound_inactive();
    let mut required = DUMPABLE.to_vec();
    required.push("BOUND-INACTIVE");

    // `stat --no-procs` is the fast path (ESTABLISHED derived, not dumped); whether
    // plain `stat` derives it too is tested in stat.rs.
    for (command, derived) in [("stat", true), ("sockets", false)] {
        let top = TOP.to_string();
        let mut args = vec![
            command,
            "--json",
            "--netns",
            ns.name.as_str(),
            "--top",
            &top,
        ];
        if derived {
            args.push("--no-procs");
        }
        let (ss, run) = stable(|| ns.ss_tan(), || sockmedic(&args));
        let n = only_netns(run.report());
        assert_parallel(n);
        let all = ss.merged(&bi);
        let states = states_of(n);
        assert_no_diffs(
            command,
            &state_diffs(&states, &all.states(), &required, &[]),
            &all,
            n,
        );
        assert_eq!(states["LISTEN"], sm.expect["LISTEN"] + 52_000 + 4);
        let curr = n["counters"]["Tcp"]["CurrEstab"].as_i64().unwrap();
        assert_eq!(
            states["ESTABLISHED"] as i64,
            curr - states["CLOSE-WAIT"] as i64
        );
        assert_eq!(n["established_derived"], derived, "{command}");

        let got = listeners_of(n);
        let want = ss_listeners(&ss);
        assert_eq!(got.len(), want.len(), "{command}: listeners");
        let differ: Vec<_> = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| g != w)
            .take(10)
            .collect();
        assert!(
            differ.is_empty(),
            "{command}: listeners differ (sockmedic, ss): {differ:?}"
        );
        assert_eq!(got.iter().filter(|l| l.2 == backlog).count(), 52_000);

        let mut local = all.by_local();
        let mut remote = all.by_server();
        if derived {
            local.retain(|(s, _), _| s != "ESTABLISHED");
            remote.retain(|(s, _), _| s != "ESTABLISHED");
        }
        let rows = top_rows(n, "top_local");
        assert_no_diffs(command, &top_n_diffs(&rows, &local, TOP), &all, n);
        let rows = top_rows(n, "top_remote");
        assert_no_diffs(command, &top_n_diffs(&rows, &remote, TOP), &all, n);
    }
}
