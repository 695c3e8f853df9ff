//! net-tools `netstat` outputs: the socket listings (`netstat -ant`, `-antp`,
//! `-tn`, `-antpe`) and the counters (`netstat -s`); and iproute2's `nstat -az`,
//! which prints the same kernel counters by their own names.

use super::ss::{endpoint, for_each_line, listed_mask, note_skipped, num, num32, Fields};
use super::{Input, Offline};
use sockmedic_collect::sockdiag::{DiagSocket, ALL_STATES};
use sockmedic_model::Endpoint;
use std::io::BufRead;

// ---------------------------------------------------------------- listings

/// The kernel state number of a state as netstat prints it.
fn netstat_state(t: &[u8]) -> Option<u8> {
    Some(match t {
        b"ESTABLISHED" => 1,
        b"SYN_SENT" => 2,
        b"SYN_RECV" => 3,
        b"FIN_WAIT1" => 4,
        b"FIN_WAIT2" => 5,
        b"TIME_WAIT" => 6,
        b"CLOSE" => 7,
        b"CLOSE_WAIT" => 8,
        b"LAST_ACK" => 9,
        b"LISTEN" => 10,
        b"CLOSING" => 11,
        _ => return None,
    })
}

pub(super) fn listing_sniff(head: &str, _: &Input) -> bool {
    let mut lines = head.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("");
    first.starts_with("Active Internet connections")
        || (first.starts_with("Proto Recv-Q Send-Q") && first.contains("Foreign Address"))
}

/// The columns after `State`, from the header: `-e` adds User and Inode, `-p`
/// PID/Program name, `-o` Timer.
#[derive(Default)]
struct Columns {
    user_inode: bool,
    program: bool,
    timer: bool,
}

/// A netstat listing, streamed like an ss one. netstat truncates long IPv6
/// addresses to fit its column (without `-W`); such an endpoint keeps its port
/// and reads as the unspecified address of its family.
pub(super) fn listing_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let mut cols = Columns::default();
    let mut declared: Option<u32> = None;
    let mut listeners = ListenerQueues::default();
    let (mut seen, mut sockets, mut bad, mut lines) = (0u32, 0u64, 0u64, 0u64);
    super::ss::streamed(out, |sink| {
        for_each_line(text, |line| {
            lines += 1;
            if line.starts_with(b"Active Internet connections") {
                declared = declared_states(line);
                return;
            }
            if line.starts_with(b"Proto ") {
                cols = Columns {
                    user_inode: contains(line, b"Inode"),
                    program: contains(line, b"PID/Program"),
                    timer: contains(line, b"Timer"),
                };
                return;
            }
            let mut f = Fields::new(line);
            let v6 = match f.next() {
                Some(b"tcp") => false,
                Some(b"tcp6") => true,
                // udp, raw, unix and their headers (`netstat -anp` lists them all).
                _ => return,
            };
            let Some((mut s, pid)) = record(&mut f, v6, &cols) else {
                bad += 1;
                return;
            };
            listeners.strip(&mut s);
            sockets += 1;
            seen |= 1 << s.state;
            sink.socket(&s);
            if let Some((pid, comm)) = pid {
                sink.process(pid, comm);
            }
        })
    })?;
    if sockets == 0 && bad > 0 {
        return Err(format!("{}: no tcp line in {lines} lines", input.name));
    }
    out.listing(declared.unwrap_or_else(|| listed_mask(seen, super::ss::CONNECTED_STATES)));
    listeners.note(out, input);
    note_skipped(out, input, "netstat listing", bad, lines);
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// netstat's first line says what it listed: `(servers and established)` is
/// `-a`, `(w/o servers)` no `-a`, `(only servers)` `-l`.
fn declared_states(line: &[u8]) -> Option<u32> {
    if contains(line, b"servers and established") {
        Some(ALL_STATES)
    } else if contains(line, b"w/o servers") {
        Some(super::ss::CONNECTED_STATES)
    } else if contains(line, b"only servers") {
        Some(super::ss::LISTEN_BIT)
    } else {
        None
    }
}

/// The `PID/Program name` column: pid and command name.
type Holder<'a> = (u32, &'a [u8]);

/// `0 0 127.0.0.1:7008 127.0.0.1:40126 LAST_ACK [user inode] [1234/nginx]`.
fn record<'a>(
    f: &mut Fields<'a>,
    v6: bool,
    cols: &Columns,
) -> Option<(DiagSocket, Option<Holder<'a>>)> {
    let rq = f.next().and_then(num32)?;
    let wq = f.next().and_then(num32)?;
    let local = netstat_endpoint(f.next()?, v6)?;
    let remote = netstat_endpoint(f.next()?, v6)?;
    let state = netstat_state(f.next()?)?;
    let mut s = DiagSocket {
        state,
        timer: if state == 6 { 3 } else { 0 },
        local,
        remote,
        rqueue: rq,
        wqueue: wq,
        ..DiagSocket::default()
    };
    if cols.user_inode {
        s.uid = f.next().and_then(num32).unwrap_or(0);
        s.inode = f.next().and_then(num32).unwrap_or(0);
    }
    let mut proc = None;
    if cols.program {
        let t = if cols.timer {
            f.next().unwrap_or_default()
        } else {
            f.rest()
        };
        if let Some(slash) = t.iter().position(|&b| b == b'/') {
            if let Some(pid) = num32(&t[..slash]) {
                proc = Some((pid, trim_end(&t[slash + 1..])));
            }
        }
    }
    Some((s, proc))
}

fn trim_end(mut t: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = t {
        t = rest;
    }
    t
}

/// An endpoint of a netstat line; a truncated IPv6 address keeps its port.
fn netstat_endpoint(t: &[u8], v6: bool) -> Option<Endpoint> {
    if let Some(e) = endpoint(t, false) {
        // `0.0.0.0:*` on a tcp6 line cannot be; an address is its own family.
        return Some(e);
    }
    let colon = t.iter().rposition(|&b| b == b':')?;
    let p = &t[colon + 1..];
    let port = if p == b"*" {
        0
    } else {
        u16::try_from(num(p)?).ok()?
    };
    Some(if v6 {
        Endpoint::v6([0; 16], port)
    } else {
        Endpoint::v4([0; 4], port)
    })
}

/// Listeners of netstat and /proc/net/tcp: their Recv-Q is the accept queue, but
/// the backlog is not shown (Send-Q is 0), so the queue cannot be judged against
/// it. Both are cleared (a queue against a backlog of 0 would read as an
/// overflow) and the listing says so in `missing`.
#[derive(Default)]
pub(super) struct ListenerQueues {
    listeners: u64,
    queued: u64,
    largest: u32,
}

impl ListenerQueues {
    pub(super) fn strip(&mut self, s: &mut DiagSocket) {
        if s.state != 10 {
            return;
        }
        self.listeners += 1;
        if s.rqueue > 0 {
            self.queued += 1;
            self.largest = self.largest.max(s.rqueue);
        }
        s.rqueue = 0;
        s.wqueue = 0;
    }
    pub(super) fn note(&self, out: &mut Offline, input: &Input) {
        if self.listeners == 0 {
            return;
        }
        let queued = if self.queued > 0 {
            format!(
                "; {} of {} listeners had connections waiting for accept() (up to {})",
                self.queued, self.listeners, self.largest
            )
        } else {
            String::new()
        };
        out.missing(
            format!("listener backlogs ({})", input.name),
            format!("netstat and /proc/net/tcp do not show a listener's backlog, so accept queues are not judged{queued}; `ss -ltn` shows both"),
        );
    }
}

// ---------------------------------------------------------------- netstat -s

/// `netstat -s`: a section title alone on its line (`Ip:`, `Tcp:`), then
/// indented lines. (/proc/net/snmp has names after the colon.)
pub(super) fn stats_sniff(head: &str, _: &Input) -> bool {
    let mut lines = head.lines().filter(|l| !l.trim().is_empty());
    let (Some(a), Some(b)) = (lines.next(), lines.next()) else {
        return false;
    };
    let title = a.trim_end();
    title.ends_with(':')
        && !title.contains(' ')
        && matches!(
            title,
            "Ip:" | "Icmp:" | "IcmpMsg:" | "Tcp:" | "TcpExt:" | "Udp:" | "IpExt:" | "UdpLite:"
        )
        && b.starts_with([' ', '\t'])
}

/// netstat's sentences for the counters (net-tools statistics.c, current and
/// older wordings; `%` is the number). Counters it has no sentence for are
/// printed `Name: N` and read as such.
const PHRASES: &[(&str, &str, &str)] = &[
    ("Tcp", "% active connection openings", "ActiveOpens"),
    ("Tcp", "% active connections openings", "ActiveOpens"),
    ("Tcp", "% passive connection openings", "PassiveOpens"),
    ("Tcp", "% failed connection attempts", "AttemptFails"),
    ("Tcp", "% connection resets received", "EstabResets"),
    ("Tcp", "% connections established", "CurrEstab"),
    ("Tcp", "% segments received", "InSegs"),
    ("Tcp", "% segments sent out", "OutSegs"),
    ("Tcp", "% segments send out", "OutSegs"),
    ("Tcp", "% segments retransmitted", "RetransSegs"),
    ("Tcp", "% segments retransmited", "RetransSegs"),
    ("Tcp", "% bad segments received", "InErrs"),
    ("Tcp", "% bad segments received.", "InErrs"),
    ("Tcp", "% resets sent", "OutRsts"),
    (
        "TcpExt",
        "% delayed acks further delayed because of locked socket",
        "DelayedACKLocked",
    ),
    (
        "TcpExt",
        "Quick ack mode was activated % times",
        "DelayedACKLost",
    ),
    ("TcpExt", "% delayed acks sent", "DelayedACKs"),
    (
        "TcpExt",
        "% resets received for embryonic SYN_RECV sockets",
        "EmbryonicRsts",
    ),
    ("TcpExt", "% SYNs to LISTEN sockets dropped", "ListenDrops"),
    ("TcpExt", "% SYNs to LISTEN sockets ignored", "ListenDrops"),
    (
        "TcpExt",
        "% times the listen queue of a socket overflowed",
        "ListenOverflows",
    ),
    (
        "TcpExt",
        "% ICMP packets dropped because socket was locked",
        "LockDroppedIcmps",
    ),
    (
        "TcpExt",
        "% packets dropped from out-of-order queue because of socket buffer overrun",
        "OfoPruned",
    ),
    (
        "TcpExt",
        "% ICMP packets dropped because they were out-of-window",
        "OutOfWindowIcmps",
    ),
    (
        "TcpExt",
        "% active connections rejected because of time stamp",
        "PAWSActive",
    ),
    (
        "TcpExt",
        "% packets rejected in established connections because of timestamp",
        "PAWSEstab",
    ),
    (
        "TcpExt",
        "% packets rejects in established connections because of timestamp",
        "PAWSEstab",
    ),
    (
        "TcpExt",
        "% passive connections rejected because of time stamp",
        "PAWSPassive",
    ),
    (
        "TcpExt",
        "% packets pruned from receive queue because of socket buffer overrun",
        "PruneCalled",
    ),
    ("TcpExt", "% packets pruned from receive queue", "RcvPruned"),
    (
        "TcpExt",
        "Ran % times out of system memory during packet sending",
        "SockMallocOOM",
    ),
    (
        "TcpExt",
        "% invalid SYN cookies received",
        "SyncookiesFailed",
    ),
    ("TcpExt", "% SYN cookies received", "SyncookiesRecv"),
    ("TcpExt", "% SYN cookies sent", "SyncookiesSent"),
    (
        "TcpExt",
        "% times unable to send RST due to no memory",
        "TCPAbortFailed",
    ),
    (
        "TcpExt",
        "% connections reset due to early user close",
        "TCPAbortOnClose",
    ),
    (
        "TcpExt",
        "% connections reset due to unexpected data",
        "TCPAbortOnData",
    ),
    (
        "TcpExt",
        "% connections aborted after user close in linger timeout",
        "TCPAbortOnLinger",
    ),
    (
        "TcpExt",
        "% connections aborted due to memory pressure",
        "TCPAbortOnMemory",
    ),
    (
        "TcpExt",
        "% connections reset due to unexpected SYN",
        "TCPAbortOnSyn",
    ),
    (
        "TcpExt",
        "% connections aborted due to timeout",
        "TCPAbortOnTimeout",
    ),
    (
        "TcpExt",
        "% DSACKs for out of order packets received",
        "TCPDSACKOfoRecv",
    ),
    (
        "TcpExt",
        "% DSACKs sent for out of order packets",
        "TCPDSACKOfoSent",
    ),
    ("TcpExt", "% DSACKs sent for old packets", "TCPDSACKOldSent"),
    ("TcpExt", "% DSACKs received", "TCPDSACKRecv"),
    ("TcpExt", "% fast retransmits", "TCPFastRetrans"),
    ("TcpExt", "% forward retransmits", "TCPForwardRetrans"),
    (
        "TcpExt",
        "% congestion windows fully recovered without slow start",
        "TCPFullUndo",
    ),
    ("TcpExt", "% predicted acknowledgments", "TCPHPAcks"),
    ("TcpExt", "% packet headers predicted", "TCPHPHits"),
    ("TcpExt", "% packets header predicted", "TCPHPHits"),
    (
        "TcpExt",
        "% packet headers predicted and directly queued to user",
        "TCPHPHitsToUser",
    ),
    (
        "TcpExt",
        "% packets header predicted and directly queued to user",
        "TCPHPHitsToUser",
    ),
    ("TcpExt", "% timeouts in loss state", "TCPLossFailures"),
    ("TcpExt", "% TCP data loss events", "TCPLoss"),
    ("TcpExt", "% retransmits lost", "TCPLostRetransmit"),
    (
        "TcpExt",
        "TCP ran low on memory % times",
        "TCPMemoryPressures",
    ),
    (
        "TcpExt",
        "% packets directly queued to recvmsg prequeue",
        "TCPPrequeued",
    ),
    (
        "TcpExt",
        "% packets directly queued to recvmsg prequeue.",
        "TCPPrequeued",
    ),
    (
        "TcpExt",
        "% acknowledgments not containing data payload received",
        "TCPPureAcks",
    ),
    (
        "TcpExt",
        "% packets collapsed in receive queue due to low socket buffer",
        "TCPRcvCollapsed",
    ),
    (
        "TcpExt",
        "% timeouts after reno fast retransmit",
        "TCPRenoFailures",
    ),
    (
        "TcpExt",
        "% classic Reno fast retransmits failed",
        "TCPRenoRecoveryFail",
    ),
    (
        "TcpExt",
        "% times recovered from packet loss due to fast retransmit",
        "TCPRenoRecovery",
    ),
    (
        "TcpExt",
        "% timeouts after SACK recovery",
        "TCPSackFailures",
    ),
    ("TcpExt", "% SACK retransmits failed", "TCPSackRecoveryFail"),
    (
        "TcpExt",
        "% times recovered from packet loss by selective acknowledgements",
        "TCPSackRecovery",
    ),
    (
        "TcpExt",
        "% retransmits in slow start",
        "TCPSlowStartRetrans",
    ),
    ("TcpExt", "% other TCP timeouts", "TCPTimeouts"),
    (
        "TcpExt",
        "% TCP sockets finished time wait in slow timer",
        "TWKilled",
    ),
    (
        "TcpExt",
        "% TCP sockets finished time wait in fast timer",
        "TW",
    ),
    (
        "TcpExt",
        "% time wait sockets recycled by time stamp",
        "TWRecycled",
    ),
];

/// TcpExt counters sockmedic's rules read. netstat prints a TcpExt counter only
/// when it is not zero, so in a TcpExt section that is there, an absent one is 0.
const ZERO_WHEN_ABSENT: &[&str] = &[
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "TCPTimeWaitOverflow",
    "TCPAbortOnMemory",
    "TCPMemoryPressures",
    "TCPAbortOnTimeout",
    "TW",
];

/// `netstat -s`: each section's `N sentence` and `Name: N` lines to
/// [`Offline::counter`].
pub(super) fn stats_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let mut section = String::new();
    let mut tcpext: Vec<String> = Vec::new();
    let mut saw_tcpext = false;
    let mut found = 0u64;
    let mut shape = String::new();
    for_each_line(text, |line| {
        let l = String::from_utf8_lossy(line);
        if !l.starts_with([' ', '\t']) {
            if let Some(title) = l.trim_end().strip_suffix(':') {
                if !title.is_empty() && !title.contains(' ') {
                    section = title.to_string();
                    saw_tcpext |= section == "TcpExt";
                }
            }
            return;
        }
        let Some((name, v)) = stat_line(&section, l.trim(), &mut shape) else {
            return;
        };
        if section == "TcpExt" {
            tcpext.push(name.to_string());
        }
        out.counter(&section, name, v);
        found += 1;
    })?;
    if found == 0 {
        return Err(format!("{}: no counter line", input.name));
    }
    if saw_tcpext {
        for n in ZERO_WHEN_ABSENT {
            if !tcpext.iter().any(|t| t == n) {
                out.counter("TcpExt", n, 0);
            }
        }
    }
    Ok(())
}

/// One indented line: `Name: N` or a sentence of [`PHRASES`] with its number.
fn stat_line<'a>(section: &str, l: &'a str, shape: &mut String) -> Option<(&'a str, i64)> {
    if let Some((k, v)) = l.split_once(": ") {
        if !k.contains(' ') && !k.is_empty() {
            return Some((k, v.trim().parse().ok()?));
        }
    }
    // The sentence with its (one) number replaced by `%`.
    shape.clear();
    let mut value = None;
    for w in l.split_whitespace() {
        if !shape.is_empty() {
            shape.push(' ');
        }
        match w.parse::<i64>() {
            Ok(v) if value.is_none() => {
                value = Some(v);
                shape.push('%');
            }
            _ => shape.push_str(w),
        }
    }
    let value = value?;
    PHRASES
        .iter()
        .find(|(s, p, _)| *s == section && *p == shape.as_str())
        .map(|(_, _, n)| (*n, value))
}

// ---------------------------------------------------------------- nstat

/// `nstat -az` (or `-a`, `-z`): `#kernel`, then `TcpExtListenOverflows  12  0.0`.
pub(super) fn nstat_sniff(head: &str, _: &Input) -> bool {
    let mut lines = head.lines().filter(|l| !l.trim().is_empty());
    if lines.next().map(str::trim) != Some("#kernel") {
        return false;
    }
    lines.take(5).all(|l| nstat_line(l).is_some())
}

/// The section prefixes of nstat's names (the /proc/net/snmp, netstat, snmp6
/// section each counter comes from), longest first where one is a prefix of another.
const NSTAT_SECTIONS: &[&str] = &[
    "TcpExt", "MPTcpExt", "Tcp", "IpExt", "Ip6", "Ip", "IcmpMsg", "Icmp6", "Icmp", "UdpLite6",
    "UdpLite", "Udp6", "Udp", "Sctp",
];

fn nstat_line(l: &str) -> Option<(&str, &str, i64)> {
    let mut w = l.split_whitespace();
    let (name, v) = (w.next()?, w.next()?);
    let v: i64 = v.parse().ok()?;
    let section = NSTAT_SECTIONS.iter().find(|s| {
        name.strip_prefix(**s)
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))
    })?;
    Some((section, &name[section.len()..], v))
}

pub(super) fn nstat_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let mut found = 0u64;
    for_each_line(text, |line| {
        if let Some((section, name, v)) = nstat_line(&String::from_utf8_lossy(line)) {
            out.counter(section, name, v);
            found += 1;
        }
    })?;
    if found == 0 {
        return Err(format!("{}: no counter line", input.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        let mut shape = String::new();
        assert_eq!(
            stat_line(
                "TcpExt",
                "12 times the listen queue of a socket overflowed",
                &mut shape
            ),
            Some(("ListenOverflows", 12))
        );
        assert_eq!(
            stat_line("TcpExt", "TCPTimeWaitOverflow: 7", &mut shape),
            Some(("TCPTimeWaitOverflow", 7))
        );
        assert_eq!(
            stat_line("TcpExt", "TCP ran low on memory 3 times", &mut shape),
            Some(("TCPMemoryPressures", 3))
        );
        assert_eq!(stat_line("TcpExt", "something new 3", &mut shape), None);
    }

    #[test]
    fn nstat_names() {
        assert_eq!(
            nstat_line("TcpExtListenOverflows  12  0.0"),
            Some(("TcpExt", "ListenOverflows", 12))
        );
        assert_eq!(
            nstat_line("TcpCurrEstab 5 0.0"),
            Some(("Tcp", "CurrEstab", 5))
        );
        assert_eq!(nstat_line("#kernel"), None);
    }
}
