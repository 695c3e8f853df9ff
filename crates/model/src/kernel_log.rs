//! What the kernel log said: the known socket-exhaustion messages, counted.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A family of kernel messages (kernel-notes §11), one per cause, covering every
/// version's wording of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogKind {
    /// `TCP: too many orphaned sockets` (3.1+), `TCP: too many of orphaned sockets` (≤3.0).
    TooManyOrphans,
    /// `Out of socket memory` (≤3.0): orphans over the limit or tcp_mem exceeded.
    OutOfSocketMemory,
    /// `TCP: out of memory -- consider tuning tcp_mem` (3.1+).
    TcpMem,
    /// `TCP: time wait bucket table overflow` (≤2.6.36).
    TwOverflow,
    /// `Possible SYN flooding on port ...` (every version's wording).
    SynFlood,
    /// `nf_conntrack: table full, dropping packet` (and the per-netns 6.17+ form).
    ConntrackFull,
    /// `VFS: file-max limit N reached`.
    FileMax,
    /// `socket: no more sockets`.
    NoMoreSockets,
    /// `ip_local_port_range: prefer different parity for start/end values.`
    PortRangeParity,
    /// `drop open request from ADDR/PORT` (dynamic debug only).
    DropOpenRequest,
    /// `TABLE: neighbor table overflow!`
    NeighborOverflow,
}

impl LogKind {
    pub const ALL: [LogKind; 11] = [
        LogKind::TooManyOrphans,
        LogKind::OutOfSocketMemory,
        LogKind::TcpMem,
        LogKind::TwOverflow,
        LogKind::SynFlood,
        LogKind::ConntrackFull,
        LogKind::FileMax,
        LogKind::NoMoreSockets,
        LogKind::PortRangeParity,
        LogKind::DropOpenRequest,
        LogKind::NeighborOverflow,
    ];

    /// The kebab-case name used in JSON (`too-many-orphans`).
    pub fn name(self) -> &'static str {
        match self {
            LogKind::TooManyOrphans => "too-many-orphans",
            LogKind::OutOfSocketMemory => "out-of-socket-memory",
            LogKind::TcpMem => "tcp-mem",
            LogKind::TwOverflow => "tw-overflow",
            LogKind::SynFlood => "syn-flood",
            LogKind::ConntrackFull => "conntrack-full",
            LogKind::FileMax => "file-max",
            LogKind::NoMoreSockets => "no-more-sockets",
            LogKind::PortRangeParity => "port-range-parity",
            LogKind::DropOpenRequest => "drop-open-request",
            LogKind::NeighborOverflow => "neighbor-overflow",
        }
    }
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernel log as sockmedic read it: every known message counted, with the first
/// and last time it was seen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelLog {
    /// `/dev/kmsg`, or the file given with `--kernel-log`.
    pub source: String,
    /// Records (lines) read.
    pub records: u64,
    /// Messages the kernel dropped by rate limiting (`net_ratelimit: N callbacks
    /// suppressed`, summed): the counts below are lower bounds when non-zero.
    pub suppressed: u64,
    /// Seconds since boot of the oldest record read: how far back the log reaches.
    pub oldest_uptime_s: Option<f64>,
    /// Seconds since boot when the log was read (to judge how recent a message is).
    pub read_uptime_s: Option<f64>,
    /// One entry per kind and detail, in order of first appearance.
    pub messages: Vec<KernelMessage>,
}

/// One kind of message (with one detail, e.g. one port for SYN floods), counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelMessage {
    pub kind: LogKind,
    pub count: u64,
    /// Wall-clock time (RFC 3339) of the first and last occurrence, when known.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Seconds since boot of the first and last occurrence, when known.
    pub first_uptime_s: Option<f64>,
    pub last_uptime_s: Option<f64>,
    /// What varies inside the message: the port of a SYN flood (`203.0.113.5:443`),
    /// the namespace of a full conntrack table, the file-max limit. `(others)` for
    /// the occurrences of a kind folded together once the log held too many
    /// distinct details (a flood over thousands of ports).
    pub detail: Option<String>,
    /// The message of the last occurrence, as logged.
    pub sample: String,
}

impl KernelLog {
    /// The messages of these kinds.
    pub fn of<'a>(&'a self, kinds: &'a [LogKind]) -> impl Iterator<Item = &'a KernelMessage> + 'a {
        self.messages
            .iter()
            .filter(move |m| kinds.contains(&m.kind))
    }
}
