//! The Snapshot of a recorded collection, built by the live collector's own code
//! (see [`crate::record`]): the files through the same parsers and folds, the
//! datagrams through the same decoder and aggregator, the process scan joined by
//! inode the same way; only the answers come from the recording.

use crate::aggregate::{Aggregated, InodeLookup, ProcessTally, SocketAggregate};
use crate::namespace::{self, Job, NsResult};
use crate::netns::NetnsHandle;
use crate::processes::{self, Naming, ReplayProbe};
use crate::procfs;
use crate::record::{BoundStage, FileResult, NsOutcome, ReadError, RecordedNetns, Recording};
use crate::snapshot::{self, BoundSource};
use crate::{CollectOptions, DumpMode};
use sockmedic_model::{Missing, Netns, Snapshot};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What to keep of a recording (the same choices as the live commands').
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Rows per top-N table.
    pub top: usize,
    /// Only these states (`1 << kernel number`), as `sockets --state`.
    pub states: Option<u32>,
    /// Only sockets with this local or remote port, as `sockets --port`.
    pub port: Option<u16>,
}

fn handle(n: &RecordedNetns) -> NetnsHandle {
    NetnsHandle {
        id: n.id,
        dev: n.dev,
        names: n.names.clone(),
        path: n.path.clone().into(),
        processes: n.processes,
        host: n.host,
        pid: n.pid,
    }
}

/// A recorded file by its relative path; one the recording does not have reads as
/// absent (a sysctl a newer sockmedic reads and an older one did not record).
fn lookup(files: &BTreeMap<String, FileResult>, name: &str) -> FileResult {
    files.get(name).cloned().unwrap_or_else(|| {
        Err(ReadError {
            message: format!("/{name}: not in the recording"),
            not_found: true,
        })
    })
}

/// Rebuilds the Snapshot of a recorded collection.
pub fn replay(rec: &Recording, ro: &ReplayOptions) -> Snapshot {
    let states = match (ro.states, rec.states) {
        (Some(a), Some(b)) => Some(a & b),
        (a, b) => a.or(b),
    };
    let opts = CollectOptions {
        netns: rec.netns_selector.clone(),
        mode: rec.mode,
        states,
        port: ro.port.or(rec.port),
        top: ro.top,
        parts: None,
        processes: rec.processes,
        cmdline: rec.cmdline,
        so_error: rec.so_error,
        ..CollectOptions::default()
    };
    let mut snap = Snapshot {
        source: rec.source.clone(),
        ..Snapshot::default()
    };
    snap.missing.extend(rec.discovery_missing.iter().cloned());
    snap.missing.extend(rec.naming_missing.iter().cloned());
    let naming = Naming::from_record(&rec.kube, rec.cgroup_ids.as_ref());

    let host_sysctls = match &rec.host_sysctls_error {
        Some(e) => Err(e.clone()),
        None => Ok(snapshot::read_sysctls(
            procfs::HOST_SYSCTLS,
            &mut |name: &str| lookup(&rec.host_files, name),
        )),
    };
    snap.host = snapshot::fold_host(
        lookup(&rec.host_files, "proc/net/sockstat").map_err(|e| e.message),
        host_sysctls,
        rec.page_size,
        &mut snap.missing,
    );
    let scanned = rec.scan.as_ref().filter(|_| rec.processes);
    if let Some(ps) = scanned {
        snap.missing.extend(ps.missing.iter().cloned());
    }
    let job = Job {
        opts: opts.clone(),
        join: scanned.map(|ps| Arc::new(InodeLookup::new(ps.sockets.clone(), ps.procs.len()))),
    };

    let mut tally: Option<ProcessTally> = None;
    for n in rec.namespaces.iter().filter(|n| n.selected) {
        let h = handle(n);
        let result = match &n.outcome {
            NsOutcome::Gone => continue,
            NsOutcome::Failed(why) => namespace::failed(&h, why),
            NsOutcome::Read => {
                let mut read = |name: &str| lookup(&n.files, name);
                let dump = |_states, _parts, agg: &crate::aggregate::AggregateOptions| match &n.main
                {
                    // Cut: the figures come from the live Snapshot below.
                    Some(d) if d.cut => Ok((SocketAggregate::new(agg.clone()), 0)),
                    Some(d) => namespace::replay_dump(d, agg),
                    None => Err("the recording has no dump of this namespace".to_string()),
                };
                namespace::fold_inside(
                    namespace::blank_netns(&h),
                    &namespace::label(&h),
                    &job,
                    &mut read,
                    &dump,
                )
            }
        };
        let NsResult {
            netns,
            missing,
            tally: t,
        } = result;
        snap.netns.push(netns);
        snap.missing.extend(missing);
        merge_tally(&mut tally, t);
    }
    if namespace::wants_bound(&opts)
        && opts.mode != DumpMode::CountersOnly
        && rec.bound != BoundStage::NotRun
    {
        let source = ReplayBound { rec };
        let (_, t) = snapshot::bound_stage(&mut snap, &job, &source);
        merge_tally(&mut tally, t);
    }
    for ns in &mut snap.netns {
        let Some(r) = rec.netns(ns.id) else { continue };
        ns.pod = r.pod.clone();
        // The dump's cost is the live one, not the replay's (nothing dumped: none).
        if let Some(d) = ns.dump.as_mut() {
            d.duration_ms = r.main.as_ref().map_or(0.0, |m| m.duration_ms)
                + r.bound.as_ref().map_or(0.0, |b| b.duration_ms);
        }
    }
    let cut = rec.cut_netns();
    take_cut_from_live(&mut snap, rec, &cut);
    processes::name_orphan_owners(&mut snap.netns, &naming);
    if let Some(ps) = scanned {
        snap.processes = processes::build(
            ps,
            tally.as_ref(),
            &mut snap.netns,
            &naming,
            opts.cmdline,
            opts.so_error,
            &ReplayProbe(&rec.probes),
        );
        if !cut.is_empty() {
            if let Some(live) = &rec.live {
                snap.processes = live.processes.clone();
            }
        }
    }
    if opts.netns.is_none() && opts.mode != DumpMode::CountersOnly {
        snap.host.closed = crate::closed_sockets_seen_from(&snap, rec.discovery_complete, rec.here);
    }
    snap
}

/// Namespaces whose raw socket data was over the cap: their dump figures are the
/// live aggregate's (exact counts, top tables of the live `--top`).
fn take_cut_from_live(snap: &mut Snapshot, rec: &Recording, cut: &[u64]) {
    for id in cut {
        let Some(ns) = snap.netns.iter_mut().find(|n| n.id == *id) else {
            continue;
        };
        let live = rec
            .live
            .as_ref()
            .and_then(|l| l.netns.iter().find(|n| n.id == *id));
        let why = match live {
            Some(l) => {
                copy_dump_figures(ns, l);
                "not kept: the bundle's cap on raw socket data was reached; counts and top tables are the live collection's (exact)"
            }
            None => "not kept: the bundle's cap on raw socket data was reached, and it has no live snapshot",
        };
        snap.missing.push(Missing::new(
            format!("raw sockets of network namespace {}", ns.name()),
            why,
        ));
    }
}

fn copy_dump_figures(ns: &mut Netns, live: &Netns) {
    ns.states = live.states;
    ns.listeners = live.listeners.clone();
    ns.top_local = live.top_local.clone();
    ns.top_remote = live.top_remote.clone();
    ns.ephemeral = live.ephemeral.clone();
    ns.orphans = live.orphans;
    ns.queued = live.queued;
    ns.orphan_owners = live.orphan_owners.clone();
    ns.dump = live.dump.clone();
}

fn merge_tally(total: &mut Option<ProcessTally>, t: Option<ProcessTally>) {
    match (total.as_mut(), t) {
        (Some(total), Some(t)) => total.merge(t),
        (None, Some(t)) => *total = Some(t),
        _ => {}
    }
}

/// Stage two as it went live.
struct ReplayBound<'a> {
    rec: &'a Recording,
}

impl BoundSource for ReplayBound<'_> {
    fn possible(&self, _: &Snapshot) -> bool {
        self.rec.bound != BoundStage::KnownZero
    }
    fn supported(&self) -> bool {
        self.rec.bound != BoundStage::Unsupported
    }
    fn namespaces(&self) -> Vec<u64> {
        self.rec
            .namespaces
            .iter()
            .filter(|n| n.selected)
            .map(|n| n.id)
            .collect()
    }
    fn dump(&self, id: u64, ns: &Netns, job: &Job) -> Result<Option<Aggregated>, String> {
        match self.rec.netns(id).and_then(|n| n.bound.as_ref()) {
            Some(d) if d.cut => Ok(None),
            Some(d) => namespace::replay_bound(ns, job, d),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Recorder, DEFAULT_MAX_SOCKET_BYTES};
    use std::net::{TcpListener, TcpStream};

    fn without_timings(mut s: Snapshot) -> Snapshot {
        for ns in &mut s.netns {
            if let Some(d) = ns.dump.as_mut() {
                d.duration_ms = 0.0;
            }
        }
        s
    }

    /// The replay of a recording is the Snapshot the recorded collection built:
    /// same files, same datagrams, same code.
    #[test]
    fn a_replayed_recording_is_the_live_snapshot() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(l.local_addr().unwrap()).unwrap())
            .collect();
        let rec = Recorder::new(DEFAULT_MAX_SOCKET_BYTES);
        let opts = CollectOptions {
            netns: Some("self".into()),
            processes: true,
            record: Some(rec.clone()),
            ..CollectOptions::default()
        };
        let live = crate::collect(&opts).unwrap();
        let r = rec.take();
        assert!(r.socket_bytes > 0, "datagrams were recorded");
        let ro = ReplayOptions {
            top: 10,
            states: None,
            port: None,
        };
        let replayed = replay(&r, &ro);
        let (live, replayed) = (without_timings(live), without_timings(replayed));
        assert_eq!(replayed.source, live.source);
        assert_eq!(replayed.host, live.host);
        assert_eq!(replayed.netns, live.netns);
        assert_eq!(replayed.processes, live.processes);
        assert_eq!(replayed.missing, live.missing);
    }

    /// Over the cap, a namespace's raw data is dropped whole and its figures come
    /// from the live Snapshot.
    #[test]
    fn a_cut_namespace_takes_the_live_figures() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let rec = Recorder::new(10);
        let opts = CollectOptions {
            netns: Some("self".into()),
            record: Some(rec.clone()),
            ..CollectOptions::default()
        };
        let live = crate::collect(&opts).unwrap();
        let mut r = rec.take();
        assert_eq!(r.socket_bytes, 0);
        let cut = r.cut_netns();
        assert_eq!(cut.len(), 1, "the namespace was cut");
        assert!(r
            .netns(cut[0])
            .unwrap()
            .main
            .as_ref()
            .unwrap()
            .parts
            .is_empty());
        r.live = Some(live.clone());
        let ro = ReplayOptions {
            top: 10,
            states: None,
            port: None,
        };
        let replayed = replay(&r, &ro);
        assert_eq!(replayed.netns[0].states, live.netns[0].states);
        assert!(replayed
            .missing
            .iter()
            .any(|m| m.why.contains("cap on raw socket data")));
    }
}
