//! [`Offline`]: what every saved input adds to, and the Snapshot it becomes.
//!
//! Each format's parser calls the methods here; nothing else builds the offline
//! Snapshot, so every input lands in the same fields the live collector fills
//! (sockets go through the live collector's own streaming aggregator).

use crate::kernel_log::KernelLogBuilder;
use sockmedic_collect::aggregate::{AggregateOptions, SocketAggregate};
use sockmedic_collect::procfs::{HOST_SYSCTLS, NETNS_SYSCTLS};
use sockmedic_collect::sockdiag::DiagSocket;
use sockmedic_model::{
    FileNr, Host, Listener, MemLimits, Missing, Netns, Process, Snapshot, Source, SourceKind,
    StateCounts, TcpState,
};
use std::collections::BTreeMap;

/// Rows kept per top-N table (as `--top` does live).
pub const DEFAULT_TOP: usize = 10;

/// `ss -s` as printed: what it counts, in its own terms (kernel-notes §4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SsSummary {
    /// `Total: N` (sockstat `sockets: used`).
    pub total: Option<u64>,
    /// `TCP: N` = alloc + tw.
    pub tcp_total: Option<u64>,
    /// `estab` = snmp CurrEstab (ESTABLISHED + CLOSE-WAIT).
    pub estab: Option<u64>,
    /// `closed` = alloc − (inuse − tw).
    pub closed: Option<u64>,
    pub orphaned: Option<u64>,
    /// `timewait N` (old iproute2: `timewait N/M`, the first).
    pub timewait: Option<u64>,
    /// Old iproute2 (before 4.17): `synrecv N` from slabinfo.
    pub synrecv: Option<u64>,
    /// Old iproute2: `ports N`, the `tcp_bind_bucket` slab's active objects: ports
    /// bound by some socket.
    pub ports: Option<u64>,
}

/// A process seen in a saved listing (`ss -p`, `netstat -p`) or a limits file.
#[derive(Clone, Debug, Default)]
struct ProcParts {
    comm: String,
    /// A listing named this process's sockets (`socket_fds` is a count, not a guess).
    listed: bool,
    states: StateCounts,
    socket_fds: u64,
    fd_limit: Option<u64>,
    fd_limit_hard: Option<u64>,
    listeners: Vec<Listener>,
}

/// Where a listing's sockets go: the whole snapshot ([`Offline`]) or a part of
/// it ([`SocketPart`]).
pub(crate) trait Sockets {
    /// Sockets of the listing, in its order.
    fn sockets(&mut self, socks: &[DiagSocket]);
    /// A socket of the listing held by the process `pid` named `comm`.
    fn process_socket(&mut self, pid: u32, comm: &str, s: &DiagSocket);
}

impl Sockets for Offline {
    fn sockets(&mut self, socks: &[DiagSocket]) {
        Offline::sockets(self, socks);
    }
    fn process_socket(&mut self, pid: u32, comm: &str, s: &DiagSocket) {
        Offline::process_socket(self, pid, comm, s);
    }
}

/// Part of a socket listing, aggregated apart from the rest (a large listing is
/// parsed in parallel parts): [`Offline::socket_part`], [`Offline::merge_part`].
pub(crate) struct SocketPart {
    agg: SocketAggregate,
    processes: BTreeMap<u32, ProcParts>,
}

impl Sockets for SocketPart {
    fn sockets(&mut self, socks: &[DiagSocket]) {
        self.agg.add_batch(socks);
    }
    fn process_socket(&mut self, pid: u32, comm: &str, s: &DiagSocket) {
        process_socket(&mut self.processes, pid, comm, s);
    }
}

/// A socket of a listing counted for the process `pid` named `comm`.
fn process_socket(processes: &mut BTreeMap<u32, ProcParts>, pid: u32, comm: &str, s: &DiagSocket) {
    let p = processes.entry(pid).or_default();
    if p.comm.is_empty() {
        p.comm = comm.to_string();
    }
    p.listed = true;
    p.socket_fds += 1;
    let state = match s.state {
        12 => TcpState::SynRecv,
        n => TcpState::from_kernel(n).unwrap_or(TcpState::Close),
    };
    p.states.add(state, 1);
    if state == TcpState::Listen {
        p.listeners.push(Listener {
            local: s.local,
            accept_queue: s.rqueue,
            backlog: s.wqueue,
            syn_recv: 0,
            inode: s.inode,
            uid: s.uid,
        });
    }
}

/// Everything read so far from saved inputs; [`Offline::finish`] makes the Snapshot.
pub struct Offline {
    source: Source,
    host_sockstat: sockmedic_model::HostSockstat,
    host_sysctl: BTreeMap<String, String>,
    file_nr: Option<FileNr>,
    ns: Netns,
    ss_summary: Option<SsSummary>,
    agg: Option<SocketAggregate>,
    /// States the socket listing covers (`ss -tan` every state, `ss -tn` not LISTEN).
    listed_states: u32,
    processes: BTreeMap<u32, ProcParts>,
    /// `ulimit -n` of a shell: the default for processes without their own limits.
    shell_nofile: Option<(u64, Option<u64>)>,
    /// The hard limit of a shell's `ulimit -Hn`/`-Ha`, when read apart from the soft one.
    shell_nofile_hard: Option<u64>,
    kernel_log: Option<KernelLogBuilder>,
    /// The first input that named the host, and the name it gave.
    host_seen: Option<(String, String)>,
    /// Two inputs named two different hosts: the message, naming both.
    host_conflict: Option<String>,
    /// The input being read (set by the reader before each one), for figures that
    /// reveal the host without saying where they came from.
    current_input: String,
    /// Each input read, with the format recognised: `source` in reports.
    pub inputs: Vec<(String, &'static str)>,
    missing: Vec<Missing>,
    opts: ReadOptions,
}

/// What to keep of the inputs (the same choices as the live commands').
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Rows per top-N table.
    pub top: usize,
    /// Only these states (`1 << kernel number`), as `sockets --state`.
    pub states: Option<u32>,
    /// Only sockets with this local or remote port, as `sockets --port`.
    pub port: Option<u16>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            top: DEFAULT_TOP,
            states: None,
            port: None,
        }
    }
}

impl Offline {
    /// An empty offline snapshot of `kind` (text outputs or a bundle).
    pub fn new(kind: SourceKind, opts: ReadOptions) -> Offline {
        Offline {
            source: Source {
                kind,
                tool: format!("sockmedic {}", env!("CARGO_PKG_VERSION")),
                ..Source::default()
            },
            host_sockstat: Default::default(),
            host_sysctl: BTreeMap::new(),
            file_nr: None,
            ns: Netns {
                id: 0,
                names: Vec::new(),
                ..Netns::default()
            },
            ss_summary: None,
            agg: None,
            listed_states: 0,
            processes: BTreeMap::new(),
            shell_nofile: None,
            shell_nofile_hard: None,
            kernel_log: None,
            host_seen: None,
            host_conflict: None,
            current_input: String::new(),
            inputs: Vec::new(),
            missing: Vec::new(),
            opts,
        }
    }

    // ---------------------------------------------------------------- source

    /// The input about to be read: named in messages about figures it holds.
    pub fn begin_input(&mut self, name: &str) {
        self.current_input = name.to_string();
    }

    /// The host an input (`input`, as named in messages) comes from. A second,
    /// different name is an error: two hosts' outputs mixed into one diagnosis would
    /// be wrong everywhere. Names are compared by their first label, ignoring case
    /// (`web1` and `web1.example.com` are one host); `localhost` and other
    /// placeholders say nothing and are ignored. The conflict is also kept, so the
    /// reader reports it even when a parser went on ([`Offline::host_conflict`]).
    pub fn host_name(&mut self, name: &str, input: &str) -> Result<(), String> {
        let Some(name) = meaningful_host(name) else {
            return Ok(());
        };
        let input = if input.is_empty() {
            self.current_input.as_str()
        } else {
            input
        };
        match &self.host_seen {
            None => {
                self.source.host = name.to_string();
                self.host_seen = Some((input.to_string(), name.to_string()));
                Ok(())
            }
            Some((_, seen)) if same_host(seen, name) => {
                // Keep the fuller name (`hostname -f` after `hostname`).
                if name.len() > self.source.host.len() {
                    self.source.host = name.to_string();
                }
                Ok(())
            }
            Some((first, seen)) => {
                let why = format!(
                    "two hosts mixed: {input} is from host {name:?}, but {first} is from host {seen:?}; diagnose each host's outputs apart"
                );
                self.host_conflict.get_or_insert_with(|| why.clone());
                Err(why)
            }
        }
    }
    /// The first two-hosts conflict seen, as one line naming both inputs and hosts.
    pub fn host_conflict(&self) -> Option<&str> {
        self.host_conflict.as_deref()
    }
    pub fn kernel(&mut self, release: &str) {
        self.source
            .kernel
            .get_or_insert_with(|| release.trim().to_string());
    }
    /// When the outputs were taken (RFC 3339), if an input says.
    pub fn taken_at(&mut self, when: &str) {
        if self.source.taken_at.is_empty() {
            self.source.taken_at = when.trim().to_string();
        }
    }
    pub fn source_kind(&mut self, kind: SourceKind) {
        self.source.kind = kind;
    }

    // ---------------------------------------------------------------- figures

    /// A line of `/proc/net/sockstat` or `sockstat6`: `section` is `TCP`, `TCP6`,
    /// `sockets`, `UDP`..., `field` its name (`inuse`, `orphan`, `alloc`, `mem`, `tw`, `used`).
    pub fn sockstat(&mut self, section: &str, field: &str, value: u64) {
        let (h, n) = (&mut self.host_sockstat, &mut self.ns.sockstat);
        match (section, field) {
            ("TCP", "orphan") => h.tcp_orphan = Some(value),
            ("TCP", "alloc") => h.tcp_alloc = Some(value),
            ("TCP", "mem") => h.tcp_mem_pages = Some(value),
            ("UDP", "mem") => h.udp_mem_pages = Some(value),
            ("TCP", "inuse") => n.tcp_inuse = Some(value),
            ("TCP6", "inuse") => n.tcp6_inuse = Some(value),
            ("TCP", "tw") => n.tcp_tw = Some(value),
            ("UDP", "inuse") => n.udp_inuse = Some(value),
            ("UDP6", "inuse") => n.udp6_inuse = Some(value),
            ("sockets", "used") => n.sockets_used = Some(value),
            _ => {}
        }
    }
    /// A counter of `/proc/net/snmp` or `/proc/net/netstat` (`Tcp`/`CurrEstab`,
    /// `TcpExt`/`ListenOverflows`), or the same figure from `netstat -s`/`nstat`.
    pub fn counter(&mut self, section: &str, name: &str, value: i64) {
        self.ns
            .counters
            .entry(section.to_string())
            .or_default()
            .insert(name.to_string(), value);
    }
    /// A sysctl by its dotted name; host-only ones go to the host.
    pub fn sysctl(&mut self, name: &str, value: &str) {
        let name = name.trim().replace('/', ".");
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        let host_only = HOST_SYSCTLS.iter().any(|s| s.name == name) || name.starts_with("fs.");
        if host_only {
            self.host_sysctl.insert(name, value);
        } else if NETNS_SYSCTLS.iter().any(|s| s.name == name) || name.starts_with("net.") {
            self.ns.sysctl.insert(name, value);
        } else if name == "kernel.hostname" {
            // Recorded for the source; a mismatch is kept by `host_name`.
            let _ = self.host_name(&value, "");
        } else if name == "kernel.osrelease" {
            self.kernel(&value);
        }
    }
    pub fn file_nr(&mut self, nr: FileNr) {
        self.file_nr = Some(nr);
    }
    pub fn ss_summary(&mut self, s: SsSummary) {
        self.ss_summary = Some(s);
    }

    // ---------------------------------------------------------------- sockets

    /// Declares that a socket listing covers these states (`1 << kernel number`;
    /// `ALL_STATES` for `ss -tan`), before its sockets are added.
    pub fn listing(&mut self, states: u32) {
        self.listed_states |= states;
    }
    /// One socket of a listing (`ss -tan`, `netstat -ant`, `/proc/net/tcp`), streamed
    /// into the live collector's aggregator.
    pub fn socket(&mut self, s: &DiagSocket) {
        if self.agg.is_none() {
            self.agg = Some(SocketAggregate::new(self.aggregate_options()));
        }
        if let Some(agg) = self.agg.as_mut() {
            agg.add(s);
        }
    }
    /// Sockets of a listing, as [`Offline::socket`] of each, by batches.
    pub fn sockets(&mut self, socks: &[DiagSocket]) {
        if self.agg.is_none() && !socks.is_empty() {
            self.agg = Some(SocketAggregate::new(self.aggregate_options()));
        }
        if let Some(agg) = self.agg.as_mut() {
            agg.add_batch(socks);
        }
    }
    /// A socket of a listing that names its process (`ss -p`, `netstat -p`).
    pub fn process_socket(&mut self, pid: u32, comm: &str, s: &DiagSocket) {
        process_socket(&mut self.processes, pid, comm, s);
    }
    /// An empty part of a listing, to be filled apart (on another thread) and
    /// folded in with [`Offline::merge_part`].
    pub(crate) fn socket_part(&self) -> SocketPart {
        SocketPart {
            agg: SocketAggregate::new(self.aggregate_options()),
            processes: BTreeMap::new(),
        }
    }
    /// Folds in a part filled apart: parts folded in the listing's order give the
    /// figures [`Offline::socket`] would have (the top-N tables within their
    /// reported error).
    pub(crate) fn merge_part(&mut self, part: SocketPart) {
        if part.agg.messages > 0 {
            match self.agg.as_mut() {
                Some(agg) => agg.merge(part.agg),
                None => self.agg = Some(part.agg),
            }
        }
        for (pid, q) in part.processes {
            let p = self.processes.entry(pid).or_default();
            if p.comm.is_empty() {
                p.comm = q.comm;
            }
            p.listed |= q.listed;
            p.states.merge(&q.states);
            p.socket_fds += q.socket_fds;
            p.listeners.extend(q.listeners);
        }
    }
    fn aggregate_options(&self) -> AggregateOptions {
        AggregateOptions {
            port_range: self.ns.port_range(),
            port_filter: self.opts.port,
            states_requested: self
                .opts
                .states
                .unwrap_or(sockmedic_collect::sockdiag::ALL_STATES),
            top_capacity: sockmedic_collect::aggregate::TOP_CAPACITY,
            ..AggregateOptions::default()
        }
    }

    // ---------------------------------------------------------------- processes

    /// `/proc/PID/limits` (`pid` from its path) or a process's own `ulimit -n`.
    pub fn fd_limit(&mut self, pid: u32, soft: u64, hard: Option<u64>) {
        let p = self.processes.entry(pid).or_default();
        p.fd_limit = Some(soft);
        p.fd_limit_hard = hard;
    }
    /// `ulimit -a` of a shell: the limit processes started from it inherit. A hard
    /// limit read before (`ulimit -Hn`) is kept when this one has none.
    pub fn shell_nofile(&mut self, soft: u64, hard: Option<u64>) {
        let hard = hard.or(self.shell_nofile_hard);
        self.shell_nofile = Some((soft, hard));
    }
    /// `ulimit -Hn` (or `-Ha`) of a shell: its hard limit alone.
    pub fn shell_nofile_hard(&mut self, hard: u64) {
        self.shell_nofile_hard = Some(hard);
        if let Some((_, h)) = &mut self.shell_nofile {
            *h = Some(hard);
        }
    }
    /// The shell's `ulimit -n` as read so far (soft, hard).
    pub fn shell_limits(&self) -> Option<(u64, Option<u64>)> {
        self.shell_nofile
    }

    // ---------------------------------------------------------------- kernel log

    /// One line of a saved kernel log (dmesg, journalctl -k, /dev/kmsg records).
    /// A syslog-style line names its host (`Nov 22 05:58:03 vm kernel: ...`): lines of
    /// another host than the other inputs' are kept as a conflict.
    pub fn kernel_log_line(&mut self, source: &str, line: &str) {
        let Some(parsed) = crate::kernel_log::parse_line(line) else {
            return;
        };
        if let Some(host) = parsed.host {
            if self.host_conflict.is_none() {
                let _ = self.host_name(host, source);
            }
        }
        self.kernel_log
            .get_or_insert_with(|| KernelLogBuilder::new(source))
            .push_parsed(&parsed);
    }

    pub fn missing(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.missing.push(Missing::new(what, why));
    }

    // ---------------------------------------------------------------- finish

    /// The Snapshot, with `missing` saying what the inputs did not contain.
    pub fn finish(mut self) -> Snapshot {
        let mut snap = Snapshot {
            source: self.source.clone(),
            ..Snapshot::default()
        };
        if snap.source.host.is_empty() {
            snap.source.host = "unknown".into();
        }
        // `ss -s` fills host-wide figures too: fold it before they are copied.
        self.fold_ss_summary();
        snap.host = self.host();
        snap.source.inputs = self
            .inputs
            .iter()
            .map(|(n, f)| format!("{n} ({f})"))
            .collect();
        let label = match self.inputs.as_slice() {
            [(one, _)] => format!("saved ({one})"),
            _ => "saved".to_string(),
        };
        self.ns.names = vec![label];
        self.ns.host = true;
        if let Some(agg) = self.agg.take() {
            let reserved = Vec::new();
            let out = agg.finish(self.opts.top, &reserved);
            self.ns.states = out.states;
            self.ns.listeners = out.listeners;
            self.ns.top_local = out.top_local;
            self.ns.top_remote = out.top_remote;
            self.ns.ephemeral = out.ephemeral;
            self.ns.orphans = Some(out.orphans);
            self.ns.queued = Some(out.queued);
            self.ns.dump = Some(sockmedic_model::DumpInfo {
                states: TcpState::DUMPABLE
                    .iter()
                    .copied()
                    .filter(|s| {
                        s.kernel_number()
                            .is_some_and(|k| self.listed_states & (1 << k) != 0)
                    })
                    .collect(),
                families: vec!["saved listing".into()],
                sockets: out.messages,
                parts: 1,
                exact: out.exact,
                ..Default::default()
            });
        }
        snap.processes = self.processes_out();
        snap.kernel_log = self.kernel_log.take().map(KernelLogBuilder::finish);
        snap.netns = vec![std::mem::take(&mut self.ns)];
        snap.host.closed = sockmedic_collect::closed_sockets_seen_from(&snap, false, Some(0));
        if let (Some(c), Some(printed)) = (
            snap.host.closed.as_mut(),
            self.ss_summary.and_then(|s| s.closed),
        ) {
            // What `ss -s` printed is kept as printed (the files were read at
            // another moment than the summary).
            c.ss_closed = Some(printed as i64);
        }
        let mut missing = std::mem::take(&mut self.missing);
        missing.extend(missing_pieces(&snap));
        snap.missing = missing;
        snap
    }

    fn host(&self) -> Host {
        let sys = &self.host_sysctl;
        let num = |k: &str| sys.get(k).and_then(|v| v.trim().parse::<u64>().ok());
        let triple = |k: &str| {
            let v: Vec<u64> = sys
                .get(k)?
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| MemLimits {
                min: v[0],
                pressure: v[1],
                max: v[2],
            })
        };
        let file_nr = self.file_nr.or_else(|| {
            let v: Vec<u64> = sys
                .get("fs.file-nr")?
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| FileNr {
                allocated: v[0],
                unused: v[1],
                max: v[2],
            })
        });
        Host {
            sockstat: self.host_sockstat.clone(),
            limits: sockmedic_model::HostLimits {
                tcp_mem: triple("net.ipv4.tcp_mem"),
                udp_mem: triple("net.ipv4.udp_mem"),
                tcp_max_orphans: num("net.ipv4.tcp_max_orphans"),
                file_max: num("fs.file-max"),
                nr_open: num("fs.nr_open"),
                nf_conntrack_max: num("net.netfilter.nf_conntrack_max"),
            },
            file_nr,
            page_size: 4096,
            closed: None,
            sysctl: self.host_sysctl.clone(),
        }
    }

    /// `ss -s` fills what the files did not: sockstat figures and CurrEstab.
    fn fold_ss_summary(&mut self) {
        let Some(s) = self.ss_summary else { return };
        let h = &mut self.host_sockstat;
        let n = &mut self.ns.sockstat;
        if h.tcp_orphan.is_none() {
            h.tcp_orphan = s.orphaned;
        }
        if n.tcp_tw.is_none() {
            n.tcp_tw = s.timewait;
        }
        // TCP: N = alloc + tw; closed = alloc − (inuse − tw).
        if let (None, Some(total), Some(tw)) = (h.tcp_alloc, s.tcp_total, s.timewait) {
            h.tcp_alloc = Some(total.saturating_sub(tw));
        }
        if let (None, Some(alloc), Some(closed), Some(tw)) =
            (n.tcp_inuse, h.tcp_alloc, s.closed, s.timewait)
        {
            // Both families together: ss -s does not split them.
            n.tcp_inuse = Some((alloc + tw).saturating_sub(closed));
            n.tcp6_inuse.get_or_insert(0);
        }
        if n.sockets_used.is_none() {
            n.sockets_used = s.total;
        }
        if let Some(e) = s.estab {
            self.ns
                .counters
                .entry("Tcp".into())
                .or_default()
                .entry("CurrEstab".into())
                .or_insert(e as i64);
        }
        if let Some(p) = s.ports {
            self.ns.bind_buckets.get_or_insert(p);
        }
    }

    fn processes_out(&mut self) -> Vec<Process> {
        let shell = self.shell_nofile;
        std::mem::take(&mut self.processes)
            .into_iter()
            .map(|(pid, p)| Process {
                pid,
                comm: p.comm,
                netns: Some(0),
                socket_fds: p.listed.then_some(p.socket_fds),
                fd_limit: p.fd_limit.or(shell.map(|s| s.0)),
                fd_limit_hard: p.fd_limit_hard.or(shell.and_then(|s| s.1)),
                states: p.states,
                listeners: p.listeners,
                ..Process::default()
            })
            .collect()
    }
}

/// A host name worth comparing: not empty, one word of host-name characters, not a
/// placeholder (`localhost`, `(none)`).
fn meaningful_host(name: &str) -> Option<&str> {
    let name = name.trim().trim_end_matches('.');
    let plain = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    let first = name.split('.').next().unwrap_or("");
    let placeholder = first.eq_ignore_ascii_case("localhost") || first.is_empty();
    (plain && !placeholder).then_some(name)
}

/// One host: the same first label, ignoring case (`web1`, `WEB1.example.com`).
fn same_host(a: &str, b: &str) -> bool {
    first_label(a).eq_ignore_ascii_case(first_label(b))
}

/// `web1` of `web1.example.com`.
fn first_label(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// What the inputs did not contain, one entry per piece a check needs (the
/// `Need`s of sockmedic-diagnose's catalog: each entry's `what` holds the words the
/// catalog looks for, so a skipped check quotes the reason given here). Limits come
/// before the figures they bound, so a check that has its figure but not its limit
/// finds the limit's entry first.
fn missing_pieces(snap: &Snapshot) -> Vec<Missing> {
    let mut out = Vec::new();
    let mut add = |what: &str, why: &str| out.push(Missing::new(what, why));
    let Some(ns) = snap.netns.first() else {
        return out;
    };
    let (host, limits) = (&snap.host, &snap.host.limits);
    if ns.sysctl.is_empty() {
        add(
            "per-namespace sysctls",
            "no `sysctl -a`, `sysctl NAME` lines or /proc/sys/net files among the inputs: the sysctl audit cannot run",
        );
    }
    let sysctl_why = |name: &str| {
        format!(
            "not among the inputs (save `sysctl -a`, or `cat /proc/sys/{}`)",
            name.replace('.', "/")
        )
    };
    if limits.tcp_max_orphans.is_none() {
        add(
            "net.ipv4.tcp_max_orphans",
            &format!(
                "{}: orphans cannot be compared with their limit",
                sysctl_why("net.ipv4.tcp_max_orphans")
            ),
        );
    }
    if limits.tcp_mem.is_none() {
        add(
            "net.ipv4.tcp_mem",
            &format!(
                "{}: TCP memory cannot be compared with its limits",
                sysctl_why("net.ipv4.tcp_mem")
            ),
        );
    }
    if limits.nf_conntrack_max.is_none() {
        add(
            "net.netfilter.nf_conntrack_max",
            "not among the inputs (`sysctl -a` lists it only while nf_conntrack is loaded): conntrack use is unknown",
        );
    }
    if !ns.sysctl.contains_key("net.ipv4.ip_local_port_range") {
        add(
            "net.ipv4.ip_local_port_range",
            &format!(
                "{}: ephemeral ports cannot be counted against the range",
                sysctl_why("net.ipv4.ip_local_port_range")
            ),
        );
    }
    let s = &host.sockstat;
    if s.tcp_alloc.is_none() && s.tcp_orphan.is_none() && s.tcp_mem_pages.is_none() {
        add(
            "/proc/net/sockstat",
            "no saved sockstat or `ss -s`: orphans, allocated (\"closed\") sockets and TCP memory are unknown",
        );
    } else if s.tcp_mem_pages.is_none() {
        add(
            "TCP memory pages (sockstat mem)",
            "`ss -s` does not print TCP memory: save /proc/net/sockstat too",
        );
    }
    if host.file_nr.is_none() {
        add(
            "fs.file-nr",
            "not among the inputs (`sysctl -a` or /proc/sys/fs/file-nr): the host's file handles are unknown",
        );
    }
    if ns.counters.is_empty() {
        add(
            "/proc/net/snmp and /proc/net/netstat counters",
            "no saved `netstat -s`, `nstat -az` or /proc/net/snmp: overflow and drop counters are unknown",
        );
    }
    if ns.dump.is_none() {
        add(
            "TCP sockets (a socket listing)",
            "no saved `ss -tan`, `netstat -ant` or /proc/net/tcp: no per-state counts, endpoints or listeners",
        );
    }
    if snap.processes.is_empty() {
        add(
            "process list",
            "no `ss -tanp`/`netstat -antp` output or /proc/PID/limits: findings cannot name a process",
        );
    } else if snap.processes.iter().all(|p| p.fds.is_none()) {
        add(
            "open fds per process",
            "saved outputs give processes' sockets and limits, not how many fds each has open (`ls /proc/PID/fd | wc -l`): a process near its fd limit cannot be seen",
        );
    }
    if snap.kernel_log.is_none() {
        add(
            "kernel log",
            "no saved dmesg, journalctl -k or syslog kernel lines",
        );
    }
    out
}
