//! Builds a live [`Snapshot`]: host-wide figures from the initial namespace, then
//! each selected network namespace on a thread that has entered it.

use crate::aggregate::{InodeLookup, ProcessTally};
use crate::namespace::{self, Job, NsResult};
use crate::netns::{self, NetnsHandle};
use crate::processes::{self, Naming};
use crate::procfs::{self, ProcError};
use crate::procscan::{self, ProcScan, ProcScanOptions};
use crate::sockdiag;
use sockmedic_model::{
    Closed, Host, HostLimits, HostSockstat, MemLimits, Missing, Netns, Snapshot, Source,
    SourceKind, TcpState,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
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
    /// No socket dump at all: the files and counters of each namespace only (the
    /// first of `check`'s two snapshots, which only serves for rates).
    CountersOnly,
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
    /// Read SO_ERROR of the sampled CLOSE sockets (consumes the pending error).
    pub so_error: bool,
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
            so_error: false,
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

/// Takes a live Snapshot.
pub fn collect(opts: &CollectOptions) -> Result<Snapshot, CollectError> {
    let started = Instant::now();
    let mut snap = Snapshot {
        source: live_source(),
        ..Snapshot::default()
    };
    let mut scan = netns::discover();
    snap.missing.extend(scan.missing.iter().cloned());
    let naming = Naming::read(&opts.pods_dir, &opts.containers_dir, &mut snap.missing);
    let pods = processes::name_by_owner(&mut scan.namespaces, &naming);
    let selected: Vec<&NetnsHandle> = match &opts.netns {
        Some(sel) => select(&scan, sel)?,
        None => scan.namespaces.iter().collect(),
    };
    let host_ns = scan.namespaces.iter().find(|n| n.host);
    snap.host = read_host(host_ns, &mut snap.missing);
    let scanned = opts.processes.then(|| scan_processes(&mut snap.missing));
    let join = scanned
        .as_ref()
        .map(|ps| Arc::new(InodeLookup::new(ps.sockets.clone(), ps.procs.len())));
    let job = Job {
        opts: opts.clone(),
        join,
    };
    let results = namespace::for_each(&selected, |ns| namespace::collect(ns, &job));
    let mut tally: Option<ProcessTally> = None;
    // A namespace that vanished since discovery is simply not there any more.
    for NsResult {
        netns,
        missing,
        tally: t,
    } in results.into_iter().flatten()
    {
        snap.netns.push(netns);
        snap.missing.extend(missing);
        merge_tally(&mut tally, t);
    }
    if namespace::wants_bound(opts) && opts.mode != DumpMode::CountersOnly {
        // With --netns, the namespaces left out count too: their inuse is read.
        let others: Vec<&NetnsHandle> = scan
            .namespaces
            .iter()
            .filter(|n| !selected.iter().any(|s| s.id == n.id))
            .collect();
        let others_inuse = namespace::inuse_of(&others);
        let t = bound_stage(&mut snap, &selected, &job, others_inuse);
        merge_tally(&mut tally, t);
    }
    for ns in &mut snap.netns {
        ns.pod = pods.get(&ns.id).cloned();
    }
    processes::name_orphan_owners(&mut snap.netns, &naming);
    if let Some(ps) = &scanned {
        snap.processes = processes::build(
            ps,
            tally.as_ref(),
            &mut snap.netns,
            &naming,
            opts.cmdline,
            opts.so_error,
        );
    }
    // The breakdown of alloc needs every namespace's inuse: not with --netns.
    if opts.netns.is_none() && opts.mode != DumpMode::CountersOnly {
        snap.host.closed = closed_sockets(&snap, scan.missing.is_empty());
    }
    snap.source.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    Ok(snap)
}

/// Every process's fds, before the dumps, so each dumped socket can be counted for
/// the processes that hold it.
fn scan_processes(missing: &mut Vec<Missing>) -> ProcScan {
    let ps = procscan::scan(&ProcScanOptions::default());
    missing.extend(ps.missing.iter().cloned());
    ps
}

/// `--netns`: a name, pid or inode, or a pod's `namespace/name` without "pod ".
fn select<'a>(scan: &'a netns::NetnsScan, sel: &str) -> Result<Vec<&'a NetnsHandle>, CollectError> {
    netns::select(scan, sel)
        .or_else(|e| netns::select(scan, &format!("pod {sel}")).map_err(|_| e))
        .map_err(|e| CollectError::NoSuchNetns {
            selector: sel.to_string(),
            why: e.to_string(),
        })
}

fn merge_tally(total: &mut Option<ProcessTally>, t: Option<ProcessTally>) {
    match (total.as_mut(), t) {
        (Some(total), Some(t)) => total.merge(t),
        (None, Some(t)) => *total = Some(t),
        _ => {}
    }
}

/// Stage two: bound-inactive sockets. Asking for them walks the kernel's table of
/// bound ports, which holds every connected socket too, so it is skipped when the
/// arithmetic proves no TCP socket is in no table: every full socket is either in
/// some namespace's `inuse` or in no table, so `alloc − Σ inuse − orphans held
/// elsewhere ≤ 0` means there is none, bound or not.
fn bound_stage(
    snap: &mut Snapshot,
    selected: &[&NetnsHandle],
    job: &Job,
    others_inuse: Option<u64>,
) -> Option<ProcessTally> {
    if !unhashed_possible(snap, others_inuse) {
        for ns in &mut snap.netns {
            namespace::bound_known_zero(
                ns,
                "not dumped: no TCP socket is in no table (alloc - inuse - orphans elsewhere = 0)",
            );
        }
        return None;
    }
    if !sockdiag::bound_inactive_supported() {
        snap.missing.push(Missing::new(
            "bound-inactive sockets (bound, neither listening nor connected)",
            "this kernel does not answer sock_diag's bound-inactive request (Linux 6.8+)",
        ));
        return None;
    }
    let started = Instant::now();
    let results = namespace::for_each(selected, |h| {
        let ns = snap.netns.iter().find(|n| n.id == h.id)?;
        Some((h.id, namespace::dump_bound(h, ns, job)))
    });
    let mut tally = None;
    for (id, result) in results.into_iter().flatten() {
        let Some(ns) = snap.netns.iter_mut().find(|n| n.id == id) else {
            continue;
        };
        match result {
            Ok(Some(mut out)) => {
                namespace::merge_bound(ns, &out, started);
                merge_tally(&mut tally, out.processes.take());
            }
            // Gone since stage one.
            Ok(None) => {}
            Err(e) => snap.missing.push(Missing::new(
                format!("bound-inactive sockets of network namespace {}", ns.name()),
                e,
            )),
        }
    }
    tally
}

/// Whether some TCP socket may be in no table (see `bound_stage`). `others_inuse`
/// is the inuse of the namespaces not collected (0 when all were; `None` when it
/// could not be read).
fn unhashed_possible(snap: &Snapshot, others_inuse: Option<u64>) -> bool {
    let Some(alloc) = snap.host.sockstat.tcp_alloc else {
        return true;
    };
    // `alloc` was read before the namespaces' `inuse`: if it moved since, sockets
    // came and went in between and the difference proves nothing.
    if current_alloc() != Some(alloc) {
        return true;
    }
    let Some(others) = others_inuse else {
        return true;
    };
    let inuse: u64 = snap
        .netns
        .iter()
        .map(|n| n.sockstat.tcp_inuse_total())
        .sum();
    // Orphans of namespaces sockmedic cannot see are hashed there: they may be
    // subtracted only when every namespace it can see was dumped (others == 0),
    // or they would be subtracted twice.
    let hidden_orphans = if others == 0 {
        orphans_unseen(snap).unwrap_or(0)
    } else {
        0
    };
    alloc > inuse + others + hidden_orphans
}

/// sockstat `alloc` now.
fn current_alloc() -> Option<u64> {
    let text = procfs::read_text(Path::new("/proc/net/sockstat")).ok()?;
    procfs::parse_sockstat(&text)
        .ok()?
        .get("TCP")?
        .get("alloc")
        .copied()
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
        uptime_s: Some(uptime_s()),
    }
}

/// Seconds since boot (CLOCK_BOOTTIME, which also counts suspend, as the kernel
/// log's timestamps do not; close enough for "how long ago").
pub fn uptime_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
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
pub(crate) fn read_sysctls(
    specs: &[procfs::SysctlSpec],
) -> (BTreeMap<String, String>, Vec<Missing>) {
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

/// "closed" as it really is: `alloc − Σ inuse` over the namespaces collected, less
/// the orphans that can only live in namespaces nobody can enter any more.
fn closed_sockets(snap: &Snapshot, complete: bool) -> Option<Closed> {
    closed_sockets_seen_from(snap, complete, netns::current_netns_id().ok())
}

/// "closed" as it really is (see [`Closed`]), for a snapshot taken from the
/// namespace `here` (whose sockstat `ss -s` would have read); `complete` when every
/// namespace of the host is in the snapshot. Offline snapshots use it too.
pub fn closed_sockets_seen_from(
    snap: &Snapshot,
    complete: bool,
    here: Option<u64>,
) -> Option<Closed> {
    let alloc = snap.host.sockstat.tcp_alloc?;
    let counted: Vec<&Netns> = snap
        .netns
        .iter()
        .filter(|n| n.sockstat.tcp_inuse.is_some())
        .collect();
    let inuse: u64 = counted.iter().map(|n| n.sockstat.tcp_inuse_total()).sum();
    let complete = complete && counted.len() == snap.netns.len();
    let orphans_unseen = orphans_unseen(snap);
    let ss_closed = snap.netns.iter().find(|n| Some(n.id) == here).map(|n| {
        let s = &n.sockstat;
        alloc as i64 - s.tcp_inuse_total() as i64 + s.tcp_tw.unwrap_or(0) as i64
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
