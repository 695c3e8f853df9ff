//! Builds a live [`Snapshot`]: host-wide figures from the initial namespace, then
//! each selected network namespace on a thread that has entered it.

use crate::aggregate::{AggregateOptions, SocketAggregate, ORPHAN_STATES};
use crate::netns::{self, NetnsHandle};
use crate::procfs::{self, ProcError};
use crate::sockdiag::{self, DumpRequest, Family, SockDiag, ALL_STATES, BOUND_INACTIVE_BIT};
use sockmedic_model::{
    Closed, DumpInfo, Host, HostLimits, HostSockstat, MemLimits, Missing, Netns, NetnsSockstat,
    Snapshot, Source, SourceKind, TcpState,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// How much of the socket tables to ask the kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpMode {
    /// Every state, bound-inactive included: what `sockets` needs.
    Full,
    /// Every state but ESTABLISHED, which is derived from snmp `CurrEstab`. The
    /// kernel skips building a message per connection, so this stays cheap with a
    /// million ESTABLISHED sockets: what `stat` needs.
    WithoutEstablished,
}

/// What to collect.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// `--netns self|NAME|PID|INODE`; `None` = every namespace reachable.
    pub netns: Option<String>,
    pub mode: DumpMode,
    /// Only these states (`1 << kernel number`), for `sockets --state`.
    pub states: Option<u32>,
    /// Only sockets with this local or remote port.
    pub port: Option<u16>,
    /// Rows kept per top-N table.
    pub top: usize,
    /// Parallel dumps per namespace; `None` picks by the namespace's size.
    pub parts: Option<usize>,
    /// Scan every process's fds and attribute sockets to processes, containers, pods.
    pub processes: bool,
    /// Keep each process's command line.
    pub cmdline: bool,
    /// kubelet's pod log directory (`<namespace>_<name>_<uid>`), for pod names.
    pub pods_dir: std::path::PathBuf,
    /// kubelet's container log links (`<pod>_<namespace>_<container>-<id>.log`).
    pub containers_dir: std::path::PathBuf,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            netns: None,
            mode: DumpMode::Full,
            states: None,
            port: None,
            top: 10,
            parts: None,
            processes: false,
            cmdline: false,
            pods_dir: "/var/log/pods".into(),
            containers_dir: "/var/log/containers".into(),
        }
    }
}

/// The only fatal error: the namespace asked for does not exist. Everything
/// else that cannot be read becomes a `missing` entry.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("--netns {selector}: {why}")]
    NoSuchNetns { selector: String, why: String },
}

/// A namespace with more sockets than this is dumped in parallel parts.
const PARALLEL_DUMP_MIN_SOCKETS: u64 = 50_000;

/// Takes a live Snapshot.
pub fn collect(opts: &CollectOptions) -> Result<Snapshot, CollectError> {
    let started = Instant::now();
    let mut snap = Snapshot {
        source: live_source(),
        ..Snapshot::default()
    };
    let scan = netns::discover();
    snap.missing.extend(scan.missing.iter().cloned());
    let selected: Vec<&NetnsHandle> = match &opts.netns {
        Some(sel) => netns::select(&scan, sel).map_err(|e| CollectError::NoSuchNetns {
            selector: sel.clone(),
            why: e.to_string(),
        })?,
        None => scan.namespaces.iter().collect(),
    };
    let host_ns = scan.namespaces.iter().find(|n| n.host);
    snap.host = read_host(host_ns, &mut snap.missing);
    let bound_inactive = sockdiag::bound_inactive_supported();
    if !bound_inactive && opts.mode == DumpMode::Full {
        snap.missing.push(Missing::new(
            "bound-inactive sockets (bound, neither listening nor connected)",
            "this kernel does not answer sock_diag's bound-inactive request (Linux 6.8+)",
        ));
    }
    for (ns, missing) in collect_namespaces(&selected, opts, bound_inactive) {
        snap.netns.push(ns);
        snap.missing.extend(missing);
    }
    let complete = opts.netns.is_none() && scan.missing.is_empty();
    snap.host.closed = closed_sockets(&snap, complete);
    snap.source.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    Ok(snap)
}

fn live_source() -> Source {
    let uname = rustix::system::uname();
    Source {
        kind: SourceKind::Live,
        host: uname.nodename().to_string_lossy().into_owned(),
        kernel: Some(uname.release().to_string_lossy().into_owned()),
        taken_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        duration_ms: None,
        tool: format!("sockmedic {}", env!("CARGO_PKG_VERSION")),
        privileged: Some(rustix::process::geteuid().is_root()),
    }
}

/// Reads the host-wide figures. The global sockstat fields and /proc/sys/fs are the
/// same from any namespace; the host-only net sysctls (tcp_mem, tcp_max_orphans)
/// exist only in the initial namespace, so they are read there.
fn read_host(host_ns: Option<&NetnsHandle>, missing: &mut Vec<Missing>) -> Host {
    let mut host = Host {
        page_size: rustix::param::page_size() as u64,
        ..Host::default()
    };
    match read_file("/proc/net/sockstat", missing).map(|t| procfs::parse_sockstat(&t)) {
        Some(Ok(s)) => {
            host.sockstat = HostSockstat {
                tcp_orphan: field(&s, "TCP", "orphan"),
                tcp_alloc: field(&s, "TCP", "alloc"),
                tcp_mem_pages: field(&s, "TCP", "mem"),
                udp_mem_pages: field(&s, "UDP", "mem"),
            }
        }
        Some(Err(e)) => missing.push(Missing::new("/proc/net/sockstat", e.to_string())),
        None => {}
    }
    let here = netns::current_netns_id().ok();
    let sysctls = match host_ns {
        Some(ns) if Some(ns.id) == here => Ok(read_sysctls(procfs::HOST_SYSCTLS)),
        Some(ns) => netns::run_in_netns(ns, || read_sysctls(procfs::HOST_SYSCTLS))
            .map_err(|e| e.to_string()),
        None => {
            Err("the initial network namespace is not reachable (not root, or no /proc/1)".into())
        }
    };
    match sysctls {
        Ok((values, lost)) => {
            host.sysctl = values;
            missing.extend(lost);
        }
        Err(why) => missing.push(Missing::new(
            "host-only sysctls (tcp_mem, tcp_max_orphans)",
            why,
        )),
    }
    host.limits = host_limits(&host.sysctl);
    host.file_nr = host
        .sysctl
        .get("fs.file-nr")
        .and_then(|v| procfs::parse_file_nr(v).ok());
    host
}

fn host_limits(sysctl: &BTreeMap<String, String>) -> HostLimits {
    let num = |name: &str| sysctl.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let triple = |name: &str| {
        let v = procfs::parse_numbers(sysctl.get(name)?).ok()?;
        (v.len() == 3).then(|| MemLimits {
            min: v[0],
            pressure: v[1],
            max: v[2],
        })
    };
    HostLimits {
        tcp_mem: triple("net.ipv4.tcp_mem"),
        udp_mem: triple("net.ipv4.udp_mem"),
        tcp_max_orphans: num("net.ipv4.tcp_max_orphans"),
        file_max: num("fs.file-max"),
        nr_open: num("fs.nr_open"),
        nf_conntrack_max: num("net.netfilter.nf_conntrack_max"),
    }
}

/// Reads a list of sysctls in the calling thread's namespace. Optional ones that
/// do not exist on this kernel are skipped silently.
fn read_sysctls(specs: &[procfs::SysctlSpec]) -> (BTreeMap<String, String>, Vec<Missing>) {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for spec in specs {
        match procfs::read_sysctl(Path::new("/proc/sys"), spec.name) {
            Ok(v) => {
                values.insert(spec.name.to_string(), v);
            }
            Err(e) if !(spec.optional && is_not_found(&e)) => missing.push(Missing::new(
                format!("sysctl {} ({})", spec.name, spec.why),
                e.to_string(),
            )),
            Err(_) => {}
        }
    }
    (values, missing)
}

fn is_not_found(e: &ProcError) -> bool {
    matches!(e, ProcError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

fn read_file(path: &str, missing: &mut Vec<Missing>) -> Option<String> {
    match procfs::read_text(Path::new(path)) {
        Ok(t) => Some(t),
        Err(e) => {
            missing.push(Missing::new(path, e.to_string()));
            None
        }
    }
}

fn field(s: &procfs::Sections<u64>, section: &str, name: &str) -> Option<u64> {
    s.get(section)?.get(name).copied()
}

/// Collects every selected namespace, a few at a time (each one may itself dump
/// in parallel parts).
fn collect_namespaces(
    selected: &[&NetnsHandle],
    opts: &CollectOptions,
    bound_inactive: bool,
) -> Vec<(Netns, Vec<Missing>)> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut out = Vec::with_capacity(selected.len());
    for chunk in selected.chunks(workers) {
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|ns| scope.spawn(move || collect_one(ns, opts, bound_inactive)))
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        for (ns, result) in chunk.iter().zip(results) {
            out.push(match result {
                Ok(r) => r,
                Err(_) => (
                    blank_netns(ns),
                    vec![Missing::new(
                        ns_what(ns, "sockets"),
                        "collector thread panicked",
                    )],
                ),
            });
        }
    }
    out
}

fn blank_netns(ns: &NetnsHandle) -> Netns {
    Netns {
        id: ns.id,
        names: ns.names.clone(),
        host: ns.host,
        processes: ns.processes,
        ..Netns::default()
    }
}

fn ns_what(ns: &NetnsHandle, what: &str) -> String {
    format!(
        "{} of network namespace {}",
        what,
        ns.names.first().map(String::as_str).unwrap_or("?")
    )
}

/// Enters one namespace and reads everything that is per namespace there.
fn collect_one(
    ns: &NetnsHandle,
    opts: &CollectOptions,
    bound_inactive: bool,
) -> (Netns, Vec<Missing>) {
    let base = blank_netns(ns);
    let label = ns
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| ns.id.to_string());
    let opts = opts.clone();
    let inside = netns::run_in_netns(ns, move || read_inside(base, &label, &opts, bound_inactive));
    match inside {
        Ok(r) => r,
        Err(e) => (
            blank_netns(ns),
            vec![Missing::new(ns_what(ns, "every figure"), e.to_string())],
        ),
    }
}

/// Runs on a thread inside the namespace: /proc/thread-self/net (not /proc/self,
/// which follows the thread-group leader's namespace) and /proc/sys/net (which
/// follows the opening thread's).
fn read_inside(
    mut ns: Netns,
    label: &str,
    opts: &CollectOptions,
    bound_inactive: bool,
) -> (Netns, Vec<Missing>) {
    let mut missing = Vec::new();
    let what = |w: &str| format!("{w} of network namespace {label}");
    let net = Path::new("/proc/thread-self/net");
    let read = |file: &str, missing: &mut Vec<Missing>| match procfs::read_text(&net.join(file)) {
        Ok(t) => Some(t),
        Err(e) => {
            missing.push(Missing::new(what(file), e.to_string()));
            None
        }
    };
    let mut stat4 = read("sockstat", &mut missing)
        .and_then(|t| parse_or_note(procfs::parse_sockstat(&t), &what("sockstat"), &mut missing));
    let stat6 = read("sockstat6", &mut missing)
        .and_then(|t| parse_or_note(procfs::parse_sockstat(&t), &what("sockstat6"), &mut missing));
    if let (Some(s4), Some(s6)) = (stat4.as_mut(), stat6) {
        s4.extend(s6);
    }
    if let Some(s) = &stat4 {
        ns.sockstat = NetnsSockstat {
            sockets_used: field(s, "sockets", "used"),
            tcp_inuse: field(s, "TCP", "inuse"),
            tcp6_inuse: field(s, "TCP6", "inuse"),
            tcp_tw: field(s, "TCP", "tw"),
            udp_inuse: field(s, "UDP", "inuse"),
            udp6_inuse: field(s, "UDP6", "inuse"),
        };
    }
    for file in ["snmp", "netstat"] {
        let Some(t) = read(file, &mut missing) else {
            continue;
        };
        let Some(table) = parse_or_note(procfs::parse_counter_table(&t), &what(file), &mut missing)
        else {
            continue;
        };
        for (section, values) in table {
            if matches!(section.as_str(), "Tcp" | "TcpExt" | "IpExt" | "Udp") {
                ns.counters.insert(section, values);
            }
        }
    }
    let (sysctl, lost) = read_sysctls(procfs::NETNS_SYSCTLS);
    missing.extend(lost.into_iter().map(|m| Missing::new(what(&m.what), m.why)));
    ns.conntrack_count = sysctl
        .get("net.netfilter.nf_conntrack_count")
        .and_then(|v| v.parse().ok());
    ns.sysctl = sysctl;
    dump_sockets(
        &mut ns,
        opts,
        bound_inactive,
        &mut missing,
        &what("TCP sockets"),
    );
    (ns, missing)
}

fn parse_or_note<T>(r: Result<T, ProcError>, what: &str, missing: &mut Vec<Missing>) -> Option<T> {
    r.map_err(|e| missing.push(Missing::new(what, e.to_string())))
        .ok()
}

/// Dumps the namespace's TCP sockets (both families in one walk of the kernel's
/// table) and folds them into the Netns.
fn dump_sockets(
    ns: &mut Netns,
    opts: &CollectOptions,
    bound_inactive: bool,
    missing: &mut Vec<Missing>,
    what: &str,
) {
    let started = Instant::now();
    let mut states = opts.states.unwrap_or(ALL_STATES);
    if opts.mode == DumpMode::WithoutEstablished {
        states &= !(1 << TcpState::Established as u32);
    }
    let want_bound = bound_inactive && opts.states.is_none_or(|s| s & BOUND_INACTIVE_BIT != 0);
    if want_bound {
        states |= BOUND_INACTIVE_BIT;
    } else {
        states &= !BOUND_INACTIVE_BIT;
    }
    let port_range = ns
        .sysctl
        .get("net.ipv4.ip_local_port_range")
        .and_then(|v| procfs::parse_numbers(v).ok())
        .and_then(|v| {
            (v.len() == 2 && v[0] <= v[1] && v[1] <= 65535).then(|| (v[0] as u16, v[1] as u16))
        });
    let reserved = ns
        .sysctl
        .get("net.ipv4.ip_local_reserved_ports")
        .and_then(|v| procfs::parse_port_ranges(v).ok())
        .unwrap_or_default();
    let agg_opts = AggregateOptions {
        port_range,
        port_filter: opts.port,
        bound_inactive_requested: want_bound,
        states_requested: states,
        ..AggregateOptions::default()
    };
    let parts = opts
        .parts
        .unwrap_or_else(|| auto_parts(ns, opts.mode))
        .max(1);
    let result = parallel_dump(states, parts, &agg_opts);
    let (agg, sockets) = match result {
        Ok(r) => r,
        Err(e) => {
            missing.push(Missing::new(what, e.to_string()));
            return;
        }
    };
    let mut out = agg.finish(opts.top, &reserved);
    if opts.mode == DumpMode::WithoutEstablished && opts.states.is_none_or(|s| s & 2 != 0) {
        derive_established(ns, &mut out.states, missing, what);
        if let Some(e) = out.ephemeral.as_mut() {
            e.includes_established = false;
        }
    }
    ns.orphans =
        (states & ORPHAN_STATES == ORPHAN_STATES && opts.port.is_none()).then_some(out.orphans);
    ns.states = out.states;
    ns.listeners = out.listeners;
    ns.top_local = out.top_local;
    ns.top_remote = out.top_remote;
    ns.ephemeral = out.ephemeral;
    let mut requested: Vec<TcpState> = TcpState::ALL
        .iter()
        .copied()
        .filter(|s| {
            s.kernel_number()
                .is_some_and(|k| k != 7 && states & (1 << k) != 0)
        })
        .collect();
    requested.sort();
    ns.dump = Some(DumpInfo {
        states: requested,
        families: vec!["inet".into(), "inet6".into()],
        bound_inactive: want_bound,
        sockets,
        parts: parts as u32,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        exact: out.exact,
    });
}

/// ESTABLISHED = CurrEstab − CLOSE-WAIT: the kernel's CurrEstab counts both
/// (tcp_set_state only decrements it when leaving ESTABLISHED or CLOSE-WAIT).
fn derive_established(
    ns: &mut Netns,
    states: &mut sockmedic_model::StateCounts,
    missing: &mut Vec<Missing>,
    what: &str,
) {
    match ns.counter("Tcp", "CurrEstab") {
        Some(cur) => {
            let close_wait = states.count(TcpState::CloseWait) as i64;
            states.set(TcpState::Established, (cur - close_wait).max(0) as u64);
            ns.established_derived = true;
        }
        None => missing.push(Missing::new(
            format!("ESTABLISHED count: {what}"),
            "snmp Tcp CurrEstab was not readable, and stat does not dump ESTABLISHED sockets",
        )),
    }
}

/// One dump for a small namespace; as many parts as cores for a big one (each part
/// walks the kernel's table but builds messages only for its own port range).
fn auto_parts(ns: &Netns, mode: DumpMode) -> usize {
    let s = &ns.sockstat;
    let mut sockets = s.tcp_inuse.unwrap_or(0) + s.tcp6_inuse.unwrap_or(0) + s.tcp_tw.unwrap_or(0);
    if mode == DumpMode::WithoutEstablished {
        sockets = sockets.saturating_sub(ns.counter("Tcp", "CurrEstab").unwrap_or(0).max(0) as u64);
    }
    if sockets < PARALLEL_DUMP_MIN_SOCKETS {
        1
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(8)
    }
}

/// Splits the local-port space into `parts` ranges and dumps each on its own
/// thread with its own netlink socket (opened here, so in this namespace).
fn parallel_dump(
    states: u32,
    parts: usize,
    agg: &AggregateOptions,
) -> Result<(SocketAggregate, u64), String> {
    let ranges = port_ranges(parts);
    let mut conns = Vec::with_capacity(parts);
    for _ in 0..parts {
        conns.push(SockDiag::open().map_err(|e| e.to_string())?);
    }
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .zip(ranges)
            .map(|(mut conn, range)| {
                scope.spawn(move || {
                    let mut a = SocketAggregate::new(agg.clone());
                    let req = DumpRequest {
                        family: Family::Both,
                        states,
                        sport: range,
                    };
                    conn.dump(&req, |s| a.add(s))
                        .map(|st| (a, st.messages))
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut total: Option<SocketAggregate> = None;
    let mut messages = 0;
    for r in results {
        let (a, n) = r.unwrap_or_else(|_| Err("a dump thread panicked".to_string()))?;
        messages += n;
        match total.as_mut() {
            Some(t) => t.merge(a),
            None => total = Some(a),
        }
    }
    Ok((
        total.unwrap_or_else(|| SocketAggregate::new(agg.clone())),
        messages,
    ))
}

/// `parts` contiguous local-port ranges covering 0..=65535 (`None` for one part).
fn port_ranges(parts: usize) -> Vec<Option<(u16, u16)>> {
    if parts <= 1 {
        return vec![None];
    }
    let step = 65536 / parts as u32;
    (0..parts as u32)
        .map(|i| {
            let lo = i * step;
            let hi = if i + 1 == parts as u32 {
                65535
            } else {
                (i + 1) * step - 1
            };
            Some((lo as u16, hi as u16))
        })
        .collect()
}

/// "closed" as it really is: `alloc − Σ inuse` over the namespaces collected, less
/// the orphans that can only live in namespaces nobody can enter any more.
fn closed_sockets(snap: &Snapshot, complete: bool) -> Option<Closed> {
    let alloc = snap.host.sockstat.tcp_alloc?;
    let counted: Vec<&Netns> = snap
        .netns
        .iter()
        .filter(|n| n.sockstat.tcp_inuse.is_some())
        .collect();
    let inuse: u64 = counted
        .iter()
        .map(|n| n.sockstat.tcp_inuse.unwrap_or(0) + n.sockstat.tcp6_inuse.unwrap_or(0))
        .sum();
    let complete = complete && counted.len() == snap.netns.len();
    let orphans_unseen = orphans_unseen(snap);
    let here = netns::current_netns_id().ok();
    let ss_closed = snap.netns.iter().find(|n| Some(n.id) == here).map(|n| {
        let s = &n.sockstat;
        alloc as i64 - (s.tcp_inuse.unwrap_or(0) + s.tcp6_inuse.unwrap_or(0)) as i64
            + s.tcp_tw.unwrap_or(0) as i64
    });
    let bound_inactive: Option<u64> = snap
        .netns
        .iter()
        .map(|n| n.states.get(TcpState::BoundInactive))
        .sum();
    Some(Closed {
        alloc,
        inuse,
        unhashed: alloc
            .saturating_sub(inuse)
            .saturating_sub(orphans_unseen.unwrap_or(0)),
        orphans_unseen,
        bound_inactive,
        netns_counted: counted.len(),
        complete,
        ss_closed,
    })
}

/// sockstat `orphan` (host-wide) minus the orphans dumped in every namespace.
fn orphans_unseen(snap: &Snapshot) -> Option<u64> {
    let orphan = snap.host.sockstat.tcp_orphan?;
    let seen: Option<u64> = snap.netns.iter().map(|n| n.orphans).sum();
    Some(orphan.saturating_sub(seen?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_cover_everything_once() {
        assert_eq!(port_ranges(1), vec![None]);
        let r = port_ranges(3);
        assert_eq!(r[0], Some((0, 21844)));
        assert_eq!(r[2].unwrap().1, 65535);
        for w in r.windows(2) {
            assert_eq!(w[0].unwrap().1 as u32 + 1, w[1].unwrap().0 as u32);
        }
    }
}
