//! The Snapshot: everything sockmedic knows at one instant, and the report built on it.
//!
//! Scope is explicit in the shape: [`Host`] holds the host-wide figures (global in
//! the kernel: orphan, alloc, mem, tcp_mem, tcp_max_orphans, file-nr), each
//! [`Netns`] the per-namespace ones (inuse, tw, states, counters, most sysctls).

use crate::{Endpoint, Finding, KernelLog, StateCounts, TcpState, REPORT_SCHEMA};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything known at one instant. `missing` says what could not be seen and why.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub source: Source,
    pub host: Host,
    pub netns: Vec<Netns>,
    pub processes: Vec<Process>,
    /// The known messages of the kernel log; `None` when it was not read.
    pub kernel_log: Option<KernelLog>,
    pub missing: Vec<Missing>,
}

/// The JSON report (`sockmedic.report/v1`): a Snapshot plus findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    #[serde(flatten)]
    pub snapshot: Snapshot,
    pub findings: Vec<Finding>,
    /// Checks that could not run, and why (the data they need is missing).
    pub skipped: Vec<Skipped>,
    /// Counters per second between an earlier snapshot and this one; `None` when
    /// only one snapshot was taken (`check --once`, `stat`, offline input).
    pub rates: Option<Rates>,
    /// The capture section of `sockmedic pcap` (`source.kind = "capture"`); `null`
    /// for every other source.
    #[serde(default)]
    pub capture: Option<Capture>,
}

/// What a packet capture showed, counted the way Wireshark counts it
/// (`tcp.flags.fin==1`, `tcp.analysis.retransmission`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    /// Every packet in the file (decoded or not).
    pub packets: u64,
    pub tcp_packets: u64,
    pub syn_packets: u64,
    pub fin_packets: u64,
    pub rst_packets: u64,
    /// FIN segments that repeat an earlier FIN of the same side.
    pub fin_retransmissions: u64,
    pub connections: u64,
    /// Connections whose close completed in the capture (both FINs acknowledged).
    pub closes_completed: u64,
    /// SYNs and SYN-ACKs sent again (`tcp.analysis.retransmission` on a SYN).
    #[serde(default)]
    pub syn_retransmissions: u64,
    #[serde(default)]
    pub syn_ack_retransmissions: u64,
    /// Segments with data sent again: data starting before the highest sequence number
    /// its side has sent, FIN, SYN and RST not set, keep-alives left out. Wireshark
    /// splits these into `tcp.analysis.retransmission`, `spurious_retransmission` and
    /// (when one comes within a round-trip time) `out_of_order`; this is their sum for
    /// `tcp.len > 0`.
    #[serde(default)]
    pub data_retransmissions: u64,
    /// Segments advertising a zero window (`tcp.analysis.zero_window`).
    #[serde(default)]
    pub zero_windows: u64,
    /// Connections that ended with a RST.
    #[serde(default)]
    pub resets: u64,
    /// Connections whose SYN was never answered in the capture.
    #[serde(default)]
    pub syn_unanswered: u64,
    /// Connections still closing / still open when the capture ended.
    #[serde(default)]
    pub closing_at_end: u64,
    #[serde(default)]
    pub open_at_end: u64,
    /// TCP packets found inside a tunnel (VXLAN, Geneve, GRE, ERSPAN, IP in IP), and
    /// per kind (`vxlan`, `vxlan-gpe`, `geneve`, `gre`, `erspan`, `ipip`; kinds
    /// without packets left out). Each is analysed by its inner addresses and ports.
    #[serde(default)]
    pub tunneled_packets: u64,
    #[serde(default)]
    pub tunnels: BTreeMap<String, u64>,
    /// Server endpoints (the side that got the SYN) whose closes stalled most, worst
    /// first: the remote endpoints of a capture taken on a client, the local ones of a
    /// capture taken on a server.
    pub top_stalled: Vec<StalledEndpoint>,
}

/// One remote endpoint of [`Capture::top_stalled`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StalledEndpoint {
    /// `ip:port` (`[v6]:port`).
    pub endpoint: String,
    pub connections: u64,
    pub fin_retransmissions: u64,
    /// The longest time from a FIN to its ACK, in milliseconds.
    pub max_fin_wait_ms: u64,
}

impl Report {
    pub fn new(snapshot: Snapshot, findings: Vec<Finding>) -> Report {
        Report {
            schema: REPORT_SCHEMA.to_string(),
            snapshot,
            findings,
            skipped: Vec::new(),
            rates: None,
            capture: None,
        }
    }
}

/// A check of the catalog that did not run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub code: String,
    pub why: String,
}

/// How fast the per-namespace counters grew between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Seconds between the two readings.
    pub interval_s: f64,
    /// Per namespace id, per section (`TcpExt`, `Tcp`), per counter: increase per
    /// second. Only counters that moved are listed.
    pub netns: BTreeMap<u64, BTreeMap<String, BTreeMap<String, f64>>>,
}

impl Rates {
    /// The rate of one counter in one namespace; 0 when it did not move, `None`
    /// when the namespace was not in both snapshots.
    pub fn get(&self, netns: u64, section: &str, name: &str) -> Option<f64> {
        let ns = self.netns.get(&netns)?;
        Some(
            ns.get(section)
                .and_then(|s| s.get(name))
                .copied()
                .unwrap_or(0.0),
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    Live,
    Bundle,
    Text,
    Capture,
}

/// Where the figures came from, so an offline report is never taken for a live one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub kind: SourceKind,
    pub host: String,
    pub kernel: Option<String>,
    /// RFC 3339, UTC.
    pub taken_at: String,
    /// Wall time spent collecting, in milliseconds.
    pub duration_ms: Option<f64>,
    /// The sockmedic that collected it (`sockmedic 0.1.0`).
    pub tool: String,
    /// Whether the collector ran with the rights to see everything (root).
    pub privileged: Option<bool>,
    /// Seconds since boot (CLOCK_BOOTTIME) when collection started: rates divide
    /// by the difference between two snapshots' values, and kernel log times are
    /// compared with it.
    pub uptime_s: Option<f64>,
    /// Saved inputs read (`kind: text`), each as `NAME (FORMAT)`; empty otherwise.
    #[serde(default)]
    pub inputs: Vec<String>,
}

/// Host-wide figures: global counters and the limits that bound them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub sockstat: HostSockstat,
    pub limits: HostLimits,
    pub file_nr: Option<FileNr>,
    /// Bytes per page, the unit of `tcp_mem` and sockstat `mem`.
    pub page_size: u64,
    /// What `ss -s` calls "closed", computed for what it really is.
    pub closed: Option<Closed>,
    /// Raw values of the host-only sysctls read from the initial namespace.
    pub sysctl: BTreeMap<String, String>,
}

/// The global fields of `/proc/net/sockstat` (the same in every namespace).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostSockstat {
    /// TCP sockets closed by the application and still held by TCP (all netns).
    pub tcp_orphan: Option<u64>,
    /// Full TCP sockets in existence, IPv4 and IPv6, all netns.
    pub tcp_alloc: Option<u64>,
    /// TCP memory in pages, compared with `tcp_mem`.
    pub tcp_mem_pages: Option<u64>,
    pub udp_mem_pages: Option<u64>,
}

/// A `{min, pressure, max}` triple in pages (`tcp_mem`, `udp_mem`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemLimits {
    pub min: u64,
    pub pressure: u64,
    pub max: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLimits {
    pub tcp_mem: Option<MemLimits>,
    pub udp_mem: Option<MemLimits>,
    pub tcp_max_orphans: Option<u64>,
    pub file_max: Option<u64>,
    pub nr_open: Option<u64>,
    pub nf_conntrack_max: Option<u64>,
}

/// `fs.file-nr`: allocated file handles, allocated-but-unused, and the maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileNr {
    pub allocated: u64,
    pub unused: u64,
    pub max: u64,
}

/// "closed" as it really is: allocated TCP sockets that are in no table
/// (never used, only bound, or reset and still held), `alloc − Σ inuse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    /// sockstat `alloc` (host-wide).
    pub alloc: u64,
    /// `inuse` (TCP + TCP6) summed over every namespace counted.
    pub inuse: u64,
    /// `alloc − inuse − orphans_unseen`, floored at 0 (the figures are read a
    /// moment apart).
    pub unhashed: u64,
    /// Orphans in no namespace sockmedic dumped: sockstat `orphan` minus the
    /// orphans dumped in every namespace. They are hashed in a namespace that was
    /// filtered out, could not be entered, or has no handle left (a deleted pod's,
    /// kept alive by its sockets), so they are not "in no table". `None` when a
    /// namespace's orphans are unknown.
    pub orphans_unseen: Option<u64>,
    /// Of `unhashed`, the sockets bound to a port (BOUND-INACTIVE, dumped); the
    /// rest are not even bound (never used, or reset and still held). `None` when
    /// the kernel cannot dump bound-inactive sockets (before 6.8).
    pub bound_inactive: Option<u64>,
    /// How many namespaces were summed.
    pub netns_counted: usize,
    /// True when every namespace on the host was summed; otherwise `unhashed`
    /// also counts the hashed sockets of the namespaces left out.
    pub complete: bool,
    /// What `ss -s` would print as "closed" here: `alloc − (inuse4 + inuse6 − tw)`
    /// of the namespace sockmedic runs in.
    pub ss_closed: Option<i64>,
}

/// One network namespace and its per-namespace figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Netns {
    /// The nsfs inode (`readlink /proc/PID/ns/net` → `net:[ID]`).
    pub id: u64,
    /// Human names: `host`, `ip netns` names, `pid N (comm)`, later pods/containers.
    pub names: Vec<String>,
    /// The initial (host) namespace.
    pub host: bool,
    /// Processes whose network namespace this is.
    pub processes: u64,
    pub sockstat: NetnsSockstat,
    /// Per-namespace sysctls by full name (`net.ipv4.tcp_fin_timeout`), raw values.
    pub sysctl: BTreeMap<String, String>,
    /// TCP sockets per state.
    pub states: StateCounts,
    /// Orphaned sockets dumped here: closed by the application, still in
    /// FIN-WAIT-1, FIN-WAIT-2, LAST-ACK or CLOSING as full sockets (sockstat's
    /// `orphan` is host-wide; this is the namespace's share).
    pub orphans: Option<u64>,
    /// Orphans by the cgroup (container, pod) that created them, heaviest first.
    pub orphan_owners: Vec<CgroupCount>,
    /// The pod owning this namespace (`namespace/name`), when one does.
    pub pod: Option<String>,
    /// ESTABLISHED was derived as snmp `CurrEstab` − CLOSE-WAIT instead of dumped.
    pub established_derived: bool,
    pub listeners: Vec<Listener>,
    /// Busiest local endpoints per state.
    pub top_local: Vec<EndpointCount>,
    /// Busiest remote endpoints per state.
    pub top_remote: Vec<EndpointCount>,
    pub ephemeral: Option<EphemeralUse>,
    /// `/proc/net/snmp` and `/proc/net/netstat` by section then name
    /// (`counters["TcpExt"]["ListenOverflows"]`).
    pub counters: BTreeMap<String, BTreeMap<String, i64>>,
    pub conntrack_count: Option<u64>,
    /// Ports bound by some socket (any range): the `tcp_bind_bucket` count old `ss -s`
    /// printed as `ports N`. Only from saved outputs; live, `ephemeral` is exact.
    pub bind_buckets: Option<u64>,
    /// Bytes waiting in the connections' queues, summed over the dump; `None` when
    /// ESTABLISHED was not dumped.
    pub queued: Option<QueuedBytes>,
    pub dump: Option<DumpInfo>,
}

/// Bytes in TCP queues: received and not read by the application (Recv-Q), and
/// sent and not acknowledged or not sent yet (Send-Q). What holds TCP memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedBytes {
    pub recv: u64,
    pub send: u64,
}

/// The per-namespace fields of sockstat and sockstat6.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetnsSockstat {
    /// `sockets: used` (all families; per netns on 4.16+).
    pub sockets_used: Option<u64>,
    /// IPv4 TCP sockets in the tables (listeners + connections, not TIME-WAIT).
    pub tcp_inuse: Option<u64>,
    pub tcp6_inuse: Option<u64>,
    /// TIME-WAIT and FIN-WAIT-2 minisockets (IPv4 and IPv6).
    pub tcp_tw: Option<u64>,
    pub udp_inuse: Option<u64>,
    pub udp6_inuse: Option<u64>,
}

/// A listening socket and its queues (`ss -lnt`: Recv-Q and Send-Q).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    pub local: Endpoint,
    /// Connections completed and waiting for accept() (`sk_ack_backlog`).
    pub accept_queue: u32,
    /// The backlog given to listen(), capped by somaxconn (`sk_max_ack_backlog`).
    pub backlog: u32,
    /// Half-open connections (SYN-RECV) for this listener.
    pub syn_recv: u64,
    pub inode: u32,
    pub uid: u32,
}

/// One row of a top-N table: an endpoint and how many sockets in `state` it has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointCount {
    pub state: TcpState,
    pub endpoint: Endpoint,
    pub count: u64,
    /// Largest possible overcount of `count` (0 = exact). Non-zero only when more
    /// distinct endpoints streamed by than the bounded table keeps.
    pub error: u64,
}

/// Ephemeral-port use: sockets whose local port lies in `ip_local_port_range`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EphemeralUse {
    /// `[low, high]` inclusive.
    pub range: [u16; 2],
    /// Ports in the range, less reserved ones.
    pub size: u32,
    /// Ports of the range listed in `ip_local_reserved_ports`.
    pub reserved: u32,
    /// Sockets (any state but LISTEN) with a local port in the range.
    pub sockets: u64,
    /// Distinct local ports in the range used by those sockets.
    pub ports_in_use: u32,
    /// Distinct ports in the range held by bound-inactive sockets (bind() without
    /// listen/connect): taken for every destination.
    pub bound_inactive_ports: Option<u32>,
    /// Sockets in the range per remote endpoint (connect() can reuse a port per
    /// distinct destination, so exhaustion is per destination).
    pub top_remote: Vec<RemoteCount>,
    /// False when ESTABLISHED sockets were not dumped (`stat`), so the figures
    /// above leave them out.
    pub includes_established: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteCount {
    pub endpoint: Endpoint,
    pub count: u64,
    pub error: u64,
}

/// How the sockets of a namespace were dumped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DumpInfo {
    /// States asked of the kernel.
    pub states: Vec<TcpState>,
    pub families: Vec<String>,
    /// Whether bound-inactive sockets were dumped (Linux 6.8+).
    pub bound_inactive: bool,
    /// Why they were not, when their count is known anyway.
    pub bound_inactive_note: Option<String>,
    /// Socket messages received.
    pub sockets: u64,
    /// Parallel dumps (each over a disjoint range of local ports); 0 when sockstat
    /// showed nothing to dump (inuse and tw 0), so the counts are zero unasked.
    pub parts: u32,
    pub duration_ms: f64,
    /// True when every top-N table is exact.
    pub exact: bool,
}

/// A process holding sockets, or near its file limit (filled by the process scan).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// The start of `/proc/PID/cmdline` (arguments separated by spaces); `null`
    /// when not collected.
    pub cmdline: Option<String>,
    /// Effective uid (owner of `/proc/PID`).
    pub uid: Option<u32>,
    /// Network namespace (nsfs inode) of the process.
    pub netns: Option<u64>,
    /// Other namespaces some of its threads have entered.
    pub thread_netns: Vec<u64>,
    /// The cgroup path the identity below was read from.
    pub cgroup: Option<String>,
    /// Full container id.
    pub container: Option<String>,
    /// Container name, from the node's own files when it is a Kubernetes node.
    pub container_name: Option<String>,
    /// `namespace/name` of the pod, or its UID when the name is not known.
    pub pod: Option<String>,
    /// The pod's UID.
    pub pod_uid: Option<String>,
    /// Open file descriptors.
    pub fds: Option<u64>,
    /// RLIMIT_NOFILE soft limit (`ulimit -n`).
    pub fd_limit: Option<u64>,
    /// RLIMIT_NOFILE hard limit.
    pub fd_limit_hard: Option<u64>,
    pub socket_fds: Option<u64>,
    /// Socket fds by protocol as the kernel names it (`TCP`, `TCPv6`, `UDP`, `UNIX`, ...).
    pub sockets_by_proto: BTreeMap<String, u64>,
    /// TCP sockets held, by state; `BOUND-INACTIVE` and `UNHASHED` are the two
    /// kinds of CLOSE sockets (bound to a port, or in no table at all).
    pub states: StateCounts,
    /// TCP sockets in state CLOSE held by this process: BOUND-INACTIVE + UNHASHED.
    pub unhashed: Option<u64>,
    /// Some ports its BOUND-INACTIVE sockets hold (each one taken for every
    /// destination).
    pub bound_ports: Vec<u16>,
    /// What a sample of those CLOSE sockets really is (`pidfd_getfd` + TCP_INFO).
    pub unhashed_check: Option<UnhashedCheck>,
    /// Its listening sockets with their queues.
    pub listeners: Vec<Listener>,
}

/// What the TCP sockets of a process that no dump returned really are: each one is
/// duplicated with `pidfd_getfd` and asked for TCP_INFO (and, with `--so-error`,
/// SO_ERROR).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnhashedCheck {
    /// Sockets checked.
    pub checked: u64,
    /// Of those, in state CLOSE (TCP_INFO tcpi_state 7): the UNHASHED ones.
    pub close: u64,
    /// Of those, in another state: sockets living in a namespace that was not dumped
    /// (counted under their state, not as UNHASHED).
    pub in_other_netns: u64,
    /// Pending socket errors among them (`ECONNRESET`, `ECONNREFUSED`, `ETIMEDOUT`...),
    /// i.e. connections that failed and were never closed by the application.
    pub errors: BTreeMap<String, u64>,
    /// Local ports they last used (getsockname). A socket reset after an automatic
    /// bind keeps the number but no longer holds the port; the ones that do hold
    /// their port are the BOUND-INACTIVE sockets (`Process::bound_ports`).
    pub last_ports: Vec<u16>,
    /// Why no sample could be checked (e.g. no ptrace access), when none was.
    pub unavailable: Option<String>,
}

/// Sockets with no process (orphans) attributed to the cgroup that created them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupCount {
    /// cgroup v2 id (directory inode).
    pub cgroup_id: u64,
    pub cgroup: Option<String>,
    pub container: Option<String>,
    pub pod: Option<String>,
    pub count: u64,
}

/// Something that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    pub what: String,
    pub why: String,
}

impl Missing {
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> Missing {
        Missing {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl NetnsSockstat {
    /// TCP sockets in the tables, IPv4 and IPv6 (`inuse` of sockstat and
    /// sockstat6); 0 for a figure that was not read.
    pub fn tcp_inuse_total(&self) -> u64 {
        self.tcp_inuse.unwrap_or(0) + self.tcp6_inuse.unwrap_or(0)
    }
}

impl Process {
    /// Open fds as a share of the soft RLIMIT_NOFILE; `None` when either is
    /// unknown, or the limit is 0 or unlimited.
    pub fn fd_use(&self) -> Option<f64> {
        match (self.fds, self.fd_limit) {
            (Some(f), Some(l)) if l > 0 && l != u64::MAX => Some(f as f64 / l as f64),
            _ => None,
        }
    }
}

impl Netns {
    /// The first (best) name, for text output and `subject.netns`.
    pub fn name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or("?")
    }
    /// A counter from `counters`, e.g. `counter("TcpExt", "ListenOverflows")`.
    pub fn counter(&self, section: &str, name: &str) -> Option<i64> {
        self.counters.get(section)?.get(name).copied()
    }
    /// A sysctl parsed as an integer.
    pub fn sysctl_u64(&self, name: &str) -> Option<u64> {
        self.sysctl.get(name)?.trim().parse().ok()
    }
    /// `net.ipv4.ip_local_port_range` as `(low, high)`: exactly two port numbers,
    /// low ≤ high (what the kernel accepts); `None` otherwise.
    pub fn port_range(&self) -> Option<(u16, u16)> {
        let v = self.sysctl.get("net.ipv4.ip_local_port_range")?;
        let mut words = v.split_whitespace().map(str::parse::<u16>);
        match (words.next(), words.next(), words.next()) {
            (Some(Ok(lo)), Some(Ok(hi)), None) if lo <= hi => Some((lo, hi)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_is_two_ordered_ports() {
        let with = |v: &str| {
            let mut ns = Netns::default();
            ns.sysctl
                .insert("net.ipv4.ip_local_port_range".into(), v.into());
            ns.port_range()
        };
        assert_eq!(with("32768\t60999"), Some((32768, 60999)));
        assert_eq!(with("50000 62000"), Some((50000, 62000)));
        for bad in ["", "40000", "62000 50000", "1 2 3", "1 70000", "a b"] {
            assert_eq!(with(bad), None, "{bad:?}");
        }
        assert_eq!(Netns::default().port_range(), None);
    }

    #[test]
    fn report_has_schema_first_and_null_fields() {
        let r = Report::new(Snapshot::default(), vec![]);
        let text = serde_json::to_string(&r).unwrap();
        let order = [
            "\"schema\"",
            "\"source\"",
            "\"host\"",
            "\"netns\"",
            "\"processes\"",
            "\"kernel_log\"",
            "\"missing\"",
            "\"findings\"",
            "\"skipped\"",
            "\"rates\"",
        ];
        let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["schema"], REPORT_SCHEMA);
        assert!(j["host"]["sockstat"]["tcp_orphan"].is_null());
        let back: Report = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
    }
}
