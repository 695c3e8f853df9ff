//! What the teardown analysis hands back: counters counted the way Wireshark counts them,
//! the slowest teardowns with their timelines, and aggregates per server endpoint and per
//! client host. Everything here is bounded: the aggregates by the number of endpoints, the
//! timelines by `top_n`.
//!
//! Why server and client rather than local and remote: a capture does not say which
//! host it was taken on. On a server, its server endpoints are its listening ports and
//! the client hosts are the peers; on a client (incident 2's gateway), the server
//! endpoints are the remote endpoints it closes towards.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::decode::Tunnel;

/// Which end of a connection did something, by who sent the SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
    /// No SYN was seen (the capture began mid-stream).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Syn,
    SynRetransmission,
    SynAck,
    SynAckRetransmission,
    Fin,
    FinRetransmission,
    /// The other side's ACK covering this side's FIN.
    FinAcked,
    Rst,
    ZeroWindow,
    DataRetransmission,
}

/// One line of a connection's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub ts_ns: i64,
    /// The endpoint that sent the packet.
    pub from: SocketAddr,
    pub role: Role,
    pub kind: EventKind,
}

/// How a connection ended, as far as the capture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Both FINs sent and acknowledged.
    Closed,
    /// Reset (after a FIN or not: see [`Side::rst_after_fin`]).
    Reset,
    /// A FIN seen, the close not completed when the capture ended.
    Closing,
    /// Neither FIN nor RST seen.
    Open,
    /// A SYN never answered.
    SynUnanswered,
}

/// One side's part in a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Side {
    pub fins: u32,
    pub fin_retransmissions: u32,
    /// Time of the first FIN.
    pub fin_ts_ns: Option<i64>,
    /// From the first FIN to the other side's ACK covering it.
    pub fin_ack_wait_ns: Option<i64>,
    pub rsts: u32,
    pub rst_ts_ns: Option<i64>,
    /// This side's first RST came after a FIN (from either side).
    pub rst_after_fin: bool,
    pub zero_windows: u32,
    pub data_retransmissions: u32,
}

/// One connection, once it is finished (or when the capture ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Client first when known (the SYN's sender), else the lower port's side second.
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// False when no SYN or SYN-ACK was seen: `client`/`server` are a guess by port.
    pub roles_known: bool,
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    pub syns: u32,
    pub syn_retransmissions: u32,
    pub syn_acks: u32,
    pub syn_ack_retransmissions: u32,
    /// Who sent the first FIN; `Unknown` if roles are unknown or no FIN was sent.
    pub first_fin: Option<Role>,
    pub client_side: Side,
    pub server_side: Side,
    pub outcome: Outcome,
    /// From the first FIN to the close's completion, or to the last packet seen.
    pub teardown_ns: Option<i64>,
    /// The timeline, kept only for the slowest teardowns (capped; see `events_dropped`).
    pub events: Vec<Event>,
    pub events_dropped: u32,
}

impl Connection {
    /// A FIN retransmitted, or a FIN never acknowledged in the capture.
    pub fn fin_stalled(&self) -> bool {
        self.stalled_sides().next().is_some()
    }

    /// The sides whose FIN stalled (retransmitted, or never acknowledged), each with the
    /// state its socket waits in: FIN-WAIT-1 when it closed first, LAST-ACK when second.
    pub fn stalled_sides(&self) -> impl Iterator<Item = (Role, &'static str)> + '_ {
        let stalled = |s: &Side| {
            s.fin_retransmissions > 0
                || (s.fin_ts_ns.is_some()
                    && s.fin_ack_wait_ns.is_none()
                    && self.outcome != Outcome::Reset)
        };
        let state = |mine: &Side, other: &Side| match (mine.fin_ts_ns, other.fin_ts_ns) {
            (Some(a), Some(b)) if b < a => "LAST-ACK",
            _ => "FIN-WAIT-1",
        };
        [
            (Role::Client, &self.client_side, &self.server_side),
            (Role::Server, &self.server_side, &self.client_side),
        ]
        .into_iter()
        .filter(move |(_, s, _)| stalled(s))
        .map(move |(role, s, o)| (role, state(s, o)))
    }

    pub fn fin_retransmissions(&self) -> u32 {
        self.client_side.fin_retransmissions + self.server_side.fin_retransmissions
    }

    /// The longest wait from a FIN to its ACK; a FIN never acknowledged waits until the
    /// connection's last packet.
    pub fn max_fin_wait_ns(&self) -> Option<i64> {
        let wait = |s: &Side| {
            s.fin_ts_ns.map(|t| {
                s.fin_ack_wait_ns
                    .unwrap_or(self.last_ts_ns.saturating_sub(t))
            })
        };
        wait(&self.client_side).max(wait(&self.server_side))
    }
}

/// Per server endpoint or per client host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub connections: u64,
    pub fin_retransmissions: u64,
    pub closes_completed: u64,
    pub resets: u64,
    /// Connections with a FIN retransmitted or never acknowledged in the capture.
    pub stalled: u64,
    /// Connections whose SYN was never answered.
    pub syn_unanswered: u64,
    /// The longest FIN-to-ACK wait, including FINs never acknowledged (counted to the
    /// connection's last packet).
    pub max_fin_wait_ns: i64,
    /// Stalled closes by whose FIN stalled and the state its socket waits in: the
    /// clients' (this endpoint's peers) and the server's (this endpoint's own).
    pub client_fin_wait_1: u64,
    pub client_last_ack: u64,
    pub server_fin_wait_1: u64,
    pub server_last_ack: u64,
    /// Connections whose SYN-ACK was sent again (the handshake's last ACK did not
    /// arrive: the server's socket waits in SYN-RECV), and the SYN-ACKs sent again.
    pub syn_ack_retransmitted: u64,
    pub syn_ack_retransmissions: u64,
}

impl Aggregate {
    /// Where most stalled closes wait: whose FIN (the server's, that is this endpoint's
    /// own, or its clients') and in which state. `None` when no close stalled.
    pub fn main_stall(&self) -> Option<(Role, &'static str, u64)> {
        [
            (Role::Client, "FIN-WAIT-1", self.client_fin_wait_1),
            (Role::Client, "LAST-ACK", self.client_last_ack),
            (Role::Server, "FIN-WAIT-1", self.server_fin_wait_1),
            (Role::Server, "LAST-ACK", self.server_last_ack),
        ]
        .into_iter()
        .filter(|s| s.2 > 0)
        .max_by_key(|s| s.2)
    }
}

/// The capture's `capture` section, and more.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Capture time of the first and last packet analysed (ns since the epoch).
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    pub packets: u64,
    pub tcp_packets: u64,
    /// Packets with SYN set (`tcp.flags.syn==1`), FIN set, RST set.
    pub syn_packets: u64,
    pub fin_packets: u64,
    pub rst_packets: u64,
    /// TCP packets found inside a tunnel, per kind (indexed by [`Tunnel::index`]).
    pub by_tunnel: [u64; Tunnel::ALL.len()],
    /// FINs that repeat a FIN's sequence number (`tcp.flags.fin==1 &&
    /// tcp.analysis.retransmission`).
    pub fin_retransmissions: u64,
    pub syn_retransmissions: u64,
    pub syn_ack_retransmissions: u64,
    pub data_retransmissions: u64,
    pub zero_windows: u64,
    pub connections: u64,
    pub closes_completed: u64,
    pub resets: u64,
    pub syn_unanswered: u64,
    /// Connections still closing / still open when the capture ended.
    pub closing_at_end: u64,
    pub open_at_end: u64,
    /// Open connections dropped from the table to bound memory (counted as they were).
    pub evicted: u64,
    /// The slowest teardowns, slowest first, with timelines.
    pub slowest: Vec<Connection>,
    /// By the server side (the SYN's receiver, or the lower port without a SYN).
    pub by_server: HashMap<SocketAddr, Aggregate>,
    /// By the client side's address (the peers of a server).
    pub by_client_host: HashMap<IpAddr, Aggregate>,
}

impl Summary {
    /// TCP packets found inside a tunnel, of any kind.
    pub fn tunneled_packets(&self) -> u64 {
        self.by_tunnel.iter().sum()
    }

    /// The tunnel kinds that held TCP, with their packets, in [`Tunnel::ALL`]'s order.
    pub fn tunnels(&self) -> impl Iterator<Item = (Tunnel, u64)> + '_ {
        Tunnel::ALL
            .into_iter()
            .map(|t| (t, self.by_tunnel[t.index()]))
            .filter(|(_, n)| *n > 0)
    }

    /// The `n` server endpoints whose closes stall most (see [`ranked`]).
    pub fn top_stalled(&self, n: usize) -> Vec<(SocketAddr, Aggregate)> {
        ranked(&self.by_server, n)
    }

    /// The `n` client hosts whose closes stall most (see [`ranked`]).
    pub fn top_clients(&self, n: usize) -> Vec<(IpAddr, Aggregate)> {
        ranked(&self.by_client_host, n)
    }

    pub(crate) fn add(&mut self, c: &Connection) {
        self.connections += 1;
        match c.outcome {
            Outcome::Closed => self.closes_completed += 1,
            Outcome::Reset => self.resets += 1,
            Outcome::Closing => self.closing_at_end += 1,
            Outcome::Open => self.open_at_end += 1,
            Outcome::SynUnanswered => self.syn_unanswered += 1,
        }
        let wait = c.max_fin_wait_ns().unwrap_or(0);
        let upd = |a: &mut Aggregate| {
            a.connections += 1;
            a.fin_retransmissions += u64::from(c.fin_retransmissions());
            a.closes_completed += u64::from(c.outcome == Outcome::Closed);
            a.resets += u64::from(c.outcome == Outcome::Reset);
            a.stalled += u64::from(c.fin_stalled());
            a.syn_unanswered += u64::from(c.outcome == Outcome::SynUnanswered);
            a.max_fin_wait_ns = a.max_fin_wait_ns.max(wait);
            for (role, state) in c.stalled_sides() {
                *match (role, state) {
                    (Role::Server, "FIN-WAIT-1") => &mut a.server_fin_wait_1,
                    (Role::Server, _) => &mut a.server_last_ack,
                    (_, "FIN-WAIT-1") => &mut a.client_fin_wait_1,
                    _ => &mut a.client_last_ack,
                } += 1;
            }
            a.syn_ack_retransmitted += u64::from(c.syn_ack_retransmissions > 0);
            a.syn_ack_retransmissions += u64::from(c.syn_ack_retransmissions);
        };
        upd(self.by_server.entry(c.server).or_default());
        upd(self.by_client_host.entry(c.client.ip()).or_default());
    }
}

/// The `n` worst entries of an aggregate table: most FIN retransmissions first, then
/// the longest FIN wait, then by key so that the order is stable.
pub fn ranked<K: Ord + Copy + std::hash::Hash>(
    table: &HashMap<K, Aggregate>,
    n: usize,
) -> Vec<(K, Aggregate)> {
    let mut v: Vec<(K, Aggregate)> = table.iter().map(|(k, a)| (*k, *a)).collect();
    v.sort_by(|x, y| {
        (y.1.fin_retransmissions, y.1.max_fin_wait_ns, x.0).cmp(&(
            x.1.fin_retransmissions,
            x.1.max_fin_wait_ns,
            y.0,
        ))
    });
    v.truncate(n);
    v
}
