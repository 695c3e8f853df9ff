//! The kernel-log parser on real captures (tests/fixtures/README.md says where each
//! came from), on the documented wordings of older kernels, and on hostile input.

use proptest::prelude::*;
use sockmedic_ingest::kernel_log::{
    self, classify, parse_line, KernelLogBuilder, LineFormat, OTHERS,
};
use sockmedic_ingest::{kernel_log_from_lines, kernel_log_from_reader};
use sockmedic_model::{KernelLog, LogKind};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// `CLOCK_REALTIME - CLOCK_MONOTONIC` of the kernel the fixtures come from.
const FIXTURE_BOOT_TIME: f64 = 1_795_317_641.603_8;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kernel-log")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn log_of(name: &str) -> KernelLog {
    kernel_log_from_lines(name, fixture(name).lines(), None, None)
}

/// Every capture of the same ring buffer, one record per line.
const LINE_FORMATS: [(&str, LineFormat); 12] = [
    ("dmesg.txt", LineFormat::Dmesg),
    ("dmesg-r.txt", LineFormat::Dmesg),
    ("dmesg-x.txt", LineFormat::Dmesg),
    ("dmesg-T.txt", LineFormat::DmesgCtime),
    ("dmesg-time-format-iso.txt", LineFormat::DmesgIso),
    ("journalctl-k.txt", LineFormat::Syslog),
    ("journalctl-k-short-iso.txt", LineFormat::Syslog),
    ("journalctl-k-short-precise.txt", LineFormat::Syslog),
    ("journalctl-k-short-monotonic.txt", LineFormat::Syslog),
    ("journalctl-k-short-full.txt", LineFormat::Syslog),
    ("journalctl-k-short-unix.txt", LineFormat::Syslog),
    ("syslog-kern.log", LineFormat::Syslog),
];

/// (kind, detail, count) in order of first appearance, as every capture must give.
fn expected_messages() -> Vec<(LogKind, Option<String>, u64)> {
    let mut want = vec![
        (LogKind::PortRangeParity, None, 42),
        (LogKind::TooManyOrphans, None, 1),
        (LogKind::TcpMem, None, 1),
    ];
    let ports = ["127.0.0.1:7500", "[::1]:7501"]
        .into_iter()
        .map(str::to_string)
        .chain((7600..7610).map(|p| format!("127.0.0.1:{p}")))
        .chain(
            [
                "127.0.0.1:7620",
                "127.0.0.1:443",
                "[::1]:443",
                "127.0.0.1:8443",
                "[::1]:8443",
            ]
            .map(str::to_string),
        );
    want.extend(ports.map(|p| (LogKind::SynFlood, Some(p), 1)));
    want
}

fn summary(log: &KernelLog) -> Vec<(LogKind, Option<String>, u64)> {
    log.messages
        .iter()
        .map(|m| (m.kind, m.detail.clone(), m.count))
        .collect()
}

#[test]
fn every_capture_gives_the_same_counts() {
    for (name, format) in LINE_FORMATS
        .into_iter()
        .chain([("kmsg.txt", LineFormat::Kmsg)])
    {
        let log = log_of(name);
        assert_eq!(summary(&log), expected_messages(), "{name}");
        assert_eq!(log.suppressed, 6, "{name}");
        assert_eq!(log.source, name);
        let text = fixture(name);
        let last = text.lines().last().and_then(parse_line);
        assert_eq!(last.map(|l| l.format), Some(format), "{name}");
    }
}

#[test]
fn records_are_lines_without_the_kmsg_dictionary() {
    for (name, _) in LINE_FORMATS {
        assert_eq!(log_of(name).records, 83, "{name}");
    }
    let kmsg = fixture("kmsg.txt");
    let dictionary = kmsg.lines().filter(|l| l.starts_with(' ')).count();
    assert!(dictionary > 0);
    assert_eq!(
        log_of("kmsg.txt").records,
        (kmsg.lines().count() - dictionary) as u64
    );
}

#[test]
fn samples_are_the_last_occurrence_as_logged() {
    for (name, _) in LINE_FORMATS
        .into_iter()
        .chain([("kmsg.txt", LineFormat::Kmsg)])
    {
        let log = log_of(name);
        let flood = log
            .messages
            .iter()
            .find(|m| m.detail.as_deref() == Some("[::1]:8443"));
        assert_eq!(
            flood.map(|m| m.sample.as_str()),
            Some("TCP: request_sock_TCPv6: Possible SYN flooding on port [::1]:8443. Dropping request."),
            "{name}"
        );
    }
}

#[test]
fn uptimes_where_the_format_has_them() {
    for name in [
        "kmsg.txt",
        "dmesg.txt",
        "dmesg-r.txt",
        "dmesg-x.txt",
        "journalctl-k-short-monotonic.txt",
        "syslog-kern.log",
    ] {
        let log = log_of(name);
        assert_eq!(log.oldest_uptime_s, Some(0.0), "{name}");
        let parity = &log.messages[0];
        assert_eq!(parity.first_uptime_s, Some(2245.747215), "{name}");
        assert_eq!(parity.last_uptime_s, Some(9977.642665), "{name}");
        assert_eq!(
            (parity.first.as_deref(), parity.last.as_deref()),
            (None, None)
        );
    }
    for name in [
        "dmesg-T.txt",
        "journalctl-k.txt",
        "journalctl-k-short-iso.txt",
    ] {
        let log = log_of(name);
        assert_eq!(log.oldest_uptime_s, None, "{name}");
        assert!(log.messages.iter().all(|m| m.last_uptime_s.is_none()));
    }
}

#[test]
fn wall_times_where_the_format_has_them() {
    let cases = [
        ("dmesg-T.txt", "2026-11-22T06:06:58"),
        (
            "dmesg-time-format-iso.txt",
            "2026-11-22T06:06:58.642665+00:00",
        ),
        ("journalctl-k-short-iso.txt", "2026-11-22T06:07:08+00:00"),
        ("journalctl-k-short-full.txt", "2026-11-22T06:09:50Z"),
        ("journalctl-k-short-unix.txt", "2026-11-22T06:09:50Z"),
    ];
    for (name, last) in cases {
        let parity = &log_of(name).messages[0];
        assert_eq!(parity.last.as_deref(), Some(last), "{name}");
        assert!(parity.first.is_some(), "{name}");
    }
    // No year in the stamp: no wall time rather than a guessed year.
    for name in [
        "journalctl-k.txt",
        "journalctl-k-short-precise.txt",
        "syslog-kern.log",
    ] {
        assert!(
            log_of(name).messages.iter().all(|m| m.last.is_none()),
            "{name}"
        );
    }
}

/// Seconds of day of `...THH:MM:SS...`.
fn second_of_day(rfc3339: &str) -> i64 {
    let time = &rfc3339[11..19];
    let part = |r: std::ops::Range<usize>| time[r].parse::<i64>().unwrap_or(-1);
    part(0..2) * 3600 + part(3..5) * 60 + part(6..8)
}

#[test]
fn boot_time_turns_uptimes_into_the_wall_times_dmesg_t_printed() {
    let kmsg = fixture("kmsg.txt");
    let log = kernel_log_from_lines(
        "/dev/kmsg",
        kmsg.lines(),
        Some(FIXTURE_BOOT_TIME),
        Some(9992.0),
    );
    assert_eq!(log.read_uptime_s, Some(9992.0));
    let by_dmesg_t = log_of("dmesg-T.txt");
    assert_eq!(log.messages.len(), by_dmesg_t.messages.len());
    for (ours, theirs) in log.messages.iter().zip(&by_dmesg_t.messages) {
        let (Some(a), Some(b)) = (ours.last.as_deref(), theirs.last.as_deref()) else {
            panic!("no wall time: {ours:?} {theirs:?}");
        };
        assert!(a.ends_with('Z') && a.starts_with("2026-11-22T"), "{a}");
        assert_eq!(&a[..10], &b[..10]);
        // dmesg -T takes its boot time from CLOCK_BOOTTIME and truncates: a second
        // either way.
        let diff = (second_of_day(a) - second_of_day(b)).abs();
        assert!(diff <= 1, "{a} vs {b}");
    }
}

#[test]
fn dmesg_delta_forms_give_the_plain_messages() {
    // Captured a little later than the others (see the fixtures README): the same
    // 30 records in both files.
    let with_delta = fixture("dmesg-d.txt");
    let delta_only = fixture("dmesg-time-format-delta.txt");
    assert_eq!(with_delta.lines().count(), 30);
    for (a, b) in with_delta.lines().zip(delta_only.lines()) {
        let (a, b) = (parse_line(a), parse_line(b));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("not parsed");
        };
        assert_eq!((a.format, b.format), (LineFormat::Dmesg, LineFormat::Dmesg));
        assert!(a.uptime_s.is_some() && b.uptime_s.is_none());
        assert_eq!(a.message, b.message);
        assert!(!a.message.starts_with('['), "{}", a.message);
    }
    let (a, b) = (log_of("dmesg-d.txt"), log_of("dmesg-time-format-delta.txt"));
    assert_eq!(summary(&a), summary(&b));
    assert_eq!(a.messages[0].kind, LogKind::PortRangeParity);
    assert!(a.messages.iter().any(|m| m.kind == LogKind::TooManyOrphans));
}

#[test]
fn the_documented_wordings_of_older_kernels() {
    let text = fixture("kernel-source-strings.txt");
    for line in text.lines() {
        let parsed = parse_line(line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(parsed.format, LineFormat::Bare);
        assert!(classify(parsed.message).is_some(), "not recognised: {line}");
    }
    let log = log_of("kernel-source-strings.txt");
    let got: Vec<_> = summary(&log);
    let syn = |d: &str| (LogKind::SynFlood, Some(d.to_string()), 1);
    let want = vec![
        (LogKind::TooManyOrphans, None, 1),
        (LogKind::OutOfSocketMemory, None, 1),
        (LogKind::TwOverflow, None, 1),
        syn("203.0.113.5:443"),
        syn("[::1]:443"),
        (LogKind::SynFlood, Some("443".to_string()), 4),
        (LogKind::ConntrackFull, None, 2),
        (
            LogKind::ConntrackFull,
            Some("netns 4026532245".to_string()),
            2,
        ),
        (LogKind::FileMax, Some("65536".to_string()), 1),
        (LogKind::NoMoreSockets, None, 1),
        (
            LogKind::DropOpenRequest,
            Some("203.0.113.9/51234".to_string()),
            1,
        ),
        (LogKind::NeighborOverflow, Some("arp_cache".to_string()), 2),
        (
            LogKind::NeighborOverflow,
            Some("ndisc_cache".to_string()),
            1,
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn the_fixtures_cover_every_kind() {
    let mut kinds = BTreeSet::new();
    for name in ["dmesg.txt", "kernel-source-strings.txt"] {
        kinds.extend(log_of(name).messages.iter().map(|m| m.kind));
    }
    assert_eq!(kinds, LogKind::ALL.into_iter().collect());
}

#[test]
fn userspace_writes_to_kmsg_do_not_count() {
    // What `echo "TCP: too many orphaned sockets" > /dev/kmsg` leaves: facility user.
    let log = kernel_log_from_lines(
        "/dev/kmsg",
        [
            "12,900,10000000000,-;TCP: too many orphaned sockets",
            "Nov 22 06:07:08 vm myapp[42]: nf_conntrack: table full, dropping packet",
            "6,901,10000000001,-;TCP: too many orphaned sockets",
        ],
        None,
        None,
    );
    assert_eq!(log.records, 3);
    assert_eq!(summary(&log), vec![(LogKind::TooManyOrphans, None, 1)]);
    assert_eq!(log.messages[0].first_uptime_s, Some(10000.000001));
}

#[test]
fn first_and_last_follow_the_order_of_the_log() {
    let log = kernel_log_from_lines(
        "x",
        [
            "[ 10.0] TCP: too many orphaned sockets",
            "[ 11.0] socket: no more sockets",
            "[ 12.0] TCP: too many orphaned sockets",
            "[ 13.0] TCP: too many orphaned sockets",
        ],
        Some(0.0),
        None,
    );
    let m = &log.messages[0];
    assert_eq!((m.kind, m.count), (LogKind::TooManyOrphans, 3));
    assert_eq!(
        (m.first_uptime_s, m.last_uptime_s),
        (Some(10.0), Some(13.0))
    );
    assert_eq!(m.first.as_deref(), Some("1970-01-01T00:00:10Z"));
    assert_eq!(m.last.as_deref(), Some("1970-01-01T00:00:13Z"));
    assert_eq!(log.messages[1].kind, LogKind::NoMoreSockets);
    assert_eq!(log.oldest_uptime_s, Some(10.0));
}

#[test]
fn distinct_details_are_capped_and_folded() {
    let mut b = KernelLogBuilder::new("flood");
    for port in 0..10_000u32 {
        b.push_line(&format!(
            "[ 1.0] TCP: request_sock_TCP: Possible SYN flooding on port 10.0.0.1:{port}. Sending cookies."
        ));
    }
    b.push_line("[ 2.0] TCP: too many orphaned sockets");
    let log = b.finish();
    assert_eq!(log.records, 10_001);
    assert_eq!(log.messages.len(), kernel_log::DEFAULT_MAX_MESSAGES + 2);
    let total: u64 = log.messages.iter().map(|m| m.count).sum();
    assert_eq!(total, 10_001);
    let others: Vec<_> = log
        .messages
        .iter()
        .filter(|m| m.detail.as_deref() == Some(OTHERS))
        .collect();
    assert_eq!(others.len(), 2);
    assert_eq!(others[0].kind, LogKind::SynFlood);
    assert_eq!(
        others[0].count,
        10_000 - kernel_log::DEFAULT_MAX_MESSAGES as u64
    );
    assert_eq!(others[1].kind, LogKind::TooManyOrphans);
    // A detail seen before the cap keeps counting in its own entry.
    let mut b = KernelLogBuilder::new("x").max_messages(1);
    for port in [1, 2, 1, 3, 1] {
        b.push_line(&format!(
            "Possible SYN flooding on port {port}. Sending cookies."
        ));
    }
    let counts: Vec<_> = summary(&b.finish());
    assert_eq!(
        counts,
        vec![
            (LogKind::SynFlood, Some("1".to_string()), 3),
            (LogKind::SynFlood, Some(OTHERS.to_string()), 2),
        ]
    );
}

#[test]
fn empty_and_garbage_input() {
    let log = kernel_log_from_lines("empty", Vec::<String>::new(), None, None);
    assert_eq!(
        log,
        KernelLog {
            source: "empty".into(),
            ..KernelLog::default()
        }
    );
    let log = kernel_log_from_lines("blank", ["", "\n\n", "  ", "\r\n"], None, None);
    assert_eq!((log.records, log.messages.len()), (0, 0));
    let log = kernel_log_from_lines(
        "junk",
        [
            "[",
            "]",
            "[]",
            "<",
            "<>",
            "<99999999999999999999>",
            ";",
            "1,2,3,4;",
            "[ . ] x",
            "Nov",
            "Sun 2026-13-99 x",
        ],
        Some(f64::MAX),
        None,
    );
    assert!(log.messages.is_empty());
}

#[test]
fn binary_files_and_endless_lines_are_read_in_bounded_pieces() {
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    bytes.extend_from_slice(b"\n[ 5.0] TCP: too many orphaned sockets\n");
    bytes.extend(std::iter::repeat_n(b'x', 3 * kernel_log::MAX_LINE));
    bytes.extend_from_slice(b"\xff\xfe\n<6>[ 6.0] socket: no more sockets");
    let log =
        kernel_log_from_reader("bin", &bytes[..], None, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        summary(&log),
        vec![
            (LogKind::TooManyOrphans, None, 1),
            (LogKind::NoMoreSockets, None, 1),
        ]
    );
    assert_eq!(log.messages[1].last_uptime_s, Some(6.0));
    // The same file read as lines gives the same log.
    let file = fixture("dmesg.txt");
    let from_reader = kernel_log_from_reader("dmesg.txt", file.as_bytes(), None, None);
    assert_eq!(from_reader.ok(), Some(log_of("dmesg.txt")));
}

proptest! {
    #[test]
    fn parse_line_never_panics(s in any::<String>()) {
        if let Some(l) = parse_line(&s) {
            let _ = classify(l.message);
        }
        let _ = kernel_log::suppressed(&s);
    }

    #[test]
    fn lookalike_lines_never_panic(
        prefix in prop::sample::select(vec![
            "", "[", "[ 1.5] ", "<6>", "6,1,2,-;", "Nov 22 06:07:08 h kernel: ",
            "2026-11-22T06:07:08+0000 h kernel: ", "Sun 2026-11-22 06:09:50 UTC h kernel: ",
            "kern  :info  : ", "[Sun Nov 22 05:58:03 2026] ", "1795327790.5 h kernel: ",
        ]),
        body in "[\\[\\]<>;:,. 0-9a-zA-Z\u{e9}-]{0,80}",
    ) {
        let line = format!("{prefix}{body}");
        let log = kernel_log_from_lines("p", [line.as_str()], Some(1.0e9), None);
        prop_assert!(log.records <= 1);
        prop_assert!(log.messages.iter().map(|m| m.count).sum::<u64>() <= log.records);
    }

    #[test]
    fn counts_never_exceed_records(lines in prop::collection::vec(any::<String>(), 0..40)) {
        let log = kernel_log_from_lines("p", &lines, None, None);
        prop_assert!(log.messages.iter().map(|m| m.count).sum::<u64>() <= log.records);
        prop_assert!(log.messages.len() <= kernel_log::DEFAULT_MAX_MESSAGES + LogKind::ALL.len());
    }

    #[test]
    fn any_bytes_through_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        prop_assert!(kernel_log_from_reader("p", &bytes[..], None, None).is_ok());
    }
}
