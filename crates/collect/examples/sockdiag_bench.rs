//! Times sock_diag dumps: two v2 walks (V4 then V6) against one `Family::Both`
//! compat walk, with and without ESTABLISHED, next to `ss -tan`. Also counts heap
//! allocations per dump (expected: 0).
//!
//! Run as root in a throwaway network namespace, e.g. 100k loopback connections
//! held by 12 child processes (the per-process fd limit is 20000):
//!
//! ```text
//! cargo build --release --example sockdiag_bench
//! ip netns add sdbench && ip netns exec sdbench sh -c '
//!   ip link set lo up; sysctl -qw net.core.somaxconn=65535
//!   sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
//!   target/release/examples/sockdiag_bench run 100000 12 7'
//! ip netns del sdbench
//! ```
//!
//! A new netns shares init_net's ehash (tcp_child_ehash_entries = 0), so every
//! walk also steps over the host's other sockets. For a private table, set
//! `net.ipv4.tcp_child_ehash_entries` inside `sdbench` and run under `unshare -n`.

use sockmedic_collect::sockdiag::{DumpRequest, Family, SockDiag, ALL_STATES};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
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
}
#[global_allocator]
static A: Counting = Counting;

/// Child: holds `n` accepted loopback connections until stdin closes.
fn hold(v6: bool, n: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut r = getrlimit(Resource::Nofile);
    r.current = r.maximum;
    setrlimit(Resource::Nofile, r).expect("raise RLIMIT_NOFILE");
    let l = if v6 {
        TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
    } else {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
    }
    .expect("bind listener");
    let addr = l.local_addr().expect("listener address");
    let mut keep = Vec::with_capacity(2 * n);
    for _ in 0..n {
        keep.push(TcpStream::connect(addr).expect("connect"));
        keep.push(l.accept().expect("accept").0);
    }
    println!("ready {}", addr.port());
    std::io::stdout().flush().expect("stdout");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Runs `f` `reps` times; prints sockets, walks, min/median/max and allocations.
fn time(name: &str, reps: usize, mut f: impl FnMut() -> (u64, u32)) {
    let mut ms = Vec::new();
    let (mut n, mut walks) = (0, 0);
    let a0 = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..reps {
        let t = Instant::now();
        (n, walks) = f();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) / reps as u64;
    ms.sort_by(f64::total_cmp);
    println!(
        "{name:<46} sockets {n:>7} walks {walks}  min {:>6.1} ms  median {:>6.1} ms  max {:>6.1} ms  allocs/dump {allocs}",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1],
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> usize {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: sockdiag_bench run CONNECTIONS PROCS REPS");
            std::process::exit(2)
        })
    };
    if args.get(1).map(String::as_str) == Some("hold") {
        return hold(arg(2) == 1, arg(3));
    }
    let (total, procs, reps) = (arg(2), arg(3), arg(4).max(1));
    let exe = std::env::current_exe().expect("own path");
    let t = Instant::now();
    let mut kids = Vec::new();
    for i in 0..procs {
        let mut c = Command::new(&exe)
            .args(["hold", &(i % 2).to_string(), &(total / procs).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn holder");
        let mut line = String::new();
        let out = c.stdout.take().expect("holder stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("holder ready");
        assert!(line.starts_with("ready"), "holder failed: {line:?}");
        kids.push(c);
    }
    println!(
        "{total} connections (v4 and v6) set up in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut diag = SockDiag::open().expect("open sock_diag");
    let mut run = |family, states| {
        let mut n = 0u64;
        let req = DumpRequest {
            family,
            states,
            sport: None,
        };
        let st = diag.dump(&req, |_| n += 1).expect("dump");
        (n, st.walks)
    };
    let no_est = ALL_STATES & !(1 << 1);
    for (label, states) in [("ALL_STATES", ALL_STATES), ("no ESTABLISHED", no_est)] {
        for _ in 0..2 {
            time(&format!("V4 then V6 (2 walks), {label}"), reps, || {
                let (a, b) = (run(Family::V4, states), run(Family::V6, states));
                (a.0 + b.0, a.1 + b.1)
            });
            time(&format!("Both (compat, 1 walk), {label}"), reps, || {
                run(Family::Both, states)
            });
        }
        time(&format!("V4 only, {label}"), reps, || {
            run(Family::V4, states)
        });
    }
    for cmd in ["ss -tan | wc -l", "ss -tan state listening | wc -l"] {
        let t = Instant::now();
        let out = Command::new("sh")
            .args(["-c", cmd])
            .output()
            .expect("run ss");
        println!(
            "{cmd:<46} {} lines in {:.1} ms",
            String::from_utf8_lossy(&out.stdout).trim(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    for mut k in kids {
        drop(k.stdin.take());
        let _ = k.wait();
    }
}
