//! One module per finding code; each exports `check(&Ctx) -> Vec<Finding>`.

pub mod accept_queue;
pub mod close_wait_leak;
pub mod conntrack_full;
pub mod fd_exhaustion;
pub mod kernel_log;
pub mod orphan_pressure;
pub mod port_exhaustion;
pub mod risky_sysctl;
pub mod socket_leak;
pub mod syn_backlog;
pub mod tcp_memory;
pub mod teardown_stall;
pub mod timewait_pressure;

use crate::context::Ctx;
use sockmedic_model::{Netns, Severity};

/// The `check` of a capture-only code (`syn-unanswered`, `reset-storm`): a
/// Snapshot holds no packets, so it finds nothing; `sockmedic pcap` produces these.
pub(crate) fn capture_only(_: &Ctx) -> Vec<sockmedic_model::Finding> {
    Vec::new()
}

/// Severity of a ratio against a warning and a critical threshold.
pub(crate) fn level(ratio: f64, warning: f64, critical: f64) -> Option<Severity> {
    if ratio >= critical {
        Some(Severity::Critical)
    } else if ratio >= warning {
        Some(Severity::Warning)
    } else {
        None
    }
}

/// The effective number of orphan retries: 0 means the built-in 8 (kernel-notes §2.4).
pub(crate) fn orphan_retries(ns: Option<&Netns>) -> Option<u64> {
    let v = ns?.sysctl_u64("net.ipv4.tcp_orphan_retries")?;
    Some(if v == 0 { 8 } else { v })
}

/// Roughly how long an unanswered orphan lives: (2^(r+1) − 1) × 200 ms, the
/// minimum RTO doubled at each retry (the kernel's tcp_model_timeout).
pub(crate) fn orphan_lifetime_s(retries: u64) -> f64 {
    let r = retries.min(15) as i32;
    (2f64.powi(r + 1) - 1.0) * 0.2
}

/// The kernel's default tcp_max_tw_buckets for a namespace: half its ehash
/// (`tcp_ehash_entries`, negative when it is the global one), or 262144 when the
/// hash size is unknown.
pub(crate) fn default_tw_buckets(ns: &Netns) -> u64 {
    ns.sysctl
        .get("net.ipv4.tcp_ehash_entries")
        .and_then(|v| v.trim().trim_start_matches('-').parse::<u64>().ok())
        .map(|e| e / 2)
        .filter(|v| *v > 0)
        .unwrap_or(262_144)
}

/// The process owning a listener of this namespace (same socket: inode and
/// endpoint).
pub(crate) fn listener_owner<'a>(
    ctx: &Ctx<'a>,
    ns: &Netns,
    l: &sockmedic_model::Listener,
) -> Option<&'a sockmedic_model::Process> {
    ctx.snap.processes.iter().find(|p| {
        p.netns == Some(ns.id)
            && p.listeners
                .iter()
                .any(|x| x.inode == l.inode && x.local == l.local)
    })
}

/// The namespaces whose sockets were dumped.
pub(crate) fn dumped<'a>(ctx: &Ctx<'a>) -> impl Iterator<Item = &'a Netns> + 'a {
    ctx.snap.netns.iter().filter(|n| n.dump.is_some())
}
