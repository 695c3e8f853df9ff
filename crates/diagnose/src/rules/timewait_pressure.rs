//! `timewait-pressure`: TIME-WAIT against tcp_max_tw_buckets, overflows, and
//! TIME-WAIT eating the ephemeral range towards one destination.

use super::{default_tw_buckets, level};
use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{format_endpoint, Finding, LogKind, Netns, Severity, Subject, TcpState};

const LOG: &[LogKind] = &[LogKind::TwOverflow];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    for ns in &ctx.snap.netns {
        if let Some(f) = buckets(ctx, ns) {
            out.push(f);
        }
        if let Some(f) = per_destination(ctx, ns) {
            out.push(f);
        }
    }
    out
}

/// The namespace's TIME-WAIT count against its limit, and overflows.
fn buckets(ctx: &Ctx, ns: &Netns) -> Option<Finding> {
    let tw = ns.sockstat.tcp_tw?;
    let max = ns.sysctl_u64("net.ipv4.tcp_max_tw_buckets")?;
    let ratio = tw as f64 / max.max(1) as f64;
    let overflowing = ctx.rising(ns, "TcpExt", "TCPTimeWaitOverflow");
    let old_log = ns.host && ctx.log(LOG).iter().any(|m| ctx.recent(m));
    let severity = if overflowing {
        Severity::Critical
    } else {
        match level(
            ratio,
            ctx.t.get("timewait.warning"),
            ctx.t.get("timewait.critical"),
        ) {
            Some(s) => s,
            None if old_log => Severity::Warning,
            None => return None,
        }
    };
    let title = if overflowing {
        format!(
            "TIME-WAIT table full in netns {}: {tw} of tcp_max_tw_buckets {max}, TCPTimeWaitOverflow rising {:.1}/s (closes skip TIME-WAIT)",
            ns.name(),
            ctx.rate(ns, "TcpExt", "TCPTimeWaitOverflow").unwrap_or(0.0)
        )
    } else {
        format!(
            "{tw} TIME-WAIT sockets in netns {}, {} of tcp_max_tw_buckets {max}",
            ns.name(),
            pct(ratio)
        )
    };
    let subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(TcpState::TimeWait.name().to_string()),
        pod: ns.pod.clone(),
        count: Some(tw),
        limit: Some(max),
        ..Subject::default()
    };
    let mut f = finding("timewait-pressure", severity, title, subject).evidence(format!(
        "netns {}: sockstat tw {tw} (TIME-WAIT and FIN-WAIT-2 minisockets, per namespace); net.ipv4.tcp_max_tw_buckets {max} ({})",
        ns.name(),
        pct(ratio)
    ));
    if let Some(s) = ctx.counter_sentence(ns, "TcpExt", "TCPTimeWaitOverflow") {
        f = f.evidence(s);
    }
    if let Some(s) = ctx.counter_sentence(ns, "TcpExt", "TW") {
        f = f.evidence(format!("{s} (TIME-WAIT entries scheduled)"));
    }
    if let Some(top) = top_tw_remote(ns) {
        f = f.evidence(format!(
            "busiest TIME-WAIT destination: {} with {} ({})",
            format_endpoint(&top.0),
            top.1,
            pct(top.1 as f64 / ns.states.count(TcpState::TimeWait).max(1) as f64)
        ));
    }
    if ns.host {
        f = f.evidence_all(ctx.log_evidence(LOG));
    }
    f = f.explain(
        "Every connection closed first by this side spends 60 s in TIME-WAIT (TCP_TIMEWAIT_LEN, fixed; tcp_fin_timeout \
         does not change it). The minisockets are counted per namespace (sockstat tw) against tcp_max_tw_buckets. When \
         inet_twsk_alloc() finds the table full, the connection is closed at once without TIME-WAIT and \
         TCPTimeWaitOverflow is incremented (kernels up to 2.6.36 also logged `time wait bucket table overflow`). \
         Skipping TIME-WAIT risks old duplicate segments landing in a new connection with the same 4-tuple.",
    );
    let default = default_tw_buckets(ns);
    if max < default {
        f = f.sysctl(
            format!("Give TIME-WAIT the kernel's default room again ({default}, ehash/2) in netns {}", ns.name()),
            &[("net.ipv4.tcp_max_tw_buckets", default.to_string())],
            Some("Each TIME-WAIT minisocket costs about 200 bytes; the limit exists against floods, not for tuning."),
        );
    }
    f.fix(
        "Reuse connections (HTTP keep-alive, connection pools) so fewer are closed; let the client side close first where the protocol allows, so the TIME-WAIT lands on the clients",
        None,
    )
    .sysctl(
        "For outgoing connections to a few destinations, let connect() reuse TIME-WAIT ports (needs tcp_timestamps on both sides)",
        &[("net.ipv4.tcp_tw_reuse", "1".to_string())],
        Some("Only helps this host's outgoing connects; a server's TIME-WAIT is unaffected."),
    )
    .wont_help("lowering tcp_fin_timeout: TIME-WAIT always lasts 60 s")
    .wont_help("tcp_tw_recycle: removed in Linux 4.12, and before that it dropped SYNs of clients behind NAT")
    .build()
    .into()
}

/// TIME-WAIT towards one destination eating the ports connect() can use for it.
fn per_destination(ctx: &Ctx, ns: &Netns) -> Option<Finding> {
    let e = ns.ephemeral.as_ref()?;
    let (remote, count) = top_tw_remote(ns)?;
    let size = e.size.max(1) as u64;
    let ratio = count as f64 / size as f64;
    let severity = level(
        ratio,
        ctx.t.get("ports.warning"),
        ctx.t.get("ports.critical"),
    )?;
    let ep = format_endpoint(&remote);
    let subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(TcpState::TimeWait.name().to_string()),
        remote: Some(ep.clone()),
        pod: ns.pod.clone(),
        count: Some(count),
        limit: Some(size),
        ..Subject::default()
    };
    finding(
        "timewait-pressure",
        severity,
        format!("{count} TIME-WAIT sockets towards {ep} in netns {}: {} of the {size} ephemeral ports for that destination", ns.name(), pct(ratio)),
        subject,
    )
    .evidence(format!(
        "ip_local_port_range {}-{} gives {size} ports per (source address, destination); TIME-WAIT holds each for 60 s, so about {} new connections/s to {ep} is the ceiling",
        e.range[0],
        e.range[1],
        size / 60
    ))
    .explain(
        "A connection is unique by its 4-tuple, so towards one destination (address and port) a source address has \
         only the ephemeral range to choose from, and a TIME-WAIT entry keeps its port for 60 s. When they are all \
         taken, connect() fails with EADDRNOTAVAIL.",
    )
    .sysctl(
        "Let connect() take over TIME-WAIT ports towards this destination (needs tcp_timestamps on both sides)",
        &[("net.ipv4.tcp_tw_reuse", "1".to_string())],
        None,
    )
    .fix("Reuse connections to this destination (keep-alive, a pool) instead of one per request", None)
    .wont_help("tcp_fin_timeout: it does not shorten TIME-WAIT")
    .build()
    .into()
}

fn top_tw_remote(ns: &Netns) -> Option<(sockmedic_model::Endpoint, u64)> {
    ns.top_remote
        .iter()
        .filter(|r| r.state == TcpState::TimeWait)
        .max_by_key(|r| r.count)
        .map(|r| (r.endpoint, r.count))
}
