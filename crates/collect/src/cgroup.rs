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
    candidates.extend(
        lines(proc_cgroup)
            .filter(|l| l.v2 && non_root(l))
            .map(|l| l.path),
    );
    let v1 = || lines(proc_cgroup).filter(|l| !l.v2 && non_root(l));
    candidates.extend(
        v1().filter(|l| l.controllers == "name=systemd")
            .map(|l| l.path),
    );
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
            // A leaf that is not a full id (cut short, or a name) still leaves the pod.
            let leaf = rest
                .split_once(':')
                .filter(|(_, cid)| is_container_id(cid))
                .map(|(prefix, cid)| (runtime_of(prefix), cid));
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
            let Some((pod, ns, container, id)) = file.to_str().and_then(parse_container_log) else {
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

    /// The names, to record them.
    pub fn record(&self) -> crate::record::KubeRecord {
        let mut pods: Vec<(String, String)> = self
            .pods
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pods.sort();
        let mut containers: Vec<(String, String, String)> = self
            .containers
            .iter()
            .map(|(id, c)| (id.clone(), c.name.clone(), c.pod.clone()))
            .collect();
        containers.sort();
        crate::record::KubeRecord { pods, containers }
    }

    /// The names as recorded.
    pub fn from_record(r: &crate::record::KubeRecord) -> KubeNames {
        KubeNames {
            pods: r.pods.iter().cloned().collect(),
            containers: r
                .containers
                .iter()
                .map(|(id, name, pod)| {
                    (
                        id.clone(),
                        ContainerName {
                            name: name.clone(),
                            pod: pod.clone(),
                        },
                    )
                })
                .collect(),
            problems: Vec::new(),
        }
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
                self.problems
                    .push(format!("cannot read {}: {e}", dir.display()));
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
        by_uid.or_else(|| {
            ident
                .container_id
                .as_deref()
                .and_then(|c| self.container_pod(c))
        })
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
        let root_path = if base.is_empty() {
            "/".to_string()
        } else {
            base.clone()
        };
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

    /// The ids and paths, to record them.
    pub fn record(&self) -> crate::record::CgroupRecord {
        let mut paths: Vec<(u64, String)> =
            self.paths.iter().map(|(k, v)| (*k, v.clone())).collect();
        paths.sort();
        crate::record::CgroupRecord {
            mount: self.mount.display().to_string(),
            paths,
            truncated: self.truncated,
        }
    }

    /// The ids and paths as recorded.
    pub fn from_record(r: &crate::record::CgroupRecord) -> CgroupIds {
        CgroupIds {
            mount: PathBuf::from(&r.mount),
            paths: r.paths.iter().cloned().collect(),
            truncated: r.truncated,
        }
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
        (sep >= 6 && fields.get(sep + 1) == Some(&"cgroup2")).then(|| {
            (
                PathBuf::from(unescape_mountinfo(point)),
                unescape_mountinfo(root),
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::unique;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    // Real files: tests/fixtures/cgroup/README.md says where each comes from.
    const HOST_SELF: &str = include_str!("../tests/fixtures/cgroup/host-self");
    const MOUNTINFO: &str = include_str!("../tests/fixtures/cgroup/mountinfo-cgroup");
    const SIM_IDS: &str = include_str!("../tests/fixtures/cgroup/sim-ids");
    const SIM_V2: &str =
        include_str!("../tests/fixtures/cgroup/sim-v2-systemd-burstable-containerd");
    const SIM_V1: &str = include_str!("../tests/fixtures/cgroup/sim-v1-cgroupfs-besteffort");
    const PATHS: &str = include_str!("../tests/fixtures/cgroup/public/paths");

    macro_rules! public {
        ($name:literal) => {
            (
                $name,
                include_str!(concat!("../tests/fixtures/cgroup/public/", $name)),
            )
        };
    }
    const PUBLIC: [(&str, &str); 13] = [
        public!("runc-4620-crio-burstable-v1"),
        public!("lxc-3890-docker-burstable-v1"),
        public!("otel-java-4507-containerd-colon-v1"),
        public!("duckdb-16608-containerd-colon-v1"),
        public!("ctrsploit-280-docker-v1"),
        public!("moby-33352-docker-v1"),
        public!("moby-9365-docker-scope-v1"),
        public!("docker-gen-186-docker-scope-v1"),
        public!("podman-10602-libpod-v1"),
        public!("podman-20423-libpod-rootful-user-v2"),
        public!("adoptium-638-cgroupfs-burstable-v1"),
        public!("crun-376-podman-unshare-v2"),
        public!("kontena-440-kubelet-system-slice-v1"),
    ];

    fn pod(rt: Option<&'static str>, cid: &str, uid: &str, qos: &'static str) -> CgroupIdentity {
        CgroupIdentity {
            runtime: rt,
            container_id: Some(cid.to_string()),
            pod_uid: Some(uid.to_string()),
            qos: Some(qos),
            kubernetes: true,
        }
    }

    fn container(rt: &'static str, cid: &str) -> CgroupIdentity {
        CgroupIdentity {
            runtime: Some(rt),
            container_id: Some(cid.to_string()),
            ..CgroupIdentity::default()
        }
    }

    fn public_text(name: &str) -> &'static str {
        PUBLIC.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// The path of the first line in `text` whose number is `hier`.
    fn line_path(text: &str, hier: &str) -> String {
        let prefix = format!("{hier}:");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap();
        line.splitn(3, ':').nth(2).unwrap().to_string()
    }

    fn sim_id(key: &str) -> &'static str {
        SIM_IDS
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap()
    }

    #[test]
    fn this_hosts_own_cgroup_is_the_sandbox_memory_cgroup() {
        // Hybrid host: v2 and name=systemd at "/", so the memory line wins.
        let path = process_cgroup_path(HOST_SELF).unwrap();
        assert_eq!(path, "/process_api/9da9b0395fd55dc012ec7fe1a8401538");
        assert_eq!(identify(&path), CgroupIdentity::default());
    }

    #[test]
    fn simulated_pods_captured_from_this_kernel() {
        let top = sim_id("top");
        let (uid, cid) = (sim_id("uid"), sim_id("cid"));
        let path = process_cgroup_path(SIM_V2).unwrap();
        let uid_ = uid.replace('-', "_");
        assert_eq!(path, format!("/{top}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{cid}.scope"));
        assert_eq!(
            identify(&path),
            pod(Some("containerd"), cid, uid, "burstable")
        );

        // v2 stays at "/", so the name=systemd line is the one.
        let (uid2, cid2) = (sim_id("uid2"), sim_id("cid2"));
        let path = process_cgroup_path(SIM_V1).unwrap();
        assert_eq!(path, format!("/{top}/kubepods/besteffort/pod{uid2}/{cid2}"));
        assert_eq!(identify(&path), pod(None, cid2, uid2, "besteffort"));
    }

    #[test]
    fn public_proc_cgroup_files() {
        let cases: [(&str, &str, CgroupIdentity); 13] = [
            (
                "runc-4620-crio-burstable-v1",
                "13",
                pod(
                    Some("cri-o"),
                    "5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c",
                    "a5c1f8d5-1919-434d-add7-4afaafdaef89",
                    "burstable",
                ),
            ),
            (
                "lxc-3890-docker-burstable-v1",
                "11",
                pod(
                    Some("docker"),
                    "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98",
                    "7d4424e6-bb13-42f4-a47a-45a4828bf54d",
                    "burstable",
                ),
            ),
            (
                "otel-java-4507-containerd-colon-v1",
                "11",
                pod(
                    Some("containerd"),
                    "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459",
                    "0125ec2f-b64a-4868-8f5b-94b56cbab864",
                    "besteffort",
                ),
            ),
            (
                "duckdb-16608-containerd-colon-v1",
                "13",
                pod(
                    Some("containerd"),
                    "6ef14b5a76df7b5d24285e3a04ccbc6fd323620272b3787b5dc440fc1b75d294",
                    "b96a7488-3ee1-4bdc-9c98-155cc887b417",
                    "burstable",
                ),
            ),
            // v2 says /system.slice/containerd.service: the v1 lines name the container.
            (
                "ctrsploit-280-docker-v1",
                "1",
                container(
                    "docker",
                    "2403ccfe427f1dc7b6120dccb9ac58c2f8456950380d587a9f33ea7f00dd303d",
                ),
            ),
            (
                "moby-33352-docker-v1",
                "6",
                container(
                    "docker",
                    "5dace3de0735f73d2b5048f12d41a71741a02e49668de921fdae62f7e65dc498",
                ),
            ),
            // Its name=systemd line is truncated: the memory line names the container.
            (
                "moby-9365-docker-scope-v1",
                "4",
                container(
                    "docker",
                    "0bd31f558c426d46f30778cefbc727282e4f257537b42b361ea5d03a44f4febe",
                ),
            ),
            (
                "docker-gen-186-docker-scope-v1",
                "1",
                container(
                    "docker",
                    "9b98bb265ea4c149d9a786380dd07716d341c3e925f2616040c6cd9ac8c4b75c",
                ),
            ),
            // Truncated v2 line: name=systemd (.../libpod-<id>.scope/init.scope) names it.
            (
                "podman-10602-libpod-v1",
                "1",
                container(
                    "podman",
                    "2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24",
                ),
            ),
            (
                "podman-20423-libpod-rootful-user-v2",
                "0",
                container(
                    "podman",
                    "cf21d19260ace8544fe8b769fc2638bf2c0873dfbfff0b6253f0569b26a1d5eb",
                ),
            ),
            (
                "adoptium-638-cgroupfs-burstable-v1",
                "10",
                pod(
                    None,
                    "fbaa59723cd1f05d310e6f48b5d49a9d9e9552b7fde2205d0a2e2b5f60ec21ba",
                    "d7874f44-eee0-423c-83c9-f246075bdde1",
                    "burstable",
                ),
            ),
            ("crun-376-podman-unshare-v2", "0", CgroupIdentity::default()),
            (
                "kontena-440-kubelet-system-slice-v1",
                "1",
                CgroupIdentity::default(),
            ),
        ];
        for (name, line, want) in cases {
            let text = public_text(name);
            let path = process_cgroup_path(text).unwrap();
            assert_eq!(path, line_path(text, line), "{name}: chosen line");
            assert_eq!(identify(&path), want, "{name}: {path}");
        }
    }

    #[test]
    fn public_paths_cover_every_shape() {
        let cases = [
            (
                "netdata-4868-burstable-containerd",
                pod(
                    Some("containerd"),
                    "09d185410c4e25236cc24717f881589bb0978b24eafd101624e627a4dd8d3439",
                    "03f3f104-3215-44f2-9686-d4dd1f05a7ed",
                    "burstable",
                ),
            ),
            (
                "netdata-4868-static-pod-containerd",
                pod(
                    Some("containerd"),
                    "c203a2647ef1ad78e990157c50331f3b6ef0b03336cf08535d6bf7faa5421415",
                    "187bff14cccb94f179e943eacce55bb3",
                    "burstable",
                ),
            ),
            (
                "k8s-106514-systemd-containerd",
                pod(
                    Some("containerd"),
                    "aaefb9d8feed2d453b543f6d928cede7a4dbefa6a0ae7c9b990dd234c56e93b9",
                    "2fc932ce-fdcc-454b-97bd-aadfdeb4c340",
                    "burstable",
                ),
            ),
            (
                "k8s-106514-containerd-colon",
                pod(
                    Some("containerd"),
                    "79fedb3bd23ca77c9d9ccb41909038316f713df22b54b7d942b71d3812e7c74e",
                    "36b6d6be73b1065af369b3985edafa09",
                    "burstable",
                ),
            ),
            (
                "kontena-440-besteffort-docker",
                pod(
                    Some("docker"),
                    "abddff03dfd7710c79a750ce3e730365cbb2c8247a974170c1062683bc3e9152",
                    "9692aa0e-748e-11e8-8dfa-76d458035df6",
                    "besteffort",
                ),
            ),
            (
                "origin-16246-besteffort-docker",
                pod(
                    Some("docker"),
                    "ca877fc648dcf466185be3e66b95e774f4589f866620920615c40c12bfe86f2a",
                    "86daabc9-9486-11e7-a2b8-42010a800005",
                    "besteffort",
                ),
            ),
            (
                "minikube-11280-nested-crio",
                pod(
                    Some("cri-o"),
                    "0ba8ac17e4e7a31fb82279503552fe94e64bab4745bf6fd2ff231e7c8ca8bed0",
                    "2ca4a155-3599-498d-bb9d-4446693fa3ea",
                    "besteffort",
                ),
            ),
            // The docker container around the node is not the workload.
            (
                "minikube-11280-nested-kubepods",
                CgroupIdentity {
                    kubernetes: true,
                    ..CgroupIdentity::default()
                },
            ),
            (
                "runc-4620-crio-conmon",
                pod(
                    Some("cri-o"),
                    "32da98c8522068be05a7510a3eddb09cad6ed2f03286180d0e931d0d0b6224a6",
                    "207aaad1-659f-4db8-88e0-46e0cdcc3004",
                    "burstable",
                ),
            ),
            (
                "microshift-697-crio-conmon-system",
                container(
                    "cri-o",
                    "e0c85fe7644a858988d9687c2e0736a7d31922740d0f3e001c6b2e0aa7e5f528",
                ),
            ),
            (
                "builder-252-guaranteed-crio",
                pod(
                    Some("cri-o"),
                    "2e3f3724ae29f2be52003a4ae295a3d472d65e065394ac61a78f2b6675735084",
                    "37aab7c5-dee2-42cf-833c-f73584920d73",
                    "guaranteed",
                ),
            ),
            (
                "builder-252-guaranteed-pod",
                CgroupIdentity {
                    pod_uid: Some("37aab7c5-dee2-42cf-833c-f73584920d73".into()),
                    qos: Some("guaranteed"),
                    kubernetes: true,
                    ..CgroupIdentity::default()
                },
            ),
            (
                "kata-11598-guaranteed-containerd",
                pod(
                    Some("containerd"),
                    "8564224395a4fbf7f2792baa22ee16dfc8f8e862e20342d3b2bcc211a3939af6",
                    "dc430cd3-34b7-4ea6-be26-ddfd88d7ddff",
                    "guaranteed",
                ),
            ),
            (
                "kata-11598-cgroupspath-colon",
                pod(
                    Some("containerd"),
                    "8564224395a4fbf7f2792baa22ee16dfc8f8e862e20342d3b2bcc211a3939af6",
                    "dc430cd3-34b7-4ea6-be26-ddfd88d7ddff",
                    "guaranteed",
                ),
            ),
            (
                "nri-227-kind-kubelet-slice",
                pod(
                    Some("containerd"),
                    "a09bc17f5aa29b0dbdec9ede5f46cf1396d2405917ab02e6f1eb1019f388396e",
                    "1e597579-417e-482f-bf65-5fe170c3aebd",
                    "besteffort",
                ),
            ),
            (
                "talos-3950-cgroupfs-besteffort",
                pod(
                    None,
                    "a684bbdd0c4b6937b5ece9713bed661305ab0de570eb12b7c28a032aaf602937",
                    "18d34ce4-50c7-452c-9df8-53c4a3fdf363",
                    "besteffort",
                ),
            ),
            (
                "kindcontainer-341-cgroupfs-besteffort",
                pod(
                    None,
                    "19e5ed27c5ab22ca59b11ebe481145f03325b330ab94dc2b55b7cec3c5cc35dd",
                    "85af8291-287b-44b0-897e-c4e6a9c8512b",
                    "besteffort",
                ),
            ),
            (
                "sysbox-618-cgroupfs-crio",
                pod(
                    Some("cri-o"),
                    "87554950a53dd2ed856512d201cec166fa6c5dbab20186489d6a0e8c13c20586",
                    "1d572999-c9f3-45bd-b378-9df614214da6",
                    "besteffort",
                ),
            ),
            (
                "website-pod-overhead-cgroupfs-guaranteed",
                pod(
                    None,
                    "7ccf55aee35dd16aca4189c952d83487297f3cd760f1bbf09620e206e7d0c27a",
                    "d7f4b509-cf94-4951-9417-d1087c92a5b2",
                    "guaranteed",
                ),
            ),
            (
                "cadvisor-2540-cgroupfs-burstable-pod",
                CgroupIdentity {
                    pod_uid: Some("1ff47ee6-9685-4726-ac6f-0ff070c452d6".into()),
                    qos: Some("burstable"),
                    kubernetes: true,
                    ..CgroupIdentity::default()
                },
            ),
            (
                "talos-3950-cgroupfs-besteffort-qos",
                CgroupIdentity {
                    qos: Some("besteffort"),
                    kubernetes: true,
                    ..CgroupIdentity::default()
                },
            ),
            (
                "podman-507-libpod",
                container(
                    "podman",
                    "0411a2a82311fbc65b137ca550d5f7e6b6863bc734759be2f515b0b67062d49a",
                ),
            ),
            (
                "podman-507-libpod-conmon",
                container(
                    "podman",
                    "0411a2a82311fbc65b137ca550d5f7e6b6863bc734759be2f515b0b67062d49a",
                ),
            ),
            (
                "runc-2163-libpod-cgroupfs",
                container(
                    "podman",
                    "00b78ede55a4d847e53ddfe1e4c1b5498db0175ab22339705883f6b0dc136734",
                ),
            ),
            (
                "alumet-463-podman-pod-slice",
                CgroupIdentity {
                    runtime: Some("podman"),
                    ..CgroupIdentity::default()
                },
            ),
            (
                "cri-290-containerd-getty",
                container(
                    "containerd",
                    "0e768f8db752fcd648adb264498daa1d8f31562320e881d6a9ec593d24b1f779",
                ),
            ),
        ];
        let mut seen = 0;
        for line in PATHS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (label, path) = line.split_once('\t').unwrap();
            let want = &cases
                .iter()
                .find(|(l, _)| *l == label)
                .unwrap_or_else(|| panic!("no expectation for {label}"))
                .1;
            assert_eq!(&identify(path), want, "{label}: {path}");
            // The same path as a process's only (v2) line.
            if path.starts_with('/') {
                assert_eq!(
                    process_cgroup_path(&format!("0::{path}\n")).as_deref(),
                    Some(path)
                );
            }
            seen += 1;
        }
        assert_eq!(seen, cases.len(), "every expectation has its fixture line");
    }

    #[test]
    fn bad_input_gives_none_or_default_never_a_panic() {
        for text in [
            "",
            "\n",
            "\n\n",
            "garbage",
            "0",
            "0:",
            "0::",
            "0::\n",
            ":::",
            "::/kubepods",
            "x::/docker/abc",
            "12:memory",
            "12:memory:",
            "12:memory:relative/path",
            "-1::/docker/2403ccfe427f1dc7b6120dccb9ac58c2f8456950380d587a9f33ea7f00dd303d",
            "0::/\n1:name=systemd:/\n",
            "\u{0}\u{1}\u{7f}",
            "é:ü:/ß",
            "0::/ (deleted)",
        ] {
            assert_eq!(process_cgroup_path(text), None, "{text:?}");
        }
        for path in [
            "", "/", "//", "/..", "/kubepods.slice/kubepods-pod.slice",
            "/kubepods.slice/kubepods-podé€_x.slice/crio-é.scope",
            "/kubepods/podxyz/abc", "/docker/2403ccfe427f",
            "kubepods-burstable-pod:::",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podd8438af4_cea0_4bd4_98f4.slice",
            "/system.slice/crio-conmon-.scope", "/machine.slice/libpod-conmon-.scope",
        ] {
            let id = identify(path);
            assert_eq!(id.container_id, None, "{path:?}");
            assert_eq!(id.pod_uid, None, "{path:?}");
        }
        // containerd's leaf cut short, or naming no id (containerd#5226): the pod stays.
        for path in [
            "/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd",
            "/system.slice/containerd.service/kubepods-burstable-pod7a875b5c_4d3c_4345_ac0f_5c847d8d7129.slice:cri-containerd:webapp",
        ] {
            let id = identify(path);
            assert!(id.pod_uid.is_some() && id.container_id.is_none(), "{path}: {id:?}");
        }
        // A truncated id must not become an id.
        assert_eq!(
            identify("/docker/2403ccfe427f1dc7b6120dccb9ac58c2f8456950380d587a9f33ea7f00dd303")
                .container_id,
            None
        );
        // Every prefix of every real input (cut at each character) parses without panic.
        let mut texts: Vec<&str> = PUBLIC.iter().map(|(_, t)| *t).collect();
        texts.extend([HOST_SELF, SIM_V1, SIM_V2, PATHS, MOUNTINFO]);
        for text in texts {
            for (i, _) in text.char_indices() {
                let cut = &text[..i];
                let _ = process_cgroup_path(cut);
                let _ = identify(cut);
                let _ = cgroup2_mount(cut);
                let _ = parse_pod_dir(cut);
                let _ = parse_container_log(cut);
            }
        }
    }

    #[test]
    fn deleted_cgroup_suffix_is_dropped() {
        let path = "/kubepods.slice/kubepods-pod37aab7c5_dee2_42cf_833c_f73584920d73.slice";
        let text = format!("0::{path} (deleted)\n");
        assert_eq!(process_cgroup_path(&text).as_deref(), Some(path));
    }

    #[test]
    fn cgroup2_mount_from_mountinfo() {
        // This host: hybrid, cgroup2 at /sys/fs/cgroup/unified.
        assert_eq!(
            cgroup2_mount(MOUNTINFO),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
        assert_eq!(cgroup2_mount(""), None);
        assert_eq!(cgroup2_mount(&MOUNTINFO.replace("cgroup2", "tmpfs")), None);
        // A subtree mount (root not "/") loses to a mount of the whole hierarchy,
        // and octal escapes in the mount point are undone.
        let text = "50 31 0:38 /kubepods.slice /mnt/sub rw - cgroup2 cgroup2 rw\n\
                    51 31 0:38 / /mnt/cg\\040two rw shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(text),
            Some((PathBuf::from("/mnt/cg two"), "/".to_string()))
        );
        assert_eq!(
            cgroup2_mount(text.lines().next().unwrap()),
            Some((PathBuf::from("/mnt/sub"), "/kubepods.slice".to_string()))
        );
    }

    /// A directory under the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(prefix: &str) -> TempDir {
            let dir = std::env::temp_dir().join(unique(prefix));
            fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A kubelet-like log tree: `pods/<ns>_<name>_<uid>/<container>/0.log` and
    /// `containers/<name>_<ns>_<container>-<id>.log` → the pod's log file.
    fn kubelet_logs(root: &Path, pods: &[(&str, &str, &str, &str, &str)]) -> (PathBuf, PathBuf) {
        let (pods_root, containers_root) = (root.join("pods"), root.join("containers"));
        fs::create_dir_all(&containers_root).unwrap();
        for (ns, name, uid, cname, cid) in pods {
            let dir = pods_root.join(format!("{ns}_{name}_{uid}")).join(cname);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("0.log"), "").unwrap();
            let link = containers_root.join(format!("{name}_{ns}_{cname}-{cid}.log"));
            std::os::unix::fs::symlink(dir.join("0.log"), link).unwrap();
        }
        (pods_root, containers_root)
    }

    #[test]
    fn kube_names_from_log_directories() {
        let tmp = TempDir::new("sm-pods");
        let cid = "c203a2647ef1ad78e990157c50331f3b6ef0b03336cf08535d6bf7faa5421415";
        let (pods, containers) = kubelet_logs(
            &tmp.0,
            &[
                (
                    "kube-system",
                    "etcd-node-1",
                    "187bff14cccb94f179e943eacce55bb3",
                    "etcd",
                    cid,
                ),
                (
                    "shop",
                    "cart-7d9f-x2k",
                    "03f3f104-3215-44f2-9686-d4dd1f05a7ed",
                    "cart-api",
                    &"ab".repeat(32),
                ),
            ],
        );
        // Noise kubelet would never write: ignored.
        fs::create_dir_all(pods.join("no-underscores")).unwrap();
        fs::create_dir_all(pods.join("a_b_c_d")).unwrap();
        fs::write(
            pods.join("ns_file_03f3f104-3215-44f2-9686-d4dd1f05a7ee"),
            "",
        )
        .unwrap();
        fs::write(containers.join("x_y_z-short.log"), "").unwrap();
        fs::write(containers.join("README"), "").unwrap();

        let names = KubeNames::read(&pods, &containers);
        assert_eq!(names.pods_len(), 2);
        assert_eq!(names.containers_len(), 2);
        assert!(names.problems().is_empty(), "{:?}", names.problems());
        assert_eq!(
            names.pod("187bff14cccb94f179e943eacce55bb3"),
            Some("kube-system/etcd-node-1")
        );
        assert_eq!(
            names.pod("03f3f104-3215-44f2-9686-d4dd1f05a7ed"),
            Some("shop/cart-7d9f-x2k")
        );
        assert_eq!(names.container(cid), Some("etcd"));
        assert_eq!(names.container_pod(cid), Some("kube-system/etcd-node-1"));
        assert_eq!(names.container(&"ab".repeat(32)), Some("cart-api"));
        assert_eq!(names.pod("03f3f104-3215-44f2-9686-d4dd1f05a7ee"), None);

        // A real path from a public issue, named through these files.
        let ident = identify(
            PATHS
                .lines()
                .find(|l| l.starts_with("netdata-4868-static"))
                .unwrap(),
        );
        assert_eq!(names.pod_of(&ident), Some("kube-system/etcd-node-1"));
        assert_eq!(
            names.container(ident.container_id.as_deref().unwrap()),
            Some("etcd")
        );

        // Without /var/log/pods the container links still give the pod UID.
        let only_links = KubeNames::read(&tmp.0.join("absent"), &containers);
        assert_eq!(
            only_links.pod("187bff14cccb94f179e943eacce55bb3"),
            Some("kube-system/etcd-node-1")
        );

        // Not a Kubernetes node: empty, no complaint.
        let none = KubeNames::read(&tmp.0.join("a"), &tmp.0.join("b"));
        assert_eq!(none, KubeNames::default());
        // A file where a directory should be is a problem worth reporting.
        let odd = KubeNames::read(&tmp.0.join("absent"), &containers.join("README"));
        assert_eq!(odd.pods_len() + odd.containers_len(), 0);
        assert_eq!(odd.problems().len(), 1, "{:?}", odd.problems());
    }

    #[test]
    fn cgroup_ids_walk_any_tree_and_stop_at_the_bound() {
        let tmp = TempDir::new("sm-cgids");
        let leaf = tmp.0.join("a.slice/b.slice/c.scope");
        fs::create_dir_all(&leaf).unwrap();
        fs::create_dir_all(tmp.0.join("d")).unwrap();
        fs::write(tmp.0.join("a.slice/cgroup.procs"), "").unwrap();
        let ids = CgroupIds::read_at(&tmp.0).unwrap();
        assert_eq!(ids.len(), 5);
        assert!(!ids.truncated());
        let ino = fs::metadata(&leaf).unwrap().ino();
        assert_eq!(ids.path(ino), Some("/a.slice/b.slice/c.scope"));
        assert_eq!(ids.path(fs::metadata(&tmp.0).unwrap().ino()), Some("/"));
        let cut = CgroupIds::read_at_bounded(&tmp.0, 2).unwrap();
        assert_eq!(cut.len(), 2);
        assert!(cut.truncated());
        assert!(CgroupIds::read_at(&tmp.0.join("absent")).is_err());
    }

    // ---- A simulated Kubernetes node on this kernel (root) ----

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Mount points of the cgroup2 hierarchy and of v1's name=systemd one.
    fn hierarchies() -> (Option<PathBuf>, Option<PathBuf>) {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let v2 = cgroup2_mount(&text)
            .filter(|(_, root)| root == "/")
            .map(|(m, _)| m);
        let v1 = text.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let sep = f.iter().position(|x| *x == "-")?;
            let named = f.get(sep + 1) == Some(&"cgroup")
                && f.get(sep + 3)?.split(',').any(|o| o == "name=systemd");
            (named && f[3] == "/").then(|| PathBuf::from(f[4]))
        });
        (v2, v1)
    }

    /// Cgroup directories and processes made by a test, undone on drop even when
    /// the test fails: processes killed and reaped (so the cgroups are empty), then
    /// the directories removed leaf first.
    #[derive(Default)]
    struct CgroupGuard {
        dirs: Vec<PathBuf>,
        children: Vec<Child>,
    }

    impl Drop for CgroupGuard {
        fn drop(&mut self) {
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.wait();
            }
            for dir in self.dirs.iter().rev() {
                let deadline = Instant::now() + Duration::from_secs(2);
                while let Err(e) = fs::remove_dir(dir) {
                    if e.kind() == io::ErrorKind::NotFound || Instant::now() > deadline {
                        if e.kind() != io::ErrorKind::NotFound {
                            eprintln!("cannot remove {}: {e}", dir.display());
                        }
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    impl CgroupGuard {
        /// Creates `mount/rel` one level at a time, remembering each new directory.
        fn mkdirs(&mut self, mount: &Path, rel: &str) -> PathBuf {
            let mut dir = mount.to_path_buf();
            for comp in rel.split('/').filter(|c| !c.is_empty()) {
                dir.push(comp);
                if !dir.exists() {
                    fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                    self.dirs.push(dir.clone());
                }
            }
            dir
        }

        /// Starts `cmd`, then moves it into `cgroup` (cgroup.procs).
        fn spawn_in(&mut self, cgroup: &Path, cmd: &mut Command) -> u32 {
            let child = cmd.spawn().unwrap();
            let pid = child.id();
            self.children.push(child);
            fs::write(cgroup.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", cgroup.display()));
            pid
        }
    }

    fn random_uid() -> String {
        fs::read_to_string("/proc/sys/kernel/random/uuid")
            .unwrap()
            .trim()
            .to_string()
    }

    fn random_container_id() -> String {
        let mut bytes = [0u8; 32];
        io::Read::read_exact(&mut fs::File::open("/dev/urandom").unwrap(), &mut bytes).unwrap();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Hierarchy {
        V2,
        V1Systemd,
    }

    #[test]
    fn simulated_node_processes_get_their_pod_and_container() {
        if !is_root() {
            eprintln!("skipped: needs root (creates cgroups)");
            return;
        }
        let (v2, v1) = hierarchies();
        let top = unique("sm-test");
        let logs = TempDir::new("sm-pods");
        let mut pods = Vec::new();
        let mut cases = Vec::new();
        let mut add =
            |h,
             layout: &dyn Fn(&str, &str, &str) -> String,
             want: &dyn Fn(&str, &str) -> CgroupIdentity,
             name: Option<(&'static str, &'static str, &'static str)>| {
                let (uid, cid) = (random_uid(), random_container_id());
                let rel = format!("/{top}{}", layout(&uid, &uid.replace('-', "_"), &cid));
                if let Some((ns, pod_name, cname)) = name {
                    pods.push((ns, pod_name, uid.clone(), cname, cid.clone()));
                }
                cases.push((h, rel, want(&uid, &cid), name, uid, cid));
            };
        add(
            Hierarchy::V2,
            &|_, u_, c| {
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u_}.slice/cri-containerd-{c}.scope")
            },
            &|u, c| pod(Some("containerd"), c, u, "burstable"),
            Some(("shop", "cart-7d9f-x2k", "cart-api")),
        );
        add(
            Hierarchy::V2,
            &|_, u_, c| {
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u_}.slice/docker-{c}.scope")
            },
            &|u, c| pod(Some("docker"), c, u, "besteffort"),
            Some(("kube-system", "kube-proxy-8xq2z", "kube-proxy")),
        );
        add(
            Hierarchy::V2,
            &|_, u_, c| format!("/kubepods.slice/kubepods-pod{u_}.slice/crio-{c}.scope"),
            &|u, c| pod(Some("cri-o"), c, u, "guaranteed"),
            Some(("db", "postgres-0", "postgres")),
        );
        add(
            Hierarchy::V2,
            &|_, _, c| format!("/system.slice/docker-{c}.scope"),
            &|_, c| container("docker", c),
            None,
        );
        add(
            Hierarchy::V2,
            &|_, _, c| {
                format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{c}.scope/container")
            },
            &|_, c| container("podman", c),
            None,
        );
        add(
            Hierarchy::V1Systemd,
            &|u, _, c| format!("/kubepods/besteffort/pod{u}/{c}"),
            &|u, c| pod(None, c, u, "besteffort"),
            Some(("web", "nginx-5c7588df-abcde", "nginx")),
        );
        add(
            Hierarchy::V1Systemd,
            &|u, _, c| format!("/kubepods/pod{u}/{c}"),
            &|u, c| pod(None, c, u, "guaranteed"),
            Some(("web", "redis-0", "redis")),
        );

        let pod_refs: Vec<_> = pods
            .iter()
            .map(|(a, b, c, d, e)| (*a, *b, c.as_str(), *d, e.as_str()))
            .collect();
        let (pods_root, containers_root) = kubelet_logs(&logs.0, &pod_refs);
        let names = KubeNames::read(&pods_root, &containers_root);

        let mut guard = CgroupGuard::default();
        let mut v2_leaves = Vec::new();
        let mut checked = 0;
        for (h, rel, want, name, uid, cid) in &cases {
            let Some(mount) = (match h {
                Hierarchy::V2 => &v2,
                Hierarchy::V1Systemd => &v1,
            }) else {
                eprintln!("skipped {rel}: no {h:?} hierarchy mounted");
                continue;
            };
            let leaf = guard.mkdirs(mount, rel);
            let pid = guard.spawn_in(&leaf, Command::new("sleep").arg("60"));
            let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            let path = process_cgroup_path(&text);
            assert_eq!(path.as_deref(), Some(rel.as_str()), "{text}");
            assert_eq!(
                read_process_cgroup_path(pid).unwrap().as_deref(),
                Some(rel.as_str())
            );
            let ident = identify(rel);
            assert_eq!(&ident, want, "{rel}");
            if let Some((ns, pod_name, cname)) = name {
                assert_eq!(names.pod(uid), Some(format!("{ns}/{pod_name}").as_str()));
                assert_eq!(
                    names.pod_of(&ident),
                    Some(format!("{ns}/{pod_name}").as_str())
                );
                assert_eq!(names.container(cid), Some(*cname));
            }
            if *h == Hierarchy::V2 {
                v2_leaves.push((leaf, rel.clone()));
            }
            checked += 1;
        }
        assert!(checked > 0, "no cgroup hierarchy to test in");

        // The v2 leaves' ids (directory inodes) map back to their paths.
        if !v2_leaves.is_empty() {
            let ids = CgroupIds::read().unwrap();
            assert_eq!(Some(ids.mount()), v2.as_deref());
            assert!(!ids.truncated());
            for (leaf, rel) in &v2_leaves {
                let ino = fs::metadata(leaf).unwrap().ino();
                assert_eq!(ids.path(ino), Some(rel.as_str()), "inode {ino}");
                // ... and every parent up to the root.
                let parent = fs::metadata(leaf.parent().unwrap()).unwrap().ino();
                assert_eq!(
                    ids.path(parent),
                    Path::new(rel).parent().and_then(Path::to_str)
                );
            }
        }
    }

    /// The claim orphans rely on: a socket's `INET_DIAG_CGROUP_ID` is the inode of its
    /// creator's cgroup v2 directory. `ss --cgroup` (iproute2) reads that attribute and
    /// resolves it on its own; its answer must be our path for the directory's inode.
    #[test]
    fn sock_diag_cgroup_id_is_the_directory_inode() {
        if !is_root() {
            eprintln!("skipped: needs root (creates cgroups)");
            return;
        }
        let (Some(v2), _) = hierarchies() else {
            eprintln!("skipped: no cgroup2 hierarchy");
            return;
        };
        let ss_has_cgroup = Command::new("ss").arg("-h").output().is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).contains("--cgroup")
                || String::from_utf8_lossy(&o.stderr).contains("--cgroup")
        });
        if !ss_has_cgroup || Command::new("python3").arg("-c").arg("").status().is_err() {
            eprintln!("skipped: needs python3 and ss with --cgroup");
            return;
        }
        let rel = format!("/{}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
            unique("sm-test"), random_uid().replace('-', "_"), random_container_id());
        let mut guard = CgroupGuard::default();
        let leaf = guard.mkdirs(&v2, &rel);
        // The listener is created only after the process is in the cgroup: a socket
        // keeps the cgroup of the task that created it.
        let script = "import socket,sys,time\nsys.stdin.read(1)\ns=socket.socket()\n\
                      s.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)\n";
        let mut cmd = Command::new("python3");
        cmd.args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        guard.spawn_in(&leaf, &mut cmd);
        let child = guard.children.last_mut().unwrap();
        child.stdin.take().unwrap().write_all(b"x").unwrap();
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        let port = port.trim();
        let out = Command::new("ss")
            .args(["-Htln", "--cgroup", &format!("sport = :{port}")])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        let from_ss = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("cgroup:"))
            .unwrap_or_else(|| panic!("no cgroup in ss output: {out:?}"));
        let ids = CgroupIds::read().unwrap();
        let ino = fs::metadata(&leaf).unwrap().ino();
        assert_eq!(ids.path(ino), Some(rel.as_str()));
        assert_eq!(from_ss, rel);
    }
}
