//! The framing layer on captures made by `tests/fixtures/make.sh`.

mod common;

use common::{expected, fixture};
use sockmedic_capture::{Capture, Error, Packet};

fn packets(name: &str) -> Vec<(i64, u32, u32, usize)> {
    let cap = Capture::open(&fixture(name)).unwrap();
    cap.packets()
        .unwrap()
        .map(|p| {
            let p: Packet = p.unwrap();
            (p.ts_ns, p.linktype, p.interface, p.data.len())
        })
        .collect()
}

#[test]
fn packet_counts_match_tshark() {
    let all = expected();
    assert!(all.len() >= 16);
    for e in all {
        assert_eq!(packets(&e.file).len(), e.packets, "{}", e.file);
    }
}

#[test]
fn link_types() {
    for (file, linktype) in [
        ("lo.pcap", 1),
        ("any-sll.pcap", 113),
        ("any-sll2-nano.pcap", 276),
        ("rawip.pcap", 101),
        ("rawip4.pcap", 228),
        ("rawip6.pcap", 229),
        ("null.pcap", 0),
        ("loop.pcap", 108),
    ] {
        assert!(packets(file).iter().all(|p| p.1 == linktype), "{file}");
    }
}

/// The same packets in other byte orders, resolutions and formats keep the same times.
#[test]
fn timestamps_agree_across_formats() {
    let base = packets("lo.pcap");
    assert!(
        base[0].0 > 1_600_000_000 * 1_000_000_000,
        "epoch nanoseconds"
    );
    assert!(base.windows(2).all(|w| w[0].0 <= w[1].0));
    for other in ["lo-be.pcap", "lo-nano.pcap", "lo.pcapng", "lo.pcapng.gz"] {
        assert_eq!(packets(other), base, "{other}");
    }
}

/// Two interfaces: Ethernet in microseconds and Linux cooked v2 in nanoseconds.
#[test]
fn pcapng_interfaces_keep_their_link_type_and_resolution() {
    let pkts = packets("two-interfaces.pcapng");
    let eth: Vec<_> = pkts.iter().filter(|p| p.2 == 0).collect();
    let sll2: Vec<_> = pkts.iter().filter(|p| p.2 == 1).collect();
    assert_eq!((eth.len(), sll2.len()), (60, 60));
    assert!(eth.iter().all(|p| p.1 == 1 && p.0 % 1000 == 0));
    assert!(sll2.iter().all(|p| p.1 == 276));
    assert!(
        sll2.iter().any(|p| p.0 % 1000 != 0),
        "nanosecond digits survive"
    );
    let nano = packets("any-sll2-nano.pcap");
    let ts: Vec<i64> = sll2.iter().map(|p| p.0).collect();
    assert_eq!(ts, nano.iter().map(|p| p.0).collect::<Vec<_>>());
}

#[test]
fn stdin_style_buffer_and_gzip() {
    let bytes = std::fs::read(fixture("lo.pcapng.gz")).unwrap();
    let cap = Capture::from_reader(&bytes[..]).unwrap();
    assert_eq!(cap.packets().unwrap().count(), 60);
}

/// A file cut mid-record yields the packets before the cut, then one error.
#[test]
fn truncated_file_gives_packets_then_an_error() {
    for name in ["lo.pcap", "lo.pcapng"] {
        let mut bytes = std::fs::read(fixture(name)).unwrap();
        bytes.truncate(bytes.len() - 7);
        let cap = Capture::from_bytes(bytes).unwrap();
        let items: Vec<_> = cap.packets().unwrap().collect();
        assert_eq!(items.len(), 60, "{name}: 59 packets and the error");
        assert!(items[..59].iter().all(|r| r.is_ok()));
        assert!(
            matches!(items[59], Err(Error::Truncated { .. })),
            "{name}: {:?}",
            items[59]
        );
    }
}

#[test]
fn garbage_is_not_a_capture() {
    let cap = Capture::from_bytes(b"GET / HTTP/1.1\r\n".to_vec()).unwrap();
    assert!(matches!(cap.packets(), Err(Error::NotACapture(_))));
    let cap = Capture::from_bytes(Vec::new()).unwrap();
    assert!(cap.packets().is_err());
}
