//! Recording a live collection, and rebuilding the Snapshot from the recording.
//!
//! `sockmedic collect` hands [`collect`](crate::collect) a [`Recorder`]
//! (`CollectOptions::record`): every raw input the collection reads is kept as it
//! was read — the /proc and /proc/sys files of the host and of each namespace (as
//! read inside it), the sock_diag requests and reply datagrams of each dump, the
//! process scan and the answers of the per-socket probes, the naming data — along
//! with the decisions that depended on the moment (the bound-inactive stage). The
//! result is a [`Recording`], which the bundle writer stores and the bundle reader
//! loads again.
//!
//! [`replay`](crate::replay) then builds the Snapshot from a Recording with the
//! live collector's own code: the same procfs parsers fold the files, the same
//! sock_diag decoder walks the datagrams into the same [`SocketAggregate`]
//! (`crate::aggregate::SocketAggregate`), the process scan is joined by inode the
//! same way. A newer sockmedic replaying an old recording diagnoses it with its own
//! (newer) rules and aggregation.
//!
//! When nothing is recorded (`record: None`), the live path pays one `Option`
//! test per file and per dump.

use crate::procscan::{ProcScan, SocketCheck};
use crate::sockdiag::RawDump;
use sockmedic_model::{Missing, Snapshot, Source};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Default cap on the raw socket data (sock_diag datagrams) kept: 256 MiB.
pub const DEFAULT_MAX_SOCKET_BYTES: u64 = 256 << 20;

/// A file that could not be read: the error as the collector reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub message: String,
    /// It does not exist (an optional sysctl absent on this kernel is then skipped).
    pub not_found: bool,
}

/// A file as read: its text, or why it could not be read.
pub type FileResult = Result<String, ReadError>;

/// What stage one found when entering a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NsOutcome {
    /// Entered and read (the files and the dump say the rest).
    #[default]
    Read,
    /// Gone since discovery: not reported.
    Gone,
    /// Could not be entered: every figure missing, for this reason.
    Failed(String),
}

/// One dump of one namespace: the raw replies of each parallel part, in part order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DumpRecord {
    pub parts: Vec<RawDump>,
    /// The dump failed with this error (as reported live).
    pub error: Option<String>,
    /// Stage two only: the namespace was gone.
    pub gone: bool,
    /// The raw data was not kept (the size cap): `parts` is empty and the figures
    /// of this dump are only in the live Snapshot.
    pub cut: bool,
    pub duration_ms: f64,
}

/// What the bound-inactive stage (stage two) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BoundStage {
    /// Not asked for (`--state` without bound-inactive, or counters only).
    #[default]
    NotRun,
    /// Skipped: the arithmetic proved no socket is in no table.
    KnownZero,
    /// The kernel does not answer the bound-inactive request.
    Unsupported,
    /// Dumped in every selected namespace (`RecordedNetns::bound`).
    Dumped,
}

/// A namespace as discovered and named, with what was read in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedNetns {
    pub id: u64,
    pub dev: u64,
    pub names: Vec<String>,
    pub path: String,
    pub processes: u64,
    pub host: bool,
    pub pid: Option<u32>,
    pub pod: Option<String>,
    /// Collected (the `--netns` selection, or every one).
    pub selected: bool,
    pub outcome: NsOutcome,
    /// `proc/net/sockstat`, `proc/sys/net/ipv4/tcp_mem`, ... as read inside it.
    pub files: BTreeMap<String, FileResult>,
    pub main: Option<DumpRecord>,
    pub bound: Option<DumpRecord>,
}

/// What a probe of one socket fd answered (`socket_proto`, `still_holds`,
/// `check_socket`), for the fds no dump accounted for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// The protocol's kernel name, or why it could not be read.
    pub proto: Option<Result<String, String>>,
    pub still_holds: Option<bool>,
    pub check: Option<Result<SocketCheck, String>>,
}

/// Kubernetes names as read from kubelet's directories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeRecord {
    /// Pod UID → `namespace/name`.
    pub pods: Vec<(String, String)>,
    /// Container id → (container name, `namespace/pod`).
    pub containers: Vec<(String, String, String)>,
}

/// cgroup v2 ids as walked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupRecord {
    pub mount: String,
    pub paths: Vec<(u64, String)>,
    pub truncated: bool,
}

/// Everything one collection read, enough to build its Snapshot again.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// The live source (kind live; a reader says where it comes from).
    pub source: Source,
    /// The collecting thread's namespace (whose sockstat `ss -s` would read).
    pub here: Option<u64>,
    pub page_size: u64,
    /// `--netns` as given.
    pub netns_selector: Option<String>,
    pub mode: crate::DumpMode,
    pub states: Option<u32>,
    pub port: Option<u16>,
    /// The process scan ran; the cmdlines were kept.
    pub processes: bool,
    pub cmdline: bool,
    pub so_error: bool,
    /// Discovery saw every namespace (nothing missing).
    pub discovery_complete: bool,
    pub discovery_missing: Vec<Missing>,
    pub naming_missing: Vec<Missing>,
    pub kube: KubeRecord,
    /// `None`: there were none (why is in `naming_missing`).
    pub cgroup_ids: Option<CgroupRecord>,
    /// Every namespace discovered, host first.
    pub namespaces: Vec<RecordedNetns>,
    /// `proc/net/sockstat` (and `sockstat6`) of the collector, and the host-only
    /// sysctls read in the initial namespace.
    pub host_files: BTreeMap<String, FileResult>,
    /// The host-only sysctls could not be read at all, for this reason.
    pub host_sysctls_error: Option<String>,
    /// The process scan (`missing` included).
    pub scan: Option<ProcScan>,
    /// Answers of the per-fd probes, by (pid, fd).
    pub probes: BTreeMap<(u32, u32), Probe>,
    pub bound: BoundStage,
    /// Raw socket data kept, and the cap it had.
    pub socket_bytes: u64,
    pub max_socket_bytes: u64,
    /// The Snapshot the live collection built: the figures of a namespace whose
    /// raw data was cut come from here.
    pub live: Option<Snapshot>,
}

impl Recording {
    pub fn netns(&self, id: u64) -> Option<&RecordedNetns> {
        self.namespaces.iter().find(|n| n.id == id)
    }
    fn netns_mut(&mut self, id: u64) -> Option<&mut RecordedNetns> {
        self.namespaces.iter_mut().find(|n| n.id == id)
    }
    /// Namespaces whose raw socket data was cut.
    pub fn cut_netns(&self) -> Vec<u64> {
        self.namespaces
            .iter()
            .filter(|n| {
                n.main.as_ref().is_some_and(|d| d.cut) || n.bound.as_ref().is_some_and(|d| d.cut)
            })
            .map(|n| n.id)
            .collect()
    }
}

/// Which dump of a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Main,
    Bound,
}

/// Progress of a recorded collection, for a progress bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Namespaces found, and how many will be collected.
    Discovered { namespaces: usize, selected: usize },
    /// The process scan is done.
    Scanned { processes: usize, socket_fds: usize },
    /// One namespace's stage one is done.
    NetnsDone { id: u64 },
    /// Raw socket data kept so far.
    Bytes(u64),
}

type ProgressFn = Box<dyn Fn(Progress) + Send + Sync>;

/// The sink a live collection records into (`CollectOptions::record`).
pub struct Recorder {
    rec: Mutex<Recording>,
    max_socket_bytes: u64,
    used: AtomicU64,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("max_socket_bytes", &self.max_socket_bytes)
            .field("used", &self.used.load(Ordering::Relaxed))
            .finish()
    }
}

impl Recorder {
    /// A recorder keeping at most `max_socket_bytes` of raw socket data.
    pub fn new(max_socket_bytes: u64) -> Arc<Recorder> {
        Recorder::with_progress(max_socket_bytes, None)
    }

    pub fn with_progress(max_socket_bytes: u64, progress: Option<ProgressFn>) -> Arc<Recorder> {
        Arc::new(Recorder {
            rec: Mutex::new(Recording {
                max_socket_bytes,
                ..Recording::default()
            }),
            max_socket_bytes,
            used: AtomicU64::new(0),
            progress,
        })
    }

    /// The recording, once the collection is done.
    pub fn take(&self) -> Recording {
        let mut r = std::mem::take(&mut *self.lock());
        r.socket_bytes = self.used.load(Ordering::Relaxed);
        r.max_socket_bytes = self.max_socket_bytes;
        r
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Recording> {
        // A panic elsewhere while recording leaves plain data behind: keep it.
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn progress(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(p);
        }
    }

    pub(crate) fn host_file(&self, name: &str, r: &FileResult) {
        self.lock().host_files.insert(name.to_string(), r.clone());
    }

    pub(crate) fn netns_file(&self, id: u64, name: &str, r: &FileResult) {
        if let Some(ns) = self.lock().netns_mut(id) {
            ns.files.insert(name.to_string(), r.clone());
        }
    }

    pub(crate) fn outcome(&self, id: u64, o: NsOutcome) {
        if let Some(ns) = self.lock().netns_mut(id) {
            ns.outcome = o;
        }
    }

    pub(crate) fn dump(&self, id: u64, stage: Stage, d: DumpRecord) {
        if let Some(ns) = self.lock().netns_mut(id) {
            match stage {
                Stage::Main => ns.main = Some(d),
                Stage::Bound => ns.bound = Some(d),
            }
        }
        self.progress(Progress::Bytes(self.used.load(Ordering::Relaxed)));
    }

    /// Reserves room for `n` more bytes of raw socket data; false once the cap is
    /// reached (the caller then drops what it holds of that dump).
    pub(crate) fn reserve(&self, n: u64) -> bool {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max_socket_bytes {
            self.used.fetch_sub(n, Ordering::Relaxed);
            false
        } else {
            true
        }
    }

    /// Gives back room reserved for data that was dropped after all.
    pub(crate) fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn probe(&self, pid: u32, fd: u32, f: impl FnOnce(&mut Probe)) {
        f(self.lock().probes.entry((pid, fd)).or_default());
    }
}
