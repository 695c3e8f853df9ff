//! The process scan: every process once, in parallel, and the map socket inode →
//! (process, fd) that attributes sock_diag dumps to processes (kernel-notes §9.4).
//!
//! Per process: comm, a short cmdline, the owner, the network namespace of the leader
//! and of any thread that setns'd elsewhere (§10), the cgroup text, RLIMIT_NOFILE, the
//! number of fds and which of them are sockets.
//!
//! The hot path is one `readlinkat` per fd: `/proc` and `/proc/PID/fd` are read with
//! `getdents64` into a per-thread buffer, each name is passed to `readlinkat` as it
//! lies in that buffer, the link lands in a stack buffer and `socket:[N]` is parsed in
//! place. Nothing is allocated per fd except the growth of one `Vec<SocketFd>` per
//! thread. The protocol of a socket (`system.sockprotoname`) is *not* read in the scan:
//! the caller asks [`socket_proto`] only for the inodes no TCP dump accounted for.
//!
//! Everything under one pid is read relative to an fd of its `/proc/PID` directory,
//! which pins that process: if the pid dies and is reused mid-scan, reads fail with
//! ENOENT/ESRCH instead of mixing two processes. Such vanished processes (and zombies,
//! which have no namespaces and no fds left) are dropped silently. A zombie *leader*
//! whose other threads still run is read through one of those threads.
//!
//! Not seen: fds of a thread that unshared its fd table (`unshare(CLONE_FILES)`; only
//! `/proc/PID/task/TID/fd` shows them), and sockets held by no fd at all (orphans,
//! sockets in flight in SCM_RIGHTS messages, io_uring fixed files).

use rustix::fs::{AtFlags, Mode, OFlags, RawDir};
use rustix::io::Errno;
use sockmedic_model::Missing;
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// How to scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcScanOptions {
    /// Worker threads; 0 = `available_parallelism`.
    pub threads: usize,
    /// `ProcInfo::cmdline` is cut at this many characters (0: not read).
    pub cmdline_max: usize,
}

impl Default for ProcScanOptions {
    fn default() -> Self {
        ProcScanOptions {
            threads: 0,
            cmdline_max: 256,
        }
    }
}

/// One process (thread group).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    /// `/proc/PID/comm` without the newline.
    pub comm: String,
    /// `/proc/PID/cmdline` with NULs as spaces (no trailing space), cut at
    /// `cmdline_max` characters; empty for kernel threads.
    pub cmdline: String,
    /// Owner of `/proc/PID` (fstat): the effective uid. The kernel shows root (0)
    /// instead for a non-dumpable process (setuid programs, `PR_SET_DUMPABLE` 0).
    pub uid: u32,
    /// Inode of `/proc/PID/ns/net` (the thread-group leader's netns); None when it
    /// could not be read (see `ProcScan::missing`).
    pub netns: Option<u64>,
    /// Other network namespaces that some of its threads are in
    /// (`/proc/PID/task/TID/ns/net`), in the order first seen.
    pub thread_netns: Vec<u64>,
    /// Raw text of `/proc/PID/cgroup`.
    pub cgroup: Option<String>,
    /// "Max open files" of `/proc/PID/limits`; "unlimited" = `u64::MAX`.
    pub fd_soft: Option<u64>,
    pub fd_hard: Option<u64>,
    /// Entries in `/proc/PID/fd`; when the leader has exited and other threads run
    /// on (a zombie leader's fd directory is empty), in `/proc/PID/task/TID/fd` of a
    /// live thread, which is where `cmdline`, `limits`, `cgroup` and `netns` then
    /// come from too.
    pub fds: u64,
    /// Of those, links to `socket:[N]`.
    pub socket_fds: u64,
    /// False when `/proc/PID/fd` could not be read: `fds` and `socket_fds` are then 0
    /// and mean nothing (the process is counted in a `missing` entry).
    pub fds_read: bool,
}

/// One socket fd: `/proc/PID/fd/FD` → `socket:[inode]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketFd {
    pub inode: u32,
    /// Index into `ProcScan::procs`.
    pub proc_idx: u32,
    pub fd: u32,
}

/// Socket fds sorted by inode (then process, then fd). One inode may have several fds
/// (dup, fork, SCM_RIGHTS).
///
/// Lookups go through a bucket table over the inode range (about one bucket per fd,
/// so a lookup is two cache misses instead of a binary search's twenty: socket
/// inodes come from one counter and are dense).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketIndex {
    fds: Vec<SocketFd>,
    /// Smallest inode; bucket of `inode` is `(inode - base) >> shift`.
    base: u32,
    shift: u32,
    /// `starts[b]..starts[b + 1]` are the fds of bucket `b`.
    starts: Vec<u32>,
}

impl SocketIndex {
    /// Builds the index from fds in any order.
    pub fn new(mut fds: Vec<SocketFd>) -> SocketIndex {
        fds.sort_unstable_by_key(|s| (s.inode, s.proc_idx, s.fd));
        let (Some(first), Some(last)) = (fds.first(), fds.last()) else {
            return SocketIndex::default();
        };
        let base = first.inode;
        let span = u64::from(last.inode - base) + 1;
        let target = (fds.len() as u64).next_power_of_two();
        let mut shift = 0;
        while span >> shift > target {
            shift += 1;
        }
        let buckets = ((span - 1) >> shift) + 1;
        let mut starts = Vec::with_capacity(buckets as usize + 1);
        let mut i = 0;
        for b in 0..buckets {
            while i < fds.len() && u64::from((fds[i].inode - base) >> shift) < b {
                i += 1;
            }
            starts.push(i as u32);
        }
        starts.push(fds.len() as u32);
        SocketIndex {
            fds,
            base,
            shift,
            starts,
        }
    }

    /// Every fd that holds `inode` (empty if none).
    pub fn lookup(&self, inode: u32) -> &[SocketFd] {
        self.position(inode).map_or(&[], |r| &self.fds[r])
    }

    /// Where `inode`'s fds are in [`SocketIndex::as_slice`].
    pub fn position(&self, inode: u32) -> Option<Range<usize>> {
        let b = (inode.checked_sub(self.base)? >> self.shift) as usize;
        let (lo, hi) = (
            *self.starts.get(b)? as usize,
            *self.starts.get(b + 1)? as usize,
        );
        let bucket = &self.fds[lo..hi];
        let start = lo + bucket.partition_point(|s| s.inode < inode);
        let len = self.fds[start..hi]
            .iter()
            .take_while(|s| s.inode == inode)
            .count();
        (len > 0).then_some(start..start + len)
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SocketFd> {
        self.fds.iter()
    }

    pub fn as_slice(&self) -> &[SocketFd] {
        &self.fds
    }
}

/// What the scan did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanStats {
    /// Numeric entries found in `/proc` (including those that then vanished).
    pub pids: u64,
    /// Of those, gone (or zombies) before they could be read; not in `procs`.
    pub vanished: u64,
    /// Sum of `ProcInfo::fds` and `ProcInfo::socket_fds` over `procs`.
    pub fds: u64,
    pub socket_fds: u64,
    /// Worker threads used.
    pub threads: u32,
    pub duration_ms: f64,
}

/// The result of [`scan`].
#[derive(Clone, Debug, Default)]
pub struct ProcScan {
    /// Sorted by pid.
    pub procs: Vec<ProcInfo>,
    pub sockets: SocketIndex,
    pub missing: Vec<Missing>,
    pub stats: ScanStats,
}

impl ProcScan {
    /// The process holding a socket fd of `sockets`.
    pub fn proc_of(&self, s: &SocketFd) -> &ProcInfo {
        &self.procs[s.proc_idx as usize]
    }

    /// The process with this pid, if it was scanned.
    pub fn find(&self, pid: u32) -> Option<&ProcInfo> {
        let i = self.procs.binary_search_by_key(&pid, |p| p.pid).ok()?;
        Some(&self.procs[i])
    }
}

/// Scans every process. Never fails as a whole: what could not be read is summarized
/// in `missing`, one entry per kind of failure with a count (e.g. `"fds and network
/// namespaces of 37 processes"`: `"permission denied: not root"`); vanished processes
/// are skipped silently.
pub fn scan(opts: &ProcScanOptions) -> ProcScan {
    let start = Instant::now();
    let root = rustix::process::geteuid().is_root();
    let proc_dir = match open_dir(rustix::fs::CWD, c"/proc") {
        Ok(d) => d,
        Err(e) => {
            return ProcScan {
                missing: vec![Missing::new("processes", format!("/proc: {e}"))],
                ..ProcScan::default()
            }
        }
    };
    let mut dents = dents_buffer();
    let (mut pids, list_error) = list_pids(proc_dir.as_fd(), &mut dents);
    pids.sort_unstable();
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, pids.len().max(1));

    let cursor = AtomicUsize::new(0);
    let shared = Shared {
        proc_dir: proc_dir.as_fd(),
        pids: &pids,
        cursor: &cursor,
        cmdline_max: opts.cmdline_max,
        root,
    };
    let mut results = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|i| {
                std::thread::Builder::new()
                    .name(format!("sockmedic-scan-{i}"))
                    .spawn_scoped(s, || Worker::new(dents_buffer()).run(&shared))
                    .ok()
            })
            .collect();
        let mut results = vec![Worker::new(dents).run(&shared)];
        results.extend(helpers.into_iter().filter_map(|h| h.join().ok()));
        results
    });
    let used_threads = results.len() as u32;
    merge(&mut results, pids.len(), list_error, start, used_threads)
}

/// What every worker reads.
struct Shared<'a> {
    proc_dir: BorrowedFd<'a>,
    pids: &'a [u32],
    cursor: &'a AtomicUsize,
    cmdline_max: usize,
    root: bool,
}

/// What one worker found. `proc_idx` in `sockets` is the pid's slot in the pid list
/// until [`merge`] renumbers it.
#[derive(Default)]
struct Found {
    procs: Vec<(u32, ProcInfo)>,
    sockets: Vec<SocketFd>,
    vanished: u64,
    /// (parts that failed, why) → processes.
    failed: BTreeMap<(u8, String), u64>,
    /// Set when the worker panicked (then it found nothing).
    lost: bool,
}

fn merge(
    results: &mut [Found],
    pid_count: usize,
    list_error: Option<Errno>,
    start: Instant,
    threads: u32,
) -> ProcScan {
    let mut procs: Vec<(u32, ProcInfo)> = Vec::new();
    let mut failed: BTreeMap<(u8, String), u64> = BTreeMap::new();
    let mut stats = ScanStats {
        pids: pid_count as u64,
        threads,
        ..ScanStats::default()
    };
    let total: usize = results.iter().map(|r| r.sockets.len()).sum();
    let mut sockets = Vec::with_capacity(total);
    let mut lost = false;
    for r in results.iter_mut() {
        procs.append(&mut r.procs);
        sockets.append(&mut r.sockets);
        stats.vanished += r.vanished;
        lost |= r.lost;
        for (k, n) in std::mem::take(&mut r.failed) {
            *failed.entry(k).or_default() += n;
        }
    }
    procs.sort_unstable_by_key(|(slot, _)| *slot);
    let mut renumber = vec![u32::MAX; pid_count];
    for (i, (slot, _)) in procs.iter().enumerate() {
        renumber[*slot as usize] = i as u32;
    }
    for s in &mut sockets {
        s.proc_idx = renumber[s.proc_idx as usize];
    }
    let procs: Vec<ProcInfo> = procs.into_iter().map(|(_, p)| p).collect();
    stats.fds = procs.iter().map(|p| p.fds).sum();
    stats.socket_fds = sockets.len() as u64;
    let mut missing: Vec<Missing> = failed
        .into_iter()
        .map(|((mask, why), n)| Missing::new(failed_what(mask, n), why))
        .collect();
    if let Some(e) = list_error {
        missing.push(Missing::new(
            "some processes",
            format!("listing /proc: {}", io::Error::from(e)),
        ));
    }
    if lost {
        missing.push(Missing::new(
            "some processes",
            "a scan thread panicked (a bug in sockmedic)",
        ));
    }
    let sockets = SocketIndex::new(sockets);
    stats.duration_ms = start.elapsed().as_secs_f64() * 1e3;
    ProcScan {
        procs,
        sockets,
        missing,
        stats,
    }
}

/// Parts of a process that can fail to be read, as bits of a mask.
#[derive(Clone, Copy)]
enum Part {
    Dir = 0,
    Fds,
    Netns,
    Limits,
    Comm,
    Cmdline,
    Cgroup,
}

const PART_NAMES: [&str; 7] = [
    "/proc entries",
    "fds",
    "network namespaces",
    "fd limits",
    "names",
    "command lines",
    "cgroups",
];

/// `"fds and network namespaces of 37 processes"`.
fn failed_what(mask: u8, n: u64) -> String {
    let parts: Vec<&str> = PART_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, name)| *name)
        .collect();
    let list = match parts.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "parts".to_string(),
    };
    let noun = if n == 1 { "process" } else { "processes" };
    format!("{list} of {n} {noun}")
}

/// Why a read failed, in the words netns.rs uses (so reports read alike).
fn failure_reason(e: Errno, root: bool) -> String {
    match e {
        Errno::ACCESS | Errno::PERM if !root => "permission denied: not root".to_string(),
        Errno::ACCESS | Errno::PERM => "permission denied, even as root".to_string(),
        e => io::Error::from(e).to_string(),
    }
}

/// The process (or the thread, or the fd) is gone: ENOENT or ESRCH.
fn gone(e: Errno) -> bool {
    e == Errno::NOENT || e == Errno::SRCH
}

/// The process vanished mid-scan.
struct Gone;

const DENTS_BUFFER: usize = 64 * 1024;

fn dents_buffer() -> Vec<MaybeUninit<u8>> {
    vec![MaybeUninit::uninit(); DENTS_BUFFER]
}

fn open_dir(dir: impl AsFd, path: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Numeric entries of /proc, and the error that cut the listing short if any.
fn list_pids(proc_dir: BorrowedFd<'_>, dents: &mut [MaybeUninit<u8>]) -> (Vec<u32>, Option<Errno>) {
    let mut pids = Vec::with_capacity(1024);
    let mut dir = RawDir::new(proc_dir, dents);
    while let Some(entry) = dir.next() {
        match entry {
            Ok(e) => pids.extend(parse_u32(e.file_name().to_bytes())),
            Err(e) => return (pids, Some(e)),
        }
    }
    (pids, None)
}

/// A decimal number, nothing else.
fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    u32::try_from(n).ok()
}

/// The inode of a `socket:[N]` link.
fn parse_socket_link(link: &[u8]) -> Option<u32> {
    parse_u32(link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?)
}

/// A NUL-terminated path built on the stack (pids, tids and fds are at most 10
/// digits, so 64 bytes hold `/proc/PID/fd/FD` and `task/TID/ns/net`).
struct StackPath {
    buf: [u8; 64],
    len: usize,
}

impl StackPath {
    fn new() -> StackPath {
        StackPath {
            buf: [0; 64],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) -> &mut StackPath {
        let end = (self.len + s.len()).min(self.buf.len() - 1);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&s[..n]);
        self.len = end;
        self
    }

    fn push_u32(&mut self, mut n: u32) -> &mut StackPath {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    fn as_cstr(&mut self) -> &CStr {
        self.buf[self.len] = 0;
        // The pushed parts hold no NUL (digits and literals), and buf[len] is one.
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

/// A worker's reused buffers and what it found.
struct Worker {
    dents: Vec<MaybeUninit<u8>>,
    file: Vec<u8>,
    found: Found,
    /// Failures of the current process: mask of `Part`s and the first error.
    fail_mask: u8,
    fail_why: Option<Errno>,
}

impl Worker {
    fn new(dents: Vec<MaybeUninit<u8>>) -> Worker {
        Worker {
            dents,
            file: Vec::with_capacity(4096),
            found: Found::default(),
            fail_mask: 0,
            fail_why: None,
        }
    }

    fn run(mut self, shared: &Shared<'_>) -> Found {
        let scanned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
            let slot = shared.cursor.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = shared.pids.get(slot) else {
                break;
            };
            self.process(shared, slot as u32, pid);
        }));
        if scanned.is_err() {
            return Found {
                lost: true,
                ..Found::default()
            };
        }
        self.found
    }

    fn process(&mut self, shared: &Shared<'_>, slot: u32, pid: u32) {
        self.fail_mask = 0;
        self.fail_why = None;
        let sockets_before = self.found.sockets.len();
        match self.read_process(shared, slot, pid) {
            Ok(info) => {
                if let Some(info) = info {
                    self.found.procs.push((slot, info));
                }
                if let Some(e) = self.fail_why {
                    let key = (self.fail_mask, failure_reason(e, shared.root));
                    *self.found.failed.entry(key).or_default() += 1;
                }
            }
            Err(Gone) => {
                self.found.sockets.truncate(sockets_before);
                self.found.vanished += 1;
            }
        }
    }

    /// Ok(None): the process could not be read at all (counted as failed).
    fn part<T>(&mut self, part: Part, r: Result<T, Errno>) -> Result<Option<T>, Gone> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if gone(e) => Err(Gone),
            Err(e) => {
                self.fail_mask |= 1 << part as u8;
                self.fail_why.get_or_insert(e);
                Ok(None)
            }
        }
    }

    fn read_process(
        &mut self,
        shared: &Shared<'_>,
        slot: u32,
        pid: u32,
    ) -> Result<Option<ProcInfo>, Gone> {
        let mut name = StackPath::new();
        name.push_u32(pid);
        let opened = open_dir(shared.proc_dir, name.as_cstr());
        let Some(dir) = self.part(Part::Dir, opened)? else {
            return Ok(None);
        };
        let Some(st) = self.part(Part::Dir, rustix::fs::fstat(&dir))? else {
            return Ok(None);
        };
        // A leader that exited while its threads run on (pthread_exit in main) is a
        // zombie: no namespaces, an empty fd directory. A live thread has both.
        let (base, netns) = match rustix::fs::statat(&dir, c"ns/net", AtFlags::empty()) {
            Ok(st) => (None, Some(st.st_ino)),
            Err(e) if gone(e) => match self.live_thread(&dir, pid) {
                Ok((thread_dir, ino)) => (Some(thread_dir), Some(ino)),
                Err(e) if gone(e) => return Err(Gone),
                Err(e) => (None, self.part(Part::Netns, Err(e))?),
            },
            Err(e) => (None, self.part(Part::Netns, Err(e))?),
        };
        let base = base.as_ref().unwrap_or(&dir);
        let mut info = ProcInfo {
            pid,
            uid: st.st_uid,
            netns,
            ..ProcInfo::default()
        };

        let r = read_file(&dir, c"comm", &mut self.file, 256);
        if self.part(Part::Comm, r)?.is_some() {
            let comm = self.file.strip_suffix(b"\n").unwrap_or(&self.file);
            info.comm = String::from_utf8_lossy(comm).into_owned();
        }
        if shared.cmdline_max > 0 {
            let cap = shared.cmdline_max.saturating_mul(4).saturating_add(4);
            let r = read_file(base, c"cmdline", &mut self.file, cap);
            if self.part(Part::Cmdline, r)?.is_some() {
                info.cmdline = cmdline_text(&self.file, shared.cmdline_max);
            }
        }
        let r = read_file(base, c"limits", &mut self.file, 8192);
        if self.part(Part::Limits, r)?.is_some() {
            if let Some((soft, hard)) = parse_nofile_limit(&self.file) {
                info.fd_soft = Some(soft);
                info.fd_hard = Some(hard);
            }
        }
        let r = read_file(base, c"cgroup", &mut self.file, 64 * 1024);
        if self.part(Part::Cgroup, r)?.is_some() {
            info.cgroup = Some(String::from_utf8_lossy(&self.file).into_owned());
        }
        if let Some(leader) = netns {
            self.thread_netns(&dir, pid, leader, &mut info.thread_netns)?;
        }
        self.fds(base, slot, &mut info)?;
        Ok(Some(info))
    }

    /// `/proc/PID/task/TID` of a thread other than the (zombie) leader that still has
    /// its namespaces, and its netns. ENOENT: no such thread (the process is gone);
    /// another error: a thread that could not be read (EACCES as non-root).
    fn live_thread(&mut self, dir: &OwnedFd, pid: u32) -> Result<(OwnedFd, u64), Errno> {
        let task = open_dir(dir, c"task")?;
        let mut tasks = RawDir::new(&task, &mut self.dents);
        let mut error = Errno::NOENT;
        while let Some(Ok(entry)) = tasks.next() {
            let Some(tid) = parse_u32(entry.file_name().to_bytes()).filter(|&t| t != pid) else {
                continue;
            };
            let mut path = StackPath::new();
            path.push(b"task/").push_u32(tid);
            let Ok(thread_dir) = open_dir(dir, path.as_cstr()) else {
                continue;
            };
            match rustix::fs::statat(&thread_dir, c"ns/net", AtFlags::empty()) {
                Ok(st) => return Ok((thread_dir, st.st_ino)),
                Err(e) if !gone(e) => error = e,
                Err(_) => {}
            }
        }
        Err(error)
    }

    /// Namespaces of threads other than the leader that differ from the leader's.
    /// A thread that is gone or unreadable is skipped.
    fn thread_netns(
        &mut self,
        dir: &OwnedFd,
        pid: u32,
        leader: u64,
        out: &mut Vec<u64>,
    ) -> Result<(), Gone> {
        let task = match open_dir(dir, c"task") {
            Ok(t) => t,
            Err(e) if gone(e) => return Err(Gone),
            Err(_) => return Ok(()),
        };
        let mut tasks = RawDir::new(&task, &mut self.dents);
        while let Some(Ok(entry)) = tasks.next() {
            let Some(tid) = parse_u32(entry.file_name().to_bytes()) else {
                continue;
            };
            if tid == pid {
                continue;
            }
            let mut path = StackPath::new();
            path.push(b"task/").push_u32(tid).push(b"/ns/net");
            if let Ok(st) = rustix::fs::statat(dir, path.as_cstr(), AtFlags::empty()) {
                if st.st_ino != leader && !out.contains(&st.st_ino) {
                    out.push(st.st_ino);
                }
            }
        }
        Ok(())
    }

    /// The hot loop: one readlinkat per fd.
    fn fds(&mut self, dir: &OwnedFd, slot: u32, info: &mut ProcInfo) -> Result<(), Gone> {
        let opened = open_dir(dir, c"fd");
        let Some(fd_dir) = self.part(Part::Fds, opened)? else {
            return Ok(());
        };
        let sockets = &mut self.found.sockets;
        let sockets_before = sockets.len();
        let mut entries = RawDir::new(&fd_dir, &mut self.dents);
        let mut link = [0u8; 64];
        let (mut fds, mut socket_fds, mut closed) = (0u64, 0u64, false);
        let mut error = None;
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            let name = entry.file_name();
            let digits = name.to_bytes();
            if digits.first() == Some(&b'.') {
                continue;
            }
            fds += 1;
            let len = match rustix::fs::readlinkat_raw(&fd_dir, name, &mut link) {
                Ok(len) => len,
                Err(Errno::NOENT) => {
                    // Closed since getdents (or the process is exiting: see below).
                    closed = true;
                    continue;
                }
                Err(e) => {
                    // EACCES: listing /proc/PID/fd needs only the directory's mode,
                    // reading a link needs ptrace access (e.g. a target with
                    // capabilities we lack); every other fd would fail alike.
                    error = Some(e);
                    break;
                }
            };
            if let Some(inode) = parse_socket_link(&link[..len]) {
                socket_fds += 1;
                sockets.push(SocketFd {
                    inode,
                    proc_idx: slot,
                    fd: parse_u32(digits).unwrap_or(u32::MAX),
                });
            }
        }
        if let Some(e) = error {
            self.found.sockets.truncate(sockets_before);
            self.part(Part::Fds, Err::<(), _>(e))?;
            return Ok(());
        }
        if closed {
            // Failed readlinks and an exited process look alike: ask the process.
            let alive = rustix::fs::statat(dir, c"ns/net", AtFlags::empty());
            if alive.is_err_and(gone) {
                return Err(Gone);
            }
        }
        info.fds = fds;
        info.socket_fds = socket_fds;
        info.fds_read = true;
        Ok(())
    }
}

/// Reads a small file relative to `dir` into `buf` (cleared first), at most about
/// `cap` bytes.
fn read_file(dir: &OwnedFd, name: &CStr, buf: &mut Vec<u8>, cap: usize) -> Result<(), Errno> {
    buf.clear();
    let file = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    while buf.len() < cap {
        buf.reserve((cap - buf.len()).min(4096));
        let n = rustix::io::read(&file, rustix::buffer::spare_capacity(buf))?;
        if n == 0 {
            break;
        }
    }
    buf.truncate(cap);
    Ok(())
}

/// NULs as spaces, no trailing space, at most `max` characters.
fn cmdline_text(raw: &[u8], max: usize) -> String {
    let end = raw
        .iter()
        .rposition(|&b| b != 0 && b != b' ')
        .map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&raw[..end]);
    text.chars()
        .take(max)
        .map(|c| if c == '\0' { ' ' } else { c })
        .collect()
}

/// Soft and hard "Max open files" from `/proc/PID/limits`.
fn parse_nofile_limit(limits: &[u8]) -> Option<(u64, u64)> {
    let line = limits
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Max open files"))?;
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_ascii_whitespace().map(|w| match w {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    });
    Some((words.next()??, words.next()??))
}

/// A socket's protocol as the kernel names it (`sk->sk_prot->name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SocketProto {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
    /// `UDP-Lite` and `UDPLITEv6`.
    UdpLite,
    /// `UNIX` (datagram and seqpacket) and `UNIX-STREAM`.
    Unix,
    Netlink,
    Packet,
    Raw,
    Raw6,
    /// `MPTCP` and `MPTCPv6`.
    Mptcp,
    /// Anything else (`PING`, `SCTP`, `AF_VSOCK`, ...).
    Other,
}

impl SocketProto {
    /// The kernel's name (for the kinds with two kernel names, the IPv4 or datagram one).
    pub fn name(self) -> &'static str {
        match self {
            SocketProto::Tcp => "TCP",
            SocketProto::Tcp6 => "TCPv6",
            SocketProto::Udp => "UDP",
            SocketProto::Udp6 => "UDPv6",
            SocketProto::UdpLite => "UDP-Lite",
            SocketProto::Unix => "UNIX",
            SocketProto::Netlink => "NETLINK",
            SocketProto::Packet => "PACKET",
            SocketProto::Raw => "RAW",
            SocketProto::Raw6 => "RAWv6",
            SocketProto::Mptcp => "MPTCP",
            SocketProto::Other => "other",
        }
    }

    /// From the kernel's name (the xattr's value without its NUL).
    pub fn from_kernel_name(name: &[u8]) -> SocketProto {
        match name {
            b"TCP" => SocketProto::Tcp,
            b"TCPv6" => SocketProto::Tcp6,
            b"UDP" => SocketProto::Udp,
            b"UDPv6" => SocketProto::Udp6,
            b"UDP-Lite" | b"UDPLITEv6" => SocketProto::UdpLite,
            b"UNIX" | b"UNIX-STREAM" => SocketProto::Unix,
            b"NETLINK" => SocketProto::Netlink,
            b"PACKET" => SocketProto::Packet,
            b"RAW" => SocketProto::Raw,
            b"RAWv6" => SocketProto::Raw6,
            b"MPTCP" | b"MPTCPv6" => SocketProto::Mptcp,
            _ => SocketProto::Other,
        }
    }

    /// TCP over IPv4 or IPv6.
    pub fn is_tcp(self) -> bool {
        matches!(self, SocketProto::Tcp | SocketProto::Tcp6)
    }
}

fn fd_path(pid: u32, fd: u32) -> StackPath {
    let mut path = StackPath::new();
    path.push(b"/proc/")
        .push_u32(pid)
        .push(b"/fd/")
        .push_u32(fd);
    path
}

/// `getxattr("/proc/PID/fd/FD", "system.sockprotoname")`: the protocol of a socket fd,
/// read without touching the socket. Not a socket: EOPNOTSUPP (pipes, anon inodes)
/// or ENODATA (files); fd or process gone: ENOENT.
pub fn socket_proto(pid: u32, fd: u32) -> io::Result<SocketProto> {
    let mut path = fd_path(pid, fd);
    let mut value = [0u8; 32];
    let len = rustix::fs::getxattr(path.as_cstr(), c"system.sockprotoname", &mut value)?;
    let name = &value[..len];
    Ok(SocketProto::from_kernel_name(
        name.strip_suffix(b"\0").unwrap_or(name),
    ))
}

/// Whether `/proc/PID/fd/FD` still links to `socket:[inode]` (to weed out sockets
/// closed, or fds reused, between the scan and a later dump).
pub fn still_holds(pid: u32, fd: u32, inode: u32) -> bool {
    let mut path = fd_path(pid, fd);
    let mut link = [0u8; 64];
    match rustix::fs::readlinkat_raw(rustix::fs::CWD, path.as_cstr(), &mut link) {
        Ok(len) => parse_socket_link(&link[..len]) == Some(inode),
        Err(_) => false,
    }
}

/// What [`check_socket`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketCheck {
    /// `tcp_info.tcpi_state`: the kernel's TCP state number (1 ESTABLISHED ...
    /// 7 CLOSE, 10 LISTEN).
    pub tcp_state: u8,
    /// The pending socket error (`SO_ERROR`; 104 ECONNRESET, 110 ETIMEDOUT, 111
    /// ECONNREFUSED), 0 if none. Read only for a CLOSE socket that `poll` says has
    /// an error (POLLERR); see [`check_socket`].
    pub so_error: i32,
    /// The bound local port (`getsockname`); 0 = unbound.
    pub local_port: u16,
}

/// TCP states by number (include/net/tcp_states.h).
pub const TCP_CLOSE: u8 = 7;

/// Confirms what a held TCP socket is: `pidfd_open(pid)` + `pidfd_getfd(fd)` (5.6+,
/// needs ptrace access: root) duplicate it into this process, where `TCP_INFO` and
/// `getsockname` are read; then the duplicate is closed and the holder's fd is as
/// it was.
///
/// `read_error` also reads `SO_ERROR` (when `poll` reports POLLERR on a CLOSE
/// socket). That is NOT read-only: it *consumes* the pending error (the kernel's
/// `sock_error()` swaps it with 0), so the holder's next call on that socket reports
/// EOF/EPIPE instead of e.g. ECONNRESET. Only on explicit request (`--so-error`). Not TCP (UDP, UNIX): EOPNOTSUPP; not a socket: ENOTSOCK; no
/// such fd: EBADF; no such process: ESRCH; not allowed to ptrace it: EPERM.
///
/// `local_port` is what `getsockname` shows, which for a reset or failed connection is
/// still the port it had, although the kernel has already released that port unless
/// it was bound explicitly (kernel-notes §9.4).
pub fn check_socket(pid: u32, fd: u32, read_error: bool) -> io::Result<SocketCheck> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let pid = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let dup =
        rustix::process::pidfd_getfd(&pidfd, fd as i32, rustix::process::PidfdGetfdFlags::empty())?;
    let tcp_state = tcp_info_state(dup.as_fd())?;
    let mut so_error = 0;
    if read_error && tcp_state == TCP_CLOSE {
        let mut fds = [PollFd::new(&dup, PollFlags::empty())];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero))?;
        if fds[0].revents().contains(PollFlags::ERR) {
            so_error = match rustix::net::sockopt::socket_error(&dup)? {
                Ok(()) => 0,
                Err(e) => e.raw_os_error(),
            };
        }
    }
    let local_port =
        std::net::SocketAddr::try_from(rustix::net::getsockname(&dup)?).map_or(0, |a| a.port());
    drop(dup);
    Ok(SocketCheck {
        tcp_state,
        so_error,
        local_port,
    })
}

/// `getsockopt(fd, SOL_TCP, TCP_INFO)`, first byte (`tcpi_state`). rustix has no
/// TCP_INFO, so this calls libc's getsockopt (std links libc).
fn tcp_info_state(fd: BorrowedFd<'_>) -> io::Result<u8> {
    const SOL_TCP: i32 = 6;
    const TCP_INFO: i32 = 11;
    extern "C" {
        fn getsockopt(fd: i32, level: i32, name: i32, value: *mut u8, len: *mut u32) -> i32;
    }
    // struct tcp_info is 248 bytes on 6.18; the kernel copies min(len, its size).
    let mut info = [0u8; 256];
    let mut len = info.len() as u32;
    // SAFETY: `info` is writable for `len` bytes and `len` is a valid u32 the kernel
    // updates; the fd is open for the duration of the call (borrowed).
    let rc = unsafe {
        getsockopt(
            fd.as_raw_fd(),
            SOL_TCP,
            TCP_INFO,
            info.as_mut_ptr(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len == 0 {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(info[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{run_in_netns, NetnsHandle};
    use crate::testutil::{run, unique};
    use serde_json::Value;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::MetadataExt;
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::time::Duration;

    /// Holds sockets described by a JSON spec, prints `{"pid", KIND: [[fd, inode]...],
    /// ...}` and then answers `recv FD` lines until stdin closes. Kinds: tcp4/tcp6 (N
    /// connections: a listener plus both ends, 2N+1 sockets), udp4/udp6 (N sockets),
    /// unix (N socketpairs). `check`: a never-used, a bound-only, an established and
    /// two reset TCP sockets.
    const HOLDER: &str = r#"
import json, os, socket, struct, sys, time
spec = json.loads(sys.argv[1])
keep, out = [], {"pid": os.getpid()}
def rec(key, s):
    keep.append(s)
    out.setdefault(key, []).append([s.fileno(), os.fstat(s.fileno()).st_ino])
for fam, key, host in ((socket.AF_INET, "tcp4", "127.0.0.1"), (socket.AF_INET6, "tcp6", "::1")):
    if spec.get(key):
        l = socket.socket(fam); l.bind((host, 0)); l.listen(64); rec(key, l)
        for _ in range(spec[key]):
            c = socket.create_connection(l.getsockname()[:2]); a, _ = l.accept()
            rec(key, c); rec(key, a)
for fam, key in ((socket.AF_INET, "udp4"), (socket.AF_INET6, "udp6")):
    for _ in range(spec.get(key, 0)):
        rec(key, socket.socket(fam, socket.SOCK_DGRAM))
for _ in range(spec.get("unix", 0)):
    a, b = socket.socketpair(); rec("unix", a); rec("unix", b)
if spec.get("check"):
    never = socket.socket(); keep.append(never); out["never"] = never.fileno()
    b = socket.socket(); b.bind(("127.0.0.1", 0)); keep.append(b)
    out["bound"] = [b.fileno(), b.getsockname()[1]]
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8); keep.append(l)
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); keep += [c, a]
    out["est"] = [c.fileno(), c.getsockname()[1]]
    for key in ("reset", "reset2"):
        r = socket.create_connection(l.getsockname()); ra, _ = l.accept()
        ra.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); ra.close()
        keep.append(r); out[key] = [r.fileno(), r.getsockname()[1]]
    time.sleep(0.1)
by_fd = {s.fileno(): s for s in keep}
print(json.dumps(out), flush=True)
for line in sys.stdin:
    s = by_fd[int(line.split()[1])]; s.settimeout(1)
    try: print("ok", len(s.recv(1)), flush=True)
    except OSError as e: print("err", e.errno, flush=True)
"#;

    /// Creates short-lived children that open sockets, for `secs` seconds.
    const STORM: &str = r#"
import os, socket, sys, time
end = time.time() + float(sys.argv[1])
while time.time() < end:
    pid = os.fork()
    if pid == 0:
        keep = [socket.socket() for _ in range(20)] + [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
        os._exit(0)
    os.waitpid(pid, 0)
"#;

    fn python() -> &'static str {
        if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3" // readable by nobody, unlike a pyenv under /root
        } else {
            "python3"
        }
    }

    /// `ip netns add sm-ps-...` with lo up; deleted on drop.
    struct TestNetns(String);

    impl TestNetns {
        fn new() -> TestNetns {
            let name = unique("sm-ps");
            run("ip", &["netns", "add", &name]);
            let ns = TestNetns(name);
            run("ip", &["-n", &ns.0, "link", "set", "lo", "up"]);
            ns
        }

        fn path(&self) -> String {
            format!("/run/netns/{}", self.0)
        }

        fn id(&self) -> u64 {
            std::fs::metadata(self.path()).unwrap().ino()
        }

        fn handle(&self) -> NetnsHandle {
            let m = std::fs::metadata(self.path()).unwrap();
            NetnsHandle {
                id: m.ino(),
                dev: m.dev(),
                names: vec![self.0.clone()],
                path: self.path().into(),
                processes: 0,
                host: false,
                pid: None,
            }
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    /// A running HOLDER; killed on drop.
    struct Holder {
        child: Child,
        stdin: ChildStdin,
        out: BufReader<ChildStdout>,
        info: Value,
    }

    impl Holder {
        /// `prefix` execs the next word (prlimit, ip netns exec, setpriv).
        fn spawn(prefix: &[&str], spec: &str) -> Holder {
            let mut cmd = match prefix.split_first() {
                Some((first, rest)) => {
                    let mut c = Command::new(first);
                    c.args(rest).arg(python());
                    c
                }
                None => Command::new(python()),
            };
            let mut child = cmd
                .args(["-c", HOLDER, spec])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take().unwrap();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            let info: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("holder {prefix:?} said {line:?}: {e}"));
            assert_eq!(info["pid"].as_u64(), Some(u64::from(child.id())), "exec'd");
            Holder {
                child,
                stdin,
                out,
                info,
            }
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        /// (fd, inode) of every socket of one kind.
        fn sockets(&self, kind: &str) -> Vec<(u32, u32)> {
            self.info[kind]
                .as_array()
                .map(|v| {
                    v.iter()
                        .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_u64().unwrap() as u32))
                        .collect()
                })
                .unwrap_or_default()
        }

        fn all_sockets(&self) -> Vec<(u32, u32)> {
            ["tcp4", "tcp6", "udp4", "udp6", "unix"]
                .iter()
                .flat_map(|k| self.sockets(k))
                .collect()
        }

        fn fd_port(&self, key: &str) -> (u32, u16) {
            let v = &self.info[key];
            (v[0].as_u64().unwrap() as u32, v[1].as_u64().unwrap() as u16)
        }

        /// What the holder's own recv(1) on `fd` returns: "ok N" or "err ERRNO".
        fn recv(&mut self, fd: u32) -> String {
            writeln!(self.stdin, "recv {fd}").unwrap();
            let mut line = String::new();
            self.out.read_line(&mut line).unwrap();
            line.trim().to_string()
        }

        /// `ls /proc/PID/fd | wc -l`
        fn ls_fds(&self) -> u64 {
            let out = Command::new("sh")
                .args(["-c", &format!("ls /proc/{}/fd | wc -l", self.pid())])
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        }
    }

    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn require_root() -> bool {
        if !is_root() {
            eprintln!("skipped: needs root (network namespaces, other processes' fds)");
        }
        is_root()
    }

    /// As root, only processes we may not ptrace (here: the VM's pid 1, which holds
    /// a capability we lack) can be missing.
    fn assert_only_denied(scan: &ProcScan) {
        for m in &scan.missing {
            assert_eq!(
                m.why, "permission denied, even as root",
                "{:?}",
                scan.missing
            );
        }
    }

    fn proc_idx(scan: &ProcScan, pid: u32) -> u32 {
        scan.procs.iter().position(|p| p.pid == pid).unwrap() as u32
    }

    fn ns_ino(path: &str) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    /// The `ino:` line of /proc/PID/fdinfo/FD (6.18).
    fn fdinfo_ino(pid: u32, fd: u32) -> Option<u32> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("ino:"))?
            .trim()
            .parse()
            .ok()
    }

    #[test]
    fn scan_counts_and_indexes_real_sockets() {
        if !require_root() {
            return;
        }
        let spec = r#"{"tcp4": 3, "tcp6": 2, "udp4": 2, "udp6": 1, "unix": 2}"#;
        let a = Holder::spawn(&["prlimit", "--nofile=64:128"], spec);
        let ns = TestNetns::new();
        let b = Holder::spawn(&["ip", "netns", "exec", &ns.0], r#"{"tcp4": 1, "unix": 1}"#);
        let scan = scan(&ProcScanOptions::default());
        assert_only_denied(&scan);
        assert!(scan.procs.windows(2).all(|w| w[0].pid < w[1].pid));
        assert_eq!(scan.stats.socket_fds, scan.sockets.len() as u64);
        assert_eq!(
            scan.stats.fds,
            scan.procs.iter().map(|p| p.fds).sum::<u64>()
        );
        assert_eq!(
            scan.stats.pids,
            scan.procs.len() as u64 + scan.stats.vanished
        );
        assert!(scan
            .sockets
            .as_slice()
            .windows(2)
            .all(|w| w[0].inode <= w[1].inode));
        assert!(scan
            .sockets
            .iter()
            .all(|s| (s.proc_idx as usize) < scan.procs.len()));

        let host_ns = ns_ino("/proc/self/ns/net");
        let pa = scan.find(a.pid()).unwrap();
        assert_eq!(pa.socket_fds, 7 + 5 + 2 + 1 + 4);
        assert_eq!(pa.fds, a.ls_fds());
        assert!(pa.fds_read);
        assert_eq!((pa.fd_soft, pa.fd_hard), (Some(64), Some(128)));
        assert_eq!(pa.uid, 0);
        assert!(pa.comm.starts_with("python3"), "{:?}", pa.comm);
        assert!(
            pa.cmdline.starts_with(&format!("{} -c ", python())),
            "{:?}",
            pa.cmdline
        );
        assert!(pa.cmdline.chars().count() <= 256 && !pa.cmdline.contains('\0'));
        assert_eq!(pa.netns, Some(host_ns));
        assert!(pa.thread_netns.is_empty());
        let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        assert_eq!(
            pa.cgroup.as_deref(),
            Some(own_cgroup.as_str()),
            "same cgroup as its parent"
        );

        let pb = scan.find(b.pid()).unwrap();
        assert_eq!(pb.netns, Some(ns.id()));
        assert_eq!(pb.socket_fds, 3 + 2);
        assert_eq!(pb.fds, b.ls_fds());

        // The index: every socket of both holders, under the right process and fd.
        for (h, sockets) in [(&a, a.all_sockets()), (&b, b.all_sockets())] {
            let idx = proc_idx(&scan, h.pid());
            assert_eq!(
                scan.sockets.iter().filter(|s| s.proc_idx == idx).count(),
                sockets.len()
            );
            for (fd, inode) in sockets {
                let hit = SocketFd {
                    inode,
                    proc_idx: idx,
                    fd,
                };
                assert_eq!(scan.sockets.lookup(inode), [hit], "only this fd holds it");
                let r = scan.sockets.position(inode).unwrap();
                assert_eq!(scan.sockets.as_slice()[r], [hit]);
                assert_eq!(scan.proc_of(&hit).pid, h.pid());
                assert!(still_holds(h.pid(), fd, inode));
                assert!(!still_holds(h.pid(), fd, inode + 1));
            }
        }
        let (fd, inode) = a.sockets("tcp4")[1];
        assert_eq!(fdinfo_ino(a.pid(), fd), Some(inode), "fdinfo agrees");
        assert!(scan.sockets.lookup(0).is_empty() && scan.sockets.position(0).is_none());
        assert!(!still_holds(a.pid(), 0, inode), "fd 0 is a pipe");
        assert!(!still_holds(a.pid(), 999, inode), "no such fd");

        for (kind, proto) in [
            ("tcp4", SocketProto::Tcp),
            ("tcp6", SocketProto::Tcp6),
            ("udp4", SocketProto::Udp),
            ("udp6", SocketProto::Udp6),
            ("unix", SocketProto::Unix),
        ] {
            for (fd, _) in a.sockets(kind) {
                assert_eq!(socket_proto(a.pid(), fd).unwrap(), proto, "{kind} fd {fd}");
            }
        }
        assert_eq!(SocketProto::Tcp6.name(), "TCPv6");
        let e = socket_proto(a.pid(), 0).unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(95),
            "a pipe has no xattrs: EOPNOTSUPP"
        );
        let e = socket_proto(a.pid(), 999).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    /// A process whose main thread called pthread_exit: the leader is a zombie with no
    /// namespaces and an empty fd directory, but its other thread holds sockets.
    #[test]
    fn zombie_leader_with_live_thread() {
        if !require_root() {
            return;
        }
        const SRC: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
static void *hold(void *arg) {
    int t = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET6, SOCK_DGRAM, 0);
    printf("%d %d %d\n", t, u, (int)gettid());
    fflush(stdout);
    for (;;) pause();
    return arg;
}
int main(void) {
    pthread_t th;
    pthread_create(&th, 0, hold, 0);
    pthread_exit(0);
}
"#;
        let dir = std::env::temp_dir().join(unique("sm-ps-zombie"));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, exe) = (dir.join("z.c"), dir.join("z"));
        std::fs::write(&src, SRC).unwrap();
        let built = Command::new("gcc")
            .args(["-O", "-pthread", "-o"])
            .arg(&exe)
            .arg(&src)
            .status();
        if !built.is_ok_and(|s| s.success()) {
            eprintln!("skipped: gcc could not build the helper");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        struct Kill(Child, std::path::PathBuf);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
                let _ = std::fs::remove_dir_all(&self.1);
            }
        }
        let mut child = Kill(
            Command::new(&exe).stdout(Stdio::piped()).spawn().unwrap(),
            dir,
        );
        let mut line = String::new();
        BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let nums: Vec<u32> = line
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        let (pid, tid) = (child.0.id(), nums[2]);
        let zombie = (0..500).any(|_| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let zombie = stat[stat.rfind(')').unwrap() + 2..].starts_with('Z');
            if !zombie {
                std::thread::sleep(Duration::from_millis(10));
            }
            zombie
        });
        assert!(zombie, "the leader never became a zombie");
        let inode = |fd: u32| {
            std::fs::metadata(format!("/proc/{pid}/task/{tid}/fd/{fd}"))
                .unwrap()
                .ino() as u32
        };
        let scan = scan(&ProcScanOptions::default());
        let p = scan
            .find(pid)
            .expect("a zombie leader with a live thread is scanned");
        assert!(p.fds_read);
        assert_eq!(p.socket_fds, 2);
        assert_eq!(p.netns, Some(ns_ino("/proc/self/ns/net")));
        assert_eq!(
            p.fd_soft,
            Some(
                rustix::process::getrlimit(rustix::process::Resource::Nofile)
                    .current
                    .unwrap()
            )
        );
        assert!(p.cmdline.ends_with("/z"), "{:?}", p.cmdline);
        let idx = proc_idx(&scan, pid);
        for fd in [nums[0], nums[1]] {
            let hit = SocketFd {
                inode: inode(fd),
                proc_idx: idx,
                fd,
            };
            assert_eq!(scan.sockets.lookup(hit.inode), [hit]);
        }
    }

    /// The scan in each thread count gives the same processes and the same index.
    #[test]
    fn thread_counts_agree() {
        if !require_root() {
            return;
        }
        let a = Holder::spawn(&[], r#"{"tcp4": 5, "unix": 5}"#);
        let one = scan(&ProcScanOptions {
            threads: 1,
            cmdline_max: 0,
        });
        let four = scan(&ProcScanOptions {
            threads: 4,
            cmdline_max: 0,
        });
        assert_eq!(one.stats.threads, 1);
        assert_eq!(four.stats.threads, 4);
        let mine = |s: &ProcScan| -> Vec<(u32, u32)> {
            let idx = proc_idx(s, a.pid());
            s.sockets
                .iter()
                .filter(|x| x.proc_idx == idx)
                .map(|x| (x.inode, x.fd))
                .collect()
        };
        assert_eq!(mine(&one), mine(&four));
        assert_eq!(mine(&one).len(), 11 + 10);
        assert_eq!(
            one.find(a.pid()).unwrap().cmdline,
            "",
            "cmdline_max 0: not read"
        );
    }

    /// A thread of this test process setns'd into another netns: the scan, run from
    /// that very thread, reports it for our process.
    #[test]
    fn thread_in_other_netns() {
        if !require_root() {
            return;
        }
        let ns = TestNetns::new();
        let me = std::process::id();
        let scan = run_in_netns(&ns.handle(), || scan(&ProcScanOptions::default())).unwrap();
        let p = scan.find(me).unwrap();
        assert_eq!(
            p.netns,
            Some(ns_ino("/proc/self/ns/net")),
            "the leader stayed"
        );
        assert!(p.thread_netns.contains(&ns.id()), "{:?}", p.thread_netns);
        assert!(!p.thread_netns.contains(&p.netns.unwrap()));
    }

    #[test]
    fn check_socket_reads_state_error_and_port() {
        if !require_root() {
            return;
        }
        let mut h = Holder::spawn(&[], r#"{"check": true}"#);
        let pid = h.pid();
        let never = h.info["never"].as_u64().unwrap() as u32;
        let c = check_socket(pid, never, true).unwrap();
        assert_eq!(
            c,
            SocketCheck {
                tcp_state: TCP_CLOSE,
                so_error: 0,
                local_port: 0
            }
        );
        let (fd, port) = h.fd_port("bound");
        assert_eq!(
            check_socket(pid, fd, true).unwrap(),
            SocketCheck {
                tcp_state: TCP_CLOSE,
                so_error: 0,
                local_port: port
            }
        );
        let (fd, port) = h.fd_port("est");
        assert_eq!(
            check_socket(pid, fd, true).unwrap(),
            SocketCheck {
                tcp_state: 1,
                so_error: 0,
                local_port: port
            }
        );
        let (fd, port) = h.fd_port("reset");
        // Without read_error, nothing is consumed: the error is still there after.
        assert_eq!(check_socket(pid, fd, false).unwrap().so_error, 0);
        assert_eq!(
            check_socket(pid, fd, true).unwrap(),
            SocketCheck {
                tcp_state: TCP_CLOSE,
                so_error: 104,
                local_port: port
            },
            "ECONNRESET; getsockname still shows the port the connection had"
        );
        // The holder's fd survived the check, but the pending error was consumed: its
        // recv sees EOF where an unchecked reset socket sees ECONNRESET.
        assert!(still_holds(pid, fd, fdinfo_ino(pid, fd).unwrap()));
        assert_eq!(h.recv(fd), "ok 0");
        let (fd2, _) = h.fd_port("reset2");
        assert_eq!(h.recv(fd2), "err 104");

        let e = check_socket(pid, 0, true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(88), "a pipe: ENOTSOCK");
        let e = check_socket(pid, 999, true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(9), "no such fd: EBADF");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = check_socket(std::process::id(), udp.as_raw_fd() as u32, true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(95), "UDP: EOPNOTSUPP");
        let gone = {
            let mut c = Command::new("true").spawn().unwrap();
            c.wait().unwrap();
            c.id()
        };
        let e = check_socket(gone, 0, true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(3), "ESRCH");
    }

    /// Processes appear and vanish by the hundred while we scan: no error, no panic,
    /// no missing entry.
    #[test]
    fn fork_storm_is_silent() {
        if !require_root() {
            return;
        }
        let storms: Vec<Child> = (0..2)
            .map(|_| {
                Command::new(python())
                    .args(["-c", STORM, "3"])
                    .spawn()
                    .unwrap()
            })
            .collect();
        struct Reap(Vec<Child>);
        impl Drop for Reap {
            fn drop(&mut self) {
                for c in &mut self.0 {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
        let mut storms = Reap(storms);
        std::thread::sleep(Duration::from_millis(200));
        let (mut scans, mut vanished) = (0, 0);
        while storms.0.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
            for threads in [1, 2] {
                let s = scan(&ProcScanOptions {
                    threads,
                    ..ProcScanOptions::default()
                });
                assert_only_denied(&s);
                assert!(s
                    .sockets
                    .iter()
                    .all(|x| (x.proc_idx as usize) < s.procs.len()));
                vanished += s.stats.vanished;
                scans += 1;
            }
        }
        eprintln!("{scans} scans during the storm, {vanished} processes vanished mid-scan");
        assert!(scans >= 2);
    }

    /// As `nobody` (this thread only: credentials are per thread on Linux, and the
    /// scan's workers inherit them): other users' fds and namespaces are one missing
    /// entry; our own process and a holder running as nobody are still scanned.
    #[test]
    fn unprivileged_scan_summarizes() {
        if !require_root() {
            return;
        }
        let h = Holder::spawn(
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
            r#"{"tcp4": 1, "udp4": 1}"#,
        );
        let own_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let own_inode = std::fs::metadata(format!("/proc/self/fd/{}", own_udp.as_raw_fd()))
            .unwrap()
            .ino() as u32;
        let scan = std::thread::spawn(|| {
            use rustix::process::{Gid, Uid};
            use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
            let (uid, gid) = (Uid::from_raw(65534), Gid::from_raw(65534));
            set_thread_groups(&[]).unwrap();
            set_thread_res_gid(gid, gid, gid).unwrap();
            set_thread_res_uid(uid, uid, uid).unwrap();
            assert!(!is_root());
            scan(&ProcScanOptions::default())
        })
        .join()
        .unwrap();
        assert_eq!(scan.missing.len(), 1, "{:?}", scan.missing);
        let m = &scan.missing[0];
        assert_eq!(m.why, "permission denied: not root");
        assert!(
            m.what.starts_with("fds and network namespaces of ") && m.what.ends_with(" processes"),
            "{m:?}"
        );
        let me = scan.find(std::process::id()).unwrap();
        assert!(me.fds_read && me.netns.is_some());
        let idx = proc_idx(&scan, me.pid);
        assert!(scan
            .sockets
            .lookup(own_inode)
            .iter()
            .any(|s| s.proc_idx == idx));
        let p = scan.find(h.pid()).unwrap();
        assert_eq!(p.uid, 65534);
        assert!(p.fds_read);
        assert_eq!(p.socket_fds, 3 + 1);
        let init = scan.find(1).unwrap();
        assert!(!init.fds_read && init.netns.is_none() && init.fds == 0);
        assert!(
            !init.comm.is_empty() && init.fd_soft.is_some(),
            "world-readable parts"
        );
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_socket_link(b"socket:[25515637]"), Some(25515637));
        assert_eq!(parse_socket_link(b"socket:[4294967295]"), Some(u32::MAX));
        for bad in [
            &b"socket:[4294967296]"[..],
            b"socket:[]",
            b"socket:[12",
            b"pipe:[12]",
            b"/dev/null",
            b"anon_inode:[eventfd]",
            b"socket:[1 ]",
        ] {
            assert_eq!(
                parse_socket_link(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b".."), None);

        // Our own limits file against getrlimit.
        let text = std::fs::read("/proc/self/limits").unwrap();
        let r = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(
            parse_nofile_limit(&text),
            Some((r.current.unwrap(), r.maximum.unwrap()))
        );
        // Other lines of that file show how the kernel prints "unlimited".
        let unlimited = String::from_utf8(text)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Max cpu time"))
            .unwrap()
            .replace("Max cpu time", "Max open files");
        assert_eq!(
            parse_nofile_limit(unlimited.as_bytes()),
            Some((u64::MAX, u64::MAX))
        );
        assert_eq!(parse_nofile_limit(b"Limit Soft Limit\n"), None);

        assert_eq!(
            cmdline_text(b"python3\0-c\0print(1)\0", 256),
            "python3 -c print(1)"
        );
        assert_eq!(
            cmdline_text(b"nginx: worker process", 256),
            "nginx: worker process"
        );
        assert_eq!(cmdline_text(b"ab\0\xc3\xa9\xc3\xa9\0", 4), "ab é");
        assert_eq!(cmdline_text(b"", 4), "");

        let mut p = StackPath::new();
        p.push(b"/proc/")
            .push_u32(4294967295)
            .push(b"/fd/")
            .push_u32(0);
        assert_eq!(p.as_cstr(), c"/proc/4294967295/fd/0");

        assert_eq!(failed_what(1 << Part::Fds as u8, 1), "fds of 1 process");
        assert_eq!(
            failed_what(1 << Part::Fds as u8 | 1 << Part::Netns as u8, 37),
            "fds and network namespaces of 37 processes"
        );
        assert_eq!(
            failed_what(0b111, 2),
            "/proc entries, fds and network namespaces of 2 processes"
        );
        assert_eq!(
            failure_reason(Errno::ACCESS, false),
            "permission denied: not root"
        );
        assert_eq!(
            failure_reason(Errno::PERM, true),
            "permission denied, even as root"
        );

        for (name, proto) in [
            (&b"UNIX-STREAM"[..], SocketProto::Unix),
            (b"UDPLITEv6", SocketProto::UdpLite),
            (b"MPTCPv6", SocketProto::Mptcp),
            (b"PING", SocketProto::Other),
            (b"NETLINK", SocketProto::Netlink),
        ] {
            assert_eq!(SocketProto::from_kernel_name(name), proto);
        }
        assert!(SocketProto::Tcp6.is_tcp() && !SocketProto::Mptcp.is_tcp());
    }

    #[test]
    fn index_lookup_with_duplicates() {
        let s = |inode, proc_idx, fd| SocketFd {
            inode,
            proc_idx,
            fd,
        };
        let idx = SocketIndex::new(vec![
            s(9, 0, 3),
            s(5, 1, 4),
            s(9, 0, 2),
            s(7, 2, 1),
            s(9, 1, 8),
        ]);
        assert_eq!(idx.len(), 5);
        assert_eq!(idx.lookup(9), [s(9, 0, 2), s(9, 0, 3), s(9, 1, 8)]);
        assert_eq!(idx.position(9), Some(2..5));
        assert_eq!(idx.lookup(5), [s(5, 1, 4)]);
        assert_eq!(idx.position(6), None);
        assert!(idx.lookup(10).is_empty() && idx.lookup(0).is_empty());
        assert!(SocketIndex::default().lookup(1).is_empty());
        let one = SocketIndex::new(vec![s(u32::MAX, 0, 1)]);
        assert_eq!(one.lookup(u32::MAX), [s(u32::MAX, 0, 1)]);
        assert!(one.lookup(u32::MAX - 1).is_empty());
    }

    /// The bucket table against a plain binary search, on dense, sparse and clustered
    /// inodes with duplicates.
    #[test]
    fn index_buckets_match_binary_search() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (n, spread) in [(1000, 3u64), (5000, 1 << 20), (300, 1 << 31), (64, 1)] {
            let mut fds: Vec<SocketFd> = (0..n)
                .map(|i| SocketFd {
                    inode: (1000 + next() % (n as u64 * spread)).min(u64::from(u32::MAX)) as u32,
                    proc_idx: (next() % 7) as u32,
                    fd: i,
                })
                .collect();
            fds.push(SocketFd {
                inode: u32::MAX,
                proc_idx: 0,
                fd: 0,
            });
            let idx = SocketIndex::new(fds.clone());
            let plain = idx.as_slice();
            let by_search = |inode: u32| {
                let a = plain.partition_point(|s| s.inode < inode);
                let b = plain.partition_point(|s| s.inode <= inode);
                &plain[a..b]
            };
            assert_eq!(idx.len(), fds.len());
            for probe in fds
                .iter()
                .map(|s| s.inode)
                .chain((0..2000).map(|_| next() as u32))
            {
                for inode in [probe, probe.wrapping_sub(1), probe.wrapping_add(1)] {
                    assert_eq!(idx.lookup(inode), by_search(inode), "inode {inode}");
                }
            }
        }
    }
}
