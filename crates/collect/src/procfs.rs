//! procfs and sysctl files: pure parsers over their text, and small readers.
//!
//! Parsers take `&str` and never panic: bad input (empty, binary, truncated, a header
//! without its values) is a [`ProcError::Parse`] naming what, where and why. Which
//! figures are host-wide and which are per network namespace is the caller's business
//! (see kernel-notes §4); the sysctl lists below say it for the sysctls.

use sockmedic_model::FileNr;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};

/// A procfs or sysctl file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// `line` is 1-based; 0 means the input as a whole (e.g. it is empty).
    #[error("cannot parse {what}{}: {why}", at_line(*line))]
    Parse {
        what: String,
        line: usize,
        why: String,
    },
}

fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(", line {line}")
    }
}

impl ProcError {
    fn parse(what: &str, line: usize, why: impl Into<String>) -> ProcError {
        ProcError::Parse {
            what: what.to_string(),
            line,
            why: why.into(),
        }
    }

    /// Names the source of a parse error (a path, usually) in place of the generic
    /// "sockstat text" the pure parsers know; read errors are left alone.
    pub fn in_source(self, source: impl Display) -> ProcError {
        match self {
            ProcError::Parse { line, why, .. } => ProcError::Parse {
                what: source.to_string(),
                line,
                why,
            },
            other => other,
        }
    }
}

/// Section name → field name → value, e.g. `["TCP"]["tw"]`.
pub type Sections<T> = BTreeMap<String, BTreeMap<String, T>>;

/// `/proc/net/sockstat` and `/proc/net/sockstat6`: one section per line, `NAME: key
/// value key value ...` (`sockets: used 9`, `TCP: inuse 1 orphan 0 tw 8 alloc 1 mem 0`).
pub fn parse_sockstat(text: &str) -> Result<Sections<u64>, ProcError> {
    const WHAT: &str = "sockstat text";
    let mut out = Sections::new();
    for (i, line) in numbered_lines(text, WHAT)? {
        let (section, rest) = split_section(line)
            .ok_or_else(|| ProcError::parse(WHAT, i, "no 'NAME:' at the start"))?;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let pairs = words.chunks_exact(2);
        if words.is_empty() || !pairs.remainder().is_empty() {
            return Err(ProcError::parse(
                WHAT,
                i,
                format!(
                    "{section}: expected 'key value' pairs, found {} words",
                    words.len()
                ),
            ));
        }
        let fields = out.entry(section.to_string()).or_default();
        for pair in pairs {
            let value = pair[1].parse::<u64>().map_err(|_| {
                ProcError::parse(
                    WHAT,
                    i,
                    format!("{section} {}: {:?} is not a number", pair[0], pair[1]),
                )
            })?;
            fields.insert(pair[0].to_string(), value);
        }
    }
    Ok(out)
}

/// `/proc/net/snmp` and `/proc/net/netstat`: pairs of lines, `Tcp: Name Name ...` then
/// `Tcp: 1 2 ...`. Values are i64 because `Tcp: MaxConn` is -1.
pub fn parse_counter_table(text: &str) -> Result<Sections<i64>, ProcError> {
    const WHAT: &str = "counter table";
    let lines = numbered_lines(text, WHAT)?;
    let mut out = Sections::new();
    for pair in lines.chunks(2) {
        let (hi, header) = pair[0];
        let (section, names) = split_section(header)
            .ok_or_else(|| ProcError::parse(WHAT, hi, "no 'Section:' at the start"))?;
        let Some(&(vi, values_line)) = pair.get(1) else {
            return Err(ProcError::parse(
                WHAT,
                hi,
                format!("{section}: header without a line of values"),
            ));
        };
        let values = match split_section(values_line) {
            Some((s, v)) if s == section => v,
            _ => {
                return Err(ProcError::parse(
                    WHAT,
                    vi,
                    format!("expected the values of {section}"),
                ))
            }
        };
        out.insert(
            section.to_string(),
            counter_row(section, names, values, vi)?,
        );
    }
    Ok(out)
}

fn counter_row(
    section: &str,
    names: &str,
    values: &str,
    line: usize,
) -> Result<BTreeMap<String, i64>, ProcError> {
    let names: Vec<&str> = names.split_whitespace().collect();
    let values: Vec<&str> = values.split_whitespace().collect();
    if names.len() != values.len() {
        let why = format!(
            "{section}: {} names but {} values",
            names.len(),
            values.len()
        );
        return Err(ProcError::parse("counter table", line, why));
    }
    let mut row = BTreeMap::new();
    for (name, value) in names.iter().zip(&values) {
        let v = parse_counter(value).ok_or_else(|| {
            ProcError::parse(
                "counter table",
                line,
                format!("{section} {name}: {value:?} is not a number"),
            )
        })?;
        row.insert(name.to_string(), v);
    }
    Ok(row)
}

/// Most counters are printed unsigned (`%lu`); one above i64::MAX is a negative
/// quantity that wrapped, so it keeps its two's-complement meaning.
fn parse_counter(word: &str) -> Option<i64> {
    word.parse::<i64>()
        .ok()
        .or_else(|| word.parse::<u64>().ok().map(|v| v as i64))
}

/// `fs.file-nr`: `allocated unused max` (`1952\t0\t9223372036854775807`).
pub fn parse_file_nr(text: &str) -> Result<FileNr, ProcError> {
    match parse_numbers(text).map_err(|e| e.in_source("file-nr"))?[..] {
        [allocated, unused, max] => Ok(FileNr {
            allocated,
            unused,
            max,
        }),
        ref other => Err(ProcError::parse(
            "file-nr",
            1,
            format!("expected 3 numbers, found {}", other.len()),
        )),
    }
}

/// Whitespace-separated unsigned numbers: `tcp_mem` (`a b c`),
/// `ip_local_port_range` (`32768\t60999`), single values. At least one.
pub fn parse_numbers(text: &str) -> Result<Vec<u64>, ProcError> {
    const WHAT: &str = "numbers";
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return Err(ProcError::parse(WHAT, 0, "empty"));
    }
    words
        .iter()
        .map(|w| {
            w.parse::<u64>()
                .map_err(|_| ProcError::parse(WHAT, 0, format!("{w:?} is not an unsigned number")))
        })
        .collect()
}

/// `ip_local_reserved_ports`: empty, or comma-separated ports and `lo-hi` ranges
/// (`8080,9000-9010`). A single port becomes `(p, p)`.
pub fn parse_port_ranges(text: &str) -> Result<Vec<(u16, u16)>, ProcError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(parse_port_range).collect()
}

fn parse_port_range(item: &str) -> Result<(u16, u16), ProcError> {
    const WHAT: &str = "port ranges";
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| ProcError::parse(WHAT, 0, format!("{s:?} is not a port")))
    };
    let (lo, hi) = match item.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => (port(item)?, port(item)?),
    };
    if lo > hi {
        return Err(ProcError::parse(
            WHAT,
            0,
            format!("range {item:?} runs backwards"),
        ));
    }
    Ok((lo, hi))
}

/// Reads a small text file whole, with the path in any error.
pub fn read_text(path: &Path) -> Result<String, ProcError> {
    let bytes = std::fs::read(path).map_err(|source| ProcError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| ProcError::Parse {
        what: path.display().to_string(),
        line: 0,
        why: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Reads a sysctl by its dotted name (`net.ipv4.tcp_mem` → `net/ipv4/tcp_mem`) under
/// `sys_root` (normally `/proc/sys`); the value is trimmed, inner tabs kept.
///
/// `/proc/sys/net/...` resolves in the network namespace of the *thread* that opens
/// it, so inside [`crate::netns::run_in_netns`] this reads that namespace's value.
pub fn read_sysctl(sys_root: &Path, name: &str) -> Result<String, ProcError> {
    let path = sys_root.join(sysctl_rel_path(name)?);
    Ok(read_text(&path)?.trim().to_string())
}

fn sysctl_rel_path(name: &str) -> Result<PathBuf, ProcError> {
    let parts: Vec<&str> = name.split('.').collect();
    let bad = |p: &&str| p.is_empty() || p.contains('/') || *p == "..";
    if parts.iter().any(bad) {
        return Err(ProcError::parse(
            "sysctl name",
            0,
            format!("{name:?} is not a dotted sysctl name"),
        ));
    }
    Ok(parts.iter().collect())
}

/// Non-empty lines with their 1-based numbers; an input with none is an error.
fn numbered_lines<'a>(text: &'a str, what: &str) -> Result<Vec<(usize, &'a str)>, ProcError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return Err(ProcError::parse(what, 0, "empty"));
    }
    Ok(lines)
}

/// `"TCP: inuse 1"` → `("TCP", " inuse 1")`; the name must be one plain word.
fn split_section(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once(':')?;
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then_some((name, rest))
}

/// A sysctl sockmedic reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysctlSpec {
    /// Dotted name, as `sysctl` spells it.
    pub name: &'static str,
    /// Absent on some kernels or configurations: its absence is not reported as missing.
    pub optional: bool,
    /// One phrase: which finding needs it.
    pub why: &'static str,
}

const fn spec(name: &'static str, why: &'static str) -> SysctlSpec {
    SysctlSpec {
        name,
        optional: false,
        why,
    }
}

const fn optional(name: &'static str, why: &'static str) -> SysctlSpec {
    SysctlSpec {
        name,
        optional: true,
        why,
    }
}

/// Host-wide sysctls, read once from the initial network namespace. Checked on 6.18:
/// the `net.*` ones here are absent from a non-initial netns's `/proc/sys`, except
/// `nf_conntrack_max`, which shows there read-only but is one global limit.
/// `fs.*` is not namespaced at all.
#[rustfmt::skip] // a table: one sysctl a line
pub const HOST_SYSCTLS: &[SysctlSpec] = &[
    spec("net.ipv4.tcp_mem", "tcp-memory-pressure: the min/pressure/max in pages"),
    spec("net.ipv4.tcp_max_orphans", "orphan-pressure: the orphan limit"),
    spec("net.ipv4.udp_mem", "UDP memory limits, next to sockstat UDP mem"),
    optional("net.core.mem_pcpu_rsv", "tcp-memory-pressure: how far sockstat mem lags (per-CPU reserve; newer kernels)"),
    spec("fs.file-max", "fd-exhaustion: the host's file limit"),
    spec("fs.nr_open", "fd-exhaustion: the ceiling of RLIMIT_NOFILE"),
    spec("fs.file-nr", "fd-exhaustion: file handles allocated now"),
    optional("net.netfilter.nf_conntrack_max", "conntrack-full: the limit (needs nf_conntrack loaded)"),
];

/// Per-network-namespace sysctls, read in each namespace. Checked on 6.18: each is
/// present (and, but for the read-only ones, writable) in a fresh netns with its own value.
#[rustfmt::skip] // a table: one sysctl a line
pub const NETNS_SYSCTLS: &[SysctlSpec] = &[
    spec("net.ipv4.tcp_orphan_retries", "orphan-pressure, teardown-stall: retries before an orphan is killed"),
    spec("net.ipv4.tcp_fin_timeout", "teardown-stall: FIN-WAIT-2 lifetime of orphans"),
    spec("net.ipv4.tcp_max_tw_buckets", "timewait-pressure: the TIME-WAIT limit"),
    spec("net.ipv4.tcp_tw_reuse", "port-exhaustion: reuse of TIME-WAIT ports by connect()"),
    optional("net.ipv4.tcp_tw_reuse_delay", "port-exhaustion: TIME-WAIT age before tw_reuse (recent kernels)"),
    spec("net.ipv4.tcp_timestamps", "risky-sysctl: tw_reuse and tw_recycle need timestamps"),
    optional("net.ipv4.tcp_tw_recycle", "risky-sysctl: breaks clients behind NAT (removed in 4.12)"),
    spec("net.ipv4.ip_local_port_range", "port-exhaustion: the ephemeral range"),
    spec("net.ipv4.ip_local_reserved_ports", "port-exhaustion: ports taken out of the range"),
    spec("net.core.somaxconn", "accept-queue-overflow: the cap on listen() backlogs"),
    spec("net.ipv4.tcp_max_syn_backlog", "syn-backlog: the SYN-RECV queue limit"),
    spec("net.ipv4.tcp_syncookies", "syn-backlog: cookies instead of drops"),
    spec("net.ipv4.tcp_synack_retries", "syn-backlog, risky-sysctl: SYN-RECV lifetime"),
    spec("net.ipv4.tcp_syn_retries", "port-exhaustion: SYN-SENT lifetime"),
    spec("net.ipv4.tcp_rmem", "tcp-memory-pressure: per-socket receive buffers"),
    spec("net.ipv4.tcp_wmem", "tcp-memory-pressure: per-socket send buffers"),
    spec("net.ipv4.tcp_abort_on_overflow", "accept-queue-overflow: RST instead of dropping the ACK"),
    spec("net.ipv4.tcp_keepalive_time", "close-wait-leak: idle time before dead peers are probed"),
    spec("net.ipv4.tcp_keepalive_intvl", "close-wait-leak: interval between keepalive probes"),
    spec("net.ipv4.tcp_keepalive_probes", "close-wait-leak: probes before a dead peer is dropped"),
    spec("net.ipv4.tcp_retries2", "teardown-stall: retransmissions before giving up on a connection"),
    optional("net.ipv4.tcp_ehash_entries", "timewait-pressure: ehash size (6.1+; negative: the global one)"),
    optional("net.ipv4.tcp_child_ehash_entries", "timewait-pressure: hash size given to new child netns (6.1+)"),
    optional("net.netfilter.nf_conntrack_count", "conntrack-full: entries in this netns (needs nf_conntrack loaded)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    // Real files captured from Linux 6.18 (see tests/fixtures/README.md).
    const HOST_SOCKSTAT: &str = include_str!("../tests/fixtures/host/sockstat");
    const HOST_SOCKSTAT6: &str = include_str!("../tests/fixtures/host/sockstat6");
    const HOST_SNMP: &str = include_str!("../tests/fixtures/host/snmp");
    const HOST_NETSTAT: &str = include_str!("../tests/fixtures/host/netstat");
    const HOST_FILE_NR: &str = include_str!("../tests/fixtures/host/file-nr");
    const HOST_TCP_MEM: &str = include_str!("../tests/fixtures/host/tcp_mem");
    const HOST_PORT_RANGE: &str = include_str!("../tests/fixtures/host/ip_local_port_range");
    const HOST_RESERVED: &str = include_str!("../tests/fixtures/host/ip_local_reserved_ports");
    const FRESH_SOCKSTAT: &str = include_str!("../tests/fixtures/netns-fresh/sockstat");
    const FRESH_SOCKSTAT6: &str = include_str!("../tests/fixtures/netns-fresh/sockstat6");
    const FRESH_SNMP: &str = include_str!("../tests/fixtures/netns-fresh/snmp");
    const FRESH_NETSTAT: &str = include_str!("../tests/fixtures/netns-fresh/netstat");
    const BUSY_SOCKSTAT: &str = include_str!("../tests/fixtures/netns-busy/sockstat");
    const BUSY_SOCKSTAT6: &str = include_str!("../tests/fixtures/netns-busy/sockstat6");
    const BUSY_SNMP: &str = include_str!("../tests/fixtures/netns-busy/snmp");
    const BUSY_NETSTAT: &str = include_str!("../tests/fixtures/netns-busy/netstat");
    const BUSY_PORT_RANGE: &str = include_str!("../tests/fixtures/netns-busy/ip_local_port_range");
    const BUSY_RESERVED: &str =
        include_str!("../tests/fixtures/netns-busy/ip_local_reserved_ports");

    const ALL_FIXTURES: &[&str] = &[
        HOST_SOCKSTAT,
        HOST_SOCKSTAT6,
        HOST_SNMP,
        HOST_NETSTAT,
        HOST_FILE_NR,
        HOST_TCP_MEM,
        HOST_PORT_RANGE,
        HOST_RESERVED,
        FRESH_SOCKSTAT,
        FRESH_SOCKSTAT6,
        FRESH_SNMP,
        FRESH_NETSTAT,
        BUSY_SOCKSTAT,
        BUSY_SOCKSTAT6,
        BUSY_SNMP,
        BUSY_NETSTAT,
        BUSY_PORT_RANGE,
        BUSY_RESERVED,
    ];

    fn get<T: Copy>(s: &Sections<T>, section: &str, name: &str) -> T {
        s[section][name]
    }

    #[test]
    fn host_sockstat() {
        let s = parse_sockstat(HOST_SOCKSTAT).unwrap();
        assert_eq!(get(&s, "sockets", "used"), 13);
        assert_eq!(get(&s, "TCP", "inuse"), 1);
        assert_eq!(get(&s, "TCP", "alloc"), 1);
        assert_eq!(get(&s, "TCP", "mem"), 110);
        assert_eq!(get(&s, "FRAG", "memory"), 0);
        let keys: Vec<&str> = s.keys().map(String::as_str).collect();
        assert_eq!(keys, ["FRAG", "RAW", "TCP", "UDP", "UDPLITE", "sockets"]);
        assert_eq!(s["TCP"].len(), 5);
    }

    #[test]
    fn sockstat6() {
        let s = parse_sockstat(HOST_SOCKSTAT6).unwrap();
        assert_eq!(get(&s, "TCP6", "inuse"), 0);
        assert_eq!(get(&s, "FRAG6", "memory"), 0);
        assert_eq!(s.len(), 5);
        let s = parse_sockstat(BUSY_SOCKSTAT6).unwrap();
        assert_eq!(get(&s, "UDP6", "inuse"), 0);
        assert_eq!(parse_sockstat(FRESH_SOCKSTAT6).unwrap().len(), 5);
    }

    #[test]
    fn netns_sockstat_fresh_and_busy() {
        let fresh = parse_sockstat(FRESH_SOCKSTAT).unwrap();
        assert_eq!(get(&fresh, "sockets", "used"), 0);
        assert_eq!(get(&fresh, "TCP", "inuse"), 0);
        // Global fields show the host's figures even in a fresh netns.
        assert_eq!(get(&fresh, "TCP", "alloc"), 1);
        assert_eq!(get(&fresh, "TCP", "mem"), 110);
        let busy = parse_sockstat(BUSY_SOCKSTAT).unwrap();
        // A listener and two connected pairs; five client-closed connections in TIME-WAIT.
        assert_eq!(get(&busy, "TCP", "inuse"), 5);
        assert_eq!(get(&busy, "TCP", "tw"), 5);
        assert_eq!(get(&busy, "TCP", "alloc"), 6);
        assert_eq!(get(&busy, "sockets", "used"), 5);
    }

    #[test]
    fn host_snmp() {
        let t = parse_counter_table(HOST_SNMP).unwrap();
        assert_eq!(get(&t, "Tcp", "MaxConn"), -1);
        assert_eq!(get(&t, "Tcp", "RtoMax"), 120000);
        assert_eq!(get(&t, "Tcp", "CurrEstab"), 0);
        assert_eq!(get(&t, "Tcp", "ActiveOpens"), 17);
        assert_eq!(get(&t, "Tcp", "EstabResets"), 4);
        assert_eq!(get(&t, "Ip", "Forwarding"), 2);
        assert_eq!(get(&t, "Ip", "DefaultTTL"), 64);
        assert_eq!(t["Tcp"].len(), 15);
        assert_eq!(t["Ip"].len(), 20);
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(keys, ["Icmp", "IcmpMsg", "Ip", "Tcp", "Udp", "UdpLite"]);
    }

    #[test]
    fn host_netstat() {
        let t = parse_counter_table(HOST_NETSTAT).unwrap();
        assert_eq!(t["TcpExt"].len(), 135);
        assert_eq!(t["IpExt"].len(), 18);
        assert_eq!(t["MPTcpExt"].len(), 76);
        assert_eq!(get(&t, "TcpExt", "ListenOverflows"), 0);
        assert_eq!(get(&t, "TcpExt", "TCPTimeWaitOverflow"), 0);
    }

    #[test]
    fn netns_counters() {
        let fresh = parse_counter_table(FRESH_SNMP).unwrap();
        assert!(
            !fresh.contains_key("IcmpMsg"),
            "a fresh netns prints no IcmpMsg lines"
        );
        assert_eq!(get(&fresh, "Tcp", "ActiveOpens"), 0);
        assert_eq!(get(&fresh, "Tcp", "MaxConn"), -1);
        let busy = parse_counter_table(BUSY_SNMP).unwrap();
        assert_eq!(get(&busy, "Tcp", "ActiveOpens"), 7);
        assert_eq!(get(&busy, "Tcp", "PassiveOpens"), 7);
        assert_eq!(get(&busy, "Tcp", "CurrEstab"), 4);
        let ext = parse_counter_table(BUSY_NETSTAT).unwrap();
        // TW counts TIME-WAIT sockets created (tcp_time_wait), not those alive.
        assert_eq!(get(&ext, "TcpExt", "TW"), 5);
        assert_eq!(get(&ext, "TcpExt", "TCPPureAcks"), 12);
        assert_eq!(
            parse_counter_table(FRESH_NETSTAT).unwrap()["TcpExt"].len(),
            135
        );
    }

    #[test]
    fn file_nr_and_numbers() {
        let f = parse_file_nr(HOST_FILE_NR).unwrap();
        assert_eq!(
            f,
            FileNr {
                allocated: 454,
                unused: 0,
                max: 2466170
            }
        );
        let big = parse_file_nr("1952\t0\t9223372036854775807\n").unwrap();
        assert_eq!(big.max, i64::MAX as u64);
        assert_eq!(
            parse_numbers(HOST_TCP_MEM).unwrap(),
            [287898, 383867, 575796]
        );
        assert_eq!(parse_numbers(HOST_PORT_RANGE).unwrap(), [32768, 60999]);
        assert_eq!(parse_numbers(BUSY_PORT_RANGE).unwrap(), [40000, 40999]);
        assert_eq!(parse_numbers("4096\n").unwrap(), [4096]);
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_ranges(HOST_RESERVED).unwrap(), []);
        assert_eq!(
            parse_port_ranges(BUSY_RESERVED).unwrap(),
            [(8080, 8080), (9000, 9010)]
        );
        assert!(parse_port_ranges("9010-9000").is_err());
        assert!(parse_port_ranges("70000").is_err());
        assert!(parse_port_ranges("8080,").is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            "",
            "\n\n",
            "\0\u{1}\u{7f}garbage\u{fffd}",
            "TCP: inuse 1 orphan 0 tw",
            "TCP:",
            "sockets used 9",
            "TCP: inuse x",
        ] {
            assert!(parse_sockstat(bad).is_err(), "sockstat {bad:?}");
        }
        let truncated = &HOST_SNMP[..HOST_SNMP.find("\nTcp: ").unwrap() + 20];
        for bad in [
            "",
            "Tcp: RtoAlgorithm RtoMin",
            "Tcp: A B\nUdp: 1 2",
            "Tcp: A B\nTcp: 1",
            "Tcp: A\nTcp: x",
            truncated,
            "\u{0}\u{0}",
        ] {
            assert!(parse_counter_table(bad).is_err(), "counter table {bad:?}");
        }
        for bad in ["", "1 2", "1 2 3 4", "a b c", "-1 0 5"] {
            assert!(parse_file_nr(bad).is_err(), "file-nr {bad:?}");
        }
        for bad in ["", " \t\n", "12x", "-262144"] {
            assert!(parse_numbers(bad).is_err(), "numbers {bad:?}");
        }
    }

    #[test]
    fn errors_say_what_where_why() {
        let e = parse_counter_table("Tcp: A B C\nTcp: 1 2\n")
            .unwrap_err()
            .in_source("/proc/net/snmp");
        assert_eq!(
            e.to_string(),
            "cannot parse /proc/net/snmp, line 2: Tcp: 3 names but 2 values"
        );
        let e = parse_counter_table("Ip: A\nIp: 1\nTcp: A B\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot parse counter table, line 3: Tcp: header without a line of values"
        );
        let e = parse_sockstat("").unwrap_err();
        assert_eq!(e.to_string(), "cannot parse sockstat text: empty");
        let e = read_text(Path::new("/nonexistent/sockstat")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/sockstat: "),
            "{e}"
        );
    }

    #[test]
    fn huge_unsigned_counter_wraps_to_negative() {
        let t = parse_counter_table("Tcp: A B\nTcp: 18446744073709551615 9223372036854775807\n")
            .unwrap();
        assert_eq!(get(&t, "Tcp", "A"), -1);
        assert_eq!(get(&t, "Tcp", "B"), i64::MAX);
        assert!(parse_counter_table("Tcp: A\nTcp: 18446744073709551616\n").is_err());
    }

    #[test]
    fn sysctl_names_map_to_paths() {
        assert_eq!(
            sysctl_rel_path("net.ipv4.tcp_mem").unwrap(),
            Path::new("net/ipv4/tcp_mem")
        );
        assert_eq!(
            sysctl_rel_path("fs.file-nr").unwrap(),
            Path::new("fs/file-nr")
        );
        for bad in ["", "net..x", "net/ipv4", ".net", "net.ipv4."] {
            assert!(sysctl_rel_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn read_sysctl_live() {
        let v = read_sysctl(Path::new("/proc/sys"), "net.ipv4.ip_local_port_range").unwrap();
        assert_eq!(parse_numbers(&v).unwrap().len(), 2);
        assert!(!v.ends_with('\n'));
        let e = read_sysctl(Path::new("/proc/sys"), "net.ipv4.tcp_no_such_thing").unwrap_err();
        assert!(
            matches!(&e, ProcError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{e}"
        );
    }

    #[test]
    fn read_text_rejects_binary() {
        // /proc/self/cmdline is NUL-separated but valid UTF-8; /proc/self/auxv is binary.
        let e = read_text(Path::new("/proc/self/auxv")).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn sysctl_lists_have_no_duplicates() {
        let mut names: Vec<&str> = HOST_SYSCTLS
            .iter()
            .chain(NETNS_SYSCTLS)
            .map(|s| s.name)
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(HOST_SYSCTLS
            .iter()
            .chain(NETNS_SYSCTLS)
            .all(|s| sysctl_rel_path(s.name).is_ok() && !s.why.is_empty()));
    }

    /// The lists agree with this kernel: every required sysctl exists in the initial
    /// netns, and the net.ipv4/net.core host ones are absent from /proc/sys/net of
    /// other namespaces (checked from the netns side in netns.rs's tests).
    #[test]
    fn required_sysctls_exist_here() {
        for s in HOST_SYSCTLS
            .iter()
            .chain(NETNS_SYSCTLS)
            .filter(|s| !s.optional)
        {
            read_sysctl(Path::new("/proc/sys"), s.name)
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
    }

    /// A tiny xorshift: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn run_all_parsers(text: &str) {
        let _ = parse_sockstat(text);
        let _ = parse_counter_table(text);
        let _ = parse_file_nr(text);
        let _ = parse_numbers(text);
        let _ = parse_port_ranges(text);
        let _ = sysctl_rel_path(text);
    }

    /// No parser panics on arbitrary input: real fixtures mutated (bytes replaced,
    /// truncated at any char, lines spliced) and random strings over a hostile alphabet.
    #[test]
    fn no_panic_on_arbitrary_input() {
        const ALPHABET: &[char] = &[
            ' ', '\t', '\n', ':', '-', ',', '0', '1', '9', 'a', 'T', '\0', 'é', '\u{fffd}', '\r',
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for fixture in ALL_FIXTURES {
            for (i, _) in fixture.char_indices() {
                run_all_parsers(&fixture[..i]);
            }
            for _ in 0..300 {
                let mut chars: Vec<char> = fixture.chars().collect();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(chars.len());
                    match rng.below(3) {
                        0 if !chars.is_empty() => chars[at] = ALPHABET[rng.below(ALPHABET.len())],
                        1 if !chars.is_empty() => drop(chars.remove(at)),
                        _ => chars.insert(at.min(chars.len()), ALPHABET[rng.below(ALPHABET.len())]),
                    }
                }
                run_all_parsers(&chars.into_iter().collect::<String>());
            }
        }
        for _ in 0..5000 {
            let len = rng.below(64);
            let s: String = (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect();
            run_all_parsers(&s);
        }
    }
}
