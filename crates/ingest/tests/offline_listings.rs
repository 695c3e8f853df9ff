//! The socket listing and counter formats (`ss`, `netstat`, `nstat`,
//! `/proc/net/tcp`), each read from real outputs (tests/fixtures/offline/README.md)
//! into the figures the namespace really held.

use proptest::prelude::*;
use sockmedic_ingest::offline::{Input, Offline, ReadOptions, FORMATS};
use sockmedic_ingest::read_path;
use sockmedic_model::{format_endpoint, Netns, Snapshot, SourceKind, TcpState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/offline")
        .join(name)
}

fn read(name: &str) -> Snapshot {
    read_path(&fixture(name), ReadOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ns(s: &Snapshot) -> &Netns {
    &s.netns[0]
}

fn json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    serde_json::from_str(&text).expect("json")
}

/// statemaker's `expect` (what the namespace held), as report names.
fn expected_states() -> BTreeMap<String, u64> {
    let v = json("statemaker.json");
    v["expect"]
        .as_object()
        .expect("expect")
        .iter()
        // ss and netstat (as /proc/net/tcp) do not list bound-inactive sockets.
        .filter(|(k, _)| k.as_str() != "BOUND-INACTIVE")
        .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
        .collect()
}

fn states(s: &Snapshot) -> BTreeMap<String, u64> {
    ns(s)
        .states
        .iter()
        .map(|(st, n)| (st.name().to_string(), n))
        .collect()
}

fn listeners(s: &Snapshot) -> Vec<(String, u32, u32, u64)> {
    let mut v: Vec<_> = ns(s)
        .listeners
        .iter()
        .map(|l| {
            (
                format_endpoint(&l.local),
                l.backlog,
                l.accept_queue,
                l.syn_recv,
            )
        })
        .collect();
    v.sort();
    v
}

fn expected_listeners() -> Vec<(String, u32, u32, u64)> {
    let v = json("statemaker.json");
    let mut out: Vec<_> = v["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .map(|l| {
            (
                l["local"].as_str().expect("local").to_string(),
                l["backlog"].as_u64().expect("backlog") as u32,
                l["accept_queue"].as_u64().expect("aq") as u32,
                l["syn_recv"].as_u64().expect("syn_recv"),
            )
        })
        .collect();
    out.sort();
    out
}

fn listed(s: &Snapshot) -> Vec<TcpState> {
    ns(s).dump.as_ref().expect("a listing").states.clone()
}

#[test]
fn every_ss_listing_of_the_statemaker_namespace_counts_what_it_held() {
    for f in [
        "ss-tan.txt",
        "ss-ta.txt",
        "ss-t-a.txt",
        "ss-Htan.txt",
        "ss-tanp.txt",
        "ss-tanoemi.txt",
        "ss-peaonmi.txt",
        "ss-aonp.txt",
    ] {
        let s = read(f);
        assert_eq!(states(&s), expected_states(), "{f}");
        assert_eq!(listeners(&s), expected_listeners(), "{f}");
        assert!(
            listed(&s).contains(&TcpState::Listen),
            "{f}: -a lists LISTEN"
        );
    }
}

#[test]
fn netstat_and_proc_listings_count_what_the_namespace_held() {
    for f in ["netstat-ant.txt", "netstat-antp.txt"] {
        let s = read(f);
        assert_eq!(states(&s), expected_states(), "{f}");
        // The backlog is not in these listings: listeners are there, unjudged.
        assert_eq!(ns(&s).listeners.len(), expected_listeners().len());
        assert!(ns(&s)
            .listeners
            .iter()
            .all(|l| l.backlog == 0 && l.accept_queue == 0));
        let note = s
            .missing
            .iter()
            .find(|m| m.what.starts_with("listener backlogs"))
            .expect("a note on backlogs");
        assert!(note.why.contains("2 of 21 listeners"), "{}", note.why);
    }
    // /proc/net/tcp and tcp6 of the same moment, read together as a directory.
    let dir = std::env::temp_dir().join(format!("sockmedic-proc-net-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for f in ["proc-net-tcp.txt", "proc-net-tcp6.txt"] {
        std::fs::copy(fixture(f), dir.join(f)).expect("copy");
    }
    let s = read_path(&dir, ReadOptions::default()).expect("proc/net/tcp");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(states(&s), expected_states());
    assert!(!listed(&s).contains(&TcpState::Close));
}

#[test]
fn listings_without_a_say_which_states_they_cover() {
    // Without -a, ss leaves out LISTEN, TIME-WAIT and SYN-RECV (its SS_CONN);
    // netstat only LISTEN.
    for (f, left_out) in [
        ("ss-tn.txt", &["LISTEN", "TIME-WAIT", "SYN-RECV"][..]),
        ("netstat-tn.txt", &["LISTEN"][..]),
    ] {
        let s = read(f);
        let mut want = expected_states();
        for st in left_out {
            want.remove(*st);
            assert!(!listed(&s).iter().any(|l| l.name() == *st), "{f}: {st}");
        }
        let got: BTreeMap<_, _> = states(&s).into_iter().filter(|(_, n)| *n > 0).collect();
        want.retain(|_, n| *n > 0);
        assert_eq!(got, want, "{f}");
    }
    for f in ["ss-tln.txt", "netstat-tln.txt"] {
        let s = read(f);
        assert_eq!(listed(&s), vec![TcpState::Listen], "{f}");
        assert_eq!(ns(&s).states.count(TcpState::Listen), 2, "{f}");
    }
}

#[test]
fn process_columns_name_the_holder() {
    let v = json("statemaker.json");
    let pid = v["pid"].as_u64().expect("pid") as u32;
    let mut want: BTreeMap<String, u64> = v["process"]["states"]
        .as_object()
        .expect("process states")
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("n")))
        .collect();
    want.remove("BOUND-INACTIVE");
    for f in [
        "ss-tanp.txt",
        "ss-peaonmi.txt",
        "ss-aonp.txt",
        "netstat-antp.txt",
    ] {
        let s = read(f);
        assert_eq!(s.processes.len(), 1, "{f}");
        let p = &s.processes[0];
        assert_eq!((p.pid, p.comm.as_str()), (pid, "python3"), "{f}");
        let got: BTreeMap<String, u64> = p
            .states
            .iter()
            .map(|(st, n)| (st.name().to_string(), n))
            .collect();
        assert_eq!(got, want, "{f}");
    }
    assert!(read("ss-tan.txt").processes.is_empty());
}

#[test]
fn extended_listings_tell_orphans_from_held_sockets() {
    let want = json("statemaker.json")["orphans"]
        .as_u64()
        .expect("orphans");
    for f in ["ss-tanoemi.txt", "ss-peaonmi.txt"] {
        assert_eq!(ns(&read(f)).orphans, Some(want), "{f}");
    }
    // Without `-e` the inode is unknown: every FIN-WAIT/LAST-ACK/CLOSING counts
    // (an upper bound: FIN-WAIT-1 9 + FIN-WAIT-2 11 + LAST-ACK 15).
    assert_eq!(ns(&read("ss-tan.txt")).orphans, Some(35));
}

#[test]
fn mixed_protocols_keep_tcp_and_read_device_bound_endpoints() {
    let s = read("ss-aonp-mixed.txt");
    assert_eq!(ns(&s).states.count(TcpState::Listen), 2);
    assert_eq!(ns(&s).states.count(TcpState::Established), 2);
    assert_eq!(
        listeners(&s),
        vec![
            ("127.0.0.1:7300".to_string(), 8, 0, 0),
            ("[::1]:7301".to_string(), 3, 0, 0)
        ]
    );
    assert_eq!(s.processes.len(), 1);
    // The UDP and unix sockets of the same process are not TCP sockets.
    assert_eq!(s.processes[0].socket_fds, Some(4));
}

#[test]
fn old_ss_listings_with_service_names_and_unbracketed_ipv6() {
    let s = read("ss-t-old-linux-help.txt");
    assert_eq!(ns(&s).states.count(TcpState::Established), 4);
    let mut remote_ports: Vec<u16> = ns(&s).top_remote.iter().map(|r| r.endpoint.port).collect();
    remote_ports.sort();
    assert_eq!(remote_ports, vec![80, 443, 5222, 6667]);
    let s = read("ss-lt-old-centos7.txt");
    let got: Vec<String> = listeners(&s).into_iter().map(|l| l.0).collect();
    assert_eq!(
        got,
        vec!["0.0.0.0:22", "127.0.0.1:25", "[::1]:25", "[::]:22"]
    );
}

#[test]
fn ss_summary_current() {
    let s = read("ss-s.txt");
    // Total: 145 / TCP: 174 (estab 63, closed 52, orphaned 24, timewait 28), and the
    // transport row TCP 122 65 57; /proc/net/sockstat of the same moment says
    // inuse 65 orphan 24 tw 28 alloc 146.
    assert_eq!(s.host.sockstat.tcp_alloc, Some(146));
    assert_eq!(s.host.sockstat.tcp_orphan, Some(24));
    let n = &ns(&s).sockstat;
    assert_eq!(
        (n.tcp_inuse, n.tcp6_inuse, n.tcp_tw),
        (Some(65), Some(57), Some(28))
    );
    assert_eq!(n.sockets_used, Some(145));
    assert_eq!(ns(&s).counter("Tcp", "CurrEstab"), Some(63));
    assert_eq!(ns(&s).bind_buckets, None);
}

#[test]
fn ss_summary_before_iproute2_4_17() {
    let s = read("ss-s-old-habr.txt");
    assert_eq!(s.host.sockstat.tcp_alloc, Some(39306 - 24929));
    assert_eq!(s.host.sockstat.tcp_orphan, Some(110));
    let n = &ns(&s).sockstat;
    assert_eq!(
        (n.tcp_inuse, n.tcp6_inuse, n.tcp_tw),
        (Some(1214), Some(13000), Some(24929))
    );
    assert_eq!(n.sockets_used, Some(15046));
    assert_eq!(ns(&s).bind_buckets, Some(0));
    // Incident 1's pasted line.
    let s = read("ss-s-old-incident1.txt");
    assert_eq!(s.host.sockstat.tcp_alloc, Some(146848 - 4823));
    assert_eq!(s.host.sockstat.tcp_orphan, Some(94904));
    assert_eq!(ns(&s).sockstat.tcp_tw, Some(4823));
    assert_eq!(ns(&s).counter("Tcp", "CurrEstab"), Some(29556));
    assert_eq!(ns(&s).bind_buckets, Some(10946));
}

#[test]
fn incident_3_closed_sockets_and_ports() {
    let s = read("incident3");
    // `ss -s`: TCP: 41047 (estab 74, closed 40940, orphaned 0, synrecv 0,
    // timewait 3/0), ports 12036; sockstat, read a moment apart: TCP: inuse 81
    // orphan 0 tw 6 alloc 41019. sockstat wins where both say something.
    assert_eq!(s.host.sockstat.tcp_alloc, Some(41019));
    assert_eq!(ns(&s).sockstat.tcp_inuse, Some(81));
    let c = s.host.closed.as_ref().expect("closed");
    // alloc − inuse: the sockets in no table.
    assert_eq!(c.unhashed, 41019 - 81);
    assert_eq!(ns(&s).bind_buckets, Some(12036));
    assert_eq!(
        ns(&s)
            .sysctl
            .get("net.ipv4.ip_local_port_range")
            .map(String::as_str),
        Some("50000 62000")
    );
}

#[test]
fn netstat_s_current_matches_nstat_of_the_same_namespace() {
    let a = read("netstat-s.txt");
    let b = read("nstat-az.txt");
    for (section, name, want) in [
        ("Tcp", "ActiveOpens", 91),
        ("Tcp", "PassiveOpens", 71),
        ("Tcp", "AttemptFails", 0),
        ("Tcp", "EstabResets", 16),
        ("Tcp", "CurrEstab", 63),
        ("TcpExt", "ListenOverflows", 8),
        ("TcpExt", "ListenDrops", 8),
        ("TcpExt", "TW", 28),
        ("TcpExt", "TCPAbortOnData", 8),
        // Zero, so netstat leaves them out: absent from a TcpExt section is 0.
        ("TcpExt", "TCPAbortOnMemory", 0),
        ("TcpExt", "TCPReqQFullDrop", 0),
        ("TcpExt", "TCPTimeWaitOverflow", 0),
    ] {
        assert_eq!(
            ns(&a).counter(section, name),
            Some(want),
            "netstat -s {name}"
        );
        // nstat leaves out the gauge CurrEstab.
        if name != "CurrEstab" {
            assert_eq!(ns(&b).counter(section, name), Some(want), "nstat {name}");
        }
    }
    // A `Name: N` line (net-tools has no sentence for it).
    assert_eq!(ns(&a).counter("TcpExt", "TCPTimeouts"), Some(95));
    assert_eq!(ns(&b).counter("TcpExt", "TCPTimeouts"), Some(95));
}

#[test]
fn netstat_s_of_2002() {
    let s = read("netstat-s-old-lkml-2002.txt");
    for (section, name, want) in [
        ("Tcp", "ActiveOpens", 64),
        ("Tcp", "PassiveOpens", 16690445),
        ("Tcp", "AttemptFails", 56552),
        ("Tcp", "CurrEstab", 3),
        ("Tcp", "OutSegs", 203629500),
        ("Tcp", "RetransSegs", 4241408),
        ("Tcp", "InErrs", 0),
        ("TcpExt", "TW", 8884840),
        ("TcpExt", "ListenOverflows", 54977),
        ("TcpExt", "ListenDrops", 54977),
        ("TcpExt", "TCPTimeouts", 373473),
        ("TcpExt", "TCPAbortOnMemory", 0),
        ("TcpExt", "TCPMemoryPressures", 0),
    ] {
        assert_eq!(ns(&s).counter(section, name), Some(want), "{name}");
    }
}

#[test]
fn a_saved_last_ack_storm_is_a_teardown_stall_on_its_listener() {
    let meta = json("lastack-storm.json");
    let s = read("ss-tan-lastack-storm.txt");
    assert_eq!(ns(&s).states.count(TcpState::LastAck), 300);
    let d = sockmedic_diagnose::diagnose(&s, None, &Default::default());
    let f = d
        .findings
        .iter()
        .find(|f| f.code == "teardown-stall")
        .expect("teardown-stall");
    assert_eq!(f.subject.local.as_deref(), meta["listener"].as_str());
    assert_eq!(f.subject.state.as_deref(), Some("LAST-ACK"));
    assert_eq!(f.subject.count, Some(300));
}

// ---------------------------------------------------------------- robustness

const PARSERS: &[&str] = &[
    "ss -s",
    "ss listing",
    "netstat listing",
    "netstat -s",
    "nstat",
    "/proc/net/tcp",
];

fn parse_with(format: &str, bytes: &[u8]) {
    let f = FORMATS
        .iter()
        .find(|f| f.name == format)
        .unwrap_or_else(|| panic!("no format {format}"));
    let mut out = Offline::new(SourceKind::Text, ReadOptions::default());
    let input = Input {
        name: "fuzz".into(),
        path: None,
    };
    let _ = (f.sniff)(&String::from_utf8_lossy(bytes), &input);
    let _ = (f.parse)(&mut &bytes[..], &mut out, &input);
    let _ = out.finish();
}

fn fixture_bytes() -> Vec<Vec<u8>> {
    [
        "ss-s.txt",
        "ss-s-old-habr.txt",
        "ss-tanp.txt",
        "ss-peaonmi.txt",
        "netstat-antp.txt",
        "netstat-s.txt",
        "nstat-az.txt",
        "proc-net-tcp6.txt",
    ]
    .iter()
    .map(|f| std::fs::read(fixture(f)).expect("fixture"))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for p in PARSERS {
            parse_with(p, &bytes);
        }
    }

    #[test]
    fn parsers_never_panic_on_lines_that_look_almost_right(
        line in "(ESTAB|LISTEN|tcp|TCP:|tcp6|users:\\(\\(|timer:\\(|[0-9A-F]{8}:)[ -~\\t]{0,80}"
    ) {
        for p in PARSERS {
            parse_with(p, line.as_bytes());
        }
    }

    #[test]
    fn parsers_never_panic_on_truncated_or_damaged_fixtures(
        which in 0usize..8, cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), b in any::<u8>()
    ) {
        let all = fixture_bytes();
        let mut bytes = all[which].clone();
        let at = flip.index(bytes.len());
        bytes[at] = b;
        bytes.truncate(cut.index(bytes.len() + 1));
        for p in PARSERS {
            parse_with(p, &bytes);
        }
    }
}

#[test]
fn each_fixture_is_recognised_as_its_own_format() {
    use sockmedic_ingest::offline::detect;
    let want = [
        ("ss-s.txt", "ss -s"),
        ("ss-s-old-habr.txt", "ss -s"),
        ("ss-s-old-incident1.txt", "ss -s"),
        ("ss-tan.txt", "ss listing"),
        ("ss-Htan.txt", "ss listing"),
        ("ss-tanoemi.txt", "ss listing"),
        ("ss-peaonmi.txt", "ss listing"),
        ("ss-aonp-mixed.txt", "ss listing"),
        ("ss-t-old-linux-help.txt", "ss listing"),
        ("netstat-antp.txt", "netstat listing"),
        ("netstat-tln.txt", "netstat listing"),
        ("netstat-s.txt", "netstat -s"),
        ("netstat-s-old-lkml-2002.txt", "netstat -s"),
        ("nstat-az.txt", "nstat"),
        ("proc-net-tcp.txt", "/proc/net/tcp"),
        ("proc-net-tcp6.txt", "/proc/net/tcp"),
        ("sockstat.txt", "/proc/net/sockstat"),
    ];
    for (f, format) in want {
        let head = std::fs::read(fixture(f)).expect("fixture");
        let head = String::from_utf8_lossy(&head[..head.len().min(8192)]).into_owned();
        let input = Input {
            name: f.into(),
            path: Some(fixture(f)),
        };
        assert_eq!(detect(&head, &input).map(|x| x.name), Some(format), "{f}");
    }
    // The other formats' fixtures are not taken for one of these.
    let mine = PARSERS;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernel-log");
    for e in std::fs::read_dir(dir).expect("kernel-log fixtures") {
        let p = e.expect("entry").path();
        let head = std::fs::read(&p).expect("fixture");
        let head = String::from_utf8_lossy(&head[..head.len().min(8192)]).into_owned();
        let input = Input {
            name: p.display().to_string(),
            path: Some(p.clone()),
        };
        if let Some(f) = detect(&head, &input) {
            assert!(
                !mine.contains(&f.name),
                "{} read as {}",
                p.display(),
                f.name
            );
        }
    }
}
