//! `kernel-log`: known kernel messages that no other finding accounts for.

use crate::context::{finding, Ctx};
use sockmedic_model::{Finding, KernelMessage, LogKind, Severity, Subject};

/// Every known message, as if no other finding had cited any.
pub fn check(ctx: &Ctx) -> Vec<Finding> {
    uncited(ctx, &|_| false)
}

/// One finding per kind of the messages that `cited` says no finding quotes.
pub fn uncited(ctx: &Ctx, cited: &dyn Fn(&KernelMessage) -> bool) -> Vec<Finding> {
    let Some(log) = &ctx.snap.kernel_log else {
        return Vec::new();
    };
    let left: Vec<&KernelMessage> = log.messages.iter().filter(|m| !cited(m)).collect();
    let mut kinds: Vec<LogKind> = left.iter().map(|m| m.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
        .into_iter()
        .map(|kind| {
            let msgs: Vec<&KernelMessage> =
                left.iter().copied().filter(|m| m.kind == kind).collect();
            let count: u64 = msgs.iter().map(|m| m.count).sum();
            let severity = if msgs.iter().any(|m| ctx.recent(m)) {
                Severity::Warning
            } else {
                Severity::Info
            };
            let last = msgs.iter().max_by(|a, b| {
                a.last_uptime_s
                    .partial_cmp(&b.last_uptime_s)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let subject = Subject {
                count: Some(count),
                local: (kind == LogKind::SynFlood)
                    .then(|| last.and_then(|m| m.detail.clone()))
                    .flatten()
                    .filter(|d| d.contains(':')),
                ..Subject::default()
            };
            let mut f = finding(
                "kernel-log",
                severity,
                format!(
                    "Kernel log: \"{}\" ×{count}",
                    last.map(|m| m.sample.trim()).unwrap_or("")
                ),
                subject,
            )
            .evidence_all(ctx.quote(&msgs))
            .explain(meaning(kind));
            if log.suppressed > 0 {
                f = f.evidence(format!(
                    "{} more messages were suppressed by net_ratelimit: counts are lower bounds",
                    log.suppressed
                ));
            }
            f.fix(advice(kind), None).build()
        })
        .collect()
}

fn meaning(kind: LogKind) -> &'static str {
    match kind {
        LogKind::TooManyOrphans => "tcp_check_oom() found orphans × the penalty (1, 2 or 4) over tcp_max_orphans and reset an orphan. Nothing is over the threshold now: it happened earlier.",
        LogKind::OutOfSocketMemory => "Kernels up to 3.0 print this for either cause: orphans over tcp_max_orphans (with the ×2/×4 penalty) or TCP memory over tcp_mem max. Later kernels split it into two messages.",
        LogKind::TcpMem => "tcp_check_oom() found TCP memory over tcp_mem max while closing an orphan with queued data, and reset it.",
        LogKind::TwOverflow => "Kernels up to 2.6.36: the TIME-WAIT table was full (tcp_max_tw_buckets) and a connection skipped TIME-WAIT. Later kernels only count TCPTimeWaitOverflow.",
        LogKind::SynFlood => "A listener's SYN queue filled (as many requests as its backlog); the kernel sent SYN cookies or dropped SYNs. Printed once per listener.",
        LogKind::ConntrackFull => "The connection-tracking table was full; packets of new flows were dropped.",
        LogKind::FileMax => "The host reached fs.file-max: opening files and sockets failed with ENFILE.",
        LogKind::NoMoreSockets => "Socket allocation failed (ENFILE): the host is out of file handles or memory for sockets.",
        LogKind::PortRangeParity => "Someone wrote an ip_local_port_range whose ends have the same parity; connect() and bind(0) then share ports less well.",
        LogKind::DropOpenRequest => "With syncookies off, the SYN queue was nearly full and a request from an unproven peer was dropped (dynamic debug only).",
        LogKind::NeighborOverflow => "The neighbour (ARP/NDP) table is full; connections to new peers fail. Raise net.ipv4.neigh.default.gc_thresh3.",
    }
}

fn advice(kind: LogKind) -> &'static str {
    match kind {
        LogKind::TooManyOrphans | LogKind::OutOfSocketMemory => "See `sockmedic explain orphan-pressure` and `sockmedic explain tcp-memory-pressure`; run `sockmedic check` while it happens",
        LogKind::TcpMem => "See `sockmedic explain tcp-memory-pressure`",
        LogKind::TwOverflow => "See `sockmedic explain timewait-pressure`",
        LogKind::SynFlood | LogKind::DropOpenRequest => "See `sockmedic explain syn-backlog`",
        LogKind::ConntrackFull => "See `sockmedic explain conntrack-full`",
        LogKind::FileMax | LogKind::NoMoreSockets => "See `sockmedic explain fd-exhaustion`",
        LogKind::PortRangeParity => "Set an ip_local_port_range with an even start and an odd end (e.g. 32768 60999)",
        LogKind::NeighborOverflow => "Raise net.ipv4.neigh.default.gc_thresh1/2/3 (and the IPv6 ones) above the number of peers on the link",
    }
}
