//! Who holds it: the process scan joined with the sock_diag dumps, and each
//! process, namespace and orphan named by its container and pod.

use crate::aggregate::{ProcessTally, STATE_SLOTS};
use crate::cgroup::{self, CgroupIds, KubeNames};
use crate::netns::NetnsHandle;
use crate::procscan::{self, ProcInfo, ProcScan, SocketCheck, SocketProto};
use crate::record::{Probe, Recorder};
use sockmedic_model::{Missing, Netns, Process, StateCounts, TcpState, UnhashedCheck};
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

/// CLOSE sockets per process whose SO_ERROR is read with `--so-error` (it clears the
/// error, so no more than needed to say why the connections failed).
const ERRORS_READ_PER_PROCESS: u64 = 8;

/// A process is reported when it holds sockets or uses this share of its fd limit.
const FD_USE_REPORTED: f64 = 0.5;

/// Where names come from.
pub struct Naming {
    pub kube: KubeNames,
    pub cgroup_ids: Option<CgroupIds>,
}

impl Naming {
    pub fn read(pods_dir: &Path, containers_dir: &Path, missing: &mut Vec<Missing>) -> Naming {
        let kube = KubeNames::read(pods_dir, containers_dir);
        for p in kube.problems() {
            missing.push(Missing::new(
                "pod and container names (kubelet's log directories)",
                p.clone(),
            ));
        }
        let cgroup_ids = match CgroupIds::read() {
            Ok(ids) => Some(ids),
            Err(why) => {
                missing.push(Missing::new(
                    "cgroup v2 ids (to attribute orphans to containers)",
                    why,
                ));
                None
            }
        };
        Naming { kube, cgroup_ids }
    }
}

impl Naming {
    /// Names from a recording (`None` cgroup ids: there were none).
    pub fn from_record(
        kube: &crate::record::KubeRecord,
        cgroups: Option<&crate::record::CgroupRecord>,
    ) -> Naming {
        Naming {
            kube: KubeNames::from_record(kube),
            cgroup_ids: cgroups.map(CgroupIds::from_record),
        }
    }
}

/// The questions asked about a socket fd that no dump accounted for.
pub trait SocketProbe: Sync {
    fn proto(&self, pid: u32, fd: u32) -> io::Result<SocketProto>;
    fn still_holds(&self, pid: u32, fd: u32, inode: u32) -> bool;
    fn check(&self, pid: u32, fd: u32, read_error: bool) -> io::Result<SocketCheck>;
}

/// Asks the live kernel.
pub struct LiveProbe;

impl SocketProbe for LiveProbe {
    fn proto(&self, pid: u32, fd: u32) -> io::Result<SocketProto> {
        procscan::socket_proto(pid, fd)
    }
    fn still_holds(&self, pid: u32, fd: u32, inode: u32) -> bool {
        procscan::still_holds(pid, fd, inode)
    }
    fn check(&self, pid: u32, fd: u32, read_error: bool) -> io::Result<SocketCheck> {
        procscan::check_socket(pid, fd, read_error)
    }
}

/// Asks the live kernel and records the answers.
pub struct RecordingProbe<'a>(pub &'a Recorder);

impl SocketProbe for RecordingProbe<'_> {
    fn proto(&self, pid: u32, fd: u32) -> io::Result<SocketProto> {
        let r = procscan::socket_proto(pid, fd);
        let kept = match &r {
            Ok(p) => Ok(p.name().to_string()),
            Err(e) => Err(e.to_string()),
        };
        self.0.probe(pid, fd, |p| p.proto = Some(kept));
        r
    }
    fn still_holds(&self, pid: u32, fd: u32, inode: u32) -> bool {
        let r = procscan::still_holds(pid, fd, inode);
        self.0.probe(pid, fd, |p| p.still_holds = Some(r));
        r
    }
    fn check(&self, pid: u32, fd: u32, read_error: bool) -> io::Result<SocketCheck> {
        let r = procscan::check_socket(pid, fd, read_error);
        let kept = match &r {
            Ok(c) => Ok(*c),
            Err(e) => Err(e.to_string()),
        };
        self.0.probe(pid, fd, |p| p.check = Some(kept));
        r
    }
}

/// Answers from a recording: what the live probes answered then. A question that
/// was not asked then has no answer (an error).
pub struct ReplayProbe<'a>(pub &'a BTreeMap<(u32, u32), Probe>);

fn not_recorded() -> io::Error {
    io::Error::other("not recorded")
}

impl SocketProbe for ReplayProbe<'_> {
    fn proto(&self, pid: u32, fd: u32) -> io::Result<SocketProto> {
        match self.0.get(&(pid, fd)).and_then(|p| p.proto.as_ref()) {
            Some(Ok(name)) => Ok(SocketProto::from_kernel_name(name.as_bytes())),
            Some(Err(e)) => Err(io::Error::other(e.clone())),
            None => Err(not_recorded()),
        }
    }
    fn still_holds(&self, pid: u32, fd: u32, _inode: u32) -> bool {
        self.0
            .get(&(pid, fd))
            .and_then(|p| p.still_holds)
            .unwrap_or(false)
    }
    fn check(&self, pid: u32, fd: u32, _read_error: bool) -> io::Result<SocketCheck> {
        match self.0.get(&(pid, fd)).and_then(|p| p.check.as_ref()) {
            Some(Ok(c)) => Ok(*c),
            Some(Err(e)) => Err(io::Error::other(e.clone())),
            None => Err(not_recorded()),
        }
    }
}

/// Container and pod of a cgroup path.
struct Owner {
    cgroup: Option<String>,
    container: Option<String>,
    container_name: Option<String>,
    pod: Option<String>,
    pod_uid: Option<String>,
}

fn owner_of(path: Option<String>, naming: &Naming) -> Owner {
    let ident = path.as_deref().map(cgroup::identify).unwrap_or_default();
    let pod = naming
        .kube
        .pod_of(&ident)
        .map(str::to_string)
        .or_else(|| ident.pod_uid.clone());
    let container_name = ident
        .container_id
        .as_deref()
        .and_then(|id| naming.kube.container(id))
        .map(str::to_string);
    Owner {
        cgroup: path,
        container: ident.container_id,
        container_name,
        pod,
        pod_uid: ident.pod_uid,
    }
}

/// Builds the `processes` section and names namespaces and orphans after their
/// pods. `dumped` are the namespaces whose sockets were dumped: a TCP fd of a
/// process in one of them that no dump returned is in no table (UNHASHED).
pub fn build(
    scan: &ProcScan,
    tally: Option<&ProcessTally>,
    netns: &mut [Netns],
    naming: &Naming,
    cmdline: bool,
    read_error: bool,
    probe: &dyn SocketProbe,
) -> Vec<Process> {
    let dumped: HashSet<u64> = netns
        .iter()
        .filter(|n| n.dump.is_some())
        .map(|n| n.id)
        .collect();
    let unfound = unfound_by_process(scan, tally);
    let mut out = Vec::new();
    for (idx, info) in scan.procs.iter().enumerate() {
        let in_dumped = info.netns.is_some_and(|id| dumped.contains(&id));
        if !in_dumped && !info.thread_netns.iter().any(|id| dumped.contains(id)) {
            continue;
        }
        if !reported(info) {
            continue;
        }
        let mut p = base_process(info, cmdline, naming);
        if let Some(t) = tally {
            fill_found(&mut p, t, idx);
        }
        classify_unfound(
            &mut p,
            info,
            unfound.get(&idx).map(Vec::as_slice).unwrap_or(&[]),
            read_error,
            probe,
        );
        out.push(p);
    }
    attach_listeners(&mut out, scan, netns);
    out
}

fn reported(info: &ProcInfo) -> bool {
    let near_limit = match info.fd_soft {
        Some(l) if l > 0 && l != u64::MAX => info.fds as f64 >= l as f64 * FD_USE_REPORTED,
        _ => false,
    };
    info.socket_fds > 0 || near_limit
}

fn base_process(info: &ProcInfo, cmdline: bool, naming: &Naming) -> Process {
    let owner = owner_of(
        info.cgroup.as_deref().and_then(cgroup::process_cgroup_path),
        naming,
    );
    Process {
        pid: info.pid,
        comm: info.comm.clone(),
        cmdline: cmdline.then(|| info.cmdline.clone()),
        uid: Some(info.uid),
        netns: info.netns,
        thread_netns: info.thread_netns.clone(),
        cgroup: owner.cgroup,
        container: owner.container,
        container_name: owner.container_name,
        pod: owner.pod,
        pod_uid: owner.pod_uid,
        fds: info.fds_read.then_some(info.fds),
        fd_limit: info.fd_soft,
        fd_limit_hard: info.fd_hard,
        socket_fds: info.fds_read.then_some(info.socket_fds),
        ..Process::default()
    }
}

/// The socket fds (fd, inode) that no dump returned, per process index.
fn unfound_by_process(
    scan: &ProcScan,
    tally: Option<&ProcessTally>,
) -> HashMap<usize, Vec<(u32, u32)>> {
    let mut out: HashMap<usize, Vec<(u32, u32)>> = HashMap::new();
    for (pos, s) in scan.sockets.iter().enumerate() {
        if !tally.is_some_and(|t| t.is_found(pos)) {
            out.entry(s.proc_idx as usize)
                .or_default()
                .push((s.fd, s.inode));
        }
    }
    out
}

/// The states of the sockets the dumps returned for process `idx`.
fn fill_found(p: &mut Process, t: &ProcessTally, idx: usize) {
    let mut states = StateCounts::default();
    let mut found = 0;
    for slot in 1..STATE_SLOTS {
        let Some(state) = TcpState::from_kernel(slot as u8) else {
            continue;
        };
        let n = t.states[idx][slot] as u64;
        found += n;
        if state != TcpState::Close && (n > 0 || state == TcpState::BoundInactive) {
            states.add(state, n);
        }
    }
    let v6 = t.v6[idx] as u64;
    if found > v6 {
        p.sockets_by_proto.insert("TCP".into(), found - v6);
    }
    if v6 > 0 {
        p.sockets_by_proto.insert("TCPv6".into(), v6);
    }
    p.bound_ports = t.bound_ports[idx].clone();
    p.states = states;
}

/// Socket fds no dump returned. Their protocol says what they are; a TCP one the
/// process still holds is duplicated with `pidfd_getfd` and asked for TCP_INFO:
/// state CLOSE is UNHASHED (in no table), any other state is a socket living in a
/// namespace that was not dumped (`--netns`, or one with no handle left), counted
/// under that state.
fn classify_unfound(
    p: &mut Process,
    info: &ProcInfo,
    fds: &[(u32, u32)],
    read_error: bool,
    probe: &dyn SocketProbe,
) {
    let mut check = UnhashedCheck::default();
    let mut tcp_seen = 0;
    for &(fd, inode) in fds {
        let Ok(proto) = probe.proto(info.pid, fd) else {
            continue;
        };
        let tcp = matches!(proto, SocketProto::Tcp | SocketProto::Tcp6);
        // Closed (and the fd number reused) between the scan and the dump: not ours.
        if tcp && !probe.still_holds(info.pid, fd, inode) {
            continue;
        }
        *p.sockets_by_proto
            .entry(proto.name().to_string())
            .or_insert(0) += 1;
        if tcp {
            tcp_seen += 1;
            let errors_wanted = read_error && check.close < ERRORS_READ_PER_PROCESS;
            confirm(p, &mut check, info.pid, fd, errors_wanted, probe);
        }
    }
    let bound = p.states.count(TcpState::BoundInactive);
    let unhashed = p.states.count(TcpState::Unhashed);
    p.unhashed = Some(unhashed + bound);
    if tcp_seen > 0 {
        p.unhashed_check = Some(check);
    }
}

/// Duplicates one socket with `pidfd_getfd` and counts it by its real state. When
/// that is impossible (no ptrace access), it is taken for UNHASHED, and the check
/// says why it could not confirm.
fn confirm(
    p: &mut Process,
    check: &mut UnhashedCheck,
    pid: u32,
    fd: u32,
    read_error: bool,
    probe: &dyn SocketProbe,
) {
    match probe.check(pid, fd, read_error) {
        Ok(c) if c.tcp_state == procscan::TCP_CLOSE => {
            check.checked += 1;
            check.close += 1;
            p.states.add(TcpState::Unhashed, 1);
            if c.so_error != 0 {
                *check.errors.entry(errno_name(c.so_error)).or_insert(0) += 1;
            }
            if c.local_port != 0
                && check.last_ports.len() < 8
                && !check.last_ports.contains(&c.local_port)
            {
                check.last_ports.push(c.local_port);
            }
        }
        Ok(c) => {
            check.checked += 1;
            check.in_other_netns += 1;
            if let Some(state) = TcpState::from_kernel(c.tcp_state) {
                p.states.add(state, 1);
            }
        }
        Err(e) => {
            p.states.add(TcpState::Unhashed, 1);
            check
                .unavailable
                .get_or_insert_with(|| format!("pidfd_getfd: {e}"));
        }
    }
}

/// The names of the errors a failed connection leaves in SO_ERROR.
fn errno_name(e: i32) -> String {
    match e {
        32 => "EPIPE".into(),
        101 => "ENETUNREACH".into(),
        103 => "ECONNABORTED".into(),
        104 => "ECONNRESET".into(),
        110 => "ETIMEDOUT".into(),
        111 => "ECONNREFUSED".into(),
        113 => "EHOSTUNREACH".into(),
        n => format!("errno {n}"),
    }
}

/// Gives each process its listening sockets (matched by inode).
fn attach_listeners(procs: &mut [Process], scan: &ProcScan, netns: &[Netns]) {
    let by_pid: HashMap<u32, usize> = procs.iter().enumerate().map(|(i, p)| (p.pid, i)).collect();
    for l in netns.iter().flat_map(|n| n.listeners.iter()) {
        for s in scan.sockets.lookup(l.inode) {
            let pid = scan.procs[s.proc_idx as usize].pid;
            if let Some(&i) = by_pid.get(&pid) {
                if !procs[i].listeners.iter().any(|x| x.inode == l.inode) {
                    procs[i].listeners.push(l.clone());
                }
            }
        }
    }
}

/// Names each namespace but the host's after the pod (or container) of a process
/// inside, first, before anything is selected, so that `--netns` takes a pod name.
/// Returns the pod of each namespace that has one.
pub fn name_by_owner(namespaces: &mut [NetnsHandle], naming: &Naming) -> HashMap<u64, String> {
    let mut pods = HashMap::new();
    for ns in namespaces.iter_mut().filter(|n| !n.host) {
        let Some(pid) = ns.pid else { continue };
        let Ok(path) = cgroup::read_process_cgroup_path(pid) else {
            continue;
        };
        let owner = owner_of(path, naming);
        let name = match (&owner.pod, &owner.container) {
            (Some(pod), _) => format!("pod {pod}"),
            (None, Some(c)) => format!("container {c}"),
            _ => continue,
        };
        if let Some(pod) = owner.pod {
            pods.insert(ns.id, pod);
        }
        if !ns.names.contains(&name) {
            ns.names.insert(0, name);
        }
    }
    pods
}

/// Orphans have no process: their creating cgroup names the container and pod.
pub fn name_orphan_owners(netns: &mut [Netns], naming: &Naming) {
    let Some(ids) = &naming.cgroup_ids else {
        return;
    };
    for o in netns.iter_mut().flat_map(|n| n.orphan_owners.iter_mut()) {
        let owner = owner_of(ids.path(o.cgroup_id).map(str::to_string), naming);
        o.cgroup = owner.cgroup;
        o.container = owner.container;
        o.pod = owner.pod;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(104), "ECONNRESET");
        assert_eq!(errno_name(111), "ECONNREFUSED");
        assert_eq!(errno_name(5), "errno 5");
    }
}
