//! `syn-backlog`: half-open connections piling up on a listener.

use super::dumped;
use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{
    format_endpoint, Finding, Listener, LogKind, Netns, Severity, Subject, TcpState,
};

const LOG: &[LogKind] = &[LogKind::SynFlood, LogKind::DropOpenRequest];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let (warn, min) = (ctx.t.get("syn.warning"), ctx.t.get("syn.min"));
    let mut out = Vec::new();
    for ns in dumped(ctx) {
        let drops = ctx.rising(ns, "TcpExt", "TCPReqQFullDrop");
        let cookies = ctx.rising(ns, "TcpExt", "TCPReqQFullDoCookies");
        let mut found = false;
        for l in &ns.listeners {
            let ratio = l.syn_recv as f64 / f64::from(l.backlog.max(1));
            if (l.syn_recv as f64) < min || ratio < warn {
                continue;
            }
            let severity = if drops {
                Severity::Critical
            } else {
                Severity::Warning
            };
            out.push(listener(ctx, ns, l, severity));
            found = true;
        }
        if !found && (drops || cookies) {
            out.push(counters_only(ctx, ns, drops));
        }
    }
    // The SYN-flood message with no listener over the threshold now.
    if out.is_empty() {
        let recent: Vec<_> = ctx
            .log(&[LogKind::SynFlood])
            .into_iter()
            .filter(|m| ctx.recent(m))
            .collect();
        if !recent.is_empty() {
            out.push(log_only(ctx, &recent));
        }
    }
    out
}

const EXPLAIN: &str = "A SYN-RECV socket is a request the listener answered with SYN-ACK and whose final ACK has not \
    arrived. Since 4.4 the requests of a listener are limited by its backlog (sk_max_ack_backlog); when they \
    reach it, tcp_syn_flood_action() sends SYN cookies (TCPReqQFullDoCookies) if tcp_syncookies allows, or drops \
    the SYN (TCPReqQFullDrop), and logs `Possible SYN flooding on port ...` once per listener. A pile-up means \
    final ACKs are lost (a path dropping them, a firewall, asymmetric routing), clients that never complete \
    (a flood), or a backlog too small for the rate of new connections. Each request is retransmitted \
    tcp_synack_retries times before it is dropped.";

fn listener(ctx: &Ctx, ns: &Netns, l: &Listener, severity: Severity) -> Finding {
    let ep = format_endpoint(&l.local);
    let owner = super::listener_owner(ctx, ns, l);
    let mut subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(TcpState::SynRecv.name().to_string()),
        local: Some(ep.clone()),
        pod: ns.pod.clone(),
        count: Some(l.syn_recv),
        limit: Some(u64::from(l.backlog)),
        ..Subject::default()
    };
    if let Some(p) = owner {
        subject.pid = Some(p.pid);
        subject.process = Some(p.comm.clone());
        subject.container = p.container.clone();
        subject.pod = p.pod.clone().or(subject.pod);
    }
    let mut f = finding(
        "syn-backlog",
        severity,
        format!(
            "{} half-open connections (SYN-RECV) on {ep}{}, {} of its backlog {}",
            l.syn_recv,
            owner
                .map(|p| format!(" ({})", ctx.process_words(p)))
                .unwrap_or_default(),
            pct(l.syn_recv as f64 / f64::from(l.backlog.max(1))),
            l.backlog
        ),
        subject,
    )
    .evidence(format!(
        "listener {ep} in netns {}: {} in SYN-RECV, backlog {}, accept queue {}",
        ns.name(),
        l.syn_recv,
        l.backlog,
        l.accept_queue
    ));
    for c in [
        "TCPReqQFullDoCookies",
        "TCPReqQFullDrop",
        "SyncookiesSent",
        "SyncookiesFailed",
    ] {
        if let Some(s) = ctx.counter_sentence(ns, "TcpExt", c) {
            f = f.evidence(s);
        }
    }
    let sysctl = |k: &str| ns.sysctl.get(k).map(|v| v.trim().to_string());
    f = f.evidence(format!(
        "tcp_syncookies {}, tcp_max_syn_backlog {}, tcp_synack_retries {}, somaxconn {}",
        sysctl("net.ipv4.tcp_syncookies").unwrap_or_else(|| "?".into()),
        sysctl("net.ipv4.tcp_max_syn_backlog").unwrap_or_else(|| "?".into()),
        sysctl("net.ipv4.tcp_synack_retries").unwrap_or_else(|| "?".into()),
        sysctl("net.core.somaxconn").unwrap_or_else(|| "?".into())
    ));
    f = f.evidence_all(ctx.log_evidence(LOG));
    f = f.explain(EXPLAIN).fix(
        format!(
            "Find where the final ACKs go: `tcpdump -ni any 'tcp port {} and (tcp[tcpflags] & (tcp-syn|tcp-ack) != 0)'` shows SYN-ACKs retransmitted without an answer (firewall, asymmetric route, or a flood)",
            l.local.port
        ),
        None,
    );
    if ns.sysctl_u64("net.ipv4.tcp_syncookies") == Some(0) {
        f = f.sysctl(
            format!("Turn SYN cookies back on in netns {} so a full queue answers with cookies instead of dropping", ns.name()),
            &[("net.ipv4.tcp_syncookies", "1".to_string())],
            Some("Cookie connections lose some TCP options negotiated in the SYN (e.g. window scaling without timestamps)."),
        );
    }
    if ns
        .sysctl_u64("net.ipv4.tcp_synack_retries")
        .is_some_and(|r| r > 2)
    {
        f = f.sysctl(
            "Give up on unanswered requests sooner: tcp_synack_retries 2 (about 7 s instead of about 63 s at 5)",
            &[("net.ipv4.tcp_synack_retries", "2".to_string())],
            Some("Clients on very lossy links may need more retries; never 0 (a single lost SYN-ACK then fails the connection)."),
        );
    }
    f.fix(
        "For a legitimate rate of new connections, raise the listener's backlog in the application (capped by net.core.somaxconn)",
        None,
    )
    .wont_help("tcp_max_syn_backlog alone: since 4.4 the queue is bounded by the listen backlog, and the sysctl matters only with syncookies off")
    .build()
}

fn counters_only(ctx: &Ctx, ns: &Netns, drops: bool) -> Finding {
    let subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(TcpState::SynRecv.name().to_string()),
        pod: ns.pod.clone(),
        ..Subject::default()
    };
    let mut f = finding(
        "syn-backlog",
        if drops {
            Severity::Critical
        } else {
            Severity::Warning
        },
        format!(
            "SYN queues overflowing in netns {}: {}",
            ns.name(),
            if drops {
                "SYNs are being dropped"
            } else {
                "the kernel answers with SYN cookies"
            }
        ),
        subject,
    );
    for c in ["TCPReqQFullDoCookies", "TCPReqQFullDrop"] {
        if let Some(s) = ctx.counter_sentence(ns, "TcpExt", c) {
            f = f.evidence(s);
        }
    }
    f.evidence_all(ctx.log_evidence(LOG))
        .explain(EXPLAIN)
        .fix("Catch the listener during a burst: `watch -n0.5 'ss -Htn state syn-recv | wc -l; ss -ltn'`", None)
        .build()
}

/// SYN-flood messages seen recently with no listener over the threshold now.
fn log_only(ctx: &Ctx, msgs: &[&sockmedic_model::KernelMessage]) -> Finding {
    let total: u64 = msgs.iter().map(|m| m.count).sum();
    let mut ports: Vec<&str> = msgs.iter().filter_map(|m| m.detail.as_deref()).collect();
    ports.sort_unstable();
    ports.dedup();
    // One listener named as `ip:port` is a subject; a bare port (older kernels'
    // wording) or several are not.
    let local = match ports.as_slice() {
        [one] if one.contains(':') => Some(one.to_string()),
        _ => None,
    };
    let on = match ports.len() {
        0 => String::new(),
        1 => format!(" on {}", ports[0]),
        n => format!(
            " on {n} listeners ({}{})",
            ports.iter().take(4).copied().collect::<Vec<_>>().join(", "),
            if n > 4 { ", ..." } else { "" }
        ),
    };
    finding(
        "syn-backlog",
        Severity::Warning,
        format!("The kernel reported SYN floods{on} (×{total}), though no listener's SYN queue is full now"),
        Subject { local, count: Some(total), ..Subject::default() },
    )
    .evidence_all(ctx.quote(msgs))
    .explain(EXPLAIN)
    .fix("Watch `ss -ltn` and `nstat -az TcpExtTCPReqQFullDoCookies TcpExtTCPReqQFullDrop` during the next burst", None)
    .build()
}
