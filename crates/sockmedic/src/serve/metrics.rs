//! The Prometheus metrics of `sockmedic serve`, in the text exposition format 0.0.4.
//!
//! Every family is declared once, in [`METRICS`] (and the kernel counters in
//! [`NETSTAT`]): its name, type, labels, meaning and source. The encoder looks each
//! family up there for its `# HELP` and `# TYPE` lines, the README's metrics table is
//! generated from the same list (a test keeps them equal), and the tests of the
//! alert rules and the dashboard check every name they use against it.
//!
//! Bounded cardinality: host-wide families have no netns label; per-namespace ones
//! one series per namespace (bounded by the host); per-process series only for the
//! top `--top` processes by socket fds plus the top `--top` by fd use; listeners,
//! endpoints and destinations only the top `--top` of each namespace; findings and
//! missing entries at most [`MAX_FINDINGS`] and [`MAX_MISSING`]. What a limit left out
//! is counted in `sockmedic_series_omitted`.
//!
//! A figure that could not be read has no series (never a zero standing in for it);
//! `sockmedic_missing{what}` says what could not be read.

use crate::render::check::subject_words;
use crate::watch::Cycle;
use sockmedic_model::{Netns, Process, Report, Severity, Subject};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most findings exported as series (most severe first; the report's order).
pub const MAX_FINDINGS: usize = 100;
/// The most `missing` entries exported as series.
pub const MAX_MISSING: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// Which labels a family carries besides its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Host-wide (global in the kernel): no netns label.
    Host,
    /// One series per network namespace: [`NETNS_LABELS`].
    Netns,
    /// One series per process of the top N: [`PROCESS_LABELS`].
    Process,
    /// About sockmedic itself, or the findings: only the family's own labels.
    Own,
}

/// Labels of every per-namespace series: the nsfs inode, the namespace's first name
/// (`host`, an `ip netns` name, `pid N (comm)`), and the owning pod's name and
/// Kubernetes namespace (empty when no pod owns it).
pub const NETNS_LABELS: [&str; 4] = ["netns", "netns_name", "pod", "namespace"];
/// Labels of every per-process series: its pid and comm, its network namespace
/// (inode), pod, Kubernetes namespace and container (name, or id when the name is
/// not known).
pub const PROCESS_LABELS: [&str; 6] = ["pid", "process", "netns", "pod", "namespace", "container"];

/// One metric family. (`scope`, `labels` and `source` are read by the docs table
/// and the tests of the alert rules and dashboard.)
#[cfg_attr(not(test), allow(dead_code))]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub scope: Scope,
    /// The family's own labels (after the scope's).
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Where the value comes from (a file, a sysctl, a report field).
    pub source: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    scope: Scope,
    labels: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        scope,
        labels,
        help,
        source,
    }
}

use Kind::{Counter, Gauge};
use Scope::{Host, Netns as Ns, Own, Process as Proc};

/// Every family `/metrics` can hold, in the order it writes them.
pub const METRICS: &[Metric] = &[
    // ---- host-wide
    m("sockmedic_tcp_orphan_sockets", Gauge, Host, &[],
      "TCP sockets closed by their application and still held by TCP (FIN-WAIT-1, LAST-ACK, CLOSING, long FIN-WAIT-2), all namespaces.",
      "/proc/net/sockstat `orphan`"),
    m("sockmedic_tcp_max_orphans", Gauge, Host, &[],
      "The orphan limit: above it the kernel resets orphans and logs `too many orphaned sockets`.",
      "net.ipv4.tcp_max_orphans"),
    m("sockmedic_tcp_orphan_limit_penalized", Gauge, Host, &["penalty"],
      "tcp_max_orphans / penalty: the orphan count at which the kernel starts killing orphans when it counts them penalty (1, 2 or 4) times (a socket idle too long, or with a soft error).",
      "net.ipv4.tcp_max_orphans; tcp_out_of_resources()"),
    m("sockmedic_tcp_allocated_sockets", Gauge, Host, &[],
      "Full TCP sockets in existence (IPv4 and IPv6), all namespaces: in a table or not.",
      "/proc/net/sockstat `alloc`"),
    m("sockmedic_tcp_unhashed_sockets", Gauge, Host, &[],
      "Allocated TCP sockets in no table (what `ss -s` calls closed, computed right): alloc minus every namespace's inuse; only when every namespace was counted.",
      "report host.closed.unhashed"),
    m("sockmedic_tcp_memory_pages", Gauge, Host, &[],
      "Memory held by TCP, in pages, compared with tcp_mem.",
      "/proc/net/sockstat `mem`"),
    m("sockmedic_tcp_mem_limit_pages", Gauge, Host, &["level"],
      "tcp_mem in pages: `min`, `pressure` (above it TCP memory pressure) and `max` (above it allocations fail: `out of memory -- consider tuning tcp_mem`).",
      "net.ipv4.tcp_mem"),
    m("sockmedic_page_size_bytes", Gauge, Host, &[],
      "Bytes per page, the unit of tcp_mem and sockstat mem.",
      "sysconf(PAGESIZE)"),
    m("sockmedic_filefd_allocated", Gauge, Host, &[],
      "File handles allocated host-wide.",
      "/proc/sys/fs/file-nr (first field)"),
    m("sockmedic_filefd_maximum", Gauge, Host, &[],
      "The host's file handle limit.",
      "fs.file-max"),
    m("sockmedic_nf_conntrack_entries_limit", Gauge, Host, &[],
      "The conntrack table's size: a namespace's entries above it are dropped (`table full, dropping packet`).",
      "net.netfilter.nf_conntrack_max"),
    // ---- per network namespace
    m("sockmedic_netns_processes", Gauge, Ns, &[],
      "Processes whose network namespace this is.",
      "/proc/*/ns/net"),
    m("sockmedic_tcp_sockets", Gauge, Ns, &["state"],
      "TCP sockets by state (ss's names: ESTABLISHED, SYN-RECV, FIN-WAIT-1, ..., BOUND-INACTIVE). Without the process scan (--no-procs) ESTABLISHED is snmp CurrEstab minus CLOSE-WAIT.",
      "sock_diag dump"),
    m("sockmedic_tcp_inuse_sockets", Gauge, Ns, &[],
      "TCP sockets in the namespace's tables (listeners and connections, not TIME-WAIT), IPv4 plus IPv6.",
      "/proc/net/sockstat, sockstat6 `inuse`"),
    m("sockmedic_tcp_timewait_sockets", Gauge, Ns, &[],
      "TIME-WAIT (and FIN-WAIT-2 timewait) minisockets, compared with tcp_max_tw_buckets.",
      "/proc/net/sockstat `tw`"),
    m("sockmedic_tcp_max_tw_buckets", Gauge, Ns, &[],
      "The TIME-WAIT limit: above it the kernel destroys the socket at once instead (TCPTimeWaitOverflow).",
      "net.ipv4.tcp_max_tw_buckets"),
    m("sockmedic_netns_orphan_sockets", Gauge, Ns, &[],
      "Orphans dumped in this namespace (its share of the host-wide sockmedic_tcp_orphan_sockets).",
      "sock_diag dump"),
    m("sockmedic_sockets_used", Gauge, Ns, &[],
      "Sockets of every family in use in the namespace.",
      "/proc/net/sockstat `sockets: used`"),
    m("sockmedic_ephemeral_port_range_size", Gauge, Ns, &[],
      "Ports connect() can pick from: ip_local_port_range less ip_local_reserved_ports.",
      "net.ipv4.ip_local_port_range, ip_local_reserved_ports"),
    m("sockmedic_ephemeral_ports_in_use", Gauge, Ns, &[],
      "Distinct local ports of the ephemeral range used by some socket (not a listener). Not with --no-procs (ESTABLISHED is not dumped then).",
      "sock_diag dump"),
    m("sockmedic_ephemeral_port_sockets", Gauge, Ns, &[],
      "Sockets (not listeners) whose local port is in the ephemeral range. Not with --no-procs.",
      "sock_diag dump"),
    m("sockmedic_ephemeral_ports_bound_inactive", Gauge, Ns, &[],
      "Ports of the ephemeral range held by sockets only bound (bind() without connect or listen): taken for every destination.",
      "sock_diag dump (bound-inactive, Linux 6.8+)"),
    m("sockmedic_ephemeral_destination_sockets", Gauge, Ns, &["remote"],
      "Sockets with a local port in the ephemeral range per remote endpoint, top N: connect() to one destination fails with EADDRNOTAVAIL when this reaches the range size. Not with --no-procs.",
      "sock_diag dump"),
    m("sockmedic_listen_accept_queue", Gauge, Ns, &["local"],
      "Connections waiting for accept() on a listener (ss -lnt Recv-Q), top N listeners.",
      "sock_diag dump (sk_ack_backlog)"),
    m("sockmedic_listen_backlog", Gauge, Ns, &["local"],
      "The listener's backlog, capped by somaxconn (ss -lnt Send-Q): the accept queue overflows above it.",
      "sock_diag dump (sk_max_ack_backlog)"),
    m("sockmedic_listen_syn_recv", Gauge, Ns, &["local"],
      "Half-open connections (SYN-RECV) of a listener.",
      "sock_diag dump"),
    m("sockmedic_endpoint_sockets", Gauge, Ns, &["side", "state", "endpoint"],
      "Sockets per local or remote endpoint and state, the top N of the namespace: where TIME-WAIT, CLOSE-WAIT or a teardown stall concentrates.",
      "sock_diag dump"),
    m("sockmedic_tcp_queued_bytes", Gauge, Ns, &["direction"],
      "Bytes in the connections' queues: `recv` (received, not read by the application) and `send` (not sent or not acknowledged).",
      "sock_diag dump (only when ESTABLISHED is dumped)"),
    m("sockmedic_nf_conntrack_entries", Gauge, Ns, &[],
      "Conntrack entries of the namespace, compared with sockmedic_nf_conntrack_entries_limit.",
      "/proc/sys/net/netfilter/nf_conntrack_count"),
    // ---- per process (top N)
    m("sockmedic_process_fds", Gauge, Proc, &[],
      "Open file descriptors of a process.",
      "/proc/PID/fd"),
    m("sockmedic_process_fd_limit", Gauge, Proc, &[],
      "The process's soft RLIMIT_NOFILE: accept() and socket() fail with EMFILE at it.",
      "/proc/PID/limits `Max open files`"),
    m("sockmedic_process_socket_fds", Gauge, Proc, &[],
      "Socket fds of a process (every family).",
      "/proc/PID/fd"),
    m("sockmedic_process_tcp_sockets", Gauge, Proc, &["state"],
      "TCP sockets a process holds, by state (CLOSE-WAIT: a leak of closes; BOUND-INACTIVE and UNHASHED: sockets in state CLOSE).",
      "/proc/PID/fd joined with the sock_diag dump"),
    m("sockmedic_process_unhashed_sockets", Gauge, Proc, &[],
      "TCP sockets in state CLOSE a process holds (BOUND-INACTIVE + UNHASHED): created or failed and never closed.",
      "/proc/PID/fd joined with the sock_diag dump"),
    // ---- findings and the kernel log
    m("sockmedic_finding", Gauge, Own, &["code", "severity", "subject"],
      "1 for each finding of the last diagnosis (at most 100, most severe first); subject as `check` prints it, without the count.",
      "the diagnosis (`sockmedic check`)"),
    m("sockmedic_finding_value", Gauge, Own, &["code", "severity", "subject"],
      "The count a finding is about (its subject.count).",
      "finding subject.count"),
    m("sockmedic_finding_limit", Gauge, Own, &["code", "severity", "subject"],
      "The limit that count is measured against (its subject.limit).",
      "finding subject.limit"),
    m("sockmedic_findings", Gauge, Own, &["severity"],
      "Findings of the last diagnosis by severity (all of them, uncapped).",
      "the diagnosis"),
    m("sockmedic_kernel_log_messages", Gauge, Own, &["kind"],
      "Known socket-exhaustion messages in the kernel log's ring buffer now, by kind (too-many-orphans, tcp-mem, syn-flood, conntrack-full, ...): it falls as old records roll out.",
      "/dev/kmsg"),
    // ---- sockmedic itself
    m("sockmedic_build_info", Gauge, Own, &["version"],
      "1, with the version of sockmedic.",
      "the binary"),
    m("sockmedic_collection_cycle", Gauge, Own, &[],
      "Sequence number of the collection served (1, 2, ...); also the X-Sockmedic-Cycle header of /metrics and /api/report.",
      "the watcher"),
    m("sockmedic_collection_duration_seconds", Gauge, Own, &[],
      "How long the collection served took (collection, kernel log and diagnosis).",
      "the watcher"),
    m("sockmedic_last_collection_timestamp_seconds", Gauge, Own, &[],
      "When the collection served finished, in seconds since the epoch.",
      "the watcher"),
    m("sockmedic_collection_interval_seconds", Gauge, Own, &[],
      "The configured time between collections (--interval).",
      "--interval"),
    m("sockmedic_network_namespaces", Gauge, Own, &[],
      "Network namespaces in the collection served.",
      "report netns[]"),
    m("sockmedic_processes", Gauge, Own, &[],
      "Processes holding sockets in the collection served (per-process series exist only for the top N of them).",
      "report processes[]"),
    m("sockmedic_series_omitted", Gauge, Own, &["what"],
      "Rows the cardinality limits left out of this exposition: processes, listeners, endpoints, destinations, findings, missing.",
      "--top, 100 findings, 50 missing"),
    m("sockmedic_missing", Gauge, Own, &["what"],
      "1 for each thing the collection could not read (why: /api/report `missing`); at most 50.",
      "report missing[]"),
    m("sockmedic_collections_total", Counter, Own, &[],
      "Collections completed since sockmedic started.",
      "the watcher (per scrape)"),
    m("sockmedic_collection_errors_total", Counter, Own, &[],
      "Collections that failed since sockmedic started (the previous one stays served).",
      "the watcher (per scrape)"),
    m("sockmedic_last_collection_success", Gauge, Own, &[],
      "1 when the latest collection attempt succeeded, 0 when it failed or none has finished yet.",
      "the watcher (per scrape)"),
    m("sockmedic_scrapes_total", Counter, Own, &[],
      "Requests to /metrics answered, this one included.",
      "the server (per scrape)"),
    m("sockmedic_scrape_duration_seconds", Gauge, Own, &[],
      "How long the previous /metrics request took to answer (a response cannot hold its own duration); 0 on the first.",
      "the server (per scrape)"),
];

/// The kernel counters exported as `sockmedic_netstat_<section>_<name>_total`
/// (node_exporter's `node_netstat_<section>_<name>`, as counters), per namespace.
pub const NETSTAT: &[(&str, &str, &str)] = &[
    ("Tcp", "ActiveOpens", "connect() calls that sent a SYN"),
    ("Tcp", "PassiveOpens", "connections accepted from SYN-RECV"),
    (
        "Tcp",
        "AttemptFails",
        "connection attempts that failed (SYN-SENT/SYN-RECV to CLOSED or LISTEN)",
    ),
    (
        "Tcp",
        "EstabResets",
        "ESTABLISHED or CLOSE-WAIT connections reset",
    ),
    ("Tcp", "RetransSegs", "segments retransmitted"),
    ("Tcp", "InErrs", "segments received in error"),
    ("Tcp", "OutRsts", "RST segments sent"),
    (
        "TcpExt",
        "ListenOverflows",
        "a completed connection found the accept queue full",
    ),
    (
        "TcpExt",
        "ListenDrops",
        "SYNs and handshake ACKs dropped by a listener (overflows included)",
    ),
    (
        "TcpExt",
        "TCPReqQFullDrop",
        "SYNs dropped because the SYN queue was full and syncookies off",
    ),
    (
        "TcpExt",
        "TCPReqQFullDoCookies",
        "SYN cookies sent because the SYN queue was full",
    ),
    ("TcpExt", "SyncookiesSent", "SYN cookies sent"),
    ("TcpExt", "SyncookiesFailed", "invalid SYN cookies received"),
    (
        "TcpExt",
        "TCPTimeWaitOverflow",
        "TIME-WAIT sockets not created because tcp_max_tw_buckets was reached",
    ),
    ("TcpExt", "TW", "TIME-WAIT sockets that ended their timer"),
    (
        "TcpExt",
        "TWRecycled",
        "TIME-WAIT sockets reused by connect() (tcp_tw_reuse)",
    ),
    ("TcpExt", "TWKilled", "TIME-WAIT sockets killed early"),
    (
        "TcpExt",
        "TCPAbortOnMemory",
        "connections reset for lack of memory or too many orphans",
    ),
    (
        "TcpExt",
        "TCPMemoryPressures",
        "times TCP entered memory pressure",
    ),
    (
        "TcpExt",
        "TCPAbortOnTimeout",
        "connections reset after their retries ran out (orphan retries included)",
    ),
    (
        "TcpExt",
        "TCPAbortOnClose",
        "connections reset because closed with unread data",
    ),
    (
        "TcpExt",
        "TCPAbortOnData",
        "connections reset on data after close",
    ),
    (
        "TcpExt",
        "TCPAbortOnLinger",
        "connections reset by SO_LINGER 0 or the FIN-WAIT-2 timeout",
    ),
    ("TcpExt", "TCPAbortFailed", "resets that could not be sent"),
    (
        "TcpExt",
        "TCPBacklogDrop",
        "segments dropped because the socket backlog was full",
    ),
    (
        "TcpExt",
        "TCPRcvQDrop",
        "segments dropped for lack of receive memory",
    ),
    (
        "TcpExt",
        "PruneCalled",
        "receive queues pruned for lack of memory",
    ),
    ("TcpExt", "TCPSynRetrans", "SYN and SYN-ACK retransmissions"),
    ("TcpExt", "TCPTimeouts", "retransmission timeouts"),
    (
        "TcpExt",
        "EmbryonicRsts",
        "resets received for SYN-RECV sockets",
    ),
];

/// The family name of a kernel counter of [`NETSTAT`].
pub fn netstat_name(section: &str, counter: &str) -> String {
    format!("sockmedic_netstat_{section}_{counter}_total")
}

/// Every family name `/metrics` can hold.
#[cfg(test)]
pub fn all_names() -> Vec<String> {
    let mut v: Vec<String> = METRICS.iter().map(|m| m.name.to_string()).collect();
    v.extend(NETSTAT.iter().map(|(s, c, _)| netstat_name(s, c)));
    v
}

fn metric(name: &str) -> &'static Metric {
    METRICS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("metric {name} is not declared in METRICS"))
}

// ---------------------------------------------------------------------------------
// The encoder
// ---------------------------------------------------------------------------------

/// A sample value: integers are written exactly, floats in Rust's shortest form.
#[derive(Clone, Copy, Debug)]
pub enum Val {
    U(u64),
    I(i64),
    F(f64),
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Val::U(v) => write!(f, "{v}"),
            Val::I(v) => write!(f, "{v}"),
            Val::F(v) if v.is_nan() => f.write_str("NaN"),
            Val::F(v) if v.is_infinite() => f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
            Val::F(v) => write!(f, "{v}"),
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes a HELP text: backslash and newline.
fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Pre-rendered labels (`a="x",b="y"`), to put in front of a sample's own.
#[derive(Clone, Debug, Default)]
pub struct Labels(String);

impl Labels {
    pub fn new(pairs: &[(&str, &str)]) -> Labels {
        let mut l = Labels::default();
        for (k, v) in pairs {
            l.push(k, v);
        }
        l
    }
    fn push(&mut self, k: &str, v: &str) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.0.push_str(k);
        self.0.push_str("=\"");
        escape_label(v, &mut self.0);
        self.0.push('"');
    }
}

/// One family being written: its header goes out with its first sample, so a family
/// without samples (nothing known) leaves no trace.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
    kind: Kind,
    help: &'a str,
    headed: bool,
}

impl Family<'_> {
    /// A sample with the base labels and its own.
    pub fn add(&mut self, base: &Labels, own: &[(&str, &str)], v: Val) {
        if !self.headed {
            self.headed = true;
            let _ = write!(self.out, "# HELP {} ", self.name);
            escape_help(self.help, self.out);
            let _ = writeln!(self.out, "\n# TYPE {} {}", self.name, self.kind.name());
        }
        self.out.push_str(self.name);
        if !base.0.is_empty() || !own.is_empty() {
            let mut l = base.clone();
            for (k, v) in own {
                l.push(k, v);
            }
            self.out.push('{');
            self.out.push_str(&l.0);
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }

    /// A sample when the value is known; nothing otherwise.
    pub fn opt(&mut self, base: &Labels, own: &[(&str, &str)], v: Option<Val>) {
        if let Some(v) = v {
            self.add(base, own, v);
        }
    }
}

/// Writes one declared family: `f` adds its samples.
pub fn family(out: &mut String, name: &str, f: impl FnOnce(&mut Family)) {
    let def = metric(name);
    let mut fam = Family {
        out,
        name: def.name,
        kind: def.kind,
        help: def.help,
        headed: false,
    };
    f(&mut fam);
}

fn netstat_family(
    out: &mut String,
    section: &str,
    counter: &str,
    help: &str,
    f: impl FnOnce(&mut Family),
) {
    let name = netstat_name(section, counter);
    let help = format!("{section} {counter} (/proc/net/snmp or netstat): {help}.");
    let mut fam = Family {
        out,
        name: &name,
        kind: Kind::Counter,
        help: &help,
        headed: false,
    };
    f(&mut fam);
}

// ---------------------------------------------------------------------------------
// One cycle's families
// ---------------------------------------------------------------------------------

const NONE: &[(&str, &str)] = &[];

fn u(v: Option<u64>) -> Option<Val> {
    v.map(Val::U)
}

/// `namespace/name` → (name, namespace); a bare value (a UID) is the pod alone.
fn split_pod(pod: Option<&str>) -> (&str, &str) {
    match pod {
        Some(p) => match p.split_once('/') {
            Some((ns, name)) => (name, ns),
            None => (p, ""),
        },
        None => ("", ""),
    }
}

fn netns_labels(n: &Netns) -> Labels {
    let id = n.id.to_string();
    let (pod, namespace) = split_pod(n.pod.as_deref());
    let [a, b, c, d] = NETNS_LABELS;
    Labels::new(&[(a, &id), (b, n.name()), (c, pod), (d, namespace)])
}

fn process_labels(p: &Process) -> Labels {
    let pid = p.pid.to_string();
    let netns = p.netns.map(|n| n.to_string()).unwrap_or_default();
    let (pod, namespace) = split_pod(p.pod.as_deref());
    let container = p
        .container_name
        .as_deref()
        .or(p.container.as_deref())
        .unwrap_or("");
    let [a, b, c, d, e, f] = PROCESS_LABELS;
    Labels::new(&[
        (a, &pid),
        (b, &p.comm),
        (c, &netns),
        (d, pod),
        (e, namespace),
        (f, container),
    ])
}

/// The processes that get series: the top `top` by socket fds, then the top `top`
/// by fd use not already in (a process near its fd limit with few sockets too).
pub fn top_processes(procs: &[Process], top: usize) -> Vec<&Process> {
    let mut by_sockets: Vec<&Process> = procs.iter().collect();
    by_sockets.sort_by(|a, b| {
        b.socket_fds
            .unwrap_or(0)
            .cmp(&a.socket_fds.unwrap_or(0))
            .then(a.pid.cmp(&b.pid))
    });
    let mut chosen: Vec<&Process> = by_sockets.iter().take(top).copied().collect();
    let mut by_use: Vec<&Process> = procs.iter().filter(|p| p.fd_use().is_some()).collect();
    by_use.sort_by(|a, b| {
        b.fd_use()
            .unwrap_or(0.0)
            .total_cmp(&a.fd_use().unwrap_or(0.0))
            .then(a.pid.cmp(&b.pid))
    });
    for p in by_use.into_iter().take(top) {
        if !chosen.iter().any(|c| c.pid == p.pid) {
            chosen.push(p);
        }
    }
    chosen.sort_by_key(|p| p.pid);
    chosen
}

/// The listeners that get series in one namespace: fullest accept queue first
/// (relative to the backlog), then most SYN-RECV, then the local endpoint.
fn top_listeners(n: &Netns, top: usize) -> Vec<&sockmedic_model::Listener> {
    let mut l: Vec<_> = n.listeners.iter().collect();
    let fill = |x: &sockmedic_model::Listener| x.accept_queue as f64 / (x.backlog as f64 + 1.0);
    l.sort_by(|a, b| {
        fill(b)
            .total_cmp(&fill(a))
            .then(b.syn_recv.cmp(&a.syn_recv))
            .then(a.local.cmp(&b.local))
    });
    l.truncate(top);
    l
}

/// What the cardinality limits left out, by kind.
#[derive(Default)]
struct Omitted {
    processes: u64,
    listeners: u64,
    endpoints: u64,
    destinations: u64,
    findings: u64,
    missing: u64,
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// A finding's subject as a label: `check`'s subject line without count and limit
/// (they change every cycle and are series of their own); `host-wide` when the
/// subject names nothing else.
pub fn subject_label(s: &Subject) -> String {
    let words = subject_words(&Subject {
        count: None,
        limit: None,
        ..s.clone()
    });
    if words.is_empty() {
        "host-wide".into()
    } else {
        words
    }
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Everything of one cycle: rendered once when the cycle is published, served to
/// every scrape until the next.
pub fn render_cycle(cycle: &Cycle, interval: Duration, top: usize) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let r: &Report = &cycle.report;
    let snap = &r.snapshot;
    let host = &snap.host;
    let none = Labels::default();
    let mut omitted = Omitted::default();

    // ---- host-wide
    family(&mut out, "sockmedic_tcp_orphan_sockets", |f| {
        f.opt(&none, NONE, u(host.sockstat.tcp_orphan))
    });
    family(&mut out, "sockmedic_tcp_max_orphans", |f| {
        f.opt(&none, NONE, u(host.limits.tcp_max_orphans))
    });
    family(&mut out, "sockmedic_tcp_orphan_limit_penalized", |f| {
        if let Some(max) = host.limits.tcp_max_orphans {
            for p in [1u64, 2, 4] {
                f.add(
                    &none,
                    &[("penalty", &p.to_string())],
                    Val::F(max as f64 / p as f64),
                );
            }
        }
    });
    family(&mut out, "sockmedic_tcp_allocated_sockets", |f| {
        f.opt(&none, NONE, u(host.sockstat.tcp_alloc))
    });
    family(&mut out, "sockmedic_tcp_unhashed_sockets", |f| {
        if let Some(c) = host.closed.as_ref().filter(|c| c.complete) {
            f.add(&none, NONE, Val::U(c.unhashed));
        }
    });
    family(&mut out, "sockmedic_tcp_memory_pages", |f| {
        f.opt(&none, NONE, u(host.sockstat.tcp_mem_pages))
    });
    family(&mut out, "sockmedic_tcp_mem_limit_pages", |f| {
        if let Some(m) = host.limits.tcp_mem {
            f.add(&none, &[("level", "min")], Val::U(m.min));
            f.add(&none, &[("level", "pressure")], Val::U(m.pressure));
            f.add(&none, &[("level", "max")], Val::U(m.max));
        }
    });
    family(&mut out, "sockmedic_page_size_bytes", |f| {
        if host.page_size > 0 {
            f.add(&none, NONE, Val::U(host.page_size));
        }
    });
    family(&mut out, "sockmedic_filefd_allocated", |f| {
        f.opt(&none, NONE, u(host.file_nr.map(|n| n.allocated)))
    });
    family(&mut out, "sockmedic_filefd_maximum", |f| {
        let max = host.limits.file_max.or(host.file_nr.map(|n| n.max));
        f.opt(&none, NONE, u(max))
    });
    family(&mut out, "sockmedic_nf_conntrack_entries_limit", |f| {
        f.opt(&none, NONE, u(host.limits.nf_conntrack_max))
    });

    // ---- per network namespace
    let ns: Vec<(Labels, &Netns)> = snap.netns.iter().map(|n| (netns_labels(n), n)).collect();
    family(&mut out, "sockmedic_netns_processes", |f| {
        for (l, n) in &ns {
            f.add(l, NONE, Val::U(n.processes));
        }
    });
    family(&mut out, "sockmedic_tcp_sockets", |f| {
        for (l, n) in &ns {
            for (state, count) in n.states.iter() {
                f.add(l, &[("state", state.name())], Val::U(count));
            }
        }
    });
    family(&mut out, "sockmedic_tcp_inuse_sockets", |f| {
        for (l, n) in &ns {
            let s = &n.sockstat;
            if s.tcp_inuse.is_some() || s.tcp6_inuse.is_some() {
                f.add(l, NONE, Val::U(s.tcp_inuse_total()));
            }
        }
    });
    family(&mut out, "sockmedic_tcp_timewait_sockets", |f| {
        for (l, n) in &ns {
            f.opt(l, NONE, u(n.sockstat.tcp_tw));
        }
    });
    family(&mut out, "sockmedic_tcp_max_tw_buckets", |f| {
        for (l, n) in &ns {
            f.opt(l, NONE, u(n.sysctl_u64("net.ipv4.tcp_max_tw_buckets")));
        }
    });
    family(&mut out, "sockmedic_netns_orphan_sockets", |f| {
        for (l, n) in &ns {
            f.opt(l, NONE, u(n.orphans));
        }
    });
    family(&mut out, "sockmedic_sockets_used", |f| {
        for (l, n) in &ns {
            f.opt(l, NONE, u(n.sockstat.sockets_used));
        }
    });
    family(&mut out, "sockmedic_ephemeral_port_range_size", |f| {
        for (l, n) in &ns {
            f.opt(l, NONE, n.ephemeral.as_ref().map(|e| Val::U(e.size.into())));
        }
    });
    family(&mut out, "sockmedic_ephemeral_ports_in_use", |f| {
        for (l, n) in &ns {
            let e = n.ephemeral.as_ref().filter(|e| e.includes_established);
            f.opt(l, NONE, e.map(|e| Val::U(e.ports_in_use.into())));
        }
    });
    family(&mut out, "sockmedic_ephemeral_port_sockets", |f| {
        for (l, n) in &ns {
            let e = n.ephemeral.as_ref().filter(|e| e.includes_established);
            f.opt(l, NONE, e.map(|e| Val::U(e.sockets)));
        }
    });
    family(&mut out, "sockmedic_ephemeral_ports_bound_inactive", |f| {
        for (l, n) in &ns {
            let v = n.ephemeral.as_ref().and_then(|e| e.bound_inactive_ports);
            f.opt(l, NONE, v.map(|p| Val::U(p.into())));
        }
    });
    family(&mut out, "sockmedic_ephemeral_destination_sockets", |f| {
        for (l, n) in &ns {
            let Some(e) = n.ephemeral.as_ref().filter(|e| e.includes_established) else {
                continue;
            };
            let mut rows: Vec<_> = e.top_remote.iter().collect();
            rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.endpoint.cmp(&b.endpoint)));
            omitted.destinations += rows.len().saturating_sub(top) as u64;
            for r in rows.into_iter().take(top) {
                f.add(l, &[("remote", &r.endpoint.to_string())], Val::U(r.count));
            }
        }
    });
    let listeners: Vec<(&Labels, Vec<&sockmedic_model::Listener>)> = ns
        .iter()
        .map(|(l, n)| {
            omitted.listeners += n.listeners.len().saturating_sub(top) as u64;
            (l, top_listeners(n, top))
        })
        .collect();
    for (name, get) in [
        (
            "sockmedic_listen_accept_queue",
            (|x: &sockmedic_model::Listener| u64::from(x.accept_queue)) as fn(&_) -> u64,
        ),
        ("sockmedic_listen_backlog", |x| u64::from(x.backlog)),
        ("sockmedic_listen_syn_recv", |x| x.syn_recv),
    ] {
        family(&mut out, name, |f| {
            for (l, ls) in &listeners {
                for x in ls {
                    f.add(l, &[("local", &x.local.to_string())], Val::U(get(x)));
                }
            }
        });
    }
    family(&mut out, "sockmedic_endpoint_sockets", |f| {
        for (l, n) in &ns {
            for (side, rows) in [("local", &n.top_local), ("remote", &n.top_remote)] {
                let mut rows: Vec<_> = rows.iter().collect();
                rows.sort_by(|a, b| {
                    b.count
                        .cmp(&a.count)
                        .then(a.state.cmp(&b.state))
                        .then(a.endpoint.cmp(&b.endpoint))
                });
                omitted.endpoints += rows.len().saturating_sub(top) as u64;
                for r in rows.into_iter().take(top) {
                    let ep = r.endpoint.to_string();
                    f.add(
                        l,
                        &[("side", side), ("state", r.state.name()), ("endpoint", &ep)],
                        Val::U(r.count),
                    );
                }
            }
        }
    });
    family(&mut out, "sockmedic_tcp_queued_bytes", |f| {
        for (l, n) in &ns {
            if let Some(q) = n.queued {
                f.add(l, &[("direction", "recv")], Val::U(q.recv));
                f.add(l, &[("direction", "send")], Val::U(q.send));
            }
        }
    });
    family(&mut out, "sockmedic_nf_conntrack_entries", |f| {
        for (l, n) in &ns {
            f.opt(l, NONE, u(n.conntrack_count));
        }
    });
    for (section, counter, help) in NETSTAT {
        netstat_family(&mut out, section, counter, help, |f| {
            for (l, n) in &ns {
                f.opt(l, NONE, n.counter(section, counter).map(Val::I));
            }
        });
    }

    // ---- per process
    let procs = top_processes(&snap.processes, top);
    omitted.processes = (snap.processes.len() - procs.len()) as u64;
    let procs: Vec<(Labels, &Process)> =
        procs.into_iter().map(|p| (process_labels(p), p)).collect();
    family(&mut out, "sockmedic_process_fds", |f| {
        for (l, p) in &procs {
            f.opt(l, NONE, u(p.fds));
        }
    });
    family(&mut out, "sockmedic_process_fd_limit", |f| {
        for (l, p) in &procs {
            // Unlimited has no number to compare with.
            f.opt(l, NONE, u(p.fd_limit.filter(|v| *v != u64::MAX)));
        }
    });
    family(&mut out, "sockmedic_process_socket_fds", |f| {
        for (l, p) in &procs {
            f.opt(l, NONE, u(p.socket_fds));
        }
    });
    family(&mut out, "sockmedic_process_tcp_sockets", |f| {
        for (l, p) in &procs {
            for (state, count) in p.states.iter() {
                f.add(l, &[("state", state.name())], Val::U(count));
            }
        }
    });
    family(&mut out, "sockmedic_process_unhashed_sockets", |f| {
        for (l, p) in &procs {
            f.opt(l, NONE, u(p.unhashed));
        }
    });

    // ---- findings
    let shown: Vec<(&sockmedic_model::Finding, String)> = r
        .findings
        .iter()
        .take(MAX_FINDINGS)
        .map(|x| (x, subject_label(&x.subject)))
        .collect();
    omitted.findings = r.findings.len().saturating_sub(MAX_FINDINGS) as u64;
    let own = |x: &sockmedic_model::Finding, subject: &str| -> [(&'static str, String); 3] {
        [
            ("code", x.code.clone()),
            ("severity", severity_name(x.severity).to_string()),
            ("subject", subject.to_string()),
        ]
    };
    for (name, get) in [
        (
            "sockmedic_finding",
            (|_: &Subject| Some(1)) as fn(&Subject) -> Option<u64>,
        ),
        ("sockmedic_finding_value", |s| s.count),
        ("sockmedic_finding_limit", |s| s.limit),
    ] {
        family(&mut out, name, |f| {
            // The same finding can come twice (two rules, one subject): one series.
            let mut seen = std::collections::BTreeSet::new();
            for (x, subject) in &shown {
                let labels = own(x, subject);
                if !seen.insert(labels.clone()) {
                    continue;
                }
                let pairs: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                f.opt(&none, &pairs, get(&x.subject).map(Val::U));
            }
        });
    }
    family(&mut out, "sockmedic_findings", |f| {
        for s in [Severity::Critical, Severity::Warning, Severity::Info] {
            let n = r.findings.iter().filter(|x| x.severity == s).count() as u64;
            f.add(&none, &[("severity", severity_name(s))], Val::U(n));
        }
    });
    family(&mut out, "sockmedic_kernel_log_messages", |f| {
        if let Some(log) = &snap.kernel_log {
            for kind in sockmedic_model::LogKind::ALL {
                let n: u64 = log
                    .messages
                    .iter()
                    .filter(|m| m.kind == kind)
                    .map(|m| m.count)
                    .sum();
                f.add(&none, &[("kind", kind.name())], Val::U(n));
            }
        }
    });

    // ---- sockmedic
    write_build_info(&mut out);
    family(&mut out, "sockmedic_collection_cycle", |f| {
        f.add(&none, NONE, Val::U(cycle.seq))
    });
    family(&mut out, "sockmedic_collection_duration_seconds", |f| {
        f.add(&none, NONE, Val::F(cycle.duration.as_secs_f64()))
    });
    family(
        &mut out,
        "sockmedic_last_collection_timestamp_seconds",
        |f| f.add(&none, NONE, Val::F(secs(cycle.started + cycle.duration))),
    );
    write_interval(&mut out, interval);
    family(&mut out, "sockmedic_network_namespaces", |f| {
        f.add(&none, NONE, Val::U(snap.netns.len() as u64))
    });
    family(&mut out, "sockmedic_processes", |f| {
        f.add(&none, NONE, Val::U(snap.processes.len() as u64))
    });
    omitted.missing = snap.missing.len().saturating_sub(MAX_MISSING) as u64;
    family(&mut out, "sockmedic_series_omitted", |f| {
        for (what, n) in [
            ("processes", omitted.processes),
            ("listeners", omitted.listeners),
            ("endpoints", omitted.endpoints),
            ("destinations", omitted.destinations),
            ("findings", omitted.findings),
            ("missing", omitted.missing),
        ] {
            f.add(&none, &[("what", what)], Val::U(n));
        }
    });
    family(&mut out, "sockmedic_missing", |f| {
        let mut seen = std::collections::BTreeSet::new();
        for x in snap.missing.iter().take(MAX_MISSING) {
            if seen.insert(x.what.as_str()) {
                f.add(&none, &[("what", &x.what)], Val::U(1));
            }
        }
    });
    out
}

fn write_build_info(out: &mut String) {
    family(out, "sockmedic_build_info", |f| {
        f.add(
            &Labels::default(),
            &[("version", env!("CARGO_PKG_VERSION"))],
            Val::U(1),
        )
    });
}

fn write_interval(out: &mut String, interval: Duration) {
    family(out, "sockmedic_collection_interval_seconds", |f| {
        f.add(&Labels::default(), NONE, Val::F(interval.as_secs_f64()))
    });
}

/// What `/metrics` serves before the first collection has finished.
pub fn render_before_first(interval: Duration) -> String {
    let mut out = String::new();
    write_build_info(&mut out);
    write_interval(&mut out, interval);
    out
}

/// The figures that change between cycles, written for each scrape after the
/// cycle's text.
pub struct Live {
    pub collections: u64,
    pub errors: u64,
    pub last_success: bool,
    pub scrapes: u64,
    pub previous_scrape: Duration,
}

pub fn render_live(live: &Live) -> String {
    let mut out = String::with_capacity(1024);
    let none = Labels::default();
    family(&mut out, "sockmedic_collections_total", |f| {
        f.add(&none, NONE, Val::U(live.collections))
    });
    family(&mut out, "sockmedic_collection_errors_total", |f| {
        f.add(&none, NONE, Val::U(live.errors))
    });
    family(&mut out, "sockmedic_last_collection_success", |f| {
        f.add(&none, NONE, Val::U(live.last_success.into()))
    });
    family(&mut out, "sockmedic_scrapes_total", |f| {
        f.add(&none, NONE, Val::U(live.scrapes))
    });
    family(&mut out, "sockmedic_scrape_duration_seconds", |f| {
        f.add(&none, NONE, Val::F(live.previous_scrape.as_secs_f64()))
    });
    out
}

// ---------------------------------------------------------------------------------
// Documentation
// ---------------------------------------------------------------------------------

/// The README's metrics table, in Markdown (checked against the README by a test).
#[cfg(test)]
pub fn markdown_table() -> String {
    let mut out =
        String::from("| metric | type | labels | meaning | source |\n|---|---|---|---|---|\n");
    for d in METRICS {
        let mut labels: Vec<String> = match d.scope {
            Scope::Host | Scope::Own => Vec::new(),
            Scope::Netns => vec!["*netns*".into()],
            Scope::Process => vec!["*process*".into()],
        };
        labels.extend(d.labels.iter().map(|l| format!("`{l}`")));
        let labels = if labels.is_empty() {
            "-".into()
        } else {
            labels.join(", ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            d.name,
            d.kind.name(),
            labels,
            d.help.replace('|', "\\|"),
            d.source.replace('|', "\\|")
        );
    }
    for (section, counter, help) in NETSTAT {
        let _ = writeln!(
            out,
            "| `{}` | counter | *netns* | {}: {} | /proc/net/{} `{section}: {counter}` |",
            netstat_name(section, counter),
            counter,
            help,
            if *section == "Tcp" { "snmp" } else { "netstat" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockmedic_model::*;
    use std::collections::BTreeMap;

    /// A report with every kind of figure, two namespaces (one a pod's), processes
    /// and findings, for the encoder's tests.
    pub fn rich_report() -> Report {
        let ep = |a: [u8; 4], p| Endpoint::v4(a, p);
        let mut states = StateCounts::default();
        states.set(TcpState::Established, 5);
        states.set(TcpState::CloseWait, 30);
        states.set(TcpState::Listen, 2);
        let mut counters = BTreeMap::new();
        counters.insert(
            "TcpExt".to_string(),
            NETSTAT
                .iter()
                .filter(|x| x.0 == "TcpExt")
                .map(|x| (x.1.to_string(), 7i64))
                .collect(),
        );
        counters.insert(
            "Tcp".to_string(),
            NETSTAT
                .iter()
                .filter(|x| x.0 == "Tcp")
                .map(|x| (x.1.to_string(), 3i64))
                .collect(),
        );
        let mut sysctl = BTreeMap::new();
        sysctl.insert(
            "net.ipv4.tcp_max_tw_buckets".to_string(),
            "262144".to_string(),
        );
        let pod_ns = Netns {
            id: 4026532999,
            names: vec!["pod shop/web-\"1\"\\x".into()],
            pod: Some("shop/web-\"1\"\\x".into()),
            processes: 1,
            sockstat: NetnsSockstat {
                sockets_used: Some(40),
                tcp_inuse: Some(37),
                tcp6_inuse: Some(0),
                tcp_tw: Some(3),
                ..Default::default()
            },
            sysctl,
            states,
            orphans: Some(0),
            listeners: (0..12)
                .map(|i| Listener {
                    local: ep([127, 0, 0, 1], 8000 + i),
                    accept_queue: u32::from(i),
                    backlog: 128,
                    syn_recv: 0,
                    inode: 1,
                    uid: 0,
                })
                .collect(),
            top_local: vec![EndpointCount {
                state: TcpState::CloseWait,
                endpoint: ep([127, 0, 0, 1], 40000),
                count: 30,
                error: 0,
            }],
            top_remote: vec![EndpointCount {
                state: TcpState::CloseWait,
                endpoint: ep([127, 0, 0, 1], 8080),
                count: 30,
                error: 0,
            }],
            ephemeral: Some(EphemeralUse {
                range: [40000, 40049],
                size: 50,
                reserved: 0,
                sockets: 35,
                ports_in_use: 35,
                bound_inactive_ports: Some(0),
                top_remote: vec![RemoteCount {
                    endpoint: ep([127, 0, 0, 1], 8080),
                    count: 35,
                    error: 0,
                }],
                includes_established: true,
            }),
            counters,
            conntrack_count: Some(4),
            queued: Some(QueuedBytes { recv: 10, send: 20 }),
            ..Default::default()
        };
        let host_ns = Netns {
            id: 4026531840,
            names: vec!["host".into()],
            host: true,
            ..Default::default()
        };
        let proc_ = |pid, sockets, fds, limit| Process {
            pid,
            comm: "python3".into(),
            netns: Some(4026532999),
            pod: Some("shop/web-\"1\"\\x".into()),
            container_name: Some("app".into()),
            fds: Some(fds),
            fd_limit: Some(limit),
            socket_fds: Some(sockets),
            states: {
                let mut s = StateCounts::default();
                s.set(TcpState::CloseWait, sockets);
                s
            },
            unhashed: Some(0),
            ..Default::default()
        };
        let mut processes: Vec<Process> = (0..15)
            .map(|i| proc_(100 + i, 100 - u64::from(i), 200, 1024))
            .collect();
        // Few sockets, near its fd limit: in by fd use.
        processes.push(proc_(999, 0, 1000, 1024));
        let finding = |code: &str, severity, netns: Option<&str>| Finding {
            code: code.into(),
            severity,
            title: "t".into(),
            subject: Subject {
                netns: netns.map(String::from),
                state: Some("CLOSE-WAIT".into()),
                pid: Some(100),
                process: Some("python3".into()),
                count: Some(30),
                limit: Some(1024),
                ..Default::default()
            },
            evidence: vec![],
            explanation: String::new(),
            remedy: vec![],
        };
        let snap = Snapshot {
            host: sockmedic_model::Host {
                sockstat: HostSockstat {
                    tcp_orphan: Some(10),
                    tcp_alloc: Some(100),
                    tcp_mem_pages: Some(93),
                    udp_mem_pages: Some(1),
                },
                limits: HostLimits {
                    tcp_mem: Some(MemLimits {
                        min: 1,
                        pressure: 2,
                        max: 3,
                    }),
                    tcp_max_orphans: Some(131072),
                    file_max: Some(1000),
                    nf_conntrack_max: Some(262144),
                    ..Default::default()
                },
                file_nr: Some(FileNr {
                    allocated: 500,
                    unused: 0,
                    max: 1000,
                }),
                page_size: 4096,
                closed: Some(Closed {
                    alloc: 100,
                    inuse: 37,
                    unhashed: 63,
                    complete: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
            netns: vec![host_ns, pod_ns],
            processes,
            kernel_log: Some(KernelLog::default()),
            missing: vec![Missing::new("kernel log", "permission denied")],
            ..Default::default()
        };
        Report {
            findings: vec![
                finding("close-wait-leak", Severity::Warning, Some("pod shop/web")),
                finding("orphan-pressure", Severity::Critical, None),
            ],
            ..Report::new(snap, vec![])
        }
    }

    fn cycle() -> Cycle {
        Cycle {
            seq: 7,
            report: rich_report(),
            started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(250),
        }
    }

    fn full_text() -> String {
        let mut t = render_cycle(&cycle(), Duration::from_secs(15), 10);
        t.push_str(&render_live(&Live {
            collections: 7,
            errors: 0,
            last_success: true,
            scrapes: 1,
            previous_scrape: Duration::ZERO,
        }));
        t
    }

    /// Every declared family is written for a report that has every figure, each
    /// once, with its HELP and TYPE; nothing undeclared is written.
    #[test]
    fn every_declared_family_is_written_once() {
        let text = full_text();
        let names = all_names();
        for name in &names {
            let typ = format!("# TYPE {name} ");
            assert_eq!(text.matches(&typ).count(), 1, "{name}:\n{text}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(names.iter().any(|n| n == name), "undeclared {name}");
        }
        // Families are contiguous: a name never comes back after another one.
        let mut order: Vec<&str> = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            if order.last() != Some(&name) {
                assert!(!order.contains(&name), "{name} is split");
                order.push(name);
            }
        }
    }

    #[test]
    fn labels_are_escaped_and_limits_apply() {
        let text = full_text();
        assert!(
            text.contains(r#"pod="web-\"1\"\\x",namespace="shop""#),
            "{text}"
        );
        // 12 listeners, top 10 (the fullest accept queues: 8002..8011).
        let l = text
            .lines()
            .filter(|l| l.starts_with("sockmedic_listen_backlog{"))
            .count();
        assert_eq!(l, 10);
        assert!(text.contains(r#"local="127.0.0.1:8011"} 11"#));
        assert!(!text.contains(r#"local="127.0.0.1:8000"}"#));
        assert!(text.contains("sockmedic_series_omitted{what=\"listeners\"} 2\n"));
        // 16 processes: the top 10 by sockets, and pid 999 by fd use.
        let p = text
            .lines()
            .filter(|l| l.starts_with("sockmedic_process_fds{"))
            .count();
        assert_eq!(p, 11);
        assert!(text.contains("pid=\"999\""));
        assert!(text.contains("sockmedic_series_omitted{what=\"processes\"} 5\n"));
        assert!(text.contains(
            "sockmedic_finding{code=\"close-wait-leak\",severity=\"warning\",subject=\"netns pod shop/web, state CLOSE-WAIT, pid 100 (python3)\"} 1\n"
        ));
        assert!(text.contains("subject=\"state CLOSE-WAIT, pid 100 (python3)\"} 1024\n"));
        assert!(text.contains("sockmedic_tcp_orphan_limit_penalized{penalty=\"4\"} 32768\n"));
        assert!(
            text.contains("sockmedic_netstat_TcpExt_ListenOverflows_total{netns=\"4026532999\",")
        );
        assert!(text.contains("sockmedic_collection_cycle 7\n"));
        assert!(text.contains("sockmedic_last_collection_timestamp_seconds 1700000000.25\n"));
    }

    /// Unknown figures have no series at all.
    #[test]
    fn missing_figures_have_no_series() {
        let c = Cycle {
            seq: 1,
            report: Report::new(
                Snapshot {
                    netns: vec![Netns {
                        id: 1,
                        names: vec!["x".into()],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                vec![],
            ),
            started: SystemTime::now(),
            duration: Duration::ZERO,
        };
        let text = render_cycle(&c, Duration::from_secs(1), 10);
        for absent in [
            "sockmedic_tcp_orphan_sockets",
            "sockmedic_tcp_max_orphans",
            "sockmedic_tcp_sockets",
            "sockmedic_tcp_timewait_sockets",
            "sockmedic_netstat_",
            "sockmedic_kernel_log_messages",
            "sockmedic_process_",
        ] {
            assert!(!text.contains(absent), "{absent}:\n{text}");
        }
        assert!(text.contains(
            "sockmedic_netns_processes{netns=\"1\",netns_name=\"x\",pod=\"\",namespace=\"\"} 0\n"
        ));
    }

    /// Without ESTABLISHED dumped (`--no-procs`), the port counts would be short:
    /// no series for them; the range size stays.
    #[test]
    fn port_use_without_established_has_no_series() {
        let mut c = cycle();
        for n in &mut c.report.snapshot.netns {
            if let Some(e) = &mut n.ephemeral {
                e.includes_established = false;
            }
        }
        let text = render_cycle(&c, Duration::from_secs(15), 10);
        for absent in [
            "sockmedic_ephemeral_ports_in_use",
            "sockmedic_ephemeral_port_sockets",
            "sockmedic_ephemeral_destination_sockets",
        ] {
            assert!(!text.contains(absent), "{absent}");
        }
        assert!(text.contains("sockmedic_ephemeral_port_range_size{"));
        assert!(text.contains("sockmedic_ephemeral_ports_bound_inactive{"));
    }

    #[test]
    fn values_are_exact() {
        assert_eq!(Val::U(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(Val::I(-3).to_string(), "-3");
        assert_eq!(Val::F(0.25).to_string(), "0.25");
        assert_eq!(Val::F(12345.0).to_string(), "12345");
        assert_eq!(Val::F(f64::INFINITY).to_string(), "+Inf");
        let mut s = String::new();
        escape_label("a\\b\"c\nd", &mut s);
        assert_eq!(s, "a\\\\b\\\"c\\nd");
    }

    /// The README's metrics table is METRICS and NETSTAT, line for line.
    #[test]
    fn readme_metrics_table_matches_the_definitions() {
        crate::render::assert_readme_table("metrics", &markdown_table());
    }
}
