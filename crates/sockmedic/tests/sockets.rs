//! `sockmedic sockets --json` against the kernel: every figure is compared with what
//! `ss` shows in the same namespace (IPv4 and IPv6), taken just before and just after
//! sockmedic ran.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

fn required_states() -> Vec<&'static str> {
    let mut r = DUMPABLE.to_vec();
    r.push("BOUND-INACTIVE");
    r
}

/// Runs `sockets --json --netns NAME` + `extra`, with ss taken around it.
fn sockets_in(ns: &TestNetns, extra: &[&str]) -> (SsTable, Value) {
    let mut args = vec!["sockets", "--json", "--netns", &ns.name];
    args.extend_from_slice(extra);
    let (ss, run) = stable(|| ns.ss_tan(), || sockmedic(&args));
    let report = run.report().clone();
    (ss, report)
}

#[test]
fn counts_and_top_endpoints_match_ss() {
    let mut ns = TestNetns::new("sockets-match-ss");
    let sm = ns.start_state_maker();
    let (ss, report) = sockets_in(&ns, &["--top", "1000"]);
    let n = only_netns(&report);
    assert_eq!(n["id"].as_u64(), Some(ns.inode()), "netns id");
    assert!(
        n["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == ns.name.as_str()),
        "names: {}",
        n["names"]
    );

    let all = ss.merged(&ns.bound_inactive());
    let states = states_of(n);
    assert_no_diffs(
        "states",
        &state_diffs(&states, &all.states(), &required_states(), &[]),
        &all,
        n,
    );
    // And what the state maker made (so ss and sockmedic cannot agree on nothing).
    for (state, want) in &sm.expect {
        assert_eq!(
            states.get(state).copied().unwrap_or(0),
            *want,
            "{state} made by the state maker"
        );
    }

    let local = top_rows(n, "top_local");
    assert_no_diffs(
        "top_local",
        &top_diffs(&local, &all.by_local(), &|_| true),
        &all,
        n,
    );
    let remote = top_rows(n, "top_remote");
    assert_no_diffs(
        "top_remote",
        &top_diffs(&remote, &all.by_server(), &|_| true),
        &all,
        n,
    );

    // Both families are in the tables.
    for t in [&local, &remote] {
        assert!(t.iter().any(|r| r.endpoint.is_ipv4()) && t.iter().any(|r| r.endpoint.is_ipv6()));
    }
}

#[test]
fn listeners_match_ss() {
    let mut ns = TestNetns::new("sockets-listeners");
    let sm = ns.start_state_maker();
    let (ss, report) = sockets_in(&ns, &[]);
    let listen = ns.ss_listen();
    assert_eq!(
        listen,
        ss.filter(|r| r.state == "LISTEN"),
        "ss -tanl and ss -tan disagree"
    );
    let n = only_netns(&report);

    let syn_recv = ss.syn_recv_per_listener();
    let mut want: Vec<ExpectedListener> = listen
        .rows
        .iter()
        .map(|r| ExpectedListener {
            local: r.local,
            accept_queue: r.recv_q,
            backlog: r.send_q,
            syn_recv: syn_recv[&r.local],
        })
        .collect();
    want.sort();
    let mut expected = sm.listeners.clone();
    expected.sort();
    assert_eq!(
        want, expected,
        "ss and the state maker disagree on listeners"
    );

    let rows = n["listeners"].as_array().expect("listeners array");
    let mut got: Vec<ExpectedListener> = rows
        .iter()
        .map(|l| ExpectedListener {
            local: parse_endpoint(l["local"].as_str().unwrap()),
            accept_queue: l["accept_queue"].as_u64().unwrap(),
            backlog: l["backlog"].as_u64().unwrap(),
            syn_recv: l["syn_recv"].as_u64().unwrap(),
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        want,
        "listeners: sockmedic (left) vs ss -tanl Recv-Q/Send-Q and SYN-RECV per port (right)\n--- ss\n{}--- sockmedic\n{}",
        ss.filter(|r| r.state == "LISTEN" || r.state == "SYN-RECV").text(),
        serde_json::to_string_pretty(&n["listeners"]).unwrap()
    );
    for l in rows {
        assert!(l["inode"].as_u64().unwrap() > 0, "listener inode: {l}");
        assert_eq!(l["uid"].as_u64(), Some(0), "listener uid: {l}");
    }
}

#[test]
fn bound_inactive_sockets_are_counted() {
    let mut ns = TestNetns::new("sockets-bound");
    let sm = ns.start_state_maker();
    let (_, report) = sockets_in(&ns, &["--top", "1000"]);
    let n = only_netns(&report);
    let bi = ns.bound_inactive();
    let want = sm.expect["BOUND-INACTIVE"];
    assert_eq!(
        bi.rows.len() as u64,
        want,
        "the kernel's bound-inactive dump"
    );
    assert_eq!(
        states_of(n).get("BOUND-INACTIVE").copied(),
        Some(want),
        "states.BOUND-INACTIVE"
    );
    let rows: Vec<TopRow> = top_rows(n, "top_local")
        .into_iter()
        .filter(|r| r.state == "BOUND-INACTIVE")
        .collect();
    assert_no_diffs(
        "top_local BOUND-INACTIVE",
        &top_diffs(&rows, &bi.by_local(), &|_| true),
        &bi,
        n,
    );
    let group = lo4(sm.port("v4", "bound_group"));
    assert!(
        rows.iter().any(|r| r.endpoint == group && r.count == 3),
        "3 sockets share {group}"
    );
    assert_eq!(
        n["dump"]["bound_inactive"], true,
        "dump.bound_inactive on 6.8+"
    );
}

#[test]
fn orphans_are_counted() {
    let mut ns = TestNetns::new("sockets-orphans");
    let sm = ns.start_state_maker();
    let (_, report) = sockets_in(&ns, &[]);
    let n = only_netns(&report);
    let dumped = ns
        .sockdiag(&[4, 5, 9, 11])
        .iter()
        .filter(|d| d.is_orphan())
        .count() as u64;
    assert_eq!(dumped, sm.orphans, "orphans in a raw dump");
    assert_eq!(
        n["orphans"].as_u64(),
        Some(sm.orphans),
        "netns.orphans: the FIN-WAIT-1 and LAST-ACK orphans"
    );
}

#[test]
fn ephemeral_ports_match_ss() {
    let mut ns = TestNetns::new("sockets-ephemeral");
    let _sm = ns.start_state_maker();
    let (ss, report) = sockets_in(&ns, &["--top", "1000"]);
    let n = only_netns(&report);
    let range: Vec<u16> = ns
        .sysctl("net.ipv4.ip_local_port_range")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (lo, hi) = (range[0], range[1]);
    let e = &n["ephemeral"];
    assert_eq!(
        e["range"],
        serde_json::json!([lo, hi]),
        "ephemeral.range: {e}"
    );
    assert_eq!(e["includes_established"], true);

    let in_range = |p: u16| (lo..=hi).contains(&p);
    let used = ss.filter(|r| r.state != "LISTEN" && in_range(r.local.port()));
    assert!(
        used.rows.len() > 20,
        "the state maker's clients use ephemeral ports\n{}",
        ss.text()
    );
    let ports: BTreeSet<u16> = used.rows.iter().map(|r| r.local.port()).collect();
    let bound: BTreeSet<u16> = ns
        .bound_inactive()
        .rows
        .iter()
        .map(|r| r.local.port())
        .filter(|p| in_range(*p))
        .collect();
    assert_eq!(bound.len(), 2, "one bind(addr, 0) per family");
    let mut by_server: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for r in &used.rows {
        *by_server
            .entry(r.remote.expect("a connection has a peer"))
            .or_insert(0) += 1;
    }
    let got_remote: BTreeMap<SocketAddr, u64> = e["top_remote"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["error"], 0, "{r}");
            (
                parse_endpoint(r["endpoint"].as_str().unwrap()),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let diag = format!(
        "--- ss (local port in {lo}-{hi})\n{}--- sockmedic\n{}",
        used.text(),
        serde_json::to_string_pretty(e).unwrap()
    );
    assert_eq!(
        e["sockets"].as_u64(),
        Some(used.rows.len() as u64),
        "ephemeral.sockets\n{diag}"
    );
    assert_eq!(
        e["ports_in_use"].as_u64(),
        Some(ports.len() as u64),
        "ephemeral.ports_in_use\n{diag}"
    );
    assert_eq!(
        e["bound_inactive_ports"].as_u64(),
        Some(bound.len() as u64),
        "ephemeral.bound_inactive_ports\n{diag}"
    );
    assert_eq!(got_remote, by_server, "ephemeral.top_remote\n{diag}");
}

#[test]
fn top_n_keeps_the_busiest_per_state() {
    let mut ns = TestNetns::new("sockets-top");
    let _sm = ns.start_state_maker();
    let (ss, report) = sockets_in(&ns, &["--top", "1"]);
    let n = only_netns(&report);
    let all = ss.merged(&ns.bound_inactive());
    for (table, agg) in [
        ("top_local", all.by_local()),
        ("top_remote", all.by_server()),
    ] {
        let rows = top_rows(n, table);
        let mut max: BTreeMap<String, u64> = BTreeMap::new();
        for ((state, _), c) in &agg {
            let m = max.entry(state.clone()).or_insert(0);
            *m = (*m).max(*c);
        }
        let per_state: BTreeSet<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        assert_eq!(
            per_state.len(),
            rows.len(),
            "{table}: more than one row for a state with --top 1: {rows:?}"
        );
        let states: BTreeSet<&str> = max.keys().map(String::as_str).collect();
        assert_eq!(
            per_state, states,
            "{table}: one row per state that has sockets"
        );
        for r in &rows {
            assert_eq!(r.error, 0);
            assert_eq!(
                Some(&r.count),
                agg.get(&(r.state.clone(), r.endpoint)),
                "{table}: {r:?} vs ss"
            );
            assert_eq!(
                r.count, max[&r.state],
                "{table}: {r:?} is not the busiest {} endpoint",
                r.state
            );
        }
    }
}

#[test]
fn state_filter_restricts_the_tables() {
    let mut ns = TestNetns::new("sockets-state");
    let _sm = ns.start_state_maker();
    let (ss, report) = sockets_in(
        &ns,
        &[
            "--state",
            "TIME-WAIT",
            "--state",
            "close-wait,last-ack",
            "--top",
            "1000",
        ],
    );
    let n = only_netns(&report);
    let wanted = ["TIME-WAIT", "CLOSE-WAIT", "LAST-ACK"];
    let sub = ss.filter(|r| wanted.contains(&r.state.as_str()));
    let states = states_of(n);
    assert_eq!(
        states.keys().map(String::as_str).collect::<Vec<_>>().len(),
        3,
        "only the states asked for: {states:?}"
    );
    assert_no_diffs(
        "states",
        &state_diffs(&states, &sub.states(), &wanted, &[]),
        &sub,
        n,
    );
    let local = top_rows(n, "top_local");
    assert_no_diffs(
        "top_local",
        &top_diffs(&local, &sub.by_local(), &|_| true),
        &sub,
        n,
    );
    let remote = top_rows(n, "top_remote");
    assert_no_diffs(
        "top_remote",
        &top_diffs(&remote, &sub.by_server(), &|_| true),
        &sub,
        n,
    );
    assert_eq!(
        n["listeners"],
        serde_json::json!([]),
        "no listeners without LISTEN"
    );

    // A state that is only in the bind table.
    let (_, report) = sockets_in(&ns, &["--state", "bound-inactive", "--top", "1000"]);
    let n = only_netns(&report);
    let bi = ns.bound_inactive();
    let states = states_of(n);
    assert_eq!(
        states,
        BTreeMap::from([("BOUND-INACTIVE".to_string(), bi.rows.len() as u64)])
    );
    let local = top_rows(n, "top_local");
    assert_no_diffs(
        "top_local",
        &top_diffs(&local, &bi.by_local(), &|_| true),
        &bi,
        n,
    );
    assert_eq!(n["top_remote"], serde_json::json!([]));
}

#[test]
fn port_filter_restricts_the_tables() {
    let mut ns = TestNetns::new("sockets-port");
    let sm = ns.start_state_maker();
    let bi = ns.bound_inactive();
    for port in [
        sm.port("v4", "last_ack"),
        sm.port("v6", "fin_wait2"),
        sm.port("v4", "bound_group"),
        sm.port("wild", "dual_syn_recv"),
    ] {
        let p = port.to_string();
        let (ss, report) = sockets_in(&ns, &["--port", &p, "--top", "1000"]);
        let n = only_netns(&report);
        let has_port =
            |r: &SsRow| r.local.port() == port || r.remote.map(|a| a.port()) == Some(port);
        let sub = ss.merged(&bi).filter(has_port);
        assert!(!sub.rows.is_empty());
        let what = format!("--port {port}");
        assert_no_diffs(
            &what,
            &state_diffs(&states_of(n), &sub.states(), &required_states(), &[]),
            &sub,
            n,
        );
        let local = top_rows(n, "top_local");
        assert_no_diffs(
            &what,
            &top_diffs(&local, &sub.by_local(), &|_| true),
            &sub,
            n,
        );
        let remote = top_rows(n, "top_remote");
        assert_no_diffs(
            &what,
            &top_diffs(&remote, &sub.by_server(), &|_| true),
            &sub,
            n,
        );
        let listeners: Vec<SocketAddr> = n["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| parse_endpoint(l["local"].as_str().unwrap()))
            .collect();
        let want: Vec<SocketAddr> = sub
            .rows
            .iter()
            .filter(|r| r.state == "LISTEN")
            .map(|r| r.local)
            .collect();
        assert_eq!(listeners, want, "{what}: listeners");
    }
}

#[test]
fn netns_is_selected_by_name_pid_inode_and_self() {
    let mut ns = TestNetns::new("sockets-select");
    let sm = ns.start_state_maker();
    let inode = ns.inode();
    let pid = sm.pid.to_string();
    let ino = inode.to_string();
    let mut seen = Vec::new();
    for sel in [ns.name.as_str(), pid.as_str(), ino.as_str()] {
        let (ss, run) = stable(
            || ns.ss_tan(),
            || sockmedic(&["sockets", "--json", "--netns", sel]),
        );
        let n = only_netns(run.report()).clone();
        seen.push((format!("--netns {sel} from the host"), ss, n));
    }
    let (ss, run) = stable(
        || ns.ss_tan(),
        || sockmedic_in(&ns, &["sockets", "--json", "--netns", "self"]),
    );
    seen.push((
        "--netns self inside".to_string(),
        ss,
        only_netns(run.report()).clone(),
    ));
    for (what, ss, n) in &seen {
        assert_eq!(n["id"].as_u64(), Some(inode), "{what}: id");
        assert!(
            n["names"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == ns.name.as_str()),
            "{what}: names {}",
            n["names"]
        );
        let errs = state_diffs(&states_of(n), &ss.states(), &DUMPABLE, &["BOUND-INACTIVE"]);
        assert_no_diffs(what, &errs, ss, n);
    }
}

#[test]
fn unknown_netns_is_one_clear_error() {
    require_root();
    let name = format!("sm-no-such-netns-{}", std::process::id());
    let run = sockmedic(&["sockets", "--json", "--netns", &name]);
    run.assert_no_panic();
    assert_eq!(
        run.output.status.code(),
        Some(3),
        "exit 3 for an unknown namespace\n{}",
        run.describe()
    );
    let err = run.stderr();
    assert!(
        err.contains(&name),
        "the error names the namespace\n{}",
        run.describe()
    );
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one line\n{}",
        run.describe()
    );
}

#[test]
fn procs_holdings_include_unhashed_sockets() {
    let mut ns = TestNetns::new("procs-holdings");
    let sm = ns.start_state_maker();
    let (ss, run) = stable(
        || ns.ss_tan(),
        || sockmedic(&["procs", "--json", "--netns", &ns.name]),
    );
    let report = run.report();
    let n = only_netns(report);
    let procs = report["processes"].as_array().expect("processes array");
    let p = procs
        .iter()
        .find(|p| p["pid"].as_u64() == Some(sm.pid as u64))
        .unwrap_or_else(|| {
            panic!(
                "the state maker (pid {}) is not in processes: {procs:#?}",
                sm.pid
            )
        });
    let diag = serde_json::to_string_pretty(p).unwrap();
    assert_eq!(p["netns"], n["id"], "process netns\n{diag}");
    assert_eq!(p["comm"], "python3", "{diag}");

    // Every socket it holds, by state; UNHASHED: never used, or reset and auto-bound.
    let got: BTreeMap<String, u64> = states_of(p).into_iter().filter(|(_, v)| *v > 0).collect();
    let mut want = sm.process_states.clone();
    want.insert("UNHASHED".into(), sm.unhashed);
    assert_eq!(
        got, want,
        "states of the sockets the state maker holds\n{diag}"
    );
    // `unhashed` counts both kinds of CLOSE socket (model: BOUND-INACTIVE + UNHASHED).
    let close = sm.unhashed + sm.process_states["BOUND-INACTIVE"];
    assert_eq!(
        p["unhashed"].as_u64(),
        Some(close),
        "CLOSE sockets held\n{diag}"
    );
    let held: u64 = want.values().sum();
    assert_eq!(p["socket_fds"].as_u64(), Some(held), "socket fds\n{diag}");
    let by_proto: u64 = p["sockets_by_proto"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_proto, held, "sockets_by_proto\n{diag}");
    assert!(p["fds"].as_u64().unwrap() >= held, "{diag}");
    let check = &p["unhashed_check"];
    if !check.is_null() {
        let checked = check["checked"].as_u64().unwrap();
        assert!(checked > 0 && checked <= close, "unhashed_check\n{diag}");
        assert_eq!(
            check["close"].as_u64(),
            Some(checked),
            "every sampled socket is CLOSE\n{diag}"
        );
    }

    // Its listeners, with the queues ss shows.
    let syn_recv = ss.syn_recv_per_listener();
    let mut want: Vec<(SocketAddr, u64, u64, u64)> = ss
        .rows
        .iter()
        .filter(|r| r.state == "LISTEN")
        .map(|r| (r.local, r.recv_q, r.send_q, syn_recv[&r.local]))
        .collect();
    want.sort();
    let mut got: Vec<(SocketAddr, u64, u64, u64)> = p["listeners"]
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
    assert_eq!(got, want, "the state maker's listeners");
}

/// With `--state listen` the listeners' SYN-RECV counts must still be right (or the
/// SYN-RECV sockets dumped for them): a listener with half-open connections must not
/// be reported with none.
#[test]
fn state_filter_keeps_listener_syn_recv() {
    let mut ns = TestNetns::new("sockets-listen-only");
    let _sm = ns.start_state_maker();
    let (ss, report) = sockets_in(&ns, &["--state", "listen"]);
    let n = only_netns(&report);
    let want = ss.syn_recv_per_listener();
    let got: BTreeMap<SocketAddr, u64> = n["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                parse_endpoint(l["local"].as_str().unwrap()),
                l["syn_recv"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        want,
        "sockets --state listen: SYN-RECV per listener (sockmedic, ss)\n--- ss\n{}",
        ss.filter(|r| r.state == "SYN-RECV").text()
    );
}

/// With a state filter the ephemeral-port figures cover only the states dumped: they
/// must not claim to include ESTABLISHED (or claim zero) when it was not dumped.
#[test]
fn state_filter_does_not_claim_complete_ephemeral_use() {
    let mut ns = TestNetns::new("sockets-state-ephemeral");
    let _sm = ns.start_state_maker();
    for states in ["listen", "time-wait,close-wait"] {
        let (_, report) = sockets_in(&ns, &["--state", states]);
        let n = only_netns(&report);
        let e = &n["ephemeral"];
        assert!(
            e.is_null() || e["includes_established"] == false,
            "sockets --state {states}: ephemeral use from a dump without ESTABLISHED claims to include it: {e}"
        );
    }
}

/// Odd but valid arguments: an answer or one clear error, never a panic.
#[test]
fn odd_arguments_never_panic() {
    require_root();
    for args in [
        &["sockets", "--json", "--top", "0"][..],
        &["sockets", "--json", "--port", "0", "--netns", "self"][..],
        &[
            "sockets",
            "--json",
            "--state",
            "listen,listen",
            "--netns",
            "self",
        ][..],
        &["sockets", "--json", "--state", "closed"][..],
        &["sockets", "--json", "--state", "unhashed"][..],
        &["sockets", "--json", "--netns", ""][..],
        &["sockets", "--json", "--netns", "4294967296000"][..],
        &["sockets", "--json", "--netns", "../../etc/passwd"][..],
        &["stat", "--json", "--top", "0", "--netns", "self"][..],
        &["procs", "--json", "--top", "0", "--netns", "self"][..],
    ] {
        let run = sockmedic(args);
        run.assert_no_panic();
        let code = run.output.status.code();
        assert!(
            matches!(code, Some(0) | Some(3)),
            "exit 0 or 3\n{}",
            run.describe()
        );
        if code == Some(3) {
            assert_eq!(
                run.stderr().trim().lines().count(),
                1,
                "one line\n{}",
                run.describe()
            );
        } else {
            assert_eq!(
                run.json.as_ref().map(|j| j["schema"].clone()),
                Some(SCHEMA.into()),
                "{}",
                run.describe()
            );
        }
    }
}
