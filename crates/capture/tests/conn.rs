//! The teardown analysis on the fixtures, against tshark's counts (`expected.txt`).

mod common;

use std::time::Duration;

use common::{expected, fixture};
use sockmedic_capture::{analyze, Capture, Config, EventKind, Outcome, Role, Summary};

fn summary(name: &str) -> Summary {
    let mut cap = Capture::open(&fixture(name)).unwrap();
    let (s, err) = analyze(&mut cap, Config::default());
    assert!(err.is_none(), "{name}: {err:?}");
    s
}

#[test]
fn counts_match_tshark_on_every_fixture() {
    for e in expected() {
        let s = summary(&e.file);
        assert_eq!(s.packets as usize, e.packets, "{}: packets", e.file);
        let got = (
            s.syn_packets as usize,
            s.fin_packets as usize,
            s.rst_packets as usize,
            s.fin_retransmissions as usize,
        );
        assert_eq!(
            got,
            (e.syn, e.fin, e.rst, e.fin_rexmit),
            "{}: syn, fin, rst, fin retransmissions",
            e.file
        );
    }
}

/// traffic.py: five normal closes, one SO_LINGER 0 (RST after data, no FIN), one refused.
#[test]
fn normal_closes_complete_and_the_reset_is_marked() {
    let s = summary("lo.pcap");
    assert_eq!(s.connections, 7, "{s:#?}");
    assert_eq!(s.closes_completed, 5);
    assert_eq!(s.resets, 2);
    assert_eq!(s.fin_retransmissions, 0);
    assert_eq!(s.syn_unanswered, 0);
    assert_eq!((s.closing_at_end, s.open_at_end, s.evicted), (0, 0, 0));
    // The linger-0 close: the client resets, before any FIN.
    let rst = &s.by_server;
    let a = rst[&"127.0.0.1:8200".parse().unwrap()];
    assert_eq!((a.connections, a.resets, a.closes_completed), (1, 1, 0));
    let refused = rst[&"127.0.0.1:9".parse().unwrap()];
    assert_eq!((refused.connections, refused.resets), (1, 1));
    // The client closes first in every normal exchange.
    for c in &s.slowest {
        assert_eq!(c.outcome, Outcome::Closed);
        assert_eq!(c.first_fin, Some(Role::Client), "{c:#?}");
        assert!(c.roles_known);
    }
}

#[test]
fn fin_retransmitted_until_acknowledged() {
    let s = summary("fin-retrans.pcap");
    // Two connections on one 4-tuple, both closed.
    assert_eq!((s.connections, s.closes_completed), (2, 2), "{s:#?}");
    assert_eq!(s.fin_retransmissions, 5);
    let slow = &s.slowest[0];
    assert_eq!(slow.client.to_string(), "127.0.0.1:40300");
    assert_eq!(slow.server.to_string(), "127.0.0.1:8300");
    assert_eq!(slow.first_fin, Some(Role::Client));
    assert_eq!(slow.client_side.fins, 6);
    assert_eq!(slow.client_side.fin_retransmissions, 5);
    assert_eq!(slow.server_side.fin_retransmissions, 0);
    let wait = Duration::from_nanos(slow.client_side.fin_ack_wait_ns.unwrap() as u64);
    assert!(
        wait > Duration::from_secs(3) && wait < Duration::from_secs(4),
        "{wait:?}"
    );
    let kinds: Vec<_> = slow.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == EventKind::FinRetransmission)
            .count(),
        5
    );
    assert_eq!(kinds[0], EventKind::Syn);
    // The second connection: the server closed first, quickly.
    let other = &s.slowest[1];
    assert_eq!(other.first_fin, Some(Role::Server));
    assert_eq!(other.fin_retransmissions(), 0);
    let remote = s.by_server[&"127.0.0.1:8300".parse().unwrap()];
    assert_eq!((remote.connections, remote.fin_retransmissions), (2, 5));
    assert!(remote.max_fin_wait_ns > 3_000_000_000);
    assert_eq!(
        s.by_client_host[&"127.0.0.1".parse().unwrap()].fin_retransmissions,
        5
    );
    assert_eq!(s.top_stalled(1)[0].0.to_string(), "127.0.0.1:8300");
}

/// A tiny table: connections are folded in as they are, nothing is lost from the counts.
#[test]
fn bounded_table_keeps_the_counts() {
    let mut cap = Capture::open(&fixture("lo.pcap")).unwrap();
    let cfg = Config {
        max_open: 2,
        top_n: 2,
        ..Config::default()
    };
    let (s, _) = analyze(&mut cap, cfg);
    assert_eq!(s.fin_packets, 10);
    assert_eq!(s.connections, 7);
    assert_eq!(s.slowest.len(), 2);
    assert!(s.slowest[0].teardown_ns >= s.slowest[1].teardown_ns);
}

/// Times come from the file and a damaged one can hold anything (the fuzz test found a
/// capture whose times jump from near i64::MIN to near i64::MAX): no overflow, and the
/// connection is still counted.
#[test]
fn wild_timestamps_do_not_overflow() {
    use sockmedic_capture::{flags, Analyzer, TcpSegment};
    let (client, server) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let seg = |from_client: bool, seq: u32, ack: u32, f: u8| TcpSegment {
        src: if from_client { client } else { server },
        dst: if from_client { server } else { client },
        src_port: if from_client { 40000 } else { 80 },
        dst_port: if from_client { 80 } else { 40000 },
        seq,
        ack,
        flags: f,
        window: 1000,
        payload_len: 0,
        tunnel: None,
    };
    let mut a = Analyzer::new(Config::default());
    a.segment(i64::MIN, &seg(true, 1, 0, flags::SYN));
    a.segment(i64::MIN + 1, &seg(false, 7, 2, flags::SYN | flags::ACK));
    a.segment(i64::MIN + 2, &seg(true, 2, 8, flags::FIN | flags::ACK));
    a.segment(i64::MAX, &seg(false, 8, 3, flags::FIN | flags::ACK));
    a.segment(i64::MAX, &seg(true, 3, 9, flags::ACK));
    a.segment(i64::MIN, &seg(true, 2, 8, flags::FIN | flags::ACK));
    let s = a.finish();
    assert_eq!(s.connections, 1);
    assert_eq!(s.fin_packets, 3);
}
