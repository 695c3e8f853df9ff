//! Times the process scan (`procscan::scan` plus the join with a sock_diag dump)
//! against a bare loop that only readlinks every `/proc/*/fd/*`, and `ss -tanp`.
//! Also counts heap allocations per scan (expected: per process, not per fd).
//!
//! Run as root in a throwaway network namespace (the per-process fd limit is 20000):
//!
//! ```text
//! cargo build --release --example procscan_bench
//! ip netns add psbench && ip netns exec psbench sh -c '
//!   ip link set lo up; sysctl -qw net.core.somaxconn=65535
//!   sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
//!   target/release/examples/procscan_bench run 200000 12 5 tcp ss'
//! ip netns del psbench
//! ```
//!
//! `run TOTAL PROCS ROUNDS tcp|pairs [cold] [ss]`: PROCS children hold TOTAL socket
//! fds in all (`tcp`: loopback connections with both ends held, plus a listener each;
//! `pairs`: UNIX socketpairs); `ss` adds one `ss -tanp`; `cold` respawns the holders
//! before every contender, so each meets uncached /proc/PID/fd dentries.
//! `host ROUNDS`: the warm timings over whatever runs now.
//! Every round runs each contender once, interleaved; the table shows min/median/max.

use rustix::fs::{Mode, OFlags, RawDir};
use sockmedic_collect::procscan::{scan, ProcScanOptions};
use sockmedic_collect::sockdiag::{DumpRequest, Family, SockDiag, ALL_STATES};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, new) }
    }
}
#[global_allocator]
static A: Counting = Counting;

/// Child: holds `n` socket fds until stdin closes.
fn hold(kind: &str, n: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut r = getrlimit(Resource::Nofile);
    r.current = r.maximum;
    setrlimit(Resource::Nofile, r).expect("raise RLIMIT_NOFILE");
    let mut keep: Vec<OwnedFd> = Vec::with_capacity(n + 1);
    if kind == "tcp" {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind listener");
        let addr = l.local_addr().expect("listener address");
        for _ in 0..n / 2 {
            keep.push(TcpStream::connect(addr).expect("connect").into());
            keep.push(l.accept().expect("accept").0.into());
        }
        keep.push(l.into());
    } else {
        for _ in 0..n / 2 {
            let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
            keep.push(a.into());
            keep.push(b.into());
        }
    }
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn open_dir(dir: impl AsFd, path: &CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn pids(proc_dir: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut dir = RawDir::new(proc_dir, buf);
    while let Some(Ok(e)) = dir.next() {
        let name = e.file_name().to_bytes();
        if name.iter().all(u8::is_ascii_digit) {
            out.push(e.file_name().to_bytes_with_nul().to_vec());
        }
    }
    out
}

/// The floor: for every pid, open `/proc/PID/fd`, getdents, readlinkat each entry,
/// count `socket:` links. Nothing else. `threads` workers share a cursor over pids.
fn bare(threads: usize) -> (u64, u64) {
    let proc_dir = open_dir(rustix::fs::CWD, c"/proc").expect("/proc");
    let mut buf = vec![MaybeUninit::uninit(); 64 * 1024];
    let pids = pids(proc_dir.as_fd(), &mut buf);
    let cursor = AtomicUsize::new(0);
    let work = || {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        let mut link = [0u8; 64];
        let (mut fds, mut sockets) = (0u64, 0u64);
        while let Some(pid) = pids.get(cursor.fetch_add(1, Ordering::Relaxed)) {
            let pid = CStr::from_bytes_with_nul(pid).expect("nul");
            let Ok(pid_dir) = open_dir(&proc_dir, pid) else {
                continue;
            };
            let Ok(fd_dir) = open_dir(&pid_dir, c"fd") else {
                continue;
            };
            let mut dir = RawDir::new(&fd_dir, &mut buf);
            while let Some(Ok(e)) = dir.next() {
                if let Ok(n) = rustix::fs::readlinkat_raw(&fd_dir, e.file_name(), &mut link) {
                    fds += 1;
                    sockets += u64::from(link[..n].starts_with(b"socket:["));
                }
            }
        }
        (fds, sockets)
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = work();
        others
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .fold(mine, |a, b| (a.0 + b.0, a.1 + b.1))
    })
}

/// Wall times, CPU times and the last note of one contender.
type Samples = (Vec<f64>, Vec<f64>, String);

#[derive(Default)]
struct Times(BTreeMap<(usize, String), Samples>);

/// CPU time (user + system) of this process and its waited-for children, in ms,
/// from /proc/self/stat (clock ticks: 10 ms resolution).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_comm = &stat[stat.rfind(')').expect("stat") + 2..];
    // Fields 14-17 (utime stime cutime cstime) are 12-15 after the state field.
    let ticks: u64 = after_comm
        .split(' ')
        .skip(11)
        .take(4)
        .map(|f| f.parse::<u64>().expect("tick count"))
        .sum();
    ticks as f64 * 1000.0 / rustix::param::clock_ticks_per_second() as f64
}

impl Times {
    fn time<T>(&mut self, order: usize, name: &str, f: impl FnOnce() -> (T, String)) -> T {
        let (t, c) = (Instant::now(), cpu_ms());
        let (v, note) = f();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let cpu = cpu_ms() - c;
        let e = self.0.entry((order, name.to_string())).or_default();
        e.0.push(ms);
        e.1.push(cpu);
        e.2 = note;
        v
    }

    fn print(&self) {
        let floor = self
            .0
            .iter()
            .find(|((_, n), _)| n.contains("bare loop, 1 thread"));
        let floor = floor.map(|(_, (v, c, _))| (median(v), median(c)));
        println!(
            "| {:<44} | {:>9} | {:>9} | {:>9} | {:>7} | {:>7} | {:>7} | note",
            "contender", "min ms", "median ms", "max ms", "× bare1", "CPU ms", "× bare1"
        );
        for ((_, name), (v, c, note)) in &self.0 {
            let mut s = v.clone();
            s.sort_by(f64::total_cmp);
            let (wall, cpu) = (median(v), median(c));
            let ratio = |x: f64, f: f64| format!("{:.2}", x / f);
            let (rw, rc) = floor.map_or((String::new(), String::new()), |(fw, fc)| {
                (ratio(wall, fw), ratio(cpu, fc))
            });
            println!(
                "| {name:<44} | {:>9.1} | {wall:>9.1} | {:>9.1} | {rw:>7} | {cpu:>7.0} | {rc:>7} | {note}",
                s[0],
                s[s.len() - 1]
            );
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn rounds(rounds: usize, ss: bool) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut times = Times::default();
    // The first pass over /proc/PID/fd instantiates a dentry and inode per fd; later
    // passes find them cached. Time that first (cold) pass separately.
    let cold = times.time(0, "scan, cold (first pass)", || {
        let s = scan(&ProcScanOptions::default());
        let note = format!("{} socket fds", s.stats.socket_fds);
        (s, note)
    });
    println!(
        "{} processes, {} fds, {} socket fds, {} vanished, missing {:?}",
        cold.procs.len(),
        cold.stats.fds,
        cold.stats.socket_fds,
        cold.stats.vanished,
        cold.missing
    );
    drop(cold);
    // One dump of every TCP socket in this netns: the inodes a caller would join.
    let mut diag = SockDiag::open().expect("open sock_diag");
    let mut dumped = Vec::new();
    let req = DumpRequest {
        family: Family::Both,
        states: ALL_STATES,
        sport: None,
    };
    let t = Instant::now();
    diag.dump(&req, |s| dumped.push(s.inode)).expect("dump");
    println!(
        "sock_diag dump: {} sockets in {:.1} ms (not in the table: same for every contender but bare)",
        dumped.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    for _ in 0..rounds {
        times.time(1, "bare loop, 1 thread", || {
            let (f, s) = bare(1);
            ((), format!("{f} fds, {s} sockets"))
        });
        times.time(2, &format!("bare loop, {threads} threads"), || {
            let (f, s) = bare(threads);
            ((), format!("{f} fds, {s} sockets"))
        });
        for t in [1, threads] {
            let opts = ProcScanOptions {
                threads: t,
                ..ProcScanOptions::default()
            };
            let a0 = ALLOCS.load(Ordering::Relaxed);
            let s = times.time(3 * t, &format!("scan, {t} thread(s)"), || {
                let s = scan(&opts);
                let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
                let note = format!(
                    "{} procs, {} socket fds, {allocs} allocations",
                    s.procs.len(),
                    s.stats.socket_fds
                );
                (s, note)
            });
            times.time(3 * t + 1, &format!("scan, {t} thread(s) + join"), || {
                let t0 = Instant::now();
                let s = scan(&opts);
                let scan_ms = t0.elapsed().as_secs_f64() * 1e3;
                let (found, per_proc) = join(&s, &dumped);
                let note = format!(
                    "join {:.1} ms: {found} of {} dumped found, {} procs hold them",
                    t0.elapsed().as_secs_f64() * 1e3 - scan_ms,
                    dumped.len(),
                    per_proc
                );
                ((), note)
            });
            times.time(3 * t + 2, &format!("join only (scan {t})"), || {
                let (found, _) = join(&s, &dumped);
                ((), format!("{found} found"))
            });
        }
    }
    if ss {
        times.time(20, "ss -tanp > /dev/null (once)", || {
            let st = Command::new("ss")
                .arg("-tanp")
                .stdout(Stdio::null())
                .status()
                .expect("ss");
            ((), format!("{st}"))
        });
    }
    times.print();
}

/// Attributes every dumped inode: per-process socket counts, as a caller would.
fn join(s: &sockmedic_collect::procscan::ProcScan, dumped: &[u32]) -> (u64, usize) {
    let mut per_proc = vec![0u32; s.procs.len()];
    let mut found = 0;
    for &inode in dumped {
        let fds = s.sockets.lookup(inode);
        found += u64::from(!fds.is_empty());
        for f in fds {
            per_proc[f.proc_idx as usize] += 1;
        }
    }
    (found, per_proc.iter().filter(|&&n| n > 0).count())
}

/// PROCS children holding TOTAL socket fds; closed and reaped on drop.
struct Holders(Vec<std::process::Child>);

impl Holders {
    fn spawn(total: usize, procs: usize, kind: &str) -> Holders {
        let exe = std::env::current_exe().expect("own path");
        let t = Instant::now();
        let mut kids = Holders(Vec::new());
        for _ in 0..procs {
            let mut c = Command::new(&exe)
                .args(["hold", kind, &(total / procs).to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn holder");
            let mut line = String::new();
            let out = c.stdout.take().expect("holder stdout");
            kids.0.push(c);
            BufReader::new(out)
                .read_line(&mut line)
                .expect("holder ready");
            assert!(line.starts_with("ready"), "holder failed: {line:?}");
        }
        eprintln!(
            "{total} {kind} socket fds in {procs} processes, set up in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        kids
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for k in &mut self.0 {
            drop(k.stdin.take());
        }
        for k in &mut self.0 {
            let _ = k.wait();
        }
    }
}

/// Every contender on fresh holders (so on cold /proc dentries), ROUNDS times.
fn cold_rounds(total: usize, procs: usize, kind: &str, rounds: usize) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut times = Times::default();
    for _ in 0..rounds {
        for contender in 0..4 {
            let _holders = Holders::spawn(total, procs, kind);
            let mut diag = SockDiag::open().expect("open sock_diag");
            let mut dumped = Vec::new();
            let req = DumpRequest {
                family: Family::Both,
                states: ALL_STATES,
                sport: None,
            };
            diag.dump(&req, |s| dumped.push(s.inode)).expect("dump");
            match contender {
                0 | 1 => {
                    let t = [1, threads][contender];
                    times.time(
                        contender,
                        &format!("cold: bare loop, {t} thread(s)"),
                        || {
                            let (f, s) = bare(t);
                            ((), format!("{f} fds, {s} sockets"))
                        },
                    );
                }
                _ => {
                    let t = [1, threads][contender - 2];
                    let opts = ProcScanOptions {
                        threads: t,
                        ..ProcScanOptions::default()
                    };
                    times.time(
                        contender,
                        &format!("cold: scan, {t} thread(s) + join"),
                        || {
                            let s = scan(&opts);
                            let (found, per_proc) = join(&s, &dumped);
                            let note = format!(
                                "{} socket fds; {found} of {} dumped found, {per_proc} procs",
                                s.stats.socket_fds,
                                dumped.len()
                            );
                            ((), note)
                        },
                    );
                }
            }
        }
    }
    times.print();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!(
            "usage: procscan_bench run TOTAL PROCS ROUNDS tcp|pairs [cold] [ss] | host ROUNDS"
        );
        std::process::exit(2)
    };
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let flag = |f: &str| args.iter().skip(5).any(|a| a == f);
    match args.get(1).map(String::as_str) {
        Some("hold") => hold(&args[2], num(3)),
        Some("host") => rounds(num(2).max(1), false),
        Some("run") => {
            let (total, procs, reps) = (num(2), num(3), num(4).max(1));
            let kind = args.get(5).map_or("tcp", String::as_str);
            if flag("cold") {
                return cold_rounds(total, procs, kind, reps);
            }
            let _holders = Holders::spawn(total, procs, kind);
            rounds(reps, kind == "tcp" && flag("ss"));
        }
        _ => usage(),
    }
}
