//! `sockmedic stat --json`: every state but ESTABLISHED is dumped and must equal `ss`;
//! ESTABLISHED is never asked of the kernel but derived as snmp CurrEstab minus the
//! dumped CLOSE-WAIT count, and must still equal `ss`'s ESTAB count.

mod common;

use common::*;

#[test]
fn stat_counts_match_ss_and_established_is_derived() {
    let mut ns = TestNetns::new("stat-derived");
    let sm = ns.start_state_maker();
    let (ss, (run, estab_before, estab_after)) = stable(
        || ns.ss_tan(),
        || {
            let before = ns.curr_estab();
            let run = sockmedic(&["stat", "--json", "--netns", &ns.name]);
            (run, before, ns.curr_estab())
        },
    );
    let report = run.report();
    let n = only_netns(report);
    assert_eq!(n["id"].as_u64(), Some(ns.inode()));
    let all = ss.merged(&ns.bound_inactive());
    let states = states_of(n);

    let mut required = DUMPABLE.to_vec();
    required.push("BOUND-INACTIVE");
    assert_no_diffs(
        "stat states",
        &state_diffs(&states, &all.states(), &required, &[]),
        &all,
        n,
    );

    // The identity.
    assert_eq!(n["established_derived"], true, "stat derives ESTABLISHED");
    let curr = n["counters"]["Tcp"]["CurrEstab"]
        .as_i64()
        .expect("counters.Tcp.CurrEstab");
    assert_eq!(
        estab_before, estab_after,
        "CurrEstab moved while sockmedic ran"
    );
    assert_eq!(
        curr, estab_after,
        "counters.Tcp.CurrEstab vs /proc/net/snmp in the namespace"
    );
    let est = states["ESTABLISHED"] as i64;
    let cw = states["CLOSE-WAIT"] as i64;
    assert_eq!(
        est,
        curr - cw,
        "ESTABLISHED == CurrEstab - CLOSE-WAIT ({curr} - {cw})"
    );
    assert_eq!(
        est as u64,
        ss.count("ESTABLISHED"),
        "ESTABLISHED vs ss ESTAB"
    );
    assert_eq!(est as u64, sm.expect["ESTABLISHED"]);
    assert!(
        cw > 0,
        "the identity is tested with CLOSE-WAIT sockets present"
    );

    // ESTABLISHED was not asked of the kernel.
    let dump = &n["dump"];
    let asked: Vec<&str> = dump["states"]
        .as_array()
        .unwrap_or_else(|| panic!("netns.dump.states: {dump}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        !asked.contains(&"ESTABLISHED"),
        "stat asked the kernel for ESTABLISHED: {asked:?}"
    );
    for s in DUMPABLE.iter().filter(|s| **s != "ESTABLISHED") {
        assert!(asked.contains(s), "stat did not ask for {s}: {asked:?}");
    }
    let dumped = dump["sockets"].as_u64().expect("dump.sockets");
    let non_est = all.rows.len() as u64 - ss.count("ESTABLISHED");
    assert_eq!(
        dumped, non_est,
        "dump.sockets: every socket but the ESTABLISHED ones"
    );
    if !n["ephemeral"].is_null() {
        assert_eq!(n["ephemeral"]["includes_established"], false);
    }

    // The top tables have no ESTABLISHED rows, and the rows they have are right.
    for (table, agg) in [
        ("top_local", all.by_local()),
        ("top_remote", all.by_remote()),
    ] {
        let rows = top_rows(n, table);
        assert!(
            rows.iter().all(|r| r.state != "ESTABLISHED"),
            "{table} has ESTABLISHED rows in stat"
        );
        assert_no_diffs(table, &top_diffs(&rows, &agg, &|_| false), &all, n);
    }
}
