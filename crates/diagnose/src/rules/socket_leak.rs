//! `socket-leak`: TCP sockets held by a process that are in no table (CLOSE):
//! never connected, only bound, or reset and never closed. What `ss -s` calls
//! "closed" (incidents 3 and 5).

use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{Finding, Process, Severity, Subject, TcpState};

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let warn = ctx.t.get("socket-leak.warning");
    let mut out: Vec<Finding> = ctx
        .snap
        .processes
        .iter()
        .filter(|p| p.unhashed.unwrap_or(0) as f64 >= warn)
        .map(|p| by_process(ctx, p))
        .collect();
    // Unhashed sockets no process scan accounts for (no scan, or no rights).
    if let Some(f) = unattributed(ctx) {
        out.push(f);
    }
    out
}

fn by_process(ctx: &Ctx, p: &Process) -> Finding {
    let n = p.unhashed.unwrap_or(0);
    let bound = p.states.count(TcpState::BoundInactive);
    let free = p.states.count(TcpState::Unhashed);
    let near_fd_limit = p.fd_use().is_some_and(|u| u >= ctx.t.get("fd.warning"));
    let severity = if n as f64 >= ctx.t.get("socket-leak.critical") || near_fd_limit {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let state = if bound > free {
        TcpState::BoundInactive
    } else {
        TcpState::Unhashed
    };
    let subject = Subject {
        state: Some(state.name().to_string()),
        count: Some(n),
        limit: p.fd_limit.filter(|l| *l != u64::MAX),
        ..ctx.process_subject(p)
    };
    let established = p.states.count(TcpState::Established);
    let mut f = finding(
        "socket-leak",
        severity,
        format!(
            "{} holds {n} TCP sockets in no table (state CLOSE) and {established} ESTABLISHED: sockets created or failed and never closed",
            ctx.process_words(p)
        ),
        subject,
    )
    .evidence(format!(
        "pid {} ({}): {n} TCP socket fds in state CLOSE: {bound} bound to a port (BOUND-INACTIVE), {free} in no table at all (UNHASHED)",
        p.pid, p.comm
    ));
    if let (Some(fds), Some(l)) = (p.fds, p.fd_limit.filter(|l| *l != u64::MAX)) {
        f = f.evidence(format!(
            "{fds} open fds of a limit of {l} ({})",
            pct(fds as f64 / l as f64)
        ));
    }
    if let Some(c) = &p.unhashed_check {
        match &c.unavailable {
            Some(why) => f = f.evidence(format!("could not look inside the sockets: {why}")),
            None => {
                let mut s = format!(
                    "{} of them checked with TCP_INFO: {} in state CLOSE",
                    c.checked, c.close
                );
                if c.in_other_netns > 0 {
                    s.push_str(&format!(", {} in another namespace", c.in_other_netns));
                }
                if !c.errors.is_empty() {
                    let errs: Vec<String> =
                        c.errors.iter().map(|(e, n)| format!("{e} {n}")).collect();
                    s.push_str(&format!(
                        "; pending errors: {} (failed connections never closed)",
                        errs.join(", ")
                    ));
                }
                f = f.evidence(s);
            }
        }
    }
    if !p.bound_ports.is_empty() {
        let ports: Vec<String> = p.bound_ports.iter().take(8).map(u16::to_string).collect();
        f = f.evidence(format!(
            "its bound sockets hold ports {}{}: each is taken for every destination",
            ports.join(", "),
            if p.bound_ports.len() > 8 { ", ..." } else { "" }
        ));
    }
    if let Some(c) = &ctx.snap.host.closed {
        f = f.evidence(format!(
            "host: sockstat alloc {} − inuse {} = {} TCP sockets in no table{}; this process holds {}",
            c.alloc,
            c.inuse,
            c.unhashed,
            c.ss_closed.map(|s| format!(" (`ss -s` shows closed {s})")).unwrap_or_default(),
            pct(n as f64 / c.unhashed.max(1) as f64)
        ));
    }
    finish(f)
}

fn unattributed(ctx: &Ctx) -> Option<Finding> {
    let c = ctx.snap.host.closed.as_ref()?;
    let attributed: u64 = ctx
        .snap
        .processes
        .iter()
        .map(|p| p.unhashed.unwrap_or(0))
        .sum();
    let rest = c.unhashed.saturating_sub(attributed);
    // Live, a partial sum (--netns, a namespace not entered) proves nothing. Saved
    // outputs come from one namespace by nature: say what the figure includes.
    let offline = ctx.snap.source.kind != sockmedic_model::SourceKind::Live;
    if (rest as f64) < ctx.t.get("socket-leak.warning") || !(c.complete || offline) {
        return None;
    }
    let severity = if rest as f64 >= ctx.t.get("socket-leak.critical") {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let subject = Subject {
        state: Some(TcpState::Unhashed.name().to_string()),
        count: Some(rest),
        ..Subject::default()
    };
    let f = finding(
        "socket-leak",
        severity,
        format!("{rest} TCP sockets are allocated and in no table, and no process scan accounts for them"),
        subject,
    )
    .evidence(format!(
        "host: sockstat alloc {} − inuse {} ({}) = {} in no table{}; processes seen hold {attributed} of them",
        c.alloc,
        c.inuse,
        if c.complete {
            format!("all {} namespaces", c.netns_counted)
        } else {
            "of the namespace the outputs were taken in; sockets of containers' namespaces count here too".to_string()
        },
        c.unhashed,
        c.ss_closed.map(|s| format!(" (`ss -s` closed {s})")).unwrap_or_default()
    ))
    .evidence(if ctx.snap.processes.is_empty() {
        "no process scan: run `sockmedic procs --sort unhashed` as root to find the holder".to_string()
    } else {
        "some processes could not be read (see `missing`), or the sockets belong to a process of another PID namespace".to_string()
    });
    Some(finish(f))
}

fn finish(f: crate::context::FindingBuilder) -> Finding {
    f.explain(
        "A TCP socket that was never connected or listening, or whose connection was reset or failed (RST, \
         ETIMEDOUT, ECONNREFUSED) while the application kept the fd, is in state CLOSE: tcp_set_state(TCP_CLOSE) \
         unhashes it, so no dump, /proc/net/tcp or `ss -t -a` shows it. Only sockstat `alloc` counts it, which is \
         why `ss -s` reports it as \"closed\" (alloc − (inuse − tw)). It still holds an fd, kernel memory \
         (sockstat mem) and, if it was bound explicitly or with bind(0), its port: for every destination, so \
         enough of them exhaust the ephemeral range (incident 3, EADDRNOTAVAIL) or TCP memory (incident 5).",
    )
    .fix(
        "Fix the application: close() the socket on every path where it is not used any more — after a failed connect(), after a reset or an error, and when a pooled connection is discarded",
        None,
    )
    .fix(
        "Confirm by hand: `ls -l /proc/PID/fd | grep -c socket` against `ss -tanp | grep -c pid=PID` — the difference is the sockets no table shows",
        None,
    )
    .fix("Until it is fixed, restarting the process frees them", Some("Temporary: the leak starts again."))
    .wont_help("sysctls (tcp_max_orphans, tcp_fin_timeout, tcp_tw_reuse): the kernel keeps these sockets exactly as long as the application keeps the fd")
    .build()
}
