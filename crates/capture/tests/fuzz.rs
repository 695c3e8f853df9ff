//! The reader and decoder fuzzed with damaged copies of the real fixtures: bytes flipped,
//! length fields set to extremes, records cut, removed, repeated. Whatever the damage:
//! no panic, and reading the bytes as a stream (in reads of any size, as stdin and gzip
//! are read) gives exactly the packets and the error that parsing them in place (as a
//! mapped file is) gives.
//!
//! `FUZZ_CASES` sets the number of damaged files (default 256; CI runs more).

mod common;

use common::fixture;
use proptest::prelude::*;
use proptest::sample::Index;
use sockmedic_capture::{analyze, tcp_segment, Capture, Config, Packets};

const FIXTURES: &[&str] = &[
    "lo.pcap",
    "lo-be.pcap",
    "lo-nano.pcap",
    "lo.pcapng",
    "two-interfaces.pcapng",
    "any-sll.pcap",
    "any-sll2-nano.pcap",
    "fin-retrans.pcap",
    "vlan.pcap",
    "qinq.pcap",
    "null.pcap",
    "loop.pcap",
    "rawip.pcap",
    "rawip6.pcap",
    "lo-snap60.pcap",
];

#[derive(Debug, Clone)]
enum Damage {
    Flip(Index, u8),
    /// A 32-bit field (a length, a block type, a link type) set to an extreme.
    Word(Index, u32),
    Cut(Index),
    Remove(Index, usize),
    Repeat(Index, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let word = prop::sample::select(vec![
        0u32,
        1,
        3,
        12,
        28,
        0xFFFF,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
        0x0A0D_0D0A,
        0x1A2B_3C4D,
        0xA1B2_C3D4,
    ]);
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
        (any::<Index>(), word).prop_map(|(i, w)| Damage::Word(i, w)),
        any::<Index>().prop_map(Damage::Cut),
        (any::<Index>(), 1usize..200).prop_map(|(i, n)| Damage::Remove(i, n)),
        (any::<Index>(), 1usize..200).prop_map(|(i, n)| Damage::Repeat(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: &Index, len: usize| i.index(len);
    match d {
        Damage::Flip(i, x) => {
            let p = at(i, bytes.len());
            bytes[p] ^= x;
        }
        Damage::Word(i, w) => {
            let p = at(i, bytes.len());
            let end = (p + 4).min(bytes.len());
            bytes[p..end].copy_from_slice(&w.to_le_bytes()[..end - p]);
        }
        Damage::Cut(i) => bytes.truncate(at(i, bytes.len())),
        Damage::Remove(i, n) => {
            let p = at(i, bytes.len());
            let end = (p + n).min(bytes.len());
            bytes.drain(p..end);
        }
        Damage::Repeat(i, n) => {
            let p = at(i, bytes.len());
            let end = (p + n).min(bytes.len());
            let copy = bytes[p..end].to_vec();
            bytes.splice(p..p, copy);
        }
    }
}

/// What a reader saw: each packet's time, link type, interface, wire and captured length,
/// and the error that ended it.
type Seen = (Vec<(i64, u32, u32, u32, usize)>, Option<String>);

fn in_place(bytes: &[u8]) -> Seen {
    let mut seen = Vec::new();
    let packets = match Packets::new(bytes) {
        Ok(p) => p,
        Err(e) => return (seen, Some(e.to_string())),
    };
    for p in packets {
        match p {
            Ok(p) => {
                let _ = tcp_segment(p.linktype, p.data);
                seen.push((p.ts_ns, p.linktype, p.interface, p.orig_len, p.data.len()));
            }
            Err(e) => return (seen, Some(e.to_string())),
        }
    }
    (seen, None)
}

fn streamed(bytes: Vec<u8>, chunk: usize) -> Seen {
    let mut seen = Vec::new();
    let mut cap = Capture::from_bytes(bytes).unwrap().with_chunk_size(chunk);
    let end = cap.for_each_packet(
        |p| seen.push((p.ts_ns, p.linktype, p.interface, p.orig_len, p.data.len())),
        |_| {},
    );
    (seen, end.err().map(|e| e.to_string()))
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn damaged_captures_read_the_same_in_place_and_streamed(
        which in 0..FIXTURES.len(),
        damages in prop::collection::vec(damage(), 1..6),
        chunk in prop_oneof![1usize..64, 64usize..5000],
    ) {
        let mut bytes = std::fs::read(fixture(FIXTURES[which])).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        // Damage that makes a gzip header is read as gzip by the stream only.
        prop_assume!(!bytes.starts_with(&[0x1f, 0x8b]));
        let want = in_place(&bytes);
        prop_assert_eq!(streamed(bytes.clone(), chunk), want);
        let (summary, _) = analyze(&mut Capture::from_bytes(bytes).unwrap(), Config::default());
        prop_assert!(summary.tcp_packets <= summary.packets);
    }

    /// A damaged gzip file: an error or a partial result, never a panic.
    #[test]
    fn damaged_gzip_never_panics(damages in prop::collection::vec(damage(), 1..4)) {
        let mut bytes = std::fs::read(fixture("lo.pcapng.gz")).unwrap();
        for d in &damages {
            apply(&mut bytes, d);
        }
        let (summary, _) = analyze(&mut Capture::from_bytes(bytes).unwrap(), Config::default());
        prop_assert!(summary.packets <= 60 * 4);
    }
}
