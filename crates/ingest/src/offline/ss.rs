//! `ss` outputs: the summary (`ss -s`, current and pre-4.17 iproute2) and the socket
//! listings (`ss -tan`, `-tanp`, `-tanoemi`, sosreport's `-peaonmi`, mixed-protocol
//! `-aonp`, with or without a header).
//!
//! Listings are parsed on bytes, with no allocation per line, and each socket goes
//! into the live collector's aggregator ([`Offline::sockets`]), so the offline
//! figures are the live ones. A saved file of 1 MiB or more is memory-mapped and
//! read in place, in one part per two cores ([`parse_parts`]); anything else is
//! read line by line from one reused buffer. Either way one thread parses while
//! another aggregates ([`streamed`]).

use super::builder::{SocketPart, Sockets};
use super::{Input, Offline, SsSummary};
use sockmedic_collect::sockdiag::{DiagSocket, ALL_STATES};
use sockmedic_model::Endpoint;
use std::io::BufRead;
use std::net::Ipv6Addr;

// ---------------------------------------------------------------- shared helpers

/// Calls `f` with every line of `text` (without its end of line), straight from
/// the reader's buffer: no copy and no allocation per line, whatever the size of
/// the input (only a line that spans two buffer fills is put together).
pub(super) fn for_each_line(
    text: &mut dyn BufRead,
    mut f: impl FnMut(&[u8]),
) -> Result<(), String> {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let buf = match text.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        let n = buf.len();
        if n == 0 {
            if !carry.is_empty() {
                f(trim_eol(&carry));
            }
            return Ok(());
        }
        let mut rest = buf;
        if !carry.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    carry.extend_from_slice(&rest[..i]);
                    f(trim_eol(&carry));
                    carry.clear();
                    rest = &rest[i + 1..];
                }
                None => {
                    carry.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        for line in memchr::memchr_iter(b'\n', rest).scan(0, |start, i| {
            let l = &rest[*start..i];
            *start = i + 1;
            Some(l)
        }) {
            f(trim_eol(line));
        }
        if let Some(last) = memchr::memrchr(b'\n', rest) {
            rest = &rest[last + 1..];
        }
        carry.extend_from_slice(rest);
        text.consume(n);
    }
}

fn trim_eol(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}

/// Whitespace-separated fields of a line, keeping the position so that the rest
/// of the line can be looked at as it is (a process name may hold spaces).
pub(super) struct Fields<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(super) fn new(line: &'a [u8]) -> Fields<'a> {
        Fields { line, pos: 0 }
    }
    /// What follows the fields taken so far, leading blanks skipped.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        self.skip_blanks();
        &self.line[self.pos..]
    }
    fn skip_blanks(&mut self) {
        let l = self.line;
        // ss pads its columns with long runs of spaces: 8 bytes at a time.
        while let Some(w) = word(l, self.pos) {
            let not_space = w ^ (ONES * u64::from(b' '));
            if not_space == 0 {
                self.pos += 8;
                continue;
            }
            self.pos += not_space.trailing_zeros() as usize / 8;
            if !is_blank(l[self.pos]) {
                return;
            }
            self.pos += 1;
        }
        while self.pos < l.len() && is_blank(l[self.pos]) {
            self.pos += 1;
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.skip_blanks();
        let l = self.line;
        let start = self.pos;
        // The field ends at the first blank: 8 bytes at a time, looking for a
        // byte up to ' ' (blanks, and the other control bytes, which are not).
        while let Some(w) = word(l, self.pos) {
            match first_below(w, 0x21) {
                None => self.pos += 8,
                Some(i) => {
                    self.pos += i;
                    if is_blank(l[self.pos]) {
                        return Some(&l[start..self.pos]);
                    }
                    self.pos += 1;
                }
            }
        }
        while self.pos < l.len() && !is_blank(l[self.pos]) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &l[start..self.pos])
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// The 8 bytes of `l` at `pos`, little-endian, if there are 8.
fn word(l: &[u8], pos: usize) -> Option<u64> {
    let b: [u8; 8] = l.get(pos..pos + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// The first of the 8 bytes of `w` below `n` (`n` at most 128). The borrows of
/// the subtraction can only mark bytes after a marked one: the first is exact.
fn first_below(w: u64, n: u8) -> Option<usize> {
    let m = w.wrapping_sub(ONES * u64::from(n)) & !w & (ONES * 0x80);
    (m != 0).then(|| m.trailing_zeros() as usize / 8)
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c')
}

/// A decimal number; `None` for anything else (empty, sign, overflow).
pub(super) fn num(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in t {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

/// A queue or id that must fit 32 bits (saturating: a queue is never negative).
pub(super) fn num32(t: &[u8]) -> Option<u32> {
    num(t).map(|v| v.min(u64::from(u32::MAX)) as u32)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A dotted IPv4 address, by hand: this runs for every endpoint of a listing.
fn ipv4(t: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut part = 0usize;
    let mut val: u16 = 0;
    let mut digits = 0;
    for &b in t {
        match b {
            b'0'..=b'9' => {
                val = val * 10 + u16::from(b - b'0');
                digits += 1;
                if digits > 3 || val > 255 {
                    return None;
                }
            }
            b'.' if digits > 0 && part < 3 => {
                out[part] = val as u8;
                part += 1;
                val = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if part != 3 || digits == 0 {
        return None;
    }
    out[3] = val as u8;
    Some(out)
}

fn ipv6(t: &[u8]) -> Option<[u8; 16]> {
    let s = std::str::from_utf8(t).ok()?;
    s.parse::<Ipv6Addr>().ok().map(|a| a.octets())
}

/// Well-known service names, for listings saved without `-n` (`ss -ta`, `netstat
/// -ta`): the ports that matter in socket trouble. Others read as port 0.
const SERVICES: &[(&str, u16)] = &[
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("pop3", 110),
    ("sunrpc", 111),
    ("imap", 143),
    ("imap2", 143),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("submission", 587),
    ("ipp", 631),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
    ("mysql", 3306),
    ("postgresql", 5432),
    ("xmpp-client", 5222),
    ("redis", 6379),
    ("ircd", 6667),
    ("http-alt", 8080),
    ("webcache", 8080),
];

fn port(t: &[u8]) -> Option<u16> {
    if t == b"*" {
        return Some(0);
    }
    if let Some(v) = num(t) {
        return u16::try_from(v).ok();
    }
    if t.is_empty() || !t.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
        return None;
    }
    Some(
        SERVICES
            .iter()
            .find(|(n, _)| n.as_bytes() == t)
            .map_or(0, |s| s.1),
    )
}

/// An endpoint as `ss` or `netstat` prints it: `1.2.3.4:80`, `[::1]:80`,
/// `[::ffff:1.2.3.4]:80`, `*:80`, `0.0.0.0:*`, `127.0.0.53%lo:53`,
/// `[fe80::1]%eth0:22`, and the unbracketed IPv6 of older tools (`:::22`,
/// `::ffff:10.0.0.1:80`). `star_v6`: whether a bare `*` is IPv6's unspecified
/// address (current ss prints a dual-stack `[::]` listener as `*`; old ss printed
/// IPv4's `0.0.0.0` as `*`). `None` when it is not an endpoint.
pub(super) fn endpoint(t: &[u8], star_v6: bool) -> Option<Endpoint> {
    if let Some(e) = dotted_endpoint(t) {
        return Some(e);
    }
    let colon = t.iter().rposition(|&b| b == b':')?;
    let p = port(&t[colon + 1..])?;
    let mut addr = &t[..colon];
    if let [b'[', inner @ ..] = addr {
        let close = inner.iter().position(|&b| b == b']')?;
        addr = &inner[..close];
    }
    if let Some(pct) = addr.iter().position(|&b| b == b'%') {
        addr = &addr[..pct];
    }
    if addr == b"*" {
        return Some(if star_v6 {
            Endpoint::v6([0; 16], p)
        } else {
            Endpoint::v4([0; 4], p)
        });
    }
    if addr.contains(&b':') {
        return ipv6(addr).map(|a| Endpoint::v6(a, p));
    }
    ipv4(addr).map(|a| Endpoint::v4(a, p))
}

/// `a.b.c.d:port` in one pass: most endpoints of most listings, so it is tried
/// first; anything else is left to [`endpoint`]'s general path.
fn dotted_endpoint(t: &[u8]) -> Option<Endpoint> {
    let mut out = [0u8; 4];
    let (mut part, mut val, mut digits) = (0usize, 0u32, 0u32);
    for (i, &b) in t.iter().enumerate() {
        match b {
            b'0'..=b'9' if digits < 3 => {
                val = val * 10 + u32::from(b - b'0');
                digits += 1;
            }
            b'.' | b':' if digits > 0 && val <= 255 => {
                out[part] = val as u8;
                if b == b':' {
                    return (part == 3)
                        .then(|| port(&t[i + 1..]))
                        .flatten()
                        .map(|p| Endpoint::v4(out, p));
                }
                if part == 3 {
                    return None;
                }
                (part, val, digits) = (part + 1, 0, 0);
            }
            _ => return None,
        }
    }
    None
}

/// `1 << state` of every state but LISTEN and CLOSE: what `netstat -tn` (no
/// `-a`) covers.
pub(super) const CONNECTED_STATES: u32 = ALL_STATES & !(1 << 10) & !(1 << 7);
/// What `ss -tn` (no `-a`) covers: ss's `SS_CONN` also leaves out TIME-WAIT and
/// SYN-RECV.
pub(super) const SS_CONN: u32 = CONNECTED_STATES & !(1 << 6) & !(1 << 3);
pub(super) const LISTEN_BIT: u32 = 1 << 10;

/// The states a listing covered, from the states it showed: LISTEN and others
/// (`-a`), only LISTEN (`-l`), or no LISTEN (no `-a`: the tool's `without_a`
/// set, plus any state it showed anyway). The content decides, since the command
/// line is not saved.
pub(super) fn listed_mask(seen: u32, without_a: u32) -> u32 {
    if seen & LISTEN_BIT == 0 {
        without_a | seen
    } else if seen & !LISTEN_BIT == 0 {
        LISTEN_BIT
    } else {
        ALL_STATES
    }
}

/// What a listing could not be read of: lines that are not socket records (a
/// truncated last line, pasted prompts) are skipped and counted, never guessed.
pub(super) fn note_skipped(out: &mut Offline, input: &Input, what: &str, bad: u64, total: u64) {
    if bad > 0 {
        out.missing(
            format!("{} ({what})", input.name),
            format!("{bad} of {total} lines are not socket records (skipped)"),
        );
    }
}

// ---------------------------------------------------------------- ss -s

/// `ss -s`: a `TCP:` line with `(estab ...`, in the first lines.
pub(super) fn summary_sniff(head: &str, _: &Input) -> bool {
    head.lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .any(|l| l.starts_with("TCP:") && l.contains("(estab"))
}

/// `ss -s`, current (`TCP: 174 (estab 63, closed 52, orphaned 24, timewait 28)`)
/// and before iproute2 4.17 (`... synrecv 0, timewait 3/0), ports 12036`), with
/// its transport table (`TCP  122  65  57`: sockstat's `inuse` of each family).
pub(super) fn summary_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let mut s = SsSummary::default();
    let mut saw_tcp = false;
    let mut inuse: Option<(u64, u64)> = None;
    for_each_line(text, |line| {
        let mut f = Fields::new(line);
        match f.next() {
            Some(b"Total:") => s.total = f.next().and_then(num),
            Some(b"TCP:") => {
                saw_tcp = true;
                summary_tcp_line(f.rest(), &mut s);
            }
            // The transport table's row: hashed sockets (sockstat inuse) per family.
            Some(b"TCP") => {
                let v: Vec<Option<u64>> = f.take(3).map(num).collect();
                if let [Some(_), Some(v4), Some(v6)] = v[..] {
                    inuse = Some((v4, v6));
                }
            }
            _ => {}
        }
    })?;
    if !saw_tcp || s.tcp_total.is_none() {
        return Err(format!("{}: no `TCP: N (estab ...)` line", input.name));
    }
    out.ss_summary(s);
    if let Some((v4, v6)) = inuse {
        out.sockstat("TCP", "inuse", v4);
        out.sockstat("TCP6", "inuse", v6);
    }
    Ok(())
}

/// `146848 (estab 29556, closed 5114, orphaned 94904, synrecv 9402, timewait
/// 4823/5226), ports 10946`.
fn summary_tcp_line(rest: &[u8], s: &mut SsSummary) {
    let mut f = Fields::new(rest);
    s.tcp_total = f.next().and_then(num);
    let rest = f.rest();
    let (inside, after) = match rest.iter().position(|&b| b == b')') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    for part in inside.split(|&b| b == b',') {
        let mut kv = Fields::new(part);
        let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
            continue;
        };
        let k = k.strip_prefix(b"(").unwrap_or(k);
        // `timewait 4823/5226`: the first is sockstat's tw; the second was slabinfo's.
        let v = num(v.split(|&b| b == b'/').next().unwrap_or(v));
        match k {
            b"estab" => s.estab = v,
            b"closed" => s.closed = v,
            b"orphaned" => s.orphaned = v,
            b"synrecv" => s.synrecv = v,
            b"timewait" => s.timewait = v,
            _ => {}
        }
    }
    let mut a = Fields::new(after);
    while let Some(t) = a.next() {
        if t == b"ports" {
            s.ports = a
                .next()
                .and_then(|v| num(v.strip_suffix(b",").unwrap_or(v)));
        }
    }
}

// ---------------------------------------------------------------- ss listings

/// The kernel state number of a state as ss prints it.
pub(super) fn ss_state(t: &[u8]) -> Option<u8> {
    Some(match t {
        b"ESTAB" => 1,
        b"SYN-SENT" => 2,
        b"SYN-RECV" => 3,
        b"FIN-WAIT-1" => 4,
        b"FIN-WAIT-2" => 5,
        b"TIME-WAIT" => 6,
        b"UNCONN" => 7,
        b"CLOSE-WAIT" => 8,
        b"LAST-ACK" => 9,
        b"LISTEN" => 10,
        b"CLOSING" => 11,
        _ => return None,
    })
}

fn is_header(line: &[u8]) -> bool {
    (line.starts_with(b"State") || line.starts_with(b"Netid"))
        && (find(line, b"Local Address").is_some() || find(line, b"Recv-Q").is_some())
}

/// An ss listing: its header, or (`-H`) lines that read as ss records.
pub(super) fn listing_sniff(head: &str, _: &Input) -> bool {
    let lines: Vec<&str> = head
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with([' ', '\t']))
        .take(20)
        .collect();
    let Some(first) = lines.first() else {
        return false;
    };
    if is_header(first.as_bytes()) {
        return true;
    }
    let mut l = Layout::default();
    let good = lines
        .iter()
        .filter(|x| matches!(l.record(x.as_bytes()), Line::Socket(_) | Line::Other))
        .count();
    good * 10 >= lines.len() * 8 && lines.iter().any(|x| l.record(x.as_bytes()).is_socket())
}

/// What is known of the listing's shape so far.
#[derive(Default)]
struct Layout {
    /// A bare `*` address is IPv6's (current ss; see [`endpoint`]).
    star_v6: bool,
    /// An address starting with `*` was read while `star_v6` was not set: the
    /// lines of a part parsed apart depend on what the parts before it set.
    star_unsure: bool,
    /// `users:((...))` of the last socket: (comm range in the line, pid).
    users: Vec<(usize, usize, u32)>,
}

enum Line {
    Socket(DiagSocket),
    /// A continuation (`-i`, `-m`), a header, another protocol's socket.
    Other,
    Bad,
}

impl Line {
    fn is_socket(&self) -> bool {
        matches!(self, Line::Socket(_))
    }
}

impl Layout {
    fn record(&mut self, line: &[u8]) -> Line {
        self.users.clear();
        match line.first() {
            None => return Line::Other,
            Some(b) if is_blank(*b) => return Line::Other,
            _ => {}
        }
        if is_header(line) {
            self.star_v6 |= find(line, b"Process").is_some();
            return Line::Other;
        }
        let mut f = Fields::new(line);
        let Some(first) = f.next() else {
            return Line::Other;
        };
        let state = match ss_state(first) {
            Some(s) => s,
            // `Netid State ...`: keep TCP (`ss -aonp`, sosreport's `-peaonmi`).
            None => match f.next().and_then(ss_state) {
                Some(s) if first == b"tcp" => s,
                Some(_) => return Line::Other,
                None => return Line::Bad,
            },
        };
        let mut s = DiagSocket {
            state,
            // The kernel's TIME-WAIT minisocks always run the TIME-WAIT timer.
            timer: if state == 6 { 3 } else { 0 },
            ..DiagSocket::default()
        };
        let Some(mut t) = f.next() else {
            return Line::Bad;
        };
        // Recv-Q and Send-Q (left out with `-Q`).
        if let Some(rq) = num32(t) {
            let (Some(wq), Some(next)) = (f.next().and_then(num32), f.next()) else {
                return Line::Bad;
            };
            (s.rqueue, s.wqueue, t) = (rq, wq, next);
        }
        if !self.star_v6 && (t.starts_with(b"[") || t.starts_with(b"0.0.0.0:")) {
            // Only current ss brackets IPv6 and spells out 0.0.0.0.
            self.star_v6 = true;
        }
        let Some(local) = endpoint(t, self.star_v6) else {
            return Line::Bad;
        };
        let Some(r) = f.next() else {
            return Line::Bad;
        };
        if !self.star_v6 && (t[0] == b'*' || r[0] == b'*') {
            self.star_unsure = true;
        }
        let Some(remote) = endpoint(r, self.star_v6) else {
            return Line::Bad;
        };
        (s.local, s.remote) = (local, remote);
        let rest = f.rest();
        if !rest.is_empty() {
            let base = line.len() - rest.len();
            self.extras(rest, base, &mut s);
        }
        Line::Socket(s)
    }

    /// `-o`, `-e`, `-p` fields after the endpoints: `timer:(on,524ms,1)`,
    /// `uid:1000 ino:12345 sk:1a2b`, `users:(("nginx",pid=1234,fd=5),...)`.
    fn extras(&mut self, rest: &[u8], base: usize, s: &mut DiagSocket) {
        let mut f = Fields::new(rest);
        while let Some(t) = f.next() {
            if t.starts_with(b"users:(") {
                // A process name may hold blanks: parse from here, then go on
                // after the closing parenthesis.
                let from = f.pos - t.len() + 7;
                let used = self.users_list(&rest[from..], base + from);
                f.pos = f.pos.max((from + used).min(rest.len()));
            } else if let Some(v) = t.strip_prefix(b"ino:") {
                s.inode = num32(v).unwrap_or(0);
            } else if let Some(v) = t.strip_prefix(b"uid:") {
                s.uid = num32(v).unwrap_or(0);
            } else if let Some(v) = t.strip_prefix(b"sk:") {
                s.cookie = hex(v).unwrap_or(0);
            } else if let Some(v) = t.strip_prefix(b"timer:(") {
                timer(v, s);
            }
        }
    }

    /// The processes of `users:(("nginx",pid=1234,fd=5),("nginx",pid=1235,fd=5))`
    /// (old ss: `("sshd",1015,4)`); `s` starts just after `users:(`, at `off` in
    /// the line. Each pid once, however many of its fds hold the socket. Returns
    /// the bytes consumed.
    fn users_list(&mut self, s: &[u8], off: usize) -> usize {
        let mut i = 0;
        while s.get(i) == Some(&b'(') && s.get(i + 1) == Some(&b'"') {
            let name0 = i + 2;
            // The name ends at the quote followed by a comma.
            let Some(q) = find(&s[name0..], b"\",") else {
                break;
            };
            let name1 = name0 + q;
            let body0 = name1 + 2;
            let body1 = s[body0..]
                .iter()
                .position(|&b| b == b')')
                .map_or(s.len(), |e| body0 + e);
            let body = &s[body0..body1];
            let pid = body
                .split(|&b| b == b',')
                .find_map(|kv| kv.strip_prefix(b"pid=").and_then(num32))
                .or_else(|| body.split(|&b| b == b',').next().and_then(num32));
            if let Some(pid) = pid {
                if !self.users.iter().any(|u| u.2 == pid) {
                    self.users.push((off + name0, off + name1, pid));
                }
            }
            i = body1 + 1;
            if s.get(i) == Some(&b',') {
                i += 1;
            }
        }
        i.max(1)
    }
}

fn hex(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in t {
        v = v << 4 | u64::from((b as char).to_digit(16)?);
    }
    Some(v)
}

/// `on,524ms,1)`: the timer's name, time left and retransmissions.
fn timer(v: &[u8], s: &mut DiagSocket) {
    let v = v.strip_suffix(b")").unwrap_or(v);
    let mut parts = v.split(|&b| b == b',');
    s.timer = match parts.next() {
        Some(b"on") => 1,
        Some(b"keepalive") => 2,
        Some(b"timewait") => 3,
        Some(b"persist") => 4,
        _ => 0,
    };
    s.expires_ms = parts.next().map_or(0, duration_ms);
    s.retrans = parts.next().and_then(num).map_or(0, |r| r.min(255) as u8);
}

/// ss's timer durations (`print_ms_timer`): `524ms`, `59sec`, `1min2sec`,
/// `2.345ms` (that is 2 s 345 ms), `119min`.
fn duration_ms(t: &[u8]) -> u32 {
    let mut ms: u64 = 0;
    let mut cur: u64 = 0;
    let mut i = 0;
    while i < t.len() {
        let b = t[i];
        if b.is_ascii_digit() {
            cur = cur.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            i += 1;
            continue;
        }
        let rest = &t[i..];
        if rest.starts_with(b"min") {
            ms = ms.saturating_add(cur.saturating_mul(60_000));
            i += 3;
        } else if rest.starts_with(b"sec") {
            ms = ms.saturating_add(cur.saturating_mul(1000));
            i += 3;
        } else if rest.starts_with(b"ms") {
            ms = ms.saturating_add(cur);
            i += 2;
        } else if b == b'.' {
            ms = ms.saturating_add(cur.saturating_mul(1000));
            i += 1;
        } else {
            break;
        }
        cur = 0;
    }
    ms.min(u64::from(u32::MAX)) as u32
}

/// Any ss socket listing: each TCP socket to [`Offline::socket`], and with `-p`
/// to [`Offline::process_socket`] once per process holding it. A large saved
/// file is mapped and parsed in parallel parts ([`parse_parts`]); anything else
/// (standard input, a pipe, a part of a container) is streamed.
pub(super) fn listing_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    if let Some(map) = Mapped::of(text, input) {
        let tally = parse_parts(map.bytes(), out, parts_for(map.bytes().len()));
        return listing_done(tally, out, input);
    }
    let mut layout = Layout::default();
    let mut t = Tally::default();
    streamed(out, |sink| {
        for_each_line(text, |line| {
            t.line(&mut layout, line, |s, users| {
                sink.socket(s);
                for &(a, b, pid) in users {
                    sink.process(pid, line.get(a..b).unwrap_or_default());
                }
            })
        })
    })?;
    listing_done(t, out, input)
}

/// What a listing (or a part of it) held.
#[derive(Default, Clone, Copy)]
struct Tally {
    /// `1 << state` of the states seen.
    seen: u32,
    sockets: u64,
    bad: u64,
    lines: u64,
}

impl Tally {
    /// Reads one line, giving its socket (and the processes holding it) to `sink`.
    fn line(
        &mut self,
        layout: &mut Layout,
        line: &[u8],
        sink: impl FnOnce(&DiagSocket, &[(usize, usize, u32)]),
    ) {
        self.lines += 1;
        match layout.record(line) {
            Line::Socket(s) => {
                self.sockets += 1;
                self.seen |= 1 << s.state;
                sink(&s, &layout.users);
            }
            Line::Bad if !line.iter().all(|b| is_blank(*b)) => self.bad += 1,
            _ => {}
        }
    }
    fn add(&mut self, o: Tally) {
        self.seen |= o.seen;
        self.sockets += o.sockets;
        self.bad += o.bad;
        self.lines += o.lines;
    }
}

fn listing_done(t: Tally, out: &mut Offline, input: &Input) -> Result<(), String> {
    if t.sockets == 0 && t.bad > 0 {
        return Err(format!(
            "{}: no socket line in {} lines: not an ss listing",
            input.name, t.lines
        ));
    }
    out.listing(listed_mask(t.seen, SS_CONN));
    note_skipped(out, input, "ss listing", t.bad, t.lines);
    Ok(())
}

// ---------------------------------------------------------------- parallel parts

/// Files smaller than this are streamed; larger ones are cut in parts of at
/// least this much, one per two cores.
const PART_MIN: usize = 1 << 20;

/// How many parts to parse `len` bytes in: one per two cores, each part read
/// by one thread and aggregated by another ([`parse_part`]). Measured on a
/// million-line `ss -tan` with 2 cores, a parser feeding an aggregator beats
/// two threads each parsing and aggregating half then merged (~105 vs ~150 ms
/// median, less CPU in all): each core's caches hold one job's data (the
/// top-N tables, megabytes, are not evicted by the text streaming past), and
/// nothing is merged.
fn parts_for(len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).min(len / PART_MIN).clamp(1, 64)
}

/// A saved file mapped in memory, read in place.
struct Mapped(memmap2::Mmap);

impl Mapped {
    /// The file `text` reads, mapped, when it is a whole regular file of at
    /// least [`PART_MIN`] bytes. `input` names the file; a part of a container
    /// (a supportconfig section) names a path it was not read from, so the name
    /// must be the path itself and the file must start with what `text` holds.
    fn of(text: &mut dyn BufRead, input: &Input) -> Option<Mapped> {
        let path = input.path.as_deref()?;
        if input.name != path.display().to_string() {
            return None;
        }
        let file = std::fs::File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() < PART_MIN as u64 {
            return None;
        }
        // SAFETY: the map is private and read-only, of a file opened read-only,
        // and only ever read as bytes (any content is valid input). A file
        // rewritten while mapped gives garbled lines, handled as any bad line;
        // a file *truncated* by another process while mapped makes the reads
        // past its new end fault (SIGBUS): a documented risk of `--from` on a
        // file that is being cut, which saved outputs are not.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let head = text.fill_buf().ok()?;
        map.starts_with(head).then_some(Mapped(map))
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Cuts `data` in about `n` parts of whole records: after a newline, and never
/// before a continuation line (`-i`, `-m` and `-o` details start with a blank
/// and belong to the socket above).
fn split_records(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..n {
        let mut cut = (data.len() / n * k).max(start);
        loop {
            cut = match memchr::memchr(b'\n', &data[cut..]) {
                Some(i) => cut + i + 1,
                None => data.len(),
            };
            if cut >= data.len() || !is_blank(data[cut]) {
                break;
            }
        }
        if cut >= data.len() {
            break;
        }
        parts.push(&data[start..cut]);
        start = cut;
    }
    parts.push(&data[start..]);
    parts
}

/// Each line of `data`, without its end of line (as [`for_each_line`]).
fn each_line(data: &[u8], mut f: impl FnMut(&[u8])) {
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', data) {
        f(trim_eol(&data[start..i]));
        start = i + 1;
    }
    if start < data.len() {
        f(trim_eol(&data[start..]));
    }
}

/// One part parsed: its sockets, what it held, and how it left the layout.
struct Parsed {
    part: SocketPart,
    tally: Tally,
    star_v6_at_start: bool,
    star_v6_at_end: bool,
    star_unsure: bool,
}

/// Parses one part into `part`, on this thread, its sockets aggregated on
/// another ([`streamed`]).
fn parse_part(data: &[u8], star_v6: bool, mut part: SocketPart) -> Parsed {
    let mut layout = Layout {
        star_v6,
        ..Layout::default()
    };
    let mut tally = Tally::default();
    streamed_ahead(&mut part, data, |sink| {
        each_line(data, |line| {
            tally.line(&mut layout, line, |s, users| {
                sink.socket(s);
                for &(a, b, pid) in users {
                    sink.process(pid, line.get(a..b).unwrap_or_default());
                }
            })
        })
    });
    Parsed {
        part,
        tally,
        star_v6_at_start: star_v6,
        star_v6_at_end: layout.star_v6,
        star_unsure: layout.star_unsure,
    }
}

/// Parses a whole listing in `n` parts in parallel, each into its own
/// aggregate ([`parse_part`]), folded into `out` in the listing's order. A part's lines are read
/// as if the parts before it had been read first: the one thing a line leaves
/// for the next ones is whether a bare `*` is IPv6's, and a part that read such
/// an address without knowing it is read again knowing it (rare: listeners,
/// where `*` addresses are, come first).
fn parse_parts(data: &[u8], out: &mut Offline, n: usize) -> Tally {
    let parts = split_records(data, n);
    let mut parsed: Vec<Parsed> = Vec::with_capacity(parts.len());
    let fresh: Vec<SocketPart> = parts.iter().map(|_| out.socket_part()).collect();
    std::thread::scope(|scope| {
        let mut fresh = fresh.into_iter();
        let first = fresh.next();
        let handles: Vec<_> = parts[1..]
            .iter()
            .zip(fresh)
            .map(|(&data, part)| {
                std::thread::Builder::new()
                    .name("parse".into())
                    .spawn_scoped(scope, move || parse_part(data, false, part))
                    .map_err(|_| data)
            })
            .collect();
        if let Some(part) = first {
            parsed.push(parse_part(parts[0], false, part));
        }
        for h in handles {
            parsed.push(match h {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                // No thread: parse it here.
                Err(data) => parse_part(data, false, out.socket_part()),
            });
        }
    });
    let mut star_v6 = false;
    let mut tally = Tally::default();
    for (i, mut p) in parsed.into_iter().enumerate() {
        if star_v6 && !p.star_v6_at_start && p.star_unsure {
            p = parse_part(parts[i], true, out.socket_part());
        }
        star_v6 |= p.star_v6_at_end;
        tally.add(p.tally);
        out.merge_part(p.part);
    }
    tally
}

// ---------------------------------------------------------------- two threads

/// Sockets per batch handed from the parsing thread to the aggregating one.
const BATCH: usize = 4096;

/// Parsed sockets on their way to the aggregator, with the processes of `-p`
/// listings (names packed in one buffer: no allocation per line). Batches are
/// sent back empty and reused.
#[derive(Default)]
struct Batch {
    sockets: Vec<DiagSocket>,
    /// (pid, name start, name end in `names`, index in `sockets`).
    procs: Vec<(u32, u32, u32, u32)>,
    names: Vec<u8>,
}

impl Batch {
    fn apply(&self, out: &mut impl Sockets) {
        // The sockets go in by batches; the processes of -p after them (a
        // process tally does not depend on the aggregate).
        out.sockets(&self.sockets);
        let mut procs = self.procs.iter().peekable();
        for (i, s) in self.sockets.iter().enumerate() {
            while let Some(&(pid, a, b, _)) = procs.next_if(|p| p.3 as usize == i) {
                let name = self.names.get(a as usize..b as usize).unwrap_or_default();
                out.process_socket(pid, &String::from_utf8_lossy(name), s);
            }
        }
    }
    fn clear(&mut self) {
        self.sockets.clear();
        self.procs.clear();
        self.names.clear();
    }
}

/// Where a parser puts the sockets it reads: a second thread aggregates them
/// while the first goes on parsing, so a listing costs about the larger of the
/// two instead of their sum (about even: ~80 ns a line each for `ss -tan`).
pub(super) struct Sink<'o, S> {
    batch: Batch,
    to_aggregator: Option<std::sync::mpsc::SyncSender<Batch>>,
    reused: Option<std::sync::mpsc::Receiver<Batch>>,
    /// No second thread could be started: aggregate here (`last`: the socket
    /// the next `process` is about).
    direct: Option<&'o mut S>,
    last: DiagSocket,
}

impl<S: Sockets> Sink<'_, S> {
    /// A socket of the listing.
    pub(super) fn socket(&mut self, s: &DiagSocket) {
        if let Some(out) = self.direct.as_deref_mut() {
            out.sockets(std::slice::from_ref(s));
            self.last = *s;
            return;
        }
        if self.batch.sockets.len() >= BATCH {
            self.send();
        }
        self.batch.sockets.push(*s);
    }
    /// A process holding the socket given last.
    pub(super) fn process(&mut self, pid: u32, name: &[u8]) {
        if let Some(out) = self.direct.as_deref_mut() {
            out.process_socket(pid, &String::from_utf8_lossy(name), &self.last);
            return;
        }
        let Some(i) = self.batch.sockets.len().checked_sub(1) else {
            return;
        };
        let a = self.batch.names.len();
        self.batch.names.extend_from_slice(name);
        let b = self.batch.names.len();
        self.batch.procs.push((pid, a as u32, b as u32, i as u32));
    }
    fn send(&mut self) {
        let next = self
            .reused
            .as_ref()
            .and_then(|r| r.try_recv().ok())
            .unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.to_aggregator {
            let _ = tx.send(full);
        }
    }
}

/// Runs `produce` (the parsing, on this thread) with a [`Sink`] whose sockets are
/// aggregated into `out` on a second thread (or here, if none can be started).
pub(super) fn streamed<S: Sockets + Send, T>(
    out: &mut S,
    produce: impl FnOnce(&mut Sink<S>) -> T,
) -> T {
    streamed_ahead(out, &[], produce)
}

/// Bytes of `ahead` the aggregating thread touches at a time while it waits.
const AHEAD_STEP: usize = 256 << 10;

/// [`streamed`] of a mapped `ahead`: while it waits for sockets, the
/// aggregating thread reads a byte of each page of `ahead` from the start, so
/// that the pages are mapped before the parsing thread (the slower of the two)
/// gets to them: the page faults are taken in the aggregator's idle time.
fn streamed_ahead<S: Sockets + Send, T>(
    out: &mut S,
    ahead: &[u8],
    produce: impl FnOnce(&mut Sink<S>) -> T,
) -> T {
    use std::sync::mpsc::sync_channel;
    use std::sync::Mutex;
    // The aggregator takes `out` from here; if it cannot be started, this thread does.
    let slot = Mutex::new(Some(out));
    let (tx, rx) = sync_channel::<Batch>(4);
    let (back_tx, back_rx) = sync_channel::<Batch>(8);
    std::thread::scope(|scope| {
        let from = &slot;
        let spawned = std::thread::Builder::new()
            .name("aggregate".into())
            .spawn_scoped(scope, move || {
                let Some(out) = from.lock().ok().and_then(|mut o| o.take()) else {
                    return;
                };
                let mut touched = 0;
                loop {
                    let next = if touched < ahead.len() {
                        match rx.try_recv() {
                            Ok(b) => Some(b),
                            Err(std::sync::mpsc::TryRecvError::Empty) => {
                                let end = (touched + AHEAD_STEP).min(ahead.len());
                                let page = ahead[touched..end]
                                    .iter()
                                    .step_by(4096)
                                    .fold(0u8, |a, b| a ^ b);
                                std::hint::black_box(page);
                                touched = end;
                                continue;
                            }
                            Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
                        }
                    } else {
                        rx.recv().ok()
                    };
                    let Some(mut b) = next else { break };
                    b.apply(out);
                    b.clear();
                    let _ = back_tx.try_send(b);
                }
            });
        let mut sink = Sink {
            batch: Batch::default(),
            to_aggregator: None,
            reused: None,
            direct: None,
            last: DiagSocket::default(),
        };
        match spawned {
            Ok(handle) => {
                (sink.to_aggregator, sink.reused) = (Some(tx), Some(back_rx));
                let r = produce(&mut sink);
                sink.send();
                drop(sink);
                if let Err(panic) = handle.join() {
                    std::panic::resume_unwind(panic);
                }
                r
            }
            Err(_) => {
                sink.direct = slot.lock().ok().and_then(|mut o| o.take());
                produce(&mut sink)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(t: &str, star_v6: bool) -> Option<String> {
        endpoint(t.as_bytes(), star_v6).map(|e| sockmedic_model::format_endpoint(&e))
    }

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/offline/");
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    fn offline() -> Offline {
        Offline::new(
            sockmedic_model::SourceKind::Text,
            super::super::ReadOptions::default(),
        )
    }

    fn named(name: &str) -> Input {
        Input {
            name: name.into(),
            path: None,
        }
    }

    /// The Snapshot of `data` read as a stream.
    fn streamed_snapshot(data: &[u8], input: &Input) -> sockmedic_model::Snapshot {
        let mut out = offline();
        out.begin_input(&input.name);
        listing_parse(&mut &data[..], &mut out, input).unwrap();
        out.finish()
    }

    /// The Snapshot of `data` read in `n` parallel parts.
    fn parted_snapshot(data: &[u8], input: &Input, n: usize) -> sockmedic_model::Snapshot {
        let mut out = offline();
        out.begin_input(&input.name);
        let tally = parse_parts(data, &mut out, n);
        listing_done(tally, &mut out, input).unwrap();
        out.finish()
    }

    #[test]
    fn parts_read_as_the_stream_does() {
        // Under the top-N capacity every figure is exact: whatever the cut, the
        // parts give the Snapshot the stream gives (processes of -p included).
        for name in [
            "ss-tan.txt",
            "ss-tanp.txt",
            "ss-tanoemi.txt",
            "ss-peaonmi.txt",
            "ss-aonp.txt",
            "ss-aonp-mixed.txt",
            "ss-Htan.txt",
            "ss-lt-old-centos7.txt",
            "ss-t-old-linux-help.txt",
            "ss-tan-lastack-storm.txt",
        ] {
            let data = fixture(name);
            let input = named(name);
            let want = streamed_snapshot(&data, &input);
            assert!(want.netns[0].dump.is_some(), "{name}: no sockets");
            for n in 1..=9 {
                let got = parted_snapshot(&data, &input, n);
                assert!(got == want, "{name} in {n} parts differs from the stream");
            }
        }
    }

    #[test]
    fn a_bare_star_reads_as_the_parts_before_it_say() {
        // The header (with Process) says current ss: the `*` of a listener far
        // below, in another part, is IPv6's unspecified address.
        let mut text = fixture("ss-tan.txt");
        for i in 0..200 {
            text.extend_from_slice(
                format!("ESTAB 0 0 10.0.0.1:{} 10.0.0.2:80\n", 20000 + i).as_bytes(),
            );
        }
        text.extend_from_slice(b"LISTEN 0 128 *:2222 *:*\n");
        let input = named("star");
        let want = streamed_snapshot(&text, &input);
        let listener = |s: &sockmedic_model::Snapshot| {
            s.netns[0]
                .listeners
                .iter()
                .find(|l| l.local.port == 2222)
                .map(|l| l.local)
        };
        assert_eq!(listener(&want), Some(Endpoint::v6([0; 16], 2222)));
        for n in 2..=6 {
            let got = parted_snapshot(&text, &input, n);
            assert_eq!(listener(&got), listener(&want), "{n} parts");
            assert!(got == want, "{n} parts");
        }
    }

    #[test]
    fn parts_are_cut_before_records_only() {
        let data = fixture("ss-tanoemi.txt");
        for n in 1..=12 {
            let parts = split_records(&data, n);
            assert!(parts.len() <= n);
            assert_eq!(parts.concat(), data);
            for p in &parts {
                assert!(!p.is_empty());
                assert!(!is_blank(p[0]), "a part starts with a continuation line");
            }
            for p in &parts[..parts.len() - 1] {
                assert_eq!(p.last(), Some(&b'\n'));
            }
        }
        // No newline at all: one part.
        assert_eq!(split_records(b"ESTAB 0 0 1.2.3.4:5 6.7.8.9:10", 4).len(), 1);
    }

    #[test]
    fn a_large_file_is_mapped_and_reads_as_streamed() {
        // 1.3 MB of ss -tan with distinct endpoints (under the capacity: exact).
        let mut text = fixture("ss-tan.txt");
        let mut i = 0u32;
        while text.len() < PART_MIN + PART_MIN / 4 {
            let line = format!(
                "ESTAB      0      0             10.0.{}.{}:{:<5}       192.168.1.{}:443                \n",
                i / 250 % 250,
                i % 250,
                32768 + i % 28000,
                i % 7
            );
            text.extend_from_slice(line.as_bytes());
            i += 1;
        }
        let path =
            std::env::temp_dir().join(format!("sockmedic-ss-map-{}.txt", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        let input = Input {
            name: path.display().to_string(),
            path: Some(path.clone()),
        };
        let mut reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        assert!(Mapped::of(&mut reader, &input).is_some());
        // A part of a container names a path it was not read from: not mapped.
        let section = Input {
            name: format!("supportconfig: {}", path.display()),
            path: Some(path.clone()),
        };
        assert!(Mapped::of(&mut &text[..], &section).is_none());
        // Nor is a reader that does not hold the file's bytes.
        assert!(Mapped::of(&mut &b"State Recv-Q"[..], &input).is_none());
        let mut mapped = offline();
        mapped.begin_input(&input.name);
        listing_parse(&mut reader, &mut mapped, &input).unwrap();
        let mapped = mapped.finish();
        std::fs::remove_file(&path).unwrap();
        let want = streamed_snapshot(&text, &input);
        assert_eq!(
            mapped.netns[0].dump.as_ref().unwrap().sockets,
            u64::from(i) + 163
        );
        assert!(mapped == want);
    }

    #[test]
    fn endpoints() {
        assert_eq!(ep("1.2.3.4:80", false).as_deref(), Some("1.2.3.4:80"));
        assert_eq!(ep("[::1]:80", false).as_deref(), Some("[::1]:80"));
        assert_eq!(
            ep("[::ffff:1.2.3.4]:80", false).as_deref(),
            Some("[::ffff:1.2.3.4]:80")
        );
        assert_eq!(ep("*:80", true).as_deref(), Some("[::]:80"));
        assert_eq!(ep("*:80", false).as_deref(), Some("0.0.0.0:80"));
        assert_eq!(ep("0.0.0.0:*", false).as_deref(), Some("0.0.0.0:0"));
        assert_eq!(
            ep("127.0.0.53%lo:53", false).as_deref(),
            Some("127.0.0.53:53")
        );
        assert_eq!(
            ep("[fe80::1]%eth0:22", false).as_deref(),
            Some("[fe80::1]:22")
        );
        assert_eq!(ep(":::22", false).as_deref(), Some("[::]:22"));
        assert_eq!(
            ep("::ffff:10.0.0.1:80", false).as_deref(),
            Some("[::ffff:10.0.0.1]:80")
        );
        assert_eq!(ep("10.0.0.1:https", false).as_deref(), Some("10.0.0.1:443"));
        assert_eq!(ep("10.0.0.1", false), None);
        assert_eq!(ep("1.2.3.400:1", false), None);
        assert_eq!(ep("[::1:80", false), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(b"524ms"), 524);
        assert_eq!(duration_ms(b"59sec"), 59_000);
        assert_eq!(duration_ms(b"1min2sec"), 62_000);
        assert_eq!(duration_ms(b"2.345ms"), 2_345);
        assert_eq!(duration_ms(b"119min"), 7_140_000);
    }

    #[test]
    fn timers_and_extended_fields() {
        let mut l = Layout::default();
        let line = b"LAST-ACK   0      1               127.0.0.1:7008           127.0.0.1:40126 timer:(on,764ms,3) uid:1000 ino:0 sk:1a9658e cgroup:unreachable:1 ---";
        let Line::Socket(s) = l.record(line) else {
            panic!("not a socket")
        };
        assert_eq!((s.state, s.rqueue, s.wqueue), (9, 0, 1));
        assert_eq!((s.timer, s.expires_ms, s.retrans), (1, 764, 3));
        assert_eq!((s.uid, s.inode, s.cookie), (1000, 0, 0x1a9658e));
        let tw = b"tcp   TIME-WAIT 0      0          127.0.0.1:60010    127.0.0.1:7300 timer:(timewait,59sec,0)";
        let Line::Socket(s) = l.record(tw) else {
            panic!("not a socket")
        };
        assert_eq!((s.state, s.timer, s.expires_ms), (6, 3, 59_000));
        assert!(matches!(
            l.record(b"udp   UNCONN 0 0 127.0.0.1:5353 0.0.0.0:*"),
            Line::Other
        ));
        assert!(matches!(l.record(b"\t skmem:(r0,rb131072)"), Line::Other));
    }

    #[test]
    fn users() {
        let mut l = Layout::default();
        let line = br#"ESTAB 0 0 10.0.0.1:80 10.0.0.2:5555 users:(("tmux: server",pid=12,fd=5),("nginx",pid=1234,fd=6),("nginx",pid=1234,fd=7)) ino:77 sk:ff"#;
        let Line::Socket(s) = l.record(line) else {
            panic!("not a socket")
        };
        assert_eq!((s.inode, s.cookie), (77, 255));
        let got: Vec<(&[u8], u32)> = l.users.iter().map(|u| (&line[u.0..u.1], u.2)).collect();
        assert_eq!(got, vec![(&b"tmux: server"[..], 12), (&b"nginx"[..], 1234)]);
        let old = br#"LISTEN 0 128 :::22 :::* users:(("sshd",1015,4))"#;
        assert!(l.record(old).is_socket());
        assert_eq!(l.users.iter().map(|u| u.2).collect::<Vec<_>>(), vec![1015]);
    }
}
