//! Aggregation of sockets while they stream out of a sock_diag dump.
//!
//! A host can hold millions of sockets; sockmedic never keeps them. Each socket is
//! folded into fixed-size aggregates (counts per state, bounded top-N tables of
//! endpoints, listeners, ephemeral-port bitsets) and dropped. Memory is flat in the
//! number of sockets: the top-N tables keep at most [`TOP_CAPACITY`] endpoints each.

use crate::procscan::SocketIndex;
use crate::sockdiag::DiagSocket;
use rustc_hash::FxHashMap;
use sockmedic_model::{
    Endpoint, EndpointCount, EphemeralUse, Listener, QueuedBytes, RemoteCount, StateCounts,
    TcpState,
};
use std::sync::Arc;

/// Distinct endpoints a top-N table tracks exactly. Beyond it the table keeps the
/// heaviest ones with a bounded overcount (Space-Saving), so a million distinct
/// endpoints cost the same memory as sixteen thousand.
pub const TOP_CAPACITY: usize = 16 * 1024;

/// Kernel state numbers go up to 13 (bound-inactive); index the arrays by them.
pub const STATE_SLOTS: usize = 14;

/// Counts keys and keeps the heaviest, in bounded memory: the Space-Saving
/// algorithm (Metwally, Agrawal, El Abbadi, 2005). Exact while it has seen at most
/// `capacity` distinct keys; after that a new key replaces the smallest one and
/// inherits its count as `error`, so every kept count is an upper bound and
/// `count - error` a lower bound.
///
/// Laid out for a million distinct endpoints going through sixteen thousand
/// slots, where every new key evicts: O(1) per `add(key, 1)`, and few cache lines
/// touched. The paper's "Stream-Summary" buckets (keys of equal count) are runs
/// of one array holding the slots sorted by count, so a key counted once more
/// swaps to the end of its run and joins the next one (or its run is renumbered),
/// and the key to evict is the last of the first run: no linked lists to chase.
/// The keys are found through an open-addressing index of (hash, slot) pairs,
/// where an evicted key's entry is left behind (it no longer matches its slot)
/// and swept by rebuilding the index every ~capacity evictions: an eviction
/// touches no index entry but the new key's. `add(key, n)` with `n > 1` hops
/// over the runs between the old count and the new one. Memory: at most
/// `capacity` slots, `capacity` positions and buckets, and an index of 4 bytes
/// per slot times four.
pub struct TopCounter<K> {
    capacity: usize,
    /// `hash`'s high bits above `slot + 1` (0: empty), linear probing, at most
    /// half full counting the entries left by evictions (`used`).
    index: Vec<u32>,
    used: usize,
    /// Bits of an index entry that hold `slot + 1`.
    slot_bits: u32,
    slots: Vec<Slot<K>>,
    /// Slot numbers by ascending count, in `order[base..]`; each bucket is a run.
    /// New slots come in at the low end, where the small counts are.
    order: Vec<u32>,
    /// The bucket of each position of `order`.
    run: Vec<u32>,
    base: u32,
    buckets: Vec<Bucket>,
    /// Buckets no longer in use, reused before `buckets` grows.
    free: Vec<u32>,
    evicted: bool,
}

/// A kept key, with what is read along with it: one cache line per lookup.
struct Slot<K> {
    key: K,
    /// Its position in `order`.
    pos: u32,
    hash: u32,
    error: u64,
}

/// The slots of one count: `order[start..end]`.
#[derive(Clone, Copy)]
struct Bucket {
    count: u64,
    start: u32,
    end: u32,
}

/// A key with its figures, while counters are merged.
#[derive(Clone, Copy)]
struct Row<K> {
    key: K,
    hash: u32,
    count: u64,
    error: u64,
}

/// The positions of `rows` by ascending count: a counting sort when the counts
/// are small (a table whose keys evict one another counts little each), a sort
/// otherwise.
fn ascending_counts<K>(rows: &[Row<K>]) -> Vec<u32> {
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0);
    if max <= rows.len() as u64 * 4 + 1024 {
        let mut start = vec![0u32; max as usize + 2];
        for r in rows {
            start[r.count as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut out = vec![0u32; rows.len()];
        for (i, r) in rows.iter().enumerate() {
            let at = &mut start[r.count as usize];
            out[*at as usize] = i as u32;
            *at += 1;
        }
        out
    } else {
        let mut out: Vec<u32> = (0..rows.len() as u32).collect();
        out.sort_unstable_by_key(|&i| rows[i as usize].count);
        out
    }
}

fn hash_of<K: std::hash::Hash>(key: &K) -> u32 {
    use std::hash::BuildHasher;
    let h = rustc_hash::FxBuildHasher.hash_one(key);
    (h ^ (h >> 32)) as u32
}

impl<K: Copy + Eq + std::hash::Hash> TopCounter<K> {
    pub fn new(capacity: usize) -> TopCounter<K> {
        let capacity = capacity.clamp(1, u32::MAX as usize / 8);
        TopCounter {
            capacity,
            index: Vec::new(),
            used: 0,
            slot_bits: u32::BITS - (capacity as u32).leading_zeros(),
            slots: Vec::new(),
            order: Vec::new(),
            run: Vec::new(),
            base: 0,
            buckets: Vec::new(),
            free: Vec::new(),
            evicted: false,
        }
    }

    /// Counts `n` more for `key`.
    pub fn add(&mut self, key: K, n: u64) {
        self.add_hashed(key, hash_of(&key), n);
    }

    /// The index entry where the search for a key of `hash` starts, loaded so
    /// that the loads of a batch of keys overlap ([`SocketAggregate::add_batch`]).
    fn touch(&self, hash: u32) -> u32 {
        match self.index.len() {
            0 => 0,
            n => self.index[hash as usize & (n - 1)],
        }
    }

    /// [`TopCounter::add`], the key's [`hash_of`] known.
    fn add_hashed(&mut self, key: K, hash: u32, n: u64) {
        if let Some(slot) = self.find(&key, hash) {
            if n > 0 {
                self.raise(slot, n);
            }
        } else if self.slots.len() < self.capacity {
            self.grow();
            let slot = self.slots.len() as u32;
            self.base -= 1;
            let pos = self.base;
            self.slots.push(Slot {
                key,
                pos,
                hash,
                error: 0,
            });
            self.order[pos as usize] = slot;
            self.index_insert(slot, hash);
            self.settle(slot, pos, n);
        } else {
            // Replace the smallest (the last of the first run): the newcomer may
            // have had up to its count before.
            let min = self.run[self.base as usize];
            let Bucket {
                count: floor,
                start,
                end,
            } = self.buckets[min as usize];
            let pos = end - 1;
            let slot = self.order[pos as usize];
            // The old key's index entry stays: it no longer matches the slot.
            self.slots[slot as usize] = Slot {
                key,
                pos,
                hash,
                error: floor,
            };
            self.index_insert(slot, hash);
            self.evicted = true;
            if n > 0 {
                self.leave(min, start, pos);
                self.settle(slot, pos, floor + n);
            }
        }
    }

    /// True while every count is exact.
    pub fn is_exact(&self) -> bool {
        !self.evicted
    }

    /// Distinct keys kept.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn count_of(&self, slot: u32) -> u64 {
        let pos = self.slots[slot as usize].pos;
        self.buckets[self.run[pos as usize] as usize].count
    }

    /// The smallest count kept: the most a key that is not kept can have had.
    fn floor(&self) -> u64 {
        match self.run.get(self.base as usize) {
            Some(&b) if self.evicted => self.buckets[b as usize].count,
            _ => 0,
        }
    }

    // ------------------------------------------------------------ the runs

    /// Counts `n` (> 0) more for the kept `slot`.
    fn raise(&mut self, slot: u32, n: u64) {
        let pos = self.slots[slot as usize].pos;
        let bucket = self.run[pos as usize];
        let Bucket { count, start, end } = self.buckets[bucket as usize];
        let last = end - 1;
        let count = count + n;
        if start == last
            && self
                .run
                .get(end as usize)
                .is_none_or(|&next| self.buckets[next as usize].count > count)
        {
            // Alone in its run, and no run in between: renumber in place.
            self.buckets[bucket as usize].count = count;
            return;
        }
        // To the end of its run, out of it, then up to its new count.
        self.swap(pos, last);
        self.leave(bucket, start, last);
        self.settle(slot, last, count);
    }

    /// The run `bucket` (`start..pos + 1`) gives up its last position `pos`.
    fn leave(&mut self, bucket: u32, start: u32, pos: u32) {
        if start == pos {
            self.free.push(bucket);
        } else {
            self.buckets[bucket as usize].end = pos;
        }
    }

    /// Puts `slot`, at `pos` and in no run, in the run of `count`: the runs
    /// below `pos` count less; the ones above less only when `count` is more
    /// than one above the slot's old count (it hops over them).
    fn settle(&mut self, slot: u32, mut pos: u32, count: u64) {
        while let Some(&next) = self.run.get(pos as usize + 1) {
            let b = self.buckets[next as usize];
            if b.count == count {
                self.buckets[next as usize].start = pos;
                self.run[pos as usize] = next;
                return;
            }
            if b.count > count {
                break;
            }
            // Hop over the run: its last slot takes `pos`, the run moves down one.
            let top = b.end - 1;
            self.swap(pos, top);
            self.run[pos as usize] = next;
            self.buckets[next as usize] = Bucket {
                start: pos,
                end: top,
                ..b
            };
            pos = top;
        }
        debug_assert_eq!(self.order[pos as usize], slot);
        let bucket = Bucket {
            count,
            start: pos,
            end: pos + 1,
        };
        let b = match self.free.pop() {
            Some(b) => {
                self.buckets[b as usize] = bucket;
                b
            }
            None => {
                self.buckets.push(bucket);
                self.buckets.len() as u32 - 1
            }
        };
        self.run[pos as usize] = b;
    }

    /// Swaps the slots at two positions of `order` (the runs stay).
    fn swap(&mut self, a: u32, b: u32) {
        if a != b {
            self.order.swap(a as usize, b as usize);
            let (sa, sb) = (self.order[a as usize], self.order[b as usize]);
            self.slots[sa as usize].pos = a;
            self.slots[sb as usize].pos = b;
        }
    }

    /// Room for one more slot: `order` (like the index) grows by doubling, up
    /// to the capacity, so a table of three listeners stays small.
    fn grow(&mut self) {
        if self.base == 0 {
            let old = self.order.len();
            let new = (old * 2).max(8).min(self.capacity);
            let shift = (new - old) as u32;
            for v in [&mut self.order, &mut self.run] {
                let mut moved = vec![0; new];
                moved[new - old..].copy_from_slice(v);
                *v = moved;
            }
            self.base += shift;
            for s in &mut self.slots {
                s.pos += shift;
            }
            for b in &mut self.buckets {
                b.start += shift;
                b.end += shift;
            }
        }
    }

    /// Empties the index and enters the kept slots again (sweeping the entries
    /// evicted keys left), at `size` entries.
    fn reindex(&mut self, size: usize) {
        self.index.clear();
        self.index.resize(size, 0);
        self.used = 0;
        for slot in 0..self.slots.len() as u32 {
            self.index_put(slot, self.slots[slot as usize].hash);
        }
    }

    // ------------------------------------------------------------ the index

    fn entry(&self, slot: u32, hash: u32) -> u32 {
        (hash >> self.slot_bits << self.slot_bits) | (slot + 1)
    }

    fn find(&self, key: &K, hash: u32) -> Option<u32> {
        let mask = self.index.len().checked_sub(1)?;
        let tag = hash >> self.slot_bits;
        let low = (1u32 << self.slot_bits) - 1;
        let mut i = hash as usize & mask;
        loop {
            let e = self.index[i];
            if e == 0 {
                return None;
            }
            if e >> self.slot_bits == tag {
                // Maybe the entry of a key evicted from this slot since.
                let slot = (e & low) - 1;
                if self.slots[slot as usize].key == *key {
                    return Some(slot);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Enters `slot` (holding a key of `hash`), sweeping or growing the index
    /// first when it is half full: twice as many entries as the slots kept
    /// when they need it, up to four per possible slot.
    fn index_insert(&mut self, slot: u32, hash: u32) {
        if (self.used + 1) * 2 > self.index.len() {
            let size = self.index.len();
            let size = if self.slots.len() * 4 > size {
                (size * 2).max(16)
            } else {
                size
            };
            // The slot's key is in place: this enters it too.
            self.reindex(size);
            return;
        }
        self.index_put(slot, hash);
    }

    fn index_put(&mut self, slot: u32, hash: u32) {
        let mask = self.index.len() - 1;
        let mut i = hash as usize & mask;
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = self.entry(slot, hash);
        self.used += 1;
    }

    // ------------------------------------------------------------ merge, top

    /// Folds another counter in. Counts add; a key missing from a counter that
    /// evicted may have had up to that counter's floor, which adds to its error.
    pub fn merge(&mut self, other: TopCounter<K>) {
        if other.slots.is_empty() {
            return;
        }
        let (self_floor, other_floor) = (self.floor(), other.floor());
        let mut rows: Vec<Row<K>> = Vec::with_capacity(self.len() + other.len());
        // The keys of one are looked up in the other: by groups whose index
        // entries are loaded together (see `SocketAggregate::add_batch`).
        const GROUP: usize = 16;
        for (g, group) in self.slots.chunks(GROUP).enumerate() {
            let touched = group.iter().fold(0, |t, s| t ^ other.touch(s.hash));
            std::hint::black_box(touched);
            for (i, s) in group.iter().enumerate() {
                let c = self.count_of((g * GROUP + i) as u32);
                let (count, error) = match other.find(&s.key, s.hash) {
                    Some(o) => (
                        c + other.count_of(o),
                        s.error + other.slots[o as usize].error,
                    ),
                    None => (c + other_floor, s.error + other_floor),
                };
                rows.push(Row {
                    key: s.key,
                    hash: s.hash,
                    count,
                    error,
                });
            }
        }
        for (g, group) in other.slots.chunks(GROUP).enumerate() {
            let touched = group.iter().fold(0, |t, s| t ^ self.touch(s.hash));
            std::hint::black_box(touched);
            for (i, s) in group.iter().enumerate() {
                if self.find(&s.key, s.hash).is_none() {
                    rows.push(Row {
                        key: s.key,
                        hash: s.hash,
                        count: other.count_of((g * GROUP + i) as u32) + self_floor,
                        error: s.error + self_floor,
                    });
                }
            }
        }
        let evicted = self.evicted || other.evicted || rows.len() > self.capacity;
        self.rebuild(rows, evicted);
    }

    /// Refills the counter with `rows` (distinct keys), keeping the heaviest.
    fn rebuild(&mut self, rows: Vec<Row<K>>, evicted: bool) {
        let capacity = self.capacity;
        let by_count = ascending_counts(&rows);
        let kept = &by_count[by_count.len().saturating_sub(capacity)..];
        let len = kept.len();
        // The arrays are reused: a merge allocates nothing but `rows`.
        self.slots.clear();
        self.run.clear();
        self.buckets.clear();
        self.free.clear();
        self.order.clear();
        self.order.extend(0..len as u32);
        self.base = 0;
        self.index.clear();
        self.index.resize((len * 4).next_power_of_two().max(16), 0);
        self.used = 0;
        self.slots.reserve(len);
        self.run.reserve(len);
        for (pos, &r) in kept.iter().enumerate() {
            let Row {
                key,
                hash,
                count,
                error,
            } = rows[r as usize];
            let pos = pos as u32;
            self.slots.push(Slot {
                key,
                pos,
                hash,
                error,
            });
            match self.buckets.last_mut() {
                Some(b) if b.count == count => b.end = pos + 1,
                _ => self.buckets.push(Bucket {
                    count,
                    start: pos,
                    end: pos + 1,
                }),
            }
            self.run.push(self.buckets.len() as u32 - 1);
            self.index_put(pos, hash);
        }
        self.evicted = evicted;
    }

    /// The `n` heaviest keys, heaviest first; ties in key order so output is stable.
    pub fn top(&self, n: usize) -> Vec<(K, u64, u64)>
    where
        K: Ord,
    {
        let mut rows: Vec<(K, u64, u64)> = Vec::new();
        // Whole runs from the heaviest until `n` are taken: the last run's keys
        // tie, and the sort picks among them in key order.
        let mut end = self.order.len() as u32;
        while end > self.base && rows.len() < n {
            let b = self.buckets[self.run[end as usize - 1] as usize];
            for &slot in &self.order[b.start as usize..b.end as usize] {
                let s = &self.slots[slot as usize];
                rows.push((s.key, b.count, s.error));
            }
            end = b.start;
        }
        rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        rows.truncate(n);
        rows
    }

    /// Checks the structure (tests): runs in strictly ascending counts covering
    /// `order[base..]`, every slot where it says, the index naming every slot once.
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(self.base as usize + self.slots.len(), self.order.len());
        assert_eq!(self.run.len(), self.order.len());
        let (mut pos, mut last) = (self.base, None);
        while (pos as usize) < self.order.len() {
            let bucket = self.run[pos as usize];
            let b = self.buckets[bucket as usize];
            assert_eq!(b.start, pos, "runs not contiguous");
            assert!(b.end > b.start);
            assert!(last.is_none_or(|l| l < b.count), "runs out of order");
            for p in b.start..b.end {
                assert_eq!(self.run[p as usize], bucket);
                assert_eq!(self.slots[self.order[p as usize] as usize].pos, p);
            }
            (pos, last) = (b.end, Some(b.count));
        }
        for (slot, s) in self.slots.iter().enumerate() {
            assert_eq!(s.hash, hash_of(&s.key));
            assert_eq!(self.find(&s.key, s.hash), Some(slot as u32));
        }
        assert_eq!(self.index.iter().filter(|&&e| e != 0).count(), self.used);
        assert!(self.used * 2 <= self.index.len());
        assert!(self.slots.len() <= self.capacity);
        assert!(self.order.len() <= self.capacity);
        assert!(self.buckets.len() <= self.capacity);
        assert!(self.index.len() <= (4 * self.capacity).next_power_of_two().max(16));
    }
}

/// A set of ports, one bit each (8 KiB).
#[derive(Clone)]
pub struct PortSet(Box<[u64; 1024]>);

impl Default for PortSet {
    fn default() -> PortSet {
        PortSet(Box::new([0; 1024]))
    }
}

impl PortSet {
    pub fn insert(&mut self, port: u16) {
        self.0[port as usize / 64] |= 1 << (port % 64);
    }
    pub fn contains(&self, port: u16) -> bool {
        self.0[port as usize / 64] & (1 << (port % 64)) != 0
    }
    pub fn union(&mut self, other: &PortSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }
    /// Ports of the set within `lo..=hi`.
    pub fn count_in(&self, lo: u16, hi: u16) -> u32 {
        (lo..=hi).filter(|p| self.contains(*p)).count() as u32
    }
    pub fn from_ranges(ranges: &[(u16, u16)]) -> PortSet {
        let mut s = PortSet::default();
        for &(lo, hi) in ranges {
            for p in lo..=hi {
                s.insert(p);
            }
        }
        s
    }
}

/// What to keep while aggregating.
#[derive(Clone, Debug)]
pub struct AggregateOptions {
    /// `ip_local_port_range` of the namespace, inclusive.
    pub port_range: Option<(u16, u16)>,
    /// Keep only sockets whose local or remote port is this one.
    pub port_filter: Option<u16>,
    /// The dump included the bound-inactive request, so state 7 means bound-inactive.
    pub bound_inactive_requested: bool,
    /// The states asked of the kernel (`1 << kernel number`): the others are
    /// reported as not looked at rather than as zero.
    pub states_requested: u32,
    pub top_capacity: usize,
    /// Socket fds of the process scan, to count each process's sockets by state.
    pub join: Option<Arc<InodeLookup>>,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        AggregateOptions {
            port_range: None,
            port_filter: None,
            bound_inactive_requested: false,
            states_requested: crate::sockdiag::ALL_STATES,
            top_capacity: TOP_CAPACITY,
            join: None,
        }
    }
}

/// The running aggregate of one dump (or one part of a split dump).
pub struct SocketAggregate {
    opts: AggregateOptions,
    states: [u64; STATE_SLOTS],
    local: Vec<Option<TopCounter<Endpoint>>>,
    remote: Vec<Option<TopCounter<Endpoint>>>,
    listeners: Vec<Listener>,
    syn_recv_by_local: FxHashMap<Endpoint, u64>,
    ephemeral_sockets: u64,
    ephemeral_ports: PortSet,
    bound_ports: PortSet,
    ephemeral_by_server: TopCounter<Endpoint>,
    orphans: u64,
    orphan_cgroups: FxHashMap<u64, u64>,
    queued: QueuedBytes,
    joined: Option<ProcessTally>,
    pub messages: u64,
}

impl SocketAggregate {
    pub fn new(opts: AggregateOptions) -> SocketAggregate {
        let cap = opts.top_capacity;
        let joined = opts.join.as_deref().map(ProcessTally::new);
        SocketAggregate {
            opts,
            states: [0; STATE_SLOTS],
            local: (0..STATE_SLOTS).map(|_| None).collect(),
            remote: (0..STATE_SLOTS).map(|_| None).collect(),
            listeners: Vec::new(),
            syn_recv_by_local: FxHashMap::default(),
            ephemeral_sockets: 0,
            ephemeral_ports: PortSet::default(),
            bound_ports: PortSet::default(),
            ephemeral_by_server: TopCounter::new(cap),
            orphans: 0,
            orphan_cgroups: FxHashMap::default(),
            queued: QueuedBytes::default(),
            joined,
            messages: 0,
        }
    }

    /// Folds one socket in. No allocation unless a top-N table grows.
    pub fn add(&mut self, s: &DiagSocket) {
        self.add_hashed(s, hash_of(&s.local), hash_of(&s.remote));
    }

    /// Folds sockets in, as [`SocketAggregate::add`] of each. With a million
    /// distinct endpoints the top-N tables are megabytes, and looking a key up
    /// waits for memory: each group of sockets first loads the index entries
    /// its keys start from, all at once so that the waits overlap, then is
    /// folded in (safe Rust has no prefetch; plain loads do it).
    pub fn add_batch(&mut self, socks: &[DiagSocket]) {
        const GROUP: usize = 16;
        for group in socks.chunks(GROUP) {
            let mut hashes = [(0u32, 0u32); GROUP];
            let mut states = [0usize; GROUP];
            for ((s, h), state) in group.iter().zip(&mut hashes).zip(&mut states) {
                *h = (hash_of(&s.local), hash_of(&s.remote));
                *state = self.slot_of(s.state);
            }
            let mut touched = 0u32;
            for (h, &state) in hashes.iter().zip(&states).take(group.len()) {
                if let Some(t) = &self.local[state] {
                    touched ^= t.touch(h.0);
                }
                if let Some(t) = &self.remote[state] {
                    touched ^= t.touch(h.1);
                }
            }
            std::hint::black_box(touched);
            for (s, h) in group.iter().zip(hashes) {
                self.add_hashed(s, h.0, h.1);
            }
        }
    }

    /// [`SocketAggregate::add`], the endpoints' hashes known.
    fn add_hashed(&mut self, s: &DiagSocket, local_hash: u32, remote_hash: u32) {
        self.messages += 1;
        if let Some(p) = self.opts.port_filter {
            if s.local.port != p && s.remote.port != p {
                return;
            }
        }
        let state = self.slot_of(s.state);
        if self.opts.states_requested & (1 << state) == 0 {
            // Dumped only so that listeners get their SYN-RECV count (`dump_mask`).
            if state == TcpState::SynRecv as usize {
                *self.syn_recv_by_local.entry(s.local).or_insert(0) += 1;
            }
            return;
        }
        self.states[state] += 1;
        if is_orphan(s) {
            self.orphans += 1;
            if s.cgroup_id != 0 {
                *self.orphan_cgroups.entry(s.cgroup_id).or_insert(0) += 1;
            }
        }
        if let (Some(tally), Some(join)) = (self.joined.as_mut(), self.opts.join.as_deref()) {
            if s.inode != 0 {
                tally.add(join, s.inode, state, s.local.v6, s.local.port);
            }
        }
        let cap = self.opts.top_capacity;
        self.local[state]
            .get_or_insert_with(|| TopCounter::new(cap))
            .add_hashed(s.local, local_hash, 1);
        let is_listen = state == TcpState::Listen as usize;
        let is_bound = state == TcpState::BoundInactive as usize;
        if !is_listen && !is_bound {
            self.remote[state]
                .get_or_insert_with(|| TopCounter::new(cap))
                .add_hashed(s.remote, remote_hash, 1);
        }
        if is_listen {
            self.listeners.push(Listener {
                local: s.local,
                accept_queue: s.rqueue,
                backlog: s.wqueue,
                syn_recv: 0,
                inode: s.inode,
                uid: s.uid,
            });
            return;
        }
        if state == TcpState::SynRecv as usize {
            *self.syn_recv_by_local.entry(s.local).or_insert(0) += 1;
            // A request sock's local port is its listener's: not an ephemeral use.
            return;
        }
        // Connections' queues (a listener's are its accept queue, counted above).
        self.queued.recv += u64::from(s.rqueue);
        self.queued.send += u64::from(s.wqueue);
        if let Some((lo, hi)) = self.opts.port_range {
            if (lo..=hi).contains(&s.local.port) {
                if is_bound {
                    self.bound_ports.insert(s.local.port);
                } else {
                    self.ephemeral_sockets += 1;
                    self.ephemeral_ports.insert(s.local.port);
                    self.ephemeral_by_server
                        .add_hashed(s.remote, remote_hash, 1);
                }
            }
        }
    }

    fn slot_of(&self, kernel_state: u8) -> usize {
        match kernel_state {
            // NEW_SYN_RECV is the request sock of SYN-RECV.
            12 => TcpState::SynRecv as usize,
            // A CLOSE socket only comes back for the bound-inactive request.
            7 if self.opts.bound_inactive_requested => TcpState::BoundInactive as usize,
            n if (n as usize) < STATE_SLOTS => n as usize,
            _ => 0,
        }
    }

    /// Folds the aggregate of another part of the same dump in.
    pub fn merge(&mut self, other: SocketAggregate) {
        self.messages += other.messages;
        self.orphans += other.orphans;
        self.queued.recv += other.queued.recv;
        self.queued.send += other.queued.send;
        for (k, v) in other.orphan_cgroups {
            *self.orphan_cgroups.entry(k).or_insert(0) += v;
        }
        if let (Some(mine), Some(theirs)) = (self.joined.as_mut(), other.joined) {
            mine.merge(theirs);
        }
        for i in 0..STATE_SLOTS {
            self.states[i] += other.states[i];
        }
        for (mine, theirs) in self.local.iter_mut().zip(other.local) {
            merge_opt(mine, theirs);
        }
        for (mine, theirs) in self.remote.iter_mut().zip(other.remote) {
            merge_opt(mine, theirs);
        }
        self.listeners.extend(other.listeners);
        for (k, v) in other.syn_recv_by_local {
            *self.syn_recv_by_local.entry(k).or_insert(0) += v;
        }
        self.ephemeral_sockets += other.ephemeral_sockets;
        self.ephemeral_ports.union(&other.ephemeral_ports);
        self.bound_ports.union(&other.bound_ports);
        self.ephemeral_by_server.merge(other.ephemeral_by_server);
    }

    /// True while every top-N table is exact.
    pub fn is_exact(&self) -> bool {
        let tables = self.local.iter().chain(self.remote.iter()).flatten();
        tables
            .chain(std::iter::once(&self.ephemeral_by_server))
            .all(TopCounter::is_exact)
    }

    /// Turns the aggregate into report rows, keeping the `top` heaviest per table.
    pub fn finish(mut self, top: usize, reserved: &[(u16, u16)]) -> Aggregated {
        let exact = self.is_exact();
        let mut states = StateCounts::default();
        for s in TcpState::ALL {
            let Some(k) = s.kernel_number() else { continue };
            if s != TcpState::Close && self.opts.states_requested & (1 << k) != 0 {
                states.set(s, self.states[k as usize]);
            }
        }
        attribute_syn_recv(&mut self.listeners, &self.syn_recv_by_local);
        self.listeners.sort_by(|a, b| {
            (a.local.port, a.local.v6, a.local.addr).cmp(&(b.local.port, b.local.v6, b.local.addr))
        });
        let top_local = top_rows(&self.local, top);
        let top_remote = top_rows(&self.remote, top);
        let ephemeral = self.opts.port_range.map(|(lo, hi)| {
            let reserved_set = PortSet::from_ranges(reserved);
            let reserved_n = reserved_set.count_in(lo, hi);
            EphemeralUse {
                range: [lo, hi],
                size: (hi as u32 - lo as u32 + 1).saturating_sub(reserved_n),
                reserved: reserved_n,
                sockets: self.ephemeral_sockets,
                ports_in_use: self.ephemeral_ports.count_in(lo, hi),
                bound_inactive_ports: self
                    .opts
                    .bound_inactive_requested
                    .then(|| self.bound_ports.count_in(lo, hi)),
                top_remote: self
                    .ephemeral_by_server
                    .top(top)
                    .into_iter()
                    .map(|(endpoint, count, error)| RemoteCount {
                        endpoint,
                        count,
                        error,
                    })
                    .collect(),
                includes_established: self.opts.states_requested & (1 << 1) != 0,
            }
        });
        Aggregated {
            states,
            listeners: self.listeners,
            top_local,
            top_remote,
            ephemeral,
            exact,
            orphans: self.orphans,
            queued: self.queued,
            orphan_cgroups: sorted_counts(self.orphan_cgroups),
            processes: self.joined,
            messages: self.messages,
        }
    }
}

/// An orphan: a full socket after close(), in a post-close state. close() ran
/// sock_orphan(), so its inode reads 0; timewait minisockets (FIN-WAIT-2 substate)
/// also read 0 but carry timer 3 and are not counted as orphans by the kernel.
fn is_orphan(s: &DiagSocket) -> bool {
    matches!(s.state, 4 | 5 | 9 | 11) && s.inode == 0 && s.timer != 3
}

/// The states to ask the kernel for so that `requested` can be reported: LISTEN
/// brings SYN-RECV along, since a listener's half-open count comes from them.
pub fn dump_mask(requested: u32) -> u32 {
    let (listen, syn_recv) = (1 << TcpState::Listen as u32, 1 << TcpState::SynRecv as u32);
    if requested & listen != 0 {
        requested | syn_recv
    } else {
        requested
    }
}

/// The post-close states an orphan can be in, as a dump mask.
pub const ORPHAN_STATES: u32 = 1 << 4 | 1 << 5 | 1 << 9 | 1 << 11;

fn merge_opt(mine: &mut Option<TopCounter<Endpoint>>, theirs: Option<TopCounter<Endpoint>>) {
    match (mine.as_mut(), theirs) {
        (Some(m), Some(t)) => m.merge(t),
        (None, Some(t)) => *mine = Some(t),
        _ => {}
    }
}

fn top_rows(tables: &[Option<TopCounter<Endpoint>>], top: usize) -> Vec<EndpointCount> {
    let mut rows = Vec::new();
    for state in TcpState::ALL {
        let Some(Some(table)) = tables.get(state as usize) else {
            continue;
        };
        for (endpoint, count, error) in table.top(top) {
            rows.push(EndpointCount {
                state,
                endpoint,
                count,
                error,
            });
        }
    }
    rows
}

/// Gives each listener the SYN-RECV entries addressed to it: same port, and the
/// same address or a wildcard listener (an IPv6 wildcard also takes IPv4, for
/// dual-stack sockets). The most specific listener wins.
fn attribute_syn_recv(listeners: &mut [Listener], syn_recv: &FxHashMap<Endpoint, u64>) {
    for (local, n) in syn_recv {
        let rank = |l: &Listener| -> Option<u8> {
            if l.local.port != local.port {
                None
            } else if l.local == *local {
                Some(3)
            } else if l.local.is_wildcard() && l.local.v6 == local.v6 {
                Some(2)
            } else if l.local.is_wildcard() && l.local.v6 {
                Some(1)
            } else {
                None
            }
        };
        let best = listeners
            .iter()
            .enumerate()
            .filter_map(|(i, l)| rank(l).map(|r| (r, i)))
            .max_by_key(|(r, i)| (*r, std::cmp::Reverse(*i)));
        if let Some((_, i)) = best {
            listeners[i].syn_recv += n;
        }
    }
}

/// The report rows of one namespace's dump.
pub struct Aggregated {
    pub states: StateCounts,
    pub listeners: Vec<Listener>,
    pub top_local: Vec<EndpointCount>,
    pub top_remote: Vec<EndpointCount>,
    pub ephemeral: Option<EphemeralUse>,
    pub exact: bool,
    /// Orphans seen (see `is_orphan`).
    pub orphans: u64,
    /// Bytes in the connections' receive and send queues.
    pub queued: QueuedBytes,
    /// Orphans per creating cgroup v2 id, heaviest first.
    pub orphan_cgroups: Vec<(u64, u64)>,
    /// Sockets per process, when a process scan was joined.
    pub processes: Option<ProcessTally>,
    pub messages: u64,
}

fn keep_port(ports: &mut Vec<u16>, port: u16) {
    if ports.len() < BOUND_PORTS_KEPT && !ports.contains(&port) {
        ports.push(port);
    }
}

fn sorted_counts(m: FxHashMap<u64, u64>) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = m.into_iter().collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// The socket fds found by the process scan, looked up by inode while a dump
/// streams. Built on the scan's own index (a bucket table over the dense inode
/// range: O(1) per socket); entries of one inode (a socket shared by several fds or
/// processes) are contiguous.
#[derive(Debug)]
pub struct InodeLookup {
    index: SocketIndex,
    /// Number of processes (`proc_idx` is below it).
    pub process_count: usize,
}

impl InodeLookup {
    pub fn new(index: SocketIndex, process_count: usize) -> InodeLookup {
        InodeLookup {
            index,
            process_count,
        }
    }
    /// Positions (into the scan's sorted socket list) holding `inode`.
    pub fn positions(&self, inode: u32) -> std::ops::Range<usize> {
        self.index.position(inode).unwrap_or(0..0)
    }
    fn proc_at(&self, pos: usize) -> usize {
        self.index.as_slice()[pos].proc_idx as usize
    }
    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

/// Per-process socket counts from one dump, and which scanned fds were found.
pub struct ProcessTally {
    /// `[process][state slot]`.
    pub states: Vec<[u32; STATE_SLOTS]>,
    /// IPv6 sockets per process (the rest are IPv4): TCP vs TCPv6.
    pub v6: Vec<u32>,
    /// Bit per position of the scan's socket list: found in a dump.
    pub found: Vec<u64>,
    /// Some ports held by each process's bound-inactive sockets (at most
    /// `BOUND_PORTS_KEPT`).
    pub bound_ports: Vec<Vec<u16>>,
}

/// Bound ports kept per process: enough to name them, bounded.
pub const BOUND_PORTS_KEPT: usize = 8;

impl ProcessTally {
    fn new(join: &InodeLookup) -> ProcessTally {
        ProcessTally {
            states: vec![[0; STATE_SLOTS]; join.process_count],
            v6: vec![0; join.process_count],
            found: vec![0; join.len().div_ceil(64)],
            bound_ports: vec![Vec::new(); join.process_count],
        }
    }
    fn add(&mut self, join: &InodeLookup, inode: u32, state: usize, v6: bool, port: u16) {
        for pos in join.positions(inode) {
            self.found[pos / 64] |= 1 << (pos % 64);
            let p = join.proc_at(pos);
            self.states[p][state] += 1;
            self.v6[p] += v6 as u32;
            if state == TcpState::BoundInactive as usize {
                keep_port(&mut self.bound_ports[p], port);
            }
        }
    }
    /// Adds another tally (of another part or namespace) into this one.
    pub fn merge(&mut self, other: ProcessTally) {
        for (a, b) in self.states.iter_mut().zip(other.states) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        for (a, b) in self.v6.iter_mut().zip(other.v6) {
            *a += b;
        }
        for (a, b) in self.found.iter_mut().zip(other.found) {
            *a |= b;
        }
        for (a, b) in self.bound_ports.iter_mut().zip(other.bound_ports) {
            for port in b {
                keep_port(a, port);
            }
        }
    }
    pub fn is_found(&self, pos: usize) -> bool {
        self.found[pos / 64] & (1 << (pos % 64)) != 0
    }
    /// Count of one process in a state given by its kernel number.
    pub fn count(&self, proc_idx: usize, kernel_state: u8) -> u32 {
        self.states[proc_idx][kernel_state as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint::v4([10, 0, 0, last], port)
    }

    #[test]
    fn top_counter_is_exact_under_capacity() {
        let mut t = TopCounter::new(8);
        for i in 0..5u16 {
            for _ in 0..=i {
                t.add(i, 1);
            }
        }
        assert!(t.is_exact());
        assert_eq!(t.top(2), vec![(4, 5, 0), (3, 4, 0)]);
    }

    #[test]
    fn top_counter_keeps_heavy_hitter_past_capacity() {
        // 62190 sockets on one endpoint among 5000 one-off endpoints (incident 1's
        // shape), in a table of 64: the heavy hitter stays, overcount is bounded.
        let mut t = TopCounter::new(64);
        for i in 0..5000u32 {
            t.add(i + 1, 1);
            if i % 10 == 0 {
                for _ in 0..124 {
                    t.add(0, 1);
                }
            }
        }
        assert!(!t.is_exact());
        let (k, c, e) = t.top(1)[0];
        assert_eq!(k, 0);
        assert!(c - e <= 62000 && c >= 62000, "count {c} error {e}");
        assert!(e <= 5000 / 64 + 1, "error {e}");
    }

    #[test]
    fn top_counter_merge_adds_counts() {
        let mut a = TopCounter::new(16);
        let mut b = TopCounter::new(16);
        a.add("x", 3);
        a.add("y", 1);
        b.add("x", 2);
        b.add("z", 7);
        a.merge(b);
        assert!(a.is_exact());
        assert_eq!(a.top(3), vec![("z", 7, 0), ("x", 5, 0), ("y", 1, 0)]);
    }

    #[test]
    fn top_counter_never_grows_past_capacity() {
        let mut t = TopCounter::new(100);
        for i in 0..100_000u32 {
            t.add(i, 1);
        }
        assert_eq!(t.slots.len(), 100);
        assert_eq!(t.order.len(), 100);
        assert!(t.index.len() <= 512);
        assert!(t.buckets.len() <= 100);
        t.check_invariants();
    }

    /// xorshift64*: a reproducible stream without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// Skewed keys: small ones often, a long tail of rare ones.
        fn skewed(&mut self, distinct: u64) -> u32 {
            let spread = self.below(distinct) + 1;
            self.below(spread) as u32
        }
        /// Mostly 1, sometimes more (merges and callers add counts).
        fn amount(&mut self) -> u64 {
            if self.below(8) == 0 {
                self.below(40)
            } else {
                1
            }
        }
    }

    type Exact = std::collections::HashMap<u32, u64>;

    /// Space-Saving's guarantees against exact counts: each kept count is an upper
    /// bound and `count - error` a lower bound; every key above the floor is kept;
    /// exact (error 0, every key) while `is_exact`.
    fn check_against(t: &TopCounter<u32>, exact: &Exact) {
        t.check_invariants();
        let rows = t.top(usize::MAX);
        let kept: std::collections::HashMap<u32, (u64, u64)> =
            rows.iter().map(|&(k, c, e)| (k, (c, e))).collect();
        assert_eq!(kept.len(), rows.len());
        for w in rows.windows(2) {
            assert!(w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0));
        }
        if t.is_exact() {
            let nonzero = exact.len();
            assert_eq!(rows.len(), nonzero);
            for (k, n) in exact {
                assert_eq!(kept.get(k), Some(&(*n, 0)), "key {k}");
            }
            return;
        }
        let floor = t.floor();
        for &(k, c, e) in &rows {
            let truth = exact.get(&k).copied().unwrap_or(0);
            assert!(truth <= c, "key {k}: count {c} below the truth {truth}");
            assert!(
                c - e <= truth,
                "key {k}: count {c} - error {e} above the truth {truth}"
            );
            assert!(e <= floor, "key {k}: error {e} above the floor {floor}");
        }
        for (k, &n) in exact {
            assert!(
                n <= floor || kept.contains_key(k),
                "key {k} counted {n} above the floor {floor} but not kept"
            );
        }
    }

    fn run(t: &mut TopCounter<u32>, exact: &mut Exact, rng: &mut Rng, len: usize, distinct: u64) {
        for _ in 0..len {
            let (k, n) = (rng.skewed(distinct), rng.amount());
            t.add(k, n);
            if n > 0 || !exact.contains_key(&k) {
                *exact.entry(k).or_insert(0) += n;
            }
        }
    }

    #[test]
    fn top_counter_random_streams_are_exact_under_capacity() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let cap = 1 + rng.below(300) as usize;
            let mut t = TopCounter::new(cap);
            let mut exact = Exact::new();
            run(&mut t, &mut exact, &mut rng, 5000, cap as u64);
            assert!(t.is_exact());
            check_against(&t, &exact);
        }
    }

    #[test]
    fn top_counter_random_streams_stay_within_error() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 7);
            let cap = 8 + rng.below(200) as usize;
            let mut t = TopCounter::new(cap);
            let mut exact = Exact::new();
            for _ in 0..10 {
                run(&mut t, &mut exact, &mut rng, 2000, cap as u64 * 20);
                check_against(&t, &exact);
            }
            assert!(!t.is_exact());
        }
    }

    #[test]
    fn top_counter_all_distinct_keys_churn_in_constant_space() {
        // Every key new (the remote endpoints of a million clients): each evicts.
        let mut t = TopCounter::new(1000);
        let mut exact = Exact::new();
        for i in 0..200_000u32 {
            t.add(i, 1);
            exact.insert(i, 1);
        }
        check_against(&t, &exact);
        // 199 rounds of 1000 evictions: every kept key ends at 200, error 199.
        assert_eq!(t.floor(), 200);
        assert!(t.buckets.len() <= 1000);
        assert_eq!(t.top(1)[0], (199_000, 200, 199));
        let total: u64 = t.top(usize::MAX).iter().map(|r| r.1).sum();
        assert_eq!(total, 200_000);
    }

    #[test]
    fn top_counter_random_merges_stay_within_error() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 11);
            let cap = 8 + rng.below(200) as usize;
            // Small enough to stay exact, or large enough to evict, in the parts.
            let distinct = if seed % 2 == 0 {
                cap as u64 / 2
            } else {
                cap as u64 * 10
            };
            let parts = 2 + rng.below(4) as usize;
            let mut exact = Exact::new();
            let mut merged = TopCounter::new(cap);
            for _ in 0..parts {
                let mut t = TopCounter::new(cap);
                let mut part = Exact::new();
                let len = rng.below(3000) as usize;
                run(&mut t, &mut part, &mut rng, len, distinct);
                check_against(&t, &part);
                for (k, n) in part {
                    *exact.entry(k).or_insert(0) += n;
                }
                merged.merge(t);
                check_against(&merged, &exact);
            }
            if seed % 2 == 0 {
                assert!(merged.is_exact());
            }
            // Counting goes on after a merge.
            run(&mut merged, &mut exact, &mut rng, 1000, distinct);
            check_against(&merged, &exact);
        }
    }

    #[test]
    fn top_counter_structure_holds_after_every_step() {
        for seed in 1..=10u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 3);
            let cap = 1 + rng.below(12) as usize;
            let mut t = TopCounter::new(cap);
            let mut exact = Exact::new();
            for _ in 0..3000 {
                run(&mut t, &mut exact, &mut rng, 1, cap as u64 * 3);
                t.check_invariants();
            }
            check_against(&t, &exact);
        }
    }

    #[test]
    fn top_counter_ties_come_in_key_order() {
        let mut t = TopCounter::new(16);
        for k in [5u32, 3, 9, 1, 7] {
            t.add(k, 2);
        }
        t.add(8, 3);
        assert_eq!(t.top(3), vec![(8, 3, 0), (1, 2, 0), (3, 2, 0)]);
        assert_eq!(t.top(0), vec![]);
    }

    fn sock(state: u8, local: Endpoint, remote: Endpoint) -> DiagSocket {
        DiagSocket {
            state,
            local,
            remote,
            ..Default::default()
        }
    }

    #[test]
    fn aggregate_counts_listeners_syn_recv_and_ephemeral() {
        let opts = AggregateOptions {
            port_range: Some((50000, 50009)),
            bound_inactive_requested: true,
            states_requested: crate::sockdiag::ALL_STATES | crate::sockdiag::BOUND_INACTIVE_BIT,
            ..Default::default()
        };
        let mut a = SocketAggregate::new(opts.clone());
        let wildcard = Endpoint::v4([0; 4], 80);
        let mut l = sock(10, wildcard, Endpoint::v4([0; 4], 0));
        l.rqueue = 3;
        l.wqueue = 128;
        a.add(&l);
        for i in 0..4 {
            a.add(&sock(12, ep(1, 80), ep(9, 40000 + i)));
        }
        let mut b = SocketAggregate::new(opts);
        for i in 0..3 {
            b.add(&sock(1, ep(1, 50000 + i), ep(7, 443)));
        }
        b.add(&sock(6, ep(1, 50001), ep(8, 443)));
        b.add(&sock(7, ep(1, 50005), Endpoint::default()));
        a.merge(b);
        let out = a.finish(10, &[(50009, 50009)]);
        assert_eq!(out.states.get(TcpState::Listen), Some(1));
        assert_eq!(out.states.get(TcpState::SynRecv), Some(4));
        assert_eq!(out.states.get(TcpState::Established), Some(3));
        assert_eq!(out.states.get(TcpState::BoundInactive), Some(1));
        assert_eq!(out.listeners.len(), 1);
        assert_eq!(
            (out.listeners[0].accept_queue, out.listeners[0].backlog),
            (3, 128)
        );
        assert_eq!(out.listeners[0].syn_recv, 4);
        let e = out.ephemeral.unwrap();
        assert_eq!((e.size, e.reserved), (9, 1));
        assert_eq!((e.sockets, e.ports_in_use), (4, 3));
        assert_eq!(e.bound_inactive_ports, Some(1));
        assert_eq!(e.top_remote[0].endpoint, ep(7, 443));
        assert_eq!(e.top_remote[0].count, 3);
        let syn_top: Vec<_> = out
            .top_local
            .iter()
            .filter(|r| r.state == TcpState::SynRecv)
            .collect();
        assert_eq!((syn_top[0].endpoint, syn_top[0].count), (ep(1, 80), 4));
        assert!(out.exact);
    }

    #[test]
    fn add_batch_is_add_of_each() {
        let mut rng = Rng(0x5eed);
        let socks: Vec<DiagSocket> = (0..5000)
            .map(|_| {
                let state = [1, 1, 1, 6, 9, 10, 12][rng.below(7) as usize];
                let local = ep(1, [443, 80][rng.below(2) as usize]);
                let remote = ep(rng.below(250) as u8, 30000 + rng.below(3000) as u16);
                sock(state, local, remote)
            })
            .collect();
        let opts = AggregateOptions {
            top_capacity: 64,
            port_range: Some((30000, 31000)),
            ..Default::default()
        };
        let mut one = SocketAggregate::new(opts.clone());
        let mut batched = SocketAggregate::new(opts);
        for s in &socks {
            one.add(s);
        }
        for part in socks.chunks(37) {
            batched.add_batch(part);
        }
        let (a, b) = (one.finish(10, &[]), batched.finish(10, &[]));
        assert_eq!(a.states, b.states);
        assert_eq!(a.top_local, b.top_local);
        assert_eq!(a.top_remote, b.top_remote);
        assert_eq!(a.listeners, b.listeners);
        assert_eq!(a.ephemeral, b.ephemeral);
        assert_eq!((a.exact, a.messages), (b.exact, b.messages));
        assert!(!a.exact);
    }

    #[test]
    fn port_filter_keeps_only_matching_sockets() {
        let opts = AggregateOptions {
            port_filter: Some(443),
            ..Default::default()
        };
        let mut a = SocketAggregate::new(opts);
        a.add(&sock(1, ep(1, 50000), ep(7, 443)));
        a.add(&sock(1, ep(1, 50001), ep(7, 80)));
        let out = a.finish(10, &[]);
        assert_eq!(out.states.get(TcpState::Established), Some(1));
        assert_eq!(out.states.get(TcpState::BoundInactive), None);
        assert_eq!(out.messages, 2);
    }

    #[test]
    fn join_counts_sockets_per_process_and_marks_found() {
        // proc 0 holds inode 10 (shared with proc 1 after fork) and 11; proc 1
        // also holds 12, which no dump returns (unhashed).
        let fds = [(10, 0, 3), (10, 1, 3), (11, 0, 4), (12, 1, 5)].map(|(inode, proc_idx, fd)| {
            crate::procscan::SocketFd {
                inode,
                proc_idx,
                fd,
            }
        });
        let join = Arc::new(InodeLookup::new(SocketIndex::new(fds.to_vec()), 2));
        let opts = AggregateOptions {
            join: Some(join.clone()),
            ..Default::default()
        };
        let mut a = SocketAggregate::new(opts.clone());
        let mut b = SocketAggregate::new(opts);
        let mut est = sock(1, ep(1, 5000), ep(2, 80));
        est.inode = 10;
        a.add(&est);
        let mut cw = sock(8, Endpoint::v6([0; 16], 5001), ep(2, 80));
        cw.inode = 11;
        b.add(&cw);
        let mut orphan = sock(9, ep(1, 5002), ep(2, 80));
        orphan.cgroup_id = 77;
        b.add(&orphan);
        a.merge(b);
        let out = a.finish(10, &[]);
        let t = out.processes.unwrap();
        assert_eq!(t.count(0, 1), 1);
        assert_eq!(t.count(1, 1), 1);
        assert_eq!(t.count(0, 8), 1);
        assert_eq!(t.v6, vec![1, 0]);
        assert_eq!(
            (0..4).map(|p| t.is_found(p)).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(join.positions(12), 3..4);
        assert_eq!(join.positions(99), 0..0);
        assert_eq!(out.orphans, 1);
        assert_eq!(out.orphan_cgroups, vec![(77, 1)]);
    }
}
