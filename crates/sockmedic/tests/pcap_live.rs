//! `sockmedic pcap` on captures the tests make themselves: tcpdump runs in a network
//! namespace of the test's own while an incident of support/incidents.py (or the
//! ordinary traffic of support/pcaptraffic.py) runs, then `sockmedic pcap FILE --json`
//! reads the file, and tshark is the referee:
//!
//! - every counter of the `capture` section EQUALS what tshark counts in the same file
//!   (`tshark -r FILE -Y FILTER`, one filter per counter: see [`FIGURES`]);
//! - the connections and how each ended (closes_completed, resets, syn_unanswered,
//!   closing_at_end, open_at_end) EQUAL what tshark's streams (`tcp.stream`) show,
//!   worked out from tshark's per-packet fields ([`Streams`]), and what the test knows
//!   it did;
//! - `top_stalled` and the findings name what tshark's streams say they should.
//!
//! The captures: FIN-WAIT-1 towards one server whose ACKs are dropped (incident 2),
//! LAST-ACK with the clients' final ACKs dropped (incident 1), SYN-RECV with the final
//! handshake ACKs dropped and the SYN queue full (incident 4), and ordinary traffic
//! (short exchanges over IPv4 and IPv6, a reused 4-tuple, a SO_LINGER 0 reset, a zero
//! window, lost data segments).
//!
//! Where the drop happens matters to a capture: nftables' output hook drops a packet
//! before tcpdump sees it (the capture is what the receiver's side of a lossy path
//! sees), the input hook after (what the sender's side sees). The main tests drop in
//! the output hook. Two more cover what an earlier sockmedic got wrong: a LAST-ACK
//! whose final ACKs are lost AFTER the capture point (the capture sees the close
//! complete, then the FIN sent again), and a FIN that the kernel retransmits together
//! with data still unacknowledged.
//!
//! A last group captures on the underlay of a VXLAN tunnel between two namespaces
//! (IPv4 and IPv6, ports 8472 and 4789): the TCP inside is found and counted as tshark
//! counts it, and the stall is named by its overlay endpoint.
//!
//! Needs root, tcpdump and tshark (scripts/install-deps installs them).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------

/// Root, and the tools: a missing tool is a failure, not a skip (CI installs them
/// with scripts/install-deps).
fn require_tools() {
    require_root();
    for tool in ["tcpdump", "tshark", "nft", "ss", "python3"] {
        let ran = Command::new(tool)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            ran.is_ok(),
            "{tool} is missing: the live capture tests need it (scripts/install-deps installs it)"
        );
    }
}

/// `kill -SIG PID` (a process this test started).
fn signal(pid: u32, sig: &str) {
    run_ok(Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]));
}

/// One line of the namespace's /proc/net/tcp or tcp6 (request sockets included).
#[derive(Clone, Debug)]
struct ProcTcp {
    /// The kernel's state number (2 SYN-SENT, 3 SYN-RECV, 4 FIN-WAIT-1, 9 LAST-ACK...).
    state: u8,
    local: SocketAddr,
    remote: SocketAddr,
    /// `retrnsmt`: retransmissions by the timer since the last progress (SYN-ACKs of a
    /// request socket).
    retransmits: u32,
}

const SYN_SENT: u8 = 0x02;
const SYN_RECV: u8 = 0x03;
const FIN_WAIT_1: u8 = 0x04;
const FIN_WAIT_2: u8 = 0x05;
const TIME_WAIT: u8 = 0x06;
const LAST_ACK: u8 = 0x09;

/// The namespace's /proc/net/tcp and /proc/net/tcp6.
fn proc_tcp(ns: &TestNetns) -> Vec<ProcTcp> {
    // The address as the kernel holds it (network order), printed as native u32s.
    let ep = |s: &str| {
        let (ip, port) = s.split_once(':').unwrap();
        let bytes: Vec<u8> = (0..ip.len())
            .step_by(8)
            .flat_map(|i| {
                u32::from_str_radix(&ip[i..i + 8], 16)
                    .unwrap()
                    .to_le_bytes()
            })
            .collect();
        let ip = match bytes.len() {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap())),
            _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap())),
        };
        SocketAddr::new(ip, u16::from_str_radix(port, 16).unwrap())
    };
    let text = ns.proc_net("tcp") + &ns.proc_net("tcp6");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("sl"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            ProcTcp {
                state: u8::from_str_radix(f[3], 16).unwrap(),
                local: ep(f[1]),
                remote: ep(f[2]),
                retransmits: u32::from_str_radix(f[6], 16).unwrap(),
            }
        })
        .collect()
}

/// Waits (20 s at most) until exactly `n` sockets in `state` match `pick`, each
/// having retransmitted its FIN at least `times` times; returns them.
fn wait_retransmitting(
    ns: &TestNetns,
    state: u8,
    n: usize,
    times: u32,
    pick: impl Fn(&ProcTcp) -> bool,
) -> Vec<ProcTcp> {
    wait_for(
        &format!("{n} sockets in state {state} retransmitting their FIN {times} times"),
        20,
        || {
            let rows = in_state(&proc_tcp(ns), state, &pick);
            let least = rows.iter().map(|r| r.retransmits).min();
            let seen = (rows.len(), least);
            (
                (rows.len() == n && least >= Some(times)).then_some(rows),
                seen,
            )
        },
    )
}

fn in_state(rows: &[ProcTcp], state: u8, f: impl Fn(&ProcTcp) -> bool) -> Vec<ProcTcp> {
    rows.iter()
        .filter(|r| r.state == state && f(r))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------
// The capture: tcpdump inside the namespace
// ---------------------------------------------------------------------------------

/// The capture file, under the target's temporary directory. Removed when the test
/// passes (unless SOCKMEDIC_KEEP_CAPTURES is set); kept, and named on stderr, when it
/// fails, to look at.
struct CaptureFile {
    path: PathBuf,
}

impl CaptureFile {
    fn new(test: &str) -> CaptureFile {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pcap-live");
        std::fs::create_dir_all(&dir).unwrap();
        CaptureFile {
            path: dir.join(format!("{}.pcap", unique_name(test))),
        }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for CaptureFile {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SOCKMEDIC_KEEP_CAPTURES").is_some() {
            eprintln!("the capture is kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// tcpdump's closing statistics.
#[derive(Debug, Clone, Copy)]
struct TcpdumpStats {
    captured: u64,
    received: u64,
    dropped: u64,
    /// Captured on loopback, where the end marker is the only packet not TCP (on a
    /// veth there are ARP, neighbour discovery, the marker's ICMP error...).
    on_loopback: bool,
}

/// `tcpdump -i IFACE -w FILE` inside the namespace, started and waited for until it
/// says it is listening. Killed on drop if the test did not stop it.
struct Tcpdump {
    child: Child,
    file: PathBuf,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// Where the end marker goes: the namespace's own 127.0.0.1 on loopback, else an
    /// address beyond the interface.
    marker_to: Option<IpAddr>,
}

impl Tcpdump {
    /// On the namespace's loopback.
    fn start(ns: &TestNetns, file: &CaptureFile) -> Tcpdump {
        Tcpdump::start_on(ns, "lo", None, file)
    }

    /// On `iface`; `marker_to` is an address reached through it (the end marker is
    /// sent there).
    fn start_on(
        ns: &TestNetns,
        iface: &str,
        marker_to: Option<IpAddr>,
        file: &CaptureFile,
    ) -> Tcpdump {
        // -U: each packet written as it comes; -B: a 32 MiB ring, so that the kernel
        // drops nothing. Not --immediate-mode: libpcap then uses TPACKET_V2, whose ring
        // has fixed slots of the snapshot length (256 KiB): 128 packets, overrun by a
        // burst. Packets then reach tcpdump within its 1 s block timeout at worst,
        // which `stop` waits for with an end marker.
        let mut cmd = ns.cmd(&[
            "tcpdump",
            "-i",
            iface,
            "-n",
            "-U",
            "-B",
            "32768",
            "-w",
            file.arg(),
        ]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tcpdump");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut t = Tcpdump {
            child,
            file: file.path.clone(),
            stderr: rx,
            seen: Vec::new(),
            marker_to,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match t.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let listening = line.contains("listening on");
                    t.seen.push(line);
                    if listening {
                        return t;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("tcpdump exited before listening:\n{}", t.seen.join("\n"))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => assert!(
                    Instant::now() < deadline,
                    "tcpdump did not say it was listening within 20 s:\n{}",
                    t.seen.join("\n")
                ),
            }
        }
    }

    /// Ends the capture: sends an end marker (one UDP datagram: from 127.0.0.1 to
    /// itself on loopback, the capture's only packet that is not TCP; else to
    /// `marker_to`'s discard port), waits until tcpdump has
    /// written it (so every packet sent before it is in the file), stops tcpdump with
    /// SIGINT, waits for it, and checks that the kernel dropped nothing.
    fn stop(&mut self, ns: &TestNetns) -> TcpdumpStats {
        let marker = unique_name("sockmedic-pcap-live-end");
        let send = match self.marker_to {
            None => "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                     s.bind(('127.0.0.1', 0))\n\
                     s.sendto(MARKER, s.getsockname())\n"
                .to_string(),
            Some(to) => {
                let family = if to.is_ipv6() { "AF_INET6" } else { "AF_INET" };
                format!(
                    "s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
                     s.sendto(MARKER, ('{to}', 9))\n"
                )
            }
        };
        ns.exec_ok(&[
            "python3",
            "-c",
            &format!("import socket\nMARKER = b'{marker}'\n{send}"),
        ]);
        let file = self.file.clone();
        wait_for("tcpdump to write the end marker", 20, || {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let found = bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
            (found.then_some(()), bytes.len())
        });
        signal(self.child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "tcpdump did not exit on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The rest of stderr, up to its end.
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        let all = self.seen.join("\n");
        assert!(status.success(), "tcpdump: {status}\n{all}");
        let stat = |what: &str| -> u64 {
            self.seen
                .iter()
                .find_map(|l| l.strip_suffix(what)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no '{what}' in tcpdump's output:\n{all}"))
        };
        let stats = TcpdumpStats {
            captured: stat("packets captured"),
            received: stat("packets received by filter"),
            dropped: stat("packets dropped by kernel"),
            on_loopback: self.marker_to.is_none(),
        };
        assert_eq!(
            stats.dropped, 0,
            "tcpdump: the kernel dropped packets:\n{all}"
        );
        stats
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------
// The referee: tshark
// ---------------------------------------------------------------------------------

fn tshark(file: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("tshark");
    // VXLAN on Linux's default port too, as sockmedic decodes it (tshark knows 4789).
    cmd.args(["-n", "-d", "udp.port==8472,vxlan"])
        .args(["-o", "tcp.relative_sequence_numbers:TRUE", "-r"])
        .arg(file)
        .args(args);
    run_ok(&mut cmd)
}

/// `tshark -r FILE -Y FILTER | wc -l`: the packets that FILTER matches.
fn tshark_count(file: &Path, filter: &str) -> u64 {
    tshark(file, &["-Y", filter, "-T", "fields", "-e", "frame.number"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

/// The TCP streams (tshark's `tcp.stream`) with a packet FILTER matches.
fn tshark_streams(file: &Path, filter: &str) -> u64 {
    let out = tshark(file, &["-Y", filter, "-T", "fields", "-e", "tcp.stream"]);
    let streams: std::collections::BTreeSet<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    streams.len() as u64
}

/// The lines of `tshark -q -z conv,tcp`: one per TCP conversation.
fn tshark_conversations(file: &Path) -> u64 {
    tshark(file, &["-q", "-z", "conv,tcp"])
        .lines()
        .filter(|l| l.contains("<->"))
        .count() as u64
}

/// A data retransmission as sockmedic counts it: a segment with a payload whose whole
/// range was sent before (its end is not past the highest sequence number sent), FIN
/// and RST not set (crates/model/src/snapshot.rs, `Capture::data_retransmissions`).
///
/// tshark splits those in three, by heuristics: `tcp.analysis.retransmission` (which
/// fast retransmissions also carry), `tcp.analysis.spurious_retransmission` (the data
/// was already acknowledged: sent again because the ACK was lost after the capture
/// point), and `tcp.analysis.out_of_order` (a segment below the highest sequence
/// number that comes sooner after it than the connection's first RTT, which on
/// loopback is some microseconds: a retransmission prompted by SACKs can come that
/// fast, depending on the machine's load). `tcp.analysis.retransmission` alone would
/// miss the last two; all three together count what sockmedic counts.
const DATA_RETRANSMISSION: &str = "tcp.len > 0 && tcp.flags.fin == 0 && tcp.flags.reset == 0 \
     && (tcp.analysis.retransmission || tcp.analysis.spurious_retransmission \
     || tcp.analysis.out_of_order)";

/// The `capture` counters and the tshark filter that counts the same packets.
const FIGURES: [(&str, &str); 10] = [
    ("packets", "frame"),
    ("tcp_packets", "tcp"),
    ("syn_packets", "tcp.flags.syn == 1"),
    ("fin_packets", "tcp.flags.fin == 1"),
    ("rst_packets", "tcp.flags.reset == 1"),
    (
        "fin_retransmissions",
        "tcp.flags.fin == 1 && tcp.analysis.retransmission",
    ),
    (
        "syn_retransmissions",
        "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.analysis.retransmission",
    ),
    (
        "syn_ack_retransmissions",
        "tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.analysis.retransmission",
    ),
    ("data_retransmissions", DATA_RETRANSMISSION),
    ("zero_windows", "tcp.analysis.zero_window"),
];

/// How a connection ended, as far as the capture shows (the `capture` section's
/// closes_completed, resets, closing_at_end, open_at_end, syn_unanswered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Both FINs sent, each acknowledged by the other side, before any RST.
    Closed,
    /// A RST before the close completed.
    Reset,
    /// A FIN seen, the close not completed when the capture ended.
    Closing,
    /// A SYN that got neither SYN-ACK, nor FIN, nor RST.
    SynUnanswered,
    /// None of the above.
    Open,
}

/// One side's FIN: where its sequence space ends (seq + len + 1), when it was first
/// sent, when the other side's ACK first covered it.
#[derive(Clone, Copy, Debug)]
struct Fin {
    end: u32,
    ts: i64,
    acked: Option<i64>,
}

/// One tshark stream (`tcp.stream`: tshark starts a new one on a SYN that reuses the
/// 4-tuple of a finished connection).
#[derive(Clone, Debug)]
struct Stream {
    ends: [SocketAddr; 2],
    syn: bool,
    syn_ack: bool,
    /// The SYN's receiver.
    server: Option<SocketAddr>,
    fins: [Option<Fin>; 2],
    /// Packets tshark flags `tcp.flags.fin == 1 && tcp.analysis.retransmission`.
    fin_retransmissions: u64,
    /// Closed or Reset, once the close completed or a RST came.
    finished: Option<Outcome>,
    /// The last packet's time.
    last_ts: i64,
}

impl Stream {
    fn outcome(&self) -> Outcome {
        if let Some(o) = self.finished {
            o
        } else if self.fins.iter().any(Option::is_some) {
            Outcome::Closing
        } else if self.syn && !self.syn_ack {
            Outcome::SynUnanswered
        } else {
            Outcome::Open
        }
    }

    /// The server: the SYN's receiver, else (no handshake seen) the lower port.
    fn server(&self) -> SocketAddr {
        self.server
            .unwrap_or(if self.ends[0].port() < self.ends[1].port() {
                self.ends[0]
            } else {
                self.ends[1]
            })
    }

    fn client(&self) -> SocketAddr {
        let s = self.server();
        if self.ends[0] == s {
            self.ends[1]
        } else {
            self.ends[0]
        }
    }

    /// The longest wait from a FIN to its ACK; a FIN never acknowledged waits until
    /// the connection's last packet.
    fn max_fin_wait_ns(&self) -> i64 {
        self.fins
            .iter()
            .flatten()
            .map(|f| f.acked.unwrap_or(self.last_ts) - f.ts)
            .max()
            .unwrap_or(0)
    }

    /// A FIN retransmitted, or one never acknowledged (a reset ends that wait).
    fn stalled(&self) -> bool {
        self.fin_retransmissions > 0 || self.outcome() == Outcome::Closing
    }
}

/// `a <= b` in sequence space.
fn seq_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

/// "1795337342.204072000" → nanoseconds.
fn epoch_ns(s: &str) -> i64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    secs.parse::<i64>().unwrap() * 1_000_000_000 + frac[..9].parse::<i64>().unwrap()
}

/// The per-packet fields [`Streams`] reads, in this order.
const STREAM_FIELDS: [&str; 14] = [
    "frame.time_epoch",
    "tcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.flags",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.len",
    // Present ("1") when tshark flags the packet a retransmission.
    "tcp.analysis.retransmission",
    // "eth:ethertype:ip:udp:vxlan:eth:ethertype:ipv6:tcp".
    "frame.protocols",
];

/// Per-stream truth from tshark's per-packet fields.
struct Streams {
    streams: BTreeMap<u64, Stream>,
}

impl Streams {
    fn read(file: &Path) -> Streams {
        let mut args = vec!["-Y", "tcp", "-T", "fields", "-E", "separator=/t"];
        // The last occurrence: the IP header right before the TCP one (the inner one in
        // a tunnel, the quoted one in an ICMP error, which `-Y tcp` matches too).
        args.extend(["-E", "occurrence=l"]);
        for field in STREAM_FIELDS {
            args.extend(["-e", field]);
        }
        let text = tshark(file, &args);
        let mut streams: BTreeMap<u64, Stream> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), STREAM_FIELDS.len(), "tshark fields: {line:?}");
            let ts = epoch_ns(f[0]);
            let id: u64 = f[1].parse().unwrap();
            // Which family the innermost IP header is: the last of ip / ipv6 in the
            // protocol stack (IPv6 in IPv4 has both fields filled).
            let inner_v6 =
                f[13].split(':').rev().find(|p| *p == "ip" || *p == "ipv6") == Some("ipv6");
            let addr =
                |v4: &str, v6: &str| -> IpAddr { if inner_v6 { v6 } else { v4 }.parse().unwrap() };
            let src = SocketAddr::new(addr(f[2], f[3]), f[4].parse().unwrap());
            let dst = SocketAddr::new(addr(f[5], f[6]), f[7].parse().unwrap());
            let flags = u16::from_str_radix(f[8].trim_start_matches("0x"), 16).unwrap();
            let (fin, syn, rst, ack) = (
                flags & 0x01 != 0,
                flags & 0x02 != 0,
                flags & 0x04 != 0,
                flags & 0x10 != 0,
            );
            let seq: u32 = f[9].parse().unwrap();
            let ackno: u32 = f[10].parse().unwrap();
            let len: u32 = f[11].parse().unwrap();
            let retransmission = !f[12].is_empty();

            let s = streams.entry(id).or_insert_with(|| Stream {
                ends: [src, dst],
                syn: false,
                syn_ack: false,
                server: None,
                fins: [None, None],
                fin_retransmissions: 0,
                finished: None,
                last_ts: ts,
            });
            let from = usize::from(src != s.ends[0]);
            assert_eq!(s.ends[from], src, "stream {id}: {line}");
            s.last_ts = ts;
            if syn && !ack {
                s.syn = true;
                s.server = Some(dst);
            } else if syn {
                s.syn_ack = true;
                s.server.get_or_insert(src);
            }
            if fin {
                if retransmission {
                    s.fin_retransmissions += 1;
                }
                let end = seq.wrapping_add(len).wrapping_add(1);
                match &mut s.fins[from] {
                    // Sent again after an ACK covered it: that ACK did not reach the
                    // sender (lost after the capture point), the wait goes on.
                    Some(f) if f.end == end => {
                        if f.acked.is_some() {
                            f.acked = None;
                            if s.finished == Some(Outcome::Closed) {
                                s.finished = None;
                            }
                        }
                    }
                    other => {
                        *other = Some(Fin {
                            end,
                            ts,
                            acked: None,
                        })
                    }
                }
            }
            if ack {
                if let Some(f) = &mut s.fins[1 - from] {
                    if f.acked.is_none() && seq_le(f.end, ackno) {
                        f.acked = Some(ts);
                    }
                }
            }
            if s.finished.is_none() {
                if s.fins.iter().all(|f| f.is_some_and(|f| f.acked.is_some())) {
                    s.finished = Some(Outcome::Closed);
                } else if rst {
                    s.finished = Some(Outcome::Reset);
                }
            }
        }
        Streams { streams }
    }

    fn count(&self, o: Outcome) -> u64 {
        self.streams.values().filter(|s| s.outcome() == o).count() as u64
    }

    /// Per server endpoint: (connections, FIN retransmissions, stalled connections,
    /// longest FIN wait in ns).
    fn by_server(&self) -> BTreeMap<SocketAddr, (u64, u64, u64, i64)> {
        let mut m: BTreeMap<SocketAddr, (u64, u64, u64, i64)> = BTreeMap::new();
        for s in self.streams.values() {
            let e = m.entry(s.server()).or_default();
            e.0 += 1;
            e.1 += s.fin_retransmissions;
            e.2 += u64::from(s.stalled());
            e.3 = e.3.max(s.max_fin_wait_ns());
        }
        m
    }

    /// Streams whose client is `client` (the same 4-tuple used again).
    fn with_client(&self, client: SocketAddr) -> u64 {
        self.streams
            .values()
            .filter(|s| s.client() == client)
            .count() as u64
    }
}

// ---------------------------------------------------------------------------------
// sockmedic against the referee
// ---------------------------------------------------------------------------------

/// `sockmedic pcap FILE --json`: the report, after checking that it ran and that its
/// exit code is its worst finding's.
fn pcap_report(file: &CaptureFile) -> (Value, i32) {
    let run = sockmedic(&["pcap", file.arg(), "--json"]);
    run.assert_no_panic();
    let code = run.output.status.code().unwrap_or(-1);
    assert!(
        (0..=2).contains(&code),
        "sockmedic pcap could not run\n{}",
        run.describe()
    );
    let report = run
        .json
        .clone()
        .unwrap_or_else(|| panic!("sockmedic pcap printed no JSON\n{}", run.describe()));
    assert_eq!(report["schema"], SCHEMA);
    assert_eq!(report["source"]["kind"], "capture");
    assert_eq!(
        code,
        exit_for_report(&report),
        "exit code = worst finding's\n{}",
        findings_summary(&report)
    );
    (report, code)
}

/// What the referee says about one capture.
struct Truth {
    counts: BTreeMap<&'static str, u64>,
    streams: Streams,
}

/// Compares the whole `capture` section with tshark's view of the same file; prints
/// the comparison (visible with --nocapture) and panics listing every difference.
fn assert_capture_is_tsharks(
    name: &str,
    file: &CaptureFile,
    report: &Value,
    dump: TcpdumpStats,
) -> Truth {
    let cap = &report["capture"];
    let counts: BTreeMap<&'static str, u64> = FIGURES
        .iter()
        .map(|(k, filter)| (*k, tshark_count(&file.path, filter)))
        .collect();
    let streams = Streams::read(&file.path);
    // (figure, sockmedic's value (None: missing), tshark's, whether within tolerance)
    let mut rows: Vec<(String, Option<u64>, u64, bool)> = Vec::new();
    let mut row = |k: String, got: Option<u64>, want: u64, tolerance: u64| {
        let ok = got.is_some_and(|g| g.abs_diff(want) <= tolerance);
        rows.push((k, got, want, ok));
    };
    for (k, _) in FIGURES {
        row(k.into(), cap[k].as_u64(), counts[k], 0);
    }
    let n = streams.streams.len() as u64;
    row("connections".into(), cap["connections"].as_u64(), n, 0);
    // tshark's conversation table splits a reused 4-tuple by stream as well.
    row(
        "connections (tshark -z conv,tcp)".into(),
        cap["connections"].as_u64(),
        tshark_conversations(&file.path),
        0,
    );
    for (k, o) in [
        ("closes_completed", Outcome::Closed),
        ("resets", Outcome::Reset),
        ("closing_at_end", Outcome::Closing),
        ("syn_unanswered", Outcome::SynUnanswered),
        ("open_at_end", Outcome::Open),
    ] {
        row(k.into(), cap[k].as_u64(), streams.count(o), 0);
    }
    // top_stalled: the stalled server endpoints (at most --top, 10).
    let by_server = streams.by_server();
    let mut want: Vec<_> = by_server.iter().filter(|(_, a)| a.2 > 0).collect();
    want.sort_by(|x, y| (y.1 .1, y.1 .3, x.0).cmp(&(x.1 .1, x.1 .3, y.0)));
    want.truncate(10);
    let got = cap["top_stalled"].as_array().expect("capture.top_stalled");
    row(
        "top_stalled.len".into(),
        Some(got.len() as u64),
        want.len() as u64,
        0,
    );
    for (ep, (conns, fin_rexmit, _, wait_ns)) in &want {
        let e = got
            .iter()
            .find(|g| g["endpoint"] == ep.to_string().as_str());
        let field = |k: &str| e.and_then(|e| e[k].as_u64());
        row(
            format!("top_stalled[{ep}].connections"),
            field("connections"),
            *conns,
            0,
        );
        row(
            format!("top_stalled[{ep}].fin_retransmissions"),
            field("fin_retransmissions"),
            *fin_rexmit,
            0,
        );
        // Milliseconds, truncated: one either way.
        row(
            format!("top_stalled[{ep}].max_fin_wait_ms"),
            field("max_fin_wait_ms"),
            (*wait_ns / 1_000_000) as u64,
            1,
        );
    }
    let mut table = format!(
        "{name}: {} ({} packets; tcpdump: {} captured, {} received by filter, {} dropped by kernel)\n\
         {:<50} {:>10} {:>10}\n",
        file.path.display(),
        counts["packets"],
        dump.captured,
        dump.received,
        dump.dropped,
        "figure",
        "sockmedic",
        "tshark"
    );
    let mut diffs = Vec::new();
    for (k, got, want, ok) in &rows {
        let got = got.map_or("missing".to_string(), |g| g.to_string());
        let mark = if *ok { "" } else { "  <<<" };
        let _ = writeln!(table, "{k:<50} {got:>10} {want:>10}{mark}");
        if !ok {
            diffs.push(k.clone());
        }
    }
    // How tshark's three flags share the data retransmissions (information only).
    let _ = writeln!(
        table,
        "  (tshark's data retransmissions: {} retransmission, {} spurious, {} out-of-order)",
        tshark_count(&file.path, "tcp.len > 0 && tcp.analysis.retransmission"),
        tshark_count(
            &file.path,
            "tcp.len > 0 && tcp.analysis.spurious_retransmission"
        ),
        tshark_count(&file.path, "tcp.len > 0 && tcp.analysis.out_of_order"),
    );
    eprintln!("{table}");
    assert!(
        diffs.is_empty(),
        "sockmedic and tshark differ on {diffs:?}\n{table}\nfindings:\n{}",
        findings_summary(report)
    );
    // The file is what tcpdump wrote: every packet it captured.
    assert_eq!(
        counts["packets"], dump.captured,
        "tcpdump's count vs the file's"
    );
    // On loopback, the end marker is the one packet that is not TCP.
    if dump.on_loopback {
        assert_eq!(
            counts["packets"] - counts["tcp_packets"],
            1,
            "only the end marker is not TCP"
        );
    }
    Truth { counts, streams }
}

/// The findings with `code`.
fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("report.findings")
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

/// Whose sockets wait, as a teardown-stall's subject says: `server`'s clients (it is
/// `remote`: incident 2's FIN-WAIT-1 towards it), or `server` itself (it is `local`:
/// incident 1's LAST-ACK on a listener).
#[derive(Debug, Clone, Copy)]
enum Waiting {
    Clients(&'static str),
    Server(&'static str),
}

/// The one teardown-stall finding about `server`, placed and in the state `waiting`
/// says, with the stalled connections and FIN retransmissions tshark's streams show;
/// its severity is the one its longest FIN wait calls for.
fn assert_teardown_stall(
    report: &Value,
    truth: &Truth,
    server: SocketAddr,
    waiting: Waiting,
) -> Value {
    let all = findings(report, "teardown-stall");
    assert_eq!(
        all.len(),
        1,
        "one teardown-stall finding\n{}",
        findings_summary(report)
    );
    let f = all[0].clone();
    let pretty = serde_json::to_string_pretty(&f).unwrap();
    let (_, fin_rexmit, stalled, wait_ns) = truth.streams.by_server()[&server];
    let (here, empty, state) = match waiting {
        Waiting::Clients(state) => ("remote", "local", state),
        Waiting::Server(state) => ("local", "remote", state),
    };
    assert_eq!(f["subject"][here], server.to_string().as_str(), "{pretty}");
    assert!(f["subject"][empty].is_null(), "{pretty}");
    assert_eq!(f["subject"]["state"], state, "{pretty}");
    assert_eq!(f["subject"]["count"].as_u64(), Some(stalled), "{pretty}");
    let title = f["title"].as_str().unwrap();
    assert!(
        title.contains(&format!("{fin_rexmit} FIN retransmissions")),
        "the title gives the FIN retransmissions ({fin_rexmit}): {pretty}"
    );
    let severity = if wait_ns >= 10_000_000_000 {
        "critical"
    } else {
        "warning"
    };
    assert_eq!(
        f["severity"], severity,
        "longest FIN wait {wait_ns} ns: {pretty}"
    );
    assert!(f["evidence"].as_array().is_some_and(|e| !e.is_empty()));
    f
}

/// The port of `of(row)` for each row, lowest first.
fn ports(rows: &[ProcTcp], of: impl Fn(&ProcTcp) -> SocketAddr) -> Vec<u16> {
    let mut p: Vec<u16> = rows.iter().map(|r| of(r).port()).collect();
    p.sort();
    p
}

fn port_set(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------
// 1. FIN-WAIT-1 towards one server whose ACKs are dropped (incident 2)
// ---------------------------------------------------------------------------------

/// 40 clients close towards a server whose packets are dropped before the capture
/// (output hook): their FINs are retransmitted (RTO 0.2, 0.4, 0.8 s...). After three
/// retransmissions each, the drop is lifted for half of them: their next FIN
/// retransmission is acknowledged; then the server closes (its process exits): their
/// closes complete, while the other half's stay in FIN-WAIT-1 (the server's FINs
/// dropped too) until the capture ends.
#[test]
fn fin_wait_1_capture_is_tsharks_and_a_teardown_stall_towards_the_server() {
    const N: usize = 40;
    require_tools();
    let mut ns = TestNetns::new("pcap-fin-wait-1");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    let file = CaptureFile::new("fin-wait-1");
    let mut dump = Tcpdump::start(&ns, &file);
    let server = lo4(8002);
    let (pid, _) = teardown_incident(&mut ns, "fin-wait-1", 8002, N, &["--drop-at", "output"]);
    let fw1 = wait_retransmitting(&ns, FIN_WAIT_1, N, 3, |r| r.remote == server);
    let clients = ports(&fw1, |r| r.local);
    let (kept, lifted) = clients.split_at(N / 2);
    // One transaction: the drop stays for `kept` only.
    ns.nft(&format!(
        "add table inet smpcaplive\n\
         add chain inet smpcaplive output {{ type filter hook output priority 0; }}\n\
         add rule inet smpcaplive output tcp sport 8002 tcp dport {{ {} }} drop\n\
         delete table inet smincident\n",
        port_set(kept)
    ));
    wait_for(
        "the lifted clients' FINs acknowledged (FIN-WAIT-2)",
        20,
        || {
            let rows = proc_tcp(&ns);
            let fw2 = ports(&in_state(&rows, FIN_WAIT_2, |r| r.remote == server), |r| {
                r.local
            });
            let fw1 = ports(&in_state(&rows, FIN_WAIT_1, |r| r.remote == server), |r| {
                r.local
            });
            (
                (fw2 == lifted && fw1 == kept).then_some(()),
                (fw1.len(), fw2.len()),
            )
        },
    );
    // The server closes every socket: the lifted closes complete (the clients go to
    // TIME-WAIT), the kept ones do not (the server's FINs are dropped: LAST-ACK).
    signal(pid, "TERM");
    wait_for("the lifted closes complete", 20, || {
        let rows = proc_tcp(&ns);
        let tw = ports(&in_state(&rows, TIME_WAIT, |r| r.remote == server), |r| {
            r.local
        });
        let la = ports(&in_state(&rows, LAST_ACK, |r| r.local == server), |r| {
            r.remote
        });
        (
            (tw == lifted && la == kept).then_some(()),
            (tw.len(), la.len()),
        )
    });
    let stats = dump.stop(&ns);

    let (report, code) = pcap_report(&file);
    let truth = assert_capture_is_tsharks("FIN-WAIT-1", &file, &report, stats);
    let cap = &report["capture"];
    // What the test did.
    assert_eq!(cap["connections"], N as u64);
    assert_eq!(cap["closes_completed"], lifted.len() as u64);
    assert_eq!(cap["closing_at_end"], kept.len() as u64);
    assert!(
        truth.counts["fin_retransmissions"] >= 3 * N as u64,
        "{:?}",
        truth.counts
    );
    // Every connection stalled: all retransmitted their FIN.
    let f = assert_teardown_stall(&report, &truth, server, Waiting::Clients("FIN-WAIT-1"));
    assert_eq!(f["subject"]["count"], N as u64);
    assert_eq!(cap["top_stalled"][0]["endpoint"], "127.0.0.1:8002");
    assert_eq!(
        cap["top_stalled"][0]["fin_retransmissions"],
        truth.counts["fin_retransmissions"]
    );
    assert_eq!(code, if f["severity"] == "critical" { 2 } else { 1 });
    assert!(findings(&report, "syn-unanswered").is_empty());
    assert!(findings(&report, "reset-storm").is_empty());
}

// ---------------------------------------------------------------------------------
// 2. LAST-ACK with the final ACK dropped (incident 1)
// ---------------------------------------------------------------------------------

/// 40 clients close; the server reads EOF, then every packet towards it is dropped
/// before the capture (output hook) and it closes: its FINs are retransmitted in
/// LAST-ACK. After three retransmissions each, the drop is lifted for half of the
/// clients: the server's next FIN retransmission to them is acknowledged.
#[test]
fn last_ack_capture_is_tsharks_and_a_teardown_stall_of_the_listener() {
    const N: usize = 40;
    require_tools();
    let mut ns = TestNetns::new("pcap-last-ack");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    let file = CaptureFile::new("last-ack");
    let mut dump = Tcpdump::start(&ns, &file);
    let listener = lo4(8001);
    teardown_incident(&mut ns, "last-ack", 8001, N, &["--drop-at", "output"]);
    let la = wait_retransmitting(&ns, LAST_ACK, N, 3, |r| r.local == listener);
    let clients = ports(&la, |r| r.remote);
    let (kept, lifted) = clients.split_at(N / 2);
    ns.nft(&format!(
        "add table inet smpcaplive\n\
         add chain inet smpcaplive output {{ type filter hook output priority 0; }}\n\
         add rule inet smpcaplive output tcp dport 8001 tcp sport {{ {} }} drop\n\
         delete table inet smincident\n",
        port_set(kept)
    ));
    wait_for(
        "the lifted closes complete (LAST-ACK left: the kept ones)",
        20,
        || {
            let la = ports(
                &in_state(&proc_tcp(&ns), LAST_ACK, |r| r.local == listener),
                |r| r.remote,
            );
            ((la == kept).then_some(()), la.len())
        },
    );
    let stats = dump.stop(&ns);

    let (report, code) = pcap_report(&file);
    let truth = assert_capture_is_tsharks("LAST-ACK", &file, &report, stats);
    let cap = &report["capture"];
    assert_eq!(cap["connections"], N as u64);
    assert_eq!(cap["closes_completed"], lifted.len() as u64);
    assert_eq!(cap["closing_at_end"], kept.len() as u64);
    assert!(truth.counts["fin_retransmissions"] >= 3 * N as u64);
    // The listener's own FINs go unacknowledged: its sockets wait in LAST-ACK, and the
    // finding names it as `local`, as `check` does.
    let f = assert_teardown_stall(&report, &truth, listener, Waiting::Server("LAST-ACK"));
    assert_eq!(f["subject"]["count"], N as u64);
    assert_eq!(code, if f["severity"] == "critical" { 2 } else { 1 });
}

// ---------------------------------------------------------------------------------
// 3. SYN-RECV with the final handshake ACK dropped, the SYN queue full (incident 4)
// ---------------------------------------------------------------------------------

/// A listener with backlog 8 and no SYN cookies; the clients' final handshake ACKs are
/// dropped before the capture, so 8 requests wait in SYN-RECV and the server
/// retransmits their SYN-ACKs. Then 4 more clients: the SYN queue is full, their SYNs
/// are dropped (ListenDrops) and they retransmit them, unanswered.
#[test]
fn syn_recv_capture_is_tsharks_and_unanswered_syns_are_a_finding() {
    const BACKLOG: usize = 8;
    const MORE: usize = 4;
    require_tools();
    let mut ns = TestNetns::new("pcap-syn-recv");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_syncookies", "0");
    ns.set_sysctl("net.ipv4.tcp_synack_retries", "10");
    let file = CaptureFile::new("syn-recv");
    let mut dump = Tcpdump::start(&ns, &file);
    let listener = lo4(8003);
    incident(
        &mut ns,
        &[
            "syn-recv",
            "--port",
            "8003",
            "--count",
            &BACKLOG.to_string(),
            "--backlog",
            &BACKLOG.to_string(),
            "--drop-at",
            "output",
        ],
    );
    incident(
        &mut ns,
        &[
            "flood",
            "--port",
            "8003",
            "--every",
            "0.05",
            "--max",
            &MORE.to_string(),
        ],
    );
    // Every client made; each SYN-ACK and each unanswered SYN retransmitted once.
    let (syn_recv, syn_sent) = wait_for("SYN-ACKs and unanswered SYNs retransmitted", 20, || {
        let rows = proc_tcp(&ns);
        let sr = in_state(&rows, SYN_RECV, |r| r.local == listener);
        let ss = in_state(&rows, SYN_SENT, |r| r.remote == listener);
        let done = sr.len() + ss.len() == BACKLOG + MORE
            && !ss.is_empty()
            && sr.iter().chain(&ss).all(|r| r.retransmits >= 1);
        let seen = (
            sr.iter().map(|r| r.retransmits).collect::<Vec<_>>(),
            ss.iter().map(|r| r.retransmits).collect::<Vec<_>>(),
        );
        (done.then_some((sr.len() as u64, ss.len() as u64)), seen)
    });
    let stats = dump.stop(&ns);

    let (report, code) = pcap_report(&file);
    let truth = assert_capture_is_tsharks("SYN-RECV", &file, &report, stats);
    let cap = &report["capture"];
    assert_eq!(cap["connections"], (BACKLOG + MORE) as u64);
    assert_eq!(cap["syn_unanswered"], syn_sent);
    assert_eq!(cap["open_at_end"], syn_recv);
    assert!(truth.counts["syn_ack_retransmissions"] >= syn_recv);
    assert!(truth.counts["syn_retransmissions"] >= syn_sent);
    assert_eq!(truth.counts["fin_packets"], 0);
    // One finding about the listener: its handshakes do not complete. The SYN-ACKs
    // sent again (the requests waiting in SYN-RECV) outnumber the unanswered SYNs, so
    // that is the subject's state; the evidence gives both.
    let syn_ack_again = tshark_streams(
        &file.path,
        "tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.analysis.retransmission",
    );
    assert!(syn_ack_again > syn_sent, "{syn_ack_again} vs {syn_sent}");
    let f = findings(&report, "syn-unanswered");
    assert_eq!(f.len(), 1, "{}", findings_summary(&report));
    let f = f[0];
    assert_eq!(f["subject"]["local"], "127.0.0.1:8003", "{f}");
    assert_eq!(f["subject"]["state"], "SYN-RECV", "{f}");
    assert_eq!(f["subject"]["count"].as_u64(), Some(syn_ack_again), "{f}");
    let evidence = f["evidence"].to_string();
    assert!(
        evidence.contains(&format!("{syn_sent} of {} connections", BACKLOG + MORE)),
        "{f}"
    );
    assert_eq!(f["severity"], "warning");
    assert!(findings(&report, "teardown-stall").is_empty());
    assert!(cap["top_stalled"].as_array().unwrap().is_empty());
    assert_eq!(code, 1);
}

// ---------------------------------------------------------------------------------
// 4. Ordinary traffic
// ---------------------------------------------------------------------------------

/// Short exchanges over IPv4 and IPv6 closed by either side, three on one 4-tuple, a
/// SO_LINGER 0 reset, a zero window, lost data segments retransmitted: nothing to
/// report.
#[test]
fn normal_traffic_capture_is_tsharks_and_no_finding() {
    require_tools();
    let ns = TestNetns::new("pcap-normal");
    let _unblock = Unblock::new(&ns);
    let file = CaptureFile::new("normal");
    let mut dump = Tcpdump::start(&ns, &file);
    let script = support_dir().join("pcaptraffic.py");
    let out = ns.exec_ok(&[
        "python3",
        script.to_str().unwrap(),
        "normal",
        "--port",
        "9000",
        "--short",
        "40",
        "--reuse",
        "3",
        "--lossy",
    ]);
    let did: Value = serde_json::from_str(out.trim()).expect("pcaptraffic.py JSON");
    assert_eq!(did["done"], true, "{did}");
    let stats = dump.stop(&ns);

    let (report, code) = pcap_report(&file);
    let truth = assert_capture_is_tsharks("normal", &file, &report, stats);
    let cap = &report["capture"];
    assert_eq!(cap["connections"], did["connections"], "{did}");
    assert_eq!(cap["closes_completed"], did["clean"], "{did}");
    assert_eq!(cap["resets"], did["reset"], "{did}");
    for k in ["closing_at_end", "open_at_end", "syn_unanswered"] {
        assert_eq!(cap[k], 0, "{k}");
    }
    for k in [
        "fin_retransmissions",
        "syn_retransmissions",
        "syn_ack_retransmissions",
    ] {
        assert_eq!(truth.counts[k], 0, "{k}");
    }
    assert!(truth.counts["zero_windows"] >= 1, "the zero window is seen");
    assert!(
        truth.counts["data_retransmissions"] >= 1,
        "the lost segments are retransmitted"
    );
    assert_eq!(truth.counts["rst_packets"], 1);
    // One 4-tuple, three connections: tshark's streams and sockmedic agree (above);
    // `tshark -z conv,tcp` would count it once.
    let reused = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        did["reuse_port"].as_u64().unwrap() as u16,
    );
    assert_eq!(truth.streams.with_client(reused), 3);
    assert!(cap["top_stalled"].as_array().unwrap().is_empty());
    let above_info: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(
        above_info.is_empty(),
        "no finding above info\n{}",
        findings_summary(&report)
    );
    assert_eq!(code, 0);
}

// ---------------------------------------------------------------------------------
// Cases an earlier sockmedic-capture got wrong
// ---------------------------------------------------------------------------------

/// The LAST-ACK incident as incidents.rs makes it: the clients' final ACKs are dropped
/// in the INPUT hook, after the capture point (a capture taken on the clients' side of
/// the loss). The capture shows each final ACK, then the server's FIN retransmitted
/// again and again, each retransmission ACKed again (by the TIME-WAIT client).
///
/// The retransmissions must belong to the listener's connections, as tshark's streams
/// show (an earlier sockmedic folded each connection into the per-endpoint figures when
/// the first final ACK went by, so the listener had none and there was no finding).
#[test]
fn last_ack_with_final_acks_lost_after_the_capture_point_is_a_teardown_stall() {
    const N: usize = 20;
    require_tools();
    let mut ns = TestNetns::new("pcap-last-ack-in");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    let file = CaptureFile::new("last-ack-input");
    let mut dump = Tcpdump::start(&ns, &file);
    let listener = lo4(8011);
    teardown_incident(&mut ns, "last-ack", 8011, N, &["--drop-at", "input"]);
    wait_retransmitting(&ns, LAST_ACK, N, 2, |r| r.local == listener);
    let stats = dump.stop(&ns);
    let (report, _) = pcap_report(&file);
    let truth = assert_capture_is_tsharks("LAST-ACK, input hook", &file, &report, stats);
    assert_teardown_stall(&report, &truth, listener, Waiting::Server("LAST-ACK"));
}

/// FIN-WAIT-1 again, but each client sends 100 bytes just before it closes, while the
/// server's ACKs are dropped: the data and the FIN leave in two segments, then the
/// kernel retransmits them as ONE segment (data + FIN, collapsed at the first RTO).
/// tshark counts that segment as a FIN retransmission, and so must sockmedic (an earlier
/// one took it for a new FIN, restarted the FIN's wait there and counted it as a data
/// retransmission).
#[test]
fn fin_retransmitted_with_unacknowledged_data_is_a_fin_retransmission() {
    const N: usize = 10;
    require_tools();
    let mut ns = TestNetns::new("pcap-fin-data");
    let _unblock = Unblock::new(&ns);
    ns.set_sysctl("net.ipv4.tcp_orphan_retries", "12");
    let file = CaptureFile::new("fin-data");
    let mut dump = Tcpdump::start(&ns, &file);
    let server = lo4(8012);
    teardown_incident(
        &mut ns,
        "fin-wait-1",
        8012,
        N,
        &["--drop-at", "output", "--send", "100"],
    );
    wait_retransmitting(&ns, FIN_WAIT_1, N, 3, |r| r.remote == server);
    let stats = dump.stop(&ns);
    let (report, _) = pcap_report(&file);
    let truth = assert_capture_is_tsharks("FIN-WAIT-1 with data", &file, &report, stats);
    assert_teardown_stall(&report, &truth, server, Waiting::Clients("FIN-WAIT-1"));
}

// ---------------------------------------------------------------------------------
// 7. A teardown stall inside a VXLAN tunnel, captured on the underlay
// ---------------------------------------------------------------------------------

/// A VXLAN tunnel between two namespaces of the test's own, as an overlay network
/// (flannel, Calico's VXLAN mode) builds one between two nodes: a veth underlay and a
/// `vxlan` device on each side. A capture on the underlay sees every overlay packet
/// encapsulated. (This kernel has no GRE, IPIP or Geneve modules: those tunnels are
/// checked on public captures and on frames of this machine wrapped in their headers,
/// in crates/capture/tests.)
struct Vxlan {
    client: TestNetns,
    server: TestNetns,
    /// The client's and the server's overlay addresses.
    overlay: [IpAddr; 2],
    /// The server side's underlay address (the end marker goes there).
    underlay_server: IpAddr,
}

impl Vxlan {
    /// `udp_port`: VXLAN's (4789, IANA's; 8472, Linux's default); the families: 4 or 6.
    fn new(test: &str, udp_port: u16, underlay_v6: bool, overlay_v6: bool) -> Vxlan {
        let client = TestNetns::new(&format!("{test}-c"));
        let server = TestNetns::new(&format!("{test}-s"));
        client.exec_ok(&[
            "ip",
            "link",
            "add",
            "u0",
            "type",
            "veth",
            "peer",
            "name",
            "u1",
            "netns",
            &server.name,
        ]);
        let underlay = |n: u8| -> IpAddr {
            if underlay_v6 {
                format!("fd99::{n}").parse().unwrap()
            } else {
                format!("10.99.0.{n}").parse().unwrap()
            }
        };
        let overlay = |n: u8| -> IpAddr {
            if overlay_v6 {
                format!("fd00:100::{n}").parse().unwrap()
            } else {
                format!("10.100.0.{n}").parse().unwrap()
            }
        };
        let prefix = |a: IpAddr| if a.is_ipv6() { "/64" } else { "/24" };
        for (ns, dev, me, peer) in [(&client, "u0", 1, 2), (&server, "u1", 2, 1)] {
            let (u, o) = (underlay(me), overlay(me));
            // nodad: the address is usable at once, not after duplicate detection.
            ns.exec_ok(&[
                "ip",
                "addr",
                "add",
                &format!("{u}{}", prefix(u)),
                "dev",
                dev,
                "nodad",
            ]);
            ns.exec_ok(&["ip", "link", "set", dev, "up"]);
            ns.exec_ok(&[
                "ip",
                "link",
                "add",
                "t0",
                "type",
                "vxlan",
                "id",
                "42",
                "local",
                &u.to_string(),
                "remote",
                &underlay(peer).to_string(),
                "dstport",
                &udp_port.to_string(),
                "dev",
                dev,
            ]);
            ns.exec_ok(&[
                "ip",
                "addr",
                "add",
                &format!("{o}{}", prefix(o)),
                "dev",
                "t0",
                "nodad",
            ]);
            ns.exec_ok(&["ip", "link", "set", "t0", "up"]);
        }
        Vxlan {
            client,
            server,
            overlay: [overlay(1), overlay(2)],
            underlay_server: underlay(2),
        }
    }
}

/// A server on the overlay that accepts `n` connections and holds them; clients that
/// connect `n` times, then close them all when a line comes on their stdin.
const OVERLAY_SERVER: &str = "import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(n)
held = [s.accept()[0] for _ in range(n)]
time.sleep(600)
";
const OVERLAY_CLIENTS: &str = "import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cs = [socket.create_connection((host, port), timeout=20) for _ in range(n)]
sys.stdin.readline()
for c in cs:
    c.close()
time.sleep(600)
";

/// 20 clients connect through VXLAN to a server whose packets are then dropped (in
/// its output hook, before encapsulation), and close: their FINs are retransmitted
/// (incident 2 between two nodes of an overlay network). The capture on the underlay
/// is all VXLAN; sockmedic finds the TCP inside, counts what tshark counts, and names
/// the server's overlay endpoint.
fn vxlan_teardown_stall(test: &str, udp_port: u16, underlay_v6: bool, overlay_v6: bool) {
    const N: usize = 20;
    const PORT: u16 = 8100;
    require_tools();
    let mut net = Vxlan::new(test, udp_port, underlay_v6, overlay_v6);
    let server = SocketAddr::new(net.overlay[1], PORT);
    let file = CaptureFile::new(test);
    let mut dump = Tcpdump::start_on(&net.client, "u0", Some(net.underlay_server), &file);
    let args = |script: &str| -> Vec<String> {
        [
            "python3",
            "-c",
            script,
            &net.overlay[1].to_string(),
            &PORT.to_string(),
            &N.to_string(),
        ]
        .map(String::from)
        .to_vec()
    };
    let mut srv = net.server.cmd(&args(OVERLAY_SERVER));
    srv.stdin(Stdio::null());
    net.server.spawn(&mut srv);
    wait_for("the overlay server listening", 20, || {
        let rows = proc_tcp(&net.server);
        let listening = rows.iter().any(|r| r.state == 0x0A && r.local == server);
        (listening.then_some(()), rows.len())
    });
    let mut cli = net.client.cmd(&args(OVERLAY_CLIENTS));
    cli.stdin(Stdio::piped());
    let clients = net.client.spawn(&mut cli);
    let mut close = clients.stdin.take().unwrap();
    wait_for("every client connected and accepted", 20, || {
        let rows = proc_tcp(&net.server);
        let established = in_state(&rows, 0x01, |r| r.local == server).len();
        ((established == N).then_some(()), established)
    });
    net.server.nft(&format!(
        "add table inet smvxlan\n\
         add chain inet smvxlan output {{ type filter hook output priority 0; }}\n\
         add rule inet smvxlan output tcp sport {PORT} drop\n"
    ));
    use std::io::Write as _;
    writeln!(close, "close").unwrap();
    close.flush().unwrap();
    wait_retransmitting(&net.client, FIN_WAIT_1, N, 3, |r| r.remote == server);
    let stats = dump.stop(&net.client);

    let (report, code) = pcap_report(&file);
    let truth = assert_capture_is_tsharks(test, &file, &report, stats);
    let cap = &report["capture"];
    let tcp = cap["tcp_packets"].as_u64().unwrap();
    assert!(tcp > 0);
    assert_eq!(cap["tunneled_packets"], tcp, "all TCP is inside VXLAN");
    assert_eq!(cap["tunnels"], serde_json::json!({ "vxlan": tcp }));
    assert_eq!(cap["connections"], N as u64);
    assert_eq!(cap["closing_at_end"], N as u64);
    // The overlay endpoint, not the underlay's.
    assert_eq!(
        cap["top_stalled"][0]["endpoint"],
        server.to_string().as_str()
    );
    let f = assert_teardown_stall(&report, &truth, server, Waiting::Clients("FIN-WAIT-1"));
    assert_eq!(f["subject"]["count"], N as u64);
    assert_eq!(code, if f["severity"] == "critical" { 2 } else { 1 });
    // The text says where the TCP was found.
    let text = sockmedic(&["pcap", file.arg()]);
    text.assert_no_panic();
    assert!(
        text.stdout().contains("inside VXLAN"),
        "{}",
        text.describe()
    );
    drop(close);
}

/// flannel's and Calico's VXLAN: Linux's default port 8472, IPv4 in IPv4.
#[test]
fn teardown_stall_inside_vxlan_on_linux_port_is_found_on_the_underlay() {
    vxlan_teardown_stall("pcap-vxlan-8472", 8472, false, false);
}

/// IANA's VXLAN port 4789, IPv6 overlay on an IPv6 underlay.
#[test]
fn teardown_stall_inside_vxlan_over_ipv6_is_found_on_the_underlay() {
    vxlan_teardown_stall("pcap-vxlan-4789-v6", 4789, true, true);
}

/// IPv6 overlay on an IPv4 underlay: the inner family differs from the outer one.
#[test]
fn teardown_stall_inside_vxlan_ipv6_over_ipv4_is_found_on_the_underlay() {
    vxlan_teardown_stall("pcap-vxlan-6in4", 4789, false, true);
}
