//! The catalog: every finding code declared once, with what it needs, its
//! thresholds, the kernel messages it accounts for and its `explain` page. The
//! `explain` command, `--verbose`, the README and the "skipped" notes all come from
//! this list.

use crate::context::Ctx;
use crate::rules;
use sockmedic_model::{Finding, LogKind, Snapshot};

/// One finding code and the rule that produces it.
pub struct Rule {
    /// The stable code (`orphan-pressure`).
    pub code: &'static str,
    /// When it fires, in one line.
    pub summary: &'static str,
    /// Data without which the rule cannot run (it is skipped, with the reason).
    pub needs: &'static [Need],
    /// The thresholds it reads (names in [`crate::THRESHOLDS`]).
    pub thresholds: &'static [&'static str],
    /// Kernel messages a finding of this code cites as evidence when it fires;
    /// `kernel-log` reports every message no finding cited.
    pub explains: &'static [LogKind],
    /// The long page (`sockmedic explain CODE`), Markdown.
    pub page: &'static str,
    pub(crate) check: fn(&Ctx) -> Vec<Finding>,
}

/// A piece of the Snapshot a rule cannot do without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Host sockstat `orphan` and `tcp_max_orphans`.
    Orphans,
    /// Host sockstat `mem` and `tcp_mem`.
    TcpMem,
    /// The sockets of at least one namespace, dumped.
    Sockets,
    /// The process scan (fds, limits, sockets per process).
    Processes,
    /// The per-namespace sysctls.
    Sysctls,
    /// `nf_conntrack_max` (nf_conntrack loaded).
    Conntrack,
    /// The kernel log.
    KernelLog,
    /// A packet capture: never in a Snapshot. The rules that need it are
    /// capture-only (`sockmedic pcap FILE` produces their findings); `diagnose()`
    /// skips them silently.
    Capture,
}

impl Need {
    /// Why the snapshot lacks it, or `None` when it has it.
    pub fn missing(self, snap: &Snapshot) -> Option<String> {
        let host = &snap.host;
        let lacks = match self {
            Need::Orphans => {
                host.sockstat.tcp_orphan.is_none() || host.limits.tcp_max_orphans.is_none()
            }
            Need::TcpMem => host.sockstat.tcp_mem_pages.is_none() || host.limits.tcp_mem.is_none(),
            Need::Sockets => !snap.netns.iter().any(|n| n.dump.is_some()),
            Need::Processes => snap.processes.is_empty(),
            Need::Sysctls => snap.netns.iter().all(|n| n.sysctl.is_empty()),
            Need::Conntrack => host.limits.nf_conntrack_max.is_none(),
            Need::KernelLog => snap.kernel_log.is_none(),
            Need::Capture => true,
        };
        lacks.then(|| self.why_missing(snap))
    }

    fn why_missing(self, snap: &Snapshot) -> String {
        if self == Need::Capture {
            return "only from a capture: sockmedic pcap FILE".into();
        }
        let (what, keys): (&str, &[&str]) = match self {
            Need::Orphans => (
                "sockstat orphan and net.ipv4.tcp_max_orphans",
                &["sockstat", "tcp_max_orphans"],
            ),
            Need::TcpMem => (
                "sockstat mem and net.ipv4.tcp_mem",
                &["sockstat", "tcp_mem"],
            ),
            Need::Sockets => (
                "the socket tables (no namespace was dumped)",
                &["TCP sockets"],
            ),
            // The scan's own failures are per process; none explains a missing scan.
            // Saved outputs say which process list they lack (`process list`).
            Need::Processes => ("the process scan", &["process list"]),
            Need::Sysctls => ("the per-namespace sysctls", &["net.ipv4", "sysctl"]),
            Need::Conntrack => ("net.netfilter.nf_conntrack_max", &["nf_conntrack"]),
            Need::KernelLog => ("the kernel log", &["kernel log", "kmsg"]),
            Need::Capture => unreachable!("handled above"),
        };
        // The collector's own reason, when it recorded one.
        let why = snap
            .missing
            .iter()
            .find(|m| keys.iter().any(|k| m.what.contains(k)))
            .map(|m| m.why.clone());
        match (self, why) {
            (_, Some(why)) => format!("needs {what}: {why}"),
            (Need::Processes, None) => {
                format!("needs {what}: not run (--no-procs) or nothing readable")
            }
            (Need::Conntrack, None) => {
                format!("needs {what}: the nf_conntrack module is not loaded")
            }
            (_, None) => format!("needs {what}: not in this snapshot"),
        }
    }
}

impl Rule {
    /// Why the rule cannot run on this snapshot, or `None` when it can.
    pub fn missing(&self, snap: &Snapshot) -> Option<String> {
        self.needs.iter().find_map(|n| n.missing(snap))
    }

    /// Whether only a capture produces this code (`sockmedic pcap FILE`): it needs
    /// [`Need::Capture`], and its `check` finds nothing in a Snapshot.
    pub fn capture_only(&self) -> bool {
        self.needs.contains(&Need::Capture)
    }
}

/// The rule of a code.
pub fn rule(code: &str) -> Option<&'static Rule> {
    CATALOG.iter().find(|r| r.code == code)
}

/// The `explain` page of a code.
pub fn explain_page(code: &str) -> Option<&'static str> {
    rule(code).map(|r| r.page)
}

macro_rules! page {
    ($code:literal) => {
        include_str!(concat!("../explain/", $code, ".md"))
    };
}

/// Every finding code, in the order findings of one severity are shown.
pub static CATALOG: [Rule; 15] = [
    Rule {
        code: "orphan-pressure",
        summary: "orphans ×1, ×2 or ×4 (the kernel's penalty) approach tcp_max_orphans; `too many orphaned sockets` seen",
        needs: &[Need::Orphans],
        thresholds: &["orphans.warning", "orphans.critical", "teardown.share", "kernel-log.recent"],
        explains: &[LogKind::TooManyOrphans, LogKind::OutOfSocketMemory],
        page: page!("orphan-pressure"),
        check: rules::orphan_pressure::check,
    },
    Rule {
        code: "teardown-stall",
        summary: "many sockets in FIN-WAIT-1 / LAST-ACK / CLOSING, concentrated on one local or remote endpoint; in a capture, FINs retransmitted or unacknowledged per endpoint",
        needs: &[Need::Sockets],
        thresholds: &[
            "teardown.min",
            "teardown.critical",
            "teardown.share",
            "capture.fin-wait-warning-ms",
            "capture.fin-wait-critical-ms",
        ],
        explains: &[],
        page: page!("teardown-stall"),
        check: rules::teardown_stall::check,
    },
    Rule {
        code: "timewait-pressure",
        summary: "TIME-WAIT at tcp_max_tw_buckets or TCPTimeWaitOverflow rising; TIME-WAIT eating the ephemeral range towards one destination",
        needs: &[],
        thresholds: &["timewait.warning", "timewait.critical", "ports.warning"],
        explains: &[LogKind::TwOverflow],
        page: page!("timewait-pressure"),
        check: rules::timewait_pressure::check,
    },
    Rule {
        code: "close-wait-leak",
        summary: "a process holds CLOSE-WAIT sockets: it never closes after the peer did",
        needs: &[Need::Sockets],
        thresholds: &["close-wait.warning", "close-wait.critical"],
        explains: &[],
        page: page!("close-wait-leak"),
        check: rules::close_wait_leak::check,
    },
    Rule {
        code: "socket-leak",
        summary: "a process holds TCP socket fds that are in no table (CLOSE: never connected, or reset and not closed)",
        // Without a process scan it still reports what sockstat proves (incident 3's
        // `ss -s`), unattributed.
        needs: &[],
        thresholds: &["socket-leak.warning", "socket-leak.critical"],
        explains: &[LogKind::NoMoreSockets],
        page: page!("socket-leak"),
        check: rules::socket_leak::check,
    },
    Rule {
        code: "port-exhaustion",
        summary: "ephemeral ports in use (bound + connected) near the size of ip_local_port_range; EADDRNOTAVAIL ahead",
        // Runs on a saved `ss -s` too (its bound-port count).
        needs: &[],
        thresholds: &["ports.warning", "ports.critical"],
        explains: &[LogKind::PortRangeParity],
        page: page!("port-exhaustion"),
        check: rules::port_exhaustion::check,
    },
    Rule {
        code: "fd-exhaustion",
        summary: "a process near its RLIMIT_NOFILE, or the host near fs.file-max",
        needs: &[],
        thresholds: &["fd.warning", "fd.critical"],
        explains: &[LogKind::FileMax, LogKind::NoMoreSockets],
        page: page!("fd-exhaustion"),
        check: rules::fd_exhaustion::check,
    },
    Rule {
        code: "accept-queue-overflow",
        summary: "a listener's accept queue at its backlog; ListenOverflows/ListenDrops rising",
        needs: &[Need::Sockets],
        thresholds: &["accept.warning"],
        explains: &[],
        page: page!("accept-queue-overflow"),
        check: rules::accept_queue::check,
    },
    Rule {
        code: "syn-backlog",
        summary: "SYN-RECV piling up on a listener; TCPReqQFullDrop/DoCookies rising; the SYN flood message",
        needs: &[Need::Sockets],
        thresholds: &["syn.warning", "syn.min", "kernel-log.recent"],
        explains: &[LogKind::SynFlood, LogKind::DropOpenRequest],
        page: page!("syn-backlog"),
        check: rules::syn_backlog::check,
    },
    Rule {
        code: "syn-unanswered",
        summary: "in a capture: handshakes with a listener that do not complete, SYNs answered by neither SYN-ACK nor RST or SYN-ACKs sent again (capture only: `sockmedic pcap FILE`)",
        needs: &[Need::Capture],
        thresholds: &["capture.syn-unanswered-min"],
        explains: &[],
        page: page!("syn-unanswered"),
        check: rules::capture_only,
    },
    Rule {
        code: "reset-storm",
        summary: "in a capture: a large share of the connections ended in a RST (capture only: `sockmedic pcap FILE`)",
        needs: &[Need::Capture],
        thresholds: &["capture.reset-min", "capture.reset-share"],
        explains: &[],
        page: page!("reset-storm"),
        check: rules::capture_only,
    },
    Rule {
        code: "tcp-memory-pressure",
        summary: "TCP memory over tcp_mem pressure or near max; TCPMemoryPressures/TCPAbortOnMemory rising; `out of memory -- consider tuning tcp_mem`",
        needs: &[Need::TcpMem],
        thresholds: &["tcp-mem.critical", "socket-leak.warning", "teardown.share", "kernel-log.recent"],
        explains: &[LogKind::TcpMem, LogKind::OutOfSocketMemory],
        page: page!("tcp-memory-pressure"),
        check: rules::tcp_memory::check,
    },
    Rule {
        code: "conntrack-full",
        summary: "nf_conntrack_count near nf_conntrack_max; `table full, dropping packet`",
        needs: &[Need::Conntrack],
        thresholds: &["conntrack.warning", "conntrack.critical", "kernel-log.recent"],
        explains: &[LogKind::ConntrackFull],
        page: page!("conntrack-full"),
        check: rules::conntrack_full::check,
    },
    Rule {
        code: "risky-sysctl",
        summary: "settings known to hurt: tcp_tw_recycle, tiny tcp_max_tw_buckets, somaxconn 128, tcp_synack_retries 0, a narrow or same-parity port range, ...",
        needs: &[Need::Sysctls],
        thresholds: &[],
        explains: &[LogKind::PortRangeParity],
        page: page!("risky-sysctl"),
        check: rules::risky_sysctl::check,
    },
    Rule {
        code: "kernel-log",
        summary: "a known message in the kernel log that no other finding explains",
        needs: &[Need::KernelLog],
        thresholds: &["kernel-log.recent"],
        explains: &[],
        page: page!("kernel-log"),
        check: rules::kernel_log::check,
    },
];
