//! `accept-queue-overflow`: a listener whose accept queue is full, with
//! ListenOverflows / ListenDrops rising.

use super::dumped;
use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{format_endpoint, Finding, Listener, Netns, Severity, Subject, TcpState};

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let warn = ctx.t.get("accept.warning");
    let mut out = Vec::new();
    for ns in dumped(ctx) {
        let overflowing =
            ctx.rising(ns, "TcpExt", "ListenOverflows") || ctx.rising(ns, "TcpExt", "ListenDrops");
        let mut found = false;
        for l in &ns.listeners {
            let capacity = u64::from(l.backlog) + 1;
            let ratio = f64::from(l.accept_queue) / capacity as f64;
            if ratio < warn || l.accept_queue == 0 {
                continue;
            }
            let full = u64::from(l.accept_queue) >= capacity;
            let severity = if full && overflowing {
                Severity::Critical
            } else {
                Severity::Warning
            };
            out.push(listener(ctx, ns, l, severity, overflowing));
            found = true;
        }
        // Overflows rising with no queue full right now: the queue empties between
        // bursts. Say so for the namespace.
        if !found && overflowing {
            out.push(bursts(ctx, ns));
        }
    }
    out
}

fn listener(ctx: &Ctx, ns: &Netns, l: &Listener, severity: Severity, overflowing: bool) -> Finding {
    let ep = format_endpoint(&l.local);
    let p = super::listener_owner(ctx, ns, l);
    let mut subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(TcpState::Listen.name().to_string()),
        local: Some(ep.clone()),
        pod: ns.pod.clone(),
        count: Some(u64::from(l.accept_queue)),
        limit: Some(u64::from(l.backlog)),
        ..Subject::default()
    };
    if let Some(p) = p {
        let ps = ctx.process_subject(p);
        subject.pid = ps.pid;
        subject.process = ps.process;
        subject.container = ps.container;
        subject.pod = ps.pod.or(subject.pod);
    }
    let who = p
        .map(|p| format!(" ({})", ctx.process_words(p)))
        .unwrap_or_default();
    let mut f = finding(
        "accept-queue-overflow",
        severity,
        format!(
            "Accept queue of {ep}{who} holds {} with a backlog of {}{}",
            l.accept_queue,
            l.backlog,
            if overflowing { ": full, and new connections are being dropped" } else { ": the application is not accepting fast enough" }
        ),
        subject,
    )
    .evidence(format!(
        "listener {ep} in netns {}: Recv-Q {} (completed connections waiting for accept()), Send-Q {} (backlog; capacity {}), {} of it used; {} in SYN-RECV",
        ns.name(),
        l.accept_queue,
        l.backlog,
        u64::from(l.backlog) + 1,
        pct(f64::from(l.accept_queue) / (f64::from(l.backlog) + 1.0)),
        l.syn_recv
    ));
    for c in ["ListenOverflows", "ListenDrops"] {
        if let Some(s) = ctx.counter_sentence(ns, "TcpExt", c) {
            f = f.evidence(s);
        }
    }
    if let Some(p) = p {
        if let (Some(fds), Some(lim)) = (p.fds, p.fd_limit.filter(|l| *l != u64::MAX)) {
            f = f.evidence(format!(
                "{} has {fds} of {lim} fds open ({}){}",
                ctx.process_words(p),
                pct(fds as f64 / lim.max(1) as f64),
                if fds + 1 >= lim {
                    ": accept() fails with EMFILE, which is why the queue does not drain"
                } else {
                    ""
                }
            ));
        }
    }
    let somaxconn = ns.sysctl_u64("net.core.somaxconn");
    if let Some(m) = somaxconn {
        f = f.evidence(format!(
            "net.core.somaxconn {m} caps every listen() backlog in this namespace"
        ));
    }
    f = f.explain(
        "A listener's accept queue holds connections whose handshake completed until the application calls \
         accept(). Its capacity is the listen() backlog (capped by net.core.somaxconn) + 1. When it is full, \
         tcp_conn_request() drops new SYNs and tcp_v4_syn_recv_sock() ignores final ACKs, counting ListenOverflows \
         and ListenDrops; clients see retransmitted SYNs and slow or failed connects. The cause is an application \
         that accepts too slowly: busy, blocked, or out of file descriptors (EMFILE, incident 4).",
    );
    f = f.fix(
        "Find why the application does not accept: is it out of fds (fd-exhaustion), are its worker threads all busy or blocked? That is the fix",
        None,
    );
    let wanted = (u64::from(l.backlog) * 4).clamp(1024, 65_535);
    if somaxconn.is_some_and(|m| m < wanted) {
        f = f.sysctl(
            format!("Allow a larger backlog for bursts in netns {} (the application must also ask for it in listen(), e.g. nginx `listen ... backlog={wanted}`)", ns.name()),
            &[("net.core.somaxconn", wanted.to_string())],
            Some("A bigger queue absorbs bursts; it does not help an application that never catches up."),
        );
    } else {
        f = f.fix(
            format!("Ask for a larger backlog in the application's listen() call (somaxconn allows up to {})", somaxconn.unwrap_or(4096)),
            Some("A bigger queue absorbs bursts; it does not help an application that never catches up."),
        );
    }
    f.wont_help("tcp_abort_on_overflow=1: clients get a reset instead of a retry, so a short burst turns into errors")
        .build()
}

fn bursts(ctx: &Ctx, ns: &Netns) -> Finding {
    let rate = ctx
        .rate(ns, "TcpExt", "ListenOverflows")
        .unwrap_or(0.0)
        .max(ctx.rate(ns, "TcpExt", "ListenDrops").unwrap_or(0.0));
    let subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(TcpState::Listen.name().to_string()),
        pod: ns.pod.clone(),
        ..Subject::default()
    };
    let mut f = finding(
        "accept-queue-overflow",
        Severity::Warning,
        format!("Connections dropped at a full accept queue in netns {} ({rate:.1}/s), though no queue is full at this instant", ns.name()),
        subject,
    );
    for c in ["ListenOverflows", "ListenDrops"] {
        if let Some(s) = ctx.counter_sentence(ns, "TcpExt", c) {
            f = f.evidence(s);
        }
    }
    f.explain("ListenOverflows counts SYNs and final ACKs dropped because a listener's accept queue was full; the queue empties between bursts, so watch `ss -ltn` Recv-Q against Send-Q during one.")
        .fix("Run `sockmedic check` again during a burst, or `watch -n0.5 ss -ltn` to catch the listener whose Recv-Q reaches its Send-Q", None)
        .build()
}
