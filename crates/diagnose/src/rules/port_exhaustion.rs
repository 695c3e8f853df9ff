//! `port-exhaustion`: the ephemeral range nearly used up, in total or towards one
//! destination; connect() will fail with EADDRNOTAVAIL.

use super::{dumped, level};
use crate::context::{finding, Ctx};
use crate::words::pct;
use sockmedic_model::{format_endpoint, EphemeralUse, Finding, Netns, Subject, TcpState};

/// The kernel's default range, 32768-60999: 28232 ports.
const DEFAULT_SIZE: u64 = 28_232;

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let mut out: Vec<Finding> = dumped(ctx).filter_map(|ns| exhaustion(ctx, ns)).collect();
    // Saved `ss -s` of old iproute2: only the count of bound ports is known.
    out.extend(
        ctx.snap
            .netns
            .iter()
            .filter(|ns| ns.ephemeral.is_none())
            .filter_map(|ns| from_bind_buckets(ctx, ns)),
    );
    out
}

/// Ports bound by some socket (old `ss -s` "ports N") against the range: an upper
/// bound of the ports taken, since listeners' and other ports outside the range
/// are bound too (incident 3: 12036 of a 12001-port range).
fn from_bind_buckets(ctx: &Ctx, ns: &Netns) -> Option<Finding> {
    let buckets = ns.bind_buckets?;
    let (lo, hi) = ns.port_range()?;
    let size = u64::from(hi - lo) + 1;
    let ratio = buckets as f64 / size as f64;
    let severity = level(
        ratio,
        ctx.t.get("ports.warning"),
        ctx.t.get("ports.critical"),
    )?;
    let subject = Subject {
        netns: Some(ns.name().to_string()),
        count: Some(buckets),
        limit: Some(size),
        ..Subject::default()
    };
    let f = finding(
        "port-exhaustion",
        severity,
        format!(
            "{buckets} ports bound for an ephemeral range of {size} ({}): connect() fails with EADDRNOTAVAIL (\"Cannot assign requested address\")",
            pct(ratio)
        ),
        subject,
    )
    .evidence(format!(
        "`ss -s`: ports {buckets} (bind buckets: every port some socket has bound, in or out of the range)"
    ))
    .evidence(format!("net.ipv4.ip_local_port_range {lo} {hi} = {size} ports"))
    .evidence("no socket listing in the input: which ports, and who holds them, needs `ss -tanp` or `sockmedic procs`")
    .explain(
        "Every port some socket has bound has a bind bucket; old `ss -s` printed their number as `ports`. With \
         more buckets than the ephemeral range has ports, the range is full: connect() without a bound port \
         fails with EADDRNOTAVAIL and bind(0) with EADDRINUSE. Sockets that bound a port and were never \
         connected, or failed and were kept, are the usual holders (incident 3).",
    )
    .fix(
        "Find the holder: `sockmedic procs --sort unhashed` (or `ls -l /proc/*/fd | grep -c socket` per process against `ss -tanp`), then fix it to close its sockets",
        None,
    );
    let f = if size < DEFAULT_SIZE {
        f.sysctl(
            "Widen the ephemeral range (buys time; the holder fills any range)",
            &[("net.ipv4.ip_local_port_range", "32768 60999".to_string())],
            None,
        )
    } else {
        f
    };
    f.build().into()
}

fn exhaustion(ctx: &Ctx, ns: &Netns) -> Option<Finding> {
    let e = ns.ephemeral.as_ref()?;
    let size = u64::from(e.size).max(1);
    let bound = u64::from(e.bound_inactive_ports.unwrap_or(0));
    // Ports taken: used by connections (stage one) plus bound-only ones; the two
    // sets barely overlap (a bound-only port has no connection on it).
    let used = (u64::from(e.ports_in_use) + bound).min(size);
    let total_ratio = used as f64 / size as f64;
    // Towards one destination connect() has the range minus the bound-only ports.
    let dest = e.top_remote.iter().max_by_key(|r| r.count);
    let capacity = size.saturating_sub(bound).max(1);
    let dest_ratio = dest
        .map(|d| (d.count + bound) as f64 / size as f64)
        .unwrap_or(0.0);
    let (warn, crit) = (ctx.t.get("ports.warning"), ctx.t.get("ports.critical"));
    let by_total = level(total_ratio, warn, crit);
    let by_dest = level(dest_ratio, warn, crit);
    let severity = by_total.max(by_dest)?;
    // The destination is the more precise subject when it explains the total.
    let per_dest = dest.is_some() && by_dest >= by_total && dest_ratio >= total_ratio;
    let mut subject = Subject {
        netns: Some(ns.name().to_string()),
        pod: ns.pod.clone(),
        count: Some(used),
        limit: Some(size),
        ..Subject::default()
    };
    let title = match (per_dest, dest) {
        (true, Some(d)) => {
            subject.remote = Some(format_endpoint(&d.endpoint));
            subject.count = Some(d.count + bound);
            format!(
                "Ephemeral ports towards {} in netns {}: {} of {size} taken ({}); connect() to it will fail with EADDRNOTAVAIL",
                format_endpoint(&d.endpoint),
                ns.name(),
                d.count + bound,
                pct(dest_ratio)
            )
        }
        _ => format!(
            "Ephemeral ports in netns {}: {used} of {size} taken ({}); connect() will fail with EADDRNOTAVAIL (\"Cannot assign requested address\")",
            ns.name(),
            pct(total_ratio)
        ),
    };
    // The process holding the most bound-only ports, if one stands out.
    let holder = ctx
        .snap
        .processes
        .iter()
        .filter(|p| p.netns == Some(ns.id) && p.states.count(TcpState::BoundInactive) > 0)
        .max_by_key(|p| p.states.count(TcpState::BoundInactive));
    if let Some(p) =
        holder.filter(|p| p.states.count(TcpState::BoundInactive) * 2 >= bound && bound > 0)
    {
        subject.pid = Some(p.pid);
        subject.process = Some(p.comm.clone());
        subject.container = p.container.clone();
        subject.pod = p.pod.clone().or(subject.pod);
    }
    let mut f = finding("port-exhaustion", severity, title, subject)
        .evidence(format!(
            "netns {}: net.ipv4.ip_local_port_range {} {} = {size} ports{}",
            ns.name(),
            e.range[0],
            e.range[1],
            if e.reserved > 0 { format!(" (after {} reserved)", e.reserved) } else { String::new() }
        ))
        .evidence(format!(
            "{} distinct ports in the range used by {} connected sockets{}; {bound} more held by sockets only bound (BOUND-INACTIVE: bind() without connect or listen, taken for every destination)",
            e.ports_in_use,
            e.sockets,
            if e.includes_established { "" } else { " (ESTABLISHED not counted)" }
        ));
    if let Some(d) = dest {
        f = f.evidence(format!(
            "busiest destination {}: {} sockets with a local port in the range, of {capacity} ports connect() can still pick for it",
            format_endpoint(&d.endpoint),
            d.count
        ));
    }
    let tw = ns.states.count(TcpState::TimeWait);
    if tw > 0 {
        f = f.evidence(format!("TIME-WAIT sockets in the namespace: {tw} (each keeps its port for 60 s towards its destination)"));
    }
    if let Some(p) = holder {
        f = f.evidence(format!(
            "{} holds {} bound-only sockets and {} sockets in no table",
            ctx.process_words(p),
            p.states.count(TcpState::BoundInactive),
            p.unhashed.unwrap_or(0)
        ));
    }
    if let Some(s) = ctx.counter_sentence(ns, "Tcp", "AttemptFails") {
        f = f.evidence(s);
    }
    f = f.explain(
        "connect() without a bound port picks one in __inet_hash_connect(): a port is usable towards a destination \
         if no socket bound it with bind() and the 4-tuple is free (a TIME-WAIT entry may be taken over with \
         tcp_tw_reuse). When none is left, connect() fails with EADDRNOTAVAIL (\"Cannot assign requested \
         address\"); bind() with port 0 fails with EADDRINUSE. Ports taken by bind() are exclusive for every \
         destination, so sockets that bind and never connect, or connections that failed and kept their fd, \
         exhaust the range fastest (incident 3: 12000 of 12000 ports).",
    );
    f = widen(f, ns, e, used);
    f.sysctl(
        "Let connect() take over TIME-WAIT ports (outgoing connections; needs tcp_timestamps on both sides)",
        &[("net.ipv4.tcp_tw_reuse", "1".to_string())],
        Some("Only helps when TIME-WAIT holds the ports; not for bound or leaked sockets."),
    )
    .fix(
        "In the application: do not bind() client sockets (or set IP_BIND_ADDRESS_NO_PORT before bind() when the source address must be fixed), reuse connections, and close sockets whose connect failed",
        None,
    )
    .wont_help("tcp_fin_timeout, tcp_max_tw_buckets: they do not free ports held by bound or connected sockets")
    .build()
    .into()
}

/// A wider range: at least twice the ports in use and the kernel's default size,
/// ending at 65535, with the ends of different parity and the listeners' ports in
/// it reserved.
fn widen(
    f: crate::context::FindingBuilder,
    ns: &Netns,
    e: &EphemeralUse,
    used: u64,
) -> crate::context::FindingBuilder {
    // The kernel's default range when it is enough (what risky-sysctl proposes for a
    // narrow range too), else a wider one ending at 65535.
    let want = (2 * used).clamp(DEFAULT_SIZE, 64_511);
    let (low, high) = if want <= DEFAULT_SIZE {
        (32_768, 60_999)
    } else {
        ((65_536 - want).max(1024) & !1, 65_535)
    };
    if high - low <= u64::from(e.range[1]) - u64::from(e.range[0]) {
        return f.fix(
            "The range is already wide: find who holds the ports (`sockmedic procs --sort unhashed`, `sockmedic sockets --state bound-inactive`)",
            None,
        );
    }
    let mut lines = vec![("net.ipv4.ip_local_port_range", format!("{low} {high}"))];
    let mut listen: Vec<u16> = ns
        .listeners
        .iter()
        .map(|l| l.local.port)
        .filter(|p| (low..=high).contains(&u64::from(*p)))
        .collect();
    listen.sort_unstable();
    listen.dedup();
    if !listen.is_empty() {
        let list: Vec<String> = listen.iter().map(u16::to_string).collect();
        lines.push(("net.ipv4.ip_local_reserved_ports", list.join(",")));
    }
    f.sysctl(
        format!("Widen the ephemeral range in netns {} to {} ports", ns.name(), high - low + 1),
        &lines,
        Some("Servers listening on ports inside the new range must have them reserved (ip_local_reserved_ports, included here for the listeners seen), or a client may take a server's port before it starts."),
    )
}
