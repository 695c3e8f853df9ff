//! The framing layer on captures made by `tests/fixtures/make.sh`.

mod common;

use common::{expected, fixture};
use sockmedic_capture::{Capture, Error, Packet};

type Seen = (i64, u32, u32, usize);

/// Every packet of `cap` as (time, link type, interface, captured length), and the error
/// that ended the walk, if any.
fn walk(mut cap: Capture) -> (Vec<Seen>, Option<Error>) {
    let mut seen = Vec::new();
    let end = cap.for_each_packet(
        |p: Packet| seen.push((p.ts_ns, p.linktype, p.interface, p.data.len())),
        |_| {},
    );
    (seen, end.err())
}

fn packets(name: &str) -> Vec<Seen> {
    let (seen, err) = walk(Capture::open(&fixture(name)).unwrap());
    assert!(err.is_none(), "{name}: {err:?}");
    seen
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
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
fn stdin_style_stream_and_gzip() {
    let (seen, err) = walk(Capture::from_bytes(bytes("lo.pcapng.gz")).unwrap());
    assert!(err.is_none());
    assert_eq!(seen, packets("lo.pcap"));
}

/// A stream read a few bytes at a time puts record boundaries (and the file header)
/// across reads: the packets are the same as from the mapped file.
#[test]
fn stream_reads_split_anywhere_give_the_same_packets() {
    for name in [
        "lo.pcap",
        "lo-be.pcap",
        "two-interfaces.pcapng",
        "lo.pcapng.gz",
    ] {
        let want = packets(name);
        for chunk in [1, 7, 16, 100, 4096] {
            let cap = Capture::from_bytes(bytes(name))
                .unwrap()
                .with_chunk_size(chunk);
            let (seen, err) = walk(cap);
            assert!(err.is_none(), "{name} in {chunk}-byte reads: {err:?}");
            assert_eq!(seen, want, "{name} in {chunk}-byte reads");
        }
    }
}

/// A file cut mid-record yields the packets before the cut, then one error that says
/// where, whether it is mapped or streamed.
#[test]
fn truncated_file_gives_packets_then_an_error() {
    let dir = std::env::temp_dir().join(format!("capture-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["lo.pcap", "lo.pcapng"] {
        let mut cut = bytes(name);
        cut.truncate(cut.len() - 7);
        let path = dir.join(name);
        std::fs::write(&path, &cut).unwrap();
        let last_record_start = {
            let (seen, _) = walk(Capture::open(&path).unwrap());
            assert_eq!(seen.len(), 59, "{name}: the packets before the cut");
            seen
        };
        for cap in [
            Capture::open(&path).unwrap(),
            Capture::from_bytes(cut.clone())
                .unwrap()
                .with_chunk_size(50),
        ] {
            let (seen, err) = walk(cap);
            assert_eq!(seen, last_record_start, "{name}");
            match err {
                Some(Error::Truncated { offset }) => {
                    assert!(
                        offset < cut.len() && offset > cut.len() - 300,
                        "{name}: {offset}"
                    )
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn garbage_is_not_a_capture() {
    let (_, err) = walk(Capture::from_bytes(b"GET / HTTP/1.1\r\n".to_vec()).unwrap());
    assert!(matches!(err, Some(Error::NotACapture(_))), "{err:?}");
    let (seen, err) = walk(Capture::from_bytes(Vec::new()).unwrap());
    assert!(seen.is_empty() && err.is_some());
}

/// Progress ends at the input's size, for a mapped file and for a gzip stream (where it
/// counts compressed bytes).
#[test]
fn progress_reaches_the_input_size() {
    for name in ["lo.pcap", "lo.pcapng.gz"] {
        let mut cap = Capture::open(&fixture(name)).unwrap();
        let len = cap.input_len().unwrap();
        assert_eq!(len, bytes(name).len() as u64);
        let mut last = 0;
        cap.for_each_packet(|_| {}, |n| last = n).unwrap();
        assert_eq!(last, len, "{name}");
    }
}
