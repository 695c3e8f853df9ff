//! One network namespace: its /proc files and sysctls, and its TCP sockets dumped
//! and aggregated, on a thread that has entered it.

use crate::aggregate::{
    dump_mask, AggregateOptions, Aggregated, InodeLookup, ProcessTally, SocketAggregate,
    ORPHAN_STATES,
};
use crate::netns::{self, NetnsHandle};
use crate::procfs::{self, ProcError};
use crate::record::{DumpRecord, FileResult, NsOutcome, ReadError, Recorder, Stage};
use crate::snapshot::{read_sysctls, CollectOptions, DumpMode};
use crate::sockdiag::{
    self, DumpRequest, Family, RawDump, SockDiag, ALL_STATES, BOUND_INACTIVE_BIT,
};
use sockmedic_model::{DumpInfo, Missing, Netns, NetnsSockstat, StateCounts, TcpState};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A namespace with more sockets than this is dumped in parallel parts.
const PARALLEL_DUMP_MIN_SOCKETS: u64 = 50_000;

/// What every namespace's collection shares.
#[derive(Clone)]
pub struct Job {
    pub opts: CollectOptions,
    /// The process scan's socket fds, to count sockets per process.
    pub join: Option<Arc<InodeLookup>>,
}

/// One namespace's result.
pub struct NsResult {
    pub netns: Netns,
    pub missing: Vec<Missing>,
    pub tally: Option<ProcessTally>,
}

/// Runs `f` on every namespace (or other item), as many at a time as there are
/// cores (each may itself dump in parallel parts). Results come back in the order
/// given.
pub fn for_each<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(workers) {
        let f = &f;
        std::thread::scope(|scope| {
            let running: Vec<_> = chunk.iter().map(|ns| scope.spawn(move || f(ns))).collect();
            out.extend(
                running
                    .into_iter()
                    .map(|h| h.join().expect("namespace collector panicked")),
            );
        });
    }
    out
}

/// The TCP `inuse` (IPv4 + IPv6) summed over namespaces, without dumping them:
/// through `/proc/PID/net` when a process is inside, else on a thread that enters.
/// `None` when one could not be read (a vanished namespace counts 0).
pub fn inuse_of(handles: &[&NetnsHandle]) -> Option<u64> {
    let read = |net: &Path| -> Option<u64> {
        let mut total = 0;
        for (file, section) in [("sockstat", "TCP"), ("sockstat6", "TCP6")] {
            let text = procfs::read_text(&net.join(file)).ok()?;
            total += procfs::parse_sockstat(&text)
                .ok()?
                .get(section)?
                .get("inuse")?;
        }
        Some(total)
    };
    let mut sum = 0;
    for ns in handles {
        let by_pid = ns
            .pid
            .and_then(|pid| read(Path::new(&format!("/proc/{pid}/net"))));
        let n = match by_pid {
            Some(n) => Some(n),
            None => match netns::run_in_netns(ns, move || read(Path::new("/proc/thread-self/net")))
            {
                Ok(n) => n,
                Err(e) if e.is_gone() => Some(0),
                Err(_) => None,
            },
        };
        sum += n?;
    }
    Some(sum)
}

pub fn blank_netns(ns: &NetnsHandle) -> Netns {
    Netns {
        id: ns.id,
        names: ns.names.clone(),
        host: ns.host,
        processes: ns.processes,
        ..Netns::default()
    }
}

pub(crate) fn label(ns: &NetnsHandle) -> String {
    ns.names
        .first()
        .cloned()
        .unwrap_or_else(|| ns.id.to_string())
}

fn what(label: &str, w: &str) -> String {
    format!("{w} of network namespace {label}")
}

/// Reads one input of a namespace's figures by its relative path
/// (`proc/net/sockstat`, `proc/sys/net/core/somaxconn`): live from /proc, or from a
/// recording.
pub(crate) type Reader<'a> = dyn FnMut(&str) -> FileResult + 'a;

/// Runs one dump: (states asked, parts, aggregate options) → the aggregate and the
/// number of sockets decoded.
pub(crate) type Dumper<'a> =
    dyn Fn(u32, usize, &AggregateOptions) -> Result<(SocketAggregate, u64), String> + 'a;

/// Reads a file live. `net` replaces `proc/net/` (`/proc/thread-self/net` inside a
/// namespace); /proc/sys values are trimmed as `procfs::read_sysctl` trims them.
pub(crate) fn read_live(name: &str, net: &str) -> FileResult {
    let path = match name.strip_prefix("proc/net/") {
        Some(file) => format!("{net}/{file}"),
        None => format!("/{name}"),
    };
    match procfs::read_text(Path::new(&path)) {
        Ok(t) if name.starts_with("proc/sys/") => Ok(t.trim().to_string()),
        Ok(t) => Ok(t),
        Err(e) => Err(ReadError {
            not_found: matches!(&e, ProcError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            message: e.to_string(),
        }),
    }
}

/// Stage one: enters the namespace, reads its files and dumps every asked state
/// but bound-inactive. `None` when the namespace is gone (it vanished since it was
/// found: nothing to report).
pub fn collect(ns: &NetnsHandle, job: &Job) -> Option<NsResult> {
    let (base, name, job) = (blank_netns(ns), label(ns), job.clone());
    let rec = job.opts.record.clone();
    let result = match netns::run_in_netns(ns, move || read_inside(base, &name, &job)) {
        Ok(r) => Some(r),
        Err(e) if e.is_gone() => {
            if let Some(rec) = &rec {
                rec.outcome(ns.id, NsOutcome::Gone);
            }
            None
        }
        Err(e) => {
            if let Some(rec) = &rec {
                rec.outcome(ns.id, NsOutcome::Failed(e.to_string()));
            }
            Some(failed(ns, &e.to_string()))
        }
    };
    if let Some(rec) = &rec {
        rec.progress(crate::record::Progress::NetnsDone { id: ns.id });
    }
    result
}

/// A namespace that could not be entered: every figure missing.
pub(crate) fn failed(ns: &NetnsHandle, why: &str) -> NsResult {
    NsResult {
        netns: blank_netns(ns),
        missing: vec![Missing::new(what(&label(ns), "every figure"), why)],
        tally: None,
    }
}

/// Runs on a thread inside the namespace: /proc/thread-self/net (not /proc/self,
/// which follows the thread-group leader's namespace) and /proc/sys/net (which
/// follows the opening thread's).
fn read_inside(ns: Netns, label: &str, job: &Job) -> NsResult {
    let (id, rec) = (ns.id, job.opts.record.as_deref());
    let mut read = |name: &str| {
        let r = read_live(name, "/proc/thread-self/net");
        if let Some(rec) = rec {
            rec.netns_file(id, name, &r);
        }
        r
    };
    let dump = |states, parts, agg: &AggregateOptions| {
        parallel_dump(states, parts, agg, rec.map(|r| (r, id, Stage::Main)))
    };
    fold_inside(ns, label, job, &mut read, &dump)
}

/// A namespace's figures from its files and its dump, however they are read:
/// live inside it, or from a recording.
pub(crate) fn fold_inside(
    mut ns: Netns,
    label: &str,
    job: &Job,
    read: &mut Reader<'_>,
    dump: &Dumper<'_>,
) -> NsResult {
    let mut missing = Vec::new();
    read_files(&mut ns, label, &mut missing, read);
    let (sysctl, lost) = read_sysctls(procfs::NETNS_SYSCTLS, read);
    missing.extend(
        lost.into_iter()
            .map(|m| Missing::new(what(label, &m.what), m.why)),
    );
    ns.conntrack_count = sysctl
        .get("net.netfilter.nf_conntrack_count")
        .and_then(|v| v.parse().ok());
    ns.sysctl = sysctl;
    let tally = if job.opts.mode == DumpMode::CountersOnly {
        None
    } else {
        dump_main(
            &mut ns,
            job,
            &mut missing,
            &what(label, "TCP sockets"),
            dump,
        )
    };
    NsResult {
        netns: ns,
        missing,
        tally,
    }
}

/// The files of a namespace's figures, as [`Reader`] names them.
pub const NETNS_FILES: [&str; 4] = [
    "proc/net/sockstat",
    "proc/net/sockstat6",
    "proc/net/snmp",
    "proc/net/netstat",
];

fn read_files(ns: &mut Netns, label: &str, missing: &mut Vec<Missing>, read: &mut Reader<'_>) {
    let mut read = |path: &str| {
        let file = path.trim_start_matches("proc/net/");
        match read(path) {
            Ok(t) => Some((t, what(label, file))),
            Err(e) => {
                missing.push(Missing::new(what(label, file), e.message));
                None
            }
        }
    };
    let texts: Vec<_> = NETNS_FILES.iter().map(|f| read(f)).collect();
    let mut sockstat = procfs::Sections::new();
    for (i, t) in texts.into_iter().enumerate() {
        let Some((text, name)) = t else { continue };
        if i < 2 {
            if let Some(s) = note(procfs::parse_sockstat(&text), &name, missing) {
                sockstat.extend(s);
            }
        } else if let Some(table) = note(procfs::parse_counter_table(&text), &name, missing) {
            for (section, values) in table {
                if matches!(section.as_str(), "Tcp" | "TcpExt" | "IpExt" | "Udp") {
                    ns.counters.insert(section, values);
                }
            }
        }
    }
    let f = |section: &str, name: &str| sockstat.get(section)?.get(name).copied();
    ns.sockstat = NetnsSockstat {
        sockets_used: f("sockets", "used"),
        tcp_inuse: f("TCP", "inuse"),
        tcp6_inuse: f("TCP6", "inuse"),
        tcp_tw: f("TCP", "tw"),
        udp_inuse: f("UDP", "inuse"),
        udp6_inuse: f("UDP6", "inuse"),
    };
}

fn note<T>(r: Result<T, ProcError>, what: &str, missing: &mut Vec<Missing>) -> Option<T> {
    r.map_err(|e| missing.push(Missing::new(what, e.to_string())))
        .ok()
}

/// Whether sockstat proves the namespace has no socket stage one could dump: every
/// one is counted in `inuse` (listeners, connections, orphans) or `tw` (TIME-WAIT and
/// FIN-WAIT-2 minisockets); SYN-RECV entries need a listener.
fn holds_no_hashed_socket(ns: &Netns) -> bool {
    let s = &ns.sockstat;
    matches!(
        (s.tcp_inuse, s.tcp6_inuse, s.tcp_tw),
        (Some(0), Some(0), Some(0))
    )
}

/// The states stage one asks for: everything asked but bound-inactive, and
/// ESTABLISHED only when it is to be dumped.
fn main_states(opts: &CollectOptions) -> u32 {
    let mut states = opts.states.unwrap_or(ALL_STATES) & !BOUND_INACTIVE_BIT;
    if opts.mode == DumpMode::WithoutEstablished {
        states &= !(1 << TcpState::Established as u32);
    }
    states
}

/// Whether `--state` (or its absence) asks for bound-inactive sockets.
pub fn wants_bound(opts: &CollectOptions) -> bool {
    opts.states.is_none_or(|s| s & BOUND_INACTIVE_BIT != 0)
}

fn reserved_ports(ns: &Netns) -> Vec<(u16, u16)> {
    ns.sysctl
        .get("net.ipv4.ip_local_reserved_ports")
        .and_then(|v| procfs::parse_port_ranges(v).ok())
        .unwrap_or_default()
}

/// Stage one's dump, folded into the Netns.
fn dump_main(
    ns: &mut Netns,
    job: &Job,
    missing: &mut Vec<Missing>,
    what: &str,
    dump: &Dumper<'_>,
) -> Option<ProcessTally> {
    let opts = &job.opts;
    let started = Instant::now();
    let states = main_states(opts);
    let agg_opts = AggregateOptions {
        port_range: ns.port_range(),
        port_filter: opts.port,
        states_requested: states,
        join: job.join.clone(),
        ..AggregateOptions::default()
    };
    let parts = opts
        .parts
        .unwrap_or_else(|| auto_parts(ns, opts.mode))
        .max(1);
    // Nothing to ask for (only bound-inactive: stage two does it), or nothing the
    // kernel could return: every dump costs a walk of the host's shared table.
    let empty = states == 0 || holds_no_hashed_socket(ns);
    let parts = if empty { 0 } else { parts };
    let dumped = if empty {
        Ok((SocketAggregate::new(agg_opts.clone()), 0))
    } else {
        dump(dump_mask(states), parts, &agg_opts)
    };
    let (agg, sockets) = match dumped {
        Ok(r) => r,
        Err(e) => {
            missing.push(Missing::new(what, e));
            return None;
        }
    };
    let mut out = agg.finish(opts.top, &reserved_ports(ns));
    if opts.mode == DumpMode::WithoutEstablished && opts.states.is_none_or(|s| s & 2 != 0) {
        derive_established(ns, &mut out.states, missing, what);
        if let Some(e) = out.ephemeral.as_mut() {
            e.includes_established = false;
        }
    }
    ns.orphans =
        (states & ORPHAN_STATES == ORPHAN_STATES && opts.port.is_none()).then_some(out.orphans);
    // Without ESTABLISHED (or with a port filter) the sums would leave most out.
    ns.queued = (states & 2 != 0 && opts.port.is_none()).then_some(out.queued);
    ns.states = out.states;
    ns.listeners = out.listeners;
    ns.top_local = out.top_local;
    ns.top_remote = out.top_remote;
    ns.ephemeral = out.ephemeral;
    ns.dump = Some(DumpInfo {
        states: requested_states(states),
        families: vec!["inet".into(), "inet6".into()],
        bound_inactive: false,
        bound_inactive_note: None,
        sockets,
        parts: parts as u32,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        exact: out.exact,
    });
    if !out.orphan_cgroups.is_empty() {
        ns.orphan_owners = out
            .orphan_cgroups
            .iter()
            .take(opts.top)
            .map(|(id, n)| sockmedic_model::CgroupCount {
                cgroup_id: *id,
                count: *n,
                ..Default::default()
            })
            .collect();
    }
    out.processes
}

fn requested_states(mask: u32) -> Vec<TcpState> {
    TcpState::ALL
        .iter()
        .copied()
        .filter(|s| {
            s.kernel_number()
                .is_some_and(|k| k != 7 && mask & (1 << k) != 0)
        })
        .collect()
}

/// The aggregate options of stage two's dump.
fn bound_opts(netns: &Netns, job: &Job) -> AggregateOptions {
    AggregateOptions {
        port_range: netns.port_range(),
        port_filter: job.opts.port,
        bound_inactive_requested: true,
        states_requested: BOUND_INACTIVE_BIT,
        join: job.join.clone(),
        ..AggregateOptions::default()
    }
}

/// Stage two: the bound-inactive sockets of a namespace (one more walk of the
/// kernel's tables, so only run when some socket may be in no table). `None` when
/// the namespace is gone.
pub fn dump_bound(
    ns: &NetnsHandle,
    netns: &Netns,
    job: &Job,
) -> Result<Option<Aggregated>, String> {
    let agg_opts = bound_opts(netns, job);
    let (top, reserved) = (job.opts.top, reserved_ports(netns));
    let rec = job.opts.record.clone();
    let id = ns.id;
    let run = move || {
        let tap = rec.as_deref().map(|r| (r, id, Stage::Bound));
        parallel_dump(BOUND_INACTIVE_BIT, 1, &agg_opts, tap)
            .map(|(agg, _)| agg.finish(top, &reserved))
    };
    let r = match netns::run_in_netns(ns, run) {
        Ok(r) => r.map(Some),
        Err(e) if e.is_gone() => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    if let Some(rec) = &job.opts.record {
        // A dump that ran has recorded itself; entering the namespace may have failed.
        let recorded = rec.lock().netns(id).is_some_and(|n| n.bound.is_some());
        match &r {
            Ok(None) => rec.dump(
                id,
                Stage::Bound,
                DumpRecord {
                    gone: true,
                    ..DumpRecord::default()
                },
            ),
            Err(e) if !recorded => rec.dump(
                id,
                Stage::Bound,
                DumpRecord {
                    error: Some(e.clone()),
                    ..DumpRecord::default()
                },
            ),
            _ => {}
        }
    }
    r
}

/// Stage two from a recorded dump: what [`dump_bound`] returned live.
pub(crate) fn replay_bound(
    netns: &Netns,
    job: &Job,
    rec: &DumpRecord,
) -> Result<Option<Aggregated>, String> {
    if rec.gone {
        return Ok(None);
    }
    let agg_opts = bound_opts(netns, job);
    replay_dump(rec, &agg_opts)
        .map(|(agg, _)| Some(agg.finish(job.opts.top, &reserved_ports(netns))))
}

/// A recorded dump through the live decoder and aggregator: each part decoded
/// into its own aggregate and the parts merged, as [`parallel_dump`] does.
pub(crate) fn replay_dump(
    rec: &DumpRecord,
    agg: &AggregateOptions,
) -> Result<(SocketAggregate, u64), String> {
    if let Some(e) = &rec.error {
        return Err(e.clone());
    }
    let results = rec
        .parts
        .iter()
        .map(|part| {
            let mut a = SocketAggregate::new(agg.clone());
            sockdiag::replay(part.as_bytes(), |s| a.add(s))
                .map(|st| (a, st.messages))
                .map_err(|e| format!("recorded dump: {e}"))
        })
        .collect();
    merge_parts(results, agg)
}

/// Folds stage two's result into a namespace.
pub fn merge_bound(ns: &mut Netns, out: &Aggregated, started: Instant) {
    let n = out.states.count(TcpState::BoundInactive);
    ns.states.set(TcpState::BoundInactive, n);
    ns.top_local.extend(
        out.top_local
            .iter()
            .filter(|r| r.state == TcpState::BoundInactive)
            .cloned(),
    );
    if let (Some(e), Some(b)) = (ns.ephemeral.as_mut(), out.ephemeral.as_ref()) {
        e.bound_inactive_ports = b.bound_inactive_ports;
    }
    if let Some(d) = ns.dump.as_mut() {
        d.bound_inactive = true;
        d.states.push(TcpState::BoundInactive);
        d.sockets += out.messages;
        d.duration_ms += started.elapsed().as_secs_f64() * 1000.0;
        d.exact &= out.exact;
    }
}

/// Marks a namespace's bound-inactive count as known without a dump.
pub fn bound_known_zero(ns: &mut Netns, why: &str) {
    ns.states.set(TcpState::BoundInactive, 0);
    if let Some(e) = ns.ephemeral.as_mut() {
        e.bound_inactive_ports = Some(0);
    }
    if let Some(d) = ns.dump.as_mut() {
        d.bound_inactive_note = Some(why.to_string());
    }
}

/// ESTABLISHED = CurrEstab − CLOSE-WAIT: the kernel's CurrEstab counts both
/// (tcp_set_state only decrements it when leaving ESTABLISHED or CLOSE-WAIT).
fn derive_established(
    ns: &mut Netns,
    states: &mut StateCounts,
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
    let mut sockets = s.tcp_inuse_total() + s.tcp_tw.unwrap_or(0);
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

/// Where a recorded dump goes: the recorder, the namespace, the stage.
type Tap<'a> = Option<(&'a Recorder, u64, Stage)>;

/// Splits the local-port space into `parts` ranges and dumps each on its own
/// thread with its own netlink socket (opened here, so in this namespace). With a
/// tap, each part's requests and datagrams are recorded (up to the recorder's cap).
fn parallel_dump(
    states: u32,
    parts: usize,
    agg: &AggregateOptions,
    tap: Tap<'_>,
) -> Result<(SocketAggregate, u64), String> {
    let started = Instant::now();
    let (result, raw) = dump_parts(states, parts, agg, tap.map(|t| t.0));
    if let Some((rec, id, stage)) = tap {
        let cut = raw.iter().any(Option::is_none);
        let parts = if cut {
            let kept: usize = raw.iter().flatten().map(RawDump::data_len).sum();
            rec.release(kept as u64);
            Vec::new()
        } else {
            raw.into_iter().flatten().collect()
        };
        let d = DumpRecord {
            parts,
            error: result.as_ref().err().cloned(),
            gone: false,
            cut,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        rec.dump(id, stage, d);
    }
    result
}

/// The dumps of [`parallel_dump`], and each part's recording (`None` where the cap
/// cut it).
#[allow(clippy::type_complexity)]
fn dump_parts(
    states: u32,
    parts: usize,
    agg: &AggregateOptions,
    rec: Option<&Recorder>,
) -> (Result<(SocketAggregate, u64), String>, Vec<Option<RawDump>>) {
    let ranges = port_ranges(parts);
    let mut conns = Vec::with_capacity(parts);
    for _ in 0..parts {
        match SockDiag::open() {
            Ok(c) => conns.push(c),
            Err(e) => return (Err(e.to_string()), Vec::new()),
        }
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
                    let mut raw = rec.map(|_| RawDump::new());
                    let r = match rec {
                        None => conn.dump(&req, |s| a.add(s)),
                        Some(rec) => conn.dump_tapped(&req, |s| a.add(s), &mut |r| {
                            let Some(buf) = raw.as_mut() else { return };
                            let bytes = match r {
                                sockdiag::Raw::Request(b) | sockdiag::Raw::Reply(b) => b,
                            };
                            if rec.reserve(RawDump::frame_len(bytes.len()) as u64) {
                                buf.push(r);
                            } else {
                                rec.release(buf.data_len() as u64);
                                raw = None;
                            }
                        }),
                    };
                    let r = r.map(|st| (a, st.messages)).map_err(|e| e.to_string());
                    (r, raw)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut raws = Vec::with_capacity(results.len());
    let mut dumped = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok((r, raw)) => {
                dumped.push(r);
                raws.push(raw);
            }
            Err(_) => {
                dumped.push(Err("a dump thread panicked".to_string()));
                raws.push(None);
            }
        }
    }
    (merge_parts(dumped, agg), raws)
}

/// Merges the parts of one dump, in part order; the first failure fails it.
fn merge_parts(
    results: Vec<Result<(SocketAggregate, u64), String>>,
    agg: &AggregateOptions,
) -> Result<(SocketAggregate, u64), String> {
    let mut total: Option<SocketAggregate> = None;
    let mut messages = 0;
    for r in results {
        let (a, n) = r?;
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

    #[test]
    fn stage_one_never_asks_for_bound_inactive() {
        let full = CollectOptions::default();
        assert_eq!(main_states(&full), ALL_STATES);
        let stat = CollectOptions {
            mode: DumpMode::WithoutEstablished,
            ..Default::default()
        };
        assert_eq!(main_states(&stat), ALL_STATES & !2);
        let only_bound = CollectOptions {
            states: Some(BOUND_INACTIVE_BIT),
            ..Default::default()
        };
        assert_eq!(main_states(&only_bound), 0);
        assert!(wants_bound(&only_bound) && wants_bound(&full));
        let listen = CollectOptions {
            states: Some(1 << 10),
            ..Default::default()
        };
        assert!(!wants_bound(&listen));
    }

    #[test]
    fn only_a_namespace_proven_empty_skips_its_dump() {
        let with = |inuse, inuse6, tw| Netns {
            sockstat: NetnsSockstat {
                tcp_inuse: inuse,
                tcp6_inuse: inuse6,
                tcp_tw: tw,
                ..Default::default()
            },
            ..Netns::default()
        };
        assert!(holds_no_hashed_socket(&with(Some(0), Some(0), Some(0))));
        assert!(!holds_no_hashed_socket(&with(Some(0), Some(0), Some(1))));
        assert!(!holds_no_hashed_socket(&with(Some(0), Some(2), Some(0))));
        // Unknown is not empty.
        assert!(!holds_no_hashed_socket(&with(Some(0), None, Some(0))));
    }
}
