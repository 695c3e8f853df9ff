//! `sockmedic check` against the host-wide limits: `net.ipv4.tcp_max_orphans` and
//! `net.ipv4.tcp_mem` exist only in the initial network namespace and bound every
//! namespace at once (kernel-notes §1, §5). The load is made in a test namespace
//! (support/hostwide.py); the limit is lowered on the HOST, only for as long as one
//! sockmedic run takes, by a [`HostSysctl`] guard that restores it on drop (also on a
//! panic) and leaves a watchdog process behind that restores it if this process dies
//! without dropping it (SIGKILL, abort).
//!
//! The tests that touch host-wide state take [`host_lock`]: tests of one binary run
//! in parallel threads, and a lowered tcp_max_orphans turns any close on the host into
//! a reset (the healthy namespace's TIME-WAIT would vanish).
//!
//! Other test binaries may run on this host meanwhile, so host figures (sockstat
//! `orphan`, `mem`) are read just before and just after sockmedic runs and sockmedic's
//! count must lie within 5% of that band; findings about a namespace are looked up by
//! this test's namespace name.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Orphans made per test ("a few hundred").
const ORPHANS: u64 = 300;
/// Connections whose receiver never reads, each holding about 2 × 4 MiB.
const FILLERS: u64 = 20;
/// The kernel's SOCK_MIN_SNDBUF on 64-bit (2 × 2304-byte skb truesize, about 4.6 KB):
/// `tcp_out_of_memory()` only looks at an orphan with more than this queued.
const SOCK_MIN_SNDBUF: u64 = 4608;

/// Finding codes whose subject is one namespace (or a process, a listener, an
/// endpoint inside one): a healthy namespace must have none of them.
const PER_NETNS_CODES: [&str; 10] = [
    "teardown-stall",
    "timewait-pressure",
    "close-wait-leak",
    "socket-leak",
    "port-exhaustion",
    "fd-exhaustion",
    "accept-queue-overflow",
    "syn-backlog",
    "conntrack-full",
    "risky-sysctl",
];

// ---------------------------------------------------------------------------------
// Serialising the host-wide tests
// ---------------------------------------------------------------------------------

static HOST: Mutex<()> = Mutex::new(());

/// Held by every test that changes a host-wide sysctl or that a changed one would
/// disturb. A test that panicked while holding it poisons it; the next still runs.
fn host_lock() -> MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------
// Host sysctl guard
// ---------------------------------------------------------------------------------

/// Where the watchdog notes that it had to restore a value (the test process died).
const WATCHDOG_LOG: &str = "/tmp/sockmedic-hostwide-watchdog.log";

/// The watchdog: `sh -c WATCHDOG watchdog PATH NAME OLD LOG`. It ignores the signals a
/// terminal or a test runner sends (and runs in its own process group, so that a
/// group kill does not reach it), says `armed`, then blocks reading its stdin, whose
/// only writer is the test process (Rust opens its pipes close-on-exec, so no child
/// of the test inherits it). The guard writes `disarm` after restoring; any other
/// end of the read (EOF: the test process is gone, however it died) makes the
/// watchdog write OLD back, retrying for 10 s.
const WATCHDOG: &str = r#"
trap '' HUP INT QUIT TERM PIPE USR1 USR2
path=$1 name=$2 old=$3 log=$4
echo armed || exit 1
if IFS= read -r cmd && [ "$cmd" = disarm ]; then
    exit 0
fi
n=0
while :; do
    if printf '%s\n' "$old" > "$path" 2>/dev/null; then
        echo "$(date '+%F %T') sockmedic hostwide watchdog $$: test process $PPID ended without restoring $name; restored $old" >> "$log" 2>/dev/null
        exit 0
    fi
    n=$((n + 1))
    if [ "$n" -ge 100 ]; then
        echo "$(date '+%F %T') sockmedic hostwide watchdog $$: could not restore $name to $old" >> "$log" 2>/dev/null
        exit 1
    fi
    sleep 0.1
done
"#;

fn sysctl_path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

/// A sysctl's value with its fields separated by one space (`tcp_mem` reads with tabs).
fn read_host_sysctl(name: &str) -> String {
    let path = sysctl_path(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A host sysctl set to a new value until this guard is dropped (or
/// [`HostSysctl::restore`] is called). Restoring on drop runs during a panic's unwind;
/// the watchdog covers the process dying without unwinding.
pub struct HostSysctl {
    name: String,
    path: PathBuf,
    old: String,
    watchdog: Option<(Child, Option<ChildStdin>)>,
    /// True while the host holds the old value.
    restored: bool,
}

impl HostSysctl {
    pub fn set(name: &str, value: &str) -> HostSysctl {
        require_root();
        let path = sysctl_path(name);
        let old = read_host_sysctl(name);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sockmedic-hostwide-watchdog")
            .arg(&path)
            .arg(name)
            .arg(&old)
            .arg(WATCHDOG_LOG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the sysctl watchdog");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        // From here on Drop stops the watchdog, whatever happens.
        let mut guard = HostSysctl {
            name: name.to_string(),
            path,
            old,
            watchdog: Some((child, stdin)),
            restored: true,
        };
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(
            line.trim(),
            "armed",
            "the watchdog for {name} did not start"
        );
        guard.restored = false;
        let want = value.split_whitespace().collect::<Vec<_>>().join(" ");
        std::fs::write(&guard.path, format!("{want}\n"))
            .unwrap_or_else(|e| panic!("sysctl -w {name}={want}: {e}"));
        assert_eq!(read_host_sysctl(name), want, "{name} after setting it");
        eprintln!("host sysctl {name}: {} -> {want}", guard.old);
        guard
    }

    pub fn old(&self) -> &str {
        &self.old
    }

    /// The watchdog's pid (while it runs).
    pub fn watchdog_pid(&self) -> Option<u32> {
        self.watchdog.as_ref().map(|(c, _)| c.id())
    }

    /// Writes the old value back and stops the watchdog. Idempotent. If the write
    /// fails, the watchdog is told to try (its stdin is closed) and waited for.
    pub fn restore(&mut self) {
        if !self.restored {
            let ok = std::fs::write(&self.path, format!("{}\n", self.old)).is_ok()
                && read_host_sysctl(&self.name) == self.old;
            if ok {
                self.restored = true;
                eprintln!("host sysctl {}: restored {}", self.name, self.old);
            } else {
                eprintln!(
                    "host sysctl {}: could not restore {}; leaving it to the watchdog",
                    self.name, self.old
                );
            }
        }
        let Some((mut child, stdin)) = self.watchdog.take() else {
            return;
        };
        if let Some(mut stdin) = stdin {
            if self.restored {
                let _ = stdin.write_all(b"disarm\n");
                let _ = stdin.flush();
            }
            // Dropping it closes the pipe: EOF for a watchdog not disarmed.
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("the watchdog of {} did not end; killing it", self.name);
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if !self.restored && read_host_sysctl(&self.name) == self.old {
            self.restored = true;
        }
    }
}

impl Drop for HostSysctl {
    fn drop(&mut self) {
        self.restore();
        if !self.restored {
            eprintln!(
                "HOST SYSCTL {} NOT RESTORED: set it back by hand: sysctl -w {}='{}'",
                self.name, self.name, self.old
            );
        }
    }
}

/// Runs `f` with the host sysctl `name` set to `value`, restores it, checks it was
/// restored, and returns `f`'s result.
fn with_host_sysctl<T>(name: &str, value: &str, f: impl FnOnce() -> T) -> T {
    let mut guard = HostSysctl::set(name, value);
    let t = f();
    guard.restore();
    assert_eq!(read_host_sysctl(name), guard.old(), "{name} restored");
    t
}

// ---------------------------------------------------------------------------------
// The kernel log
// ---------------------------------------------------------------------------------

/// One /dev/kmsg record.
#[derive(Clone, Debug)]
struct KmsgRecord {
    seq: u64,
    uptime_s: f64,
    text: String,
}

/// O_NONBLOCK (asm-generic and x86: 0o4000): a read of /dev/kmsg past the last
/// record then fails with EAGAIN instead of waiting.
const O_NONBLOCK: i32 = 0o4000;
const EPIPE: i32 = 32;

/// Every record /dev/kmsg still holds (one record per read).
fn kmsg_records() -> Vec<KmsgRecord> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg");
    let mut buf = vec![0u8; 16384];
    let mut out = Vec::new();
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                // "PRI,SEQ,USEC,FLAGS[,...];TEXT\n" then " KEY=VALUE" lines.
                let Some((head, rest)) = rec.split_once(';') else {
                    continue;
                };
                let f: Vec<&str> = head.split(',').collect();
                let (Some(seq), Some(usec)) = (
                    f.get(1).and_then(|s| s.parse::<u64>().ok()),
                    f.get(2).and_then(|s| s.parse::<u64>().ok()),
                ) else {
                    continue;
                };
                out.push(KmsgRecord {
                    seq,
                    uptime_s: usec as f64 / 1e6,
                    text: rest.lines().next().unwrap_or("").to_string(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // The record was overwritten while reading: go on with the next.
            Err(e) if e.raw_os_error() == Some(EPIPE) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read /dev/kmsg: {e}"),
        }
    }
    out
}

/// The sequence number of the newest record: later records have greater ones.
fn kmsg_cursor() -> u64 {
    kmsg_records().last().map_or(0, |r| r.seq)
}

/// Waits up to `timeout` for a record after `cursor` whose text contains `needle`.
fn wait_for_kmsg(cursor: u64, needle: &str, timeout: Duration) -> Option<KmsgRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(r) = kmsg_records()
            .into_iter()
            .find(|r| r.seq > cursor && r.text.contains(needle))
        {
            return Some(r);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn uptime_s() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------
// Host figures
// ---------------------------------------------------------------------------------

/// The host-wide fields of `/proc/net/sockstat`.
#[derive(Clone, Copy, Debug)]
struct HostSockstat {
    orphan: u64,
    mem: u64,
}

fn host_sockstat() -> HostSockstat {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .expect("TCP: in /proc/net/sockstat");
    let f: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| -> u64 {
        let i = f
            .iter()
            .position(|x| *x == name)
            .unwrap_or_else(|| panic!("{name} in {line:?}"));
        f[i + 1].parse().unwrap()
    };
    HostSockstat {
        orphan: field("orphan"),
        mem: field("mem"),
    }
}

/// Whether `got` lies within 5% of the band a host figure moved in while sockmedic
/// ran (read before and after).
fn within_band(got: u64, before: u64, after: u64) -> bool {
    let lo = before.min(after) as f64 * 0.95;
    let hi = before.max(after) as f64 * 1.05;
    (lo..=hi).contains(&(got as f64))
}

// ---------------------------------------------------------------------------------
// The load (support/hostwide.py)
// ---------------------------------------------------------------------------------

/// A running support/hostwide.py inside a test namespace (killed with it).
struct Load {
    ready: Value,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Load {
    fn start(ns: &mut TestNetns, args: &[&str]) -> Load {
        let script = support_dir().join("hostwide.py");
        let inode = ns.inode().to_string();
        let mut full = vec![
            "python3",
            script.to_str().unwrap(),
            "--netns-inode",
            inode.as_str(),
        ];
        full.extend_from_slice(args);
        let mut cmd = ns.cmd(&full);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let child = ns.spawn(&mut cmd);
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read hostwide.py");
        assert!(
            !line.is_empty(),
            "hostwide.py {args:?} exited before it was ready (see its stderr above)"
        );
        let ready: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("hostwide.py: {e}: {line}"));
        Load {
            ready,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, cmd: &str) -> Value {
        writeln!(self.stdin, "{cmd}").expect("write to hostwide.py");
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read hostwide.py's answer");
        assert!(
            !line.is_empty(),
            "hostwide.py exited (see its stderr above)"
        );
        let v: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("hostwide.py: {e}: {line}"));
        assert!(v["error"].is_null(), "hostwide.py {cmd}: {}", v["error"]);
        v
    }

    /// Closes one socket with data queued (`close-spare`, `close-filler`) and
    /// checks it was ESTABLISHED with more than SOCK_MIN_SNDBUF queued.
    fn close_one(&mut self, what: &str) -> Value {
        let v = self.ask(what);
        assert_eq!(v["state"], 1, "{what}: the socket was ESTABLISHED: {v}");
        assert!(
            v["outq"].as_u64().unwrap() > SOCK_MIN_SNDBUF,
            "{what}: more than {SOCK_MIN_SNDBUF} bytes queued: {v}"
        );
        v
    }
}

// ---------------------------------------------------------------------------------
// sockmedic check
// ---------------------------------------------------------------------------------

/// `sockmedic check --json --once ARGS` (see `common::check_report`).
fn check(args: &[&str]) -> (Run, Value) {
    let mut full = vec!["--once"];
    full.extend_from_slice(args);
    check_json(&full)
}

fn findings_of<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["code"] == code)
        .collect()
}

/// The only finding with this code (host-wide codes have one).
fn one_finding<'a>(report: &'a Value, code: &str) -> &'a Value {
    let v = findings_of(report, code);
    assert_eq!(
        v.len(),
        1,
        "exactly one {code} finding; the report has:\n{}",
        findings_summary(report)
    );
    v[0]
}

/// Title and evidence of a finding, lower-cased, one string.
fn finding_text(f: &Value) -> String {
    let mut s = f["title"].as_str().unwrap_or("").to_string();
    for e in f["evidence"].as_array().into_iter().flatten() {
        s.push('\n');
        s.push_str(e.as_str().unwrap_or(""));
    }
    s.to_lowercase()
}

/// Whether one of the finding's evidence sentences contains `needle`
/// (case-insensitive).
fn cites(f: &Value, needle: &str) -> bool {
    let needle = needle.to_lowercase();
    f["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e.as_str().unwrap_or("").to_lowercase().contains(&needle))
}

/// The kernel_log entries of one kind.
fn log_messages<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["kernel_log"]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["kind"] == kind)
        .collect()
}

fn log_count(report: &Value, kind: &str) -> u64 {
    log_messages(report, kind)
        .iter()
        .map(|m| {
            m["count"]
                .as_u64()
                .unwrap_or_else(|| panic!("kernel_log message without a count: {m}"))
        })
        .sum()
}

fn u64_of(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

// ---------------------------------------------------------------------------------
// orphan-pressure
// ---------------------------------------------------------------------------------

/// A test namespace holding ORPHANS FIN-WAIT-1 orphans (and `spares` connections with
/// unacknowledged data to close later).
fn orphan_namespace(test: &str, spares: u64) -> (TestNetns, Load) {
    let mut ns = TestNetns::new(test);
    let orphans = ORPHANS.to_string();
    let spares = spares.to_string();
    let load = Load::start(
        &mut ns,
        &[
            "--orphans",
            &orphans,
            "--spares",
            &spares,
            "--orphan-port",
            "7400",
        ],
    );
    assert_eq!(
        load.ready["orphans"].as_u64(),
        Some(ORPHANS),
        "{}",
        load.ready
    );
    let ss = ns.ss_tan();
    assert_eq!(
        ss.count("FIN-WAIT-1"),
        ORPHANS,
        "FIN-WAIT-1 in the namespace:\n{}",
        ss.text()
    );
    (ns, load)
}

/// What every orphan-pressure finding must say about this host and namespace.
fn assert_orphan_pressure(
    report: &Value,
    ns: &TestNetns,
    limit: u64,
    before: u64,
    after: u64,
    severity: &str,
    // Over the limit the kernel kills orphans (this namespace's too) as their timers
    // fire: then the namespace's count is only bounded above.
    killing: bool,
) -> Value {
    let f = one_finding(report, "orphan-pressure").clone();
    eprintln!(
        "orphan-pressure: {}",
        serde_json::to_string_pretty(&f).unwrap()
    );
    let ctx = format!(
        "host orphans {before} before, {after} after, tcp_max_orphans set to {limit}\nfinding: {}\nall findings:\n{}",
        serde_json::to_string_pretty(&f).unwrap(),
        findings_summary(report)
    );
    assert_eq!(
        report["host"]["limits"]["tcp_max_orphans"].as_u64(),
        Some(limit),
        "host.limits.tcp_max_orphans\n{ctx}"
    );
    let sub = &f["subject"];
    let count = u64_of(&sub["count"], "orphan-pressure subject.count");
    assert!(
        within_band(count, before, after),
        "subject.count {count}: within 5% of sockstat orphan\n{ctx}"
    );
    assert_eq!(
        report["host"]["sockstat"]["tcp_orphan"].as_u64(),
        Some(count),
        "subject.count is the snapshot's host.sockstat.tcp_orphan\n{ctx}"
    );
    assert_eq!(sub["limit"].as_u64(), Some(limit), "subject.limit\n{ctx}");

    // The severity the kernel's penalty implies for the count sockmedic saw; the
    // limit was chosen so that the host's count must fall in the intended band.
    let implied = if 2 * count >= limit {
        "critical"
    } else if 4 * count >= limit {
        "warning"
    } else {
        "info"
    };
    assert_eq!(
        implied, severity,
        "the host's orphan count moved out of the band this test set up (other tests on the host?)\n{ctx}"
    );
    assert_eq!(f["severity"], severity, "orphan-pressure severity\n{ctx}");

    // The namespace holding most of the orphans sockmedic can see is this one.
    let mine = netns_named(report, &ns.name);
    let mine_orphans = u64_of(&mine["orphans"], "this namespace's netns.orphans");
    let lowest = if killing { 1 } else { ORPHANS };
    assert!(
        (lowest..=ORPHANS + 8).contains(&mine_orphans),
        "netns.orphans of {}: {mine_orphans}, made {ORPHANS}\n{ctx}",
        ns.name
    );
    let most = report["netns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["orphans"].as_u64().unwrap_or(0) > mine_orphans)
        .map(|n| format!("{} {} orphans {}", n["id"], n["names"], n["orphans"]))
        .collect::<Vec<_>>();
    assert!(
        most.is_empty(),
        "another namespace holds more orphans than this test's: {most:?}\n{ctx}"
    );
    // The count is host-wide, so the namespace is named only when it holds most of
    // it (orphans of other tests' deleted namespaces may still be counted).
    let host_orphans = u64_of(&sub["count"], "subject.count");
    let expected = (mine_orphans * 2 >= host_orphans).then_some(ns.name.as_str());
    assert_eq!(
        sub["netns"].as_str(),
        expected,
        "subject.netns names the namespace when it holds most of the {host_orphans} orphans ({mine_orphans} here)\n{ctx}"
    );
    assert_eq!(
        sub["state"].as_str(),
        expected.map(|_| "FIN-WAIT-1"),
        "subject.state: the orphans' state in the namespace named\n{ctx}"
    );
    f
}

/// 2 × orphans ≥ tcp_max_orphans > orphans: idle orphans are already being killed
/// (the ×2 penalty) although the raw count is below the limit.
#[test]
fn orphan_pressure_critical_when_twice_the_orphans_reach_tcp_max_orphans() {
    let _host = host_lock();
    let (ns, _load) = orphan_namespace("hw-orphan-crit", 0);
    let before = host_sockstat().orphan;
    assert!(before >= ORPHANS, "sockstat orphan {before} < {ORPHANS}");
    // orphans / limit = 2/3: critical (≥ 0.5) with margin both ways.
    let limit = before * 3 / 2;
    let ((_run, report), after) =
        with_host_sysctl("net.ipv4.tcp_max_orphans", &limit.to_string(), || {
            let r = check(&[]);
            (r, host_sockstat().orphan)
        });
    assert_orphan_pressure(&report, &ns, limit, before, after, "critical", false);
}

/// 4 × orphans ≥ tcp_max_orphans > 2 × orphans: only orphans hit by an ICMP error as
/// well as idle (the ×4 penalty) are at risk: a warning.
#[test]
fn orphan_pressure_warning_when_only_the_4x_penalty_reaches_tcp_max_orphans() {
    let _host = host_lock();
    let (ns, _load) = orphan_namespace("hw-orphan-warn", 0);
    let before = host_sockstat().orphan;
    assert!(before >= ORPHANS, "sockstat orphan {before} < {ORPHANS}");
    // orphans / limit = 1/3: warning (≥ 0.25, < 0.5) with margin both ways.
    let limit = before * 3;
    let ((_run, report), after) =
        with_host_sysctl("net.ipv4.tcp_max_orphans", &limit.to_string(), || {
            let r = check(&[]);
            (r, host_sockstat().orphan)
        });
    assert_orphan_pressure(&report, &ns, limit, before, after, "warning", false);
}

/// tcp_max_orphans below the orphan count, then one more close of a connection with
/// unacknowledged data: `__tcp_close` → `tcp_check_oom` resets it and logs
/// `TCP: too many orphaned sockets`; sockmedic must count the line and cite it.
#[test]
fn orphan_pressure_cites_too_many_orphaned_sockets_from_the_kernel_log() {
    let _host = host_lock();
    let spares = 4;
    let (ns, mut load) = orphan_namespace("hw-orphan-log", spares);
    const LINE: &str = "TCP: too many orphaned sockets";
    for attempt in 1..=spares {
        let cursor = kmsg_cursor();
        let before = host_sockstat().orphan;
        // Just under the count: the kernel kills orphans only until the count is
        // back under the limit, so the host is disturbed as little as possible.
        let limit = before.saturating_sub((before / 50).max(5)).max(1);
        let mut guard = HostSysctl::set("net.ipv4.tcp_max_orphans", &limit.to_string());
        let closed = load.close_one("close-spare");
        let Some(rec) = wait_for_kmsg(cursor, LINE, Duration::from_secs(2)) else {
            guard.restore();
            // net_ratelimit (message_cost 5 s, shared by every net_*_ratelimited
            // message on the host) may have swallowed it: try again after a pause.
            eprintln!("attempt {attempt}: {LINE:?} not logged after closing {closed}; retrying");
            std::thread::sleep(Duration::from_secs(6));
            continue;
        };
        let (_run, report) = check(&[]);
        let after = host_sockstat().orphan;
        guard.restore();
        drop(guard);
        eprintln!("kernel logged at {:.6}: {}", rec.uptime_s, rec.text);

        // The kernel's line, counted.
        let kl = &report["kernel_log"];
        assert_eq!(kl["source"], "/dev/kmsg", "kernel_log.source: {kl}");
        let n = log_count(&report, "too-many-orphans");
        assert!(n >= 1, "kernel_log too-many-orphans count {n}: {kl}");
        let last = log_messages(&report, "too-many-orphans")
            .iter()
            .filter_map(|m| m["last_uptime_s"].as_f64())
            .fold(f64::MIN, f64::max);
        assert!(
            last >= rec.uptime_s - 0.001,
            "the last too-many-orphans at {last}, the kernel logged one at {}: {kl}",
            rec.uptime_s
        );
        // Over the limit itself (the kills bring the count down towards it, not
        // under half of it): critical.
        let f = assert_orphan_pressure(&report, &ns, limit, before, after, "critical", false);
        assert!(
            cites(&f, "too many orphaned sockets"),
            "orphan-pressure cites the kernel's {LINE:?} in its evidence:\n{}",
            serde_json::to_string_pretty(&f["evidence"]).unwrap()
        );
        return;
    }
    panic!("{LINE:?} never appeared in /dev/kmsg after {spares} closes over the limit");
}

// ---------------------------------------------------------------------------------
// tcp-memory-pressure
// ---------------------------------------------------------------------------------

fn tcp_mem_value(min: u64, pressure: u64, max: u64) -> String {
    format!("{min} {pressure} {max}")
}

fn assert_tcp_mem_limits(report: &Value, min: u64, pressure: u64, max: u64) {
    let l = &report["host"]["limits"]["tcp_mem"];
    assert_eq!(
        (l["min"].as_u64(), l["pressure"].as_u64(), l["max"].as_u64()),
        (Some(min), Some(pressure), Some(max)),
        "host.limits.tcp_mem: {l}"
    );
}

/// Sockets with megabytes queued (receivers that never read) in a namespace; host
/// tcp_mem lowered around the host's `mem`: over pressure is a warning, at 90% of max
/// or over it critical, and closing a sender with a full send queue while over max
/// logs `TCP: out of memory -- consider tuning tcp_mem`, which the finding cites.
#[test]
fn tcp_memory_pressure_from_queued_data() {
    let _host = host_lock();
    let mut ns = TestNetns::new("hw-tcpmem");
    let fillers = FILLERS.to_string();
    let mut load = Load::start(&mut ns, &["--fill", &fillers, "--fill-port", "7401"]);
    let queued =
        load.ready["fill_outq"].as_u64().unwrap() + load.ready["fill_inq"].as_u64().unwrap();
    let pages = queued / 4096;
    let mem = host_sockstat().mem;
    // sockstat mem lags: each CPU keeps up to net.core.mem_pcpu_rsv pages (256 by
    // default) before folding them into the global count (kernel-notes §4.1).
    let rsv: u64 = std::fs::read_to_string("/proc/sys/net/core/mem_pcpu_rsv")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(256);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    assert!(
        mem + rsv * cpus >= pages,
        "sockstat mem {mem} pages (+ {rsv} per CPU not yet folded, {cpus} CPUs) < the {pages} pages of data queued: {}",
        load.ready
    );

    // Warning: pressure < mem < 0.9 × max (mem is half of max).
    let (min, pressure, max) = (mem / 4, mem / 2, mem * 2);
    let ((_run, report), after) = with_host_sysctl(
        "net.ipv4.tcp_mem",
        &tcp_mem_value(min, pressure, max),
        || {
            let r = check(&[]);
            (r, host_sockstat().mem)
        },
    );
    assert_tcp_mem_limits(&report, min, pressure, max);
    let f = one_finding(&report, "tcp-memory-pressure");
    eprintln!(
        "tcp-memory-pressure: {}",
        serde_json::to_string_pretty(f).unwrap()
    );
    let ctx = format!(
        "sockstat mem {mem} before, {after} after; tcp_mem {min} {pressure} {max}\nfinding: {}",
        serde_json::to_string_pretty(f).unwrap()
    );
    let count = u64_of(&f["subject"]["count"], "tcp-memory-pressure subject.count");
    assert!(
        within_band(count, mem, after),
        "subject.count (pages)\n{ctx}"
    );
    assert_eq!(
        report["host"]["sockstat"]["tcp_mem_pages"].as_u64(),
        Some(count),
        "subject.count is host.sockstat.tcp_mem_pages\n{ctx}"
    );
    assert!(
        count > pressure && (count as f64) < 0.9 * max as f64,
        "the count left the band this test set up (other tests on the host?)\n{ctx}"
    );
    assert_eq!(
        f["severity"], "warning",
        "over pressure, under 90% of max\n{ctx}"
    );
    let limit = u64_of(&f["subject"]["limit"], "tcp-memory-pressure subject.limit");
    assert!(
        limit == pressure || limit == max,
        "subject.limit is tcp_mem's pressure or max\n{ctx}"
    );

    // Critical, with the kernel's line: max under mem, then a sender with a full
    // send queue closes (an orphan with > SOCK_MIN_SNDBUF queued while
    // tcp_memory_allocated > tcp_mem[2]).
    const LINE: &str = "TCP: out of memory -- consider tuning tcp_mem";
    for attempt in 1..=3 {
        let cursor = kmsg_cursor();
        let mem = host_sockstat().mem;
        let (min, pressure, max) = (mem / 4, mem / 2, mem * 9 / 10);
        let mut guard = HostSysctl::set("net.ipv4.tcp_mem", &tcp_mem_value(min, pressure, max));
        let closed = load.close_one("close-filler");
        let Some(rec) = wait_for_kmsg(cursor, LINE, Duration::from_secs(2)) else {
            guard.restore();
            eprintln!("attempt {attempt}: {LINE:?} not logged after closing {closed}; retrying");
            std::thread::sleep(Duration::from_secs(6));
            continue;
        };
        let before = host_sockstat().mem;
        let (_run, report) = check(&[]);
        let after = host_sockstat().mem;
        guard.restore();
        drop(guard);
        eprintln!("kernel logged at {:.6}: {}", rec.uptime_s, rec.text);

        assert_tcp_mem_limits(&report, min, pressure, max);
        let kl = &report["kernel_log"];
        assert_eq!(kl["source"], "/dev/kmsg", "kernel_log.source: {kl}");
        let n = log_count(&report, "tcp-mem");
        assert!(n >= 1, "kernel_log tcp-mem count {n}: {kl}");
        let f = one_finding(&report, "tcp-memory-pressure");
        eprintln!(
            "tcp-memory-pressure: {}",
            serde_json::to_string_pretty(f).unwrap()
        );
        let ctx = format!(
            "sockstat mem {before} before, {after} after; tcp_mem {min} {pressure} {max}\nfinding: {}",
            serde_json::to_string_pretty(f).unwrap()
        );
        let count = u64_of(&f["subject"]["count"], "tcp-memory-pressure subject.count");
        assert!(
            within_band(count, before, after),
            "subject.count (pages)\n{ctx}"
        );
        assert!(
            count as f64 >= 0.9 * max as f64,
            "the count left the band this test set up (other tests on the host?)\n{ctx}"
        );
        assert_eq!(f["severity"], "critical", "at or over 90% of max\n{ctx}");
        assert_eq!(
            f["subject"]["limit"].as_u64(),
            Some(max),
            "subject.limit\n{ctx}"
        );
        assert!(
            cites(f, "consider tuning tcp_mem"),
            "tcp-memory-pressure cites the kernel's {LINE:?}\n{ctx}"
        );
        return;
    }
    panic!("{LINE:?} never appeared in /dev/kmsg after 3 closes over tcp_mem max");
}

// ---------------------------------------------------------------------------------
// A healthy namespace
// ---------------------------------------------------------------------------------

/// Ordinary traffic (connections opened, used and closed cleanly, TIME-WAIT, a few
/// held): nothing above info names the namespace, and no per-namespace code at all.
#[test]
fn healthy_namespace_has_no_findings() {
    let _host = host_lock();
    let mut ns = TestNetns::new("hw-healthy");
    let closed = 40u64;
    let held = 5u64;
    let load = Load::start(
        &mut ns,
        &[
            "--healthy",
            &closed.to_string(),
            "--healthy-held",
            &held.to_string(),
            "--healthy-port",
            "7402",
        ],
    );
    assert_eq!(load.ready["healthy"]["closed"].as_u64(), Some(closed));
    for args in [vec![], vec!["--netns", ns.name.as_str()]] {
        let (ss, (_run, report)) = stable(|| ns.ss_tan(), || check(&args));
        // The namespace was seen as it is: the absence of findings means something.
        let n = netns_named(&report, &ns.name);
        let states = states_of(n);
        let want: BTreeMap<String, u64> = [
            ("ESTABLISHED".to_string(), 2 * held),
            ("TIME-WAIT".to_string(), closed),
            ("LISTEN".to_string(), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(ss.states(), want, "ss in the namespace:\n{}", ss.text());
        let diffs = state_diffs(&states, &want, &["ESTABLISHED", "TIME-WAIT", "LISTEN"], &[]);
        assert_no_diffs("healthy namespace states", &diffs, &ss, n);

        let names: Vec<&str> = n["names"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        let about_it: Vec<&Value> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["subject"]["netns"]
                    .as_str()
                    .is_some_and(|s| names.contains(&s))
            })
            .collect();
        let bad: Vec<String> = about_it
            .iter()
            .filter(|f| {
                f["severity"] != "info"
                    || PER_NETNS_CODES.contains(&f["code"].as_str().unwrap_or(""))
            })
            .map(|f| format!("{} {}: {}", f["code"], f["severity"], f["title"]))
            .collect();
        assert!(
            bad.is_empty(),
            "check {args:?}: findings about the healthy namespace {}: {bad:#?}\nall findings:\n{}",
            ns.name,
            findings_summary(&report)
        );
    }
}

// ---------------------------------------------------------------------------------
// --kernel-log FILE
// ---------------------------------------------------------------------------------

/// A kind's message text, as a finding would quote it (lower-case substrings).
const KIND_TEXT: [(&str, &[&str]); 11] = [
    (
        "too-many-orphans",
        &["too many orphaned sockets", "too many of orphaned sockets"],
    ),
    ("out-of-socket-memory", &["out of socket memory"]),
    ("tcp-mem", &["consider tuning tcp_mem"]),
    ("tw-overflow", &["time wait bucket table overflow"]),
    ("syn-flood", &["possible syn flooding"]),
    ("conntrack-full", &["table full"]),
    ("file-max", &["file-max limit"]),
    ("no-more-sockets", &["no more sockets"]),
    ("port-range-parity", &["prefer different parity"]),
    ("drop-open-request", &["drop open request"]),
    ("neighbor-overflow", &["neighbor table overflow"]),
];

/// Which kind a kernel line is, by the texts of kernel-notes §11 (None: not one).
fn kind_of(text: &str) -> Option<&'static str> {
    let t = text.to_lowercase();
    KIND_TEXT
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| t.contains(n)))
        .map(|(k, _)| *k)
}

/// The real kernel lines (`dmesg` of the 6.18 test machine, made by this file's
/// tests and support/hostwide.py-style loads: see fixtures/kernel-log/README.md).
const DMESG_FIXTURE: &str = include_str!("fixtures/kernel-log/hostwide-dmesg.txt");

/// The other versions' wordings (kernel-notes §11), which no 6.18 kernel prints or
/// which cannot be made here without exhausting a host-wide table (conntrack,
/// file-max, neighbours); placed between the real lines.
const OTHER_VERSIONS: [&str; 13] = [
    "TCP: too many of orphaned sockets",
    "Out of socket memory",
    "TCP: time wait bucket table overflow",
    "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters.",
    "TCP: TCP: Possible SYN flooding on port 8080. Sending cookies.  Check SNMP counters.",
    "TCP: Possible SYN flooding on port 80. Sending cookies.",
    "nf_conntrack: nf_conntrack: table full, dropping packet",
    "nf_conntrack: nf_conntrack: table full in netns 4026532247, dropping packet",
    "nf_conntrack: table full, dropping packet",
    "VFS: file-max limit 65536 reached",
    "socket: no more sockets",
    "TCP: drop open request from 203.0.113.7/51234",
    "arp_cache: neighbor table overflow!",
];

/// Parses `[ 1234.567890] text`.
fn parse_dmesg_line(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (ts, text) = rest.split_once(']')?;
    Some((
        ts.trim().parse().ok()?,
        text.strip_prefix(' ').unwrap_or(text),
    ))
}

/// `--kernel-log FILE` (dmesg output) is read instead of /dev/kmsg: every known kind
/// counted with its times, the rate limiter's suppressed count summed, and a
/// `kernel-log` finding for each kind no other finding explains.
#[test]
fn kernel_log_file_is_counted_and_unexplained_kinds_are_findings() {
    // Real lines, moved in time so that the newest is 10 s old (sockmedic judges
    // "recent" against the uptime; the fixture was logged on an earlier boot).
    let real: Vec<(f64, &str)> = DMESG_FIXTURE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_dmesg_line(l).unwrap_or_else(|| panic!("fixture line {l:?}")))
        .collect();
    assert!(real.len() > 20, "the fixture has the real lines");
    let newest = real.iter().map(|r| r.0).fold(f64::MIN, f64::max);
    let oldest = real.iter().map(|r| r.0).fold(f64::MAX, f64::min);
    let now = uptime_s();
    // At most half an hour (kernel-log.recent is an hour), never before boot.
    let span = (newest - oldest).min(1800.0).min((now - 20.0).max(0.0));
    let shift = now - 10.0 - newest;
    let mut lines: Vec<(f64, String)> = real
        .iter()
        .map(|(ts, text)| ((ts + shift).max(now - 10.0 - span), text.to_string()))
        .collect();
    // The other versions' wordings, spread over the same span, a microsecond apart
    // from any real line.
    for (i, text) in OTHER_VERSIONS.iter().enumerate() {
        let ts = now - 10.0 - span * (i as f64 + 0.5) / OTHER_VERSIONS.len() as f64 + 1e-6;
        lines.push((ts, text.to_string()));
    }
    lines.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let file_text: String = lines
        .iter()
        .map(|(ts, text)| format!("[{ts:>12.6}] {text}\n"))
        .collect();
    let dir = std::env::temp_dir().join(unique_name("sm-hostwide-klog"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dmesg.txt");
    std::fs::write(&path, &file_text).unwrap();

    // What the file holds, by kind.
    let mut want: BTreeMap<&str, (u64, f64, f64)> = BTreeMap::new();
    let mut suppressed = 0u64;
    for (ts, text) in &lines {
        if let Some(k) = kind_of(text) {
            let e = want.entry(k).or_insert((0, f64::MAX, f64::MIN));
            e.0 += 1;
            e.1 = e.1.min(*ts);
            e.2 = e.2.max(*ts);
        }
        if let Some(n) = text
            .strip_prefix("net_ratelimit: ")
            .and_then(|r| r.strip_suffix(" callbacks suppressed"))
        {
            suppressed += n.parse::<u64>().unwrap();
        }
    }
    assert_eq!(
        want.len(),
        KIND_TEXT.len(),
        "the file has every kind: {want:?}"
    );
    assert!(
        suppressed > 0,
        "the fixture has a `callbacks suppressed` line"
    );

    let path_s = path.to_str().unwrap();
    // Only an empty namespace of this test is looked at: findings about other
    // tests' namespaces are out of scope here (kernel_log_messages_are_not_swallowed_
    // by_unrelated_findings is about them).
    let (run, report) = {
        let _host = host_lock();
        let ns = TestNetns::new("hw-klog");
        check(&["--kernel-log", path_s, "--netns", &ns.name])
    };
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("findings:\n{}", findings_summary(&report));
    let kl = &report["kernel_log"];
    let ctx = format!(
        "file:\n{file_text}\nkernel_log: {}\nfindings:\n{}",
        serde_json::to_string_pretty(kl).unwrap(),
        findings_summary(&report)
    );
    assert_eq!(kl["source"], path_s, "kernel_log.source\n{ctx}");
    assert_eq!(
        kl["records"].as_u64(),
        Some(lines.len() as u64),
        "kernel_log.records: the lines of the file\n{ctx}"
    );
    assert_eq!(
        kl["suppressed"].as_u64(),
        Some(suppressed),
        "kernel_log.suppressed: the sum of `net_ratelimit: N callbacks suppressed`\n{ctx}"
    );
    let known: Vec<&str> = KIND_TEXT.iter().map(|(k, _)| *k).collect();
    for m in kl["messages"].as_array().expect("kernel_log.messages") {
        let k = m["kind"].as_str().unwrap_or("");
        assert!(known.contains(&k), "unknown kind {k:?}\n{ctx}");
    }
    let mut errs = Vec::new();
    for (kind, (count, first, last)) in &want {
        let got = log_count(&report, kind);
        if got != *count {
            errs.push(format!("{kind}: count {got}, the file has {count}"));
        }
        let msgs = log_messages(&report, kind);
        let got_first = msgs
            .iter()
            .filter_map(|m| m["first_uptime_s"].as_f64())
            .fold(f64::MAX, f64::min);
        let got_last = msgs
            .iter()
            .filter_map(|m| m["last_uptime_s"].as_f64())
            .fold(f64::MIN, f64::max);
        if (got_first - first).abs() > 1e-3 || (got_last - last).abs() > 1e-3 {
            errs.push(format!(
                "{kind}: first/last uptime {got_first}/{got_last}, the file has {first:.6}/{last:.6}"
            ));
        }
        for m in &msgs {
            let sample = m["sample"].as_str().unwrap_or("");
            if !lines.iter().any(|(_, t)| t == sample) {
                errs.push(format!(
                    "{kind}: sample {sample:?} is not a line of the file"
                ));
            }
        }
    }
    // SYN floods are told apart by port (the detail), in every wording.
    let details: Vec<&str> = log_messages(&report, "syn-flood")
        .iter()
        .filter_map(|m| m["detail"].as_str())
        .collect();
    for d in ["127.0.0.1:7500", "[::1]:7501", "127.0.0.1:7620"] {
        if !details.iter().any(|x| x.contains(d)) {
            errs.push(format!(
                "syn-flood: no entry with detail {d} (details {details:?})"
            ));
        }
    }
    assert!(
        errs.is_empty(),
        "kernel_log:\n  {}\n{ctx}",
        errs.join("\n  ")
    );

    // Each kind is explained: by a finding of its own cause quoting it, or else by a
    // kernel-log finding.
    let mut unexplained = unexplained_kinds(&report, &known);
    // A neighbour table overflow has no finding of its own.
    if !kernel_log_finding_quotes(&report, "neighbor-overflow") {
        unexplained.push("neighbor-overflow (no kernel-log finding)".into());
    }
    assert!(
        unexplained.is_empty(),
        "kinds explained by no finding: {unexplained:?}\n{ctx}\n{}",
        run.describe()
    );
}

fn kind_needles(kind: &str) -> &'static [&'static str] {
    KIND_TEXT
        .iter()
        .find(|(k, _)| *k == kind)
        .unwrap_or_else(|| panic!("unknown kind {kind}"))
        .1
}

/// Whether a `kernel-log` finding names this kind (or quotes its message).
fn kernel_log_finding_quotes(report: &Value, kind: &str) -> bool {
    findings_of(report, "kernel-log").iter().any(|f| {
        let t = finding_text(f);
        t.contains(kind) || kind_needles(kind).iter().any(|n| t.contains(n))
    })
}

/// The kinds (of `kinds`) that no finding accounts for: neither a finding of another
/// code citing the message in its evidence, nor a `kernel-log` finding.
fn unexplained_kinds(report: &Value, kinds: &[&str]) -> Vec<String> {
    kinds
        .iter()
        .filter(|kind| {
            let by_cause = report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["code"] != "kernel-log")
                .any(|f| kind_needles(kind).iter().any(|n| cites(f, n)));
            !by_cause && !kernel_log_finding_quotes(report, kind)
        })
        .map(|k| k.to_string())
        .collect()
}

/// A message is "explained" only by a finding that says so: a finding about an
/// unrelated subject, whose rule could explain the kind elsewhere, must not make the
/// message vanish from the findings. Here a namespace with a tiny tcp_max_tw_buckets
/// (risky-sysctl) and a process holding unused sockets (socket-leak), while the log
/// has a parity warning and `socket: no more sockets` that neither finding mentions.
#[test]
fn kernel_log_messages_are_not_swallowed_by_unrelated_findings() {
    let _host = host_lock();
    let mut ns = TestNetns::new("hw-klog-unrelated");
    // Risky, and nothing to do with port ranges.
    ns.set_sysctl("net.ipv4.tcp_max_tw_buckets", "32");
    let holder = ns.start_holder(&["--never", "12"]);
    let now = uptime_s();
    let parity = DMESG_FIXTURE
        .lines()
        .filter_map(parse_dmesg_line)
        .find(|(_, t)| kind_of(t) == Some("port-range-parity"))
        .expect("a real parity line in the fixture")
        .1;
    let file_text = format!(
        "[{:>12.6}] {parity}\n[{:>12.6}] socket: no more sockets\n",
        now - 20.0,
        now - 10.0
    );
    let dir = std::env::temp_dir().join(unique_name("sm-hostwide-klog2"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dmesg.txt");
    std::fs::write(&path, &file_text).unwrap();
    let (_run, report) = check(&["--kernel-log", path.to_str().unwrap(), "--netns", &ns.name]);
    let _ = std::fs::remove_dir_all(&dir);
    let ctx = format!("file:\n{file_text}findings:\n{}", findings_summary(&report));

    // The unrelated findings are there (else this test proves nothing).
    let mine = |f: &&Value| f["subject"]["netns"].as_str() == Some(ns.name.as_str());
    assert!(
        findings_of(&report, "risky-sysctl").iter().any(mine),
        "risky-sysctl about tcp_max_tw_buckets of {}\n{ctx}",
        ns.name
    );
    assert!(
        findings_of(&report, "socket-leak")
            .iter()
            .any(|f| f["subject"]["pid"].as_u64() == Some(holder.pid as u64)),
        "socket-leak about pid {}\n{ctx}",
        holder.pid
    );
    for kind in ["port-range-parity", "no-more-sockets"] {
        assert_eq!(log_count(&report, kind), 1, "kernel_log {kind}\n{ctx}");
    }
    let unexplained = unexplained_kinds(&report, &["port-range-parity", "no-more-sockets"]);
    assert!(
        unexplained.is_empty(),
        "messages in the log that no finding mentions (no kernel-log finding, and no other finding cites them): {unexplained:?}\n{ctx}"
    );
}

// ---------------------------------------------------------------------------------
// The guard itself
// ---------------------------------------------------------------------------------

/// A panic while a host sysctl is changed still restores it (Drop during the
/// unwind), and stops the watchdog.
#[test]
fn host_sysctl_guard_restores_on_panic() {
    let _host = host_lock();
    let name = "net.ipv4.tcp_max_orphans";
    let orig = read_host_sysctl(name);
    // Harmless: one more than it is.
    let raised = (orig.parse::<u64>().unwrap() + 1).to_string();
    let watchdog = std::cell::Cell::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let g = HostSysctl::set(name, &raised);
        watchdog.set(g.watchdog_pid());
        assert_eq!(read_host_sysctl(name), raised);
        panic!("deliberate panic with {name} changed");
    }));
    assert!(r.is_err(), "the closure panicked");
    assert_eq!(read_host_sysctl(name), orig, "{name} restored by Drop");
    let pid = watchdog.get().expect("the guard had a watchdog");
    assert!(!process_alive(pid), "the watchdog {pid} was stopped");
}

/// Restoring a multi-field sysctl (tcp_mem: tabs when read) gives back exactly the
/// old value.
#[test]
fn host_sysctl_guard_restores_tcp_mem_exactly() {
    let _host = host_lock();
    let name = "net.ipv4.tcp_mem";
    let orig_raw = std::fs::read_to_string(sysctl_path(name)).unwrap();
    let orig = read_host_sysctl(name);
    let raised: Vec<String> = orig
        .split(' ')
        .map(|v| (v.parse::<u64>().unwrap() + 1).to_string())
        .collect();
    with_host_sysctl(name, &raised.join(" "), || {
        assert_eq!(read_host_sysctl(name), raised.join(" "));
    });
    assert_eq!(
        std::fs::read_to_string(sysctl_path(name)).unwrap(),
        orig_raw,
        "{name} byte for byte"
    );
}

/// Whether `pid` runs (a zombie, exited and not yet reaped by whoever inherited it,
/// does not).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

const VICTIM_ENV: &str = "SOCKMEDIC_HOSTWIDE_VICTIM";

/// Run only by [`host_sysctl_watchdog_restores_after_sigkill`] (in a child process
/// of this test binary): sets the sysctl, says so, and waits to be killed.
#[test]
#[ignore = "run by host_sysctl_watchdog_restores_after_sigkill"]
fn watchdog_victim() {
    let Ok(spec) = std::env::var(VICTIM_ENV) else {
        return;
    };
    let (name, value) = spec.split_once('=').unwrap();
    let g = HostSysctl::set(name, value);
    println!("victim-armed {}", g.watchdog_pid().unwrap());
    std::io::stdout().flush().unwrap();
    // Killed long before this ends; if not, Drop restores.
    std::thread::sleep(Duration::from_secs(60));
}

/// The test process is SIGKILLed while a host sysctl is changed: no Drop runs, and
/// the watchdog restores the value.
#[test]
fn host_sysctl_watchdog_restores_after_sigkill() {
    let _host = host_lock();
    let name = "net.ipv4.tcp_max_orphans";
    let orig = read_host_sysctl(name);
    let raised = (orig.parse::<u64>().unwrap() + 2).to_string();
    let mut victim = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "watchdog_victim",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VICTIM_ENV, format!("{name}={raised}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the victim");
    let mut out = BufReader::new(victim.stdout.take().unwrap());
    let mut watchdog = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        // libtest prints "test watchdog_victim ... " on the same line.
        if let Some((_, pid)) = line.trim().split_once("victim-armed ") {
            watchdog = Some(pid.trim().parse::<u32>().unwrap());
            break;
        }
        line.clear();
    }
    let Some(watchdog) = watchdog else {
        let _ = victim.kill();
        let _ = victim.wait();
        panic!("the victim never set {name}");
    };
    let changed = read_host_sysctl(name);
    victim.kill().unwrap(); // SIGKILL: no unwinding, no Drop
    let status = victim.wait().unwrap();
    assert_eq!(changed, raised, "the victim had set {name}");
    assert_eq!(status.code(), None, "the victim was killed by a signal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_host_sysctl(name) != orig && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        read_host_sysctl(name),
        orig,
        "{name} restored by the watchdog"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(watchdog) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !process_alive(watchdog),
        "the watchdog {watchdog} ended after restoring"
    );
}
