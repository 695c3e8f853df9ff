//! `sockmedic check` and `sockmedic explain` on the real kernel: exit codes from the
//! worst finding, thresholds from flags and the config file, the JSON report's
//! `findings`/`skipped`/`rates`, `--sysctl-out`, the text layout, and every
//! catalog code's page.
//!
//! The host itself is shared with other tests and builds, so host-wide findings may
//! come and go: assertions about a namespace look at the findings that name it, and
//! the exit code is always checked against the worst finding of the same run.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Exit codes of the monitoring-plugin convention.
const OK: i32 = 0;
const WARNING: i32 = 1;
const CRITICAL: i32 = 2;
const CANNOT_RUN: i32 = 3;

fn code(run: &Run) -> i32 {
    run.assert_no_panic();
    run.output.status.code().expect("an exit code")
}

fn findings(report: &Value) -> &Vec<Value> {
    report["findings"]
        .as_array()
        .expect("report.findings is an array")
}

/// Findings whose subject names this namespace.
fn findings_in<'a>(report: &'a Value, netns: &str) -> Vec<&'a Value> {
    findings(report)
        .iter()
        .filter(|f| f["subject"]["netns"] == netns)
        .collect()
}

/// Asserts a run could not run: exit 3, nothing on stdout, one line on stderr that
/// contains every one of `words`.
fn assert_cannot_run(run: &Run, words: &[&str]) {
    assert_eq!(code(run), CANNOT_RUN, "exit 3\n{}", run.describe());
    assert!(run.stdout().is_empty(), "no output\n{}", run.describe());
    let err = run.stderr();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr\n{}",
        run.describe()
    );
    for w in words {
        assert!(err.contains(w), "stderr names {w:?}\n{}", run.describe());
    }
}

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(test: &str, contents: Option<&str>) -> TempFile {
        let path = std::env::temp_dir().join(unique_name(&format!("sm-check-{test}")));
        if let Some(c) = contents {
            std::fs::write(&path, c).unwrap();
        }
        TempFile(path)
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A namespace whose process holds 20 CLOSE-WAIT sockets: holder.py connects 20
/// times to its own listener, which closes each connection at once.
fn close_wait_namespace(test: &str) -> (TestNetns, Holder) {
    let mut ns = TestNetns::new(test);
    let holder = ns.start_holder(&["--listen", "127.0.0.1:0", "--connect", "self:c:20"]);
    assert_eq!(
        holder.ready.state("CLOSE-WAIT"),
        20,
        "holder: {:?}",
        holder.ready.json
    );
    (ns, holder)
}

/// The close-wait-leak finding naming `pid`.
fn close_wait_finding(report: &Value, pid: u32) -> &Value {
    findings(report)
        .iter()
        .find(|f| f["code"] == "close-wait-leak" && f["subject"]["pid"] == pid)
        .unwrap_or_else(|| {
            panic!(
                "no close-wait-leak finding for pid {pid}; findings: {:#?}",
                findings(report)
            )
        })
}

#[test]
fn healthy_namespace_has_no_finding_and_exit_code_follows_the_findings() {
    let ns = TestNetns::new("check-healthy");
    let run = sockmedic(&["check", "--netns", &ns.name, "--once", "--json"]);
    let report = &check_report(&run);
    let mine = findings_in(report, &ns.name);
    assert!(
        mine.iter().all(|f| f["severity"] == "info"),
        "a fresh namespace has nothing above info: {mine:#?}"
    );
    // Host-wide figures (orphans, TCP memory, file handles) are shared with every
    // other test: only when none of them fired is the exit code 0 for certain.
    if findings(report).is_empty() {
        assert_eq!(code(&run), OK);
    }
}

#[test]
fn close_wait_leak_is_a_warning_and_a_critical_past_the_threshold() {
    let (ns, holder) = close_wait_namespace("check-close-wait");

    let run = sockmedic(&["check", "--netns", &ns.name, "--once", "--json"]);
    let report = &check_report(&run);
    let f = close_wait_finding(report, holder.pid);
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(f["subject"]["count"], 20, "{f:#}");
    assert_eq!(f["subject"]["state"], "CLOSE-WAIT", "{f:#}");
    assert_eq!(f["subject"]["netns"], ns.name.as_str(), "{f:#}");
    assert!(code(&run) >= WARNING, "{}", run.describe());
    if findings(report).iter().all(|f| f["severity"] != "critical") {
        assert_eq!(code(&run), WARNING, "{}", run.describe());
    }

    // Past close-wait.critical it is critical, and so is the exit code.
    let run = sockmedic(&[
        "check",
        "--netns",
        &ns.name,
        "--once",
        "--json",
        "--threshold",
        "close-wait.critical=5",
    ]);
    let report = &check_report(&run);
    assert_eq!(
        close_wait_finding(report, holder.pid)["severity"],
        "critical"
    );
    assert_eq!(code(&run), CRITICAL, "{}", run.describe());

    // Above close-wait.warning there is no finding at all.
    let run = sockmedic(&[
        "check",
        "--netns",
        &ns.name,
        "--once",
        "--json",
        "--threshold",
        "close-wait.warning=21",
    ]);
    let report = &check_report(&run);
    assert!(
        !findings(report)
            .iter()
            .any(|f| f["code"] == "close-wait-leak" && f["subject"]["pid"] == holder.pid),
        "{}",
        run.describe()
    );
}

#[test]
fn config_file_sets_thresholds_and_the_flag_overrides_it() {
    let (ns, holder) = close_wait_namespace("check-config");
    // A bare dotted key, as people write it: TOML makes it a nested table.
    let config = TempFile::new(
        "config",
        Some("# test\n[thresholds]\nclose-wait.critical = 5\n\"fd.warning\" = 0.9\n"),
    );
    let base = ["check", "--netns", &ns.name, "--once", "--json"];

    let mut args = base.to_vec();
    args.extend(["--config", config.arg()]);
    let run = sockmedic(&args);
    assert_eq!(
        close_wait_finding(&check_report(&run), holder.pid)["severity"],
        "critical",
        "the config's close-wait.critical = 5 applies"
    );
    assert_eq!(code(&run), CRITICAL);

    args.extend(["--threshold", "close-wait.critical=1000"]);
    let run = sockmedic(&args);
    assert_eq!(
        close_wait_finding(&check_report(&run), holder.pid)["severity"],
        "warning",
        "--threshold overrides the config file"
    );
}

#[test]
fn bad_thresholds_and_flags_exit_3_with_one_line() {
    assert_cannot_run(
        &sockmedic(&["check", "--threshold", "bogus=1"]),
        &["bogus", "unknown threshold"],
    );
    // Without a subcommand too (it runs check).
    assert_cannot_run(&sockmedic(&["--threshold", "bogus=1"]), &["bogus"]);
    assert_cannot_run(
        &sockmedic(&["check", "--threshold", "fd.warning=lots"]),
        &["fd.warning", "lots"],
    );
    assert_cannot_run(
        &sockmedic(&["check", "--threshold", "fd.warning"]),
        &["NAME=VALUE"],
    );
    assert_cannot_run(
        &sockmedic(&["check", "--threshold", "fd.warning=-1"]),
        &["fd.warning"],
    );
    assert_cannot_run(&sockmedic(&["check", "--interval", "0"]), &["--interval"]);
    assert_cannot_run(
        &sockmedic(&["check", "--netns", "sm-no-such-namespace-anywhere"]),
        &["sm-no-such-namespace-anywhere"],
    );
    // clap's own errors exit 3 as well (its message has several lines).
    let run = sockmedic(&["check", "--no-such-flag"]);
    assert_eq!(code(&run), CANNOT_RUN, "{}", run.describe());
    assert!(run.stdout().is_empty());
}

#[test]
fn bad_config_files_exit_3_naming_the_file() {
    for (what, text) in [
        ("not TOML", "[thresholds\nclose-wait.warning = 1\n"),
        ("unknown threshold", "[thresholds]\n\"nope.warning\" = 1\n"),
        ("not a number", "[thresholds]\n\"fd.warning\" = \"high\"\n"),
        ("unknown section", "[threshold]\n\"fd.warning\" = 0.5\n"),
    ] {
        let file = TempFile::new("bad-config", Some(text));
        let run = sockmedic(&["check", "--once", "--config", file.arg()]);
        assert_cannot_run(&run, &[file.arg()]);
        eprintln!("{what}: {}", run.stderr().trim());
    }
    let missing = TempFile::new("missing-config", None);
    assert_cannot_run(
        &sockmedic(&["check", "--once", "--config", missing.arg()]),
        &[missing.arg()],
    );
}

#[test]
fn unreadable_kernel_log_file_exits_3_and_a_readable_one_runs() {
    let missing = TempFile::new("missing-kmsg", None);
    assert_cannot_run(
        &sockmedic(&["check", "--once", "--kernel-log", missing.arg()]),
        &[missing.arg()],
    );
    let ns = TestNetns::new("check-kernel-log");
    // One line of a real `dmesg` (Linux 6.18), as a saved file.
    let log = TempFile::new(
        "kmsg",
        Some("[ 1234.567890] TCP: too many orphaned sockets\n"),
    );
    let run = sockmedic(&[
        "check",
        "--netns",
        &ns.name,
        "--once",
        "--json",
        "--kernel-log",
        log.arg(),
    ]);
    let report = &check_report(&run);
    let k = &report["kernel_log"];
    assert_eq!(k["source"], log.arg(), "{}", run.describe());
    assert_eq!(k["records"], 1, "{k:#}");
    let m = k["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "too-many-orphans")
        .unwrap_or_else(|| panic!("the orphans message counted\n{k:#}"));
    assert_eq!(m["count"], 1, "{m:#}");
    assert_eq!(m["last_uptime_s"], 1234.56789, "{m:#}");
    assert!(
        !report["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "kernel-log"),
        "the kernel-log check ran\n{}",
        run.describe()
    );

    // From /dev/kmsg (root here): read, or the report says why not.
    let run = sockmedic(&["check", "--netns", &ns.name, "--once", "--json"]);
    let report = &check_report(&run);
    let read = report["kernel_log"]["source"] == "/dev/kmsg";
    let said = report["missing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["what"] == "kernel log");
    assert!(read || said, "{}", run.describe());
}

#[test]
fn json_report_has_findings_skipped_and_rates() {
    let ns = TestNetns::new("check-json");
    let run = sockmedic(&["check", "--netns", &ns.name, "--once", "--json"]);
    let report = &check_report(&run);
    assert!(report["findings"].is_array());
    assert!(report["skipped"].is_array());
    for s in report["skipped"].as_array().unwrap() {
        assert!(s["code"].is_string() && s["why"].is_string(), "{s}");
    }
    assert!(
        report["rates"].is_null(),
        "--once: no rates\n{}",
        run.describe()
    );
    assert_eq!(only_netns(report)["id"].as_u64(), Some(ns.inode()));

    // Two snapshots: the rates of the namespace, over the interval.
    let run = sockmedic(&["check", "--netns", &ns.name, "--interval", "0.2", "--json"]);
    let report = &check_report(&run);
    let rates = &report["rates"];
    assert!(rates.is_object(), "rates\n{}", run.describe());
    let interval = rates["interval_s"].as_f64().expect("rates.interval_s");
    assert!(interval > 0.0, "interval_s {interval}");
    assert!(
        rates["netns"][ns.inode().to_string()].is_object(),
        "rates of the namespace\n{rates:#}"
    );
    // The full snapshot, not the light first one, is the report's.
    assert!(
        !only_netns(report)["dump"].is_null() || only_netns(report)["sockstat"]["tcp_inuse"] == 0,
        "{}",
        run.describe()
    );
}

#[test]
fn no_subcommand_runs_check() {
    let ns = TestNetns::new("check-default");
    let run = sockmedic(&["--netns", &ns.name, "--once", "--json"]);
    let report = &check_report(&run);
    assert!(report["findings"].is_array(), "{}", run.describe());
    assert!(report["skipped"].is_array(), "{}", run.describe());
    assert!(report["rates"].is_null());

    let run = sockmedic(&["--netns", &ns.name, "--once", "--no-color"]);
    code(&run);
    assert!(
        run.stdout().starts_with("sockmedic check: "),
        "{}",
        run.describe()
    );
}

#[test]
fn text_output_shows_findings_before_the_evidence() {
    let (ns, holder) = close_wait_namespace("check-text");
    let run = sockmedic(&["check", "--netns", &ns.name, "--once", "--no-color"]);
    assert!(code(&run) >= WARNING, "{}", run.describe());
    let out = run.stdout();
    assert!(!out.contains('\x1b'), "no colour when not a terminal");
    let finding = out
        .find("close-wait-leak")
        .unwrap_or_else(|| panic!("no close-wait-leak finding\n{out}"));
    let evidence = out
        .find("\nEvidence")
        .unwrap_or_else(|| panic!("no Evidence section\n{out}"));
    assert!(finding < evidence, "findings first\n{out}");
    let header = out[..evidence]
        .lines()
        .find(|l| l.contains("close-wait-leak") && !l.contains("explain"))
        .unwrap();
    assert!(
        header.starts_with("WARNING close-wait-leak")
            || header.starts_with("CRITICAL close-wait-leak"),
        "{header}"
    );
    assert!(
        out.contains(&format!("pid {} (python3)", holder.pid)),
        "{out}"
    );
    assert!(
        out[..evidence].contains("sockmedic explain close-wait-leak"),
        "{out}"
    );
    assert!(!out.contains("No problem found"), "{out}");
    // The evidence is stat's, for the same namespace.
    assert!(
        out[evidence..].contains("TCP sockets per network namespace"),
        "{out}"
    );
    assert!(out[evidence..].contains(&ns.name), "{out}");
    assert!(out.contains("Counter rates: not measured (--once"), "{out}");

    // --verbose: the explanation and every remedy, "will not help" ones too.
    let run = sockmedic(&[
        "check",
        "--netns",
        &ns.name,
        "--once",
        "--verbose",
        "--no-color",
    ]);
    let out = run.stdout();
    let report_run = sockmedic(&["check", "--netns", &ns.name, "--once", "--json"]);
    let report = &check_report(&report_run);
    let f = close_wait_finding(report, holder.pid);
    for r in f["remedy"].as_array().unwrap() {
        let action = r["action"].as_str().unwrap();
        assert!(out.contains(action), "--verbose shows {action:?}\n{out}");
    }
    for e in f["evidence"].as_array().unwrap() {
        let e = e.as_str().unwrap();
        assert!(out.contains(e), "--verbose shows evidence {e:?}\n{out}");
    }
    assert!(out.contains("  why:\n"), "{out}");
}

#[test]
fn text_output_of_a_healthy_namespace() {
    let ns = TestNetns::new("check-text-healthy");
    let run = sockmedic(&[
        "check",
        "--netns",
        &ns.name,
        "--interval",
        "0.1",
        "--no-color",
    ]);
    let c = code(&run);
    assert!((OK..=CRITICAL).contains(&c), "{}", run.describe());
    let out = run.stdout();
    let headers = out
        .lines()
        .filter(|l| l.starts_with("WARNING ") || l.starts_with("CRITICAL "))
        .count();
    // "No problem found" exactly when nothing above info was found.
    assert_eq!(out.contains("No problem found"), headers == 0, "{out}");
    assert_eq!(c == OK, headers == 0, "{out}");
    assert!(out.contains("\nEvidence"), "{out}");
    assert!(out.contains("Counter rates over"), "{out}");
}

#[test]
fn sysctl_out_writes_a_reviewable_sysctl_file() {
    // Ten ephemeral ports, eight of them bound: port-exhaustion proposes a wider
    // range, a per-namespace setting.
    let mut ns = TestNetns::new("check-sysctl");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "40000 40009");
    let _holder = ns.start_holder(&["--bound-ephemeral", "8"]);
    let before = ns.sysctl("net.ipv4.ip_local_port_range");
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let out = TempFile::new("sysctl-out", None);

    let run = sockmedic(&[
        "check",
        "--netns",
        &ns.name,
        "--once",
        "--json",
        "--sysctl-out",
        out.arg(),
    ]);
    let report = &check_report(&run);
    let text = std::fs::read_to_string(&out.0)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", out.arg(), run.describe()));

    // Nothing was applied.
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), before);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap(),
        host_before
    );

    // sysctl -p's format: comments (# or ;), blank lines, `name = value`.
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let (name, value) = t
            .split_once('=')
            .unwrap_or_else(|| panic!("not `name = value`: {line:?}\n{text}"));
        let name = name.trim();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)),
            "a sysctl name: {name:?}\n{text}"
        );
        assert!(!value.trim().is_empty(), "a value: {line:?}");
        assert!(names.insert(name.to_string()), "{name} set twice\n{text}");
    }
    assert!(text.contains("sockmedic changed nothing"), "{text}");
    assert!(text.contains(&report["source"]["host"].as_str().unwrap().to_string()));

    // Exactly the sysctls of the findings' remedies.
    let proposed: BTreeSet<String> = findings(report)
        .iter()
        .flat_map(|f| f["remedy"].as_array().unwrap())
        .flat_map(|r| r["sysctl"].as_object().unwrap().keys().cloned())
        .collect();
    assert_eq!(names, proposed, "{text}");

    let f = findings_in(report, &ns.name)
        .into_iter()
        .find(|f| f["code"] == "port-exhaustion")
        .unwrap_or_else(|| panic!("8 of 10 ports bound: port-exhaustion\n{}", run.describe()));
    assert!(
        names.contains("net.ipv4.ip_local_port_range"),
        "{f:#}\n{text}"
    );
    // A per-namespace setting says where it applies and how.
    assert!(
        text.contains(&format!(
            "ip netns exec {} sysctl -w net.ipv4.ip_local_port_range=",
            ns.name
        )),
        "{text}"
    );
    assert!(text.contains("per-namespace"), "{text}");
}

/// The codes the catalog knows, from `explain --json`.
fn catalog_codes() -> Vec<String> {
    let run = sockmedic(&["explain", "--json"]);
    assert_eq!(code(&run), OK, "{}", run.describe());
    run.json.as_ref().expect("explain --json")["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn explain_prints_every_codes_page() {
    let codes = catalog_codes();
    // The codes of design.md, all of them.
    for want in [
        "orphan-pressure",
        "teardown-stall",
        "timewait-pressure",
        "close-wait-leak",
        "socket-leak",
        "port-exhaustion",
        "fd-exhaustion",
        "accept-queue-overflow",
        "syn-backlog",
        "tcp-memory-pressure",
        "conntrack-full",
        "risky-sysctl",
        "kernel-log",
    ] {
        assert!(codes.iter().any(|c| c == want), "{want} in {codes:?}");
    }
    for c in &codes {
        let run = sockmedic(&["explain", c]);
        assert_eq!(code(&run), OK, "{}", run.describe());
        assert!(
            run.stdout().starts_with(&format!("# {c}")),
            "explain {c} starts with its title\n{}",
            run.describe()
        );
    }
}

#[test]
fn explain_lists_codes_and_thresholds() {
    let run = sockmedic(&["explain", "--no-color"]);
    assert_eq!(code(&run), OK, "{}", run.describe());
    let out = run.stdout();
    for c in catalog_codes() {
        assert!(out.contains(&c), "{c}\n{out}");
    }
    let codes_at = out.find("close-wait-leak").unwrap();
    let thresholds_at = out.find("close-wait.warning").expect("thresholds listed");
    assert!(codes_at < thresholds_at, "codes, then thresholds\n{out}");

    let run = sockmedic(&["explain", "thresholds", "--no-color"]);
    assert_eq!(code(&run), OK, "{}", run.describe());
    let t = run.stdout();
    assert!(
        t.contains("close-wait.warning") && t.contains("kernel-log.recent"),
        "{t}"
    );
    assert!(!t.contains("FIRES WHEN"), "the thresholds alone\n{t}");
}

#[test]
fn explain_of_an_unknown_code_exits_3() {
    let run = sockmedic(&["explain", "nope"]);
    assert_cannot_run(&run, &["nope", "close-wait-leak", "teardown-stall"]);
}
