//! The registry of saved formats: one entry each, recognised from the content.

use super::{host, shell, supportconfig, transcript, Offline};
use sockmedic_collect::procfs;
use std::io::BufRead;
use std::path::PathBuf;

/// One input being read: its name for messages, and its path when it has one
/// (a few values are only named by their path, e.g. `proc/sys/net/ipv4/tcp_mem`).
#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    pub path: Option<PathBuf>,
}

/// A saved format.
pub struct Format {
    /// Shown in `source` and messages (`ss -tan`, `/proc/net/sockstat`).
    pub name: &'static str,
    /// Whether the start of a file (its first 8 KiB, lossily decoded) is this format.
    pub sniff: fn(head: &str, input: &Input) -> bool,
    /// Reads the whole input into the builder; an error is one line (what, why).
    pub parse: fn(text: &mut dyn BufRead, out: &mut Offline, input: &Input) -> Result<(), String>,
    /// Inputs are parsed in this order (settings before listings: a listing's
    /// ephemeral-port figures need the port range).
    pub order: u8,
}

/// Every format sockmedic reads, most specific first (the first match wins).
pub static FORMATS: &[Format] = &[
    // Containers first: they split their input and read each part as a format below.
    Format {
        name: SUPPORTCONFIG,
        sniff: supportconfig::sniff,
        parse: supportconfig::parse,
        order: 1,
    },
    Format {
        name: TRANSCRIPT,
        sniff: transcript::sniff,
        parse: transcript::parse,
        order: 1,
    },
    Format {
        name: "/proc/sys value",
        sniff: proc_sys_sniff,
        parse: proc_sys_parse,
        order: 0,
    },
    Format {
        name: "/proc/net/sockstat",
        sniff: sockstat_sniff,
        parse: sockstat_parse,
        order: 0,
    },
    Format {
        name: "/proc/net/snmp or netstat",
        sniff: counters_sniff,
        parse: counters_parse,
        order: 0,
    },
    // Socket listings and counters (ss.rs, netstat.rs, proc_tcp.rs).
    Format {
        name: "ss -s",
        sniff: super::ss::summary_sniff,
        parse: super::ss::summary_parse,
        order: 0,
    },
    Format {
        name: "ss listing",
        sniff: super::ss::listing_sniff,
        parse: super::ss::listing_parse,
        order: 1,
    },
    Format {
        name: "netstat listing",
        sniff: super::netstat::listing_sniff,
        parse: super::netstat::listing_parse,
        order: 1,
    },
    Format {
        name: "netstat -s",
        sniff: super::netstat::stats_sniff,
        parse: super::netstat::stats_parse,
        order: 0,
    },
    Format {
        name: "nstat",
        sniff: super::netstat::nstat_sniff,
        parse: super::netstat::nstat_parse,
        order: 0,
    },
    Format {
        name: "/proc/net/tcp",
        sniff: super::proc_tcp::sniff,
        parse: super::proc_tcp::parse,
        order: 1,
    },
    Format {
        name: "sysctl -a",
        sniff: sysctl_sniff,
        parse: sysctl_parse,
        order: 0,
    },
    Format {
        name: "kernel log",
        sniff: kernel_log_sniff,
        parse: kernel_log_parse,
        order: 2,
    },
    Format {
        name: "sysctl lines",
        sniff: transcript::sysctl_lines_sniff,
        parse: transcript::sysctl_lines_parse,
        order: 0,
    },
    Format {
        name: "ulimit -a",
        sniff: shell::ulimit_a_sniff,
        parse: shell::ulimit_a_parse,
        order: 0,
    },
    Format {
        name: "/proc/PID/limits",
        sniff: shell::limits_sniff,
        parse: shell::limits_parse,
        order: 0,
    },
    Format {
        name: "uname -a",
        sniff: host::uname_sniff,
        parse: host::uname_parse,
        order: 0,
    },
    Format {
        name: "hostname",
        sniff: host::hostname_sniff,
        parse: host::hostname_parse,
        order: 0,
    },
    Format {
        name: "date",
        sniff: host::date_sniff,
        parse: host::date_parse,
        order: 0,
    },
    Format {
        name: "/proc/sys/fs/file-nr",
        sniff: host::file_nr_sniff,
        parse: host::file_nr_parse,
        order: 0,
    },
];

/// The names of the container formats (parts of them are never containers).
const SUPPORTCONFIG: &str = "supportconfig file";
const TRANSCRIPT: &str = "terminal transcript";

/// The format of a part of a container (a transcript's command output, a
/// supportconfig section): any format but the containers.
pub(crate) fn detect_leaf(head: &str, input: &Input) -> Option<&'static Format> {
    FORMATS
        .iter()
        .filter(|f| f.name != SUPPORTCONFIG && f.name != TRANSCRIPT)
        .find(|f| (f.sniff)(head, input))
}

/// The format of an input, from its first bytes.
pub fn detect(head: &str, input: &Input) -> Option<&'static Format> {
    FORMATS.iter().find(|f| (f.sniff)(head, input))
}

pub(crate) fn read_all(text: &mut dyn BufRead) -> Result<String, String> {
    let mut s = String::new();
    let mut buf = Vec::new();
    text.read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    s.push_str(&String::from_utf8_lossy(&buf));
    Ok(s)
}

/// Parses `text`; when that fails and the text ends in the middle of a line (a file
/// cut short), parses it again without the cut line, and then without the line
/// before it too (a counter table's header whose values were cut).
fn whole_lines<T>(text: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, String> {
    let first = parse(text);
    if first.is_ok() || text.ends_with('\n') {
        return first;
    }
    let mut shorter = text;
    for _ in 0..2 {
        match shorter.rfind('\n') {
            Some(i) => shorter = &shorter[..i],
            None => break,
        }
        if let Ok(v) = parse(shorter) {
            return Ok(v);
        }
    }
    first
}

fn first_line(head: &str) -> &str {
    head.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

// ---------------------------------------------------------------- /proc/sys/...

/// A file under `proc/sys/` (a sosreport or bundle tree): the path is the name.
fn proc_sys_name(input: &Input) -> Option<String> {
    let p = input.path.as_ref()?.to_str()?;
    let rel = &p[p.find("proc/sys/")? + "proc/sys/".len()..];
    Some(rel.replace('/', "."))
}

fn proc_sys_sniff(head: &str, input: &Input) -> bool {
    let lines = head.lines().filter(|l| !l.trim().is_empty()).count();
    proc_sys_name(input).is_some() && lines <= 1 && !head.contains('=')
}

fn proc_sys_parse(text: &mut dyn BufRead, out: &mut Offline, input: &Input) -> Result<(), String> {
    let name = proc_sys_name(input).ok_or("not under proc/sys/")?;
    let value = read_all(text)?;
    if name == "fs.file-nr" {
        out.file_nr(procfs::parse_file_nr(&value).map_err(|e| e.to_string())?);
    }
    out.sysctl(&name, value.trim());
    Ok(())
}

// ---------------------------------------------------------------- sockstat

fn sockstat_sniff(head: &str, _: &Input) -> bool {
    let l = first_line(head);
    l.starts_with("sockets: used")
        || (l.starts_with("TCP6: inuse") && !head.contains(" fd "))
        // A pasted `TCP:` line alone (incident 3's `TCP: inuse 81 orphan 0 tw 6 ...`).
        || l.starts_with("TCP: inuse")
}

fn sockstat_parse(text: &mut dyn BufRead, out: &mut Offline, _: &Input) -> Result<(), String> {
    let t = read_all(text)?;
    let sections = whole_lines(&t, |t| procfs::parse_sockstat(t).map_err(|e| e.to_string()))?;
    for (section, fields) in sections {
        for (field, v) in fields {
            out.sockstat(&section, &field, v);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- snmp, netstat

fn counters_sniff(head: &str, _: &Input) -> bool {
    let l = first_line(head);
    [
        "Ip: Forwarding",
        "TcpExt: SyncookiesSent",
        "Tcp: RtoAlgorithm",
        "Icmp: InMsgs",
    ]
    .iter()
    .any(|p| l.starts_with(p))
}

fn counters_parse(text: &mut dyn BufRead, out: &mut Offline, _: &Input) -> Result<(), String> {
    let t = read_all(text)?;
    let table = whole_lines(&t, |t| {
        procfs::parse_counter_table(t).map_err(|e| e.to_string())
    })?;
    for (section, values) in table {
        for (name, v) in values {
            out.counter(&section, &name, v);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- sysctl -a

fn sysctl_line(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(" = ")?;
    let k = k.trim();
    (k.contains('.') && !k.contains(' ') && k.chars().all(|c| c.is_ascii_graphic()))
        .then_some((k, v))
}

fn sysctl_sniff(head: &str, _: &Input) -> bool {
    let lines: Vec<&str> = head
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    !lines.is_empty()
        && lines.iter().filter(|l| sysctl_line(l).is_some()).count() * 10 >= lines.len() * 8
}

fn sysctl_parse(text: &mut dyn BufRead, out: &mut Offline, input: &Input) -> Result<(), String> {
    let mut n = 0;
    for line in text.lines() {
        let line = line.map_err(|e| format!("cannot read: {e}"))?;
        if let Some((k, v)) = sysctl_line(&line) {
            out.sysctl(k, v);
            n += 1;
        }
    }
    if n == 0 {
        return Err(format!("{}: no `name = value` line", input.name));
    }
    Ok(())
}

// ---------------------------------------------------------------- kernel log

fn kernel_log_sniff(head: &str, _: &Input) -> bool {
    let lines: Vec<&str> = head
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    let parsed = lines
        .iter()
        .filter(|l| {
            crate::kernel_log::parse_line(l)
                .is_some_and(|p| !matches!(p.format, crate::kernel_log::LineFormat::Bare))
        })
        .count();
    !lines.is_empty() && parsed * 10 >= lines.len() * 8
}

fn kernel_log_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    for line in text.lines() {
        let line = line.map_err(|e| format!("cannot read: {e}"))?;
        out.kernel_log_line(&input.name, &line);
    }
    Ok(())
}
