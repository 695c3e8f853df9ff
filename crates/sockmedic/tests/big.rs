//! A namespace with more than 50 000 sockets, which sockmedic dumps in parallel parts
//! split by local port: the figures must still equal `ss`, including the sockets on
//! either side of the seam between the parts (ports 32767 and 32768).

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

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
    let parallel = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1);
    if parallel > 1 {
        assert!(
            n["dump"]["parts"].as_u64().unwrap_or(0) >= 2,
            "this test is meant to cover the parallel dump (if its threshold moved, raise PAIRS): {}",
            n["dump"]
        );
    }

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
    let syn_recv = ss.syn_recv_per_listener();
    let mut want: Vec<(SocketAddr, u64, u64, u64)> = ss
        .rows
        .iter()
        .filter(|r| r.state == "LISTEN")
        .map(|r| (r.local, r.recv_q, r.send_q, syn_recv[&r.local]))
        .collect();
    want.sort();
    let mut got: Vec<(SocketAddr, u64, u64, u64)> = n["listeners"]
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
    got.sort();
    assert_eq!(got, want, "listeners");
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
        &top_n_diffs(&remote, &all.by_remote(), TOP),
        &all,
        n,
    );
    for port in 7400..7404u16 {
        let ep = lo4(port);
        for (table, rows) in [("top_local", &local), ("top_remote", &remote)] {
            let r = rows
                .iter()
                .find(|r| r.state == "ESTABLISHED" && r.endpoint == ep);
            assert!(
                r.is_some_and(|r| r.count == 6500 && r.error == 0),
                "{table}: {ep} has 6500 ESTABLISHED: {r:?}"
            );
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
    let mut by_remote: BTreeMap<(String, SocketAddr), u64> = BTreeMap::new();
    for r in &used.rows {
        *by_remote
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
        &top_n_diffs(&eph_rows, &by_remote, TOP),
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
