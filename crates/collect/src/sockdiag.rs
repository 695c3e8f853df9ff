//! A small hand-written `NETLINK_SOCK_DIAG` client for TCP sockets.
//!
//! Why by hand: a dump of a million sockets must not allocate per socket, and the
//! kernel request is tiny (one `inet_diag_req_v2`, optionally a bytecode program
//! for a source-port range). Replies are walked in place in one reused buffer and
//! each `inet_diag_msg` is decoded into a stack [`DiagSocket`].
//!
//! Layouts come from include/uapi/linux/{netlink,sock_diag,inet_diag}.h; the
//! bytecode rules from `inet_diag_bc_audit`/`inet_diag_bc_run` in
//! net/ipv4/inet_diag.c.

use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use sockmedic_model::Endpoint;

/// Which address families a dump covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// Both families. The kernel keeps IPv4 and IPv6 TCP sockets in one hash table
    /// and every per-family dump walks all of it, so `Both` first tries the legacy
    /// `TCPDIAG_GETSOCK` request, which the kernel runs with `AF_UNSPEC`: one walk
    /// returns both families. If the kernel refuses it, `Both` falls back to two
    /// v2 dumps (V4, then V6) and remembers that for this [`SockDiag`].
    Both,
}

/// What to dump. Everything here is applied inside the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpRequest {
    pub family: Family,
    /// Bitmask of `1 << state` (1 ESTABLISHED .. 11 CLOSING, 13 BOUND_INACTIVE).
    /// Bit 3 (SYN_RECV) also returns NEW_SYN_RECV request socks.
    pub states: u32,
    /// Inclusive local port range, compiled to an `INET_DIAG_REQ_BYTECODE`
    /// program (S_GE, S_LE), so non-matching sockets never become messages.
    pub sport: Option<(u16, u16)>,
}

/// One socket from a dump, decoded from `struct inet_diag_msg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiagSocket {
    /// Kernel TCP state number (1..=11; bound-inactive sockets report 7, CLOSE).
    pub state: u8,
    /// 0 none, 1 retransmit/RTO, 2 keepalive/FIN_WAIT2 (`sk_timer`), 3 TIME_WAIT, 4 zero-window probe.
    pub timer: u8,
    pub retrans: u8,
    pub local: Endpoint,
    pub remote: Endpoint,
    /// Time left on `timer`, in milliseconds.
    pub expires_ms: u32,
    /// Receive queue; for a listener, the accept queue length.
    pub rqueue: u32,
    /// Send queue; for a listener, the backlog given to `listen()`.
    pub wqueue: u32,
    pub uid: u32,
    /// Socket inode (`socket:[N]` in /proc/PID/fd); 0 for orphans, minisocks and
    /// children still in an accept queue.
    pub inode: u32,
    pub cookie: u64,
    /// The cgroup v2 id (the inode of the cgroup directory) of the cgroup that
    /// created the socket, from the `INET_DIAG_CGROUP_ID` attribute (full sockets
    /// on 5.x+ with cgroup v2 data; 0 when absent). Kept after close, so it
    /// attributes orphans to a container.
    pub cgroup_id: u64,
}

/// What one [`SockDiag::dump`] cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Socket messages decoded (calls to `on_socket`).
    pub messages: u64,
    /// Bytes received from the kernel, all datagrams included.
    pub bytes: u64,
    /// `recv` calls that returned data.
    pub recvs: u64,
    /// Dump requests sent: each is one walk of the kernel's hash tables.
    /// `Family::Both` costs 1 with the compat request, 2 without.
    pub walks: u32,
}

/// The bytes of one dump as they crossed the netlink socket.
#[derive(Clone, Copy, Debug)]
pub enum Raw<'a> {
    /// A request as sent (`nlmsghdr` + `inet_diag_req_v2` or the compat request).
    Request(&'a [u8]),
    /// One reply datagram as received.
    Reply(&'a [u8]),
}

/// A recorded dump: the requests and reply datagrams of one or more walks, framed
/// so they can be replayed through the same decoder ([`replay`]). Layout: the
/// 8-byte header `SMNLREC` + byte order (`l`/`b`: the datagrams are in the
/// recording host's order), then records of one tag byte (`Q` request, `R` reply),
/// a little-endian u32 length and the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawDump {
    bytes: Vec<u8>,
}

const RECORDING_MAGIC: &[u8; 7] = b"SMNLREC";

fn native_order() -> u8 {
    if cfg!(target_endian = "big") {
        b'b'
    } else {
        b'l'
    }
}

impl Default for RawDump {
    fn default() -> Self {
        RawDump::new()
    }
}

impl RawDump {
    pub fn new() -> RawDump {
        let mut bytes = RECORDING_MAGIC.to_vec();
        bytes.push(native_order());
        RawDump { bytes }
    }
    /// Appends one request or reply.
    pub fn push(&mut self, raw: Raw<'_>) {
        let (tag, data) = match raw {
            Raw::Request(d) => (b'Q', d),
            Raw::Reply(d) => (b'R', d),
        };
        self.bytes.push(tag);
        self.bytes
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(data);
    }
    /// The size a record of `len` bytes adds.
    pub fn frame_len(len: usize) -> usize {
        len + 5
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// The bytes of the records, without the header.
    pub fn data_len(&self) -> usize {
        self.bytes.len() - (RECORDING_MAGIC.len() + 1)
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.len() <= RECORDING_MAGIC.len() + 1
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn from_bytes(bytes: Vec<u8>) -> RawDump {
        RawDump { bytes }
    }
}

/// Replays a recorded dump through the live decoder: each reply datagram is
/// parsed for the request before it, exactly as [`SockDiag::dump`] parsed it when
/// it arrived, calling `on_socket` per socket. A walk the kernel refused and that
/// was followed by another request (the compat request's fallback) is skipped as
/// the live dump skipped it; a refusal at the end is the dump's error. A recording
/// that ends before its last walk's NLMSG_DONE is malformed.
pub fn replay(rec: &[u8], mut on_socket: impl FnMut(&DiagSocket)) -> Result<DumpStats, DiagError> {
    let bad = |offset, what| DiagError::Malformed {
        offset,
        len: rec.len(),
        what,
    };
    if rec.len() < 8 || &rec[..7] != RECORDING_MAGIC {
        return Err(bad(0, "not a sockmedic sock_diag recording"));
    }
    if rec[7] != native_order() {
        return Err(bad(
            7,
            "recorded on a host of the other byte order: its datagrams cannot be decoded here",
        ));
    }
    let mut stats = DumpStats::default();
    let mut off = 8;
    // The walk being read: its request kind and sequence number, and whether it ended.
    let mut walk: Option<(ReqKind, u32)> = None;
    let mut done = true;
    let mut failed: Option<DiagError> = None;
    while off < rec.len() {
        if rec.len() - off < 5 {
            return Err(bad(off, "truncated record header"));
        }
        let tag = rec[off];
        let len =
            u32::from_le_bytes([rec[off + 1], rec[off + 2], rec[off + 3], rec[off + 4]]) as usize;
        let at = off;
        off += 5;
        if rec.len() - off < len {
            return Err(bad(at, "record longer than the recording"));
        }
        let data = &rec[off..off + len];
        off += len;
        match tag {
            b'Q' => {
                if !done && failed.is_none() {
                    return Err(bad(at, "a request before the previous dump's end"));
                }
                walk = Some(request_of(data).ok_or_else(|| bad(at, "unknown request"))?);
                done = false;
                failed = None;
                stats.walks += 1;
            }
            b'R' => {
                let Some((kind, seq)) = walk else {
                    return Err(bad(at, "a reply before any request"));
                };
                if done || failed.is_some() {
                    // Stragglers after the end; the live dump never read them either.
                    continue;
                }
                stats.recvs += 1;
                stats.bytes += len as u64;
                match parse_replies(data, seq, kind, &mut on_socket) {
                    Ok((w, n)) => {
                        stats.messages += n;
                        done = w == Walk::Done;
                    }
                    Err(e @ DiagError::Kernel { .. }) => failed = Some(e),
                    Err(e) => return Err(e),
                }
            }
            _ => return Err(bad(at, "unknown record tag")),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if stats.walks == 0 {
        return Err(bad(rec.len(), "the recording holds no dump"));
    }
    if !done {
        return Err(bad(
            rec.len(),
            "the recording ends before the dump's NLMSG_DONE",
        ));
    }
    Ok(stats)
}

/// The kind and sequence number of a recorded request.
fn request_of(msg: &[u8]) -> Option<(ReqKind, u32)> {
    if msg.len() < NLMSG_HDRLEN + 1 {
        return None;
    }
    let seq = u32_at(msg, 8);
    let kind = match u16_at(msg, 4) {
        SOCK_DIAG_BY_FAMILY => ReqKind::V2(msg[NLMSG_HDRLEN]),
        TCPDIAG_GETSOCK => ReqKind::Compat,
        _ => return None,
    };
    Some((kind, seq))
}

/// Why a dump failed. Every variant says which step failed and, for system
/// errors, the errno.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("cannot open a NETLINK_SOCK_DIAG socket ({step}): {errno}")]
    Open { step: &'static str, errno: Errno },
    #[error("invalid sock_diag dump request: {0}")]
    InvalidRequest(&'static str),
    #[error("sending the sock_diag dump request failed: {errno}")]
    Send { errno: Errno },
    #[error("receiving sock_diag replies failed: {errno}")]
    Recv { errno: Errno },
    #[error("the kernel refused the {request} dump: {errno}")]
    Kernel { request: &'static str, errno: Errno },
    #[error("malformed sock_diag reply at byte {offset} of a {len}-byte datagram: {what}")]
    Malformed {
        offset: usize,
        len: usize,
        what: &'static str,
    },
}

/// TCP states 1 (ESTABLISHED) ..= 11 (CLOSING).
pub const ALL_STATES: u32 = 0xffe;
/// Request-only pseudo-state 13 (Linux 6.8+): bound but not listening or
/// connected. Replies report state 7 (CLOSE).
pub const BOUND_INACTIVE_BIT: u32 = 1 << 13;

// include/uapi/linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
// include/uapi/linux/sock_diag.h, inet_diag.h
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCPDIAG_GETSOCK: u16 = 18;
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, sockid (48).
const REQ_V2_LEN: usize = 56;
/// `struct inet_diag_req`: family, src_len, dst_len, ext, sockid (48), states, dbs.
const REQ_COMPAT_LEN: usize = 60;
/// nlattr header + two `inet_diag_bc_op` pairs.
const BYTECODE_ATTR_LEN: usize = 4 + 16;
const REQ_MAX: usize = NLMSG_HDRLEN + REQ_COMPAT_LEN + BYTECODE_ATTR_LEN;
/// `struct inet_diag_msg`.
const DIAG_MSG_LEN: usize = 72;
/// The kernel batches dump replies into skbs of at most 32 KiB; twice that keeps
/// every datagram whole.
const RECV_BUF_LEN: usize = 64 * 1024;
/// netlink_recvmsg refills the dump only while queued data stays under half of
/// SO_RCVBUF; a large buffer keeps that check from ever holding a batch back.
const RCVBUF_BYTES: usize = 4 << 20;

/// One request on the wire: which message type and which family field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReqKind {
    /// `SOCK_DIAG_BY_FAMILY` + `inet_diag_req_v2` for one family.
    V2(u8),
    /// `TCPDIAG_GETSOCK` + `inet_diag_req`, run by the kernel with `AF_UNSPEC`.
    Compat,
}

impl ReqKind {
    fn msg_type(self) -> u16 {
        match self {
            ReqKind::V2(_) => SOCK_DIAG_BY_FAMILY,
            ReqKind::Compat => TCPDIAG_GETSOCK,
        }
    }
    fn name(self) -> &'static str {
        match self {
            ReqKind::V2(AF_INET) => "SOCK_DIAG_BY_FAMILY (AF_INET)",
            ReqKind::V2(_) => "SOCK_DIAG_BY_FAMILY (AF_INET6)",
            ReqKind::Compat => "TCPDIAG_GETSOCK (compat, both families)",
        }
    }
}

/// An open `NETLINK_SOCK_DIAG` socket and its receive buffer. It stays in the
/// network namespace it was opened in, whichever thread uses it later.
pub struct SockDiag {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
    /// A dump was left before its NLMSG_DONE (an error, or a panic in the
    /// callback); its remaining replies are drained before the next request.
    pending: bool,
    /// Whether the compat request returns both families: unknown until tried.
    compat_ok: Option<bool>,
}

// Handing a SockDiag to a worker thread is part of the contract.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<SockDiag>()
};

impl SockDiag {
    /// Opens a NETLINK_SOCK_DIAG socket in the calling thread's network namespace
    /// (the socket keeps that netns for life, so it can be handed to another
    /// thread afterwards).
    pub fn open() -> Result<SockDiag, DiagError> {
        let open = |step| move |errno| DiagError::Open { step, errno };
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )
        .map_err(open("socket"))?;
        // FORCE needs CAP_NET_ADMIN; the plain one is capped by rmem_max. Either
        // is only a speed-up, so failures are ignored.
        if sockopt::set_socket_recv_buffer_size_force(&fd, RCVBUF_BYTES).is_err() {
            let _ = sockopt::set_socket_recv_buffer_size(&fd, RCVBUF_BYTES);
        }
        // Connected to the kernel (port id 0), the socket accepts datagrams from
        // nobody else, so no other process can inject replies.
        rustix::net::connect(&fd, &SocketAddrNetlink::new(0, 0)).map_err(open("connect"))?;
        Ok(SockDiag {
            fd,
            buf: vec![0; RECV_BUF_LEN],
            seq: 0,
            pending: false,
            compat_ok: None,
        })
    }

    /// Whether `Family::Both` runs as one compat walk on this kernel: `None`
    /// until a `Both` dump has been tried.
    pub fn both_in_one_walk(&self) -> Option<bool> {
        self.compat_ok
    }

    /// Runs one dump, calling `on_socket` for each socket; zero heap allocations
    /// per socket. Sockets changing state during the dump may be missed or seen
    /// twice: the kernel walk is resumable, not a snapshot.
    pub fn dump(
        &mut self,
        req: &DumpRequest,
        on_socket: impl FnMut(&DiagSocket),
    ) -> Result<DumpStats, DiagError> {
        self.dump_tapped(req, on_socket, &mut |_: Raw<'_>| {})
    }

    /// [`SockDiag::dump`], also handing `tap` every request sent and every reply
    /// datagram received, as bytes (to record them: [`RawDump`]).
    pub fn dump_tapped(
        &mut self,
        req: &DumpRequest,
        mut on_socket: impl FnMut(&DiagSocket),
        tap: &mut impl FnMut(Raw<'_>),
    ) -> Result<DumpStats, DiagError> {
        if req.states & !(ALL_STATES | 1 << 12 | BOUND_INACTIVE_BIT) != 0 {
            return Err(DiagError::InvalidRequest("states has bits outside 1..=13"));
        }
        if let Some((lo, hi)) = req.sport {
            if lo > hi {
                return Err(DiagError::InvalidRequest("sport range is empty (lo > hi)"));
            }
        }
        self.drain_pending()?;
        let mut stats = DumpStats::default();
        match req.family {
            Family::V4 => self.run(ReqKind::V2(AF_INET), req, &mut on_socket, &mut stats, tap)?,
            Family::V6 => self.run(ReqKind::V2(AF_INET6), req, &mut on_socket, &mut stats, tap)?,
            Family::Both => {
                if self.compat_ok != Some(false) {
                    match self.run(ReqKind::Compat, req, &mut on_socket, &mut stats, tap) {
                        Ok(()) => {
                            self.compat_ok = Some(true);
                            return Ok(stats);
                        }
                        // Refused up front by a kernel that never ran it here:
                        // try the two v2 dumps before deciding.
                        Err(DiagError::Kernel { .. })
                            if self.compat_ok.is_none() && stats.messages == 0 => {}
                        Err(e) => return Err(e),
                    }
                }
                self.run(ReqKind::V2(AF_INET), req, &mut on_socket, &mut stats, tap)?;
                self.run(ReqKind::V2(AF_INET6), req, &mut on_socket, &mut stats, tap)?;
                self.compat_ok = Some(false);
            }
        }
        Ok(stats)
    }

    /// Sends one request and reads its replies up to NLMSG_DONE.
    fn run(
        &mut self,
        kind: ReqKind,
        req: &DumpRequest,
        on_socket: &mut impl FnMut(&DiagSocket),
        stats: &mut DumpStats,
        tap: &mut impl FnMut(Raw<'_>),
    ) -> Result<(), DiagError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut msg = [0u8; REQ_MAX];
        let len = encode_request(&mut msg, kind, req.states, req.sport, seq);
        tap(Raw::Request(&msg[..len]));
        loop {
            match rustix::net::send(&self.fd, &msg[..len], SendFlags::empty()) {
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(errno) => return Err(DiagError::Send { errno }),
            }
        }
        stats.walks += 1;
        self.pending = true;
        loop {
            let n = recv_datagram(&self.fd, &mut self.buf)?;
            stats.recvs += 1;
            stats.bytes += n as u64;
            let data = &self.buf[..n];
            tap(Raw::Reply(data));
            match parse_replies(data, seq, kind, on_socket) {
                Ok((walk, count)) => {
                    stats.messages += count;
                    if walk == Walk::Done {
                        self.pending = false;
                        return Ok(());
                    }
                }
                Err(e) => {
                    // A kernel error ends the dump; anything else leaves replies queued.
                    if matches!(e, DiagError::Kernel { .. }) {
                        self.pending = false;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Reads and discards the rest of an abandoned dump, so the next request
    /// is not refused with EBUSY or mixed with stale replies. While a dump runs
    /// the kernel queues its next batch inside each `recv`, so the queue is never
    /// empty until NLMSG_DONE has been read: EAGAIN means drained.
    fn drain_pending(&mut self) -> Result<(), DiagError> {
        if !self.pending {
            return Ok(());
        }
        loop {
            match rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT) {
                Ok(_) | Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => break,
                Err(errno) => return Err(DiagError::Recv { errno }),
            }
        }
        self.pending = false;
        Ok(())
    }
}

/// One `recv` with EINTR retried; a datagram larger than the buffer is an error
/// (MSG_TRUNC reports its real size), never a silently cut batch.
fn recv_datagram(fd: impl AsFd, buf: &mut [u8]) -> Result<usize, DiagError> {
    loop {
        match rustix::net::recv(fd.as_fd(), &mut *buf, RecvFlags::TRUNC) {
            Ok((n, full)) if full > n => {
                return Err(DiagError::Malformed {
                    offset: n,
                    len: full,
                    what: "datagram larger than the receive buffer",
                })
            }
            Ok((n, _)) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(DiagError::Recv { errno }),
        }
    }
}

/// Writes the request for one walk into `out`; returns its length.
fn encode_request(
    out: &mut [u8; REQ_MAX],
    kind: ReqKind,
    states: u32,
    sport: Option<(u16, u16)>,
    seq: u32,
) -> usize {
    out.fill(0);
    let mut len = NLMSG_HDRLEN;
    match kind {
        ReqKind::V2(family) => {
            // family, protocol, idiag_ext = 0, pad, states, id zeroed.
            out[16] = family;
            out[17] = IPPROTO_TCP;
            out[20..24].copy_from_slice(&states.to_ne_bytes());
            len += REQ_V2_LEN;
        }
        ReqKind::Compat => {
            // idiag_family (ignored by dumps), src_len, dst_len, ext, id (48),
            // idiag_states at 52, idiag_dbs at 56.
            out[16] = AF_UNSPEC;
            out[16 + 52..16 + 56].copy_from_slice(&states.to_ne_bytes());
            len += REQ_COMPAT_LEN;
        }
    }
    if let Some((lo, hi)) = sport.filter(|r| *r != (0, u16::MAX)) {
        // nlattr {len, type}, then ops; a port op is followed by an op whose `no`
        // holds the port. yes = 8 skips to the next test, and no = remaining + 4
        // jumps past the end, which inet_diag_bc_run treats as reject.
        out[len..len + 2].copy_from_slice(&(BYTECODE_ATTR_LEN as u16).to_ne_bytes());
        out[len + 2..len + 4].copy_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        let ops: [(u8, u8, u16); 4] = [
            (INET_DIAG_BC_S_GE, 8, 16 + 4),
            (0, 0, lo),
            (INET_DIAG_BC_S_LE, 8, 8 + 4),
            (0, 0, hi),
        ];
        for (i, (code, yes, no)) in ops.into_iter().enumerate() {
            let at = len + 4 + 4 * i;
            out[at] = code;
            out[at + 1] = yes;
            out[at + 2..at + 4].copy_from_slice(&no.to_ne_bytes());
        }
        len += BYTECODE_ATTR_LEN;
    }
    out[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&kind.msg_type().to_ne_bytes());
    out[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    len
}

/// Whether a dump has more datagrams to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    More,
    Done,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Turns a netlink error int into an Errno: 0 means success, -1..=-4095 an
/// errno, anything else is garbage (Errno would panic on it).
fn errno_from_nl(err: i32) -> Result<Option<Errno>, ()> {
    match err {
        0 => Ok(None),
        -4095..=-1 => Ok(Some(Errno::from_raw_os_error(-err))),
        _ => Err(()),
    }
}

/// Walks one datagram of replies to the request `seq` of `kind`: calls
/// `on_socket` per socket and says whether the dump ended. Pure, so malformed
/// input can be tested; it never panics, whatever the bytes.
fn parse_replies(
    data: &[u8],
    seq: u32,
    kind: ReqKind,
    on_socket: &mut impl FnMut(&DiagSocket),
) -> Result<(Walk, u64), DiagError> {
    let bad = |offset, what| DiagError::Malformed {
        offset,
        len: data.len(),
        what,
    };
    let mut off = 0;
    let mut count = 0;
    while off < data.len() {
        let rest = &data[off..];
        if rest.len() < NLMSG_HDRLEN {
            return Err(bad(off, "truncated netlink header"));
        }
        let len = u32_at(rest, 0) as usize;
        let ty = u16_at(rest, 4);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(bad(off, "netlink message length out of bounds"));
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        let at = off;
        // Aligned to 4; the last message may lack its padding.
        off += len.next_multiple_of(4).min(rest.len());
        if u32_at(rest, 8) != seq {
            // A straggler from an earlier, abandoned request.
            continue;
        }
        match ty {
            NLMSG_NOOP => {}
            NLMSG_DONE => {
                // Dumps put an int here: 0, or -errno if the walk failed.
                let err = if payload.len() >= 4 {
                    u32_at(payload, 0) as i32
                } else {
                    0
                };
                return match errno_from_nl(err) {
                    Ok(None) => Ok((Walk::Done, count)),
                    Ok(Some(errno)) => Err(DiagError::Kernel {
                        request: kind.name(),
                        errno,
                    }),
                    Err(()) => Err(bad(at, "NLMSG_DONE carries an invalid error code")),
                };
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(bad(at, "truncated NLMSG_ERROR"));
                }
                return match errno_from_nl(u32_at(payload, 0) as i32) {
                    // An ACK: nothing more will come.
                    Ok(None) => Ok((Walk::Done, count)),
                    Ok(Some(errno)) => Err(DiagError::Kernel {
                        request: kind.name(),
                        errno,
                    }),
                    Err(()) => Err(bad(at, "NLMSG_ERROR carries an invalid error code")),
                };
            }
            NLMSG_OVERRUN => return Err(bad(at, "NLMSG_OVERRUN: the kernel dropped data")),
            t if t == kind.msg_type() => {
                let Some(msg) = payload.first_chunk::<DIAG_MSG_LEN>() else {
                    return Err(bad(at, "inet_diag_msg shorter than 72 bytes"));
                };
                let Some(mut sock) = decode_diag_msg(msg) else {
                    return Err(bad(
                        off,
                        "inet_diag_msg with a family other than AF_INET/AF_INET6",
                    ));
                };
                sock.cgroup_id = cgroup_id_attr(&payload[DIAG_MSG_LEN..]);
                on_socket(&sock);
                count += 1;
            }
            _ => return Err(bad(at, "unexpected netlink message type")),
        }
    }
    Ok((Walk::More, count))
}

/// `INET_DIAG_CGROUP_ID` (attribute 21, a u64) among the attributes that follow
/// `inet_diag_msg`; 0 when absent or malformed.
fn cgroup_id_attr(mut attrs: &[u8]) -> u64 {
    const INET_DIAG_CGROUP_ID: u16 = 21;
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0) as usize;
        let ty = u16_at(attrs, 2) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return 0;
        }
        if ty == INET_DIAG_CGROUP_ID && len >= 12 {
            return u64::from(u32_at(attrs, 4)) | u64::from(u32_at(attrs, 8)) << 32;
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    0
}

/// Decodes `struct inet_diag_msg`; `None` for an unknown address family.
fn decode_diag_msg(m: &[u8; DIAG_MSG_LEN]) -> Option<DiagSocket> {
    // id (inet_diag_sockid) at 4: sport, dport (big endian), src[16] at 8,
    // dst[16] at 24, if at 40, cookie[2] at 44.
    let sport = u16::from_be_bytes([m[4], m[5]]);
    let dport = u16::from_be_bytes([m[6], m[7]]);
    let (local, remote) = match m[0] {
        AF_INET => (
            Endpoint::v4([m[8], m[9], m[10], m[11]], sport),
            Endpoint::v4([m[24], m[25], m[26], m[27]], dport),
        ),
        AF_INET6 => {
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&m[8..24]);
            dst.copy_from_slice(&m[24..40]);
            (Endpoint::v6(src, sport), Endpoint::v6(dst, dport))
        }
        _ => return None,
    };
    let cookie = u64::from(u32_at(m, 44)) | u64::from(u32_at(m, 48)) << 32;
    Some(DiagSocket {
        state: m[1],
        timer: m[2],
        retrans: m[3],
        local,
        remote,
        expires_ms: u32_at(m, 52),
        rqueue: u32_at(m, 56),
        wqueue: u32_at(m, 60),
        uid: u32_at(m, 64),
        inode: u32_at(m, 68),
        cookie,
        cgroup_id: 0,
    })
}

/// Whether this kernel answers the bound-inactive request (state 13, Linux
/// 6.8+). Detected, not guessed from the version: a TCP socket bound to
/// 0.0.0.0 port 0 (no listen, no connect) must come back from a dump with
/// states = 1 << 13 filtered on its port, reported as state 7. Works as
/// non-root; uses the calling thread's network namespace.
pub fn bound_inactive_supported() -> bool {
    probe_bound_inactive().unwrap_or(false)
}

fn probe_bound_inactive() -> Option<bool> {
    use rustix::net::{bind, getsockname, socket_with, SocketAddrV4};
    let sock = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ok()?;
    bind(
        &sock,
        &SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
    )
    .ok()?;
    let port = SocketAddrV4::try_from(getsockname(&sock).ok()?)
        .ok()?
        .port();
    let mut diag = SockDiag::open().ok()?;
    let req = DumpRequest {
        family: Family::V4,
        states: BOUND_INACTIVE_BIT,
        sport: Some((port, port)),
    };
    let mut found = false;
    diag.dump(&req, |s| found |= s.local.port == port && s.state == 7)
        .ok()?;
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{bind, getsockname, listen, socket_with, SocketAddrAny};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    use std::os::fd::AsRawFd;

    const LISTEN: u8 = 10;
    const ESTABLISHED: u8 = 1;
    const CLOSE: u8 = 7;

    fn tcp_socket(v6: bool) -> OwnedFd {
        let af = if v6 {
            AddressFamily::INET6
        } else {
            AddressFamily::INET
        };
        socket_with(af, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap()
    }

    fn port_of(fd: &OwnedFd) -> u16 {
        let a: SocketAddrAny = getsockname(fd).unwrap();
        SocketAddr::try_from(a).unwrap().port()
    }

    fn loopback(v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }

    /// A socket bound to loopback port `port` (0: any), listening with `backlog` if given.
    fn bound(v6: bool, port: u16, backlog: Option<i32>) -> std::io::Result<OwnedFd> {
        let fd = tcp_socket(v6);
        bind(&fd, &SocketAddr::new(loopback(v6), port))?;
        if let Some(b) = backlog {
            listen(&fd, b)?;
        }
        Ok(fd)
    }

    fn inode(fd: &impl AsFd) -> u32 {
        rustix::fs::fstat(fd).unwrap().st_ino as u32
    }

    fn dump_vec(
        family: Family,
        states: u32,
        sport: Option<(u16, u16)>,
    ) -> (Vec<DiagSocket>, DumpStats) {
        let mut diag = SockDiag::open().unwrap();
        let mut out = Vec::new();
        let req = DumpRequest {
            family,
            states,
            sport,
        };
        let stats = diag.dump(&req, |s| out.push(*s)).unwrap();
        (out, stats)
    }

    fn ep(v6: bool, port: u16) -> Endpoint {
        match loopback(v6) {
            IpAddr::V4(a) => Endpoint::v4(a.octets(), port),
            IpAddr::V6(a) => Endpoint::v6(a.octets(), port),
        }
    }

    /// The cgroup v2 directory of this process, from /proc/self/cgroup and the
    /// cgroup2 mount in /proc/self/mountinfo.
    fn own_cgroup2_dir() -> Option<std::path::PathBuf> {
        let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = cg.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
        let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = mi.lines().find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split(' ').next() == Some("cgroup2")).then(|| pre.split(' ').nth(4))?
        })?;
        Some(std::path::Path::new(mount).join(rel.trim_start_matches('/')))
    }

    /// INET_DIAG_CGROUP_ID is the inode of the cgroup v2 directory of the
    /// socket's creator.
    #[test]
    fn cgroup_id_is_the_creators_cgroup2_directory() {
        let Some(dir) = own_cgroup2_dir() else {
            eprintln!("no cgroup2 mount: nothing to compare with");
            return;
        };
        let want = rustix::fs::stat(&dir).unwrap().st_ino;
        let l = bound(false, 0, Some(1)).unwrap();
        let p = port_of(&l);
        let (socks, _) = dump_vec(Family::V4, 1 << LISTEN, Some((p, p)));
        assert_eq!(socks.len(), 1, "{socks:#?}");
        assert_eq!(socks[0].cgroup_id, want, "cgroup dir {}", dir.display());
    }

    /// Listener with an unaccepted and an accepted connection: states, queues,
    /// endpoints, inodes and uid all match what the sockets really are.
    fn check_listener(v6: bool) {
        let family = if v6 { Family::V6 } else { Family::V4 };
        let l = bound(v6, 0, Some(7)).unwrap();
        let p = port_of(&l);
        let c1 = TcpStream::connect((loopback(v6), p)).unwrap();
        let c2 = TcpStream::connect((loopback(v6), p)).unwrap();
        let c1_port = c1.local_addr().unwrap().port();
        let c2_port = c2.local_addr().unwrap().port();

        // Both children wait in the accept queue: Recv-Q 2, Send-Q = backlog.
        let (socks, stats) = dump_vec(family, ALL_STATES, Some((p, p)));
        assert_eq!(stats.walks, 1);
        assert_eq!(stats.messages, socks.len() as u64);
        assert_eq!(socks.len(), 3, "{socks:#?}");
        let lst: Vec<_> = socks.iter().filter(|s| s.state == LISTEN).collect();
        assert_eq!(lst.len(), 1);
        assert_eq!(lst[0].local, ep(v6, p));
        assert_eq!(lst[0].rqueue, 2);
        assert_eq!(lst[0].wqueue, 7);
        assert_eq!(lst[0].inode, inode(&l));
        assert_eq!(lst[0].uid, rustix::process::getuid().as_raw());
        assert_ne!(lst[0].cookie, 0);
        let mut remotes: Vec<u16> = socks
            .iter()
            .filter(|s| s.state == ESTABLISHED)
            .map(|s| {
                assert_eq!(s.local, ep(v6, p));
                assert_eq!(s.remote.host(), ep(v6, 0));
                assert_eq!(s.inode, 0, "a child in the accept queue has no inode yet");
                s.remote.port
            })
            .collect();
        remotes.sort_unstable();
        let mut want = vec![c1_port, c2_port];
        want.sort_unstable();
        assert_eq!(remotes, want);

        // The client side is found by its own port.
        let (socks, _) = dump_vec(family, 1 << ESTABLISHED, Some((c1_port, c1_port)));
        assert_eq!(socks.len(), 1);
        assert_eq!(socks[0].remote, ep(v6, p));
        assert_eq!(socks[0].inode, inode(&c1));

        // Accepting one: Recv-Q drops to 1 and the accepted socket has an inode.
        let a = rustix::net::accept(&l).unwrap();
        let (socks, _) = dump_vec(family, ALL_STATES, Some((p, p)));
        let lst = socks.iter().find(|s| s.state == LISTEN).unwrap();
        assert_eq!(lst.rqueue, 1);
        assert!(socks
            .iter()
            .any(|s| s.state == ESTABLISHED && s.inode == inode(&a)));

        // The state mask is applied too.
        let (socks, _) = dump_vec(family, 1 << LISTEN, Some((p, p)));
        assert_eq!(socks.len(), 1);
        assert_eq!(socks[0].state, LISTEN);
        let (socks, _) = dump_vec(family, 1 << ESTABLISHED, Some((p, p)));
        assert_eq!(socks.len(), 2);
        assert!(socks.iter().all(|s| s.state == ESTABLISHED));

        // The other family's dump does not see these sockets.
        let other = if v6 { Family::V4 } else { Family::V6 };
        let (socks, _) = dump_vec(other, ALL_STATES, Some((p, p)));
        assert!(socks.iter().all(|s| s.local.v6 != v6));
        drop((c1, c2));
    }

    #[test]
    fn listener_and_children_v4() {
        check_listener(false);
    }

    #[test]
    fn listener_and_children_v6() {
        check_listener(true);
    }

    #[test]
    fn sport_range_is_inclusive_and_exclusive_outside() {
        let mut ls: Vec<OwnedFd> = (0..3).map(|_| bound(false, 0, Some(4)).unwrap()).collect();
        ls.sort_by_key(port_of);
        let ports: Vec<u16> = ls.iter().map(port_of).collect();
        let (lo, hi) = (ports[0], ports[1]);
        let (socks, _) = dump_vec(Family::V4, 1 << LISTEN, Some((lo, hi)));
        assert!(
            socks.iter().all(|s| (lo..=hi).contains(&s.local.port)),
            "{socks:#?}"
        );
        for p in [lo, hi] {
            assert!(socks.iter().any(|s| s.local.port == p), "port {p} missing");
        }
        assert!(!socks.iter().any(|s| s.local.port == ports[2]));
        // Sanity: without the filter the third one is there.
        let (socks, _) = dump_vec(Family::V4, 1 << LISTEN, None);
        assert!(socks.iter().any(|s| s.local.port == ports[2]));
    }

    /// Binds a v4 and a v6 loopback socket to the same port number, so one
    /// port filter catches exactly these two.
    fn same_port_pair(backlog: Option<i32>) -> (OwnedFd, OwnedFd, u16) {
        for _ in 0..50 {
            let a = bound(false, 0, backlog).unwrap();
            let p = port_of(&a);
            if let Ok(b) = bound(true, p, backlog) {
                return (a, b, p);
            }
        }
        panic!("no port free on both 127.0.0.1 and ::1");
    }

    #[test]
    fn both_families_in_one_walk() {
        let (l4, l6, p) = same_port_pair(Some(3));
        let c4 = TcpStream::connect((loopback(false), p)).unwrap();
        let c6 = TcpStream::connect((loopback(true), p)).unwrap();
        let req = DumpRequest {
            family: Family::Both,
            states: ALL_STATES,
            sport: Some((p, p)),
        };
        let mut diag = SockDiag::open().unwrap();
        let mut socks = Vec::new();
        let stats = diag.dump(&req, |s| socks.push(*s)).unwrap();
        // This kernel (6.18) answers the compat request with both families.
        assert_eq!(diag.both_in_one_walk(), Some(true));
        assert_eq!(stats.walks, 1);
        assert_eq!(socks.len(), 4, "{socks:#?}");
        for v6 in [false, true] {
            let fam: Vec<_> = socks.iter().filter(|s| s.local.v6 == v6).collect();
            assert_eq!(fam.len(), 2);
            let l = if v6 { &l6 } else { &l4 };
            assert!(fam
                .iter()
                .any(|s| s.state == LISTEN && s.inode == inode(l) && s.rqueue == 1));
            assert!(fam
                .iter()
                .any(|s| s.state == ESTABLISHED && s.local == ep(v6, p)));
        }
        // The state mask is honoured by the compat request too.
        let req = DumpRequest {
            states: 1 << ESTABLISHED,
            ..req
        };
        let mut n = 0;
        diag.dump(&req, |s| {
            assert_eq!(s.state, ESTABLISHED);
            n += 1
        })
        .unwrap();
        assert_eq!(n, 2);
        // The fallback for kernels without the compat request: two v2 walks.
        diag.compat_ok = Some(false);
        let mut fams = Vec::new();
        let stats = diag.dump(&req, |s| fams.push(s.local.v6)).unwrap();
        assert_eq!(stats.walks, 2);
        assert_eq!(fams, [false, true]);
        assert_eq!(diag.both_in_one_walk(), Some(false));
        drop((c4, c6));
    }

    #[test]
    fn bound_inactive_is_detected_and_dumped() {
        assert!(bound_inactive_supported(), "Linux 6.18 supports state 13");
        let (b4, b6, p) = same_port_pair(None);
        for family in [Family::V4, Family::V6, Family::Both] {
            let (socks, stats) = dump_vec(family, BOUND_INACTIVE_BIT, Some((p, p)));
            let want: &[bool] = match family {
                Family::V4 => &[false],
                Family::V6 => &[true],
                Family::Both => &[false, true],
            };
            assert_eq!(socks.len(), want.len(), "{family:?}: {socks:#?}");
            if family == Family::Both {
                assert_eq!(stats.walks, 1);
            }
            for &v6 in want {
                let s = socks.iter().find(|s| s.local.v6 == v6).unwrap();
                assert_eq!(s.state, CLOSE);
                assert_eq!(s.local, ep(v6, p));
                assert_eq!(s.inode, inode(if v6 { &b6 } else { &b4 }));
            }
        }
        // Without bit 13 a bound-only socket is invisible.
        let (socks, _) = dump_vec(Family::Both, ALL_STATES, Some((p, p)));
        assert!(socks.is_empty(), "{socks:#?}");
    }

    #[test]
    fn bad_requests_are_errors() {
        let mut diag = SockDiag::open().unwrap();
        let req = DumpRequest {
            family: Family::V4,
            states: ALL_STATES,
            sport: Some((10, 9)),
        };
        assert!(matches!(
            diag.dump(&req, |_| {}),
            Err(DiagError::InvalidRequest(_))
        ));
        let req = DumpRequest {
            states: 1 << 20,
            sport: None,
            ..req
        };
        assert!(matches!(
            diag.dump(&req, |_| {}),
            Err(DiagError::InvalidRequest(_))
        ));
    }

    /// A dump abandoned mid-way (panicking callback) does not break the next
    /// one, whether NLMSG_DONE was still queued (the full dump) or already in
    /// the abandoned datagram (a one-port dump fits in one).
    #[test]
    fn abandoned_dump_is_drained() {
        let ls: Vec<OwnedFd> = (0..2).map(|_| bound(false, 0, Some(1)).unwrap()).collect();
        let p = port_of(&ls[1]);
        let mut diag = SockDiag::open().unwrap();
        for sport in [None, Some((p, p))] {
            let req = DumpRequest {
                family: Family::V4,
                states: ALL_STATES,
                sport,
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                diag.dump(&req, |_| panic!("stop")).ok();
            }));
            assert!(r.is_err());
            assert!(diag.pending);
            let req = DumpRequest {
                sport: Some((p, p)),
                ..req
            };
            let mut n = 0;
            diag.dump(&req, |s| {
                assert_eq!(s.local.port, p);
                n += 1
            })
            .unwrap();
            assert_eq!(n, 1);
            assert!(!diag.pending);
        }
    }

    #[test]
    fn usable_from_another_thread() {
        let l = bound(false, 0, Some(1)).unwrap();
        let p = port_of(&l);
        let mut diag = SockDiag::open().unwrap();
        let n = std::thread::spawn(move || {
            let req = DumpRequest {
                family: Family::V4,
                states: 1 << LISTEN,
                sport: Some((p, p)),
            };
            let mut n = 0;
            diag.dump(&req, |_| n += 1).unwrap();
            n
        })
        .join()
        .unwrap();
        assert_eq!(n, 1);
        let _ = l.as_raw_fd();
    }

    // ---- the pure parser, fed real and broken bytes ----

    /// Captures the raw datagrams of a real dump (listener + connections on one
    /// port), so the parser tests use kernel bytes, not hand-typed ones.
    fn capture(kind: ReqKind) -> (Vec<Vec<u8>>, u32, Vec<OwnedFd>, Vec<TcpStream>) {
        let l = bound(false, 0, Some(8)).unwrap();
        let p = port_of(&l);
        let cs: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect((loopback(false), p)).unwrap())
            .collect();
        let mut diag = SockDiag::open().unwrap();
        let seq = 77;
        let mut msg = [0u8; REQ_MAX];
        let len = encode_request(&mut msg, kind, ALL_STATES, Some((p, p)), seq);
        rustix::net::send(&diag.fd, &msg[..len], SendFlags::empty()).unwrap();
        let mut out = Vec::new();
        loop {
            let n = recv_datagram(&diag.fd, &mut diag.buf).unwrap();
            out.push(diag.buf[..n].to_vec());
            if parse_replies(&diag.buf[..n], seq, kind, &mut |_: &DiagSocket| {})
                .unwrap()
                .0
                == Walk::Done
            {
                break;
            }
        }
        (out, seq, vec![l], cs)
    }

    #[test]
    fn parser_reads_real_replies_and_survives_every_truncation() {
        for kind in [ReqKind::V2(AF_INET), ReqKind::Compat] {
            let (dgrams, seq, _l, _c) = capture(kind);
            let mut all = Vec::new();
            let mut done = false;
            for d in &dgrams {
                let before = all.len();
                let (walk, n) =
                    parse_replies(d, seq, kind, &mut |s: &DiagSocket| all.push(*s)).unwrap();
                assert_eq!(n as usize, all.len() - before);
                done = walk == Walk::Done;
            }
            assert!(done);
            assert_eq!(all.len(), 4, "{all:#?}");
            assert_eq!(all.iter().filter(|s| s.state == LISTEN).count(), 1);

            // Every prefix either parses or fails cleanly; a cut inside a message is an error.
            let d = &dgrams[0];
            for cut in 0..d.len() {
                let r = parse_replies(&d[..cut], seq, kind, &mut |_: &DiagSocket| {});
                let on_boundary = {
                    let mut off = 0;
                    while off < cut {
                        off += (u32_at(d, off) as usize).next_multiple_of(4);
                    }
                    off == cut
                };
                assert_eq!(r.is_ok(), on_boundary, "cut at {cut}: {r:?}");
            }
            // Flipping any byte never panics.
            for i in 0..d.len() {
                for v in [0u8, 0xff, 0x80, 1] {
                    let mut m = d.clone();
                    m[i] = v;
                    let _ = parse_replies(&m, seq, kind, &mut |_: &DiagSocket| {});
                }
            }
            // A datagram for another sequence number is skipped, not parsed.
            let (walk, n) = parse_replies(d, seq + 1, kind, &mut |_: &DiagSocket| {}).unwrap();
            assert_eq!((walk, n), (Walk::More, 0));
        }
    }

    fn nlmsg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&2u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// A dump recorded with `dump_tapped` replays into the same sockets; a cut or
    /// foreign recording is an error, never a panic.
    #[test]
    fn recorded_dumps_replay_into_the_same_sockets() {
        let (_l4, _l6, p) = same_port_pair(Some(3));
        let _c = TcpStream::connect((loopback(false), p)).unwrap();
        let req = DumpRequest {
            family: Family::Both,
            states: ALL_STATES,
            sport: Some((p, p)),
        };
        let mut diag = SockDiag::open().unwrap();
        let mut live = Vec::new();
        let mut raw = RawDump::new();
        let stats = diag
            .dump_tapped(&req, |s| live.push(*s), &mut |r| raw.push(r))
            .unwrap();
        let mut again = Vec::new();
        let replayed = replay(raw.as_bytes(), |s| again.push(*s)).unwrap();
        assert_eq!(again, live);
        assert_eq!(replayed.messages, stats.messages);
        assert_eq!(replayed.walks, stats.walks);
        let bytes = raw.as_bytes();
        for cut in 0..bytes.len() {
            assert!(replay(&bytes[..cut], |_| {}).is_err(), "cut at {cut}");
        }
        let mut other = bytes.to_vec();
        other[7] = if other[7] == b'l' { b'b' } else { b'l' };
        assert!(replay(&other, |_| {}).is_err());
        for i in 8..bytes.len().min(200) {
            let mut m = bytes.to_vec();
            m[i] ^= 0xff;
            let _ = replay(&m, |_| {});
        }
    }

    #[test]
    fn parser_errors_on_malformed_input() {
        let k = ReqKind::V2(AF_INET);
        let mut cb = |_: &DiagSocket| {};
        let mut parse = |b: &[u8]| parse_replies(b, 5, k, &mut cb);
        assert_eq!(parse(&[]).unwrap(), (Walk::More, 0));
        let malformed =
            |r: Result<(Walk, u64), DiagError>| matches!(r, Err(DiagError::Malformed { .. }));
        // Short header, length below the header, length past the end.
        assert!(malformed(parse(&[1, 2, 3])));
        let mut m = nlmsg(NLMSG_DONE, 5, &[0; 4]);
        m[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(malformed(parse(&m)));
        m[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(malformed(parse(&m)));
        // A socket message shorter than inet_diag_msg.
        assert!(malformed(parse(&nlmsg(SOCK_DIAG_BY_FAMILY, 5, &[2; 40]))));
        // An unknown address family.
        assert!(malformed(parse(&nlmsg(SOCK_DIAG_BY_FAMILY, 5, &[99; 72]))));
        // An unexpected message type.
        assert!(malformed(parse(&nlmsg(0x99, 5, &[0; 72]))));
        assert!(malformed(parse(&nlmsg(NLMSG_OVERRUN, 5, &[]))));
        // Error codes out of the errno range must not reach Errno (it panics).
        assert!(malformed(parse(&nlmsg(
            NLMSG_ERROR,
            5,
            &i32::MIN.to_ne_bytes()
        ))));
        assert!(malformed(parse(&nlmsg(
            NLMSG_ERROR,
            5,
            &7i32.to_ne_bytes()
        ))));
        assert!(malformed(parse(&nlmsg(
            NLMSG_DONE,
            5,
            &(-5000i32).to_ne_bytes()
        ))));
        assert!(malformed(parse(&nlmsg(NLMSG_ERROR, 5, &[]))));
        // NLMSG_ERROR and NLMSG_DONE with -errno are kernel errors with that errno.
        for ty in [NLMSG_ERROR, NLMSG_DONE] {
            match parse(&nlmsg(ty, 5, &(-22i32).to_ne_bytes())) {
                Err(DiagError::Kernel { errno, .. }) => assert_eq!(errno, Errno::INVAL),
                r => panic!("{r:?}"),
            }
        }
        // DONE without its int, and an ACK, end the dump.
        assert_eq!(parse(&nlmsg(NLMSG_DONE, 5, &[])).unwrap(), (Walk::Done, 0));
        assert_eq!(
            parse(&nlmsg(NLMSG_ERROR, 5, &[0; 20])).unwrap(),
            (Walk::Done, 0)
        );
        // The offset names the message that is wrong, not the one after it.
        let mut two = nlmsg(NLMSG_NOOP, 5, &[]);
        two.extend(nlmsg(0x99, 5, &[]));
        match parse(&two) {
            Err(DiagError::Malformed {
                offset: 16,
                len: 32,
                ..
            }) => {}
            r => panic!("{r:?}"),
        }
        // NOOP is skipped.
        assert_eq!(parse(&nlmsg(NLMSG_NOOP, 5, &[])).unwrap(), (Walk::More, 0));
    }

    #[test]
    fn kernel_rejects_are_reported_with_errno() {
        // A bytecode op jumping into the middle of the program fails the audit.
        let mut diag = SockDiag::open().unwrap();
        let mut msg = [0u8; REQ_MAX];
        let len = encode_request(&mut msg, ReqKind::V2(AF_INET), ALL_STATES, Some((1, 2)), 9);
        msg[NLMSG_HDRLEN + REQ_V2_LEN + 4 + 2] = 6; // S_GE no = 6: misaligned
        rustix::net::send(&diag.fd, &msg[..len], SendFlags::empty()).unwrap();
        let n = recv_datagram(&diag.fd, &mut diag.buf).unwrap();
        match parse_replies(
            &diag.buf[..n],
            9,
            ReqKind::V2(AF_INET),
            &mut |_: &DiagSocket| {},
        ) {
            Err(e @ DiagError::Kernel { errno, .. }) => {
                assert_eq!(errno, Errno::INVAL);
                assert!(e.to_string().contains("os error 22"), "{e}");
            }
            r => panic!("{r:?}"),
        }
    }
}
