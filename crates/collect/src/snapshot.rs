//! Builds a live [`Snapshot`]: host-wide figures from the initial namespace, then
//! each selected network namespace on a thread that has entered it.

use crate::aggregate::{Aggregated, InodeLookup, ProcessTally};
use crate::namespace::{self, Job, NsResult, Reader};
use crate::netns::{self, NetnsHandle};
use crate::processes::{self, LiveProbe, Naming, RecordingProbe};
use crate::procfs;
use crate::procscan::{self, ProcScan, ProcScanOptions};
use crate::record::{BoundStage, Progress, RecordedNetns, Recorder};
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DumpMode {
    /// Every state, bound-inactive included: what `sockets` needs.
    #[default]
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
    /// Record every raw input into this (`sockmedic collect`); `None`: nothing kept.
    pub record: Option<Arc<Recorder>>,
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
            record: None,
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
    let rec = opts.record.as_deref();
    let mut snap = Snapshot {
        source: live_source(),
        ..Snapshot::default()
    };
    let mut scan = netns::discover();
    snap.missing.extend(scan.missing.iter().cloned());
    let mut naming_missing = Vec::new();
    let naming = Naming::read(&opts.pods_dir, &opts.containers_dir, &mut naming_missing);
    snap.missing.extend(naming_missing.iter().cloned());
    let pods = processes::name_by_owner(&mut scan.namespaces, &naming);
    let selected: Vec<&NetnsHandle> = match &opts.netns {
        Some(sel) => select(&scan, sel)?,
        None => scan.namespaces.iter().collect(),
    };
    if let Some(rec) = rec {
        record_start(
            rec,
            opts,
            &snap,
            &scan,
            &selected,
            &pods,
            &naming,
            naming_missing,
        );
    }
    let host_ns = scan.namespaces.iter().find(|n| n.host);
    snap.host = read_host(host_ns, &mut snap.missing, opts.record.as_ref());
    let scanned = opts.processes.then(|| scan_processes(&mut snap.missing));
    if let (Some(rec), Some(ps)) = (rec, &scanned) {
        rec.lock().scan = Some(ps.clone());
        rec.progress(Progress::Scanned {
            processes: ps.procs.len(),
            socket_fds: ps.sockets.len(),
        });
    }
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
        let live = LiveBound {
            selected: &selected,
            others_inuse,
        };
        let (stage, t) = bound_stage(&mut snap, &job, &live);
        if let Some(rec) = rec {
            rec.lock().bound = stage;
        }
        merge_tally(&mut tally, t);
    }
    for ns in &mut snap.netns {
        ns.pod = pods.get(&ns.id).cloned();
    }
    processes::name_orphan_owners(&mut snap.netns, &naming);
    if let Some(ps) = &scanned {
        let mut build = |probe: &dyn processes::SocketProbe| {
            processes::build(
                ps,
                tally.as_ref(),
                &mut snap.netns,
                &naming,
                opts.cmdline,
                opts.so_error,
                probe,
            )
        };
        let procs = match rec {
            Some(rec) => build(&RecordingProbe(rec)),
            None => build(&LiveProbe),
        };
        snap.processes = procs;
    }
    // The breakdown of alloc needs every namespace's inuse: not with --netns.
    if opts.netns.is_none() && opts.mode != DumpMode::CountersOnly {
        snap.host.closed = closed_sockets(&snap, scan.missing.is_empty());
    }
    snap.source.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    if let Some(rec) = rec {
        rec.lock().source = snap.source.clone();
    }
    Ok(snap)
}

/// What is known before the namespaces are read: the options, the namespaces and
/// their names, the naming data.
#[allow(clippy::too_many_arguments)]
fn record_start(
    rec: &Recorder,
    opts: &CollectOptions,
    snap: &Snapshot,
    scan: &netns::NetnsScan,
    selected: &[&NetnsHandle],
    pods: &std::collections::HashMap<u64, String>,
    naming: &Naming,
    naming_missing: Vec<Missing>,
) {
    let mut r = rec.lock();
    r.source = snap.source.clone();
    r.here = netns::current_netns_id().ok();
    r.page_size = rustix::param::page_size() as u64;
    r.netns_selector = opts.netns.clone();
    r.mode = opts.mode;
    r.states = opts.states;
    r.port = opts.port;
    r.processes = opts.processes;
    r.cmdline = opts.cmdline;
    r.so_error = opts.so_error;
    r.discovery_complete = scan.missing.is_empty();
    r.discovery_missing = scan.missing.clone();
    r.naming_missing = naming_missing;
    r.kube = naming.kube.record();
    r.cgroup_ids = naming.cgroup_ids.as_ref().map(|c| c.record());
    r.namespaces = scan
        .namespaces
        .iter()
        .map(|n| RecordedNetns {
            id: n.id,
            dev: n.dev,
            names: n.names.clone(),
            path: n.path.display().to_string(),
            processes: n.processes,
            host: n.host,
            pid: n.pid,
            pod: pods.get(&n.id).cloned(),
            selected: selected.iter().any(|s| s.id == n.id),
            ..RecordedNetns::default()
        })
        .collect();
    drop(r);
    rec.progress(Progress::Discovered {
        namespaces: scan.namespaces.len(),
        selected: selected.len(),
    });
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

/// Where stage two gets its answers: the live kernel, or a recording.
pub(crate) trait BoundSource {
    /// Whether some TCP socket may be in no table (see [`unhashed_possible`]).
    fn possible(&self, snap: &Snapshot) -> bool;
    fn supported(&self) -> bool;
    /// The namespaces to dump, in order.
    fn namespaces(&self) -> Vec<u64>;
    /// The bound-inactive dump of one namespace (`None`: gone).
    fn dump(&self, id: u64, ns: &Netns, job: &Job) -> Result<Option<Aggregated>, String>;
}

struct LiveBound<'a> {
    selected: &'a [&'a NetnsHandle],
    others_inuse: Option<u64>,
}

impl BoundSource for LiveBound<'_> {
    fn possible(&self, snap: &Snapshot) -> bool {
        unhashed_possible(snap, self.others_inuse)
    }
    fn supported(&self) -> bool {
        sockdiag::bound_inactive_supported()
    }
    fn namespaces(&self) -> Vec<u64> {
        self.selected.iter().map(|h| h.id).collect()
    }
    fn dump(&self, id: u64, ns: &Netns, job: &Job) -> Result<Option<Aggregated>, String> {
        match self.selected.iter().find(|h| h.id == id) {
            Some(h) => namespace::dump_bound(h, ns, job),
            None => Ok(None),
        }
    }
}

/// Stage two: bound-inactive sockets. Asking for them walks the kernel's table of
/// bound ports, which holds every connected socket too, so it is skipped when the
/// arithmetic proves no TCP socket is in no table: every full socket is either in
/// some namespace's `inuse` or in no table, so `alloc − Σ inuse − orphans held
/// elsewhere ≤ 0` means there is none, bound or not.
pub(crate) fn bound_stage(
    snap: &mut Snapshot,
    job: &Job,
    source: &(dyn BoundSource + Sync),
) -> (BoundStage, Option<ProcessTally>) {
    if !source.possible(snap) {
        for ns in &mut snap.netns {
            namespace::bound_known_zero(
                ns,
                "not dumped: no TCP socket is in no table (alloc - inuse - orphans elsewhere = 0)",
            );
        }
        return (BoundStage::KnownZero, None);
    }
    if !source.supported() {
        snap.missing.push(Missing::new(
            "bound-inactive sockets (bound, neither listening nor connected)",
            "this kernel does not answer sock_diag's bound-inactive request (Linux 6.8+)",
        ));
        return (BoundStage::Unsupported, None);
    }
    let started = Instant::now();
    let ids = source.namespaces();
    let results = namespace::for_each(&ids, |&id| {
        let ns = snap.netns.iter().find(|n| n.id == id)?;
        Some((id, source.dump(id, ns, job)))
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
    (BoundStage::Dumped, tally)
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
        inputs: Vec::new(),
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
fn read_host(
    host_ns: Option<&NetnsHandle>,
    missing: &mut Vec<Missing>,
    rec: Option<&Arc<Recorder>>,
) -> Host {
    let read = |name: &str| {
        let r = namespace::read_live(name, "/proc/net");
        if let Some(rec) = rec {
            rec.host_file(name, &r);
        }
        r
    };
    let sockstat = read("proc/net/sockstat");
    if rec.is_some() {
        // Kept for the record (the bundle's host files); the host figures do not use it.
        let _ = read("proc/net/sockstat6");
    }
    let here = netns::current_netns_id().ok();
    let recorder = rec.cloned();
    let read_in_host = move || {
        read_sysctls(procfs::HOST_SYSCTLS, &mut |name: &str| {
            let r = namespace::read_live(name, "/proc/net");
            if let Some(rec) = &recorder {
                rec.host_file(name, &r);
            }
            r
        })
    };
    let sysctls = match host_ns {
        Some(ns) if Some(ns.id) == here => Ok(read_in_host()),
        Some(ns) => netns::run_in_netns(ns, read_in_host).map_err(|e| e.to_string()),
        None => {
            Err("the initial network namespace is not reachable (not root, or no /proc/1)".into())
        }
    };
    if let (Some(rec), Err(e)) = (rec, &sysctls) {
        rec.lock().host_sysctls_error = Some(e.clone());
    }
    fold_host(
        sockstat.map_err(|e| e.message),
        sysctls,
        rustix::param::page_size() as u64,
        missing,
    )
}

/// The host-wide figures from the collector's sockstat and the host-only sysctls
/// (or why they could not be read), live or recorded.
pub(crate) fn fold_host(
    sockstat: Result<String, String>,
    sysctls: Result<(BTreeMap<String, String>, Vec<Missing>), String>,
    page_size: u64,
    missing: &mut Vec<Missing>,
) -> Host {
    let mut host = Host {
        page_size,
        ..Host::default()
    };
    match sockstat.map(|t| procfs::parse_sockstat(&t)) {
        Ok(Ok(s)) => {
            host.sockstat = HostSockstat {
                tcp_orphan: field(&s, "TCP", "orphan"),
                tcp_alloc: field(&s, "TCP", "alloc"),
                tcp_mem_pages: field(&s, "TCP", "mem"),
                udp_mem_pages: field(&s, "UDP", "mem"),
            }
        }
        Ok(Err(e)) => missing.push(Missing::new("/proc/net/sockstat", e.to_string())),
        Err(why) => missing.push(Missing::new("/proc/net/sockstat", why)),
    }
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

/// Reads a list of sysctls with `read` (`proc/sys/net/ipv4/tcp_mem`: live in the
/// calling thread's namespace, or recorded). Optional ones that do not exist on
/// this kernel are skipped silently.
pub(crate) fn read_sysctls(
    specs: &[procfs::SysctlSpec],
    read: &mut Reader<'_>,
) -> (BTreeMap<String, String>, Vec<Missing>) {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for spec in specs {
        match read(&sysctl_file(spec.name)) {
            Ok(v) => {
                values.insert(spec.name.to_string(), v);
            }
            Err(e) if !(spec.optional && e.not_found) => missing.push(Missing::new(
                format!("sysctl {} ({})", spec.name, spec.why),
                e.message,
            )),
            Err(_) => {}
        }
    }
    (values, missing)
}

/// `net.ipv4.tcp_mem` → `proc/sys/net/ipv4/tcp_mem`.
pub fn sysctl_file(name: &str) -> String {
    format!("proc/sys/{}", name.replace('.', "/"))
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
