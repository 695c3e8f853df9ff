//! Harness for sockmedic's real-kernel integration tests.
//!
//! - [`TestNetns`]: a network namespace per test (`sm-<test>-<pid>`), deleted on drop,
//!   after the processes started in it are killed, even when the test panics.
//! - [`StateMaker`]: `support/statemaker.py` run inside it, which brings sockets into
//!   every TCP state and reports what it made.
//! - [`SsTable`]: `ss -tan` parsed, with state names spelled the way sockmedic's report
//!   spells them, aggregated per state and per (state, endpoint).
//! - Helpers to run sockmedic and read its JSON report.
//!
//! Everything needs root (namespaces, nftables); a test run without it fails at once
//! with a message that says so.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// States a sock_diag dump returns as themselves, in report spelling.
pub const DUMPABLE: [&str; 10] = [
    "ESTABLISHED",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "LISTEN",
    "CLOSING",
];

pub const SCHEMA: &str = "sockmedic.report/v1";

pub fn support_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("support")
}

fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

pub fn require_root() {
    assert_eq!(
        euid(),
        Some(0),
        "sockmedic's integration tests need root: they create network namespaces and nftables rules"
    );
}

fn output_text(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command and panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> String {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed\n{}", output_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---------------------------------------------------------------------------------
// Network namespace guard
// ---------------------------------------------------------------------------------

/// A network namespace made for one test: `ip netns add sm-<test>-<pid>`, loopback up.
/// Dropping it kills every process started inside, then deletes it.
///
/// [`TestNetns::unnamed`] makes one with no `ip netns` name instead, held only by a
/// process (as a container's is): it vanishes when its processes are killed.
pub struct TestNetns {
    /// The `ip netns` name; empty for an unnamed namespace.
    pub name: String,
    children: Vec<Child>,
    /// For an unnamed namespace: the process holding it, and its inode.
    holder: Option<(u32, u64)>,
}

impl TestNetns {
    pub fn new(test: &str) -> TestNetns {
        require_root();
        let clean: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let name = format!("sm-{}-{}", clean, std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        // From here on, Drop cleans up whatever happens.
        let ns = TestNetns {
            name,
            children: Vec::new(),
            holder: None,
        };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A namespace without an `ip netns` name, held by a `sleep` made with
    /// `unshare --net`: sockmedic can only find it through its processes.
    pub fn unnamed() -> TestNetns {
        require_root();
        let mut ns = TestNetns {
            name: String::new(),
            children: Vec::new(),
            holder: None,
        };
        let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--", "sleep", "100000"])
            .stdin(Stdio::null());
        let pid = ns.spawn(&mut cmd).id();
        // unshare execs sleep once the namespace is made.
        let deadline = Instant::now() + Duration::from_secs(10);
        let inode = loop {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ino = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino());
            match ino {
                Ok(i) if i != own && comm.trim() == "sleep" => break i,
                _ if Instant::now() > deadline => panic!("unshare --net did not start"),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        ns.holder = Some((pid, inode));
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The pid of the process holding an unnamed namespace.
    pub fn holder_pid(&self) -> Option<u32> {
        self.holder.map(|h| h.0)
    }

    /// `/run/netns/NAME`, or `/proc/PID/ns/net` of the holder of an unnamed one.
    pub fn path(&self) -> PathBuf {
        match self.holder {
            Some((pid, _)) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            None => PathBuf::from("/run/netns").join(&self.name),
        }
    }

    /// The namespace's nsfs inode: its id in sockmedic's report.
    pub fn inode(&self) -> u64 {
        if let Some((_, inode)) = self.holder {
            return inode;
        }
        std::fs::metadata(self.path())
            .expect("stat /run/netns/NAME")
            .ino()
    }

    /// A command that will run inside the namespace.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        if self.holder.is_some() {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", self.path().display()))
                .arg("--")
                .args(args);
            return c;
        }
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("ip netns exec")
    }

    pub fn exec_ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.cmd(args))
    }

    /// Feeds an nft script to `nft -f -` inside the namespace. Use a table of your
    /// own (`inet smtest`); it vanishes with the namespace.
    pub fn nft(&self, script: &str) {
        let mut child = self
            .cmd(&["nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "nft -f - failed on\n{script}\n{}",
            output_text(&o)
        );
    }

    /// Sets a sysctl inside the namespace (only per-namespace sysctls may be set).
    pub fn set_sysctl(&self, key: &str, value: &str) {
        self.exec_ok(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    pub fn sysctl(&self, key: &str) -> String {
        self.exec_ok(&["sysctl", "-n", key]).trim().to_string()
    }

    /// A file of the namespace's /proc/net (`snmp`, `netstat`, `sockstat`).
    pub fn proc_net(&self, file: &str) -> String {
        self.exec_ok(&["cat", &format!("/proc/net/{file}")])
    }

    /// `Tcp: CurrEstab` of /proc/net/snmp in the namespace.
    pub fn curr_estab(&self) -> i64 {
        snmp_value(&self.proc_net("snmp"), "Tcp", "CurrEstab")
            .expect("Tcp CurrEstab in /proc/net/snmp")
    }

    /// `ss -Htan` + `extra` inside the namespace, parsed.
    pub fn ss(&self, extra: &[&str]) -> SsTable {
        let mut args = vec!["ss", "-Htan"];
        args.extend_from_slice(extra);
        SsTable::parse(&self.exec_ok(&args))
    }

    /// Every socket `ss -tan` shows (not the bound-inactive ones).
    pub fn ss_tan(&self) -> SsTable {
        self.ss(&[])
    }

    /// Listeners (`ss -tanl`): Recv-Q = accept queue, Send-Q = backlog.
    pub fn ss_listen(&self) -> SsTable {
        self.ss(&["-l"])
    }

    /// `ss -tan state bound-inactive`, or None when this iproute2 does not know the
    /// state (it came with iproute2 6.8; kernels since 6.8 answer it).
    pub fn ss_bound_inactive(&self) -> Option<SsTable> {
        let o = self.exec(&["ss", "-Htan", "state", "bound-inactive"]);
        if !o.status.success() {
            return None;
        }
        Some(SsTable::parse(&String::from_utf8_lossy(&o.stdout)))
    }

    /// A raw sock_diag dump (support/sockdiag.py) of the given kernel state numbers.
    pub fn sockdiag(&self, states: &[u8]) -> Vec<DiagSock> {
        let script = support_dir().join("sockdiag.py");
        let mut args: Vec<String> = vec!["python3".into(), script.display().to_string()];
        args.extend(states.iter().map(|s| s.to_string()));
        let out = run_ok(&mut self.cmd(&args));
        let v: Value = serde_json::from_str(out.trim()).expect("sockdiag.py JSON");
        assert!(v["error"].is_null(), "sockdiag.py: {}", v["error"]);
        v["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| DiagSock {
                state: s["state"].as_u64().unwrap() as u8,
                local: parse_endpoint(s["local"].as_str().unwrap()),
                remote: parse_endpoint(s["remote"].as_str().unwrap()),
                inode: s["inode"].as_u64().unwrap(),
                timer: s["timer"].as_u64().unwrap() as u8,
            })
            .collect()
    }

    /// The bound-inactive sockets: from ss if it can, else from a raw dump.
    pub fn bound_inactive(&self) -> SsTable {
        if let Some(t) = self.ss_bound_inactive() {
            return t;
        }
        SsTable {
            rows: self
                .sockdiag(&[13])
                .into_iter()
                .map(|d| SsRow {
                    state: "BOUND-INACTIVE".into(),
                    recv_q: 0,
                    send_q: 0,
                    local: d.local,
                    remote: None,
                })
                .collect(),
        }
    }

    /// Starts a long-running process inside the namespace; it is killed on drop.
    pub fn spawn(&mut self, cmd: &mut Command) -> &mut Child {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    /// Runs a support script inside the namespace and returns the JSON line it prints
    /// when ready (and its pid). It runs until the namespace is dropped.
    pub fn start_support(&mut self, script: &str, args: &[&str]) -> (u32, Value) {
        let path = support_dir().join(script);
        let mut full = vec!["python3", path.to_str().unwrap()];
        full.extend_from_slice(args);
        let mut cmd = self.cmd(&full);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let child = self.spawn(&mut cmd);
        let pid = child.id();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the support script's output");
        assert!(
            !line.is_empty(),
            "{script} exited before it was ready (see its stderr above)"
        );
        let v =
            serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{script}: {e}: {line}"));
        (pid, v)
    }

    /// Runs support/statemaker.py inside and waits until every state is in place.
    pub fn start_state_maker(&mut self) -> StateMaker {
        let inode = self.inode().to_string();
        let (pid, info) = self.start_support("statemaker.py", &["--netns-inode", &inode]);
        assert!(
            info["settled"].as_bool() == Some(true),
            "statemaker did not reach every state: expected {} observed {}",
            info["expect"],
            info["observed"]
        );
        let sm = StateMaker::from_json(info);
        // `ip netns exec` execs the command, so the child is the state maker itself.
        assert_eq!(sm.pid, pid, "statemaker pid");
        sm
    }

    fn pids_inside(&self) -> Vec<u32> {
        if let Some((_, inode)) = self.holder {
            let Ok(dir) = std::fs::read_dir("/proc") else {
                return Vec::new();
            };
            return dir
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::metadata(format!("/proc/{pid}/ns/net"))
                        .map(|m| m.ino())
                        .ok()
                        == Some(inode)
                })
                .collect();
        }
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let holder = self.holder_pid();
        for c in &mut self.children {
            if Some(c.id()) != holder {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Anything else still inside was started by this test (e.g. a child of a
        // process above): kill it by its pid.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids: Vec<u32> = self
                .pids_inside()
                .into_iter()
                .filter(|p| Some(*p) != holder)
                .collect();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in pids {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.destroy_orphans();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.holder.is_none() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }
}

impl TestNetns {
    /// The processes are gone, but the sockets they closed live on as orphans,
    /// retransmitting into the drops for up to half an hour (the tests stretch
    /// tcp_orphan_retries), and they keep the deleted namespace alive and count in
    /// the host's `orphan`: the next tests would see them. Lift the drops and
    /// destroy every socket left (`ss -K`, SOCK_DESTROY).
    fn destroy_orphans(&self) {
        let quiet = |args: &[&str]| {
            let _ = self
                .cmd(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["nft", "flush", "ruleset"]);
        quiet(&["ss", "-K", "-tan"]);
    }
}

/// Names of the `ip netns` namespaces that exist now.
pub fn ip_netns_list() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn snmp_value(text: &str, section: &str, name: &str) -> Option<i64> {
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(h), Some(v)) = (lines.next(), lines.next()) {
        let names: Vec<&str> = h.split_whitespace().collect();
        let vals: Vec<&str> = v.split_whitespace().collect();
        if let Some(i) = names.iter().position(|n| *n == name) {
            return vals.get(i)?.parse().ok();
        }
    }
    None
}

// ---------------------------------------------------------------------------------
// The state maker
// ---------------------------------------------------------------------------------

/// What support/statemaker.py made (its JSON line).
#[derive(Clone, Debug)]
pub struct StateMaker {
    pub pid: u32,
    /// Expected count per state (report spelling), both families.
    pub expect: BTreeMap<String, u64>,
    /// States of the sockets whose fds the state maker holds.
    pub process_states: BTreeMap<String, u64>,
    /// Sockets it holds that are in no table (never used; reset, auto-bound).
    pub unhashed: u64,
    /// Full sockets closed by the application, still held by TCP.
    pub orphans: u64,
    pub listeners: Vec<ExpectedListener>,
    /// Port per scenario and family: `port("v4", "last_ack")`.
    pub ports: Value,
    pub info: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedListener {
    pub local: SocketAddr,
    pub backlog: u64,
    pub accept_queue: u64,
    pub syn_recv: u64,
}

impl StateMaker {
    fn from_json(info: Value) -> StateMaker {
        let counts = |v: &Value| -> BTreeMap<String, u64> {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
                .collect()
        };
        StateMaker {
            pid: info["pid"].as_u64().unwrap() as u32,
            expect: counts(&info["expect"]),
            process_states: counts(&info["process"]["states"]),
            unhashed: info["process"]["unhashed"].as_u64().unwrap(),
            orphans: info["orphans"].as_u64().unwrap(),
            listeners: info["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| ExpectedListener {
                    local: parse_endpoint(l["local"].as_str().unwrap()),
                    backlog: l["backlog"].as_u64().unwrap(),
                    accept_queue: l["accept_queue"].as_u64().unwrap(),
                    syn_recv: l["syn_recv"].as_u64().unwrap(),
                })
                .collect(),
            ports: info["ports"].clone(),
            info,
        }
    }

    pub fn port(&self, family: &str, scenario: &str) -> u16 {
        self.ports[family][scenario]
            .as_u64()
            .unwrap_or_else(|| panic!("no port {family} {scenario}")) as u16
    }
}

// ---------------------------------------------------------------------------------
// ss
// ---------------------------------------------------------------------------------

/// One line of `ss -tan`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SsRow {
    /// In sockmedic's spelling (`ESTABLISHED`, `BOUND-INACTIVE`, ...).
    pub state: String,
    pub recv_q: u64,
    pub send_q: u64,
    pub local: SocketAddr,
    /// None for a wildcard peer (`0.0.0.0:*`, `[::]:*`): listeners, bound sockets.
    pub remote: Option<SocketAddr>,
}

/// Maps the state names `ss` prints to the report's.
pub fn ss_state_name(s: &str) -> String {
    match s {
        "ESTAB" => "ESTABLISHED",
        "UNCONN" => "BOUND-INACTIVE",
        other => other,
    }
    .to_string()
}

/// Parses an endpoint as `ss -n` or sockmedic prints it: `1.2.3.4:80`, `[::1]:80`,
/// `127.0.0.1%lo:80`, `*:80`, `0.0.0.0:*` (port `*` is 0).
pub fn parse_endpoint(s: &str) -> SocketAddr {
    let (host, port) = s
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("endpoint without a port: {s:?}"));
    let port: u16 = if port == "*" {
        0
    } else {
        port.parse().unwrap_or_else(|_| panic!("bad port in {s:?}"))
    };
    let host = host.split('%').next().unwrap();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = if host == "*" {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        host.parse()
            .unwrap_or_else(|_| panic!("bad address in endpoint {s:?}"))
    };
    SocketAddr::new(ip, port)
}

fn is_wildcard_peer(s: &str) -> bool {
    s.ends_with(":*")
}

/// `ss -tan` output, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SsTable {
    pub rows: Vec<SsRow>,
}

impl SsTable {
    pub fn parse(text: &str) -> SsTable {
        let mut rows = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() || f[0] == "State" {
                continue;
            }
            assert!(f.len() >= 5, "unexpected ss line: {line:?}");
            rows.push(SsRow {
                state: ss_state_name(f[0]),
                recv_q: f[1].parse().unwrap(),
                send_q: f[2].parse().unwrap(),
                local: parse_endpoint(f[3]),
                remote: if is_wildcard_peer(f[4]) {
                    None
                } else {
                    Some(parse_endpoint(f[4]))
                },
            });
        }
        rows.sort();
        SsTable { rows }
    }

    /// Rows without the queues, sorted: equal keys mean the same sockets in the same states.
    pub fn key(&self) -> Vec<(String, SocketAddr, Option<SocketAddr>)> {
        let mut k: Vec<_> = self
            .rows
            .iter()
            .map(|r| (r.state.clone(), r.local, r.remote))
            .collect();
        k.sort();
        k
    }

    pub fn filter(&self, f: impl Fn(&SsRow) -> bool) -> SsTable {
        SsTable {
            rows: self.rows.iter().filter(|r| f(r)).cloned().collect(),
        }
    }

    pub fn merged(&self, other: &SsTable) -> SsTable {
        let mut rows = self.rows.clone();
        rows.extend(other.rows.iter().cloned());
        rows.sort();
        SsTable { rows }
    }

    pub fn states(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            *m.entry(r.state.clone()).or_insert(0) += 1;
        }
        m
    }

    pub fn count(&self, state: &str) -> u64 {
        self.rows.iter().filter(|r| r.state == state).count() as u64
    }

    /// Sockets per (state, local endpoint).
    pub fn by_local(&self) -> BTreeMap<(String, SocketAddr), u64> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            *m.entry((r.state.clone(), r.local)).or_insert(0) += 1;
        }
        m
    }

    /// Sockets per (state, remote endpoint); rows with a wildcard peer are left out.
    pub fn by_server(&self) -> BTreeMap<(String, SocketAddr), u64> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            if let Some(rem) = r.remote {
                *m.entry((r.state.clone(), rem)).or_insert(0) += 1;
            }
        }
        m
    }

    /// SYN-RECV sockets per listener (local endpoint), attributed as the kernel does:
    /// to the listener on the request's own address, else to the wildcard listener of
    /// its family on that port (a v4 request on a dual-stack listener is v4-mapped
    /// IPv6, so it is the IPv6 wildcard's).
    pub fn syn_recv_per_listener(&self) -> BTreeMap<SocketAddr, u64> {
        let listeners: Vec<SocketAddr> = self
            .rows
            .iter()
            .filter(|r| r.state == "LISTEN")
            .map(|r| r.local)
            .collect();
        let mut m: BTreeMap<SocketAddr, u64> = listeners.iter().map(|l| (*l, 0)).collect();
        for r in self.rows.iter().filter(|r| r.state == "SYN-RECV") {
            let same_port = || listeners.iter().filter(|l| l.port() == r.local.port());
            let owner = same_port().find(|l| **l == r.local).or_else(|| {
                same_port().find(|l| l.ip().is_unspecified() && l.is_ipv4() == r.local.is_ipv4())
            });
            let owner = owner.unwrap_or_else(|| panic!("no listener for SYN-RECV {r:?}"));
            *m.get_mut(owner).unwrap() += 1;
        }
        m
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for r in &self.rows {
            let rem = r
                .remote
                .map(|a| a.to_string())
                .unwrap_or_else(|| "*".into());
            let _ = writeln!(
                s,
                "{:<15} {:>4} {:>4} {:<28} {}",
                r.state, r.recv_q, r.send_q, r.local, rem
            );
        }
        s
    }
}

/// A socket from a raw sock_diag dump (support/sockdiag.py).
#[derive(Clone, Debug)]
pub struct DiagSock {
    pub state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub inode: u64,
    /// 3 for TIME-WAIT and FIN-WAIT-2 minisockets.
    pub timer: u8,
}

impl DiagSock {
    /// A full socket the application closed, still held by TCP: an orphan in the
    /// kernel's count (inode 0; minisockets, which also read 0, carry timer 3).
    pub fn is_orphan(&self) -> bool {
        matches!(self.state, 4 | 5 | 9 | 11) && self.inode == 0 && self.timer != 3
    }
}

// ---------------------------------------------------------------------------------
// Observing sockets while sockmedic runs
// ---------------------------------------------------------------------------------

/// Takes `ss` just before and just after `f` (a sockmedic run) and returns both only
/// when they are equal, so a timer that fires meanwhile cannot make a comparison
/// flaky; tries twice.
pub fn stable<T>(observe: impl Fn() -> SsTable, mut f: impl FnMut() -> T) -> (SsTable, T) {
    let mut last = String::new();
    for attempt in 1..=2 {
        let before = observe();
        let t = f();
        let after = observe();
        if before.key() == after.key() {
            return (after, t);
        }
        last = format!(
            "attempt {attempt}: before\n{}after\n{}",
            before.text(),
            after.text()
        );
        eprintln!("sockets changed while sockmedic ran; {last}");
    }
    panic!("the sockets kept changing while sockmedic ran:\n{last}");
}

// ---------------------------------------------------------------------------------
// sockmedic
// ---------------------------------------------------------------------------------

pub const SOCKMEDIC: &str = env!("CARGO_BIN_EXE_sockmedic");

/// The result of one sockmedic run.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub output: Output,
    pub json: Option<Value>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn describe(&self) -> String {
        format!(
            "sockmedic {}\n{}",
            self.args.join(" "),
            output_text(&self.output)
        )
    }
    /// Panics unless the run did not panic (exit 101 or a panic message).
    pub fn assert_no_panic(&self) {
        assert_ne!(
            self.output.status.code(),
            Some(101),
            "sockmedic panicked\n{}",
            self.describe()
        );
        assert!(
            self.output.status.code().is_some(),
            "sockmedic was killed by a signal\n{}",
            self.describe()
        );
        assert!(
            !self.stderr().contains("panicked"),
            "sockmedic panicked\n{}",
            self.describe()
        );
    }
    /// The report, after checking the run succeeded and printed one.
    pub fn report(&self) -> &Value {
        self.assert_no_panic();
        assert!(
            self.output.status.success(),
            "sockmedic failed\n{}",
            self.describe()
        );
        let j = self
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("sockmedic printed no JSON\n{}", self.describe()));
        assert_eq!(j["schema"], SCHEMA, "schema\n{}", self.describe());
        j
    }
}

fn run_command(mut cmd: Command, args: &[&str]) -> Run {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run sockmedic: {e}"));
    let json = serde_json::from_slice(&output.stdout).ok();
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        output,
        json,
    }
}

/// Runs sockmedic from the host namespace.
pub fn sockmedic(args: &[&str]) -> Run {
    let mut cmd = Command::new(SOCKMEDIC);
    cmd.args(args);
    run_command(cmd, args)
}

/// Runs sockmedic inside a namespace.
pub fn sockmedic_in(ns: &TestNetns, args: &[&str]) -> Run {
    let mut full = vec![SOCKMEDIC];
    full.extend_from_slice(args);
    run_command(ns.cmd(&full), args)
}

/// The report's entry for the namespace with this name, or a panic that shows what
/// the report has instead.
pub fn netns_named<'a>(report: &'a Value, name: &str) -> &'a Value {
    let all = report["netns"]
        .as_array()
        .expect("report.netns is an array");
    let found: Vec<&Value> = all
        .iter()
        .filter(|n| {
            n["names"]
                .as_array()
                .map(|a| a.iter().any(|x| x == name))
                .unwrap_or(false)
        })
        .collect();
    let summary: Vec<String> = all
        .iter()
        .map(|n| format!("{} {}", n["id"], n["names"]))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "namespace {name:?} in the report exactly once; the report has: {summary:#?}"
    );
    found[0]
}

/// The only namespace in a report run with `--netns SEL`.
pub fn only_netns(report: &Value) -> &Value {
    let all = report["netns"]
        .as_array()
        .expect("report.netns is an array");
    let summary: Vec<String> = all
        .iter()
        .map(|n| format!("{} {}", n["id"], n["names"]))
        .collect();
    assert_eq!(
        all.len(),
        1,
        "--netns selects one namespace; the report has: {summary:#?}"
    );
    &all[0]
}

/// `states` of a report namespace.
pub fn states_of(ns: &Value) -> BTreeMap<String, u64> {
    ns["states"]
        .as_object()
        .unwrap_or_else(|| panic!("netns.states is not an object: {}", ns["states"]))
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_u64().unwrap_or_else(|| panic!("states.{k} = {v}")),
            )
        })
        .collect()
}

/// A row of `top_local` / `top_remote`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopRow {
    pub state: String,
    pub endpoint: SocketAddr,
    pub count: u64,
    pub error: u64,
}

pub fn top_rows(ns: &Value, table: &str) -> Vec<TopRow> {
    ns[table]
        .as_array()
        .unwrap_or_else(|| panic!("netns.{table} is not an array: {}", ns[table]))
        .iter()
        .map(|r| TopRow {
            state: r["state"]
                .as_str()
                .unwrap_or_else(|| panic!("{table} row without state: {r}"))
                .to_string(),
            endpoint: parse_endpoint(
                r["endpoint"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{table} row: {r}")),
            ),
            count: r["count"]
                .as_u64()
                .unwrap_or_else(|| panic!("{table} row: {r}")),
            error: r["error"]
                .as_u64()
                .unwrap_or_else(|| panic!("{table} row: {r}")),
        })
        .collect()
}

/// Differences between sockmedic's state counts and ss's. `required` states must be
/// present in sockmedic's map (absent means "not looked at"); others may be absent
/// only if ss has none of them. States in `skip` are not compared.
pub fn state_diffs(
    sm: &BTreeMap<String, u64>,
    ss: &BTreeMap<String, u64>,
    required: &[&str],
    skip: &[&str],
) -> Vec<String> {
    let mut errs = Vec::new();
    let mut names: BTreeSet<&str> = sm.keys().map(String::as_str).collect();
    names.extend(ss.keys().map(String::as_str));
    names.extend(required.iter().copied());
    for s in names {
        if skip.contains(&s) {
            continue;
        }
        let want = ss.get(s).copied().unwrap_or(0);
        match sm.get(s) {
            None if required.contains(&s) || want > 0 => {
                errs.push(format!("{s}: absent in sockmedic, ss has {want}"))
            }
            None => {}
            Some(&got) if got != want => errs.push(format!("{s}: sockmedic {got}, ss {want}")),
            Some(_) => {}
        }
    }
    errs
}

/// Differences between a top table and ss's aggregation. Every sockmedic row must be
/// exact (`error` 0) and equal ss's count; every ss entry of a state in `required`
/// must be in the table.
pub fn top_diffs(
    rows: &[TopRow],
    ss: &BTreeMap<(String, SocketAddr), u64>,
    required: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for r in rows {
        let key = (r.state.clone(), r.endpoint);
        if !seen.insert(key.clone()) {
            errs.push(format!("duplicate row {} {}", r.state, r.endpoint));
        }
        if r.error != 0 {
            errs.push(format!(
                "{} {}: error {} (not exact)",
                r.state, r.endpoint, r.error
            ));
        }
        let want = ss.get(&key).copied().unwrap_or(0);
        if r.count != want {
            errs.push(format!(
                "{} {}: sockmedic {}, ss {}",
                r.state, r.endpoint, r.count, want
            ));
        }
    }
    for ((state, ep), n) in ss {
        if required(state) && !seen.contains(&(state.clone(), *ep)) {
            errs.push(format!("{state} {ep}: ss has {n}, missing in sockmedic"));
        }
    }
    errs
}

/// Differences between a top table cut at `n` rows per state and ss's aggregation,
/// allowing for bounded counting: every row's true count must lie in
/// `[count - error, count]`, each state has `min(n, distinct)` rows, and an endpoint
/// busier than the n-th busiest of its state must be listed.
pub fn top_n_diffs(
    rows: &[TopRow],
    ss: &BTreeMap<(String, SocketAddr), u64>,
    n: usize,
) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for r in rows {
        if !seen.insert((r.state.clone(), r.endpoint)) {
            errs.push(format!("duplicate row {} {}", r.state, r.endpoint));
        }
        let truth = ss.get(&(r.state.clone(), r.endpoint)).copied().unwrap_or(0);
        if truth > r.count || truth < r.count.saturating_sub(r.error) {
            errs.push(format!(
                "{} {}: sockmedic {} (error {}), ss {}",
                r.state, r.endpoint, r.count, r.error, truth
            ));
        }
    }
    let mut per_state: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for ((state, _), c) in ss {
        per_state.entry(state.as_str()).or_default().push(*c);
    }
    for (state, mut counts) in per_state {
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let listed = rows.iter().filter(|r| r.state == state).count();
        if listed != n.min(counts.len()) {
            errs.push(format!(
                "{state}: {listed} rows, want {} of {}",
                n.min(counts.len()),
                counts.len()
            ));
        }
        let kth = counts.get(n - 1).copied().unwrap_or(0);
        for ((s, ep), c) in ss {
            if s == state && *c > kth && !seen.contains(&(s.clone(), *ep)) {
                errs.push(format!(
                    "{state} {ep}: ss has {c}, more than the {n}th busiest ({kth}), not listed"
                ));
            }
        }
    }
    errs
}

/// Panics with the evidence when `errs` is not empty.
pub fn assert_no_diffs(what: &str, errs: &[String], ss: &SsTable, ns: &Value) {
    assert!(
        errs.is_empty(),
        "{what}: sockmedic differs from ss\n  {}\n--- ss\n{}--- sockmedic netns\n{}",
        errs.join("\n  "),
        ss.text(),
        serde_json::to_string_pretty(ns).unwrap()
    );
}

/// An IPv4 endpoint on loopback (for tests that name one).
pub fn lo4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

pub fn lo6(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)
}

// ---------------------------------------------------------------------------------
// Who holds it: holder processes, ss -p, what /proc says, cgroups, kubelet's logs
// ---------------------------------------------------------------------------------

/// What a support/holder.py process holds, by its own bookkeeping (its JSON line).
#[derive(Clone, Debug)]
pub struct HolderReport {
    pub pid: u32,
    pub uid: u32,
    pub netns_inode: u64,
    /// Per state (report spelling), UNHASHED and BOUND-INACTIVE included.
    pub states: BTreeMap<String, u64>,
    /// BOUND-INACTIVE + UNHASHED.
    pub unhashed: u64,
    pub socket_fds: u64,
    pub by_proto: BTreeMap<String, u64>,
    pub fds: u64,
    pub listeners: Vec<SocketAddr>,
    pub bound_ports: Vec<u16>,
    /// Connections reset by the peer and still held (ECONNRESET pending).
    pub resets: u64,
    /// The local ports those connections had (auto-bound, released by the reset).
    pub reset_ports: Vec<u16>,
    /// RLIMIT_NOFILE (soft, hard).
    pub nofile: (u64, u64),
    pub json: Value,
}

impl HolderReport {
    pub fn from_json(v: Value) -> HolderReport {
        let counts = |v: &Value| -> BTreeMap<String, u64> {
            v.as_object()
                .unwrap_or_else(|| panic!("holder: not an object: {v}"))
                .iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
                .collect()
        };
        let nofile = v["nofile"].as_array().expect("holder: nofile");
        HolderReport {
            pid: v["pid"].as_u64().expect("holder: pid") as u32,
            uid: v["uid"].as_u64().expect("holder: uid") as u32,
            netns_inode: v["netns_inode"].as_u64().expect("holder: netns_inode"),
            states: counts(&v["states"]),
            unhashed: v["unhashed"].as_u64().unwrap(),
            socket_fds: v["socket_fds"].as_u64().unwrap(),
            by_proto: counts(&v["by_proto"]),
            fds: v["fds"].as_u64().unwrap(),
            listeners: v["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| parse_endpoint(l.as_str().unwrap()))
                .collect(),
            bound_ports: v["bound_ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as u16)
                .collect(),
            resets: v["resets"].as_u64().unwrap(),
            reset_ports: v["reset_ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as u16)
                .collect(),
            nofile: (nofile[0].as_u64().unwrap(), nofile[1].as_u64().unwrap()),
            json: v,
        }
    }

    /// A state count, 0 when absent.
    pub fn state(&self, s: &str) -> u64 {
        self.states.get(s).copied().unwrap_or(0)
    }
}

/// A running support/holder.py (killed when its namespace is dropped).
pub struct Holder {
    pub pid: u32,
    /// What it reported when it was ready.
    pub ready: HolderReport,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Holder {
    /// Sends one command line and returns the JSON line it answers.
    pub fn ask(&mut self, cmd: &str) -> Value {
        writeln!(self.stdin, "{cmd}").expect("write to the holder");
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read the holder's answer");
        assert!(
            !line.is_empty(),
            "holder {} exited (see its stderr above)",
            self.pid
        );
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("holder: {e}: {line}"))
    }

    /// Its bookkeeping now (a server's kept connections grow as clients come).
    pub fn report(&mut self) -> HolderReport {
        HolderReport::from_json(self.ask("report"))
    }
}

impl TestNetns {
    /// Starts support/holder.py inside the namespace with `args`.
    pub fn start_holder(&mut self, args: &[&str]) -> Holder {
        self.start_holder_full(&[], args, None)
    }

    /// Starts a holder that makes nothing until `prepare(pid)` has run (e.g. moved it
    /// into a cgroup: a socket belongs to the cgroup of the task that created it).
    pub fn start_holder_prepared(&mut self, args: &[&str], prepare: &mut dyn FnMut(u32)) -> Holder {
        self.start_holder_full(&[], args, Some(prepare))
    }

    /// The general form: `wrap` goes between the namespace entry and python3 (e.g.
    /// `setpriv ... --`); it must exec, so the pid is the holder's.
    pub fn start_holder_full(
        &mut self,
        wrap: &[&str],
        args: &[&str],
        prepare: Option<&mut dyn FnMut(u32)>,
    ) -> Holder {
        let script = support_dir().join("holder.py");
        let mut full: Vec<&str> = wrap.to_vec();
        // Behind a wrapper (setpriv to another user), an interpreter that user can
        // run: a python3 in root's home (pyenv) is not.
        let python = if wrap.is_empty() {
            "python3"
        } else {
            ["/usr/bin/python3", "/usr/local/bin/python3"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("python3")
        };
        full.extend([python, script.to_str().unwrap()]);
        if prepare.is_some() {
            full.push("--wait-go");
        }
        full.extend_from_slice(args);
        let mut cmd = self.cmd(&full);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let child = self.spawn(&mut cmd);
        let pid = child.id();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        if let Some(prepare) = prepare {
            prepare(pid);
            writeln!(stdin, "go").expect("tell the holder to go");
            stdin.flush().unwrap();
        }
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the holder's line");
        assert!(
            !line.is_empty(),
            "holder.py {args:?} exited before it was ready (see its stderr above)"
        );
        let v: Value =
            serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("holder: {e}: {line}"));
        let ready = HolderReport::from_json(v);
        assert_eq!(ready.pid, pid, "the holder is the process spawned (exec'd)");
        Holder {
            pid,
            ready,
            stdin,
            stdout,
        }
    }

    /// `ss -Htanp` inside the namespace: every socket with its owners.
    pub fn ss_tanp(&self) -> SsProcs {
        SsProcs::parse(&self.exec_ok(&["ss", "-Htanp"]))
    }
}

/// `ss -tanp` parsed: each row with the (pid, fd) pairs of `users:((..))`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SsProcs {
    pub rows: Vec<(SsRow, Vec<(u32, u32)>)>,
}

impl SsProcs {
    pub fn parse(text: &str) -> SsProcs {
        let mut rows = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let table = SsTable::parse(line);
            let row = table.rows.into_iter().next().expect("one ss row");
            let mut users = Vec::new();
            if let Some(u) = line.find("users:(") {
                let mut rest = &line[u..];
                while let Some(p) = rest.find("pid=") {
                    rest = &rest[p + 4..];
                    let pid: u32 = rest
                        .split(|c: char| !c.is_ascii_digit())
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap_or_else(|_| panic!("pid in {line:?}"));
                    let f = rest.find("fd=").unwrap_or_else(|| panic!("fd in {line:?}"));
                    rest = &rest[f + 3..];
                    let fd: u32 = rest
                        .split(|c: char| !c.is_ascii_digit())
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap_or_else(|_| panic!("fd in {line:?}"));
                    users.push((pid, fd));
                }
            }
            rows.push((row, users));
        }
        rows.sort();
        SsProcs { rows }
    }

    /// The sockets without owners, for [`stable`]-style comparisons.
    pub fn table(&self) -> SsTable {
        let mut rows: Vec<SsRow> = self.rows.iter().map(|(r, _)| r.clone()).collect();
        rows.sort();
        SsTable { rows }
    }

    /// Sockets held by `pid`, one per fd, by state.
    pub fn states_of(&self, pid: u32) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (r, users) in &self.rows {
            let n = users.iter().filter(|(p, _)| *p == pid).count() as u64;
            if n > 0 {
                *m.entry(r.state.clone()).or_insert(0) += n;
            }
        }
        m
    }

    /// The rows of sockets `pid` holds.
    pub fn rows_of(&self, pid: u32) -> Vec<SsRow> {
        self.rows
            .iter()
            .filter(|(_, u)| u.iter().any(|(p, _)| *p == pid))
            .map(|(r, _)| r.clone())
            .collect()
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for (r, users) in &self.rows {
            let rem = r
                .remote
                .map(|a| a.to_string())
                .unwrap_or_else(|| "*".into());
            let _ = writeln!(s, "{:<15} {:<28} {:<28} {users:?}", r.state, r.local, rem);
        }
        s
    }
}

/// Like [`stable`], for any observation that can be compared.
pub fn stable_by<O: PartialEq + std::fmt::Debug, T>(
    observe: impl Fn() -> O,
    mut f: impl FnMut() -> T,
) -> (O, T) {
    let mut last = String::new();
    for attempt in 1..=3 {
        let before = observe();
        let t = f();
        let after = observe();
        if before == after {
            return (after, t);
        }
        last = format!("attempt {attempt}: before\n{before:#?}\nafter\n{after:#?}");
        eprintln!("the observation changed while sockmedic ran; {last}");
    }
    panic!("the observation kept changing while sockmedic ran:\n{last}");
}

/// What `/proc/PID/fd` shows of one process, read from the outside
/// (support/fdtruth.py: readlink + the `system.sockprotoname` xattr).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdTruth {
    pub fds: u64,
    /// (fd, socket inode, protocol as the kernel names it).
    pub sockets: Vec<(u32, u64, String)>,
}

impl FdTruth {
    pub fn socket_fds(&self) -> u64 {
        self.sockets.len() as u64
    }
    /// Socket fds per protocol, spelled as the report spells them: the kernel's
    /// name, with its two names for one kind merged (`UNIX-STREAM` is `UNIX`,
    /// `MPTCPv6` is `MPTCP`, `UDPLITEv6` is `UDP-Lite`).
    pub fn by_proto(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (_, _, p) in &self.sockets {
            let name = match p.as_str() {
                "UNIX-STREAM" => "UNIX",
                "MPTCPv6" => "MPTCP",
                "UDPLITEv6" => "UDP-Lite",
                other => other,
            };
            *m.entry(name.to_string()).or_insert(0) += 1;
        }
        m
    }
    pub fn has_inode(&self, inode: u64) -> bool {
        self.sockets.iter().any(|(_, i, _)| *i == inode)
    }
}

/// [`FdTruth`] of each of `pids` (a process that is gone is left out).
pub fn fd_truth(pids: &[u32]) -> BTreeMap<u32, FdTruth> {
    let script = support_dir().join("fdtruth.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args(pids.iter().map(|p| p.to_string()));
    let out = run_ok(&mut cmd);
    let v: Value = serde_json::from_str(out.trim()).expect("fdtruth.py JSON");
    v.as_object()
        .unwrap()
        .iter()
        .map(|(pid, t)| {
            (
                pid.parse().unwrap(),
                FdTruth {
                    fds: t["fds"].as_u64().unwrap(),
                    sockets: t["sockets"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| {
                            (
                                s["fd"].as_u64().unwrap() as u32,
                                s["inode"].as_u64().unwrap(),
                                s["proto"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect(),
                },
            )
        })
        .collect()
}

/// `ls /proc/PID/fd | wc -l`.
pub fn proc_fd_count(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count() as u64
}

/// "Max open files" of `/proc/PID/limits`: (soft, hard); "unlimited" = u64::MAX.
pub fn proc_nofile(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/limits: {e}"));
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/PID/limits");
    let f: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let num = |s: &str| {
        if s == "unlimited" {
            u64::MAX
        } else {
            s.parse().unwrap()
        }
    };
    (num(f[0]), num(f[1]))
}

/// The report's entry for `pid`, or a panic listing the pids it has.
pub fn process_entry(report: &Value, pid: u32) -> &Value {
    let procs = report["processes"]
        .as_array()
        .expect("report.processes is an array");
    procs
        .iter()
        .find(|p| p["pid"].as_u64() == Some(pid as u64))
        .unwrap_or_else(|| {
            let pids: Vec<String> = procs
                .iter()
                .map(|p| format!("{} ({})", p["pid"], p["comm"]))
                .collect();
            panic!("pid {pid} is not in processes; they are: {pids:?}")
        })
}

/// The pids listed in `processes`, in report order.
pub fn process_pids(report: &Value) -> Vec<u32> {
    report["processes"]
        .as_array()
        .expect("report.processes is an array")
        .iter()
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect()
}

/// A name no other test (or run) uses: `prefix-PID-N-NANOS`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Kubernetes pod UID (a random UUID).
pub fn random_pod_uid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .unwrap()
        .trim()
        .to_string()
}

/// A full container id: 64 lowercase hex digits.
pub fn random_container_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where this host mounts the whole cgroup v2 hierarchy and v1's `name=systemd` one,
/// from `/proc/self/mountinfo` (a hybrid host has both: `/sys/fs/cgroup/unified`
/// and `/sys/fs/cgroup/systemd`).
#[derive(Clone, Debug, Default)]
pub struct CgroupMounts {
    pub v2: Option<PathBuf>,
    pub v1_systemd: Option<PathBuf>,
}

impl CgroupMounts {
    pub fn find() -> CgroupMounts {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut m = CgroupMounts::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(sep) = f.iter().position(|x| *x == "-") else {
                continue;
            };
            // Only mounts of a whole hierarchy (root "/").
            if f.get(3) != Some(&"/") || sep + 3 >= f.len() {
                continue;
            }
            let point = PathBuf::from(f[4]);
            match f[sep + 1] {
                "cgroup2" if m.v2.is_none() => m.v2 = Some(point),
                "cgroup"
                    if m.v1_systemd.is_none()
                        && f[sep + 3].split(',').any(|o| o == "name=systemd") =>
                {
                    m.v1_systemd = Some(point)
                }
                _ => {}
            }
        }
        m
    }
}

/// Cgroup directories made by a test. Dropping it (even on a panic) kills the
/// processes still inside them (they are the test's: the directories are unique),
/// waits until each is empty, and removes the directories leaf first, up to the
/// test's top directory.
#[derive(Default)]
pub struct CgroupTree {
    dirs: Vec<PathBuf>,
}

impl CgroupTree {
    pub fn new() -> CgroupTree {
        require_root();
        CgroupTree::default()
    }

    /// Creates `mount/rel` one level at a time, remembering each new directory.
    pub fn mkdirs(&mut self, mount: &std::path::Path, rel: &str) -> PathBuf {
        let mut dir = mount.to_path_buf();
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            dir.push(comp);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                self.dirs.push(dir.clone());
            }
        }
        dir
    }

    /// Moves `pid` into the cgroup `dir` (writes cgroup.procs).
    pub fn move_into(&self, dir: &std::path::Path, pid: u32) {
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", dir.display()));
    }

    /// No process is left in the cgroup `dir`.
    pub fn is_empty(dir: &std::path::Path) -> bool {
        CgroupTree::procs_in(dir).is_empty()
    }

    fn procs_in(dir: &std::path::Path) -> Vec<u32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                for pid in CgroupTree::procs_in(dir) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() > deadline => {
                        eprintln!("cannot remove cgroup {}: {e}", dir.display());
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

/// A kubelet-like log tree in a temporary directory, removed on drop:
/// `pods/<namespace>_<name>_<uid>/<container>/0.log` (kubelet's /var/log/pods) and
/// `containers/<name>_<namespace>_<container>-<id>.log` → that file (its
/// /var/log/containers links).
pub struct KubeLogs {
    pub root: PathBuf,
}

impl KubeLogs {
    pub fn new(test: &str) -> KubeLogs {
        let root = std::env::temp_dir().join(unique_name(&format!("sm-kubelogs-{test}")));
        std::fs::create_dir_all(root.join("pods")).unwrap();
        std::fs::create_dir_all(root.join("containers")).unwrap();
        KubeLogs { root }
    }

    pub fn pods_dir(&self) -> String {
        self.root.join("pods").display().to_string()
    }

    pub fn containers_dir(&self) -> String {
        self.root.join("containers").display().to_string()
    }

    /// A pod's log directory and, for each (container name, id), its log and link.
    pub fn add_pod(&self, namespace: &str, name: &str, uid: &str, containers: &[(&str, &str)]) {
        let pod_dir = self
            .root
            .join("pods")
            .join(format!("{namespace}_{name}_{uid}"));
        std::fs::create_dir_all(&pod_dir).unwrap();
        for (cname, cid) in containers {
            let dir = pod_dir.join(cname);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("0.log"), "").unwrap();
            let link = self
                .root
                .join("containers")
                .join(format!("{name}_{namespace}_{cname}-{cid}.log"));
            std::os::unix::fs::symlink(dir.join("0.log"), link).unwrap();
        }
    }
}

impl Drop for KubeLogs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ---------------------------------------------------------------------------------
// sockmedic check
// ---------------------------------------------------------------------------------

/// The exit code a report's findings call for: 0 none above info, 1 warning, 2
/// critical (the monitoring-plugin convention).
pub fn exit_for_report(report: &Value) -> i32 {
    report["findings"]
        .as_array()
        .expect("report.findings is an array")
        .iter()
        .map(|f| match f["severity"].as_str() {
            Some("critical") => 2,
            Some("warning") => 1,
            Some("info") => 0,
            other => panic!("unknown severity {other:?} in {f}"),
        })
        .max()
        .unwrap_or(0)
}

/// The report of a `check --json` run, after checking that it ran (exit 0-2),
/// printed a report, and exited with the code of its worst finding.
pub fn check_report(run: &Run) -> Value {
    run.assert_no_panic();
    let code = run.output.status.code();
    assert!(
        matches!(code, Some(0..=2)),
        "check could not run (exit {code:?})\n{}",
        run.describe()
    );
    let report = run
        .json
        .clone()
        .unwrap_or_else(|| panic!("check printed no JSON\n{}", run.describe()));
    assert_eq!(report["schema"], SCHEMA, "schema\n{}", run.describe());
    assert_eq!(
        code,
        Some(exit_for_report(&report)),
        "exit code = worst severity (0 ok/info, 1 warning, 2 critical); findings:\n{}",
        findings_summary(&report)
    );
    report
}

/// `sockmedic check --json ARGS` from the host namespace: the run and its report
/// (see [`check_report`]).
pub fn check_json(args: &[&str]) -> (Run, Value) {
    let mut full = vec!["check", "--json"];
    full.extend_from_slice(args);
    let run = sockmedic(&full);
    let report = check_report(&run);
    (run, report)
}

/// One line per finding, for assertion messages.
pub fn findings_summary(report: &Value) -> String {
    let mut s = String::new();
    for f in report["findings"].as_array().into_iter().flatten() {
        let sub = &f["subject"];
        s.push_str(&format!(
            "  {} {} netns={} state={} count={} limit={}: {}\n",
            f["code"],
            f["severity"],
            sub["netns"],
            sub["state"],
            sub["count"],
            sub["limit"],
            f["title"]
        ));
    }
    if s.is_empty() {
        s.push_str("  (no findings)\n");
    }
    s
}

// ---------------------------------------------------------------------------------
// Shared by the incident reproductions (incidents.rs, bundle.rs, pcap_live.rs)
// ---------------------------------------------------------------------------------

/// Polls `f` every 50 ms until it gives a value; panics after `secs` with `what` and
/// the last observation.
pub fn wait_for<T, O: std::fmt::Debug>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> (Option<T>, O),
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (v, seen) = f();
        if let Some(v) = v {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a scenario of support/incidents.py; checks it settled.
pub fn incident(ns: &mut TestNetns, args: &[&str]) -> (u32, Value) {
    let (pid, v) = ns.start_support("incidents.py", args);
    assert_eq!(v["ready"], true, "incidents.py {args:?}: {v}");
    assert_eq!(v["pid"].as_u64(), Some(pid as u64), "incidents.py pid");
    assert_eq!(
        v["netns_inode"].as_u64(),
        Some(ns.inode()),
        "incidents.py ran in the wrong namespace"
    );
    if !v["settled"].is_null() {
        assert_eq!(
            v["settled"], true,
            "incidents.py {args:?} did not settle: {v}"
        );
    }
    (pid, v)
}

/// incidents.py's `teardown` scenario: `count` connections to a listener on `port`
/// whose closes stall in `state` (`last-ack`, `fin-wait-1`), with `extra` options
/// (`--drop-at`, `--send`...).
pub fn teardown_incident(
    ns: &mut TestNetns,
    state: &str,
    port: impl std::fmt::Display,
    count: impl std::fmt::Display,
    extra: &[&str],
) -> (u32, Value) {
    let (port, count) = (port.to_string(), count.to_string());
    let mut args = vec![
        "teardown", "--state", state, "--port", &port, "--count", &count,
    ];
    args.extend_from_slice(extra);
    incident(ns, &args)
}

/// Declared right after the namespace (so dropped just before it, even on a panic):
/// removes every nftables table of the namespace (the scenario's and the test's) and
/// destroys its TCP connections (`ss -K`), so that no orphan keeps retransmitting into
/// a drop, holding the namespace alive, after the test.
pub struct Unblock {
    netns: String,
}

impl Unblock {
    pub fn new(ns: &TestNetns) -> Unblock {
        Unblock {
            netns: ns.name.clone(),
        }
    }
}

impl Drop for Unblock {
    fn drop(&mut self) {
        for args in [&["nft", "flush", "ruleset"][..], &["ss", "-K", "-tn"][..]] {
            let _ = Command::new("ip")
                .args(["netns", "exec", &self.netns])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A directory of the test's own under the system's temporary directory, removed on
/// drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique_name(&format!("sm-{test}")));
        std::fs::create_dir_all(&p).expect("create a temp dir");
        TempDir(p)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `setpriv` dropping to nobody:nogroup with no supplementary groups and no
/// capabilities, before the command it runs.
pub const AS_NOBODY: [&str; 6] = [
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=-all",
    "--",
];

/// A copy of the binary that `nobody` can execute wherever the build directory is,
/// in a directory of its own, removed on drop.
pub struct NobodyBinary {
    dir: PathBuf,
}

impl NobodyBinary {
    pub fn new(test: &str) -> NobodyBinary {
        use std::os::unix::fs::PermissionsExt;
        require_root();
        let dir = std::env::temp_dir().join(unique_name(&format!("sm-nobody-{test}")));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("sockmedic");
        std::fs::copy(SOCKMEDIC, &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        NobodyBinary { dir }
    }

    pub fn bin(&self) -> String {
        self.dir.join("sockmedic").display().to_string()
    }

    /// The copy run as nobody ([`AS_NOBODY`]) with `args`, after `prefix` (`ip netns
    /// exec NAME`...), from `/`, with no stdin.
    pub fn command(&self, prefix: &[&str], args: &[&str]) -> Command {
        let mut full: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        full.extend(AS_NOBODY.iter().map(|s| s.to_string()));
        full.push(self.bin());
        full.extend(args.iter().map(|s| s.to_string()));
        let mut c = Command::new(&full[0]);
        c.args(&full[1..]).current_dir("/").stdin(Stdio::null());
        c
    }
}

impl Drop for NobodyBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
