//! Which known message a kernel log line is (kernel-notes §11), in every kernel
//! version's wording, and the part of it that varies.
//!
//! Matching is by the fixed words of each message, not by its prefix: the prefix
//! changed across versions (`TCP: TCP: `, `TCP: request_sock_TCP: `, none) and the
//! same text may arrive with or without the `TCP: ` of `pr_fmt`.

use sockmedic_model::LogKind;

/// Details longer than this are cut (a garbage line must not make a huge key).
const MAX_DETAIL: usize = 128;

/// The kind of a known message and its detail: the port or `addr:port` of a SYN
/// flood, `netns N` for a full conntrack table of a non-init namespace, the limit
/// of file-max, the table of a neighbour overflow, the peer of a dropped open
/// request. `None` for any other message.
pub fn classify(message: &str) -> Option<(LogKind, Option<String>)> {
    let m = message.trim();
    if m.contains("too many orphaned sockets") || m.contains("too many of orphaned sockets") {
        return Some((LogKind::TooManyOrphans, None));
    }
    if m.contains("Out of socket memory") {
        return Some((LogKind::OutOfSocketMemory, None));
    }
    if m.contains("out of memory -- consider tuning tcp_mem") {
        return Some((LogKind::TcpMem, None));
    }
    if let Some(found) = syn_flood(m)
        .or_else(|| conntrack_full(m))
        .or_else(|| file_max(m))
        .or_else(|| neighbour_overflow(m))
        .or_else(|| drop_open_request(m))
    {
        return Some(found);
    }
    if m.contains("time wait bucket table overflow") && !m.to_ascii_lowercase().contains("dccp") {
        // DCCP still prints the same words (DCCP_WARN); that is not TCP.
        return Some((LogKind::TwOverflow, None));
    }
    if m.contains("socket: no more sockets") {
        return Some((LogKind::NoMoreSockets, None));
    }
    if m.contains("prefer different parity for start/end values") {
        return Some((LogKind::PortRangeParity, None));
    }
    None
}

/// `net_ratelimit: 6 callbacks suppressed` (and any other `__ratelimit` summary,
/// `FUNC: N callbacks suppressed`; the pre-2.6.28 `printk: N messages suppressed.`):
/// the number of messages the rate limiter dropped.
pub fn suppressed(message: &str) -> Option<u64> {
    let m = message.trim().trim_end_matches('.');
    let before = m
        .strip_suffix(" callbacks suppressed")
        .or_else(|| m.strip_suffix(" messages suppressed"))?;
    let (_, count) = before.rsplit_once(' ')?;
    if count.is_empty() || !count.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    count.parse().ok()
}

/// Every wording of `tcp_syn_flood_action`:
/// `TCP: request_sock_TCP: Possible SYN flooding on port 203.0.113.5:443. Sending cookies.`
/// (6.2+), `... on port 443. Sending cookies.  Check SNMP counters.` (3.10-6.1),
/// `TCP: Possible SYN flooding on port 443. Sending cookies.` (2.6.37/38).
/// Detail: what follows `on port`, up to the sentence's end.
fn syn_flood(m: &str) -> Option<(LogKind, Option<String>)> {
    let (_, after) = m.split_once("Possible SYN flooding on port")?;
    let after = after.trim_start();
    let end = after.find(". ").unwrap_or(after.len());
    let port = after[..end].trim_end_matches('.').trim();
    Some((LogKind::SynFlood, detail(port)))
}

/// `nf_conntrack: nf_conntrack: table full, dropping packet` (4.7+),
/// `nf_conntrack: table full in netns 4026532245, dropping packet` (6.17+, non-init
/// netns), `nf_conntrack: table full, dropping packet[.]` (older), and the 2.6
/// `ip_conntrack` form. Detail: `netns N` when named.
fn conntrack_full(m: &str) -> Option<(LogKind, Option<String>)> {
    if !(m.contains("conntrack") && m.contains("table full") && m.contains("dropping packet")) {
        return None;
    }
    let netns = m
        .split_once("table full in netns ")
        .map(|(_, rest)| rest.split([',', ' ']).next().unwrap_or(""))
        .filter(|n| !n.is_empty());
    Some((
        LogKind::ConntrackFull,
        netns.and_then(|n| detail(&format!("netns {n}"))),
    ))
}

/// `VFS: file-max limit 65536 reached`. Detail: the limit.
fn file_max(m: &str) -> Option<(LogKind, Option<String>)> {
    let (_, rest) = m.split_once("file-max limit ")?;
    let (limit, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    if !tail.starts_with("reached") {
        return None;
    }
    Some((LogKind::FileMax, detail(limit)))
}

/// `neighbour: arp_cache: neighbor table overflow!` (the `neighbour: ` of pr_fmt in
/// newer kernels), `ndisc_cache: ...`, and the 2.6 `Neighbour table overflow.`.
/// Detail: the table.
fn neighbour_overflow(m: &str) -> Option<(LogKind, Option<String>)> {
    if let Some((before, _)) = m.split_once(": neighbor table overflow") {
        let table = before.rsplit([' ', ':']).next().unwrap_or("");
        return Some((LogKind::NeighborOverflow, detail(table)));
    }
    m.contains("Neighbour table overflow")
        .then_some((LogKind::NeighborOverflow, None))
}

/// `TCP: drop open request from 203.0.113.9/51234` (pr_drop_req, dynamic debug
/// only). Detail: the peer `addr/port`.
fn drop_open_request(m: &str) -> Option<(LogKind, Option<String>)> {
    let (_, rest) = m.split_once("drop open request from ")?;
    let peer = rest.split_whitespace().next().unwrap_or("");
    Some((LogKind::DropOpenRequest, detail(peer)))
}

/// A detail as stored: `None` when empty, cut to [`MAX_DETAIL`] bytes.
fn detail(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(truncate(s, MAX_DETAIL).to_string())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(m: &str) -> Option<LogKind> {
        classify(m).map(|(k, _)| k)
    }

    fn detail_of(m: &str) -> Option<String> {
        classify(m).and_then(|(_, d)| d)
    }

    #[test]
    fn every_syn_flood_wording() {
        let cases = [
            ("TCP: request_sock_TCP: Possible SYN flooding on port 203.0.113.5:443. Sending cookies.", "203.0.113.5:443"),
            ("TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8443. Dropping request.", "127.0.0.1:8443"),
            ("request_sock_TCP: Possible SYN flooding on port [::1]:443. Sending cookies.", "[::1]:443"),
            ("TCP: request_sock_TCPv6: Possible SYN flooding on port [2001:db8::5]:443. Dropping request.", "[2001:db8::5]:443"),
            ("TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters.", "443"),
            ("TCP: TCP: Possible SYN flooding on port 443. Sending cookies.  Check SNMP counters.", "443"),
            ("TCP: TCPv6: Possible SYN flooding on port 443. Dropping request.  Check SNMP counters.", "443"),
            ("TCP: Possible SYN flooding on port 80. Sending cookies.", "80"),
            ("Possible SYN flooding on port 80", "80"),
        ];
        for (m, port) in cases {
            assert_eq!(
                classify(m),
                Some((LogKind::SynFlood, Some(port.to_string()))),
                "{m}"
            );
        }
        assert_eq!(
            classify("Possible SYN flooding on port"),
            Some((LogKind::SynFlood, None))
        );
    }

    #[test]
    fn every_other_kind() {
        let cases = [
            (
                "TCP: too many orphaned sockets",
                LogKind::TooManyOrphans,
                None,
            ),
            (
                "TCP: too many of orphaned sockets",
                LogKind::TooManyOrphans,
                None,
            ),
            ("Out of socket memory", LogKind::OutOfSocketMemory, None),
            (
                "TCP: out of memory -- consider tuning tcp_mem",
                LogKind::TcpMem,
                None,
            ),
            (
                "TCP: time wait bucket table overflow",
                LogKind::TwOverflow,
                None,
            ),
            (
                "nf_conntrack: nf_conntrack: table full, dropping packet",
                LogKind::ConntrackFull,
                None,
            ),
            (
                "nf_conntrack: table full, dropping packet",
                LogKind::ConntrackFull,
                None,
            ),
            (
                "nf_conntrack: table full, dropping packet.",
                LogKind::ConntrackFull,
                None,
            ),
            (
                "ip_conntrack: table full, dropping packet.",
                LogKind::ConntrackFull,
                None,
            ),
            (
                "nf_conntrack: nf_conntrack: table full in netns 4026532245, dropping packet",
                LogKind::ConntrackFull,
                Some("netns 4026532245"),
            ),
            (
                "nf_conntrack: table full in netns 4026532245, dropping packet",
                LogKind::ConntrackFull,
                Some("netns 4026532245"),
            ),
            (
                "VFS: file-max limit 65536 reached",
                LogKind::FileMax,
                Some("65536"),
            ),
            ("socket: no more sockets", LogKind::NoMoreSockets, None),
            (
                "ip_local_port_range: prefer different parity for start/end values.",
                LogKind::PortRangeParity,
                None,
            ),
            (
                "drop open request from 203.0.113.9/51234",
                LogKind::DropOpenRequest,
                Some("203.0.113.9/51234"),
            ),
            (
                "TCP: drop open request from 2001:db8::9/51234",
                LogKind::DropOpenRequest,
                Some("2001:db8::9/51234"),
            ),
            (
                "arp_cache: neighbor table overflow!",
                LogKind::NeighborOverflow,
                Some("arp_cache"),
            ),
            (
                "ndisc_cache: neighbor table overflow!",
                LogKind::NeighborOverflow,
                Some("ndisc_cache"),
            ),
            (
                "neighbour: arp_cache: neighbor table overflow!",
                LogKind::NeighborOverflow,
                Some("arp_cache"),
            ),
            ("Neighbour table overflow.", LogKind::NeighborOverflow, None),
        ];
        for (m, k, d) in cases {
            assert_eq!(classify(m), Some((k, d.map(str::to_string))), "{m}");
        }
    }

    #[test]
    fn lookalikes_are_not_matched() {
        for m in [
            "TCP: Hash tables configured (established 262144 bind 65536)",
            "dccp_time_wait: time wait bucket table overflow",
            "DCCP: time wait bucket table overflow",
            "Out of memory: Killed process 812 (java)",
            "VFS: file-max limit",
            "netfilter: table full",
            "",
            "net_ratelimit: 6 callbacks suppressed",
        ] {
            assert_eq!(kind(m), None, "{m}");
        }
        assert_eq!(detail_of("Possible SYN flooding on port  "), None);
    }

    #[test]
    fn suppressed_counts() {
        assert_eq!(suppressed("net_ratelimit: 6 callbacks suppressed"), Some(6));
        assert_eq!(suppressed("TCP: 12 callbacks suppressed"), Some(12));
        assert_eq!(suppressed("__ratelimit: 3 callbacks suppressed"), Some(3));
        assert_eq!(suppressed("printk: 40 messages suppressed."), Some(40));
        assert_eq!(suppressed("net_ratelimit: x callbacks suppressed"), None);
        assert_eq!(suppressed("callbacks suppressed"), None);
        assert_eq!(
            suppressed("net_ratelimit: 99999999999999999999999 callbacks suppressed"),
            None
        );
    }

    #[test]
    fn long_details_are_cut_on_a_char_boundary() {
        let port = "é".repeat(200);
        let d = detail_of(&format!("Possible SYN flooding on port {port}. x")).unwrap_or_default();
        assert!(d.len() <= MAX_DETAIL && d.chars().all(|c| c == 'é'), "{d}");
    }
}
