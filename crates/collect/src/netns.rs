//! Network namespaces: every one reachable from here, and running code inside one.
//!
//! Two kernel facts shape this module (kernel-notes §4.3, §10):
//! - `/proc/PID/net/*` shows the netns of PID's *thread-group leader*, so a thread that
//!   called setns must read `/proc/thread-self/net/*`; `/proc/self/net` (and `/proc/net`)
//!   still shows the leader's namespace.
//! - `/proc/sys/net/*` resolves in the netns of the thread that opens it, and a netlink
//!   socket belongs to the netns of the thread that creates it.

use sockmedic_model::Missing;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// init_net's fixed nsfs inode on recent kernels (`NET_NS_INIT_INO`, 0xEFFFFFF9).
/// Older kernels number it dynamically, from 0xF0000000 up, so this value can never
/// name another namespace.
const NET_NS_INIT_INO: u64 = 0xEFFF_FFF9;
/// The initial PID namespace's fixed inode (`PROC_PID_INIT_INO`, since 3.8).
const PID_NS_INIT_INO: u64 = 0xEFFF_FFFC;

/// One network namespace and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetnsHandle {
    /// nsfs inode (`readlink` gives `net:[ID]`).
    pub id: u64,
    /// st_dev of the nsfs inode; (dev, id) is the identity.
    pub dev: u64,
    /// Best first: `host`, `ip netns` names, other nsfs mount paths, then
    /// `pid N (comm)` for the lowest pid inside (`pid N (comm) thread T` when only a
    /// thread of N is inside).
    pub names: Vec<String>,
    /// Something to open for setns: `/run/netns/NAME`, a mount path, or
    /// `/proc/PID/ns/net`, `/proc/PID/task/TID/ns/net`, `/proc/PID/root/MOUNT`.
    pub path: PathBuf,
    /// Processes (thread groups) with the leader or any thread in this netns.
    pub processes: u64,
    pub host: bool,
    /// A process whose thread-group leader is inside, so `/proc/PID/net/*` shows
    /// this netns without setns.
    pub pid: Option<u32>,
}

/// The result of [`discover`]: namespaces (host first, then by id) and what could not
/// be seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetnsScan {
    pub namespaces: Vec<NetnsHandle>,
    pub missing: Vec<Missing>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {id} at {}: {source}", path.display())]
    Open {
        id: u64,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} is now network namespace {found}, not {id} (its process exited and the pid was reused?)", path.display())]
    Changed { id: u64, path: PathBuf, found: u64 },
    #[error("cannot enter network namespace {id}: {source}{}", enter_hint(source))]
    Enter { id: u64, source: io::Error },
    #[error("cannot start a thread for network namespace {id}: {source}")]
    Thread { id: u64, source: io::Error },
    #[error("code run in network namespace {id} panicked: {message}")]
    Panicked { id: u64, message: String },
    #[error("cannot find the network namespace of {what}: {source}")]
    Lookup { what: String, source: io::Error },
    #[error("no network namespace matches {selector:?} (try a name, pid or inode from the list, or \"self\")")]
    NoMatch { selector: String },
}

impl NetnsError {
    /// The namespace no longer exists (its last process exited, or it was deleted)
    /// between discovery and entering it: not a failure to report.
    pub fn is_gone(&self) -> bool {
        let gone = |e: &io::Error| {
            e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc_esrch())
        };
        match self {
            NetnsError::Open { source, .. } => gone(source),
            NetnsError::Changed { .. } => true,
            _ => false,
        }
    }
}

/// ESRCH, "no such process".
const fn libc_esrch() -> i32 {
    3
}

fn enter_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (setns needs CAP_SYS_ADMIN: run as root)"
    } else {
        ""
    }
}

/// (st_dev, st_ino) of an nsfs inode.
type Key = (u64, u64);

fn ns_key(path: impl AsRef<Path>) -> io::Result<Key> {
    let m = fs::metadata(path)?; // stat follows the magic link to the nsfs inode
    Ok((m.dev(), m.ino()))
}

/// The netns of the calling thread (not of the process: threads can setns apart).
pub fn current_netns_id() -> io::Result<u64> {
    Ok(current_netns_key()?.1)
}

fn current_netns_key() -> io::Result<Key> {
    ns_key("/proc/thread-self/ns/net")
}

/// Walks `/proc/*/ns/net`, `/proc/*/task/*/ns/net`, `/run/netns/*` and the nsfs mounts
/// of every mount namespace; dedupes by (dev, inode); host first, then by id.
/// Vanished pids are skipped silently; other failures (permission, as non-root) become
/// one summarized [`Missing`] per reason, not one per pid. Namespaces held only by an
/// open fd or only by sockets are not found (kernel-notes §10).
pub fn discover() -> NetnsScan {
    let mut walk = Walk::default();
    walk.processes();
    walk.run_netns();
    walk.mounts();
    walk.finish()
}

/// What one namespace was reached through, gathered during the walk.
#[derive(Default)]
struct Found {
    ip_names: BTreeSet<String>,
    ip_path: Option<PathBuf>,
    /// nsfs mount paths outside /run/netns, as seen in their mount namespace.
    mount_names: BTreeSet<String>,
    own_mount: Option<PathBuf>,
    /// A mount in another mount namespace, via /proc/PID/root.
    other_mount: Option<PathBuf>,
    /// Lowest pid whose thread-group leader is inside.
    leader: Option<u32>,
    /// Lowest (pid, tid) with only a thread inside.
    thread: Option<(u32, u32)>,
    processes: u64,
}

#[derive(Default)]
struct Walk {
    found: HashMap<Key, Found>,
    /// Why a pid's netns could not be read → how many pids.
    failed: BTreeMap<String, u64>,
    /// One pid per mount namespace other than ours, to read its mountinfo.
    mnt_ns: BTreeMap<Key, u32>,
    missing: Vec<Missing>,
}

impl Walk {
    fn processes(&mut self) {
        let own_mnt = ns_key("/proc/self/ns/mnt").ok();
        let dir = match fs::read_dir("/proc") {
            Ok(d) => d,
            Err(e) => {
                return self.missing.push(Missing::new(
                    "network namespaces of processes",
                    format!("/proc: {e}"),
                ))
            }
        };
        let pids = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
        for pid in pids {
            self.process(pid);
            if let Ok(mnt) = ns_key(format!("/proc/{pid}/ns/mnt")) {
                if Some(mnt) != own_mnt {
                    self.mnt_ns.entry(mnt).or_insert(pid);
                }
            }
        }
    }

    fn process(&mut self, pid: u32) {
        let leader = match ns_key(format!("/proc/{pid}/ns/net")) {
            Ok(k) => k,
            Err(e) => return self.fail(&e),
        };
        let f = self.found.entry(leader).or_default();
        f.leader = Some(f.leader.map_or(pid, |p| p.min(pid)));
        // A process counts once for each netns any of its threads is in.
        let mut seen = vec![leader];
        for tid in tasks(pid).into_iter().filter(|&t| t != pid) {
            let Ok(k) = ns_key(format!("/proc/{pid}/task/{tid}/ns/net")) else {
                continue;
            };
            if !seen.contains(&k) {
                seen.push(k);
                let f = self.found.entry(k).or_default();
                f.thread = Some(f.thread.map_or((pid, tid), |t| t.min((pid, tid))));
            }
        }
        for k in seen {
            self.found.entry(k).or_default().processes += 1;
        }
    }

    fn fail(&mut self, e: &io::Error) {
        if let Some(why) = failure_reason(e, is_root()) {
            *self.failed.entry(why).or_default() += 1;
        }
    }

    /// `ip netns` names: nsfs bind mounts in /run/netns. A file there that is not
    /// an nsfs inode is left over from a failed `ip netns add`.
    fn run_netns(&mut self) {
        let dir = match fs::read_dir("/run/netns") {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                return self.missing.push(Missing::new(
                    "ip netns namespaces",
                    format!("/run/netns: {e}"),
                ))
            }
        };
        let Ok(nsfs_dev) = current_netns_key().map(|k| k.0) else {
            return;
        };
        for entry in dir.flatten() {
            let (path, name) = (
                entry.path(),
                entry.file_name().to_string_lossy().into_owned(),
            );
            match ns_key(&path) {
                Ok(k) if k.0 == nsfs_dev => {
                    let f = self.found.entry(k).or_default();
                    f.ip_names.insert(name);
                    f.ip_path.get_or_insert(path);
                }
                _ => {}
            }
        }
    }

    /// nsfs mounts of net namespaces (`/var/run/docker/netns/*`, ...) from our
    /// mountinfo and one per other mount namespace. `ip netns exec` runs its command
    /// in a new mount namespace that still shows /run/netns: such mounts name the
    /// netns by its bare `ip netns` name.
    fn mounts(&mut self) {
        if let Ok(text) = fs::read_to_string("/proc/self/mountinfo") {
            for m in parse_nsfs_mounts(&text) {
                if ip_netns_name(&m.mount_point).is_none() {
                    let f = self.found.entry((m.dev, m.ino)).or_default();
                    f.own_mount
                        .get_or_insert_with(|| PathBuf::from(&m.mount_point));
                    f.mount_names.insert(m.mount_point);
                }
            }
        }
        for (_, pid) in std::mem::take(&mut self.mnt_ns) {
            let Ok(text) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
                continue;
            };
            for m in parse_nsfs_mounts(&text) {
                let f = self.found.entry((m.dev, m.ino)).or_default();
                f.other_mount.get_or_insert_with(|| {
                    PathBuf::from(format!("/proc/{pid}/root{}", m.mount_point))
                });
                match ip_netns_name(&m.mount_point) {
                    Some(name) => f.ip_names.insert(name.to_string()),
                    None => f.mount_names.insert(m.mount_point),
                };
            }
        }
    }

    fn finish(mut self) -> NetnsScan {
        let host = self.host_key();
        let host_key = host.as_ref().ok().copied();
        let mut namespaces: Vec<NetnsHandle> = self
            .found
            .into_iter()
            .filter_map(|(k, f)| handle(k, f, host_key))
            .collect();
        namespaces.sort_by_key(|n| (!n.host, n.id));
        self.missing.extend(summarize_failures(&self.failed));
        if let Err(why) = host {
            self.missing
                .push(Missing::new("which network namespace is the host's", why));
        }
        NetnsScan {
            namespaces,
            missing: self.missing,
        }
    }

    /// init_net: the fixed inode where the kernel has one; otherwise pid 1's netns,
    /// but only if our PID namespace is the initial one (else pid 1 is a container's).
    fn host_key(&self) -> Result<Key, String> {
        if let Some(k) = self.found.keys().find(|k| k.1 == NET_NS_INIT_INO) {
            return Ok(*k);
        }
        match ns_key("/proc/self/ns/pid") {
            Ok((_, ino)) if ino == PID_NS_INIT_INO => {
                ns_key("/proc/1/ns/net").map_err(|e| format!("/proc/1/ns/net: {e}"))
            }
            Ok(_) => Err("running in a PID namespace: pid 1 is not the host's init".to_string()),
            Err(e) => Err(format!("/proc/self/ns/pid: {e}")),
        }
    }
}

fn handle(key: Key, f: Found, host: Option<Key>) -> Option<NetnsHandle> {
    let is_host = host == Some(key);
    let mut names: Vec<String> = Vec::new();
    if is_host {
        names.push("host".to_string());
    }
    names.extend(f.ip_names.iter().cloned());
    names.extend(f.mount_names);
    // Every process is in the host's namespace: a pid says nothing there.
    if !is_host {
        if let Some(pid) = f.leader {
            names.push(format!("pid {pid}{}", comm_suffix(pid)));
        } else if let Some((pid, tid)) = f.thread {
            names.push(format!("pid {pid}{} thread {tid}", comm_suffix(pid)));
        }
    }
    let path = f
        .ip_path
        .or(f.own_mount)
        .or_else(|| f.leader.map(|p| PathBuf::from(format!("/proc/{p}/ns/net"))))
        .or_else(|| {
            f.thread
                .map(|(p, t)| PathBuf::from(format!("/proc/{p}/task/{t}/ns/net")))
        })
        .or(f.other_mount)?;
    Some(NetnsHandle {
        id: key.1,
        dev: key.0,
        names,
        path,
        processes: f.processes,
        host: is_host,
        pid: f.leader,
    })
}

fn comm_suffix(pid: u32) -> String {
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!(" ({})", comm.trim_end_matches('\n')),
        Err(_) => String::new(),
    }
}

fn tasks(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `/run/netns/NAME` → `NAME`.
fn ip_netns_name(mount_point: &str) -> Option<&str> {
    let name = ["/run/netns/", "/var/run/netns/"]
        .iter()
        .find_map(|dir| mount_point.strip_prefix(dir))?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Why a pid's netns could not be read, or None if the pid simply went away (or is a
/// zombie, which has no namespaces left).
fn failure_reason(e: &io::Error, root: bool) -> Option<String> {
    const ESRCH: i32 = 3;
    match e.kind() {
        io::ErrorKind::NotFound => None,
        _ if e.raw_os_error() == Some(ESRCH) => None,
        io::ErrorKind::PermissionDenied if !root => Some("permission denied: not root".to_string()),
        io::ErrorKind::PermissionDenied => Some("permission denied, even as root".to_string()),
        _ => Some(e.to_string()),
    }
}

/// One Missing entry per reason: "network namespaces of 37 processes".
fn summarize_failures(failed: &BTreeMap<String, u64>) -> Vec<Missing> {
    let plural = |n: u64| if n == 1 { "process" } else { "processes" };
    failed
        .iter()
        .map(|(why, &n)| {
            Missing::new(
                format!("network namespaces of {n} {}", plural(n)),
                why.clone(),
            )
        })
        .collect()
}

/// A net namespace bind mount from a mountinfo line.
#[derive(Debug, PartialEq, Eq)]
struct NsfsMount {
    dev: u64,
    ino: u64,
    mount_point: String,
}

/// nsfs mounts of network namespaces in a `/proc/PID/mountinfo` text: fstype `nsfs`,
/// root `net:[INODE]`, device `MAJOR:MINOR`.
fn parse_nsfs_mounts(mountinfo: &str) -> Vec<NsfsMount> {
    mountinfo.lines().filter_map(parse_nsfs_line).collect()
}

fn parse_nsfs_line(line: &str) -> Option<NsfsMount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    if fields.get(sep + 1) != Some(&"nsfs") {
        return None;
    }
    let ino = fields
        .get(3)?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let dev = makedev(major.parse().ok()?, minor.parse().ok()?);
    Some(NsfsMount {
        dev,
        ino,
        mount_point: unescape_octal(fields.get(4)?),
    })
}

/// st_dev as the kernel's new_encode_dev() lays it out (what stat returns).
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')) as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `f` on a new OS thread that first enters `ns` with setns(CLONE_NEWNET), so
/// netlink sockets it creates and `/proc/thread-self/net/*` and `/proc/sys/net/*` files
/// it opens belong to `ns`. Inside, `/proc/self/net` still shows the leader's netns:
/// use `/proc/thread-self/net`. Threads `f` spawns inherit `ns`. If `ns` is the
/// caller's own netns no setns is done (so this works unprivileged). Errors (EPERM as
/// non-root, namespace gone, pid reused) and a panic in `f` are returned.
pub fn run_in_netns<T: Send + 'static>(
    ns: &NetnsHandle,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let id = ns.id;
    let file = if current_netns_key().ok() == Some((ns.dev, ns.id)) {
        None
    } else {
        Some(open_ns(ns)?)
    };
    let worker = std::thread::Builder::new()
        .name("sockmedic-netns".to_string())
        .spawn(move || -> Result<T, NetnsError> {
            if let Some(file) = file {
                let link_type = Some(rustix::thread::LinkNameSpaceType::Network);
                rustix::thread::move_into_link_name_space(file.as_fd(), link_type).map_err(
                    |e| NetnsError::Enter {
                        id,
                        source: e.into(),
                    },
                )?;
            }
            Ok(f())
        })
        .map_err(|source| NetnsError::Thread { id, source })?;
    worker.join().map_err(|p| NetnsError::Panicked {
        id,
        message: panic_message(p.as_ref()),
    })?
}

/// Opens the namespace file and checks it is still `ns`: a `/proc/PID/...` path may
/// name another namespace once PID is gone and reused.
fn open_ns(ns: &NetnsHandle) -> Result<fs::File, NetnsError> {
    let open_err = |source| NetnsError::Open {
        id: ns.id,
        path: ns.path.clone(),
        source,
    };
    let file = fs::File::open(&ns.path).map_err(open_err)?;
    let m = file.metadata().map_err(open_err)?;
    if (m.dev(), m.ino()) != (ns.dev, ns.id) {
        return Err(NetnsError::Changed {
            id: ns.id,
            path: ns.path.clone(),
            found: m.ino(),
        });
    }
    Ok(file)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    text.unwrap_or("(no message)").to_string()
}

/// Selects namespaces for `--netns self|NAME|PID|INODE`: `self` is the caller's; a
/// number is a netns inode if one has it, else a pid whose netns is taken; anything
/// else is an exact name (any of `names`, e.g. `host`, an `ip netns` name,
/// `pid 42 (nginx)`).
pub fn select<'a>(scan: &'a NetnsScan, selector: &str) -> Result<Vec<&'a NetnsHandle>, NetnsError> {
    let by_key = |k: Key| {
        scan.namespaces
            .iter()
            .filter(|n| (n.dev, n.id) == k)
            .collect::<Vec<_>>()
    };
    let hits = if selector == "self" {
        by_key(current_netns_key().map_err(|source| NetnsError::Lookup {
            what: "this thread".into(),
            source,
        })?)
    } else if let Some(hits) = select_number(scan, selector)? {
        hits
    } else {
        scan.namespaces
            .iter()
            .filter(|n| n.names.iter().any(|name| name == selector))
            .collect()
    };
    if hits.is_empty() {
        return Err(NetnsError::NoMatch {
            selector: selector.to_string(),
        });
    }
    Ok(hits)
}

/// A number as a netns inode, else as a pid; None when it is neither (or no number),
/// so it can still match a name.
fn select_number<'a>(
    scan: &'a NetnsScan,
    selector: &str,
) -> Result<Option<Vec<&'a NetnsHandle>>, NetnsError> {
    let Ok(number) = selector.parse::<u64>() else {
        return Ok(None);
    };
    let by_id: Vec<_> = scan.namespaces.iter().filter(|n| n.id == number).collect();
    if !by_id.is_empty() {
        return Ok(Some(by_id));
    }
    match ns_key(format!("/proc/{number}/ns/net")) {
        Ok(k) => Ok(Some(
            scan.namespaces
                .iter()
                .filter(|n| (n.dev, n.id) == k)
                .collect(),
        )),
        Err(e) if failure_reason(&e, true).is_none() => Ok(None),
        Err(source) => Err(NetnsError::Lookup {
            what: format!("pid {number}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{
        parse_counter_table, parse_sockstat, read_sysctl, read_text, HOST_SYSCTLS, NETNS_SYSCTLS,
    };
    use crate::testutil::{run, unique};
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    /// Throwaway namespaces, processes and mounts, all undone on drop (even when the
    /// test fails).
    #[derive(Default)]
    struct Guard {
        netns: Option<String>,
        children: Vec<Child>,
        mounts: Vec<PathBuf>,
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            for m in &self.mounts {
                let _ = Command::new("umount").arg(m).status();
                let _ = fs::remove_file(m);
            }
            if let Some(name) = &self.netns {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }

    impl Guard {
        /// `ip netns add sm-test-...`
        fn ip_netns() -> Guard {
            let name = unique("sm-test");
            run("ip", &["netns", "add", &name]);
            let mut guard = Guard::default();
            guard.netns = Some(name);
            guard
        }

        fn name(&self) -> &str {
            self.netns.as_deref().unwrap()
        }

        fn exec(&self, args: &[&str]) {
            run("ip", &[&["netns", "exec", self.name()], args].concat());
        }

        /// `ip netns exec NAME sleep 60`
        fn sleeper_inside(&mut self) -> u32 {
            let name = self.name().to_string();
            self.sleeper("ip", &["netns", "exec", &name])
        }

        /// Starts `sleep 60` through `cmd` (which execs it) and waits until it is
        /// sleep and out of the host netns.
        fn sleeper(&mut self, cmd: &str, args: &[&str]) -> u32 {
            let child = Command::new(cmd)
                .args(args)
                .args(["sleep", "60"])
                .spawn()
                .unwrap();
            let pid = child.id();
            self.children.push(child);
            let host = ns_key("/proc/self/ns/net").unwrap(); // the leader stays in the host netns
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm == "sleep\n"
                    && ns_key(format!("/proc/{pid}/ns/net")).is_ok_and(|k| k != host)
                {
                    return pid;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("pid {pid} never became sleep in its own netns");
        }

        /// Bind-mounts a netns onto a new file under /tmp, like docker's netns files.
        fn bind_mount(&mut self, source: &str) -> PathBuf {
            let target = std::env::temp_dir().join(unique("sm-test-mnt"));
            fs::write(&target, "").unwrap();
            self.mounts.push(target.clone());
            run("mount", &["--bind", source, target.to_str().unwrap()]);
            target
        }
    }

    fn find(scan: &NetnsScan, id: u64) -> &NetnsHandle {
        scan.namespaces
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("netns {id} not found in {scan:#?}"))
    }

    fn id_of(path: &str) -> u64 {
        ns_key(path).unwrap().1
    }

    fn require_root() -> bool {
        if !is_root() {
            eprintln!("skipped: needs root (creates network namespaces)");
        }
        is_root()
    }

    #[test]
    fn discover_finds_ip_netns_process_netns_and_mounts() {
        if !require_root() {
            return;
        }
        let mut a = Guard::ip_netns();
        let a_pid = a.sleeper_inside();
        let mut b = Guard::default();
        let b_pid = b.sleeper("unshare", &["--net"]);
        let b_proc_path = format!("/proc/{b_pid}/ns/net");
        let mount = b.bind_mount(&b_proc_path);
        let empty = Guard::ip_netns();

        let scan = discover();
        // Only unreadable pids may be missing (on the development VM even root may not
        // read pid 1's namespaces: it is the sandbox's own agent).
        assert!(
            scan.missing
                .iter()
                .all(|m| m.what.starts_with("network namespaces of ")),
            "{:?}",
            scan.missing
        );
        let host = &scan.namespaces[0];
        assert!(host.host && host.names[0] == "host", "{host:?}");
        assert_eq!(host.id, id_of("/proc/self/ns/net"));
        assert!(host.pid.is_some() && host.processes > 1);
        assert!(scan.namespaces[1..].iter().all(|n| !n.host));
        assert!(
            scan.namespaces[1..].windows(2).all(|w| w[0].id < w[1].id),
            "sorted by id"
        );

        let na = find(&scan, id_of(&format!("/run/netns/{}", a.name())));
        assert_eq!(
            na.names,
            [a.name().to_string(), format!("pid {a_pid} (sleep)")]
        );
        assert_eq!(na.path, Path::new("/run/netns").join(a.name()));
        assert_eq!((na.processes, na.pid), (1, Some(a_pid)));

        let nb = find(&scan, id_of(&b_proc_path));
        assert_eq!(
            nb.names,
            [
                mount.to_str().unwrap().to_string(),
                format!("pid {b_pid} (sleep)")
            ]
        );
        assert_eq!(nb.path, mount);
        assert_eq!((nb.processes, nb.pid), (1, Some(b_pid)));

        let ne = find(&scan, id_of(&format!("/run/netns/{}", empty.name())));
        assert_eq!(ne.names, [empty.name()]);
        assert_eq!((ne.processes, ne.pid), (0, None));
    }

    #[test]
    fn select_each_form() {
        if !require_root() {
            return;
        }
        let mut a = Guard::ip_netns();
        let pid = a.sleeper_inside();
        let scan = discover();
        let a_id = id_of(&format!("/run/netns/{}", a.name()));
        let ids =
            |sel: &str| select(&scan, sel).map(|v| v.iter().map(|n| n.id).collect::<Vec<_>>());
        let host_id = scan.namespaces[0].id;
        assert_eq!(ids("self").unwrap(), [host_id]);
        assert_eq!(ids("host").unwrap(), [host_id]);
        assert_eq!(ids(&a_id.to_string()).unwrap(), [a_id]);
        assert_eq!(ids(&pid.to_string()).unwrap(), [a_id]);
        assert_eq!(ids(&std::process::id().to_string()).unwrap(), [host_id]);
        assert_eq!(ids(a.name()).unwrap(), [a_id]);
        assert_eq!(ids(&format!("pid {pid} (sleep)")).unwrap(), [a_id]);
        for bad in ["sm-test-no-such-netns", "4294967296000", "", "Host"] {
            let e = ids(bad).unwrap_err();
            assert!(matches!(e, NetnsError::NoMatch { .. }), "{bad:?}: {e}");
        }
    }

    #[test]
    fn run_in_netns_sees_that_netns() {
        if !require_root() {
            return;
        }
        let a = Guard::ip_netns();
        a.exec(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_local_port_range=41000 41999",
        ]);
        a.exec(&["sysctl", "-q", "-w", "net.ipv4.ip_default_ttl=99"]);
        let host_range =
            read_sysctl(Path::new("/proc/sys"), "net.ipv4.ip_local_port_range").unwrap();
        let scan = discover();
        let na = find(&scan, id_of(&format!("/run/netns/{}", a.name()))).clone();

        let inside = run_in_netns(&na, || {
            let range =
                read_sysctl(Path::new("/proc/sys"), "net.ipv4.ip_local_port_range").unwrap();
            let sockstat =
                parse_sockstat(&read_text(Path::new("/proc/thread-self/net/sockstat")).unwrap())
                    .unwrap();
            let ttl = |p: &str| {
                parse_counter_table(&read_text(Path::new(p)).unwrap()).unwrap()["Ip"]["DefaultTTL"]
            };
            (
                current_netns_id().unwrap(),
                range,
                sockstat["sockets"]["used"],
                ttl("/proc/thread-self/net/snmp"),
                ttl("/proc/self/net/snmp"),
            )
        })
        .unwrap();
        let (id, range, used, ttl_thread, ttl_self) = inside;
        assert_eq!(id, na.id);
        assert_eq!(range, "41000\t41999");
        assert_eq!(used, 0, "a fresh netns has no sockets");
        assert_eq!(ttl_thread, 99);
        assert_ne!(
            ttl_self, 99,
            "/proc/self/net follows the thread-group leader, not this thread"
        );
        assert_eq!(
            read_sysctl(Path::new("/proc/sys"), "net.ipv4.ip_local_port_range").unwrap(),
            host_range
        );
        assert_eq!(
            current_netns_id().unwrap(),
            scan.namespaces[0].id,
            "the caller's thread did not move"
        );
    }

    #[test]
    fn run_in_netns_errors_and_own_netns() {
        let own = NetnsHandle {
            id: current_netns_id().unwrap(),
            dev: current_netns_key().unwrap().0,
            names: vec![],
            path: PathBuf::from("/nonexistent"),
            processes: 1,
            host: false,
            pid: None,
        };
        // Own netns: no open, no setns.
        assert_eq!(run_in_netns(&own, || 7).unwrap(), 7);
        let gone = NetnsHandle {
            id: 1,
            ..own.clone()
        };
        assert!(matches!(
            run_in_netns(&gone, || ()),
            Err(NetnsError::Open { .. })
        ));
        let changed = NetnsHandle {
            id: 1,
            path: PathBuf::from("/proc/self/ns/net"),
            ..own.clone()
        };
        let e = run_in_netns(&changed, || ()).unwrap_err();
        assert!(
            matches!(e, NetnsError::Changed { found, .. } if found == own.id),
            "{e}"
        );
        let e = run_in_netns(&own, || -> () { panic!("boom") }).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("code run in network namespace {} panicked: boom", own.id)
        );
    }

    /// A thread that setns'd elsewhere counts its process for that netns too.
    #[test]
    fn thread_in_other_netns_counts() {
        if !require_root() {
            return;
        }
        let mut a = Guard::ip_netns();
        let sleeper = a.sleeper_inside();
        let a_id = id_of(&format!("/run/netns/{}", a.name()));
        let na = find(&discover(), a_id).clone();
        let scan = run_in_netns(&na, discover).unwrap();
        let seen = find(&scan, a_id);
        assert_eq!(seen.processes, 2, "{seen:?}");
        assert_eq!(seen.pid, Some(sleeper), "our leader is not in it");
        assert!(scan.namespaces[0].host);
    }

    /// The sysctl lists agree with this kernel: NETNS ones exist in a fresh netns,
    /// host-only net.ipv4/net.core ones do not, and nf_conntrack_max is read-only there.
    #[test]
    fn sysctl_scopes_match_this_kernel() {
        if !require_root() {
            return;
        }
        let a = Guard::ip_netns();
        let na = find(&discover(), id_of(&format!("/run/netns/{}", a.name()))).clone();
        let exists = |name: &str| Path::new("/proc/sys").join(name.replace('.', "/")).exists();
        let on_host: Vec<(&str, bool)> = HOST_SYSCTLS
            .iter()
            .chain(NETNS_SYSCTLS)
            .map(|s| (s.name, exists(s.name)))
            .collect();
        let in_ns = run_in_netns(&na, move || {
            let mode = |name: &str| {
                fs::metadata(Path::new("/proc/sys").join(name.replace('.', "/")))
                    .ok()
                    .map(|m| m.mode() & 0o777)
            };
            on_host
                .into_iter()
                .map(|(name, host)| (name, host, mode(name)))
                .collect::<Vec<_>>()
        })
        .unwrap();
        for (name, on_host, mode) in in_ns {
            let host_only = HOST_SYSCTLS.iter().any(|s| s.name == name);
            match (name, host_only) {
                ("net.netfilter.nf_conntrack_max", _) => {
                    assert!(!on_host || mode == Some(0o444), "{name}: {mode:?}")
                }
                (n, true) if n.starts_with("net.") => {
                    assert_eq!(mode, None, "{name} is visible in a child netns")
                }
                (_, false) => assert_eq!(
                    on_host,
                    mode.is_some(),
                    "{name}: host {on_host}, netns {mode:?}"
                ),
                _ => {}
            }
        }
    }

    /// As `nobody` (this thread only: Linux credentials are per thread and rustix
    /// calls the raw syscalls): no panic, one summarized Missing, setns refused.
    #[test]
    fn unprivileged_discovery_summarizes() {
        if !require_root() {
            return;
        }
        let a = Guard::ip_netns();
        let na = find(&discover(), id_of(&format!("/run/netns/{}", a.name()))).clone();
        let na_id = na.id;
        let (scan, entered, own) = std::thread::spawn(move || {
            use rustix::process::{Gid, Uid};
            use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
            let (uid, gid) = (Uid::from_raw(65534), Gid::from_raw(65534));
            set_thread_groups(&[]).unwrap();
            set_thread_res_gid(gid, gid, gid).unwrap();
            set_thread_res_uid(uid, uid, uid).unwrap();
            assert!(!is_root());
            let scan = discover();
            let own = scan
                .namespaces
                .iter()
                .find(|n| n.host)
                .map(|h| run_in_netns(h, || 1));
            (scan, run_in_netns(&na, || ()), own)
        })
        .join()
        .unwrap();
        let denied: Vec<_> = scan
            .missing
            .iter()
            .filter(|m| m.why == "permission denied: not root")
            .collect();
        assert_eq!(denied.len(), 1, "{:?}", scan.missing);
        assert!(
            denied[0].what.starts_with("network namespaces of "),
            "{denied:?}"
        );
        assert!(
            scan.namespaces[0].host,
            "the fixed init_net inode still marks the host"
        );
        assert!(
            scan.namespaces.iter().any(|n| n.id == na_id),
            "/run/netns is readable by anyone"
        );
        let e = entered.unwrap_err();
        assert!(
            matches!(&e, NetnsError::Enter { source, .. } if source.kind() == io::ErrorKind::PermissionDenied),
            "{e}"
        );
        assert!(
            e.to_string()
                .ends_with("(setns needs CAP_SYS_ADMIN: run as root)"),
            "{e}"
        );
        assert_eq!(own.unwrap().unwrap(), 1, "our own netns needs no setns");
    }

    #[test]
    fn failures_are_summarized() {
        let denied = io::Error::from_raw_os_error(13);
        assert_eq!(
            failure_reason(&io::Error::from_raw_os_error(2), false),
            None
        );
        assert_eq!(failure_reason(&io::Error::from_raw_os_error(3), true), None);
        assert_eq!(
            failure_reason(&denied, false).unwrap(),
            "permission denied: not root"
        );
        assert_eq!(
            failure_reason(&denied, true).unwrap(),
            "permission denied, even as root"
        );
        let mut failed = BTreeMap::new();
        failed.insert("permission denied: not root".to_string(), 37);
        failed.insert("Input/output error (os error 5)".to_string(), 1);
        let m = summarize_failures(&failed);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1],
            Missing::new(
                "network namespaces of 37 processes",
                "permission denied: not root"
            )
        );
        assert_eq!(m[0].what, "network namespaces of 1 process");
    }

    #[test]
    fn nsfs_mountinfo_lines() {
        // Real lines (tests/fixtures/README.md): two `ip netns`, a netns bind-mounted on
        // a path with spaces, an mnt ns bind mount, and two ordinary mounts.
        let text = include_str!("../tests/fixtures/mountinfo-nsfs");
        let m = parse_nsfs_mounts(&format!("{text}garbage\n- nsfs\n"));
        let points: Vec<(u64, &str)> = m.iter().map(|m| (m.ino, m.mount_point.as_str())).collect();
        let expected = [
            (4026532246, "/run/netns/sdbench"),
            (4026532316, "/run/netns/sm-fixture-mi"),
            (4026532730, "/tmp/sm fixture net"),
        ];
        assert_eq!(points, expected);
        assert_eq!(
            m[0].dev,
            current_netns_key().unwrap().0,
            "nsfs is 0:4 here, as stat says"
        );
        assert_eq!(ip_netns_name("/run/netns/x"), Some("x"));
        assert_eq!(ip_netns_name("/var/run/netns/cni-1"), Some("cni-1"));
        assert_eq!(
            [
                ip_netns_name("/run/netns/x/y"),
                ip_netns_name("/run/netns/"),
                ip_netns_name("/tmp/x")
            ],
            [None; 3]
        );
        assert_eq!(makedev(259, 1_048_577), libc_makedev(259, 1_048_577));
    }

    /// glibc's gnu_dev_makedev, for comparison.
    fn libc_makedev(major: u64, minor: u64) -> u64 {
        let (major, minor) = (major as u32 as u64, minor as u32 as u64);
        ((major & 0x0000_0fff) << 8)
            | ((major & 0xffff_f000) << 32)
            | (minor & 0x0000_00ff)
            | ((minor & 0xffff_ff00) << 12)
    }

    #[test]
    fn current_netns_matches_readlink() {
        let link = fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_eq!(
            link.to_str().unwrap(),
            format!("net:[{}]", current_netns_id().unwrap())
        );
    }
}
