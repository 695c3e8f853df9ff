//! Link layers, IP and TCP headers on captures made by `tests/fixtures/make.sh`, against
//! tshark's counts of the same files.

mod common;

use common::{expected, fixture};
use sockmedic_capture::{flags, tcp_segment, Capture, Skip, TcpSegment};

fn segments(name: &str) -> (Vec<TcpSegment>, Vec<Skip>) {
    let mut cap = Capture::open(&fixture(name)).unwrap();
    let (mut segs, mut skips) = (Vec::new(), Vec::new());
    cap.for_each_packet(
        |p| match tcp_segment(p.linktype, p.data) {
            Ok(s) => segs.push(s),
            Err(e) => skips.push(e),
        },
        |_| {},
    )
    .unwrap();
    (segs, skips)
}

fn count(segs: &[TcpSegment], flag: u8) -> usize {
    segs.iter().filter(|s| s.has(flag)).count()
}

#[test]
fn flag_counts_match_tshark_for_every_format_and_link_type() {
    for e in expected() {
        let (segs, skips) = segments(&e.file);
        let counts = (
            count(&segs, flags::SYN),
            count(&segs, flags::FIN),
            count(&segs, flags::RST),
        );
        assert_eq!(counts, (e.syn, e.fin, e.rst), "{}: syn, fin, rst", e.file);
        if e.file == "lo-snap60.pcap" {
            // tshark counts a TCP header cut before its flags as TCP; we cannot use it.
            assert!(
                segs.len() < e.tcp && skips.iter().all(|s| *s == Skip::Truncated),
                "{skips:?}"
            );
        } else {
            assert_eq!(segs.len(), e.tcp, "{}: tcp segments ({skips:?})", e.file);
        }
    }
}

/// Every link-layer wrapping of the same packets decodes to the same segments.
#[test]
fn same_segments_under_every_link_layer() {
    let base = segments("lo.pcap").0;
    for other in [
        "any-sll.pcap",
        "any-sll2-nano.pcap",
        "rawip.pcap",
        "null.pcap",
        "loop.pcap",
        "vlan.pcap",
        "qinq.pcap",
    ] {
        assert_eq!(segments(other).0, base, "{other}");
    }
}

/// Payload lengths come from the IP header, so a snaplen keeps them.
#[test]
fn truncated_packets_keep_their_payload_length() {
    let full: Vec<_> = segments("lo.pcap")
        .0
        .into_iter()
        .filter(|s| s.src.is_ipv4())
        .collect();
    let cut: Vec<_> = segments("lo-snap60.pcap")
        .0
        .into_iter()
        .filter(|s| s.src.is_ipv4())
        .collect();
    assert_eq!(cut, full);
    assert!(
        full.iter().any(|s| s.payload_len >= 2400),
        "the 2400-byte reply"
    );
}

/// The IPv6 exchange with hop-by-hop and destination options: its SYN is found past them.
#[test]
fn ipv6_extension_headers_are_walked() {
    let (segs, _) = segments("rawip6.pcap");
    let syns: Vec<_> = segs
        .iter()
        .filter(|s| s.has(flags::SYN) && !s.has(flags::ACK))
        .collect();
    assert_eq!(
        syns.iter().map(|s| s.dst_port).collect::<Vec<_>>(),
        [8100, 8101]
    );
    // The hello (300 bytes) as the client sent it, on both connections.
    let hellos = segs.iter().filter(|s| s.payload_len == 300).count();
    assert_eq!(hellos, 2);
}

#[test]
fn refused_connection_and_abortive_close() {
    let (segs, _) = segments("lo.pcap");
    let rst: Vec<_> = segs.iter().filter(|s| s.has(flags::RST)).collect();
    assert!(
        rst.iter().any(|s| s.src_port == 9),
        "RST answering the SYN to port 9"
    );
    assert!(rst.iter().any(|s| s.dst_port == 8200), "SO_LINGER 0 close");
}

#[test]
fn short_and_foreign_frames_are_skipped_not_panicking() {
    for len in 0..60 {
        let frame = vec![0x45u8; len];
        for lt in [0, 1, 101, 108, 113, 228, 229, 276] {
            let _ = tcp_segment(lt, &frame);
        }
    }
    assert_eq!(tcp_segment(147, &[0; 64]), Err(Skip::LinkType(147)));
    let arp = [[0xffu8; 12].as_slice(), &[0x08, 0x06], &[0; 28]].concat();
    assert_eq!(tcp_segment(1, &arp), Err(Skip::NotIp));
}
