//! `sockmedic top` against the kernel. Each test reproduces an incident in a network
//! namespace of its own (support/holder.py, support/incidents.py), then reads top's
//! screen and compares it with `ss` (and /proc) in that namespace:
//!
//! - `top --once` prints one frame as text (80x24 unless `--size`): the figures, the
//!   panes and the finding must be on it, and the whole key line;
//! - `top` in a pseudo-terminal (a real one: raw mode, the alternate screen), read
//!   through a terminal emulator (the vt100 crate), driven with keys: the namespace
//!   filter, pause, sort, the finding's details, then `q`: exit 0, the alternate
//!   screen left, the cursor shown and the terminal mode restored; SIGTERM and
//!   SIGINT do the same with 143 and 130.
//!
//! Counts are compared with `ss` read just before and just after, within the 5% of
//! incidents.rs; nothing is timed.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key line at 80 columns, complete.
const KEY_LINE: &str =
    "q quit p pause s sort n netns / find +/- interval tab pane enter details ? help";

/// Whether `got` is within 5% of `want` (at least 1 either way).
fn near(got: u64, want: u64) -> bool {
    let tol = ((want as f64) * 0.05).ceil().max(1.0) as u64;
    got.abs_diff(want) <= tol
}

fn assert_near_all(what: &str, got: u64, truths: &[u64], screen: &str) {
    for t in truths {
        assert!(
            near(got, *t),
            "{what}: top shows {got}, ss says {truths:?} (5% tolerance)\n{screen}"
        );
    }
}

fn parse_num(s: &str) -> u64 {
    s.trim_start_matches('~')
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {s:?}"))
}

/// A ratio as top prints it.
fn pct(r: f64) -> String {
    let p = r * 100.0;
    if p >= 999.5 {
        ">999%".into()
    } else if p >= 99.95 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// The state label on top's screen for a state as `ss` spells it.
fn label(state: &str) -> &str {
    match state {
        "ESTABLISHED" => "ESTAB",
        "BOUND-INACTIVE" => "BOUND",
        s => s,
    }
}

// ---------------------------------------------------------------------------------
// Reading a screen
// ---------------------------------------------------------------------------------

/// One screen of top, as text.
struct Screen {
    text: String,
}

impl Screen {
    fn lines(&self) -> Vec<&str> {
        self.text.lines().collect()
    }

    /// The left column's part of each line (before the `│` rule).
    fn left(&self) -> Vec<&str> {
        self.lines()
            .iter()
            .map(|l| l.split('│').next().unwrap())
            .collect()
    }

    /// The right column's part of each line (after the `│` rule).
    fn right(&self) -> Vec<&str> {
        self.lines()
            .iter()
            .filter_map(|l| l.split_once('│').map(|(_, r)| r))
            .collect()
    }

    /// The states pane: label -> count (states not shown are absent).
    fn states(&self) -> BTreeMap<String, u64> {
        let left = self.left();
        let start = left
            .iter()
            .position(|l| l.trim_start().starts_with("STATE") && l.contains("COUNT"))
            .unwrap_or_else(|| panic!("no states pane header\n{}", self.text));
        let mut out = BTreeMap::new();
        for l in &left[start + 1..] {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 3 || l.contains(" Findings (") {
                break;
            }
            out.insert(w[0].to_string(), parse_num(w[1]));
        }
        out
    }

    /// A state's count (0 when the pane does not list it).
    fn state(&self, state: &str) -> u64 {
        self.states().get(label(state)).copied().unwrap_or(0)
    }

    /// The line holding `what` (its right column's part when it is there), or a
    /// panic showing the screen.
    fn line_with(&self, what: &str) -> &str {
        let line = self
            .lines()
            .into_iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what:?} is not on the screen\n{}", self.text));
        match line.split_once('│') {
            Some((_, right)) if right.contains(what) => right,
            _ => line,
        }
    }

    /// The gauge line of `label`: (value, limit, ratio text, the note after the bar).
    fn gauge(&self, label: &str) -> (u64, u64, String, String) {
        let line = self
            .lines()
            .into_iter()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} gauge\n{}", self.text));
        let rest = &line[label.len()..];
        let w: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(w[1], "/", "{line}");
        (
            parse_num(w[0]),
            parse_num(w[2]),
            w[3].to_string(),
            w[5..].join(" "),
        )
    }

    /// The processes pane's rows as header -> value maps.
    fn processes(&self) -> Vec<BTreeMap<String, String>> {
        let right = self.right();
        let Some(h) = right
            .iter()
            .position(|l| l.trim_start().starts_with("PID") || l.contains(" PID "))
        else {
            panic!("no processes pane\n{}", self.text)
        };
        let heads: Vec<&str> = right[h].split_whitespace().collect();
        right[h + 1..]
            .iter()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| {
                heads
                    .iter()
                    .zip(l.split_whitespace())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }
}

/// `sockmedic top --once ARGS`: the run and its screen, after checking it ran.
fn top_once(args: &[&str]) -> (Run, Screen) {
    let mut full = vec!["top", "--once", "--interval", "1s"];
    full.extend_from_slice(args);
    let run = sockmedic(&full);
    run.assert_no_panic();
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "top --once failed\n{}",
        run.describe()
    );
    let text = run.stdout();
    (run, Screen { text })
}

/// The frame fits its size, every pane is there, and the key line is whole.
fn assert_frame(s: &Screen, cols: usize, rows: usize) {
    let lines = s.lines();
    assert_eq!(lines.len(), rows, "rows\n{}", s.text);
    for l in &lines {
        assert!(l.chars().count() <= cols, "wider than {cols}: {l:?}");
    }
    let keys = lines[rows - 1];
    if cols < 84 {
        assert_eq!(keys, KEY_LINE, "key line\n{}", s.text);
    } else {
        assert_eq!(
            keys.split_whitespace().collect::<Vec<_>>(),
            KEY_LINE.split_whitespace().collect::<Vec<_>>(),
            "key line\n{}",
            s.text
        );
    }
    assert!(lines[0].starts_with("sockmedic top  "), "{}", s.text);
    for pane in [
        " Host-wide limits (",
        " TCP states · ",
        " Top local endpoints (e) ",
        " Processes by ",
        " Findings (",
    ] {
        assert!(s.text.contains(pane), "pane {pane:?} missing\n{}", s.text);
    }
    for gauge in ["orphans", "tw buckets", "TCP memory", "files", "conntrack"] {
        assert!(
            lines.iter().any(|l| l.starts_with(gauge)),
            "gauge {gauge} missing\n{}",
            s.text
        );
    }
}

/// The findings line with `code`, its title as shown (cut with `…` when long).
fn finding_line<'a>(s: &'a Screen, code: &str) -> (&'a str, String) {
    let line = s
        .lines()
        .into_iter()
        .find(|l| l.split_whitespace().nth(1) == Some(code))
        .unwrap_or_else(|| panic!("no {code} finding on the screen\n{}", s.text));
    let sev = line.split_whitespace().next().unwrap();
    let title = line
        .split_once(code)
        .map(|(_, t)| t.trim().trim_end_matches('…').to_string())
        .unwrap();
    (sev, title)
}

/// The titles of the findings with `code` in `check --json` of `ns` (with counter
/// rates over 1 s, as top has them).
fn check_title(ns: &TestNetns, code: &str) -> Vec<String> {
    let (_, report) = check_json(&["--interval", "1", "--netns", &ns.name]);
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .map(|f| f["title"].as_str().unwrap().to_string())
        .collect()
}

fn assert_title_shown(s: &Screen, ns: &TestNetns, code: &str, shown: &str) {
    let titles = check_title(ns, code);
    assert!(
        titles.iter().any(|t| t.starts_with(shown)),
        "{code}: the screen shows {shown:?}, check says {titles:?}\n{}",
        s.text
    );
}

// ---------------------------------------------------------------------------------
// A CLOSE-WAIT leak (incident 5)
// ---------------------------------------------------------------------------------

/// A server that keeps every connection after its clients closed: `n` CLOSE-WAIT.
fn close_wait_leak(ns: &mut TestNetns, port: u16, n: u64) -> (Holder, Holder) {
    let listen = format!("127.0.0.1:{port}");
    let server = ns.start_holder(&["--listen", &listen]);
    let mut clients = ns.start_holder(&["--connect", &format!("{listen}:k:{n}")]);
    assert_eq!(clients.ready.state("ESTABLISHED"), n);
    let closed = clients.ask("close");
    assert_eq!(closed["closed"].as_u64(), Some(n));
    wait_for(
        "the server's CLOSE-WAIT in ss -tanp, the clients' FIN-WAIT-2",
        20,
        || {
            let got = ns
                .ss_tanp()
                .states_of(server.pid)
                .get("CLOSE-WAIT")
                .copied()
                .unwrap_or(0);
            let ss = ns.ss_tan();
            let clients = (ss.count("FIN-WAIT-1"), ss.count("FIN-WAIT-2"));
            (
                (got == n && clients == (0, n)).then_some(()),
                (got, clients),
            )
        },
    );
    (server, clients)
}

#[test]
fn once_at_80x24_shows_a_close_wait_leak_as_ss_sees_it() {
    const N: u64 = 50;
    let mut ns = TestNetns::new("top-cw");
    let _unblock = Unblock::new(&ns);
    let (server, _clients) = close_wait_leak(&mut ns, 7610, N);

    let before = ns.ss_tan().states();
    let (_, s) = top_once(&["--netns", &ns.name, "--sort", "close-wait"]);
    let after = ns.ss_tan().states();

    assert_frame(&s, 80, 24);
    assert!(
        s.text.contains(" TCP states · all 1 namespace "),
        "{}",
        s.text
    );
    // Every state as ss counts it (a state top does not list is 0).
    for state in DUMPABLE {
        let truths = [
            before.get(state).copied().unwrap_or(0),
            after.get(state).copied().unwrap_or(0),
        ];
        assert_near_all(state, s.state(state), &truths, &s.text);
    }
    assert_eq!(s.state("CLOSE-WAIT"), N, "{}", s.text);
    // The server's port is the busiest local endpoint.
    let ep = s.line_with("CLOSE-WAIT 127.0.0.1:7610");
    assert!(ep.trim_end().ends_with(&format!(" {N}")), "{ep}");
    // Processes by close-wait: the server first, with its CLOSE-WAIT sockets and
    // its fds against its limit.
    assert!(s.text.contains(" Processes by close wait "), "{}", s.text);
    let procs = s.processes();
    let first = &procs[0];
    assert_eq!(first["PID"], server.pid.to_string(), "{}", s.text);
    assert_eq!(first["CL-WAIT"], N.to_string(), "{}", s.text);
    let (soft, _) = proc_nofile(server.pid);
    let fds = proc_fd_count(server.pid);
    if let Some(fl) = first.get("FDS/LIMIT") {
        assert_eq!(fl, &format!("{fds}/{soft}"), "{}", s.text);
    }
    // The finding, with the same title as check's.
    let (sev, title) = finding_line(&s, "close-wait-leak");
    assert_eq!(sev, "WARN", "{}", s.text);
    assert_title_shown(&s, &ns, "close-wait-leak", &title);
    // TIME-WAIT is this namespace's, against its own tcp_max_tw_buckets.
    let (_, tw_max, _, note) = s.gauge("tw buckets");
    let want: u64 = ns.sysctl("net.ipv4.tcp_max_tw_buckets").parse().unwrap();
    assert_eq!(tw_max, want, "{}", s.text);
    assert!(note.starts_with("ns sm-top-cw"), "{note}");
}

// ---------------------------------------------------------------------------------
// A LAST-ACK storm on one listener (incident 1): orphans and their penalty
// ---------------------------------------------------------------------------------

fn sockstat_orphans() -> u64 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap();
    let w: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .unwrap()
        .split_whitespace()
        .collect();
    let i = w.iter().position(|x| *x == "orphan").unwrap();
    w[i + 1].parse().unwrap()
}

#[test]
fn once_shows_a_last_ack_storm_its_orphans_and_the_penalty() {
    const N: u64 = 300;
    let mut ns = TestNetns::new("top-la");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    teardown_incident(&mut ns, "last-ack", 8011, N, &[]);
    let listener = lo4(8011);
    let on_listener = |t: &SsTable| {
        t.by_local()
            .get(&("LAST-ACK".to_string(), listener))
            .copied()
            .unwrap_or(0)
    };
    wait_for("LAST-ACK on the listener in ss", 20, || {
        let n = on_listener(&ns.ss_tan());
        ((n == N).then_some(()), n)
    });

    let (ss_before, orphans_before) = (ns.ss_tan(), sockstat_orphans());
    let (_, s) = top_once(&["--netns", &ns.name, "--size", "100x30"]);
    let (ss_after, orphans_after) = (ns.ss_tan(), sockstat_orphans());

    assert_frame(&s, 100, 30);
    assert_near_all(
        "LAST-ACK",
        s.state("LAST-ACK"),
        &[ss_before.count("LAST-ACK"), ss_after.count("LAST-ACK")],
        &s.text,
    );
    let ep = s.line_with("LAST-ACK   127.0.0.1:8011");
    let count = ep.split_whitespace().nth(2).map(parse_num).unwrap();
    assert_near_all(
        "LAST-ACK on the listener",
        count,
        &[on_listener(&ss_before), on_listener(&ss_after)],
        &s.text,
    );
    // Orphans are host-wide (other tests' too): between the readings around the run.
    let (orphans, max, ratio, note) = s.gauge("orphans");
    let lo = orphans_before.min(orphans_after);
    let hi = orphans_before.max(orphans_after);
    assert!(
        orphans >= N && orphans + lo / 20 + 1 >= lo && orphans <= hi + hi / 20 + 1,
        "orphans {orphans}, sockstat said {orphans_before} and {orphans_after}\n{}",
        s.text
    );
    let tcp_max_orphans: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_orphans")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(max, tcp_max_orphans);
    // The ratio, and the kernel's ×2 and ×4 penalty on it.
    let r = orphans as f64 / max as f64;
    assert_eq!(ratio, pct(r), "{}", s.text);
    assert!(
        note.contains(&format!("×2 {} ×4 {}", pct(2.0 * r), pct(4.0 * r))),
        "{note}\n{}",
        s.text
    );
    let (_, title) = finding_line(&s, "teardown-stall");
    assert_title_shown(&s, &ns, "teardown-stall", &title);
}

// ---------------------------------------------------------------------------------
// TIME-WAIT at its bucket limit (incident 2)
// ---------------------------------------------------------------------------------

#[test]
fn once_shows_time_wait_at_its_buckets_and_the_overflow_rate() {
    const BUCKETS: u64 = 32;
    let mut ns = TestNetns::new("top-tw");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_max_tw_buckets", &BUCKETS.to_string());
    incident(&mut ns, &["churn", "--port", "8015", "--every", "0.005"]);
    let tw = |ns: &TestNetns| ns.ss_tan().count("TIME-WAIT");
    wait_for("TIME-WAIT at the bucket limit", 20, || {
        let n = tw(&ns);
        ((n >= BUCKETS - 1).then_some(()), n)
    });

    let before = tw(&ns);
    let (_, s) = top_once(&["--netns", &ns.name]);
    let after = tw(&ns);

    assert_frame(&s, 80, 24);
    assert_near_all("TIME-WAIT", s.state("TIME-WAIT"), &[before, after], &s.text);
    // sockstat tw: TIME-WAIT and FIN-WAIT-2 minisockets, all TIME-WAIT here.
    let (value, limit, ratio, _) = s.gauge("tw buckets");
    assert_eq!(limit, BUCKETS, "{}", s.text);
    assert_near_all("TIME-WAIT gauge", value, &[before, after], &s.text);
    assert_eq!(ratio, pct(value as f64 / BUCKETS as f64));
    let (sev, title) = finding_line(&s, "timewait-pressure");
    assert_eq!(sev, "CRIT", "{}", s.text);
    assert_title_shown(&s, &ns, "timewait-pressure", &title);
    // The counter rates of the two cycles: TIME-WAIT buckets overflowing.
    let rates = s.line_with("per s: opens ");
    assert!(rates.contains("tw-overflow "), "{rates}");
}

// ---------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------

#[test]
fn without_a_terminal_it_refuses_with_one_line() {
    let run = sockmedic(&["top"]);
    run.assert_no_panic();
    assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "{}", run.describe());
    for want in ["not a terminal", "check --json", "serve", "top --once"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(run.stdout().is_empty());
    for args in [
        &["top", "--json"][..],
        &["top", "--from", "/nonexistent"],
        &["top", "--once", "--interval", "0"],
        &["top", "--size", "80x24"],
        &["top", "--once", "--size", "20x5"],
        &["top", "--once", "--sort", "nope"],
        &["top", "--once", "--threshold", "nope=1"],
        &["top", "--once", "--netns", "sm-no-such-namespace"],
    ] {
        let run = sockmedic(args);
        run.assert_no_panic();
        assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
        assert!(run.stdout().is_empty(), "{}", run.describe());
    }
}

// ---------------------------------------------------------------------------------
// In a pseudo-terminal
// ---------------------------------------------------------------------------------

/// sockmedic run on the slave side of a pseudo-terminal; what it writes is kept
/// and read through a terminal emulator.
struct Pty {
    child: Child,
    master: std::fs::File,
    /// The slave side, kept to read the terminal mode after the child exits.
    slave: Option<std::fs::File>,
    out: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    size: (u16, u16),
}

impl Pty {
    fn spawn(args: &[&str], cols: u16, rows: u16) -> Pty {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let master: OwnedFd =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        rustix::termios::tcsetwinsize(
            &slave,
            rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .unwrap();
        let mut cmd = Command::new(SOCKMEDIC);
        cmd.args(args)
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe system calls;
        // they make the pty the child's controlling terminal, as a shell would.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                let stdin = std::os::fd::BorrowedFd::borrow_raw(0);
                rustix::process::ioctl_tiocsctty(stdin)?;
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn sockmedic top");
        drop(cmd);
        let master = std::fs::File::from(master);
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut reading = master.try_clone().unwrap();
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            // EIO once every slave fd is closed.
            while let Ok(n) = reading.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            master,
            slave: Some(slave),
            out,
            reader: Some(reader),
            size: (cols, rows),
        }
    }

    fn raw(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    /// The screen as a terminal shows it now.
    fn screen(&self) -> String {
        let mut p = vt100::Parser::new(self.size.1, self.size.0, 0);
        p.process(&self.raw());
        p.screen().contents()
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Waits until the screen passes `check`; panics with the screen after `secs`.
    fn wait_screen(&self, what: &str, secs: u64, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if check(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "top did not exit; the screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The terminal mode now (raw or cooked).
    fn mode(&self) -> rustix::termios::Termios {
        rustix::termios::tcgetattr(self.slave.as_ref().unwrap().as_fd()).unwrap()
    }

    /// After the child exited: closes the slave so that the reader sees the end.
    fn finish(&mut self) -> Vec<u8> {
        self.slave = None;
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.raw()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn cooked(t: &rustix::termios::Termios) -> bool {
    use rustix::termios::LocalModes;
    t.local_modes
        .contains(LocalModes::ICANON | LocalModes::ECHO)
}

/// The last position of `seq` in `raw`.
fn rfind(raw: &[u8], seq: &[u8]) -> Option<usize> {
    raw.windows(seq.len()).rposition(|w| w == seq)
}

/// What leaving must look like: the alternate screen entered then left, the cursor
/// hidden then shown again, the terminal mode as it was.
fn assert_restored(
    raw: &[u8],
    mode_before: &rustix::termios::Termios,
    after: &rustix::termios::Termios,
) {
    let enter = rfind(raw, b"\x1b[?1049h").expect("entered the alternate screen");
    let leave = rfind(raw, b"\x1b[?1049l").expect("left the alternate screen");
    assert!(
        leave > enter,
        "the alternate screen was left before the end"
    );
    let hide = rfind(raw, b"\x1b[?25l").expect("hid the cursor");
    let show = rfind(raw, b"\x1b[?25h").expect("showed the cursor");
    assert!(show > hide, "the cursor was hidden again after being shown");
    assert!(cooked(mode_before));
    assert!(cooked(after), "the terminal is still in raw mode");
    assert_eq!(after.local_modes, mode_before.local_modes);
    assert_eq!(after.input_modes, mode_before.input_modes);
    assert_eq!(after.output_modes, mode_before.output_modes);
}

/// The number after "cycle " in the header.
fn cycle_of(screen: &str) -> u64 {
    let head = screen.lines().next().unwrap_or("");
    head.split("cycle ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The count of a state in the states pane of a pty screen.
fn pty_state(screen: &str, state: &str) -> Option<u64> {
    Screen {
        text: screen.to_string(),
    }
    .states()
    .get(label(state))
    .copied()
}

#[test]
fn live_in_a_terminal_keys_change_the_view_and_q_restores_it() {
    const N: u64 = 40;
    let mut ns = TestNetns::new("top-live");
    let _unblock = Unblock::new(&ns);
    let (server, _clients) = close_wait_leak(&mut ns, 7620, N);

    // Every namespace (other tests' too), 100x30.
    let mut pty = Pty::spawn(&["top", "--interval", "1s"], 100, 30);
    let mode_before = pty.mode();
    let s = pty.wait_screen("a second cycle", 60, |s| cycle_of(s) >= 2);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines
            .last()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(KEY_LINE.split_whitespace().collect()),
        "{s}"
    );
    assert!(s.contains(" TCP states · all "), "{s}");
    // The raw mode is on while it runs.
    assert!(!cooked(&pty.mode()), "raw mode while running");

    // `/NAME` Enter: this namespace only; its CLOSE-WAIT as ss counts it.
    pty.send(&format!("/{}", ns.name));
    pty.wait_screen("the namespace prompt", 10, |s| {
        s.lines()
            .last()
            .is_some_and(|l| l.contains(&format!("netns  {}_", ns.name)))
    });
    pty.send("\r");
    let title = format!(" TCP states · ns {} ", ns.name);
    let s = pty.wait_screen("this namespace's CLOSE-WAIT", 30, |s| {
        s.contains(&title) && pty_state(s, "CLOSE-WAIT") == Some(N)
    });
    let ss = ns.ss_tan();
    assert_eq!(ss.count("CLOSE-WAIT"), N);
    assert_eq!(pty_state(&s, "LISTEN"), Some(ss.count("LISTEN")), "{s}");
    assert!(s.contains(&server.pid.to_string()), "the server's row\n{s}");
    assert!(s.contains("close-wait-leak"), "{s}");

    // Enter: the selected finding in full; Esc back.
    pty.send("\r");
    let s = pty.wait_screen("the finding's details", 10, |s| {
        s.contains("finding (esc: back") && s.contains("evidence:")
    });
    assert!(s.contains("severity: "), "{s}");
    pty.send("\x1b");
    pty.wait_screen("the details closed", 10, |s| {
        !s.contains("finding (esc: back")
    });

    // p: paused; the cycle stays while collection goes on; p again resumes.
    pty.send("p");
    let s = pty.wait_screen("PAUSED", 10, |s| {
        s.lines().next().is_some_and(|l| l.ends_with("PAUSED"))
    });
    let frozen = cycle_of(&s);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(cycle_of(&pty.screen()), frozen, "cycles while paused");
    pty.send("p");
    pty.wait_screen("resumed", 30, |s| {
        cycle_of(s) > frozen && !s.lines().next().unwrap_or("").ends_with("PAUSED")
    });

    // s: the next sort key (sockets -> tcp), and the processes pane says so.
    assert!(pty.screen().contains(" Processes by sockets "));
    pty.send("s");
    pty.wait_screen("sorted by tcp", 10, |s| s.contains(" Processes by tcp "));

    // n: the next namespace (or all of them): not this one any more.
    pty.send("n");
    pty.wait_screen("another namespace", 10, |s| {
        s.contains(" TCP states · ") && !s.contains(&title)
    });

    // ?: help; any key closes it.
    pty.send("?");
    pty.wait_screen("help", 10, |s| s.contains("keys and legend"));
    pty.send("x");
    pty.wait_screen("help closed", 10, |s| !s.contains("keys and legend"));

    // +: the next interval (2 s); collection restarts at it and goes on.
    pty.send("+");
    let s = pty.wait_screen("every 2s", 10, |s| {
        s.lines().next().is_some_and(|l| l.contains("every 2s"))
    });
    let at = cycle_of(&s);
    pty.wait_screen("cycles at the new interval", 60, |s| cycle_of(s) >= at + 2);

    // q: exit 0, the terminal as it was.
    pty.send("q");
    let status = pty.wait_exit(20);
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let mode_after = pty.mode();
    let raw = pty.finish();
    assert_restored(&raw, &mode_before, &mode_after);
    let after = pty.screen();
    assert!(
        !after.contains("Findings ("),
        "still on the alternate screen\n{after}"
    );
}

#[test]
fn sigterm_and_sigint_restore_the_terminal_too() {
    for (sig, code) in [("TERM", 143), ("INT", 130)] {
        let mut pty = Pty::spawn(&["top", "--netns", "self", "--interval", "1s"], 80, 24);
        let mode_before = pty.mode();
        pty.wait_screen("a first frame", 60, |s| cycle_of(s) >= 1);
        let pid = pty.child.id().to_string();
        run_ok(Command::new("kill").args([&format!("-{sig}"), &pid]));
        let status = pty.wait_exit(20);
        assert_eq!(status.code(), Some(code), "SIG{sig}: {status:?}");
        let mode_after = pty.mode();
        let raw = pty.finish();
        assert_restored(&raw, &mode_before, &mode_after);
    }
}
