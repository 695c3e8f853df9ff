//! `--from PATH` through the binary: saved outputs read into a report, bad input
//! refused with one line on stderr and exit 3, a partly readable directory read as
//! far as it goes, standard input; and the incidents' own pasted figures diagnosed.
//!
//! Fixtures are sockmedic-ingest's (`crates/ingest/tests/fixtures/`, each directory's
//! README says where its files came from).

mod common;

use common::*;
use sockmedic_diagnose::{diagnose, Thresholds};
use sockmedic_ingest::offline::{detect, Input, SsSummary};
use sockmedic_ingest::{read_path, Offline, ReadOptions};
use sockmedic_model::{Snapshot, SourceKind};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const EXIT_CANNOT_RUN: i32 = 3;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/tests/fixtures")
        .join(rel)
}

fn fixture_str(rel: &str) -> String {
    fixture(rel).display().to_string()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sockmedic-offline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A run that could not run: exit 3, nothing on stdout, one line on stderr that
/// names the input and holds `problem`.
fn assert_refused(run: &Run, input: &str, problem: &str) {
    run.assert_no_panic();
    assert_eq!(
        run.output.status.code(),
        Some(EXIT_CANNOT_RUN),
        "{}",
        run.describe()
    );
    assert!(run.output.stdout.is_empty(), "{}", run.describe());
    let err = run.stderr();
    assert_eq!(
        err.lines().count(),
        1,
        "one line on stderr\n{}",
        run.describe()
    );
    assert!(err.contains(input), "names {input}\n{}", run.describe());
    assert!(
        err.contains(problem),
        "says {problem:?}\n{}",
        run.describe()
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_inputs_are_one_line_and_exit_3() {
    for (rel, problem) in [
        ("bad-input/empty.txt", "empty"),
        ("bad-input/true-elf-head.bin", "binary data"),
        ("bad-input/python.jpg", "binary data"),
        (
            "bad-input/debian-releases.csv",
            "not a format sockmedic reads",
        ),
        ("bad-input/bsd-license.txt", "not a format sockmedic reads"),
        ("bad-input/no-such-file", "No such file"),
    ] {
        let path = fixture_str(rel);
        for cmd in ["check", "stat"] {
            let run = sockmedic(&[cmd, "--json", "--from", &path]);
            assert_refused(&run, &path, problem);
        }
    }
}

#[test]
fn truncated_limits_file_is_refused_with_one_line() {
    let text = std::fs::read_to_string(fixture("limits/proc/4334/limits")).unwrap();
    let at = text.find("Max open files").unwrap() + 30;
    let dir = tempdir("cut").join("proc/4334");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("limits");
    std::fs::write(&p, &text[..at]).unwrap();
    let path = p.display().to_string();
    let run = sockmedic(&["check", "--json", "--from", &path]);
    assert_refused(&run, &path, "Max open files");
}

#[test]
fn truncated_transcript_reads_what_it_has() {
    let text = std::fs::read_to_string(fixture("transcripts/rhel-prompt-mixed.txt")).unwrap();
    let cut = text.find("open files").unwrap() + 4;
    let p = tempdir("cut-transcript").join("t.txt");
    std::fs::write(&p, &text[..cut]).unwrap();
    let (_, report) = check_json(&["--from", &p.display().to_string()]);
    assert_eq!(report["host"]["sockstat"]["tcp_alloc"], 47);
    assert_eq!(report["source"]["kind"], "text");
}

#[test]
fn two_hosts_mixed_is_one_line_naming_both() {
    let dir = tempdir("two-hosts");
    std::fs::copy(fixture("host/uname-a.txt"), dir.join("a-uname.txt")).unwrap();
    std::fs::copy(fixture("host/web2/hostname"), dir.join("hostname")).unwrap();
    let path = dir.display().to_string();
    let run = sockmedic(&["check", "--json", "--from", &path]);
    assert_refused(&run, "a-uname.txt", "two hosts mixed");
    let err = run.stderr();
    assert!(
        err.contains("hostname") && err.contains("\"web2\"") && err.contains("\"vm\""),
        "{err}"
    );
}

// ---------------------------------------------------------------- standard input

fn with_stdin(args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(SOCKMEDIC)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sockmedic runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn standard_input() {
    let sockstat =
        std::fs::read(fixture("sosreport/sosreport-vm/proc/26987/net/sockstat")).unwrap();
    let (code, out, err) = with_stdin(&["stat", "--json", "--from", "-"], &sockstat);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["host"]["sockstat"]["tcp_alloc"], 47);

    let transcript =
        std::fs::read(fixture("transcripts/debian-root-sysctl-oneliners.txt")).unwrap();
    let (code, out, err) = with_stdin(&["check", "--json", "--from", "-"], &transcript);
    assert!((0..=2).contains(&code), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["host"]["limits"]["tcp_max_orphans"], 131072);
    assert_eq!(report["source"]["host"], "vm");

    for (bytes, problem) in [
        (Vec::new(), "standard input: empty"),
        (
            std::fs::read(fixture("bad-input/python.jpg")).unwrap(),
            "standard input: binary data",
        ),
        (
            std::fs::read(fixture("bad-input/debian-releases.csv")).unwrap(),
            "standard input: not a format",
        ),
    ] {
        let (code, out, err) = with_stdin(&["check", "--json", "--from", "-"], &bytes);
        assert_eq!(code, EXIT_CANNOT_RUN, "{err}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(problem), "{err}");
    }
}

// ---------------------------------------------------------------- partly readable

/// As user nobody: a file it cannot read and a directory it cannot list are listed
/// in `missing`; the rest is read.
#[test]
fn partly_readable_directory_as_nobody() {
    let dir = tempdir("nobody");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The binary where nobody can run it.
    let bin = dir.join("sockmedic");
    std::fs::copy(SOCKMEDIC, &bin).unwrap();
    let tree = dir.join("saved");
    std::fs::create_dir(&tree).unwrap();
    std::fs::copy(
        fixture("sosreport/sosreport-vm/proc/26987/net/sockstat"),
        tree.join("sockstat"),
    )
    .unwrap();
    std::fs::copy(fixture("host/uname-a.txt"), tree.join("uname")).unwrap();
    std::fs::copy(
        fixture("limits/bash-ulimit-a.txt"),
        tree.join("secret-ulimit"),
    )
    .unwrap();
    let closed = tree.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::copy(
        fixture("transcripts/sysctl-names.txt"),
        closed.join("sysctl.txt"),
    )
    .unwrap();
    for (p, mode) in [
        (&tree, 0o755),
        (&tree.join("sockstat"), 0o644),
        (&tree.join("uname"), 0o644),
        (&tree.join("secret-ulimit"), 0o000),
        (&closed, 0o000),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["check", "--json", "--from"])
        .arg(&tree)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(matches!(out.status.code(), Some(0..=2)), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a report");
    assert_eq!(
        report["host"]["sockstat"]["tcp_alloc"], 47,
        "what it could read"
    );
    assert_eq!(report["source"]["kernel"], "6.18.44-fc-v669");
    let missing = report["missing"].as_array().unwrap();
    let about = |name: &str| {
        missing
            .iter()
            .find(|m| m["what"].as_str().is_some_and(|w| w.ends_with(name)))
            .map(|m| m["why"].as_str().unwrap_or("").to_string())
    };
    assert!(
        about("secret-ulimit").is_some_and(|w| w.contains("Permission denied")),
        "{missing:?}"
    );
    assert!(
        about("closed").is_some_and(|w| w.contains("cannot list")),
        "{missing:?}"
    );
    let _ = std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755));
}

/// A FIFO in a tree is listed, never opened (opening it would block).
#[test]
fn fifo_in_a_tree_does_not_block() {
    let dir = tempdir("fifo");
    std::fs::copy(fixture("host/uname-a.txt"), dir.join("uname")).unwrap();
    let ok = Command::new("mkfifo")
        .arg(dir.join("pipe"))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (_, report) = check_json(&["--from", &dir.display().to_string()]);
    let missing = report["missing"].as_array().unwrap();
    assert!(missing
        .iter()
        .any(|m| m["what"].as_str().is_some_and(|w| w.ends_with("pipe"))
            && m["why"].as_str().is_some_and(|w| w.contains("FIFO"))));
}

// ---------------------------------------------------------------- saved trees

#[test]
fn sosreport_and_supportconfig_through_the_binary() {
    for rel in ["sosreport/sosreport-vm", "supportconfig/scc_vm"] {
        let (_, report) = check_json(&["--from", &fixture_str(rel)]);
        assert_eq!(report["source"]["kind"], "text", "{rel}");
        assert_eq!(report["source"]["host"], "vm", "{rel}");
        assert_eq!(report["source"]["kernel"], "6.18.44-fc-v669", "{rel}");
        assert_eq!(report["host"]["limits"]["tcp_max_orphans"], 131072, "{rel}");
    }
}

// ---------------------------------------------------------------- incidents

fn one_file(rel: &str, out: &mut Offline) {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).unwrap();
    let input = Input {
        name: rel.into(),
        path: Some(path),
    };
    let f = detect(&String::from_utf8_lossy(&bytes), &input).unwrap_or_else(|| panic!("{rel}"));
    (f.parse)(&mut &bytes[..], out, &input).unwrap();
}

/// Incident 3's `ss -s` line as the `ss -s` parser reads it: `TCP: 41047 (estab 74,
/// closed 40940, orphaned 0, synrecv 0, timewait 3/0), ports 12036`.
fn incident3_ss_s() -> SsSummary {
    SsSummary {
        total: None,
        tcp_total: Some(41047),
        estab: Some(74),
        closed: Some(40940),
        orphaned: Some(0),
        timewait: Some(3),
        synrecv: Some(0),
        ports: Some(12036),
    }
}

/// The figures and the diagnosis of incident 3 as pasted.
fn assert_incident3(snap: &Snapshot) {
    // sockstat wins over ss -s for what both give.
    assert_eq!(snap.host.sockstat.tcp_alloc, Some(41019));
    let ns = &snap.netns[0];
    assert_eq!(
        (ns.sockstat.tcp_inuse, ns.sockstat.tcp_tw),
        (Some(81), Some(6))
    );
    // The `closed` of ss -s is kept as printed.
    let closed = snap.host.closed.as_ref().expect("closed");
    assert_eq!(closed.ss_closed, Some(40940));
    assert_eq!(closed.unhashed, 41019 - 81);
    // Ports: 12036 bound, of a 50000-62000 range (12001 ports).
    assert_eq!(ns.bind_buckets, Some(12036));
    assert_eq!(
        ns.sysctl
            .get("net.ipv4.ip_local_port_range")
            .map(String::as_str),
        Some("50000 62000")
    );

    let d = diagnose(snap, None, &Thresholds::default());
    let pe = d
        .findings
        .iter()
        .find(|f| f.code == "port-exhaustion")
        .unwrap_or_else(|| panic!("port-exhaustion: {:?}", d.findings));
    assert_eq!(
        (pe.subject.count, pe.subject.limit),
        (Some(12036), Some(12001))
    );
    assert!(pe.title.contains("EADDRNOTAVAIL"), "{}", pe.title);
    let sl = d
        .findings
        .iter()
        .find(|f| f.code == "socket-leak")
        .unwrap_or_else(|| panic!("socket-leak: {:?}", d.findings));
    assert_eq!(
        (sl.subject.count, sl.subject.pid),
        (Some(41019 - 81), None),
        "unattributed"
    );
}

/// The merge, with the `ss -s` line given as its parser reads it (the `ss -s`
/// format is another branch's): sockstat and the port range from the pasted files.
#[test]
fn incident3_sockstat_range_and_ss_s_merged() {
    let mut out = Offline::new(SourceKind::Text, ReadOptions::default());
    one_file("incidents/incident-3/ip_local_port_range.txt", &mut out);
    one_file("incidents/incident-3/sockstat.txt", &mut out);
    out.ss_summary(incident3_ss_s());
    assert_incident3(&out.finish());
}

/// The same from the directory of the three pasted outputs.
#[test]
fn incident3_as_pasted() {
    let snap = read_path(&fixture("incidents/incident-3"), ReadOptions::default()).unwrap();
    assert_incident3(&snap);
    let (_, report) = check_json(&["--from", &fixture_str("incidents/incident-3")]);
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(
        codes.contains(&"port-exhaustion") && codes.contains(&"socket-leak"),
        "{codes:?}"
    );
}

/// Incident 1's `ss -s`: orphans 94904, TIME-WAIT 4823, alloc = 146848 − 4823.
#[test]
fn incident1_as_pasted() {
    let snap = read_path(&fixture("incidents/incident-1"), ReadOptions::default()).unwrap();
    assert_eq!(snap.host.sockstat.tcp_orphan, Some(94904));
    assert_eq!(snap.netns[0].sockstat.tcp_tw, Some(4823));
    assert_eq!(snap.host.sockstat.tcp_alloc, Some(146848 - 4823));
    assert_eq!(snap.netns[0].bind_buckets, Some(10946));
    assert_eq!(
        snap.host.closed.as_ref().and_then(|c| c.ss_closed),
        Some(5114)
    );
}

/// Without `ss -s`: the sockstat line and the range alone.
#[test]
fn incident3_sockstat_and_range() {
    let snap = read_path(&fixture("incidents/incident-3"), ReadOptions::default());
    // Until the `ss -s` format lands, its file is skipped and noted.
    let snap = snap.unwrap();
    assert_eq!(snap.host.sockstat.tcp_alloc, Some(41019));
    assert_eq!(snap.host.sockstat.tcp_mem_pages, Some(286));
    assert_eq!(
        snap.netns[0]
            .sysctl
            .get("net.ipv4.ip_local_port_range")
            .map(String::as_str),
        Some("50000 62000")
    );
    let d = diagnose(&snap, None, &Thresholds::default());
    let sl = d
        .findings
        .iter()
        .find(|f| f.code == "socket-leak")
        .expect("socket-leak");
    assert_eq!((sl.subject.count, sl.subject.pid), (Some(41019 - 81), None));
}

/// Incident 3's second occurrence: `TCP: inuse 1800 orphan 171 tw 4667 alloc 64572
/// mem 419992`.
#[test]
fn incident3_second_occurrence() {
    let snap = read_path(
        &fixture("incidents/incident-3-second"),
        ReadOptions::default(),
    )
    .unwrap();
    let h = &snap.host.sockstat;
    assert_eq!(
        (h.tcp_orphan, h.tcp_alloc, h.tcp_mem_pages),
        (Some(171), Some(64572), Some(419992))
    );
    assert_eq!(snap.netns[0].sockstat.tcp_tw, Some(4667));
    let closed = snap.host.closed.as_ref().unwrap();
    // alloc − inuse − orphans not seen in any listing (171: no listing was saved).
    assert_eq!(closed.alloc - closed.inuse, 64572 - 1800);
}

/// `--netns` on saved data selects among the namespaces the input holds; one it does
/// not hold is one line and exit 3, never silently ignored.
#[test]
fn netns_selection_on_saved_data() {
    let file = fixture_str("offline/ss-tan.txt");
    let run = sockmedic(&["stat", "--json", "--from", &file, "--netns", "nope"]);
    assert_refused(&run, &file, "--netns nope: no such namespace");
    let run = sockmedic(&["stat", "--json", "--from", &file, "--netns", "0"]);
    let report = run.report();
    assert_eq!(
        report["netns"].as_array().map(Vec::len),
        Some(1),
        "{}",
        run.describe()
    );
    assert!(
        report["netns"][0]["states"]["ESTABLISHED"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}
