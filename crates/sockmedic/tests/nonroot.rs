//! Run as an unprivileged user, sockmedic must not panic: it prints a report of what
//! it could see and lists the rest in `missing`.

mod common;

use common::*;
use serde_json::Value;

fn run_as_nobody(nb: &NobodyBinary, prefix: &[&str], args: &[&str]) -> (Value, String) {
    let output = nb.command(prefix, args).output().expect("run setpriv");
    let run = Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        json: serde_json::from_slice(&output.stdout).ok(),
        output,
    };
    let report = run.report().clone();
    let missing = report["missing"]
        .as_array()
        .unwrap_or_else(|| panic!("missing is an array\n{}", run.describe()));
    assert!(
        !missing.is_empty(),
        "a non-root run lists what it could not see\n{}",
        run.describe()
    );
    for m in missing {
        let what = m["what"].as_str().unwrap_or("");
        let why = m["why"].as_str().unwrap_or("");
        assert!(
            !what.is_empty() && !why.is_empty(),
            "missing entry with what and why: {m}"
        );
    }
    assert_eq!(
        report["source"]["privileged"],
        false,
        "source.privileged\n{}",
        run.describe()
    );
    (report, run.describe())
}

#[test]
fn non_root_host_run_lists_what_is_missing() {
    let nb = NobodyBinary::new("host");
    // A namespace nobody cannot enter.
    let mut ns = TestNetns::new("nonroot-host");
    let _sm = ns.start_state_maker();
    let id = ns.inode();
    for args in [
        &["sockets", "--json"][..],
        &["stat", "--json"][..],
        &["procs", "--json"][..],
    ] {
        let (report, out) = run_as_nobody(&nb, &[], args);
        let all = report["netns"].as_array().unwrap();
        assert!(
            all.iter().any(|n| n["host"] == true),
            "the host namespace is still reported\n{out}"
        );
        // What it could not enter, it does not count, and it says so.
        if let Some(n) = all.iter().find(|n| n["id"].as_u64() == Some(id)) {
            assert_eq!(
                n["states"],
                serde_json::json!({}),
                "no counts for a namespace it could not enter\n{out}"
            );
            let mentioned = report["missing"].as_array().unwrap().iter().any(|m| {
                let w = m["what"].as_str().unwrap_or("");
                w.contains(&ns.name) || w.contains(&id.to_string())
            });
            assert!(mentioned, "missing names {}\n{out}", ns.name);
        }
        let closed = &report["host"]["closed"];
        if !closed.is_null() {
            assert_eq!(
                closed["complete"], false,
                "not every namespace was counted\n{out}"
            );
        }
    }
}

#[test]
fn non_root_in_a_namespace_still_counts_its_sockets() {
    let nb = NobodyBinary::new("netns");
    let mut ns = TestNetns::new("nonroot");
    let _sm = ns.start_state_maker();
    let prefix = ["ip", "netns", "exec", ns.name.as_str()];
    let (ss, (report, out)) = stable(
        || ns.ss_tan(),
        || {
            run_as_nobody(
                &nb,
                &prefix,
                &["sockets", "--json", "--netns", "self", "--top", "1000"],
            )
        },
    );
    let n = only_netns(&report);
    assert_eq!(n["id"].as_u64(), Some(ns.inode()), "{out}");
    let all = ss.merged(&ns.bound_inactive());
    assert_no_diffs(
        "non-root states",
        &state_diffs(&states_of(n), &all.states(), &DUMPABLE, &[]),
        &all,
        n,
    );
    let local = top_rows(n, "top_local");
    assert_no_diffs(
        "non-root top_local",
        &top_diffs(&local, &all.by_local(), &|_| true),
        &all,
        n,
    );
}
