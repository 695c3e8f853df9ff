//! `tcp-memory-pressure`: TCP's memory (host-wide, pages) against tcp_mem.

use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{Finding, LogKind, Process, Severity, Subject, TcpState};

const LOG: &[LogKind] = &[LogKind::TcpMem, LogKind::OutOfSocketMemory];

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let host = &ctx.snap.host;
    let (Some(mem), Some(lim)) = (host.sockstat.tcp_mem_pages, host.limits.tcp_mem) else {
        return Vec::new();
    };
    let aborting = ctx
        .snap
        .netns
        .iter()
        .any(|n| ctx.rising(n, "TcpExt", "TCPAbortOnMemory"));
    let pressures = ctx
        .snap
        .netns
        .iter()
        .any(|n| ctx.rising(n, "TcpExt", "TCPMemoryPressures"));
    let recent_log = ctx.log(LOG).iter().any(|m| ctx.recent(m));
    let ratio_max = mem as f64 / lim.max.max(1) as f64;
    let severity = if ratio_max >= ctx.t.get("tcp-mem.critical") || aborting {
        Severity::Critical
    } else if mem > lim.pressure || pressures || recent_log {
        Severity::Warning
    } else {
        return Vec::new();
    };
    let page = host.page_size.max(1);
    let mib = |pages: u64| pages * page / (1024 * 1024);
    // Memory high now, or only seen earlier (a counter or the kernel log).
    let high_now = mem > lim.pressure || ratio_max >= ctx.t.get("tcp-mem.critical");
    // Where the bytes wait: the namespace holding most of the queued data.
    let queued = |n: &&sockmedic_model::Netns| n.queued.map_or(0, |q| q.recv + q.send);
    let total_queued: u64 = ctx.snap.netns.iter().map(|n| queued(&n)).sum();
    let heaviest = ctx.snap.netns.iter().max_by_key(queued).filter(|n| {
        high_now
            && total_queued > 0
            && queued(n) as f64 >= ctx.t.get("teardown.share") * total_queued as f64
    });
    let subject = Subject {
        netns: heaviest.map(|n| n.name().to_string()),
        pod: heaviest.and_then(|n| n.pod.clone()),
        count: Some(mem),
        limit: Some(lim.max),
        ..Subject::default()
    };
    let title = if mem > lim.max {
        format!("TCP memory {mem} pages ({} MiB) is over tcp_mem max {}: new buffers are refused, orphans with queued data are reset", mib(mem), lim.max)
    } else if mem > lim.pressure {
        format!("TCP memory {mem} pages ({} MiB) is over tcp_mem pressure {}: every socket's buffers are being squeezed ({} of max {})", mib(mem), lim.pressure, pct(ratio_max), lim.max)
    } else {
        format!(
            "TCP memory pressure seen: {mem} pages now, {} of tcp_mem max {}",
            pct(ratio_max),
            lim.max
        )
    };
    let mut f = finding("tcp-memory-pressure", severity, title, subject).evidence(format!(
        "/proc/net/sockstat TCP mem {mem} pages ({} MiB, host-wide); net.ipv4.tcp_mem {} {} {} (min, pressure, max in pages of {page} bytes)",
        mib(mem),
        lim.min,
        lim.pressure,
        lim.max
    ));
    if let Some(n) = heaviest {
        let q = n.queued.unwrap_or_default();
        f = f.evidence(format!(
            "netns {} holds {} MiB in its connections' queues (Recv-Q {} MiB unread by the application, Send-Q {} MiB unacknowledged or unsent) of {} MiB queued in every namespace dumped",
            n.name(),
            (q.recv + q.send) >> 20,
            q.recv >> 20,
            q.send >> 20,
            total_queued >> 20
        ));
    }
    let estab: u64 = ctx
        .snap
        .netns
        .iter()
        .map(|n| n.states.count(TcpState::Established))
        .sum();
    if let Some(alloc) = host.sockstat.tcp_alloc {
        f = f.evidence(format!(
            "sockets: {alloc} TCP sockets allocated host-wide, {estab} ESTABLISHED in the namespaces seen; {} KiB per allocated socket on average",
            mem * page / 1024 / alloc.max(1)
        ));
    }
    for c in [
        "TCPMemoryPressures",
        "TCPAbortOnMemory",
        "PruneCalled",
        "TCPRcvQDrop",
    ] {
        let lines: Vec<String> = ctx
            .snap
            .netns
            .iter()
            .filter(|n| n.counter("TcpExt", c).unwrap_or(0) > 0)
            .filter_map(|n| {
                Some(format!(
                    "netns {}: {}",
                    n.name(),
                    ctx.counter_sentence(n, "TcpExt", c)?
                ))
            })
            .take(2)
            .collect();
        f = f.evidence_all(lines);
    }
    f = f.evidence_all(ctx.log_evidence(LOG));
    // Memory high with little traffic: the holders of dead sockets (incident 5).
    // Only when memory is high now: a message from the past says nothing of them.
    let suspects = if high_now { suspects(ctx) } else { Vec::new() };
    for p in &suspects {
        f = f.evidence(format!(
            "{} holds {} TCP sockets: {} in no table, {} CLOSE-WAIT, {} ESTABLISHED",
            ctx.process_words(p),
            p.states.iter().map(|(_, n)| n).sum::<u64>(),
            p.unhashed.unwrap_or(0),
            p.states.count(TcpState::CloseWait),
            p.states.count(TcpState::Established)
        ));
    }
    f = f.explain(
        "tcp_mem is host-wide, in pages: above its pressure value the kernel enters memory pressure \
         (TCPMemoryPressures): no socket may grow its buffers, receive queues are collapsed and pruned, windows \
         shrink, so every connection slows down. Above max, new allocations fail: sends block, received segments \
         are dropped, and an orphan closed with more than ~4.6 KB queued is reset with `TCP: out of memory -- \
         consider tuning tcp_mem` (TCPAbortOnMemory). sockstat mem lags by up to net.core.mem_pcpu_rsv pages per \
         CPU. High memory with little traffic means sockets nobody reads or closes hold buffers (incident 5: \
         one process held 5336 dead sockets).",
    );
    if let Some(p) = suspects.first() {
        f = f.fix(
            format!(
                "Fix the holder: {} keeps sockets it no longer uses; restarting it frees their memory now, closing them in the code fixes it",
                ctx.process_words(p)
            ),
            None,
        );
    }
    if !high_now {
        // Seen earlier, not now: nothing to size; catch it the next time.
        let f = f
            .fix(
                "Memory is normal now: watch `/proc/net/sockstat` TCP mem against tcp_mem during the next episode, or run `sockmedic check` then, to see who holds it",
                None,
            )
            .build();
        return vec![f];
    }
    let wanted = [lim.min * 2, lim.pressure * 2, lim.max * 2];
    let f = f.sysctl(
        "Give TCP more memory (host-wide): twice the current tcp_mem",
        &[("net.ipv4.tcp_mem", format!("{} {} {}", wanted[0], wanted[1], wanted[2]))],
        Some(&format!(
            "The default is about 9% of RAM at max; {} MiB at max must stay well below the host's memory. Raising it hides a leak.",
            mib(wanted[2])
        )),
    )
    .wont_help("raising tcp_rmem/tcp_wmem: they are per-socket ceilings and make the total larger")
    .build();
    vec![f]
}

/// Processes holding many sockets that carry no traffic: CLOSE-WAIT and
/// sockets in no table, heaviest first.
fn suspects<'a>(ctx: &Ctx<'a>) -> Vec<&'a Process> {
    let dead = |p: &Process| p.unhashed.unwrap_or(0) + p.states.count(TcpState::CloseWait);
    let mut v: Vec<&Process> = ctx
        .snap
        .processes
        .iter()
        .filter(|p| dead(p) >= 10)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(dead(p)));
    v.truncate(3);
    v
}
