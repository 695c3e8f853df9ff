//! `teardown-stall`: closes that do not complete, concentrated on one endpoint.

use super::{dumped, orphan_lifetime_s, orphan_retries};
use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{
    format_endpoint, Endpoint, EndpointCount, Finding, Netns, Severity, Subject, TcpState,
};

const STALLED: [TcpState; 3] = [TcpState::LastAck, TcpState::FinWait1, TcpState::Closing];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let min = ctx.t.get("teardown.min");
    let mut out = Vec::new();
    for ns in dumped(ctx) {
        let total: u64 = STALLED.iter().map(|s| ns.states.count(*s)).sum();
        if (total as f64) < min || total == 0 {
            continue;
        }
        // A finding per state that is itself over the threshold; when none is, the
        // largest one speaks for the sum.
        let mut states: Vec<TcpState> = STALLED
            .into_iter()
            .filter(|s| ns.states.count(*s) as f64 >= min)
            .collect();
        if states.is_empty() {
            states = STALLED
                .into_iter()
                .max_by_key(|s| ns.states.count(*s))
                .into_iter()
                .collect();
        }
        for state in states {
            out.push(stall(ctx, ns, state, total));
        }
    }
    out
}

/// Where the sockets of `state` concentrate: the busier side of local and remote,
/// preferring the side the state points at (LAST-ACK: a server's own endpoint;
/// FIN-WAIT-1: the peer) on a tie.
struct Concentration {
    endpoint: Endpoint,
    local: bool,
    count: u64,
    error: u64,
}

fn concentration(ns: &Netns, state: TcpState) -> Option<Concentration> {
    let top = |rows: &[EndpointCount]| {
        rows.iter()
            .filter(|r| r.state == state)
            .max_by_key(|r| r.count)
            .cloned()
    };
    let l = top(&ns.top_local);
    let r = top(&ns.top_remote);
    let prefer_local = state != TcpState::FinWait1;
    let pick_local = match (&l, &r) {
        (Some(l), Some(r)) => l.count > r.count || (l.count == r.count && prefer_local),
        (Some(_), None) => true,
        _ => false,
    };
    let row = if pick_local { l } else { r }?;
    Some(Concentration {
        endpoint: row.endpoint,
        local: pick_local,
        count: row.count,
        error: row.error,
    })
}

fn stall(ctx: &Ctx, ns: &Netns, state: TcpState, total: u64) -> Finding {
    let n = ns.states.count(state);
    let share_min = ctx.t.get("teardown.share");
    let conc = concentration(ns, state).filter(|c| c.count as f64 >= share_min * n as f64);
    let host = &ctx.snap.host;
    let orphan_heavy = match (host.sockstat.tcp_orphan, host.limits.tcp_max_orphans) {
        (Some(o), Some(m)) => o as f64 >= ctx.t.get("orphans.critical") * m as f64,
        _ => false,
    };
    let severity = if n as f64 >= ctx.t.get("teardown.critical") || orphan_heavy {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let mut subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(state.name().to_string()),
        count: Some(n),
        pod: ns.pod.clone(),
        ..Subject::default()
    };
    let mut owner_words = None;
    if let Some(c) = &conc {
        let ep = format_endpoint(&c.endpoint);
        subject.count = Some(c.count);
        if c.local {
            subject.local = Some(ep);
            // A server's port: name the process listening on it.
            if let Some(p) = listener_owner(ctx, ns, &c.endpoint) {
                subject.pid = Some(p.pid);
                subject.process = Some(p.comm.clone());
                subject.container = p.container.clone();
                subject.pod = p.pod.clone().or(subject.pod);
                owner_words = Some(format!("listening socket of {}", ctx.process_words(p)));
            }
        } else {
            subject.remote = Some(ep);
        }
    }
    if subject.pid.is_none() {
        // Orphans have no process; the cgroup that created them is known.
        if let Some(o) = ns.orphan_owners.first() {
            subject.container = subject.container.or(o.container.clone());
            subject.pod = subject.pod.or(o.pod.clone());
        }
    }
    let title = match &conc {
        Some(c) => format!(
            "{} of {n} {} sockets in netns {} are on {} {}: closes towards it do not complete",
            c.count,
            state.name(),
            ns.name(),
            if c.local { "local" } else { "remote" },
            format_endpoint(&c.endpoint)
        ),
        None => format!(
            "{n} sockets stuck in {} in netns {}, spread over many endpoints: closes are not completing",
            state.name(),
            ns.name()
        ),
    };
    let mut f = finding("teardown-stall", severity, title, subject).evidence(format!(
        "netns {}: {} {n}; FIN-WAIT-1 + LAST-ACK + CLOSING {total}{}",
        ns.name(),
        state.name(),
        others(ns)
    ));
    if let Some(c) = &conc {
        f = f.evidence(format!(
            "{} {}{} holds {} of the {n} {} sockets ({}){}",
            if c.local { "local" } else { "remote" },
            format_endpoint(&c.endpoint),
            owner_words.map(|w| format!(" ({w})")).unwrap_or_default(),
            c.count,
            state.name(),
            pct(c.count as f64 / n.max(1) as f64),
            if c.error > 0 {
                format!(", counted to within {}", c.error)
            } else {
                String::new()
            }
        ));
    } else if let Some(c) = concentration(ns, state) {
        f = f.evidence(format!(
            "the busiest endpoint, {} {}, holds only {} ({}): below the {} share that would name it",
            if c.local { "local" } else { "remote" },
            format_endpoint(&c.endpoint),
            c.count,
            pct(c.count as f64 / n.max(1) as f64),
            pct(share_min)
        ));
    }
    if let Some(o) = ns.orphans {
        f = f.evidence(format!(
            "netns {} holds {o} orphans (closed by the application, still in TCP)",
            ns.name()
        ));
    }
    if let Some(o) = ns.orphan_owners.first() {
        let who = crate::context::owner_words(o);
        f = f.evidence(format!("{} orphans were created by {who}", o.count));
    }
    let retries = orphan_retries(Some(ns));
    if let Some(r) = retries {
        f = f.evidence(format!(
            "tcp_orphan_retries {} in this netns (effective {r}): each stalled orphan lives about {:.0} s",
            ns.sysctl.get("net.ipv4.tcp_orphan_retries").map(|s| s.trim()).unwrap_or("?"),
            orphan_lifetime_s(r)
        ));
    }
    f = f.explain(match state {
        TcpState::LastAck => "LAST-ACK: the peer closed first, the application closed too, and its FIN waits for the peer's ACK. \
            The socket is an orphan: the kernel retransmits the FIN on the RTO timer until it is acknowledged or \
            tcp_orphan_retries (0 means 8) run out. Many at once on one server port means the final ACKs are lost: \
            a rate limit or congested egress on the path, or clients that vanish after sending FIN (mobile \
            clients, incident 1).",
        TcpState::FinWait1 => "FIN-WAIT-1: this host closed first and its FIN (or data queued before it) is not acknowledged. \
            The socket is an orphan retransmitting on the RTO timer (or probing a zero window) until \
            tcp_orphan_retries run out. Concentrated on one remote endpoint, the remote side or the path to it \
            is losing or delaying the close (incident 2: a CDN answered the FIN after 14 s of retransmissions).",
        _ => "CLOSING: both sides sent FIN at the same time and this side's FIN is unacknowledged; like FIN-WAIT-1 \
            it retransmits until tcp_orphan_retries run out.",
    });
    f = f.fix(
        match &conc {
            Some(c) => format!(
                "Look at the wire: `tcpdump -ni any 'tcp[tcpflags] & (tcp-fin|tcp-rst) != 0 and {} port {}'` (or `sockmedic pcap`) shows whether FINs are retransmitted and by whom; then fix the path (bandwidth cap, loss) or the peer",
                if c.local { "src" } else { "dst" },
                c.endpoint.port
            ),
            None => "Capture the closes (`tcpdump -ni any 'tcp[tcpflags] & tcp-fin != 0'`, or `sockmedic pcap`) to see where FINs or their ACKs are lost".to_string(),
        },
        None,
    );
    if retries.is_some_and(|r| r > 3) {
        f = f.sysctl(
            format!(
                "Shorten the life of unanswered orphans in netns {}: tcp_orphan_retries 3 (about {:.0} s instead of {:.0} s)",
                ns.name(),
                orphan_lifetime_s(3),
                orphan_lifetime_s(retries.unwrap_or(8))
            ),
            &[("net.ipv4.tcp_orphan_retries", "3".to_string())],
            Some("Per namespace: set it inside the namespace (for a pod, an allowed-unsafe sysctl). Peers on slow links may get a reset instead of a clean close."),
        );
    }
    f.wont_help("lowering tcp_fin_timeout: it only bounds orphaned FIN-WAIT-2, never FIN-WAIT-1, LAST-ACK, CLOSING or TIME-WAIT")
        .wont_help("raising tcp_max_orphans by a few percent, tcp_tw_reuse or tcp_tw_recycle (incident 2: none helped; tw_recycle is gone since 4.12)")
        .build()
}

/// The process owning the listener on this endpoint's port (same address, or a
/// wildcard listener), in the same namespace.
fn listener_owner<'a>(
    ctx: &Ctx<'a>,
    ns: &Netns,
    ep: &Endpoint,
) -> Option<&'a sockmedic_model::Process> {
    ctx.snap.processes.iter().find(|p| {
        p.netns == Some(ns.id)
            && p.listeners.iter().any(|l| {
                l.local.port == ep.port && (l.local.addr == ep.addr || l.local.is_wildcard())
            })
    })
}

fn others(ns: &Netns) -> String {
    let v: Vec<String> = [
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::CloseWait,
        TcpState::Established,
    ]
    .iter()
    .filter_map(|s| ns.states.get(*s).map(|c| format!("{} {c}", s.name())))
    .collect();
    if v.is_empty() {
        String::new()
    } else {
        format!("; for comparison {}", v.join(", "))
    }
}
