//! `orphan-pressure`: orphans against tcp_max_orphans, with the kernel's ×2/×4
//! penalty (kernel-notes §1).

use super::{level, orphan_lifetime_s, orphan_retries};
use crate::context::{finding, Ctx};
use crate::words::{pct, pow2_at_least};
use sockmedic_model::{Finding, LogKind, Netns, Severity, Subject, TcpState};

const LOG: &[LogKind] = &[LogKind::TooManyOrphans, LogKind::OutOfSocketMemory];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let host = &ctx.snap.host;
    let (Some(orphans), Some(max)) = (host.sockstat.tcp_orphan, host.limits.tcp_max_orphans) else {
        return Vec::new();
    };
    let ratio = orphans as f64 / max.max(1) as f64;
    let messages = ctx.log(LOG);
    let recent = messages.iter().any(|m| ctx.recent(m));
    let severity = match level(
        ratio,
        ctx.t.get("orphans.warning"),
        ctx.t.get("orphans.critical"),
    ) {
        Some(s) => s,
        None if recent => Severity::Warning,
        None if !messages.is_empty() => Severity::Info,
        None => return Vec::new(),
    };
    // The count is host-wide: a namespace is the subject only when it holds most
    // of it (the share `teardown.share` names an endpoint by), else the figure
    // would mix scopes. The holders are in the evidence either way.
    let share = ctx.t.get("teardown.share");
    let worst = ctx
        .snap
        .netns
        .iter()
        .filter(|n| n.orphans.unwrap_or(0) > 0)
        .max_by_key(|n| n.orphans.unwrap_or(0))
        .filter(|n| n.orphans.unwrap_or(0) as f64 >= share * orphans as f64);
    let title = match ratio {
        r if r >= 1.0 => format!("{orphans} orphaned sockets exceed tcp_max_orphans {max}: the kernel resets every orphan it checks"),
        r if r >= 0.5 => format!("{orphans} orphaned sockets, {} of tcp_max_orphans {max}: at the kernel's ×2 penalty, idle orphans are being reset", pct(r)),
        r if r >= 0.25 => format!("{orphans} orphaned sockets, {} of tcp_max_orphans {max}: at the ×4 penalty, orphans hit by an ICMP error are being reset", pct(r)),
        _ => format!("`too many orphaned sockets` in the kernel log; {orphans} orphans now ({} of tcp_max_orphans {max})", pct(ratio)),
    };
    let mut subject = Subject {
        count: Some(orphans),
        limit: Some(max),
        ..Subject::default()
    };
    if let Some(ns) = worst {
        subject.netns = Some(ns.name().to_string());
        subject.state = dominant_orphan_state(ns).map(|s| s.name().to_string());
        if let Some(owner) = ns.orphan_owners.first() {
            subject.container = owner.container.clone();
            subject.pod = owner.pod.clone().or_else(|| ns.pod.clone());
        } else {
            subject.pod = ns.pod.clone();
        }
    }
    let mut f = finding("orphan-pressure", severity, title, subject)
        .evidence(format!(
            "/proc/net/sockstat orphan {orphans} (host-wide, all namespaces); net.ipv4.tcp_max_orphans {max} ({} used)",
            pct(ratio)
        ))
        .evidence(format!(
            "With the penalty the kernel compares 2 × {orphans} = {} or 4 × {orphans} = {} with {max}: {}",
            2 * orphans,
            4 * orphans,
            penalty_words(orphans, max)
        ));
    for ns in holders(ctx) {
        f = f.evidence(holder_sentence(ns, orphans));
    }
    f = f.evidence_all(ctx.log_evidence(LOG));
    let aborts: Vec<String> = ctx
        .snap
        .netns
        .iter()
        .filter(|n| n.counter("TcpExt", "TCPAbortOnMemory").unwrap_or(0) > 0)
        .filter_map(|n| {
            Some(format!(
                "netns {}: {}",
                n.name(),
                ctx.counter_sentence(n, "TcpExt", "TCPAbortOnMemory")?
            ))
        })
        .take(3)
        .collect();
    f = f.evidence_all(aborts);
    let retries_ns = worst
        .or_else(|| holders(ctx).first().copied())
        .or_else(|| ctx.snap.netns.iter().find(|n| n.host));
    let retries = orphan_retries(retries_ns);
    if let (Some(r), Some(ns)) = (retries, retries_ns) {
        f = f.evidence(format!(
            "net.ipv4.tcp_orphan_retries in netns {} is {} (effective {r}): an unanswered orphan lives about {:.0} s after its first retransmission",
            ns.name(),
            ns.sysctl.get("net.ipv4.tcp_orphan_retries").map(|s| s.trim()).unwrap_or("?"),
            orphan_lifetime_s(r)
        ));
    }
    f = f.explain(
        "An orphan is a TCP socket the application has closed while TCP still holds it: FIN-WAIT-1, LAST-ACK, \
         CLOSING, or FIN-WAIT-2 kept as a full socket. The count is global. When an orphan's retransmission or \
         zero-window-probe timer fires, tcp_out_of_resources() calls tcp_check_oom() with a shift: ×2 if nothing \
         was sent for 240 s (or no reset is to be sent), ×2 again if an ICMP error hit the socket. So \
         `TCP: too many orphaned sockets` can print, and orphans be reset (TCPAbortOnMemory), at half or a \
         quarter of tcp_max_orphans. On kernels up to 3.0 the same condition printed `Out of socket memory`.",
    );
    f = f.fix(
        "Find why closes do not complete: the teardown-stall finding, or `sockmedic sockets --state fin-wait-1,last-ack,closing`, names the endpoint; a capture (`tcpdump 'tcp[tcpflags] & tcp-fin != 0'`) shows whether FINs are acknowledged",
        None,
    );
    if let Some(r) = retries.filter(|r| *r > 3) {
        f = f.sysctl(
            format!(
                "Shorten orphan lifetime: tcp_orphan_retries 3 kills an unanswered orphan after about {:.0} s instead of {:.0} s (set it in the namespace holding the orphans)",
                orphan_lifetime_s(3),
                orphan_lifetime_s(r)
            ),
            &[("net.ipv4.tcp_orphan_retries", "3".to_string())],
            Some("Peers on lossy or slow links may get a reset instead of a clean close; it also limits the cheap DoS of clients that send FIN and never ACK."),
        );
    }
    let wanted = pow2_at_least(4 * orphans).max(max);
    if wanted > max {
        f = f.sysctl(
            format!("Raise tcp_max_orphans to {wanted} so that even 4 × the current orphans fit (host-wide, initial namespace only)"),
            &[("net.ipv4.tcp_max_orphans", wanted.to_string())],
            Some(&format!(
                "Each orphan can hold up to tcp_wmem's maximum of unsent data; {wanted} orphans at 64 KiB each is {} MiB of kernel memory, bounded by tcp_mem. It hides the symptom; the stall remains.",
                wanted * 64 / 1024
            )),
        );
    }
    f = f
        .wont_help("raising tcp_max_orphans by a few percent (incident 2): the inflow of closing sockets outruns it")
        .wont_help("lowering tcp_fin_timeout: it only bounds orphaned FIN-WAIT-2, not FIN-WAIT-1, LAST-ACK or CLOSING");
    vec![f.build()]
}

fn penalty_words(orphans: u64, max: u64) -> &'static str {
    if orphans > max {
        "over the limit even without the penalty"
    } else if 2 * orphans > max {
        "over it at ×2: orphans idle for 240 s, or with a reset not to be sent, are killed"
    } else if 4 * orphans > max {
        "over it at ×4: orphans that also received an ICMP error are killed"
    } else {
        "below it at every penalty now"
    }
}

/// The namespaces holding the most orphans, up to three.
fn holders<'a>(ctx: &Ctx<'a>) -> Vec<&'a Netns> {
    let mut v: Vec<&Netns> = ctx
        .snap
        .netns
        .iter()
        .filter(|n| n.orphans.unwrap_or(0) > 0)
        .collect();
    v.sort_by_key(|n| std::cmp::Reverse(n.orphans.unwrap_or(0)));
    v.truncate(3);
    v
}

fn holder_sentence(ns: &Netns, total: u64) -> String {
    let n = ns.orphans.unwrap_or(0);
    let states: Vec<String> = [
        TcpState::FinWait1,
        TcpState::LastAck,
        TcpState::Closing,
        TcpState::FinWait2,
    ]
    .iter()
    .filter_map(|s| {
        ns.states
            .get(*s)
            .filter(|c| *c > 0)
            .map(|c| format!("{} {c}", s.name()))
    })
    .collect();
    let mut s = format!(
        "netns {} holds {n} orphans ({} of all){}",
        ns.name(),
        pct(n as f64 / total.max(1) as f64),
        if states.is_empty() {
            String::new()
        } else {
            format!("; states {}", states.join(", "))
        }
    );
    if let Some(o) = ns.orphan_owners.first() {
        let who = crate::context::owner_words(o);
        s.push_str(&format!("; {} of them created by {who}", o.count));
    }
    s
}

fn dominant_orphan_state(ns: &Netns) -> Option<TcpState> {
    [TcpState::FinWait1, TcpState::LastAck, TcpState::Closing]
        .into_iter()
        .filter(|s| ns.states.count(*s) > 0)
        .max_by_key(|s| ns.states.count(*s))
}
