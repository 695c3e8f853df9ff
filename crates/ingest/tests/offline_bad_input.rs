//! Bad input for `--from`: empty, binary, wrong format, truncated mid-line, two hosts
//! mixed, partly readable trees. Each refusal is one line naming the input and the
//! problem; a tree that is partly readable still gives what it could read, with the
//! rest in `missing`. Parsers never panic, whatever they are given (proptests).

use proptest::prelude::*;
use sockmedic_ingest::offline::{Input, FORMATS};
use sockmedic_ingest::{read_path, IngestError, Offline, ReadOptions};
use sockmedic_model::{Snapshot, SourceKind};
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn refused(path: &Path) -> IngestError {
    match read_path(path, ReadOptions::default()) {
        Ok(s) => panic!("{}: read, not refused: {:?}", path.display(), s.source),
        Err(e) => e,
    }
}

/// One line that names the input.
fn assert_one_line(e: &IngestError, path: &Path) {
    let line = e.to_string();
    assert!(!line.contains('\n'), "more than one line: {line}");
    assert!(
        line.contains(&path.display().to_string()),
        "does not name {}: {line}",
        path.display()
    );
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sockmedic-bad-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------- refused whole

#[test]
fn empty_file() {
    let p = fixture("bad-input/empty.txt");
    let e = refused(&p);
    assert!(matches!(e, IngestError::Empty { .. }), "{e}");
    assert_one_line(&e, &p);
    assert!(e.to_string().ends_with(": empty"));
}

#[test]
fn blank_file_is_empty_too() {
    let dir = tempdir("blank");
    let p = dir.join("blank.txt");
    std::fs::write(&p, "\n \n\t\n").unwrap();
    assert!(matches!(refused(&p), IngestError::Empty { .. }));
}

#[test]
fn binary_files() {
    for rel in ["bad-input/true-elf-head.bin", "bad-input/python.jpg"] {
        let p = fixture(rel);
        let e = refused(&p);
        assert!(matches!(e, IngestError::Binary { .. }), "{rel}: {e}");
        assert_one_line(&e, &p);
    }
}

#[test]
fn wrong_formats() {
    for rel in ["bad-input/debian-releases.csv", "bad-input/bsd-license.txt"] {
        let p = fixture(rel);
        let e = refused(&p);
        assert!(matches!(e, IngestError::Unrecognised { .. }), "{rel}: {e}");
        assert_one_line(&e, &p);
        assert!(
            e.to_string().contains("not a format sockmedic reads"),
            "{e}"
        );
    }
}

/// `ulimit -n > file`: a bare number says nothing without its command.
#[test]
fn a_bare_number() {
    let p = fixture("bad-input/ulimit-n.txt");
    let e = refused(&p);
    assert!(matches!(e, IngestError::Unrecognised { .. }), "{e}");
    assert_one_line(&e, &p);
}

#[test]
fn no_such_file() {
    let p = fixture("bad-input/no-such-file");
    let e = refused(&p);
    assert!(matches!(e, IngestError::Io { .. }), "{e}");
    assert_one_line(&e, &p);
}

#[test]
fn a_directory_of_nothing_readable() {
    let dir = tempdir("nothing");
    for f in ["debian-releases.csv", "python.jpg", "empty.txt"] {
        std::fs::copy(fixture("bad-input").join(f), dir.join(f)).unwrap();
    }
    let e = refused(&dir);
    assert!(matches!(e, IngestError::NothingRecognised { .. }), "{e}");
    assert_one_line(&e, &dir);
}

#[test]
fn two_hosts_mixed() {
    let dir = tempdir("two-hosts");
    std::fs::copy(fixture("host/uname-a.txt"), dir.join("a-uname.txt")).unwrap();
    std::fs::copy(fixture("host/web2/uname-a.txt"), dir.join("b-uname.txt")).unwrap();
    let e = refused(&dir);
    assert!(matches!(e, IngestError::TwoHosts(_)), "{e}");
    let line = e.to_string();
    assert!(!line.contains('\n'));
    for part in ["a-uname.txt", "b-uname.txt", "\"vm\"", "\"web2\""] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}

#[test]
fn two_hosts_through_the_kernel_log() {
    // The rsyslog capture names host `vm`; web2's hostname file is another host.
    let dir = tempdir("two-hosts-log");
    std::fs::copy(fixture("kernel-log/syslog-kern.log"), dir.join("kern.log")).unwrap();
    std::fs::copy(fixture("host/web2/hostname"), dir.join("hostname")).unwrap();
    let line = refused(&dir).to_string();
    assert!(
        line.contains("kern.log") && line.contains("\"web2\""),
        "{line}"
    );
}

// ---------------------------------------------------------------- truncated

/// The real fixtures cut short at every byte (big files: at many points): each is
/// read or refused with one line, never a panic.
#[test]
fn truncated_anywhere_never_panics() {
    let dir = tempdir("cut");
    for rel in [
        "sosreport/sosreport-vm/proc/26987/net/sockstat",
        "sosreport/sosreport-vm/proc/26987/net/snmp",
        "limits/proc/4334/limits",
        "limits/bash-ulimit-a.txt",
        "limits/mksh-ulimit-a.txt",
        "host/uname-a.txt",
        "host/date.txt",
        "host/file-nr.txt",
        "transcripts/rhel-prompt-mixed.txt",
        "transcripts/debian-root-sysctl-oneliners.txt",
        "supportconfig/scc_vm/proc.txt",
        "incidents/incident-3/sockstat.txt",
        "incidents/incident-3/ip_local_port_range.txt",
    ] {
        let bytes = std::fs::read(fixture(rel)).unwrap();
        let step = (bytes.len() / 300).max(1);
        let name = Path::new(rel).file_name().unwrap();
        let p = dir.join(name);
        for cut in (1..bytes.len()).step_by(step) {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            if let Err(e) = read_path(&p, ReadOptions::default()) {
                assert!(!e.to_string().contains('\n'), "{rel} cut at {cut}: {e}");
            }
        }
    }
}

/// `/proc/net/sockstat` cut in the middle of its TCP line: the lines before it are
/// read, the cut line is not.
#[test]
fn sockstat_cut_mid_line() {
    let bytes = std::fs::read(fixture("sosreport/sosreport-vm/proc/26987/net/sockstat")).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let cut = text.find("alloc").expect("the TCP line") + 3;
    let dir = tempdir("sockstat-cut");
    let p = dir.join("sockstat");
    std::fs::write(&p, &text[..cut]).unwrap();
    let snap = read_path(&p, ReadOptions::default()).unwrap();
    assert_eq!(snap.netns[0].sockstat.sockets_used, Some(16));
    assert_eq!(
        snap.host.sockstat.tcp_alloc, None,
        "the cut line is ignored"
    );
    assert_eq!(snap.host.sockstat.tcp_orphan, None);
}

/// `/proc/PID/limits` cut inside `Max open files`: no limit read from half a line.
#[test]
fn limits_cut_mid_line() {
    let text = std::fs::read_to_string(fixture("limits/proc/4334/limits")).unwrap();
    let at = text.find("Max open files").unwrap();
    let cut = at + text[at..].find("20000").unwrap() + 2;
    let dir = tempdir("limits-cut").join("proc/4334");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("limits");
    std::fs::write(&p, &text[..cut]).unwrap();
    let e = refused(&p);
    assert!(e.to_string().contains("Max open files"), "{e}");
    assert_one_line(&e, &p);
}

/// A transcript cut in the middle of a command's output: the commands before are
/// read, the cut one is what it is.
#[test]
fn transcript_cut_mid_line() {
    let text = std::fs::read_to_string(fixture("transcripts/rhel-prompt-mixed.txt")).unwrap();
    let cut = text.find("open files").unwrap() + 4;
    let dir = tempdir("transcript-cut");
    let p = dir.join("t.txt");
    std::fs::write(&p, &text[..cut]).unwrap();
    let snap = read_path(&p, ReadOptions::default()).unwrap();
    assert_eq!(snap.host.sockstat.tcp_alloc, Some(47));
    assert_eq!(snap.source.kernel.as_deref(), Some("6.18.44-fc-v669"));
}

// ---------------------------------------------------------------- partly readable

fn missing_for<'a>(snap: &'a Snapshot, name: &str) -> Option<&'a str> {
    snap.missing
        .iter()
        .find(|m| m.what.ends_with(name))
        .map(|m| m.why.as_str())
}

#[test]
fn partly_readable_tree() {
    let dir = tempdir("partly");
    std::fs::copy(
        fixture("sosreport/sosreport-vm/proc/26987/net/sockstat"),
        dir.join("sockstat"),
    )
    .unwrap();
    // A FIFO: never opened (it would block).
    let fifo = dir.join("a-fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    // Symlinks: dangling, and out of the tree.
    std::os::unix::fs::symlink(dir.join("gone"), dir.join("dangling")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("outside")).unwrap();
    // Inside the tree: not listed (its target is read where it is).
    std::os::unix::fs::symlink("sockstat", dir.join("inside")).unwrap();
    // A huge (sparse) file.
    let huge = std::fs::File::create(dir.join("huge.log")).unwrap();
    huge.set_len(3 << 30).unwrap();
    // Too deep.
    let mut deep = dir.clone();
    for i in 0..14 {
        deep = deep.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::copy(fixture("host/uname-a.txt"), deep.join("uname")).unwrap();

    let snap = read_path(&dir, ReadOptions::default()).unwrap();
    assert_eq!(snap.host.sockstat.tcp_alloc, Some(47), "what it could read");
    assert!(missing_for(&snap, "a-fifo").is_some_and(|w| w.contains("FIFO")));
    assert!(missing_for(&snap, "dangling").is_some_and(|w| w.contains("symlink")));
    assert!(missing_for(&snap, "outside").is_some_and(|w| w.contains("out of the tree")));
    assert!(missing_for(&snap, "inside").is_none());
    assert!(missing_for(&snap, "huge.log").is_some_and(|w| w.contains("larger")));
    assert!(
        snap.missing.iter().any(|m| m.why.contains("deeper than")),
        "{:?}",
        snap.missing
    );
    assert_eq!(snap.source.kernel, None, "the too-deep uname is not read");
}

// ---------------------------------------------------------------- proptests

/// Every line of every real fixture of these formats: material for the fuzzers.
fn corpus() -> Vec<String> {
    let mut lines = Vec::new();
    for rel in [
        "limits/bash-ulimit-a.txt",
        "limits/dash-ulimit-a.txt",
        "limits/ksh93-ulimit-a.txt",
        "limits/mksh-ulimit-a.txt",
        "limits/zsh-ulimit-a.txt",
        "limits/proc/4334/limits",
        "host/uname-a.txt",
        "host/date.txt",
        "host/date-R.txt",
        "host/file-nr.txt",
        "transcripts/rhel-prompt-mixed.txt",
        "transcripts/debian-root-sysctl-oneliners.txt",
        "transcripts/dollar-prompt.txt",
        "supportconfig/scc_vm/proc.txt",
        "supportconfig/scc_vm/network.txt",
        "supportconfig/scc_vm/basic-environment.txt",
        "incidents/incident-3/ip_local_port_range.txt",
        "incidents/incident-3/sockstat.txt",
    ] {
        let text = std::fs::read_to_string(fixture(rel)).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

/// Runs every format's sniff and parse on `text`, with and without a path: none may
/// panic, whatever they return.
fn every_parser(text: &str) {
    for path in [
        None,
        Some("proc/1234/limits"),
        Some("proc/sys/net/ipv4/tcp_mem"),
        Some("hostname"),
    ] {
        let input = Input {
            name: "fuzz".into(),
            path: path.map(PathBuf::from),
        };
        for f in FORMATS {
            let _ = (f.sniff)(text, &input);
            let mut out = Offline::new(SourceKind::Text, ReadOptions::default());
            let _ = (f.parse)(&mut text.as_bytes(), &mut out, &input);
            let _ = out.finish();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_any_text(text in "\\PC{0,400}") {
        every_parser(&text);
    }

    #[test]
    fn parsers_never_panic_on_mixed_real_lines(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..80, any::<bool>()), 1..25)
    ) {
        let lines = corpus();
        let mut text = String::new();
        for (i, cut, crlf) in picks {
            let line = &lines[i.index(lines.len())];
            // Some lines cut short, at a character boundary.
            let mut end = line.len().min(if cut < 60 { line.len() } else { cut - 60 });
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            text.push_str(&line[..end]);
            text.push_str(if crlf { "\r\n" } else { "\n" });
        }
        every_parser(&text);
    }
}
