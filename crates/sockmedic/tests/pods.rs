//! A simulated Kubernetes node: real processes in cgroups laid out the way kubelet
//! and the container runtimes lay them out (systemd and cgroupfs drivers, each QoS
//! class, docker and podman containers outside Kubernetes), each pod in a network
//! namespace of its own (as a pod sandbox is), with kubelet's log directories in
//! temporary `--pods-dir` / `--containers-dir`. `procs` must name every process's
//! pod and container, and `netns` the pod's namespace; orphans must be attributed
//! to the cgroup (container, pod) that made them.
//!
//! Everything made here is undone on drop, even when a test fails: processes killed,
//! cgroups removed leaf first, namespaces deleted, log directories removed.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hier {
    V2,
    V1Systemd,
}

/// One container: a holder process in its own cgroup leaf.
struct Container {
    /// The cgroup path as the process will show it (`/top/kubepods.slice/...`).
    rel: String,
    hier: Hier,
    id: String,
    /// Its name in /var/log/containers (the pause container writes no log).
    name: Option<&'static str>,
    pid: u32,
}

/// A pod (or a bare container) in its own network namespace.
struct Sandbox {
    label: &'static str,
    ns: TestNetns,
    /// `namespace/name`, or the UID when kubelet's logs do not name it; None for a
    /// container outside Kubernetes.
    pod: Option<String>,
    uid: Option<String>,
    containers: Vec<Container>,
    _holders: Vec<Holder>,
}

impl Sandbox {
    /// The first name its namespace must have.
    fn netns_name(&self) -> String {
        match &self.pod {
            Some(p) => format!("pod {p}"),
            None => format!("container {}", self.containers[0].id),
        }
    }
}

/// Builds the node. `tree` and `logs` must outlive the sandboxes (declared first,
/// dropped last: processes die with their namespaces, then the cgroups go).
struct Node {
    top: String,
    mounts: CgroupMounts,
}

impl Node {
    fn new() -> Node {
        require_root();
        let mounts = CgroupMounts::find();
        assert!(
            mounts.v2.is_some(),
            "no cgroup v2 hierarchy in /proc/self/mountinfo: {mounts:?}"
        );
        Node {
            top: unique_name("sm-node"),
            mounts,
        }
    }

    fn mount(&self, h: Hier) -> Option<&PathBuf> {
        match h {
            Hier::V2 => self.mounts.v2.as_ref(),
            Hier::V1Systemd => self.mounts.v1_systemd.as_ref(),
        }
    }

    /// Starts one holder per container in a new namespace, each moved into its
    /// cgroup before it makes a socket.
    fn sandbox(
        &self,
        tree: &mut CgroupTree,
        label: &'static str,
        pod: Option<String>,
        uid: Option<String>,
        containers: Vec<(Hier, String, String, Option<&'static str>)>,
        holder_args: &[&str],
    ) -> Sandbox {
        let mut ns = TestNetns::new(&format!("pods-{label}"));
        let mut out = Vec::new();
        let mut holders = Vec::new();
        for (hier, path, id, name) in containers {
            let rel = format!("/{}{path}", self.top);
            let mount = self.mount(hier).expect("hierarchy mounted");
            let leaf = tree.mkdirs(mount, &rel);
            let h = ns.start_holder_prepared(holder_args, &mut |pid| tree.move_into(&leaf, pid));
            out.push(Container {
                rel,
                hier,
                id,
                name,
                pid: h.pid,
            });
            holders.push(h);
        }
        Sandbox {
            label,
            ns,
            pod,
            uid,
            containers: out,
            _holders: holders,
        }
    }
}

fn pod_name(prefix: &str) -> String {
    // DNS-label-like and without '_' (kubelet's separator).
    unique_name(prefix)
}

fn pids_of(report: &Value) -> BTreeSet<u32> {
    process_pids(report).into_iter().collect()
}

#[test]
fn simulated_node_names_pods_containers_and_their_namespaces() {
    let node = Node::new();
    let logs = KubeLogs::new("node");
    let mut tree = CgroupTree::new();
    let mut sandboxes: Vec<Sandbox> = Vec::new();
    let hold = ["--listen", "127.0.0.1:0", "--connect", "self:k:1"];

    // (label, k8s namespace, systemd/cgroupfs layout, hierarchy, runtime prefix)
    // Kubernetes, systemd driver, Burstable, containerd: an app and its pause
    // container (which writes no log, so it has no name).
    {
        let (uid, name) = (random_pod_uid(), pod_name("cart"));
        let u_ = uid.replace('-', "_");
        let (app, pause) = (random_container_id(), random_container_id());
        let slice =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u_}.slice");
        logs.add_pod("shop", &name, &uid, &[("cart-api", &app)]);
        sandboxes.push(node.sandbox(
            &mut tree,
            "burstable",
            Some(format!("shop/{name}")),
            Some(uid),
            vec![
                (
                    Hier::V2,
                    format!("{slice}/cri-containerd-{pause}.scope"),
                    pause,
                    None,
                ),
                (
                    Hier::V2,
                    format!("{slice}/cri-containerd-{app}.scope"),
                    app,
                    Some("cart-api"),
                ),
            ],
            &hold,
        ));
    }
    // systemd driver, BestEffort, CRI-O.
    {
        let (uid, name, cid) = (
            random_pod_uid(),
            pod_name("kube-proxy"),
            random_container_id(),
        );
        let u_ = uid.replace('-', "_");
        logs.add_pod("kube-system", &name, &uid, &[("kube-proxy", &cid)]);
        sandboxes.push(node.sandbox(
            &mut tree,
            "besteffort",
            Some(format!("kube-system/{name}")),
            Some(uid),
            vec![(
                Hier::V2,
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u_}.slice/crio-{cid}.scope"),
                cid,
                Some("kube-proxy"),
            )],
            &hold,
        ));
    }
    // systemd driver, Guaranteed (no QoS level), docker as the runtime.
    {
        let (uid, name, cid) = (
            random_pod_uid(),
            pod_name("postgres"),
            random_container_id(),
        );
        let u_ = uid.replace('-', "_");
        logs.add_pod("db", &name, &uid, &[("postgres", &cid)]);
        sandboxes.push(node.sandbox(
            &mut tree,
            "guaranteed",
            Some(format!("db/{name}")),
            Some(uid),
            vec![(
                Hier::V2,
                format!("/kubepods.slice/kubepods-pod{u_}.slice/docker-{cid}.scope"),
                cid,
                Some("postgres"),
            )],
            &hold,
        ));
    }
    // cgroupfs driver, Burstable, in the v1 name=systemd hierarchy (v2 stays at /).
    if node.mounts.v1_systemd.is_some() {
        let (uid, name, cid) = (random_pod_uid(), pod_name("nginx"), random_container_id());
        logs.add_pod("web", &name, &uid, &[("nginx", &cid)]);
        sandboxes.push(node.sandbox(
            &mut tree,
            "cgroupfs-v1",
            Some(format!("web/{name}")),
            Some(uid.clone()),
            vec![(
                Hier::V1Systemd,
                format!("/kubepods/burstable/pod{uid}/{cid}"),
                cid,
                Some("nginx"),
            )],
            &hold,
        ));
    } else {
        eprintln!("no v1 name=systemd hierarchy here: the cgroupfs-v1 case is left out");
    }
    // cgroupfs driver, Guaranteed, in cgroup v2.
    {
        let (uid, name, cid) = (random_pod_uid(), pod_name("redis"), random_container_id());
        logs.add_pod("web", &name, &uid, &[("redis", &cid)]);
        sandboxes.push(node.sandbox(
            &mut tree,
            "cgroupfs-guaranteed",
            Some(format!("web/{name}")),
            Some(uid.clone()),
            vec![(
                Hier::V2,
                format!("/kubepods/pod{uid}/{cid}"),
                cid,
                Some("redis"),
            )],
            &hold,
        ));
    }
    // A pod kubelet's logs do not name (deleted logs, another node's files): its UID.
    {
        let (uid, cid) = (random_pod_uid(), random_container_id());
        let u_ = uid.replace('-', "_");
        sandboxes.push(node.sandbox(
            &mut tree,
            "unnamed-pod",
            Some(uid.clone()),
            Some(uid),
            vec![(
                Hier::V2,
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u_}.slice/cri-containerd-{cid}.scope"),
                cid,
                None,
            )],
            &hold,
        ));
    }
    // Docker outside Kubernetes (systemd cgroup driver), and podman.
    {
        let cid = random_container_id();
        sandboxes.push(node.sandbox(
            &mut tree,
            "docker",
            None,
            None,
            vec![(
                Hier::V2,
                format!("/system.slice/docker-{cid}.scope"),
                cid,
                None,
            )],
            &hold,
        ));
        let cid = random_container_id();
        sandboxes.push(node.sandbox(
            &mut tree,
            "podman",
            None,
            None,
            vec![(
                Hier::V2,
                format!("/machine.slice/libpod-{cid}.scope"),
                cid,
                None,
            )],
            &hold,
        ));
    }

    // The fixture: each process is where the layout says.
    for s in &sandboxes {
        for c in &s.containers {
            let text = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)).unwrap();
            let want = match c.hier {
                Hier::V2 => format!("0::{}", c.rel),
                Hier::V1Systemd => format!(":name=systemd:{}", c.rel),
            };
            assert!(
                text.lines().any(|l| l.ends_with(&want)),
                "{}: /proc/{}/cgroup has no {want:?}:\n{text}",
                s.label,
                c.pid
            );
        }
    }

    let all: Vec<u32> = sandboxes
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.pid))
        .collect();
    let pid_list = all.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let (pods_dir, containers_dir) = (logs.pods_dir(), logs.containers_dir());
    let dirs = [
        "--pods-dir",
        pods_dir.as_str(),
        "--containers-dir",
        containers_dir.as_str(),
    ];
    let mut args = vec!["procs", "--json", "--all", "--pid", &pid_list];
    args.extend(dirs);
    let run = sockmedic(&args);
    let report = run.report();
    assert_eq!(
        pids_of(report),
        all.iter().copied().collect::<BTreeSet<u32>>(),
        "every container process, and only those\n{}",
        run.describe()
    );
    for s in &sandboxes {
        for c in &s.containers {
            let p = process_entry(report, c.pid);
            let what = format!(
                "{} (pid {}, {})\n{}",
                s.label,
                c.pid,
                c.rel,
                serde_json::to_string_pretty(p).unwrap()
            );
            assert_eq!(p["cgroup"].as_str(), Some(c.rel.as_str()), "cgroup: {what}");
            assert_eq!(
                p["container"].as_str(),
                Some(c.id.as_str()),
                "container: {what}"
            );
            assert_eq!(
                p["container_name"].as_str(),
                c.name,
                "container_name: {what}"
            );
            assert_eq!(p["pod"].as_str(), s.pod.as_deref(), "pod: {what}");
            assert_eq!(p["netns"].as_u64(), Some(s.ns.inode()), "netns: {what}");
            // Its sockets are still counted.
            assert_eq!(p["states"]["ESTABLISHED"].as_u64(), Some(2), "{what}");
            assert_eq!(p["socket_fds"].as_u64(), Some(3), "{what}");
        }
        // The namespace: named after its pod (or container) first, `pod` set.
        let want_name = s.netns_name();
        let n = netns_named(report, &want_name);
        let names: Vec<&str> = n["names"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            n["id"].as_u64(),
            Some(s.ns.inode()),
            "{}: {names:?}",
            s.label
        );
        assert_eq!(names[0], want_name, "{}: first name of {names:?}", s.label);
        assert!(
            names.contains(&s.ns.name.as_str()),
            "{}: the ip netns name is kept: {names:?}",
            s.label
        );
        assert_eq!(
            n["pod"].as_str(),
            s.pod.as_deref(),
            "{}: netns.pod",
            s.label
        );
        assert_eq!(n["host"], false);
    }

    // stat and sockets name the namespaces the same way (the flags are global).
    for command in ["stat", "sockets"] {
        let mut args = vec![command, "--json"];
        args.extend(dirs);
        let run = sockmedic(&args);
        let report = run.report();
        for s in &sandboxes {
            let n = netns_named(report, &s.netns_name());
            assert_eq!(
                n["id"].as_u64(),
                Some(s.ns.inode()),
                "{command}: {}",
                s.label
            );
            assert_eq!(
                n["pod"].as_str(),
                s.pod.as_deref(),
                "{command}: {}",
                s.label
            );
        }
    }

    // --pod: the full name, the bare name, the UID (the flag's help says each
    // works); --netns: the pod's name. Every selector is tried before the verdict.
    let mut errs: Vec<String> = Vec::new();
    let shop = &sandboxes[0];
    let shop_pids: BTreeSet<u32> = shop.containers.iter().map(|c| c.pid).collect();
    let full = shop.pod.clone().unwrap();
    let bare = full.split('/').nth(1).unwrap().to_string();
    let uid = shop.uid.clone().unwrap();
    let unnamed = sandboxes.iter().find(|s| s.label == "unnamed-pod").unwrap();
    let unnamed_uid = unnamed.uid.clone().unwrap();
    let unnamed_pids: BTreeSet<u32> = [unnamed.containers[0].pid].into_iter().collect();
    let selections: [(&str, &BTreeSet<u32>, &str); 5] = [
        (full.as_str(), &shop_pids, "namespace/name"),
        (bare.as_str(), &shop_pids, "the bare name"),
        (uid.as_str(), &shop_pids, "the UID of a named pod"),
        (
            unnamed_uid.as_str(),
            &unnamed_pids,
            "the UID of a pod without a name",
        ),
        (
            "no-such-pod-anywhere",
            &BTreeSet::new(),
            "no such pod: nothing, no error",
        ),
    ];
    for (sel, want, what) in selections {
        let mut args = vec!["procs", "--json", "--all", "--pod", sel];
        args.extend(dirs);
        let run = sockmedic(&args);
        let got = pids_of(run.report());
        if &got != want {
            errs.push(format!(
                "procs --pod {sel:?} ({what}): got pids {got:?}, want {want:?}"
            ));
        }
    }
    for sel in [format!("pod {full}"), full.clone()] {
        let mut args = vec!["procs", "--json", "--all", "--netns", sel.as_str()];
        args.extend(dirs);
        let run = sockmedic(&args);
        let n = only_netns(run.report());
        if n["id"].as_u64() != Some(shop.ns.inode()) {
            errs.push(format!("--netns {sel:?}: namespace {} selected", n["id"]));
        }
        let got = pids_of(run.report());
        if !shop_pids.is_subset(&got) {
            errs.push(format!(
                "--netns {sel:?}: its processes {shop_pids:?} not all in {got:?}"
            ));
        }
    }
    assert!(
        errs.is_empty(),
        "selection by pod:\n  {}",
        errs.join("\n  ")
    );

    drop(sandboxes);
    drop(tree);
    // Everything made is gone.
    let v2_top = node.mounts.v2.as_ref().unwrap().join(&node.top);
    assert!(!v2_top.exists(), "{} removed", v2_top.display());
}

/// Sockets a pod's process closed while the peer never acknowledged (FIN-WAIT-1
/// orphans, no fd, no process): `orphan_owners` names the cgroup, container and pod
/// that made them, from INET_DIAG_CGROUP_ID (the inode of a cgroup v2 directory).
#[test]
fn orphans_are_attributed_to_the_pod_that_made_them() {
    const ORPHANS: u64 = 5;
    let node = Node::new();
    let logs = KubeLogs::new("orphans");
    let mut tree = CgroupTree::new();
    let (uid, name) = (random_pod_uid(), pod_name("checkout"));
    let u_ = uid.replace('-', "_");
    let (client_id, server_id) = (random_container_id(), random_container_id());
    logs.add_pod(
        "shop",
        &name,
        &uid,
        &[("client", &client_id), ("server", &server_id)],
    );
    let pod = format!("shop/{name}");
    let slice = format!(
        "/{}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u_}.slice",
        node.top
    );
    let v2 = node.mounts.v2.clone().unwrap();
    let server_rel = format!("{slice}/cri-containerd-{server_id}.scope");
    let client_rel = format!("{slice}/cri-containerd-{client_id}.scope");
    let server_leaf = tree.mkdirs(&v2, &server_rel);
    let client_leaf = tree.mkdirs(&v2, &client_rel);
    let client_cgroup_id = std::fs::metadata(&client_leaf).unwrap().ino();

    let mut ns = TestNetns::new("pods-orphans");
    // The orphans must outlive the test's checks (the FIN is retransmitted meanwhile).
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "15");
    /// Destroys the namespace's sockets (orphans have no process to kill, and would
    /// keep the namespace alive for minutes).
    struct KillSockets<'a>(&'a TestNetns);
    impl Drop for KillSockets<'_> {
        fn drop(&mut self) {
            let _ = self.0.exec(&["ss", "-HtanK"]);
        }
    }
    let _server = ns.start_holder_prepared(&["--listen", "127.0.0.1:7100"], &mut |pid| {
        tree.move_into(&server_leaf, pid)
    });
    let count = ORPHANS.to_string();
    let conn = format!("127.0.0.1:7100:k:{count}");
    let mut client = ns.start_holder_prepared(&["--connect", &conn], &mut |pid| {
        tree.move_into(&client_leaf, pid)
    });
    let kill_sockets = KillSockets(&ns);
    // The server's ACKs never come back; the client closes everything.
    kill_sockets.0.nft(
        "table inet smtest {\n chain input {\n  type filter hook input priority 0;\n  tcp sport 7100 drop\n }\n}\n",
    );
    let closed = client.ask("close");
    assert_eq!(closed["closed"].as_u64(), Some(ORPHANS), "{closed}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let fin_wait_1 = || {
        kill_sockets
            .0
            .sockdiag(&[4])
            .into_iter()
            .filter(|d| d.is_orphan() && d.local.port() != 7100)
            .count() as u64
    };
    while fin_wait_1() != ORPHANS {
        assert!(Instant::now() < deadline, "no {ORPHANS} FIN-WAIT-1 orphans");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The client process exits: the orphans are all that is left of it.
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !CgroupTree::is_empty(&client_leaf) {
        assert!(Instant::now() < deadline, "the client did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Ground truth: ss reads the same attribute and resolves it itself (run in the
    // namespace's network only, so that it sees the host's cgroup2 mount).
    let out = run_ok(Command::new("nsenter").args([
        &format!("--net={}", ns.path().display()),
        "ss",
        "-Htan",
        "--cgroup",
        "state",
        "fin-wait-1",
    ]));
    let ss_paths: Vec<&str> = out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("cgroup:"))
        .collect();
    assert_eq!(
        ss_paths,
        vec![client_rel.as_str(); ORPHANS as usize],
        "ss --cgroup: the orphans' cgroup\n{out}"
    );

    let (pods_dir, containers_dir) = (logs.pods_dir(), logs.containers_dir());
    let want = serde_json::json!([{
        "cgroup_id": client_cgroup_id,
        "cgroup": client_rel,
        "container": client_id,
        "pod": pod,
        "count": ORPHANS,
    }]);
    let mut errs = Vec::new();
    for command in ["stat", "sockets"] {
        let run = sockmedic(&[
            command,
            "--json",
            "--netns",
            &ns.name,
            "--pods-dir",
            &pods_dir,
            "--containers-dir",
            &containers_dir,
        ]);
        let n = only_netns(run.report());
        assert_eq!(
            n["orphans"].as_u64(),
            Some(ORPHANS),
            "{command}: orphans\n{}",
            run.describe()
        );
        if n["orphan_owners"] != want {
            errs.push(format!(
                "{command} --json --netns {}: orphan_owners\n    got  {}\n    want {}",
                ns.name, n["orphan_owners"], want
            ));
        }
    }
    assert!(
        errs.is_empty(),
        "orphans attributed:\n  {}",
        errs.join("\n  ")
    );
}
