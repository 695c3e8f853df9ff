//! `conntrack-full`: the connection-tracking table near nf_conntrack_max.

use super::level;
use crate::context::{finding, Ctx};
use crate::words::{pct, pow2_at_least};
use sockmedic_model::{Finding, LogKind, Severity, Subject};

const LOG: &[LogKind] = &[LogKind::ConntrackFull];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(max) = ctx.snap.host.limits.nf_conntrack_max else {
        return Vec::new();
    };
    let (warn, crit) = (
        ctx.t.get("conntrack.warning"),
        ctx.t.get("conntrack.critical"),
    );
    let mut out = Vec::new();
    for ns in &ctx.snap.netns {
        let Some(count) = ns.conntrack_count else {
            continue;
        };
        let ratio = count as f64 / max.max(1) as f64;
        let Some(severity) = level(ratio, warn, crit) else {
            continue;
        };
        let subject = Subject {
            netns: Some(ns.name().to_string()),
            pod: ns.pod.clone(),
            count: Some(count),
            limit: Some(max),
            ..Subject::default()
        };
        let wanted = pow2_at_least(count * 2);
        out.push(
            finding(
                "conntrack-full",
                severity,
                format!("Connection tracking in netns {}: {count} of nf_conntrack_max {max} entries ({}); new flows are dropped when full", ns.name(), pct(ratio)),
                subject,
            )
            .evidence(format!("netns {}: net.netfilter.nf_conntrack_count {count} (per namespace); nf_conntrack_max {max} (host-wide)", ns.name()))
            .evidence_all(ctx.log_evidence(LOG))
            .explain(EXPLAIN)
            .sysctl(
                format!("Raise the table size to {wanted}"),
                &[("net.netfilter.nf_conntrack_max", wanted.to_string())],
                Some("About 300 bytes per entry; also raise /sys/module/nf_conntrack/parameters/hashsize to max/4 so lookups stay short."),
            )
            .fix("Shorten how long closed flows stay tracked, e.g. net.netfilter.nf_conntrack_tcp_timeout_time_wait, or exempt high-rate local traffic with an nftables `notrack` rule", None)
            .build(),
        );
    }
    // The message alone (a host where the count is not readable now).
    if out.is_empty() {
        let recent: Vec<_> = ctx.log(LOG).into_iter().filter(|m| ctx.recent(m)).collect();
        if !recent.is_empty() {
            let total: u64 = recent.iter().map(|m| m.count).sum();
            out.push(
                finding(
                    "conntrack-full",
                    Severity::Warning,
                    format!("The connection-tracking table was full (×{total}): packets of new flows were dropped"),
                    Subject { count: Some(total), limit: Some(max), ..Subject::default() },
                )
                .evidence_all(ctx.quote(&recent))
                .explain(EXPLAIN)
                .fix("Watch `conntrack -C` against `sysctl net.netfilter.nf_conntrack_max` during the next peak", None)
                .build(),
            );
        }
    }
    out
}

const EXPLAIN: &str = "With nf_conntrack loaded, every flow through the host (and every container's) gets a \
    tracking entry. nf_conntrack_count is per network namespace, nf_conntrack_max is global. When the table is \
    full, __nf_conntrack_alloc() drops the packet of a new flow and logs `nf_conntrack: table full, dropping \
    packet` (6.17+: `table full in netns N`): SYNs vanish, and clients see timeouts that look like TCP trouble.";
