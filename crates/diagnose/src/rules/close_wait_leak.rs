//! `close-wait-leak`: a process that never closes after its peer did.

use super::dumped;
use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{format_endpoint, Finding, Netns, Process, Severity, Subject, TcpState};

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let warn = ctx.t.get("close-wait.warning");
    let mut out: Vec<Finding> = ctx
        .snap
        .processes
        .iter()
        .filter(|p| p.states.count(TcpState::CloseWait) as f64 >= warn)
        .map(|p| by_process(ctx, p))
        .collect();
    // Without a process scan, the namespace is the best subject there is.
    if ctx.snap.processes.is_empty() {
        out.extend(
            dumped(ctx)
                .filter(|ns| ns.states.count(TcpState::CloseWait) as f64 >= warn)
                .map(|ns| by_netns(ctx, ns)),
        );
    }
    out
}

fn severity(ctx: &Ctx, n: u64, p: Option<&Process>) -> Severity {
    let near_fd_limit = p
        .and_then(Process::fd_use)
        .is_some_and(|u| u >= ctx.t.get("fd.warning"));
    if n as f64 >= ctx.t.get("close-wait.critical") || near_fd_limit {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

fn by_process(ctx: &Ctx, p: &Process) -> Finding {
    let n = p.states.count(TcpState::CloseWait);
    let ns = p
        .netns
        .and_then(|id| ctx.snap.netns.iter().find(|x| x.id == id));
    let mut subject = Subject {
        state: Some(TcpState::CloseWait.name().to_string()),
        count: Some(n),
        limit: p.fd_limit.filter(|l| *l != u64::MAX),
        ..ctx.process_subject(p)
    };
    // The namespace's busiest CLOSE-WAIT endpoint is this process's own when it
    // holds every CLOSE-WAIT socket there, and it is one when it holds most of them:
    // a server's own port, or the one peer a client's connections went to.
    let share = ctx.t.get("teardown.share");
    let top = ns
        .filter(|ns| ns.states.count(TcpState::CloseWait) == n)
        .and_then(concentration)
        .filter(|c| c.count as f64 >= share * n as f64);
    match &top {
        Some(c) if c.local => subject.local = Some(format_endpoint(&c.endpoint)),
        Some(c) => subject.remote = Some(format_endpoint(&c.endpoint)),
        None => {}
    }
    let tcp: u64 = p.states.iter().map(|(_, c)| c).sum();
    let mut f = finding(
        "close-wait-leak",
        severity(ctx, n, Some(p)),
        format!(
            "{} holds {n} CLOSE-WAIT sockets{}: the peers closed, the process never did",
            ctx.process_words(p),
            top.as_ref()
                .map(|c| format!(
                    " {} {}",
                    if c.local { "on" } else { "towards" },
                    format_endpoint(&c.endpoint)
                ))
                .unwrap_or_default()
        ),
        subject,
    )
    .evidence(format!(
        "pid {} ({}) holds {n} CLOSE-WAIT of its {tcp} TCP sockets{}",
        p.pid,
        p.comm,
        match (p.fds, p.fd_limit) {
            (Some(fds), Some(l)) if l != u64::MAX => format!(
                "; {fds} open fds of a limit of {l} ({})",
                pct(fds as f64 / l as f64)
            ),
            _ => String::new(),
        }
    ));
    if let Some(ns) = ns {
        f = f.evidence(format!(
            "netns {}: CLOSE-WAIT {} in all, ESTABLISHED {}",
            ns.name(),
            ns.states.count(TcpState::CloseWait),
            ns.states
                .get(TcpState::Established)
                .map(|c| c.to_string())
                .unwrap_or_else(|| "?".into())
        ));
        if let Some(c) = concentration(ns) {
            f = f.evidence(format!(
                "busiest CLOSE-WAIT endpoint in the namespace: {} {} with {}",
                if c.local { "local" } else { "remote" },
                format_endpoint(&c.endpoint),
                c.count
            ));
        }
    }
    finish(f)
}

fn by_netns(ctx: &Ctx, ns: &Netns) -> Finding {
    let n = ns.states.count(TcpState::CloseWait);
    let share = ctx.t.get("teardown.share");
    let top = concentration(ns).filter(|c| c.count as f64 >= share * n as f64);
    let subject = Subject {
        netns: Some(ns.name().to_string()),
        state: Some(TcpState::CloseWait.name().to_string()),
        local: top
            .as_ref()
            .filter(|c| c.local)
            .map(|c| format_endpoint(&c.endpoint)),
        remote: top
            .as_ref()
            .filter(|c| !c.local)
            .map(|c| format_endpoint(&c.endpoint)),
        pod: ns.pod.clone(),
        count: Some(n),
        ..Subject::default()
    };
    let mut f = finding(
        "close-wait-leak",
        severity(ctx, n, None),
        format!(
            "{n} CLOSE-WAIT sockets in netns {}: an application does not close after its peers did",
            ns.name()
        ),
        subject,
    )
    .evidence(format!("netns {}: CLOSE-WAIT {n}", ns.name()));
    if let Some(c) = top {
        f = f.evidence(format!(
            "{} of them on {} {}",
            c.count,
            if c.local { "local" } else { "remote" },
            format_endpoint(&c.endpoint)
        ));
    }
    finish(f.evidence(
        "no process scan: run `sockmedic procs --sort close-wait` as root to name the process",
    ))
}

fn finish(f: crate::context::FindingBuilder) -> Finding {
    f.explain(
        "CLOSE-WAIT means the peer sent FIN (its side is closed) and the kernel is waiting for the application to \
         call close(). The kernel never times this state out: each socket keeps its fd, its memory and its port \
         until the process closes it or exits. Many of them mean a code path that misses the end of a connection \
         (read() returning 0, an error) and keeps the socket.",
    )
    .fix(
        "Fix the application: close the socket when read() returns 0 or fails, and on every error path; add idle timeouts to pooled connections so dead ones are closed",
        None,
    )
    .fix(
        "Until then, restarting the process releases the sockets (they are freed when it exits)",
        Some("Temporary: the leak starts again with the traffic."),
    )
    .wont_help("any sysctl: tcp_fin_timeout, keepalive settings and tcp_max_orphans do not apply to a socket the application still holds open")
    .build()
}

/// The busier side of CLOSE-WAIT's top local and top remote endpoints.
struct Concentration {
    endpoint: sockmedic_model::Endpoint,
    local: bool,
    count: u64,
}

fn concentration(ns: &Netns) -> Option<Concentration> {
    let top = |rows: &[sockmedic_model::EndpointCount]| {
        rows.iter()
            .filter(|r| r.state == TcpState::CloseWait)
            .max_by_key(|r| r.count)
            .map(|r| (r.endpoint, r.count))
    };
    let (l, r) = (top(&ns.top_local), top(&ns.top_remote));
    match (l, r) {
        (Some(l), Some(r)) if r.1 > l.1 => Some(Concentration {
            endpoint: r.0,
            local: false,
            count: r.1,
        }),
        (Some(l), _) => Some(Concentration {
            endpoint: l.0,
            local: true,
            count: l.1,
        }),
        (None, Some(r)) => Some(Concentration {
            endpoint: r.0,
            local: false,
            count: r.1,
        }),
        (None, None) => None,
    }
}
