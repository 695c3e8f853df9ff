//! Shared by the fixture tests: where fixtures are and what tshark counted in each.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One line of `expected.txt`, written by `make.sh` from tshark's counts.
#[derive(Debug)]
pub struct Expected {
    pub file: String,
    pub packets: usize,
    pub tcp: usize,
    pub syn: usize,
    pub fin: usize,
    pub rst: usize,
    /// `tcp.flags.fin==1 && tcp.analysis.retransmission`
    pub fin_rexmit: usize,
}

pub fn expected() -> Vec<Expected> {
    let text = std::fs::read_to_string(fixture("expected.txt")).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse().unwrap();
            Expected {
                file: f[0].to_string(),
                packets: n(1),
                tcp: n(2),
                syn: n(3),
                fin: n(4),
                rst: n(5),
                fin_rexmit: n(6),
            }
        })
        .collect()
}
