//! Containers and pods from cgroups, named from the node's own files.
//!
//! A process's cgroup path (`/proc/PID/cgroup`) says which container and which pod it
//! runs in (kernel-notes §10); kubelet's log directories (`/var/log/pods`,
//! `/var/log/containers`) turn the pod UID and container id into names, so no API
//! server is needed. Sockets with no process (orphans) carry `INET_DIAG_CGROUP_ID`,
//! the inode number of a cgroup v2 directory: [`CgroupIds`] maps it back to a path,
//! and [`identify`] that path to a pod.
//!
//! The parsers are pure and never panic: empty, garbage or truncated input gives
//! `None` or [`CgroupIdentity::default`].

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

/// kubelet's pod log directories: `<namespace>_<name>_<uid>/<container>/<n>.log`.
pub const DEFAULT_PODS_ROOT: &str = "/var/log/pods";
/// kubelet's container log symlinks: `<pod>_<namespace>_<container>-<id>.log`.
pub const DEFAULT_CONTAINERS_ROOT: &str = "/var/log/containers";
/// [`CgroupIds`] stops walking after this many directories (a busy node has a few
/// thousand; a runaway leak of empty cgroups must not stall a diagnosis).
pub const MAX_CGROUP_DIRS: usize = 100_000;
/// [`KubeNames`] reads at most this many entries per directory, for the same reason.
pub const MAX_LOG_ENTRIES: usize = 100_000;

/// One line of `/proc/PID/cgroup`: `hierarchy-id:controllers:path`.
struct Line<'a> {
    v2: bool,
    controllers: &'a str,
    path: &'a str,
}

/// The lines of `/proc/PID/cgroup` that have all three fields and an absolute path.
/// The path is split off after the second colon only: containerd's systemd-style
/// leaf names (`...slice:cri-containerd:<id>`) contain colons themselves.
fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // The kernel appends " (deleted)" to a removed cgroup v2 directory.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        path.starts_with('/').then_some(Line {
            v2: id == "0" && controllers.is_empty(),
            controllers,
            path,
        })
    })
}

/// The most useful cgroup path of a process from `/proc/PID/cgroup` text: the
/// cgroup v2 line (`0::/path`) when it is not `/` or empty, else the v1
/// `name=systemd` line, else the v1 `memory` line, else any non-root v1 path.
///
/// One exception, because real hybrid hosts need it: when that path names no
/// container and no pod but another candidate line does, that line wins. Docker
/// with the cgroupfs driver on a hybrid host leaves its containers in
/// `0::/system.slice/containerd.service` while every v1 line says
/// `/docker/<id>` (tests/fixtures/cgroup/public/ctrsploit-280-docker-v1).
pub fn process_cgroup_path(proc_cgroup: &str) -> Option<String> {
    let non_root = |l: &Line| l.path != "/";
    let mut candidates: Vec<&str> = Vec::new();
    candidates.extend(lines(proc_cgroup).filter(|l| l.v2 && non_root(l)).map(|l| l.path));
    let v1 = || lines(proc_cgroup).filter(|l| !l.v2 && non_root(l));
    candidates.extend(v1().filter(|l| l.controllers == "name=systemd").map(|l| l.path));
    candidates.extend(
        v1().filter(|l| l.controllers.split(',').any(|c| c == "memory"))
            .map(|l| l.path),
    );
    candidates.extend(v1().map(|l| l.path));
    let first = *candidates.first()?;
    let names_something = |p: &&str| {
        let id = identify(p);
        id.container_id.is_some() || id.pod_uid.is_some()
    };
    let best = if names_something(&first) {
        first
    } else {
        candidates
            .iter()
            .copied()
            .find(names_something)
            .unwrap_or(first)
    };
    Some(best.to_string())
}

/// [`process_cgroup_path`] of `/proc/PID/cgroup`; `Ok(None)` when the file has no
/// usable line (a process in the root cgroup, or inside its own cgroup namespace).
pub fn read_process_cgroup_path(pid: u32) -> io::Result<Option<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    Ok(process_cgroup_path(&text))
}

/// Who a cgroup path belongs to, as far as its shape tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupIdentity {
    /// "docker", "containerd", "cri-o" or "podman"; `None` when the path does not
    /// say (a bare id under a cgroupfs-driver pod directory).
    pub runtime: Option<&'static str>,
    /// The full 64-hex container id (for `crio-conmon-`/`libpod-conmon-` scopes, the
    /// id of the container that conmon supervises).
    pub container_id: Option<String>,
    /// The pod UID as Kubernetes prints it: dashes restored where the systemd driver
    /// turned them into `_`. Static pods have a 32-hex config hash instead.
    pub pod_uid: Option<String>,
    /// "guaranteed", "burstable" or "besteffort".
    pub qos: Option<&'static str>,
    /// The path is inside kubelet's pod hierarchy (`kubepods`).
    pub kubernetes: bool,
}

/// Recognizes the container and pod a cgroup path belongs to. Pure.
///
/// Shapes (kernel-notes §10): the Kubernetes systemd driver
/// (`/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<rt>-<id>.scope`,
/// Guaranteed pods without the QoS level, any prefix such as kind's
/// `kubelet-kubepods-`), the cgroupfs driver (`/kubepods/<qos>/pod<uid>/<id>`,
/// `/kubepods/pod<uid>/<id>`), containerd's `<pod slice>:cri-containerd:<id>`
/// leaves, `cri-containerd-`/`crio-`/`crio-conmon-`/`docker-`/`libpod-`/
/// `libpod-conmon-` scopes (with or without `.scope`), `/docker/<id>` and a bare
/// 64-hex id. The innermost container wins, and a `kubepods` level forgets any
/// container above it: in `/docker/<node>/kubepods.slice/...` (kind, minikube) the
/// outer docker container is the node, not the workload. Unknown paths give
/// [`CgroupIdentity::default`].
pub fn identify(path: &str) -> CgroupIdentity {
    let mut id = CgroupIdentity::default();
    // Where the previous component left us in a cgroupfs-driver tree.
    #[derive(PartialEq)]
    enum Cgroupfs {
        Outside,
        Root,
        Qos,
    }
    let mut cgroupfs = Cgroupfs::Outside;
    let mut prev = "";
    for comp in path
        .split('/')
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
    {
        let mut next = Cgroupfs::Outside;
        if comp == "kubepods" || comp == "kubepods.slice" || comp.ends_with("-kubepods.slice") {
            id = CgroupIdentity {
                kubernetes: true,
                ..CgroupIdentity::default()
            };
            if comp == "kubepods" {
                next = Cgroupfs::Root;
            }
        } else if let Some(qos) = cgroupfs_qos(comp).filter(|_| cgroupfs == Cgroupfs::Root) {
            id.qos = Some(qos);
            next = Cgroupfs::Qos;
        } else if let Some(qos) = systemd_qos_slice(comp) {
            id.kubernetes = true;
            id.qos = Some(qos);
        } else if let Some((uid, qos, leaf)) = systemd_pod_slice(comp) {
            id.kubernetes = true;
            id.pod_uid = Some(uid);
            id.qos = Some(qos);
            if let Some((runtime, cid)) = leaf {
                id.runtime = runtime;
                id.container_id = Some(cid.to_string());
            }
        } else if let Some(uid) = comp
            .strip_prefix("pod")
            .filter(|u| cgroupfs != Cgroupfs::Outside && is_pod_uid(u))
        {
            id.kubernetes = true;
            id.pod_uid = Some(uid.to_string());
            if cgroupfs == Cgroupfs::Root {
                id.qos = Some("guaranteed");
            }
        } else if let Some((runtime, cid)) = container_leaf(comp, prev) {
            id.runtime = runtime;
            id.container_id = Some(cid.to_string());
        } else if is_podman_pod_slice(comp) {
            id.runtime = Some("podman");
        }
        cgroupfs = next;
        prev = comp;
    }
    id
}

/// `burstable` / `besteffort` directly under a cgroupfs-driver `kubepods`.
fn cgroupfs_qos(comp: &str) -> Option<&'static str> {
    match comp {
        "burstable" => Some("burstable"),
        "besteffort" => Some("besteffort"),
        _ => None,
    }
}

/// `[<prefix>-]kubepods-burstable.slice` / `...-besteffort.slice`.
fn systemd_qos_slice(comp: &str) -> Option<&'static str> {
    let stem = comp.strip_suffix(".slice")?;
    kubepods_level(stem).flatten()
}

/// The QoS a systemd slice stem names: `Some(None)` for the bare `kubepods` level
/// (where Guaranteed pods live), `None` when it is no kubepods level at all.
fn kubepods_level(stem: &str) -> Option<Option<&'static str>> {
    for (suffix, qos) in [
        ("kubepods-burstable", Some("burstable")),
        ("kubepods-besteffort", Some("besteffort")),
        ("kubepods", None),
    ] {
        if let Some(prefix) = stem.strip_suffix(suffix) {
            if prefix.is_empty() || prefix.ends_with('-') {
                return Some(qos);
            }
        }
    }
    None
}

type Leaf<'a> = (Option<&'static str>, &'a str);

/// `[<prefix>-]kubepods[-<qos>]-pod<uid_>.slice`, optionally followed by
/// containerd's `:<runtime prefix>:<id>` leaf: (uid with dashes, qos, leaf).
fn systemd_pod_slice(comp: &str) -> Option<(String, &'static str, Option<Leaf<'_>>)> {
    let (slice, leaf) = match comp.split_once(':') {
        Some((slice, rest)) => {
            let (prefix, cid) = rest.split_once(':')?;
            let leaf = is_container_id(cid).then_some((runtime_of(prefix), cid));
            (slice, leaf)
        }
        None => (comp, None),
    };
    let stem = slice.strip_suffix(".slice")?;
    let at = stem.rfind("-pod")?;
    let qos = kubepods_level(&stem[..at])?.unwrap_or("guaranteed");
    let uid = stem[at + 4..].replace('_', "-");
    is_pod_uid(&uid).then_some((uid, qos, leaf))
}

/// A container's own cgroup: `<runtime prefix>-<id>[.scope]` or a bare id.
fn container_leaf<'a>(comp: &'a str, parent: &str) -> Option<Leaf<'a>> {
    let name = comp.strip_suffix(".scope").unwrap_or(comp);
    if is_container_id(name) {
        let runtime = (parent == "docker").then_some("docker");
        return Some((runtime, name));
    }
    const PREFIXES: [&str; 6] = [
        "cri-containerd-",
        "crio-conmon-",
        "crio-",
        "docker-",
        "libpod-conmon-",
        "libpod-",
    ];
    PREFIXES.iter().find_map(|p| {
        let cid = name.strip_prefix(p).filter(|c| is_container_id(c))?;
        Some((runtime_of(p.trim_end_matches('-')), cid))
    })
}

fn runtime_of(prefix: &str) -> Option<&'static str> {
    match prefix {
        "cri-containerd" => Some("containerd"),
        "crio" | "crio-conmon" => Some("cri-o"),
        "docker" => Some("docker"),
        "libpod" | "libpod-conmon" => Some("podman"),
        _ => None,
    }
}

/// podman's own pods: `[machine-|user-]libpod_pod_<64hex>.slice`.
fn is_podman_pod_slice(comp: &str) -> bool {
    comp.strip_suffix(".slice")
        .and_then(|s| s.split_once("libpod_pod_"))
        .is_some_and(|(_, id)| is_container_id(id))
}

/// A full container id: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A pod UID: a UUID (8-4-4-4-12 hex) or, for static pods, a 32-hex config hash.
fn is_pod_uid(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        36 => b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// A container known from `/var/log/containers`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ContainerName {
    name: String,
    /// "namespace/name" of its pod.
    pod: String,
}

/// Pod and container names from the node's own files, no API server: kubelet
/// names its log directories after them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeNames {
    /// Pod UID → "namespace/name".
    pods: HashMap<String, String>,
    /// Container id → name and pod.
    containers: HashMap<String, ContainerName>,
    problems: Vec<String>,
}

impl KubeNames {
    /// Reads `<pods_root>/<namespace>_<name>_<uid>/` (kubelet's `/var/log/pods`) and
    /// `<containers_root>/<pod>_<namespace>_<container>-<id>.log` (its
    /// `/var/log/containers` symlinks, whose targets also give the pod UID).
    /// Missing directories are fine (not a Kubernetes node): the maps stay empty.
    pub fn read(pods_root: &Path, containers_root: &Path) -> KubeNames {
        let mut names = KubeNames::default();
        names.each_entry(pods_root, |names, entry| {
            let file = entry.file_name();
            let Some((ns, name, uid)) = file.to_str().and_then(parse_pod_dir) else {
                return;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                names.pods.insert(uid.to_string(), format!("{ns}/{name}"));
            }
        });
        names.each_entry(containers_root, |names, entry| {
            let file = entry.file_name();
            let Some((pod, ns, container, id)) = file.to_str().and_then(parse_container_log)
            else {
                return;
            };
            let pod = format!("{ns}/{pod}");
            // The link points into the pod directory, which names the UID too.
            if let Ok(target) = fs::read_link(entry.path()) {
                let uid = target
                    .iter()
                    .filter_map(|c| c.to_str().and_then(parse_pod_dir))
                    .find(|(tns, tname, _)| format!("{tns}/{tname}") == pod)
                    .map(|(_, _, uid)| uid.to_string());
                if let Some(uid) = uid {
                    names.pods.entry(uid).or_insert_with(|| pod.clone());
                }
            }
            names.containers.insert(
                id.to_string(),
                ContainerName {
                    name: container.to_string(),
                    pod,
                },
            );
        });
        names
    }

    /// [`KubeNames::read`] of kubelet's default directories.
    pub fn read_default() -> KubeNames {
        KubeNames::read(
            Path::new(DEFAULT_PODS_ROOT),
            Path::new(DEFAULT_CONTAINERS_ROOT),
        )
    }

    fn each_entry(&mut self, dir: &Path, mut f: impl FnMut(&mut KubeNames, &fs::DirEntry)) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.problems.push(format!("cannot read {}: {e}", dir.display()));
                return;
            }
        };
        for (n, entry) in entries.enumerate() {
            if n == MAX_LOG_ENTRIES {
                self.problems.push(format!(
                    "{}: stopped after {MAX_LOG_ENTRIES} entries",
                    dir.display()
                ));
                break;
            }
            if let Ok(entry) = entry {
                f(self, &entry);
            }
        }
    }

    /// "namespace/name" of the pod with this UID.
    pub fn pod(&self, uid: &str) -> Option<&str> {
        self.pods.get(uid).map(String::as_str)
    }

    /// The name of the container with this full id (the pause/sandbox container
    /// writes no log, so it has none).
    pub fn container(&self, id: &str) -> Option<&str> {
        self.containers.get(id).map(|c| c.name.as_str())
    }

    /// "namespace/name" of the pod a container belongs to.
    pub fn container_pod(&self, id: &str) -> Option<&str> {
        self.containers.get(id).map(|c| c.pod.as_str())
    }

    /// "namespace/name" for what a cgroup path identified: by pod UID, else by
    /// container id.
    pub fn pod_of(&self, ident: &CgroupIdentity) -> Option<&str> {
        let by_uid = ident.pod_uid.as_deref().and_then(|u| self.pod(u));
        by_uid.or_else(|| ident.container_id.as_deref().and_then(|c| self.container_pod(c)))
    }

    pub fn pods_len(&self) -> usize {
        self.pods.len()
    }

    pub fn containers_len(&self) -> usize {
        self.containers.len()
    }

    /// Directories that exist but could not be read, or were cut short.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

/// `<namespace>_<name>_<uid>`: namespaces and pod names are DNS names and UIDs
/// hex with dashes, so none of them holds a `_`.
fn parse_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let (ns, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !ns.is_empty() && !pod.is_empty() && is_pod_uid(uid))
        .then_some((ns, pod, uid))
}

/// `<pod>_<namespace>_<container>-<id>.log` → (pod, namespace, container, id).
fn parse_container_log(name: &str) -> Option<(&str, &str, &str, &str)> {
    let (rest, id) = name.strip_suffix(".log")?.rsplit_once('-')?;
    let mut parts = rest.split('_');
    let (pod, ns, container) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = parts.next().is_none()
        && ![pod, ns, container].iter().any(|s| s.is_empty())
        && is_container_id(id);
    ok.then_some((pod, ns, container, id))
}

/// cgroup v2 ids (directory inode numbers, what `INET_DIAG_CGROUP_ID` carries) →
/// paths relative to the hierarchy root (`/kubepods.slice/...`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupIds {
    mount: PathBuf,
    paths: HashMap<u64, String>,
    truncated: bool,
}

impl CgroupIds {
    /// Walks the cgroup2 mount named in `/proc/self/mountinfo`
    /// (`/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified` on a hybrid one).
    pub fn read() -> Result<CgroupIds, String> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let (mount, root) = cgroup2_mount(&mountinfo)
            .ok_or("no cgroup2 mount in /proc/self/mountinfo (a cgroup v1-only host)")?;
        Self::walk(&mount, &root, MAX_CGROUP_DIRS)
    }

    /// Walks the cgroup2 hierarchy mounted at `mount` (its root mounted there).
    pub fn read_at(mount: &Path) -> Result<CgroupIds, String> {
        Self::walk(mount, "/", MAX_CGROUP_DIRS)
    }

    /// [`CgroupIds::read_at`] stopping after `max_dirs` directories.
    pub fn read_at_bounded(mount: &Path, max_dirs: usize) -> Result<CgroupIds, String> {
        Self::walk(mount, "/", max_dirs)
    }

    /// `root` is the mount's root inside the hierarchy (mountinfo field 4): a
    /// container that bind-mounts only its own subtree sees `/kubepods.slice/...`
    /// there, and paths must still be absolute in the hierarchy.
    fn walk(mount: &Path, root: &str, max_dirs: usize) -> Result<CgroupIds, String> {
        let meta = fs::metadata(mount)
            .map_err(|e| format!("cannot stat cgroup2 mount {}: {e}", mount.display()))?;
        let base = root.trim_end_matches('/').to_string();
        let mut ids = CgroupIds {
            mount: mount.to_path_buf(),
            ..CgroupIds::default()
        };
        if max_dirs == 0 {
            ids.truncated = true;
            return Ok(ids);
        }
        let root_path = if base.is_empty() { "/".to_string() } else { base.clone() };
        ids.paths.insert(meta.ino(), root_path);
        let mut stack = vec![(mount.to_path_buf(), base)];
        while let Some((dir, rel)) = stack.pop() {
            // A cgroup removed while we walk is not an error: it is gone.
            let Ok(entries) = fs::read_dir(&dir) else {
                if dir == mount {
                    return Err(format!("cannot read cgroup2 mount {}", mount.display()));
                }
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if ids.paths.len() >= max_dirs {
                    ids.truncated = true;
                    return Ok(ids);
                }
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                // kernfs reports the cgroup id as d_ino, as it does as st_ino.
                let path = format!("{rel}/{name}");
                ids.paths.insert(entry.ino(), path.clone());
                stack.push((entry.path(), path));
            }
        }
        Ok(ids)
    }

    /// The path of the cgroup with this id, e.g. from `INET_DIAG_CGROUP_ID`.
    pub fn path(&self, id: u64) -> Option<&str> {
        self.paths.get(&id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The walk stopped at its bound: some cgroups have no path here.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Where the hierarchy was walked.
    pub fn mount(&self) -> &Path {
        &self.mount
    }
}

/// The first cgroup2 mount in `/proc/self/mountinfo` text: (mount point, root of
/// the mount inside the hierarchy). Mounts of the whole hierarchy (root `/`) win.
pub fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    let mounts = mountinfo.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let (root, point) = (fields.get(3)?, fields.get(4)?);
        (sep >= 6 && fields.get(sep + 1) == Some(&"cgroup2"))
            .then(|| (PathBuf::from(unescape_mountinfo(point)), unescape_mountinfo(root)))
    });
    let mounts: Vec<_> = mounts.collect();
    let whole = mounts.iter().position(|(_, root)| root == "/");
    let pick = whole.unwrap_or(0);
    mounts.into_iter().nth(pick)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')));
        match octal.and_then(|v| u8::try_from(v).ok()) {
            Some(v) => {
                out.push(v);
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
