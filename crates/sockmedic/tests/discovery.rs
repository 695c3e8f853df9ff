//! Run from the host namespace without `--netns`, sockmedic looks at every namespace
//! it can reach: the test's namespace must be in the report, named by its `ip netns`
//! name, with the right figures.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn host_run_finds_and_names_the_namespace() {
    let mut ns = TestNetns::new("discovery");
    let sm = ns.start_state_maker();
    let host_id = std::fs::metadata("/proc/self/ns/net").unwrap().ino();

    for command in ["sockets", "stat"] {
        let (ss, run) = stable(|| ns.ss_tan(), || sockmedic(&[command, "--json"]));
        let report = run.report();
        let n = netns_named(report, &ns.name);
        assert_eq!(
            n["id"].as_u64(),
            Some(ns.inode()),
            "{command}: id of {}",
            ns.name
        );
        assert_eq!(n["host"], false);
        let all = ss.merged(&ns.bound_inactive());
        let mut required = DUMPABLE.to_vec();
        required.push("BOUND-INACTIVE");
        let what = format!("{command} from the host, {}", ns.name);
        assert_no_diffs(
            &what,
            &state_diffs(&states_of(n), &all.states(), &required, &[]),
            &all,
            n,
        );

        // The process living in it belongs to it.
        if let Some(p) = report["processes"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["pid"].as_u64() == Some(sm.pid as u64)))
        {
            assert_eq!(p["netns"], n["id"], "{command}: the state maker's netns");
        }

        // The host's own namespace is there too, named "host".
        let all_ns = report["netns"].as_array().unwrap();
        let host: Vec<_> = all_ns.iter().filter(|x| x["host"] == true).collect();
        assert_eq!(host.len(), 1, "{command}: one host namespace");
        assert_eq!(
            host[0]["id"].as_u64(),
            Some(host_id),
            "{command}: host namespace id"
        );
        assert!(
            host[0]["names"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "host"),
            "{command}: {}",
            host[0]["names"]
        );

        // Each namespace once.
        let mut ids: Vec<u64> = all_ns.iter().map(|x| x["id"].as_u64().unwrap()).collect();
        ids.sort();
        let len = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), len, "{command}: a namespace listed twice");
    }
}

#[test]
fn text_output_names_the_namespace() {
    let mut ns = TestNetns::new("discovery-text");
    let _sm = ns.start_state_maker();
    for command in ["sockets", "stat"] {
        let run = sockmedic(&[command, "--netns", &ns.name, "--no-color"]);
        run.assert_no_panic();
        assert!(run.output.status.success(), "{}", run.describe());
        let out = run.stdout();
        assert!(
            out.contains(&ns.name),
            "{command}: the text names the namespace\n{}",
            run.describe()
        );
        assert!(
            !out.contains('\u{1b}'),
            "{command}: no colour when not a terminal"
        );
    }
}

#[test]
fn unnamed_namespace_is_found_through_its_processes() {
    let mut ns = TestNetns::unnamed();
    let holder = ns.holder_pid().unwrap();
    let sm = ns.start_state_maker();
    let inode = ns.inode();

    let (ss, run) = stable(|| ns.ss_tan(), || sockmedic(&["sockets", "--json"]));
    let report = run.report();
    let found: Vec<_> = report["netns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["id"].as_u64() == Some(inode))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the namespace of pid {holder} (inode {inode}) in the report once"
    );
    let n = found[0];
    let names: Vec<&str> = n["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    let by_process = [
        format!("pid {holder} (sleep)"),
        format!("pid {} (python3)", sm.pid),
    ];
    assert!(
        names.iter().any(|x| by_process.iter().any(|p| p == x)),
        "named after a process in it ({by_process:?}): {names:?}"
    );
    assert_eq!(n["host"], false);
    // sleep and the state maker live in it (and, for a moment, the thread of any
    // other sockmedic run that entered it: the tests run in parallel).
    assert!(
        n["processes"].as_u64().unwrap_or(0) >= 2,
        "sleep and the state maker live in it: {}",
        n["processes"]
    );
    let all = ss.merged(&ns.bound_inactive());
    let mut required = DUMPABLE.to_vec();
    required.push("BOUND-INACTIVE");
    assert_no_diffs(
        "unnamed namespace",
        &state_diffs(&states_of(n), &all.states(), &required, &[]),
        &all,
        n,
    );

    // Selected by a pid living in it.
    let pid = sm.pid.to_string();
    let (ss, run) = stable(
        || ns.ss_tan(),
        || sockmedic(&["stat", "--json", "--netns", &pid]),
    );
    let n = only_netns(run.report());
    assert_eq!(n["id"].as_u64(), Some(inode));
    let all = ss.merged(&ns.bound_inactive());
    assert_no_diffs(
        "--netns PID",
        &state_diffs(&states_of(n), &all.states(), &required, &[]),
        &all,
        n,
    );
}
