//! The offline formats of limits, host and time, transcripts, supportconfig and
//! sosreport trees, read from real captures (`tests/fixtures/*/README.md` say where
//! each came from) into the right Snapshot figures.

use sockmedic_ingest::offline::{detect, Input};
use sockmedic_ingest::{read_path, IngestError, Offline, ReadOptions};
use sockmedic_model::{Snapshot, SourceKind};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(rel: &str) -> Snapshot {
    read_path(&fixture(rel), ReadOptions::default()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// One file through the registry, into a builder (for what the Snapshot does not
/// show by itself, such as a shell's limits): the format name and the builder.
fn parse_file(rel: &str) -> (&'static str, Offline) {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let input = Input {
        name: rel.to_string(),
        path: Some(path),
    };
    let format = detect(&text, &input).unwrap_or_else(|| panic!("{rel}: not recognised"));
    let mut out = Offline::new(SourceKind::Text, ReadOptions::default());
    (format.parse)(&mut &bytes[..], &mut out, &input)
        .unwrap_or_else(|e| panic!("{rel} ({}): {e}", format.name));
    (format.name, out)
}

fn sysctl<'a>(snap: &'a Snapshot, name: &str) -> Option<&'a str> {
    snap.netns[0]
        .sysctl
        .get(name)
        .or_else(|| snap.host.sysctl.get(name))
        .map(String::as_str)
}

fn missing_about<'a>(snap: &'a Snapshot, what: &str) -> Option<&'a str> {
    snap.missing
        .iter()
        .find(|m| m.what.contains(what))
        .map(|m| m.why.as_str())
}

// ---------------------------------------------------------------- limits

#[test]
fn ulimit_a_of_every_shell() {
    for shell in ["bash", "busybox", "dash", "ksh93", "mksh", "zsh"] {
        let rel = format!("limits/{shell}-ulimit-a.txt");
        let (format, out) = parse_file(&rel);
        assert_eq!(format, "ulimit -a", "{rel}");
        assert_eq!(out.shell_limits(), Some((20000, None)), "{rel}");
    }
}

#[test]
fn ulimit_ha_is_the_hard_limit_in_a_transcript_only() {
    // `ulimit -Ha` alone looks like `ulimit -a`: read as the soft limits.
    let (_, out) = parse_file("limits/bash-ulimit-Ha.txt");
    assert_eq!(out.shell_limits(), Some((20000, None)));
}

#[test]
fn proc_pid_limits_gives_the_process_its_limits() {
    let snap = read("limits/proc");
    let p = snap
        .processes
        .iter()
        .find(|p| p.pid == 4334)
        .expect("process 4334");
    assert_eq!((p.fd_limit, p.fd_limit_hard), (Some(1024), Some(20000)));
    // Known: its limits; unknown: its fds and sockets (nothing listed them).
    assert_eq!((p.fds, p.socket_fds), (None, None));
    assert!(missing_about(&snap, "open fds per process").is_some());
}

#[test]
fn proc_self_limits_is_the_shells() {
    let (format, out) = parse_file("limits/proc-self-limits.txt");
    assert_eq!(format, "/proc/PID/limits");
    assert_eq!(out.shell_limits(), Some((1024, Some(20000))));
}

// ---------------------------------------------------------------- host, time

#[test]
fn uname_hostname_and_date() {
    let (format, out) = parse_file("host/uname-a.txt");
    assert_eq!(format, "uname -a");
    let snap = out.finish();
    assert_eq!(snap.source.host, "vm");
    assert_eq!(snap.source.kernel.as_deref(), Some("6.18.44-fc-v669"));

    for (rel, when) in [
        ("host/date.txt", "2026-11-22T06:55:29Z"),
        ("host/date-u.txt", "2026-11-22T06:55:29Z"),
        ("host/date-R.txt", "2026-11-22T06:55:29+00:00"),
        ("host/date-Is.txt", "2026-11-22T06:55:29+00:00"),
        ("host/date-rfc3339.txt", "2026-11-22T06:55:29+00:00"),
    ] {
        let (format, out) = parse_file(rel);
        assert_eq!(format, "date", "{rel}");
        assert_eq!(out.finish().source.taken_at, when, "{rel}");
    }
    // A zone name has no offset: the time is not guessed, and the report says so.
    let (_, out) = parse_file("host/date-est.txt");
    let snap = out.finish();
    assert_eq!(snap.source.taken_at, "");
    assert!(missing_about(&snap, "date-est.txt")
        .is_some_and(|w| w.contains("EST") && w.contains("no UTC offset")));

    // A file named `hostname` holds the host name; one word alone elsewhere is nothing.
    let (format, out) = parse_file("host/hostname");
    assert_eq!(
        (format, out.finish().source.host.as_str()),
        ("hostname", "vm")
    );
    let word = Input {
        name: "word.txt".into(),
        path: Some("word.txt".into()),
    };
    assert!(detect("vm\n", &word).is_none());
}

#[test]
fn file_nr_pasted_alone() {
    let (format, out) = parse_file("host/file-nr.txt");
    assert_eq!(format, "/proc/sys/fs/file-nr");
    let nr = out.finish().host.file_nr.expect("file-nr");
    assert_eq!((nr.allocated, nr.unused, nr.max), (414, 0, 2466170));
}

#[test]
fn one_host_directory_reads_whole() {
    let dir = tempdir("one-host");
    for f in [
        "uname-a.txt",
        "hostname",
        "hostname_-f",
        "date.txt",
        "file-nr.txt",
    ] {
        std::fs::copy(fixture("host").join(f), dir.join(f)).unwrap();
    }
    let snap = read_path(&dir, ReadOptions::default()).unwrap();
    assert_eq!(snap.source.host, "vm");
    assert_eq!(snap.source.taken_at, "2026-11-22T06:55:29Z");
    assert!(snap.host.file_nr.is_some());
}

// ---------------------------------------------------------------- transcripts

/// What `debian-root-sysctl-oneliners.txt` holds, from either line ending.
fn check_oneliners(rel: &str) {
    let (format, out) = parse_file(rel);
    assert_eq!(format, "terminal transcript", "{rel}");
    assert_eq!(out.shell_limits(), Some((20000, Some(20000))), "{rel}");
    let snap = out.finish();
    assert_eq!(snap.source.host, "vm", "{rel}: the prompt's host");
    assert_eq!(snap.host.limits.tcp_max_orphans, Some(131072), "{rel}");
    let mem = snap.host.limits.tcp_mem.expect("tcp_mem");
    assert_eq!((mem.min, mem.pressure, mem.max), (287898, 383867, 575796));
    for (name, value) in [
        ("net.ipv4.ip_local_port_range", "32768 60999"),
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_fin_timeout", "60"),
        ("net.ipv4.tcp_max_tw_buckets", "131072"),
    ] {
        assert_eq!(sysctl(&snap, name), Some(value), "{rel}: {name}");
    }
    let nr = snap.host.file_nr.expect("file-nr");
    assert_eq!((nr.allocated, nr.max), (444, 2466170));
    // `exit` prints `exit`: not a skipped output.
    assert!(
        missing_about(&snap, "transcripts/").is_none(),
        "{:?}",
        snap.missing
    );
}

#[test]
fn transcript_of_sysctl_and_proc_sys_oneliners() {
    check_oneliners("transcripts/debian-root-sysctl-oneliners.txt");
    check_oneliners("transcripts/debian-root-sysctl-oneliners-crlf.txt");
}

#[test]
fn transcript_mixing_commands() {
    let (format, out) = parse_file("transcripts/rhel-prompt-mixed.txt");
    assert_eq!(format, "terminal transcript");
    // `ulimit -a` then `cat /proc/self/limits`: soft and hard.
    assert_eq!(out.shell_limits(), Some((20000, Some(20000))));
    let snap = out.finish();
    assert_eq!(snap.source.host, "vm");
    assert_eq!(snap.source.kernel.as_deref(), Some("6.18.44-fc-v669"));
    assert_eq!(snap.source.taken_at, "2026-11-22T06:55:45Z");
    let h = &snap.host.sockstat;
    assert_eq!(
        (h.tcp_orphan, h.tcp_alloc, h.tcp_mem_pages),
        (Some(46), Some(47), Some(225))
    );
    let n = &snap.netns[0].sockstat;
    assert_eq!(
        (n.sockets_used, n.tcp_inuse, n.tcp_tw),
        (Some(16), Some(1), Some(0))
    );
}

#[test]
fn transcript_with_dollar_prompts() {
    let (_, out) = parse_file("transcripts/dollar-prompt.txt");
    assert_eq!(out.shell_limits(), Some((20000, None)));
    let snap = out.finish();
    assert_eq!(
        sysctl(&snap, "net.ipv4.ip_local_port_range"),
        Some("32768 60999")
    );
    assert_eq!(snap.host.sockstat.tcp_alloc, Some(47));
    assert_eq!(snap.source.host, "unknown", "a `$ ` prompt names no host");
}

#[test]
fn transcript_with_hash_prompts() {
    let (format, out) = parse_file("transcripts/hash-prompt.txt");
    assert_eq!(format, "terminal transcript");
    assert_eq!(out.shell_limits(), Some((20000, None)));
    let snap = out.finish();
    assert_eq!(
        sysctl(&snap, "net.ipv4.ip_local_port_range"),
        Some("32768 60999")
    );
    assert_eq!(snap.host.limits.tcp_max_orphans, Some(131072));
}

#[test]
fn sysctl_name_lines() {
    let snap = read("transcripts/sysctl-names.txt");
    assert_eq!(snap.host.limits.tcp_max_orphans, Some(131072));
    assert_eq!(
        sysctl(&snap, "net.ipv4.ip_local_port_range"),
        Some("32768 60999")
    );
}

#[test]
fn two_hosts_in_one_paste() {
    let e = read_path(
        &fixture("transcripts/two-hosts-in-one-paste.txt"),
        ReadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, IngestError::TwoHosts(_)), "{e}");
    let line = e.to_string();
    assert!(
        line.contains("\"web2\"") && line.contains("\"vm\""),
        "{line}"
    );
    assert!(line.contains("two-hosts-in-one-paste.txt"), "{line}");
}

// ---------------------------------------------------------------- supportconfig

#[test]
fn supportconfig_sections() {
    let snap = read("supportconfig/scc_vm");
    assert_eq!(snap.source.host, "vm");
    assert_eq!(snap.source.kernel.as_deref(), Some("6.18.44-fc-v669"));
    assert_eq!(snap.source.taken_at, "2026-11-22T06:56:06Z");
    // `Configuration File` sections are named by their path.
    assert_eq!(sysctl(&snap, "net.ipv4.ip_forward"), Some("0"));
    assert_eq!(snap.host.limits.tcp_max_orphans, Some(131072));
    assert_eq!(
        sysctl(&snap, "net.ipv4.ip_local_port_range"),
        Some("32768 60999")
    );
    let nr = snap.host.file_nr.expect("file-nr");
    assert_eq!(nr.allocated, 436);
    assert_eq!(snap.host.sockstat.tcp_alloc, Some(47));
    assert_eq!(snap.netns[0].sockstat.tcp6_inuse, Some(0));
    // `sysctl -a`: everything else.
    assert!(snap.netns[0].sysctl.len() > 500);
    assert_eq!(snap.host.limits.nf_conntrack_max, Some(262144));
    // supportconfig's `ulimit -a` is an error message: skipped and said so.
    assert!(missing_about(&snap, "env.txt").is_some_and(|w| w.contains("`ulimit -a`")));
}

// ---------------------------------------------------------------- sosreport

#[test]
fn sosreport_tree() {
    let snap = read("sosreport/sosreport-vm");
    assert_eq!(snap.source.host, "vm");
    assert_eq!(snap.source.kernel.as_deref(), Some("6.18.44-fc-v669"));
    assert_eq!(snap.source.taken_at, "2026-11-22T06:49:52Z");
    // proc/26987/net/sockstat, reached as a file (proc/net and proc/self are links).
    let h = &snap.host.sockstat;
    assert_eq!(
        (h.tcp_orphan, h.tcp_alloc, h.tcp_mem_pages),
        (Some(46), Some(47), Some(225))
    );
    assert_eq!(snap.netns[0].sockstat.tcp_tw, Some(16));
    assert!(snap.netns[0].counters.contains_key("TcpExt"));
    // sysctl -a, then proc/sys: the same value.
    assert_eq!(snap.host.limits.tcp_max_orphans, Some(131072));
    assert!(snap.netns[0].sysctl.len() > 500);
    // dmesg
    let log = snap.kernel_log.as_ref().expect("kernel log");
    assert!(log.records > 100);
    // proc/4334/limits
    let p = snap
        .processes
        .iter()
        .find(|p| p.pid == 4334)
        .expect("pid 4334");
    assert_eq!(p.fd_limit, Some(1024));
    // The symlinks point into the tree: skipped, not listed as missing.
    for link in ["/date", "/hostname", "/uname", "proc/net", "proc/self"] {
        assert!(
            !snap.missing.iter().any(|m| m.what.ends_with(link)),
            "{link}: {:?}",
            snap.missing
        );
    }
    // What it has, it does not list as missing.
    for what in [
        "sysctl",
        "sockstat",
        "kernel log",
        "tcp_max_orphans",
        "tcp_mem",
        "fs.file-nr",
    ] {
        assert!(
            !snap.missing.iter().any(|m| m.what.contains(what)),
            "{what}: {:?}",
            snap.missing
        );
    }
}

#[test]
fn sosreport_with_another_hosts_file_is_two_hosts() {
    let dir = tempdir("two-hosts");
    copy_tree(
        &fixture("sosreport/sosreport-vm"),
        &dir.join("sosreport-vm"),
    );
    std::fs::copy(fixture("host/web2/uname-a.txt"), dir.join("uname-a.txt")).unwrap();
    let e = read_path(&dir, ReadOptions::default()).unwrap_err();
    let line = e.to_string();
    assert!(matches!(e, IngestError::TwoHosts(_)), "{line}");
    assert!(!line.contains('\n'));
    assert!(
        line.contains("uname-a.txt") && line.contains("\"web2\"") && line.contains("\"vm\""),
        "{line}"
    );
}

// ---------------------------------------------------------------- missing, merged

#[test]
fn missing_pieces_name_what_the_checks_need() {
    let snap = read("transcripts/dollar-prompt.txt");
    for what in [
        "per-namespace sysctls",
        "net.ipv4.tcp_max_orphans",
        "net.ipv4.tcp_mem",
        "net.netfilter.nf_conntrack_max",
        "fs.file-nr",
        "TCP sockets",
        "process list",
        "kernel log",
    ] {
        let found = snap.missing.iter().any(|m| m.what.starts_with(what));
        let has_it = what == "per-namespace sysctls"; // the port range is one
        assert_eq!(found, !has_it, "{what}: {:?}", snap.missing);
    }
    // sockstat was read: not missing, nor its memory.
    assert!(missing_about(&snap, "sockstat").is_none());
}

// ---------------------------------------------------------------- helpers

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sockmedic-ingest-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies a tree, symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if t.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
