//! `risky-sysctl`: settings known to hurt (incident 4's audit and kernel-notes),
//! judged against the running kernel's defaults.

use crate::context::{finding, Ctx};
use sockmedic_model::{Finding, LogKind, Netns, Severity, Subject};
use std::collections::BTreeMap;

/// One risky setting found in a namespace.
struct Risk {
    severity: Severity,
    /// The sysctl at fault and its value.
    name: &'static str,
    value: String,
    title: String,
    why: &'static str,
    /// The value to set instead, when there is one.
    fix: Option<String>,
    caveat: Option<&'static str>,
    /// Kernel messages this setting causes, quoted as evidence.
    cites: &'static [LogKind],
}

type Audit = fn(&Ctx, &Netns) -> Option<Risk>;

const AUDITS: &[Audit] = &[
    tw_recycle,
    max_tw_buckets,
    somaxconn,
    synack_retries,
    port_range_size,
    port_range_parity,
    syncookies,
    abort_on_overflow,
    fin_timeout,
    orphan_retries_high,
    tw_reuse_without_timestamps,
];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    // The same setting with the same value in many namespaces is one finding.
    let mut groups: BTreeMap<(&'static str, String, String), (Risk, Vec<&Netns>)> = BTreeMap::new();
    let mut order: Vec<&Netns> = ctx
        .snap
        .netns
        .iter()
        .filter(|n| !n.sysctl.is_empty())
        .collect();
    order.sort_by_key(|n| !n.host);
    for ns in order {
        for audit in AUDITS {
            if let Some(r) = audit(ctx, ns) {
                groups
                    .entry((r.name, r.value.clone(), r.title.clone()))
                    .or_insert_with(|| (r, Vec::new()))
                    .1
                    .push(ns);
            }
        }
    }
    groups
        .into_values()
        .map(|(r, nss)| to_finding(ctx, r, &nss))
        .collect()
}

fn to_finding(ctx: &Ctx, r: Risk, nss: &[&Netns]) -> Finding {
    let first = nss[0];
    let names: Vec<&str> = nss.iter().take(8).map(|n| n.name()).collect();
    let subject = Subject {
        netns: Some(first.name().to_string()),
        pod: first.pod.clone(),
        count: Some(nss.len() as u64),
        ..Subject::default()
    };
    let mut f = finding("risky-sysctl", r.severity, r.title, subject)
        .evidence(format!(
            "{} = {} in {} namespace{}: {}{}",
            r.name,
            r.value,
            nss.len(),
            if nss.len() == 1 { "" } else { "s" },
            names.join(", "),
            if nss.len() > 8 { ", ..." } else { "" }
        ))
        .evidence_all(ctx.log_evidence(r.cites))
        .explain(r.why);
    if let Some(v) = r.fix {
        f = f.sysctl(format!("Set {} = {v}", r.name), &[(r.name, v)], r.caveat);
    }
    f.build()
}

fn risk(
    severity: Severity,
    name: &'static str,
    ns: &Netns,
    title: String,
    why: &'static str,
    fix: Option<String>,
) -> Option<Risk> {
    Some(Risk {
        severity,
        name,
        value: ns
            .sysctl
            .get(name)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        title,
        why,
        fix,
        caveat: None,
        cites: &[],
    })
}

fn tw_recycle(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    if ns.sysctl_u64("net.ipv4.tcp_tw_recycle")? == 0 {
        return None;
    }
    let ts = ns.sysctl_u64("net.ipv4.tcp_timestamps").unwrap_or(1) != 0;
    risk(
        if ts { Severity::Critical } else { Severity::Warning },
        "net.ipv4.tcp_tw_recycle",
        ns,
        format!(
            "tcp_tw_recycle is on{}: SYNs from clients behind NAT are silently dropped",
            if ts { " with tcp_timestamps" } else { "" }
        ),
        "With tcp_tw_recycle, tcp_conn_request() rejects a SYN whose timestamp is older than the last one cached for \
         the same source IP within 60 s (PAWSPassive). Hosts behind one NAT share an IP but not a timestamp clock, so \
         the SYNs of all but one of them are dropped without a trace (incident 4). Removed in Linux 4.12.",
        Some("0".into()),
    )
}

fn max_tw_buckets(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    let v = ns.sysctl_u64("net.ipv4.tcp_max_tw_buckets")?;
    let default = super::default_tw_buckets(ns);
    if v * 8 > default {
        return None;
    }
    risk(
        Severity::Warning,
        "net.ipv4.tcp_max_tw_buckets",
        ns,
        format!("tcp_max_tw_buckets is {v}, far below the kernel's default {default}: closes beyond it skip TIME-WAIT"),
        "When the TIME-WAIT table is full, a closing connection skips TIME-WAIT (TCPTimeWaitOverflow): its 4-tuple \
         can be reused at once, and delayed segments of the old connection can corrupt the new one. A small limit \
         hides TIME-WAIT instead of removing its cause (incident 4 had 5000).",
        Some(default.to_string()),
    )
}

fn somaxconn(ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    let v = ns.sysctl_u64("net.core.somaxconn")?;
    if v > 128 {
        return None;
    }
    let old_default = ctx.kernel().is_some_and(|k| k < (5, 4));
    risk(
        Severity::Warning,
        "net.core.somaxconn",
        ns,
        format!(
            "net.core.somaxconn is {v}{}: every listen() backlog is capped there, so bursts overflow accept queues",
            if old_default { " (this kernel's default)" } else { ", below the default 4096 of 5.4+" }
        ),
        "listen() caps its backlog at somaxconn, so no server in the namespace can queue more completed connections \
         than this; a burst or a short stall of the application then overflows the queue (ListenOverflows) and \
         clients retransmit SYNs.",
        Some("4096".into()),
    )
}

fn synack_retries(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    if ns.sysctl_u64("net.ipv4.tcp_synack_retries")? != 0 {
        return None;
    }
    risk(
        Severity::Warning,
        "net.ipv4.tcp_synack_retries",
        ns,
        "tcp_synack_retries is 0: one lost SYN-ACK fails the connection".into(),
        "The SYN-ACK is never retransmitted, so any loss on the way back leaves the client retransmitting its SYN \
         into a request the server already dropped (incident 4's audit).",
        Some("2".into()),
    )
}

fn port_range(ns: &Netns) -> Option<(u64, u64)> {
    ns.port_range()
        .map(|(lo, hi)| (u64::from(lo), u64::from(hi)))
}

/// Under half the default size (28232 ports): where a busy client runs out.
fn is_narrow(lo: u64, hi: u64) -> bool {
    hi.saturating_sub(lo) + 1 < 14_116
}

fn port_range_size(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    let (lo, hi) = port_range(ns)?;
    let size = hi.saturating_sub(lo) + 1;
    if !is_narrow(lo, hi) {
        return None;
    }
    risk(
        Severity::Warning,
        "net.ipv4.ip_local_port_range",
        ns,
        format!("ip_local_port_range {lo}-{hi} gives only {size} ephemeral ports (default 32768-60999: 28232)"),
        "Every outgoing connection to one destination needs its own port, for its life plus 60 s of TIME-WAIT; every \
         socket bound with port 0 takes one for all destinations. A narrow range runs out (EADDRNOTAVAIL) at modest \
         load (incident 3: 12000 ports).",
        Some("32768 60999".into()),
    )
}

fn port_range_parity(ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    let (lo, hi) = port_range(ns)?;
    // A narrow range has its own finding, whose fix (the default range) also
    // fixes the parity.
    if lo % 2 != hi % 2 || ctx.kernel().is_some_and(|k| k < (4, 6)) || is_narrow(lo, hi) {
        return None;
    }
    risk(
        Severity::Info,
        "net.ipv4.ip_local_port_range",
        ns,
        format!("ip_local_port_range {lo} {hi}: both ends have the same parity"),
        "Since 4.6 connect() scans ports of the start's parity first and bind(0) the other parity, so the two do \
         not exhaust each other; with both ends of one parity the split is uneven (the kernel logs `prefer \
         different parity for start/end values`).",
        Some(format!("{lo} {}", if hi % 2 == 0 { hi + 1 } else { hi.saturating_sub(1) }.min(65_535))),
    )
    .map(|r| Risk { cites: &[LogKind::PortRangeParity], ..r })
}

fn syncookies(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    if ns.sysctl_u64("net.ipv4.tcp_syncookies")? != 0 {
        return None;
    }
    risk(
        Severity::Warning,
        "net.ipv4.tcp_syncookies",
        ns,
        "tcp_syncookies is 0: a full SYN queue drops new connections instead of answering with cookies".into(),
        "Without cookies, a listener whose SYN queue is full drops SYNs (TCPReqQFullDrop); a burst or a small SYN \
         flood then refuses legitimate clients.",
        Some("1".into()),
    )
}

fn abort_on_overflow(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    if ns.sysctl_u64("net.ipv4.tcp_abort_on_overflow")? == 0 {
        return None;
    }
    risk(
        Severity::Warning,
        "net.ipv4.tcp_abort_on_overflow",
        ns,
        "tcp_abort_on_overflow is 1: a full accept queue resets clients instead of letting them retry".into(),
        "With the default 0 a final ACK arriving at a full accept queue is ignored and the client's retransmission \
         gets a second chance; with 1 the client gets a reset, so a short burst becomes connection errors.",
        Some("0".into()),
    )
}

fn fin_timeout(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    let v = ns.sysctl_u64("net.ipv4.tcp_fin_timeout")?;
    if v >= 10 {
        return None;
    }
    risk(
        Severity::Info,
        "net.ipv4.tcp_fin_timeout",
        ns,
        format!("tcp_fin_timeout is {v} s: it does not shorten TIME-WAIT, FIN-WAIT-1 or LAST-ACK"),
        "tcp_fin_timeout only bounds how long an orphaned FIN-WAIT-2 waits for the peer's FIN. TIME-WAIT is fixed at \
         60 s, and FIN-WAIT-1/LAST-ACK end by retransmission timeouts (tcp_orphan_retries). A very low value cuts \
         slow peers' closes short without relieving anything else (incident 2 tried 1 s).",
        None,
    )
}

fn orphan_retries_high(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    let v = ns.sysctl_u64("net.ipv4.tcp_orphan_retries")?;
    if v <= 8 {
        return None;
    }
    risk(
        Severity::Info,
        "net.ipv4.tcp_orphan_retries",
        ns,
        format!("tcp_orphan_retries is {v}: unanswered orphans live longer than with the default (0, meaning 8: about 102 s)"),
        "tcp_orphan_retries = 0 does not mean no retries: the kernel then uses 8. Larger values keep stalled \
         FIN-WAIT-1/LAST-ACK orphans alive longer, and they count against tcp_max_orphans.",
        Some("0".into()),
    )
}

fn tw_reuse_without_timestamps(_ctx: &Ctx, ns: &Netns) -> Option<Risk> {
    if ns.sysctl_u64("net.ipv4.tcp_tw_reuse")? != 1
        || ns.sysctl_u64("net.ipv4.tcp_timestamps")? != 0
    {
        return None;
    }
    risk(
        Severity::Info,
        "net.ipv4.tcp_timestamps",
        ns,
        "tcp_tw_reuse is 1 but tcp_timestamps is 0: TIME-WAIT ports are never reused".into(),
        "tcp_twsk_unique() lets connect() take over a TIME-WAIT port only if the old connection recorded peer \
         timestamps, so tcp_tw_reuse does nothing with timestamps off.",
        Some("1".into()),
    )
}
