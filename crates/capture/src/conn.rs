//! The connection table: every TCP segment goes to the connection of its 4-tuple (both
//! directions share one entry). A finished connection (close completed, or reset) stays
//! `linger_ns` of capture time before it is folded into the [`Summary`]: a FIN sent again
//! after the capture saw its ACK (the ACK was lost after the capture point, as when a
//! firewall on the host drops it) still belongs to it, and so does a late duplicate.
//! Open connections are capped: past the cap the least recently seen are folded in as
//! they are.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rustc_hash::FxBuildHasher;
use std::net::SocketAddr;

use crate::decode::{flags, tcp_segment, TcpSegment};
use crate::filter::Filter;
use crate::read::{Capture, Error};
use crate::summary::{Connection, Event, EventKind, Outcome, Role, Side, Summary};

#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Slowest teardowns kept with their timelines.
    pub top_n: usize,
    /// Connections in the table before the least recently seen are folded in.
    pub max_open: usize,
    /// Timeline events kept per connection.
    pub max_events: usize,
    /// How long (capture time) a finished connection's entry stays for late duplicates.
    pub linger_ns: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            top_n: 10,
            max_open: 1 << 20,
            max_events: 32,
            linger_ns: 60_000_000_000,
        }
    }
}

/// `a <= b` in sequence space.
fn seq_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

/// `a < b` in sequence space.
fn seq_lt(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) > 0
}

/// The two endpoints, lower first: both directions of a connection give the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key([SocketAddr; 2]);

#[derive(Debug, Default, Clone, Copy)]
struct Dir {
    side: Side,
    /// Highest sequence number sent + 1 (SYN and FIN count one).
    next_seq: Option<u32>,
    fin_seq: Option<u32>,
    /// The sequence number an ACK must reach to cover this side's FIN.
    fin_end: Option<u32>,
    fin_acked: bool,
}

/// A timeline event as the table keeps it (16 bytes): who sent it is an index into
/// `ends`, the role is worked out when the connection is folded.
#[derive(Debug, Clone, Copy)]
struct RawEvent {
    ts_ns: i64,
    from: u8,
    kind: EventKind,
}

#[derive(Debug)]
struct Conn {
    ends: [SocketAddr; 2],
    /// Index of the SYN's sender.
    client: Option<usize>,
    first_ts: i64,
    last_ts: i64,
    syns: u32,
    syn_retrans: u32,
    syn_seq: Option<u32>,
    syn_acks: u32,
    syn_ack_retrans: u32,
    syn_ack_seq: Option<u32>,
    first_fin: Option<usize>,
    dirs: [Dir; 2],
    events: Vec<RawEvent>,
    events_dropped: u32,
    /// When the close completed or a RST came: the entry lingers from then on.
    finished_at: Option<i64>,
}

impl Conn {
    fn new(ends: [SocketAddr; 2], ts: i64) -> Self {
        Conn {
            ends,
            client: None,
            first_ts: ts,
            last_ts: ts,
            syns: 0,
            syn_retrans: 0,
            syn_seq: None,
            syn_acks: 0,
            syn_ack_retrans: 0,
            syn_ack_seq: None,
            first_fin: None,
            dirs: [Dir::default(); 2],
            events: Vec::new(),
            events_dropped: 0,
            finished_at: None,
        }
    }

    fn role(&self, i: usize) -> Role {
        match self.client {
            Some(c) if c == i => Role::Client,
            Some(_) => Role::Server,
            None => Role::Unknown,
        }
    }

    fn reset_seen(&self) -> bool {
        self.dirs.iter().any(|d| d.side.rsts > 0)
    }

    fn close_completed(&self) -> bool {
        self.dirs.iter().all(|d| d.fin_acked)
    }

    fn event(&mut self, max: usize, ts_ns: i64, from: usize, kind: EventKind) {
        if self.events.len() < max {
            self.events.push(RawEvent {
                ts_ns,
                from: from as u8,
                kind,
            });
        } else {
            self.events_dropped += 1;
        }
    }

    fn take_connection(&mut self) -> Connection {
        // Client/server by the SYN, else the lower port is the server's (well-known).
        let c = self
            .client
            .unwrap_or(if self.ends[0].port() < self.ends[1].port() {
                1
            } else {
                0
            });
        let s = 1 - c;
        let outcome = if self.close_completed() {
            Outcome::Closed
        } else if self.reset_seen() {
            Outcome::Reset
        } else if self.dirs.iter().any(|d| d.fin_seq.is_some()) {
            Outcome::Closing
        } else if self.syns > 0 && self.syn_acks == 0 {
            Outcome::SynUnanswered
        } else {
            Outcome::Open
        };
        let fin_start = self.dirs.iter().filter_map(|d| d.side.fin_ts_ns).min();
        let teardown_ns = fin_start.map(|t0| {
            let end = if outcome == Outcome::Closed {
                self.dirs
                    .iter()
                    .map(|d| {
                        d.side
                            .fin_ts_ns
                            .unwrap_or(0)
                            .saturating_add(d.side.fin_ack_wait_ns.unwrap_or(0))
                    })
                    .max()
                    .unwrap()
            } else {
                self.last_ts
            };
            end.saturating_sub(t0)
        });
        Connection {
            client: self.ends[c],
            server: self.ends[s],
            roles_known: self.client.is_some(),
            first_ts_ns: self.first_ts,
            last_ts_ns: self.last_ts,
            syns: self.syns,
            syn_retransmissions: self.syn_retrans,
            syn_acks: self.syn_acks,
            syn_ack_retransmissions: self.syn_ack_retrans,
            first_fin: self.first_fin.map(|i| self.role(i)),
            client_side: self.dirs[c].side,
            server_side: self.dirs[s].side,
            outcome,
            teardown_ns,
            events: std::mem::take(&mut self.events)
                .into_iter()
                .map(|e| Event {
                    ts_ns: e.ts_ns,
                    from: self.ends[e.from as usize],
                    role: self.role(e.from as usize),
                    kind: e.kind,
                })
                .collect(),
            events_dropped: self.events_dropped,
        }
    }
}

/// A connection in the slowest-teardown heap, ordered by its teardown time.
struct Slow(Connection, u64);

impl PartialEq for Slow {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Slow {}
impl PartialOrd for Slow {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Slow {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Slower first; among equals the earlier-finished one.
        (self.0.teardown_ns, Reverse(self.1)).cmp(&(o.0.teardown_ns, Reverse(o.1)))
    }
}

/// Streams segments into the connection table.
pub struct Analyzer {
    cfg: Config,
    table: HashMap<Key, Conn, FxBuildHasher>,
    summary: Summary,
    /// Min-heap of the `top_n` slowest teardowns.
    slowest: BinaryHeap<Reverse<Slow>>,
    folded: u64,
    /// Finished connections in the order they finished, to fold each when its
    /// lingering time is over.
    lingering: VecDeque<(i64, Key)>,
}

impl Analyzer {
    pub fn new(cfg: Config) -> Self {
        Analyzer {
            cfg,
            table: HashMap::default(),
            summary: Summary::default(),
            slowest: BinaryHeap::new(),
            folded: 0,
            lingering: VecDeque::new(),
        }
    }

    /// Connections currently in the table (open or lingering).
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// A frame that decoded to no TCP segment.
    pub fn other_packet(&mut self) {
        self.summary.packets += 1;
    }

    pub fn segment(&mut self, ts: i64, seg: &TcpSegment) {
        let sum = &mut self.summary;
        sum.packets += 1;
        sum.tcp_packets += 1;
        let (syn, fin, rst, ack) = (
            seg.has(flags::SYN),
            seg.has(flags::FIN),
            seg.has(flags::RST),
            seg.has(flags::ACK),
        );
        sum.syn_packets += u64::from(syn);
        sum.fin_packets += u64::from(fin);
        sum.rst_packets += u64::from(rst);
        if let Some(t) = seg.tunnel {
            sum.by_tunnel[t.index()] += 1;
        }
        self.fold_lingering(ts);

        let src = SocketAddr::new(seg.src, seg.src_port);
        let dst = SocketAddr::new(seg.dst, seg.dst_port);
        let (key, from) = if src <= dst {
            (Key([src, dst]), 0)
        } else {
            (Key([dst, src]), 1)
        };
        let to = 1 - from;

        // Past the cap, room is made before a new entry (the key is looked up twice only
        // then).
        if self.table.len() >= self.cfg.max_open && !self.table.contains_key(&key) {
            self.make_room();
        }
        let max_events = self.cfg.max_events;
        // One lookup per packet. A new SYN after a finished connection (or on one that was
        // closing, with another initial sequence number) starts a new connection on the
        // same 4-tuple; the old one is folded in below.
        let mut replaced = None;
        let c = match self.table.entry(key) {
            Entry::Vacant(v) => v.insert(Conn::new(key.0, ts)),
            Entry::Occupied(o) => {
                let c = o.into_mut();
                let closing = c.dirs.iter().any(|d| d.fin_seq.is_some());
                if syn
                    && !ack
                    && (c.finished_at.is_some() || (closing && c.syn_seq != Some(seg.seq)))
                {
                    replaced = Some(std::mem::replace(c, Conn::new(key.0, ts)));
                }
                c
            }
        };
        c.last_ts = ts;
        let sum = &mut self.summary;

        if syn && !ack {
            c.syns += 1;
            if c.syn_seq == Some(seg.seq) {
                c.syn_retrans += 1;
                sum.syn_retransmissions += 1;
                c.event(max_events, ts, from, EventKind::SynRetransmission);
            } else {
                c.syn_seq = Some(seg.seq);
                c.client = Some(from);
                c.event(max_events, ts, from, EventKind::Syn);
            }
        } else if syn {
            c.syn_acks += 1;
            if c.client.is_none() {
                c.client = Some(to);
            }
            if c.syn_ack_seq == Some(seg.seq) {
                c.syn_ack_retrans += 1;
                sum.syn_ack_retransmissions += 1;
                c.event(max_events, ts, from, EventKind::SynAckRetransmission);
            } else {
                c.syn_ack_seq = Some(seg.seq);
                c.event(max_events, ts, from, EventKind::SynAck);
            }
        }

        // Wireshark's test for a retransmission: a segment that carries data, SYN or FIN
        // and starts before the highest sequence number this side has sent. A keep-alive
        // (at most one byte, one before that) is not one.
        let d = &mut c.dirs[from];
        let len = seg.payload_len;
        let end = seg
            .seq
            .wrapping_add(len)
            .wrapping_add(u32::from(syn) + u32::from(fin));
        let sent_before = d.next_seq.is_some_and(|next| seq_lt(seg.seq, next));
        let keep_alive =
            len <= 1 && !(syn || fin || rst) && d.next_seq == Some(seg.seq.wrapping_add(1));
        if d.next_seq.is_none_or(|next| seq_lt(next, end)) {
            d.next_seq = Some(end);
        }
        let data_retrans = len > 0 && !(syn || fin || rst) && sent_before && !keep_alive;
        if data_retrans {
            d.side.data_retransmissions += 1;
            sum.data_retransmissions += 1;
        }
        if seg.window == 0 && seg.flags & (flags::SYN | flags::FIN | flags::RST) == 0 {
            d.side.zero_windows += 1;
            sum.zero_windows += 1;
        }

        let mut fin_event = None;
        if fin {
            d.side.fins += 1;
            // Sent again, alone or with unacknowledged data before it (then it starts
            // earlier than the first copy did). A FIN whose first copy the capture
            // missed is a retransmission too, as for Wireshark, and still this side's FIN.
            let repeat = d.fin_end == Some(end);
            if sent_before {
                d.side.fin_retransmissions += 1;
                sum.fin_retransmissions += 1;
            }
            if repeat {
                fin_event = Some(EventKind::FinRetransmission);
                // Sent again after the capture saw it acknowledged: that ACK never
                // reached this side, so the wait goes on until the next one.
                if d.fin_acked {
                    d.fin_acked = false;
                    d.side.fin_ack_wait_ns = None;
                }
            } else {
                d.fin_seq = Some(seg.seq);
                d.fin_end = Some(seg.seq.wrapping_add(len).wrapping_add(1));
                d.fin_acked = false;
                d.side.fin_ts_ns = Some(ts);
                d.side.fin_ack_wait_ns = None;
                fin_event = Some(EventKind::Fin);
            }
        }
        let any_fin_before = c
            .dirs
            .iter()
            .any(|d| d.side.fin_ts_ns.is_some_and(|t| t < ts))
            || c.dirs[to].fin_seq.is_some();
        let d = &mut c.dirs[from];
        let mut rst_event = false;
        if rst {
            d.side.rsts += 1;
            if d.side.rst_ts_ns.is_none() {
                d.side.rst_ts_ns = Some(ts);
                d.side.rst_after_fin = any_fin_before;
            }
            rst_event = true;
        }
        if fin && c.first_fin.is_none() {
            c.first_fin = Some(from);
        }
        if data_retrans {
            c.event(max_events, ts, from, EventKind::DataRetransmission);
        }
        if seg.window == 0 && seg.flags & (flags::SYN | flags::FIN | flags::RST) == 0 {
            c.event(max_events, ts, from, EventKind::ZeroWindow);
        }
        if let Some(k) = fin_event {
            c.event(max_events, ts, from, k);
        }
        if rst_event {
            c.event(max_events, ts, from, EventKind::Rst);
        }

        // This segment's ACK covering the other side's FIN.
        let o = &mut c.dirs[to];
        if ack && !o.fin_acked {
            if let (Some(fin_end), Some(fin_ts)) = (o.fin_end, o.side.fin_ts_ns) {
                if seq_le(fin_end, seg.ack) {
                    o.fin_acked = true;
                    o.side.fin_ack_wait_ns = Some(ts.saturating_sub(fin_ts));
                    c.event(max_events, ts, from, EventKind::FinAcked);
                }
            }
        }

        if c.finished_at.is_none() && (c.close_completed() || rst) {
            c.finished_at = Some(ts);
            self.lingering.push_back((ts, key));
        }
        if let Some(mut old) = replaced {
            self.fold(&mut old);
        }
    }

    /// Adds a connection to the summary and, if among the slowest, to the heap.
    fn record(&mut self, conn: Connection) {
        self.summary.add(&conn);
        self.folded += 1;
        if self.cfg.top_n == 0 || conn.teardown_ns.is_none() {
            return;
        }
        let slow = Slow(conn, self.folded);
        if self.slowest.len() < self.cfg.top_n {
            self.slowest.push(Reverse(slow));
        } else if self.slowest.peek().is_some_and(|Reverse(min)| slow > *min) {
            self.slowest.pop();
            self.slowest.push(Reverse(slow));
        }
    }

    /// Folds a connection taken out of the table into the summary (once: every entry
    /// leaves the table once).
    fn fold(&mut self, c: &mut Conn) {
        let conn = c.take_connection();
        self.record(conn);
    }

    /// Folds the finished connections whose lingering time is over at `now`.
    fn fold_lingering(&mut self, now: i64) {
        while let Some(&(t, key)) = self.lingering.front() {
            // Times come from the file: damaged ones can be anything, hence saturating.
            if now.saturating_sub(t) < self.cfg.linger_ns {
                break;
            }
            self.lingering.pop_front();
            // The entry may be gone already, or be a later connection on the same ports.
            if self
                .table
                .get(&key)
                .is_some_and(|c| c.finished_at == Some(t))
            {
                let mut c = self.table.remove(&key).unwrap();
                self.fold(&mut c);
            }
        }
    }

    /// The table is full: folds in the least recently seen half.
    fn make_room(&mut self) {
        let mut ages: Vec<i64> = self.table.values().map(|c| c.last_ts).collect();
        let mid = ages.len() / 2;
        let cutoff = *ages.select_nth_unstable(mid).1;
        let old: Vec<Key> = self
            .table
            .iter()
            .filter(|(_, c)| c.last_ts <= cutoff)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            let mut c = self.table.remove(&k).unwrap();
            if c.finished_at.is_none() {
                self.summary.evicted += 1;
            }
            self.fold(&mut c);
        }
    }

    /// Folds in every connection still in the table and returns the summary.
    pub fn finish(mut self) -> Summary {
        let mut rest: Vec<Conn> = self.table.drain().map(|(_, c)| c).collect();
        rest.sort_by_key(|c| c.first_ts);
        for mut c in rest {
            self.fold(&mut c);
        }
        let mut slow: Vec<Slow> = self.slowest.into_iter().map(|Reverse(s)| s).collect();
        slow.sort_by(|a, b| b.cmp(a));
        self.summary.slowest = slow.into_iter().map(|s| s.0).collect();
        self.summary
    }
}

/// Runs the analysis over a whole capture. A read error stops it: the summary so far is
/// returned with the error (a capture cut short while being written is still useful).
pub fn analyze(cap: &mut Capture, cfg: Config) -> (Summary, Option<Error>) {
    analyze_with(cap, cfg, &Filter::default(), |_| {})
}

/// [`analyze`] with a filter and a progress callback (input bytes read so far). Packets
/// that do not pass the filter are not counted at all (neither in `packets` nor anywhere
/// else); with an empty filter every packet counts.
pub fn analyze_with(
    cap: &mut Capture,
    cfg: Config,
    filter: &Filter,
    on_progress: impl FnMut(u64),
) -> (Summary, Option<Error>) {
    let mut a = Analyzer::new(cfg);
    let (mut first, mut last) = (None, None);
    let everything = filter.is_empty();
    let result = cap.for_each_packet(
        |p| {
            first.get_or_insert(p.ts_ns);
            last = Some(p.ts_ns);
            match tcp_segment(p.linktype, p.data) {
                Ok(seg) if everything || filter.matches(&seg) => a.segment(p.ts_ns, &seg),
                Ok(_) => {}
                Err(_) if everything => a.other_packet(),
                Err(_) => {}
            }
        },
        on_progress,
    );
    let mut s = a.finish();
    s.first_ts_ns = first;
    s.last_ts_ns = last;
    (s, result.err())
}
