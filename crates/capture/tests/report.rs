//! The findings and the `--filter` of `capture::report`, on summaries built by hand
//! (the fixtures have no unanswered SYN and no storm of resets; fin-retrans.pcap's
//! stall is tested through the binary in crates/sockmedic/tests/pcap.rs).

use sockmedic_capture::{capture_section, Aggregate, Filter, Summary};
use sockmedic_diagnose::Thresholds;
use sockmedic_model::Severity;
use std::net::SocketAddr;

/// The defaults of the catalog's `capture.*` thresholds.
const STALL_FIN_WAIT_MS: u64 = 1_000;
const RESET_STORM_MIN: u64 = 10;

fn findings(s: &Summary) -> Vec<sockmedic_model::Finding> {
    sockmedic_capture::findings(s, &Thresholds::default())
}

fn ep(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn teardown_stall_per_remote_with_fin_retransmissions_or_a_long_wait() {
    let mut s = Summary {
        connections: 30,
        ..Summary::default()
    };
    let agg = |stalled, rexmit, wait_ms: u64| Aggregate {
        connections: 10,
        stalled,
        fin_retransmissions: rexmit,
        max_fin_wait_ns: (wait_ms * 1_000_000) as i64,
        ..Aggregate::default()
    };
    s.by_server.insert(ep("10.0.0.1:443"), agg(4, 9, 14_000));
    s.by_server
        .insert(ep("10.0.0.2:443"), agg(1, 0, STALL_FIN_WAIT_MS));
    // Unacknowledged at the very end of the capture, but only just: no finding.
    s.by_server
        .insert(ep("10.0.0.3:443"), agg(1, 0, STALL_FIN_WAIT_MS - 1));
    let f = findings(&s);
    let codes: Vec<_> = f
        .iter()
        .map(|f| (f.code.as_str(), f.subject.remote.as_deref(), f.severity))
        .collect();
    assert_eq!(
        codes,
        [
            ("teardown-stall", Some("10.0.0.1:443"), Severity::Critical),
            ("teardown-stall", Some("10.0.0.2:443"), Severity::Warning),
        ]
    );
    assert_eq!(f[0].subject.count, Some(4));
    assert!(f[0].evidence[0].contains("14.0 s"), "{:?}", f[0].evidence);

    let c = capture_section(&s, 10);
    let top: Vec<_> = c.top_stalled.iter().map(|t| t.endpoint.as_str()).collect();
    assert_eq!(top, ["10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443"]);
    assert_eq!(c.top_stalled[0].max_fin_wait_ms, 14_000);
    assert_eq!(capture_section(&s, 1).top_stalled.len(), 1);
}

#[test]
fn syn_unanswered_per_listener_and_reset_storm() {
    let mut s = Summary {
        connections: 40,
        resets: RESET_STORM_MIN,
        ..Summary::default()
    };
    s.by_server.insert(
        ep("[2001:db8::1]:8080"),
        Aggregate {
            connections: 5,
            syn_unanswered: 3,
            ..Aggregate::default()
        },
    );
    let f = findings(&s);
    let codes: Vec<_> = f.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ["syn-unanswered", "reset-storm"]);
    assert_eq!(f[0].subject.local.as_deref(), Some("[2001:db8::1]:8080"));
    assert_eq!(f[0].subject.count, Some(3));
    assert_eq!(f[1].subject.count, Some(RESET_STORM_MIN));

    // The same resets among many more connections are no storm.
    s.connections = 1000;
    assert!(findings(&s).iter().all(|f| f.code != "reset-storm"));
}

#[test]
fn filter_terms() {
    let f = Filter::parse(&["host:10.0.0.1", "host:[::1]", "port:443"]).unwrap();
    assert_eq!(f.hosts.len(), 2);
    assert_eq!(f.ports, [443]);
    assert!(Filter::parse(&["port:70000"]).is_err());
    assert!(Filter::parse(&["host:nope"]).is_err());
    assert!(Filter::parse(&["10.0.0.1"]).is_err());
    assert!(Filter::parse::<&str>(&[]).unwrap().is_empty());
}

#[test]
fn thresholds_come_from_the_catalog_and_can_be_changed() {
    let d = Thresholds::default();
    assert_eq!(
        d.get("capture.fin-wait-warning-ms"),
        STALL_FIN_WAIT_MS as f64
    );
    assert_eq!(d.get("capture.reset-min"), RESET_STORM_MIN as f64);
    let mut s = Summary {
        connections: 100,
        resets: 5,
        ..Summary::default()
    };
    s.by_server.insert(
        ep("10.0.0.9:443"),
        Aggregate {
            connections: 1,
            stalled: 1,
            max_fin_wait_ns: 3_000_000_000,
            ..Aggregate::default()
        },
    );
    let codes = |t: &Thresholds| -> Vec<(String, Severity)> {
        sockmedic_capture::findings(&s, t)
            .into_iter()
            .map(|f| (f.code, f.severity))
            .collect()
    };
    assert_eq!(codes(&d), [("teardown-stall".into(), Severity::Warning)]);
    let mut t = Thresholds::default();
    t.set_pair("capture.fin-wait-critical-ms=2000").unwrap();
    t.set_pair("capture.reset-min=5").unwrap();
    t.set_pair("capture.reset-share=0.05").unwrap();
    assert_eq!(
        codes(&t),
        [
            ("teardown-stall".into(), Severity::Critical),
            ("reset-storm".into(), Severity::Warning)
        ]
    );
    t.set_pair("capture.fin-wait-warning-ms=5000").unwrap();
    t.set_pair("capture.fin-wait-critical-ms=10000").unwrap();
    assert_eq!(codes(&t), [("reset-storm".into(), Severity::Warning)]);
}

/// The stalled closes' sockets: at the endpoint itself when its own FINs go unanswered
/// (incident 1's LAST-ACK on a listener), at its clients when theirs do (incident 2's
/// FIN-WAIT-1 towards a remote).
#[test]
fn teardown_stall_subject_says_whose_sockets_wait_and_in_which_state() {
    let mut s = Summary::default();
    s.by_server.insert(
        ep("10.0.0.38:8080"),
        Aggregate {
            connections: 10,
            stalled: 9,
            fin_retransmissions: 20,
            server_last_ack: 8,
            client_fin_wait_1: 1,
            ..Aggregate::default()
        },
    );
    s.by_server.insert(
        ep("203.0.113.7:443"),
        Aggregate {
            connections: 10,
            stalled: 5,
            fin_retransmissions: 12,
            client_fin_wait_1: 5,
            ..Aggregate::default()
        },
    );
    let f = findings(&s);
    let subjects: Vec<_> = f
        .iter()
        .map(|f| {
            (
                f.subject.local.as_deref(),
                f.subject.remote.as_deref(),
                f.subject.state.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        subjects,
        [
            (Some("10.0.0.38:8080"), None, Some("LAST-ACK")),
            (None, Some("203.0.113.7:443"), Some("FIN-WAIT-1")),
        ]
    );
    assert!(f[0].evidence[1].contains("own FIN"), "{:?}", f[0].evidence);
}

/// SYN-ACKs sent again: the handshake's last ACK does not arrive; the listener's
/// requests wait in SYN-RECV.
#[test]
fn syn_unanswered_from_syn_ack_retransmissions() {
    let mut s = Summary::default();
    s.by_server.insert(
        ep("10.0.0.1:8080"),
        Aggregate {
            connections: 6,
            syn_ack_retransmitted: 5,
            syn_ack_retransmissions: 15,
            ..Aggregate::default()
        },
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].code, "syn-unanswered");
    assert_eq!(f[0].subject.local.as_deref(), Some("10.0.0.1:8080"));
    assert_eq!(f[0].subject.state.as_deref(), Some("SYN-RECV"));
    assert_eq!(f[0].subject.count, Some(5));
    assert!(f[0].evidence[0].contains("15 times"), "{:?}", f[0].evidence);
}
