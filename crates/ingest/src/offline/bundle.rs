//! sockmedic bundles (`sockmedic collect`): the layout, the manifest, and the reader.
//!
//! A bundle is a gzip-compressed tar (or the directory it unpacks to) holding the
//! RAW sources a live `check` read on the host, so any later sockmedic can diagnose
//! it again with its own rules:
//!
//! ```text
//! sockmedic-HOST-TIME/
//!   manifest.json                 format, tool, host, uname, time, who, options,
//!                                 namespaces, what was missing and why, caps hit
//!   uname.txt                     uname -a, as the collector saw it
//!   host/proc/net/sockstat(6)     the collector's (global fields are host-wide)
//!   host/proc/sys/...             HOST_SYSCTLS, read in the initial namespace
//!   netns/ID/proc/net/{sockstat,sockstat6,snmp,netstat}
//!   netns/ID/proc/sys/...         NETNS_SYSCTLS, read inside the namespace
//!   netns/ID/sock_diag/main.N.nlrec, bound.0.nlrec
//!                                 each dump's requests and reply datagrams as
//!                                 received (sockdiag::RawDump framing)
//!   processes.jsonl               the process scan: one process per line, with its
//!                                 socket fds (inode, protocol, probe answers)
//!   naming/kube.json, naming/cgroups.tsv
//!                                 pod/container names and cgroup v2 ids as read
//!   kmsg.txt                      the kernel log records (/dev/kmsg format)
//!   snapshot.json                 the live Snapshot of the same run (reference)
//! ```
//!
//! Never in a bundle: payload data (sock_diag replies carry none), environment
//! variables (never read), command lines (unless collected with
//! `--include-cmdline`).
//!
//! Reading rebuilds the Snapshot with the live collector's code
//! (`sockmedic_collect::replay`): the same parsers, decoder and aggregator.

use super::{IngestError, ReadOptions};
use serde::{Deserialize, Serialize};
use sockmedic_collect::procscan::{
    ProcInfo, ProcScan, ScanStats, SocketCheck, SocketFd, SocketIndex,
};
use sockmedic_collect::record::{
    BoundStage, CgroupRecord, DumpRecord, FileResult, KubeRecord, NsOutcome, Probe, ReadError,
    RecordedNetns, Recording,
};
use sockmedic_collect::sockdiag::RawDump;
use sockmedic_collect::{DumpMode, ReplayOptions};
use sockmedic_model::{Missing, Snapshot, Source, SourceKind};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The manifest's `format`; a reader refuses other major versions.
pub const BUNDLE_FORMAT: &str = "sockmedic.bundle/v1";
pub const MANIFEST: &str = "manifest.json";
/// Files larger than this in a bundle are refused (a bundle holds at most the raw
/// socket cap in one dump part).
const MAX_ENTRY: u64 = 4 << 30;

/// `uname(2)`, as the collector saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

impl Uname {
    /// As `uname -a` prints it (without the OS name, which it guesses).
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.sysname, self.nodename, self.release, self.version, self.machine
        )
    }
}

/// Who ran the collection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    pub uid: u32,
    pub euid: u32,
    pub root: bool,
}

/// The collection's options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleOptions {
    pub netns: Option<String>,
    /// `full`, `without-established`, `counters-only`.
    pub mode: String,
    pub states: Option<u32>,
    pub port: Option<u16>,
    pub top: usize,
    pub processes: bool,
    pub include_cmdline: bool,
    pub so_error: bool,
    pub max_socket_bytes: u64,
    pub pods_dir: String,
    pub containers_dir: String,
}

/// A file that could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub why: String,
    pub not_found: bool,
}

/// One dump of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DumpManifest {
    /// Parallel parts, each in `sock_diag/STAGE.N.nlrec`.
    pub parts: usize,
    /// Bytes of raw data kept.
    pub bytes: u64,
    pub duration_ms: f64,
    pub error: Option<String>,
    pub gone: bool,
    /// Not kept: over the cap on raw socket data.
    pub cut: bool,
}

/// A namespace: how it was found and named, and what was read in it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetnsManifest {
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
    /// `read`, `gone` (vanished since discovery), `failed` (see `error`).
    pub outcome: String,
    pub error: Option<String>,
    /// Files that could not be read (by their path in the bundle, under `netns/ID/`).
    pub unreadable: BTreeMap<String, Unreadable>,
    /// `main` (stage one) and `bound` (the bound-inactive stage).
    pub dumps: BTreeMap<String, DumpManifest>,
}

/// What was missing and why: the live collector's lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MissingSections {
    pub discovery: Vec<Missing>,
    pub naming: Vec<Missing>,
    /// The live Snapshot's whole list.
    pub snapshot: Vec<Missing>,
}

/// The raw socket data kept, and its cap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketData {
    pub bytes: u64,
    pub cap: u64,
    /// Namespaces whose raw data was not kept (their counts are still exact: the
    /// live aggregate's, in snapshot.json).
    pub cut: Vec<u64>,
    pub note: Option<String>,
}

/// The process scan's summary (the processes are in processes.jsonl).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanManifest {
    pub processes: usize,
    pub socket_fds: usize,
    pub pids: u64,
    pub vanished: u64,
    pub threads: u32,
    pub duration_ms: f64,
    pub missing: Vec<Missing>,
}

/// The kernel log's file and clock.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KmsgManifest {
    /// `kmsg.txt`, or `None` when it could not be read (see `error`).
    pub file: Option<String>,
    pub records: u64,
    /// Wall time of boot (seconds since the epoch) and the log's clock when read.
    pub boot_time_s: Option<f64>,
    pub now_s: Option<f64>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub tool: String,
    pub host: String,
    pub kernel: Option<String>,
    pub uname: Uname,
    /// RFC 3339, UTC.
    pub taken_at: String,
    pub duration_ms: Option<f64>,
    pub uptime_s: Option<f64>,
    pub who: Who,
    /// The datagrams are in this byte order (`little`/`big`).
    pub byte_order: String,
    pub page_size: u64,
    /// The collector's namespace.
    pub here_netns: Option<u64>,
    pub options: BundleOptions,
    pub discovery_complete: bool,
    pub namespaces: Vec<NetnsManifest>,
    /// `not-run`, `known-zero`, `unsupported`, `dumped`.
    pub bound_stage: String,
    pub host_unreadable: BTreeMap<String, Unreadable>,
    pub host_sysctls_error: Option<String>,
    pub process_scan: Option<ScanManifest>,
    pub missing: MissingSections,
    pub socket_data: SocketData,
    pub kernel_log: KmsgManifest,
    /// Every other file of the bundle.
    pub files: Vec<String>,
}

/// One line of processes.jsonl.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessLine {
    pub pid: u32,
    pub comm: String,
    pub uid: u32,
    pub netns: Option<u64>,
    #[serde(default)]
    pub thread_netns: Vec<u64>,
    /// `/proc/PID/cgroup` as read.
    pub cgroup: Option<String>,
    /// The cgroup path it names (v2, or v1's systemd/memory line), for reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_path: Option<String>,
    /// RLIMIT_NOFILE (soft, hard); `u64::MAX` is unlimited.
    pub fd_soft: Option<u64>,
    pub fd_hard: Option<u64>,
    pub fds: u64,
    pub socket_fds: u64,
    pub fds_read: bool,
    /// Only with `collect --include-cmdline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    pub sockets: Vec<SocketLine>,
}

/// A socket fd of a process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketLine {
    pub fd: u32,
    pub inode: u32,
    /// `system.sockprotoname` (`TCP`, `TCPv6`, `UNIX`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto_error: Option<String>,
    /// For sockets no dump returned: still held after the dump, and what
    /// `pidfd_getfd` + `TCP_INFO` said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub still_holds: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    pub tcp_state: u8,
    pub so_error: i32,
    pub local_port: u16,
}

/// What a bundle holds besides the Recording.
pub struct BundleExtras<'a> {
    pub uname: Uname,
    pub who: Who,
    pub top: usize,
    pub pods_dir: String,
    pub containers_dir: String,
    /// /dev/kmsg records, or why they could not be read.
    pub kmsg: Result<Vec<String>, String>,
    pub kmsg_boot_time_s: f64,
    pub kmsg_now_s: f64,
    /// The live Snapshot of the run (kernel log included).
    pub live: &'a Snapshot,
    /// The protocol of a socket fd no probe asked about (`system.sockprotoname`).
    pub proto_of: &'a dyn Fn(u32, u32) -> Option<String>,
}

fn mode_name(m: DumpMode) -> &'static str {
    match m {
        DumpMode::Full => "full",
        DumpMode::WithoutEstablished => "without-established",
        DumpMode::CountersOnly => "counters-only",
    }
}

fn mode_of(s: &str) -> DumpMode {
    match s {
        "without-established" => DumpMode::WithoutEstablished,
        "counters-only" => DumpMode::CountersOnly,
        _ => DumpMode::Full,
    }
}

fn bound_name(b: BoundStage) -> &'static str {
    match b {
        BoundStage::NotRun => "not-run",
        BoundStage::KnownZero => "known-zero",
        BoundStage::Unsupported => "unsupported",
        BoundStage::Dumped => "dumped",
    }
}

fn bound_of(s: &str) -> BoundStage {
    match s {
        "known-zero" => BoundStage::KnownZero,
        "unsupported" => BoundStage::Unsupported,
        "dumped" => BoundStage::Dumped,
        _ => BoundStage::NotRun,
    }
}

fn stage_name(main: bool) -> &'static str {
    if main {
        "main"
    } else {
        "bound"
    }
}

fn nlrec_path(id: u64, stage: &str, part: usize) -> String {
    format!("netns/{id}/sock_diag/{stage}.{part}.nlrec")
}

/// Splits recorded files into the bundle's files (with their text) and the
/// unreadable ones.
fn split_files(
    prefix: &str,
    files: &BTreeMap<String, FileResult>,
    out: &mut Vec<(String, Vec<u8>)>,
) -> BTreeMap<String, Unreadable> {
    let mut unreadable = BTreeMap::new();
    for (name, r) in files {
        match r {
            Ok(text) => {
                let mut bytes = text.clone().into_bytes();
                if name.starts_with("proc/sys/") {
                    bytes.push(b'\n');
                }
                out.push((format!("{prefix}{name}"), bytes));
            }
            Err(e) => {
                unreadable.insert(
                    name.clone(),
                    Unreadable {
                        why: e.message.clone(),
                        not_found: e.not_found,
                    },
                );
            }
        }
    }
    unreadable
}

/// Writes every file of a bundle of `rec` by calling `put(path, bytes)` (paths
/// relative to the bundle's top directory), the manifest first (a reader knows a
/// bundle from its first entry). The raw dumps are handed over without copying.
pub fn write_entries(
    rec: &Recording,
    extras: &BundleExtras<'_>,
    put: &mut dyn FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<Manifest> {
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    let host_unreadable = split_files("host/", &rec.host_files, &mut small);
    let mut namespaces = Vec::new();
    let mut raw: Vec<(String, &RawDump)> = Vec::new();
    for n in &rec.namespaces {
        let prefix = format!("netns/{}/", n.id);
        let unreadable = split_files(&prefix, &n.files, &mut small);
        let mut dumps = BTreeMap::new();
        for (main, d) in [(true, &n.main), (false, &n.bound)] {
            let Some(d) = d else { continue };
            let stage = stage_name(main);
            for (i, part) in d.parts.iter().enumerate() {
                raw.push((nlrec_path(n.id, stage, i), part));
            }
            dumps.insert(
                stage.to_string(),
                DumpManifest {
                    parts: d.parts.len(),
                    bytes: d.parts.iter().map(|p| p.len() as u64).sum(),
                    duration_ms: d.duration_ms,
                    error: d.error.clone(),
                    gone: d.gone,
                    cut: d.cut,
                },
            );
        }
        let (outcome, error) = match &n.outcome {
            NsOutcome::Read => ("read", None),
            NsOutcome::Gone => ("gone", None),
            NsOutcome::Failed(e) => ("failed", Some(e.clone())),
        };
        namespaces.push(NetnsManifest {
            id: n.id,
            dev: n.dev,
            names: n.names.clone(),
            path: n.path.clone(),
            processes: n.processes,
            host: n.host,
            pid: n.pid,
            pod: n.pod.clone(),
            selected: n.selected,
            outcome: outcome.into(),
            error,
            unreadable,
            dumps,
        });
    }
    // The process scan.
    let mut process_scan = None;
    if let Some(ps) = &rec.scan {
        let mut by_proc: Vec<Vec<&SocketFd>> = vec![Vec::new(); ps.procs.len()];
        for s in ps.sockets.iter() {
            if let Some(v) = by_proc.get_mut(s.proc_idx as usize) {
                v.push(s);
            }
        }
        let mut jsonl = Vec::new();
        for (p, fds) in ps.procs.iter().zip(by_proc) {
            let line = process_line(p, &fds, rec, extras);
            serde_json::to_writer(&mut jsonl, &line).map_err(std::io::Error::other)?;
            jsonl.push(b'\n');
        }
        small.push(("processes.jsonl".into(), jsonl));
        process_scan = Some(ScanManifest {
            processes: ps.procs.len(),
            socket_fds: ps.sockets.len(),
            pids: ps.stats.pids,
            vanished: ps.stats.vanished,
            threads: ps.stats.threads,
            duration_ms: ps.stats.duration_ms,
            missing: ps.missing.clone(),
        });
    }
    // Naming.
    small.push((
        "naming/kube.json".into(),
        serde_json::to_vec_pretty(&KubeFile::from(&rec.kube)).map_err(std::io::Error::other)?,
    ));
    if let Some(c) = &rec.cgroup_ids {
        let mut tsv = format!(
            "# cgroup v2 ids of {} (id<TAB>path){}\n",
            c.mount,
            if c.truncated { "; truncated" } else { "" }
        );
        for (id, path) in &c.paths {
            tsv.push_str(&format!("{id}\t{path}\n"));
        }
        small.push(("naming/cgroups.tsv".into(), tsv.into_bytes()));
    }
    // Kernel log, uname, the live snapshot.
    let kernel_log = match &extras.kmsg {
        Ok(records) => {
            let mut text = records.join("\n");
            text.push('\n');
            small.push(("kmsg.txt".into(), text.into_bytes()));
            KmsgManifest {
                file: Some("kmsg.txt".into()),
                records: records.len() as u64,
                boot_time_s: Some(extras.kmsg_boot_time_s),
                now_s: Some(extras.kmsg_now_s),
                error: None,
            }
        }
        Err(e) => KmsgManifest {
            error: Some(e.clone()),
            ..KmsgManifest::default()
        },
    };
    small.push((
        "uname.txt".into(),
        format!("{}\n", extras.uname.line()).into_bytes(),
    ));
    small.push((
        "snapshot.json".into(),
        serde_json::to_vec_pretty(extras.live).map_err(std::io::Error::other)?,
    ));

    let cut = rec.cut_netns();
    let note = (!cut.is_empty()).then(|| {
        format!(
            "the raw socket data of {} namespace(s) was not kept: over the cap of {} bytes (--max-socket-bytes); their counts are exact, from the live aggregate in snapshot.json",
            cut.len(),
            rec.max_socket_bytes
        )
    });
    let mut files: Vec<String> = small.iter().map(|(p, _)| p.clone()).collect();
    files.extend(raw.iter().map(|(p, _)| p.clone()));
    let s = &rec.source;
    let manifest = Manifest {
        format: BUNDLE_FORMAT.into(),
        tool: s.tool.clone(),
        host: s.host.clone(),
        kernel: s.kernel.clone(),
        uname: extras.uname.clone(),
        taken_at: s.taken_at.clone(),
        duration_ms: s.duration_ms,
        uptime_s: s.uptime_s,
        who: extras.who.clone(),
        byte_order: if cfg!(target_endian = "big") {
            "big"
        } else {
            "little"
        }
        .into(),
        page_size: rec.page_size,
        here_netns: rec.here,
        options: BundleOptions {
            netns: rec.netns_selector.clone(),
            mode: mode_name(rec.mode).into(),
            states: rec.states,
            port: rec.port,
            top: extras.top,
            processes: rec.processes,
            include_cmdline: rec.cmdline,
            so_error: rec.so_error,
            max_socket_bytes: rec.max_socket_bytes,
            pods_dir: extras.pods_dir.clone(),
            containers_dir: extras.containers_dir.clone(),
        },
        discovery_complete: rec.discovery_complete,
        namespaces,
        bound_stage: bound_name(rec.bound).into(),
        host_unreadable,
        host_sysctls_error: rec.host_sysctls_error.clone(),
        process_scan,
        missing: MissingSections {
            discovery: rec.discovery_missing.clone(),
            naming: rec.naming_missing.clone(),
            snapshot: extras.live.missing.clone(),
        },
        socket_data: SocketData {
            bytes: rec.socket_bytes,
            cap: rec.max_socket_bytes,
            cut,
            note,
        },
        kernel_log,
        files,
    };
    let m = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    put(MANIFEST, &m)?;
    for (path, bytes) in &small {
        put(path, bytes)?;
    }
    for (path, dump) in &raw {
        put(path, dump.as_bytes())?;
    }
    Ok(manifest)
}

fn process_line(
    p: &ProcInfo,
    fds: &[&SocketFd],
    rec: &Recording,
    extras: &BundleExtras<'_>,
) -> ProcessLine {
    let sockets = fds
        .iter()
        .map(|s| {
            let probe = rec.probes.get(&(p.pid, s.fd));
            let mut line = SocketLine {
                fd: s.fd,
                inode: s.inode,
                ..SocketLine::default()
            };
            match probe.and_then(|pr| pr.proto.clone()) {
                Some(Ok(name)) => line.proto = Some(name),
                Some(Err(e)) => line.proto_error = Some(e),
                None => line.proto = (extras.proto_of)(p.pid, s.fd),
            }
            if let Some(pr) = probe {
                line.still_holds = pr.still_holds;
                match &pr.check {
                    Some(Ok(c)) => {
                        line.check = Some(CheckLine {
                            tcp_state: c.tcp_state,
                            so_error: c.so_error,
                            local_port: c.local_port,
                        })
                    }
                    Some(Err(e)) => line.check_error = Some(e.clone()),
                    None => {}
                }
            }
            line
        })
        .collect();
    ProcessLine {
        pid: p.pid,
        comm: p.comm.clone(),
        uid: p.uid,
        netns: p.netns,
        thread_netns: p.thread_netns.clone(),
        cgroup: p.cgroup.clone(),
        cgroup_path: p
            .cgroup
            .as_deref()
            .and_then(sockmedic_collect::cgroup::process_cgroup_path),
        fd_soft: p.fd_soft,
        fd_hard: p.fd_hard,
        fds: p.fds,
        socket_fds: p.socket_fds,
        fds_read: p.fds_read,
        cmdline: rec.cmdline.then(|| p.cmdline.clone()),
        sockets,
    }
}

/// naming/kube.json.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct KubeFile {
    /// Pod UID → `namespace/name`.
    pods: BTreeMap<String, String>,
    /// Container id → name and pod.
    containers: BTreeMap<String, KubeContainer>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct KubeContainer {
    name: String,
    pod: String,
}

impl From<&KubeRecord> for KubeFile {
    fn from(k: &KubeRecord) -> Self {
        KubeFile {
            pods: k.pods.iter().cloned().collect(),
            containers: k
                .containers
                .iter()
                .map(|(id, name, pod)| {
                    (
                        id.clone(),
                        KubeContainer {
                            name: name.clone(),
                            pod: pod.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------- reading

/// A bundle's files, by path relative to its top directory.
struct Files {
    /// What the user named (for messages).
    name: String,
    map: HashMap<String, Vec<u8>>,
}

impl Files {
    fn get(&self, path: &str) -> Option<&[u8]> {
        self.map.get(path).map(Vec::as_slice)
    }
    fn text(&self, path: &str) -> Option<String> {
        self.get(path)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    fn err(&self, why: impl Into<String>) -> IngestError {
        IngestError::Parse {
            path: self.name.clone(),
            why: why.into(),
        }
    }
}

/// Whether `path` is a bundle: a gzip'd (or plain) tar whose first entry is a
/// manifest, or a directory with a sockmedic manifest.json (at its top or in its
/// one subdirectory). Only the first bytes are looked at.
pub fn is_bundle(path: &Path) -> bool {
    if path.is_dir() {
        return manifest_dir(path).is_some();
    }
    let mut head = [0u8; 512];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = &head[..n];
    head.starts_with(&[0x1f, 0x8b]) || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// The directory holding a bundle's manifest.json: `dir` or its only subdirectory.
fn manifest_dir(dir: &Path) -> Option<PathBuf> {
    let ours = |d: &Path| {
        let text = std::fs::read_to_string(d.join(MANIFEST)).ok()?;
        text.contains("\"sockmedic.bundle/")
            .then(|| d.to_path_buf())
    };
    if let Some(d) = ours(dir) {
        return Some(d);
    }
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match subdirs.as_slice() {
        [one] => ours(one),
        _ => None,
    }
}

/// Reads a bundle (file or unpacked directory) into a Snapshot, or `None` when
/// `path` is not one (then it is read as saved text).
pub fn read_bundle(path: &Path, opts: ReadOptions) -> Result<Option<Snapshot>, IngestError> {
    if !is_bundle(path) {
        return Ok(None);
    }
    let files = if path.is_dir() {
        match manifest_dir(path) {
            Some(dir) => files_of_dir(&dir, &path.display().to_string())?,
            None => return Ok(None),
        }
    } else {
        match files_of_tar(path)? {
            Some(f) => f,
            None => return Ok(None),
        }
    };
    snapshot_of(&files, opts).map(Some)
}

fn io_err(path: &str, e: impl std::fmt::Display) -> IngestError {
    IngestError::Io {
        path: path.to_string(),
        why: e.to_string(),
    }
}

/// The entries of a (gzip'd) tar, or `None` when it holds no sockmedic manifest.
fn files_of_tar(path: &Path) -> Result<Option<Files>, IngestError> {
    let name = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| io_err(&name, e))?;
    let mut magic = [0u8; 2];
    let gz = f.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let f = std::fs::File::open(path).map_err(|e| io_err(&name, e))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)))
    } else {
        Box::new(std::io::BufReader::new(f))
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| io_err(&name, format!("not a readable tar archive: {e}")))?;
    let not_ours = |what: &str| {
        IngestError::Unrecognised {
        path: name.clone(),
        hint: format!(
            "{what}, not a sockmedic bundle (no manifest.json first); unpack an archive of saved outputs (a sosreport) and give --from its directory"
        ),
    }
    };
    let kind = if gz { "a gzip file" } else { "a tar archive" };
    let mut map = HashMap::new();
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(_) if map.is_empty() => return Err(not_ours(kind)),
            Err(e) => return Err(io_err(&name, format!("truncated or damaged bundle: {e}"))),
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let p = entry
            .path()
            .map_err(|e| io_err(&name, format!("truncated or damaged bundle: {e}")))?
            .to_string_lossy()
            .into_owned();
        // A bundle starts with its manifest; any other archive (a sosreport) is
        // not read further here.
        if map.is_empty() && p.rsplit('/').next() != Some(MANIFEST) {
            return Err(not_ours(if gz {
                "a tar.gz archive"
            } else {
                "a tar archive"
            }));
        }
        if entry.size() > MAX_ENTRY {
            return Err(io_err(
                &name,
                format!("{p}: {} bytes, too large", entry.size()),
            ));
        }
        // The header's size is the archive's word: reserve no more than 64 MiB on it.
        let mut bytes = Vec::with_capacity(entry.size().min(64 << 20) as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(&name, format!("{p}: {e} (truncated or damaged bundle)")))?;
        map.insert(p, bytes);
    }
    Ok(strip_top(map).map(|map| Files { name, map }))
}

/// Paths relative to the directory holding manifest.json; `None` without one.
fn strip_top(map: HashMap<String, Vec<u8>>) -> Option<HashMap<String, Vec<u8>>> {
    let manifest = map
        .keys()
        .filter(|k| k.rsplit('/').next() == Some(MANIFEST))
        .min_by_key(|k| k.len())?
        .clone();
    let top = manifest[..manifest.len() - MANIFEST.len()].to_string();
    Some(
        map.into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&top)
                    .map(|rel| (rel.trim_start_matches("./").to_string(), v))
            })
            .collect(),
    )
}

fn files_of_dir(dir: &Path, name: &str) -> Result<Files, IngestError> {
    let mut map = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| io_err(&d.display().to_string(), e))?;
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && meta.len() <= MAX_ENTRY {
                let rel = p
                    .strip_prefix(dir)
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let bytes = std::fs::read(&p).map_err(|e| io_err(&p.display().to_string(), e))?;
                map.insert(rel, bytes);
            }
        }
    }
    Ok(Files {
        name: name.to_string(),
        map,
    })
}

fn read_error(u: &Unreadable) -> ReadError {
    ReadError {
        message: u.why.clone(),
        not_found: u.not_found,
    }
}

/// The recorded files under `prefix` (their text; values of /proc/sys without the
/// newline added when written) and the unreadable ones.
fn recorded_files(
    files: &Files,
    prefix: &str,
    unreadable: &BTreeMap<String, Unreadable>,
) -> BTreeMap<String, FileResult> {
    let mut out = BTreeMap::new();
    for (path, bytes) in &files.map {
        let Some(rel) = path.strip_prefix(prefix) else {
            continue;
        };
        if !rel.starts_with("proc/") {
            continue;
        }
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        if rel.starts_with("proc/sys/") && text.ends_with('\n') {
            text.pop();
        }
        out.insert(rel.to_string(), Ok(text));
    }
    for (rel, u) in unreadable {
        out.insert(rel.clone(), Err(read_error(u)));
    }
    out
}

/// The Recording a bundle holds, and its manifest.
fn recording_of(files: &Files) -> Result<(Recording, Manifest), IngestError> {
    let manifest_bytes = files
        .get(MANIFEST)
        .ok_or_else(|| files.err("no manifest.json: not a sockmedic bundle"))?;
    let m: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| files.err(format!("manifest.json: {e}")))?;
    if !m.format.starts_with("sockmedic.bundle/v1") {
        return Err(files.err(format!(
            "manifest.json: format {:?}, this sockmedic reads {BUNDLE_FORMAT}",
            m.format
        )));
    }
    let ours = if cfg!(target_endian = "big") {
        "big"
    } else {
        "little"
    };
    if m.byte_order != ours {
        return Err(files.err(format!(
            "collected on a {}-endian host: its raw socket data cannot be decoded on this {ours}-endian one",
            m.byte_order
        )));
    }
    let mut namespaces = Vec::new();
    for n in &m.namespaces {
        let prefix = format!("netns/{}/", n.id);
        let dump = |stage: &str| -> Result<Option<DumpRecord>, IngestError> {
            let Some(d) = n.dumps.get(stage) else {
                return Ok(None);
            };
            let mut parts = Vec::new();
            let mut error = d.error.clone();
            if !d.cut {
                for i in 0..d.parts {
                    let p = nlrec_path(n.id, stage, i);
                    match files.get(&p) {
                        Some(bytes) => parts.push(RawDump::from_bytes(bytes.to_vec())),
                        // A partly readable bundle still yields the rest.
                        None => {
                            error.get_or_insert(format!("{p}: not in the bundle"));
                        }
                    }
                }
            }
            Ok(Some(DumpRecord {
                parts,
                error,
                gone: d.gone,
                cut: d.cut,
                duration_ms: d.duration_ms,
            }))
        };
        let (main, bound) = (dump("main")?, dump("bound")?);
        namespaces.push(RecordedNetns {
            id: n.id,
            dev: n.dev,
            names: n.names.clone(),
            path: n.path.clone(),
            processes: n.processes,
            host: n.host,
            pid: n.pid,
            pod: n.pod.clone(),
            selected: n.selected,
            outcome: match n.outcome.as_str() {
                "gone" => NsOutcome::Gone,
                "failed" => NsOutcome::Failed(n.error.clone().unwrap_or_default()),
                _ => NsOutcome::Read,
            },
            files: recorded_files(files, &prefix, &n.unreadable),
            main,
            bound,
        });
    }
    let mut lost = Vec::new();
    let (scan, probes) = match (&m.process_scan, files.get("processes.jsonl")) {
        (Some(summary), Some(text)) => {
            let (scan, probes) = scan_of(text, summary).map_err(|e| files.err(e))?;
            (Some(scan), probes)
        }
        (Some(_), None) => {
            lost.push(Missing::new(
                "processes",
                "processes.jsonl is not in the bundle: no process is named",
            ));
            (None, BTreeMap::new())
        }
        (None, _) => (None, BTreeMap::new()),
    };
    let kube: KubeFile = match files.get("naming/kube.json") {
        Some(b) => {
            serde_json::from_slice(b).map_err(|e| files.err(format!("naming/kube.json: {e}")))?
        }
        None => KubeFile::default(),
    };
    let cgroup_ids = files.text("naming/cgroups.tsv").map(|t| cgroups_of(&t));
    let source = Source {
        kind: SourceKind::Bundle,
        host: m.host.clone(),
        kernel: m.kernel.clone(),
        taken_at: m.taken_at.clone(),
        duration_ms: m.duration_ms,
        tool: m.tool.clone(),
        privileged: Some(m.who.root),
        uptime_s: m.uptime_s,
        inputs: Vec::new(),
    };
    let live = files
        .get("snapshot.json")
        .and_then(|b| serde_json::from_slice::<Snapshot>(b).ok());
    let mut naming_missing = m.missing.naming.clone();
    naming_missing.extend(lost);
    let rec = Recording {
        source,
        here: m.here_netns,
        page_size: m.page_size,
        netns_selector: m.options.netns.clone(),
        mode: mode_of(&m.options.mode),
        states: m.options.states,
        port: m.options.port,
        processes: m.options.processes && scan.is_some(),
        cmdline: m.options.include_cmdline,
        so_error: m.options.so_error,
        discovery_complete: m.discovery_complete,
        discovery_missing: m.missing.discovery.clone(),
        naming_missing,
        kube: KubeRecord {
            pods: kube.pods.into_iter().collect(),
            containers: kube
                .containers
                .into_iter()
                .map(|(id, c)| (id, c.name, c.pod))
                .collect(),
        },
        cgroup_ids,
        namespaces,
        host_files: recorded_files(files, "host/", &m.host_unreadable),
        host_sysctls_error: m.host_sysctls_error.clone(),
        scan,
        probes,
        bound: bound_of(&m.bound_stage),
        socket_bytes: m.socket_data.bytes,
        max_socket_bytes: m.socket_data.cap,
        live,
    };
    Ok((rec, m))
}

fn cgroups_of(text: &str) -> CgroupRecord {
    let mut rec = CgroupRecord::default();
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("# cgroup v2 ids of ") {
            let (mount, rest) = head.split_once(" (").unwrap_or((head, ""));
            rec.mount = mount.to_string();
            rec.truncated = rest.contains("truncated");
            continue;
        }
        if let Some((id, path)) = line.split_once('\t') {
            if let Ok(id) = id.parse() {
                rec.paths.push((id, path.to_string()));
            }
        }
    }
    rec
}

/// The probes' answers, by (pid, fd).
type Probes = BTreeMap<(u32, u32), Probe>;

/// The process scan and the probes' answers from processes.jsonl.
fn scan_of(text: &[u8], summary: &ScanManifest) -> Result<(ProcScan, Probes), String> {
    let mut procs = Vec::new();
    let mut fds = Vec::new();
    let mut probes = BTreeMap::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let p: ProcessLine = serde_json::from_slice(line)
            .map_err(|e| format!("processes.jsonl line {}: {e}", i + 1))?;
        let idx = procs.len() as u32;
        for s in &p.sockets {
            fds.push(SocketFd {
                inode: s.inode,
                proc_idx: idx,
                fd: s.fd,
            });
            let probe = Probe {
                proto: match (&s.proto, &s.proto_error) {
                    (Some(n), _) => Some(Ok(n.clone())),
                    (None, Some(e)) => Some(Err(e.clone())),
                    (None, None) => None,
                },
                still_holds: s.still_holds,
                check: match (&s.check, &s.check_error) {
                    (Some(c), _) => Some(Ok(SocketCheck {
                        tcp_state: c.tcp_state,
                        so_error: c.so_error,
                        local_port: c.local_port,
                    })),
                    (None, Some(e)) => Some(Err(e.clone())),
                    (None, None) => None,
                },
            };
            probes.insert((p.pid, s.fd), probe);
        }
        procs.push(ProcInfo {
            pid: p.pid,
            comm: p.comm,
            cmdline: p.cmdline.unwrap_or_default(),
            uid: p.uid,
            netns: p.netns,
            thread_netns: p.thread_netns,
            cgroup: p.cgroup,
            fd_soft: p.fd_soft,
            fd_hard: p.fd_hard,
            fds: p.fds,
            socket_fds: p.socket_fds,
            fds_read: p.fds_read,
        });
    }
    let stats = ScanStats {
        pids: summary.pids,
        vanished: summary.vanished,
        fds: procs.iter().map(|p| p.fds).sum(),
        socket_fds: procs.iter().map(|p| p.socket_fds).sum(),
        threads: summary.threads,
        duration_ms: summary.duration_ms,
    };
    let scan = ProcScan {
        procs,
        sockets: SocketIndex::new(fds),
        missing: summary.missing.clone(),
        stats,
    };
    Ok((scan, probes))
}

/// The Snapshot of a bundle's files.
fn snapshot_of(files: &Files, opts: ReadOptions) -> Result<Snapshot, IngestError> {
    let (rec, m) = recording_of(files)?;
    let ro = ReplayOptions {
        top: opts.top,
        states: opts.states,
        port: opts.port,
    };
    let mut snap = sockmedic_collect::replay(&rec, &ro);
    snap.source.kind = SourceKind::Bundle;
    match (&m.kernel_log.file, &m.kernel_log.error) {
        (Some(file), _) => {
            let text = files.text(file).unwrap_or_default();
            let lines = text.lines().filter(|l| !l.is_empty());
            snap.kernel_log = Some(crate::kernel_log_from_lines(
                &format!("/dev/kmsg (bundle {file})"),
                lines,
                m.kernel_log.boot_time_s,
                m.kernel_log.now_s,
            ));
        }
        (None, Some(e)) => snap.missing.push(Missing::new("kernel log", e.clone())),
        (None, None) => snap
            .missing
            .push(Missing::new("kernel log", "not in the bundle")),
    }
    Ok(snap)
}
