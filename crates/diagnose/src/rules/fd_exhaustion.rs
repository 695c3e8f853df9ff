//! `fd-exhaustion`: a process near its RLIMIT_NOFILE, or the host near file-max
//! (incident 4: Tomcat at 1024 of 1024).

use super::level;
use crate::context::{finding, Ctx};
use crate::words::{pct, pow2_at_least};
use sockmedic_model::{Finding, LogKind, Process, Subject, TcpState};

const LOG: &[LogKind] = &[LogKind::FileMax, LogKind::NoMoreSockets];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let (warn, crit) = (ctx.t.get("fd.warning"), ctx.t.get("fd.critical"));
    let mut out: Vec<Finding> = ctx
        .snap
        .processes
        .iter()
        .filter_map(|p| Some((p, level(p.fd_use()?, warn, crit)?)))
        .map(|(p, sev)| by_process(ctx, p, sev))
        .collect();
    if let Some(f) = host(ctx) {
        out.push(f);
    }
    out
}

fn by_process(ctx: &Ctx, p: &Process, severity: sockmedic_model::Severity) -> Finding {
    let fds = p.fds.unwrap_or(0);
    let limit = p.fd_limit.unwrap_or(0);
    let subject = Subject {
        count: Some(fds),
        limit: Some(limit),
        ..ctx.process_subject(p)
    };
    let sockets = p.socket_fds.unwrap_or(0);
    let mut f = finding(
        "fd-exhaustion",
        severity,
        format!(
            "{} has {fds} of {limit} file descriptors open ({}): accept() and socket() fail with EMFILE next",
            ctx.process_words(p),
            pct(fds as f64 / limit.max(1) as f64)
        ),
        subject,
    )
    .evidence(format!(
        "/proc/{}/fd: {fds} open, {sockets} of them sockets; /proc/{}/limits: Max open files {limit} (soft), {} (hard)",
        p.pid,
        p.pid,
        p.fd_limit_hard.map(|h| if h == u64::MAX { "unlimited".to_string() } else { h.to_string() }).unwrap_or_else(|| "?".into())
    ));
    let states: Vec<String> = p
        .states
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{} {n}", s.name()))
        .collect();
    if !states.is_empty() {
        f = f.evidence(format!("its TCP sockets: {}", states.join(", ")));
    }
    for l in &p.listeners {
        f = f.evidence(format!(
            "it listens on {} with {} connections waiting in the accept queue (backlog {}) and {} in SYN-RECV",
            sockmedic_model::format_endpoint(&l.local),
            l.accept_queue,
            l.backlog,
            l.syn_recv
        ));
    }
    if let Some(ns) = p
        .netns
        .and_then(|id| ctx.snap.netns.iter().find(|n| n.id == id))
    {
        if let Some(s) = ctx.counter_sentence(ns, "TcpExt", "ListenOverflows") {
            f = f.evidence(format!("netns {}: {s}", ns.name()));
        }
    }
    let wanted = pow2_at_least(fds.max(1) * 4).max(65_536);
    let hard_ok = p.fd_limit_hard.is_none_or(|h| h >= wanted);
    let nr_open = ctx.snap.host.limits.nr_open;
    let mut f = f
        .explain(
            "Every socket, file and pipe is a file descriptor, and a process may hold at most its soft RLIMIT_NOFILE. \
             At the limit, accept() fails with EMFILE: completed connections stay in the listener's accept queue, \
             the queue fills, new SYNs are dropped (ListenOverflows), clients retransmit, and a load balancer's \
             health check marks the server down, pushing its users to the next server (incident 4). Nothing is \
             logged by the kernel for EMFILE.",
        )
        .fix(
            format!(
                "Raise the limit where the process is started: systemd `LimitNOFILE={wanted}` in the unit (then `systemctl daemon-reload` and a restart), `ulimit -n {wanted}` in its start script, or for a container the runtime's nofile ulimit"
            ),
            Some(if hard_ok {
                "A higher limit only buys time if the process leaks fds: check its socket states (socket-leak, close-wait-leak)."
            } else {
                "The hard limit is lower: raise it too (LimitNOFILE sets both)."
            }),
        )
        .fix(
            format!("On the running process, without a restart: `prlimit --pid {} --nofile={wanted}:{wanted}`", p.pid),
            Some("Lost at the next restart; the application may also cache the old limit (e.g. a fixed-size poll set)."),
        );
    if let Some(n) = nr_open.filter(|n| *n < wanted) {
        f = f.sysctl(
            format!("fs.nr_open ({n}) caps RLIMIT_NOFILE: raise it first"),
            &[("fs.nr_open", wanted.to_string())],
            None,
        );
    }
    if p.unhashed.unwrap_or(0) + p.states.count(TcpState::CloseWait) > fds / 4 {
        f = f.fix(
            "Most of its fds are dead sockets (CLOSE-WAIT or in no table): fix the leak in the application; see the socket-leak / close-wait-leak findings",
            None,
        );
    }
    f.wont_help("tcp_abort_on_overflow or a larger backlog: the queue drains only when accept() succeeds again")
        .build()
}

fn host(ctx: &Ctx) -> Option<Finding> {
    let nr = ctx.snap.host.file_nr?;
    let max = ctx.snap.host.limits.file_max.unwrap_or(nr.max);
    if max == 0 || max >= i64::MAX as u64 {
        return None;
    }
    let in_use = nr.allocated.saturating_sub(nr.unused);
    let ratio = in_use as f64 / max as f64;
    let messages = ctx.log(LOG);
    let severity = match level(ratio, ctx.t.get("fd.warning"), ctx.t.get("fd.critical")) {
        Some(s) => s,
        None if messages.iter().any(|m| ctx.recent(m)) => sockmedic_model::Severity::Warning,
        None => return None,
    };
    let top = ctx.snap.processes.iter().max_by_key(|p| p.fds.unwrap_or(0));
    let subject = Subject {
        count: Some(in_use),
        limit: Some(max),
        ..Subject::default()
    };
    let mut f = finding(
        "fd-exhaustion",
        severity,
        if ratio >= ctx.t.get("fd.warning") {
            format!("Host file handles: {in_use} of fs.file-max {max} in use ({}): open() and socket() fail with ENFILE next", pct(ratio))
        } else {
            format!(
                "The kernel reported running out of file handles (×{}); {in_use} of fs.file-max {max} in use now ({})",
                messages.iter().map(|m| m.count).sum::<u64>(),
                pct(ratio)
            )
        },
        subject,
    )
    .evidence(format!("/proc/sys/fs/file-nr: {} allocated, {} unused, max {max}", nr.allocated, nr.unused))
    .evidence_all(ctx.log_evidence(LOG));
    if let Some(p) = top {
        f = f.evidence(format!(
            "the largest holder is {} with {} fds",
            ctx.process_words(p),
            p.fds.unwrap_or(0)
        ));
    }
    let wanted = pow2_at_least(in_use * 2);
    f.explain(
        "fs.file-max bounds the open files of the whole host; at the limit alloc_empty_file() fails with ENFILE and \
         logs `VFS: file-max limit N reached` (only when a new peak is reached), and socket creation fails (`socket: \
         no more sockets`).",
    )
    .sysctl(
        format!("Raise the host's file limit to {wanted}"),
        &[("fs.file-max", wanted.to_string())],
        Some("Each open file costs kernel memory (about 1 KiB); find the holder first if the count keeps growing."),
    )
    .build()
    .into()
}
