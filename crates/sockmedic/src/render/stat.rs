//! `sockmedic stat` as text: what `ss -s` should have said.

use super::table::{bytes, cell, num, percent, Align, Cell, Style, Table, Tone};
use super::{header_line, missing_section};
use sockmedic_model::{Netns, Snapshot, TcpState};
use std::fmt::Write;

pub fn render(snap: &Snapshot, style: Style) -> String {
    let mut out = header_line("stat", snap, style);
    out.push_str(&sections(snap, style));
    out
}

/// Everything but the header line: `check` prints these as its evidence.
pub fn sections(snap: &Snapshot, style: Style) -> String {
    let mut out = host_section(snap, style);
    out.push_str(&netns_section(snap, style));
    out.push_str(&limits_section(snap, style));
    out.push_str(&processes_section(snap, style));
    out.push_str(&missing_section(snap, style));
    out
}

/// The global figures: one value for every namespace on the host.
fn host_section(snap: &Snapshot, style: Style) -> String {
    let h = &snap.host;
    let mut out = format!(
        "\n{}\n",
        style.paint(
            Tone::Bold,
            "Host-wide (one figure for all network namespaces)"
        )
    );
    let mut t = Table::new(&[
        ("FIGURE", Align::Left),
        ("VALUE", Align::Right),
        ("LIMIT", Align::Right),
        ("USE", Align::Right),
        ("", Align::Left),
    ]);
    if let Some(orphan) = h.sockstat.tcp_orphan {
        let limit = h.limits.tcp_max_orphans;
        let (pct, tone) = ratio(orphan, limit);
        let note = match limit {
            Some(l) if l > 0 => {
                let (p4, _) = percent(orphan * 4, l);
                format!("tcp_max_orphans; the kernel may count orphans x2 or x4: {p4} at x4")
            }
            _ => "tcp_max_orphans".into(),
        };
        t.row(vec![
            "orphaned (closed, still in TCP)".into(),
            num(orphan).into(),
            opt(limit),
            cell(pct, tone),
            note.into(),
        ]);
    }
    if let Some(mem) = h.sockstat.tcp_mem_pages {
        let tcp_mem = h.limits.tcp_mem;
        let (pct, tone) = ratio(mem, tcp_mem.map(|m| m.max));
        let note = match tcp_mem {
            Some(m) => format!(
                "pages ({}); tcp_mem pressure {} max {}{}",
                bytes(mem * h.page_size),
                num(m.pressure),
                num(m.max),
                if mem > m.pressure {
                    " - UNDER PRESSURE"
                } else {
                    ""
                }
            ),
            None => format!("pages ({})", bytes(mem * h.page_size)),
        };
        let tone = if tcp_mem.is_some_and(|m| mem > m.pressure) {
            Tone::Bad
        } else {
            tone
        };
        t.row(vec![
            "TCP memory".into(),
            num(mem).into(),
            opt(tcp_mem.map(|m| m.max)),
            cell(pct, tone),
            note.into(),
        ]);
    }
    if let Some(alloc) = h.sockstat.tcp_alloc {
        t.row(vec![
            "TCP sockets allocated".into(),
            num(alloc).into(),
            "".into(),
            "".into(),
            "full sockets, IPv4 and IPv6 (sockstat alloc)".into(),
        ]);
    }
    if h.closed.is_none() && h.sockstat.tcp_alloc.is_some() {
        t.row(vec![
            "  in tables / in no table".into(),
            cell("?", Tone::Dim),
            "".into(),
            "".into(),
            "needs every namespace's inuse: run without --netns".into(),
        ]);
    }
    if let Some(c) = &h.closed {
        let scope = if c.complete { "all" } else { "the" };
        t.row(vec![
            "  in tables (inuse)".into(),
            num(c.inuse).into(),
            "".into(),
            "".into(),
            format!("summed over {scope} {} namespaces seen", c.netns_counted).into(),
        ]);
        if let Some(hidden) = c.orphans_unseen.filter(|n| *n > 0) {
            t.row(vec![
                "  orphans in namespaces not dumped".into(),
                cell(num(hidden), Tone::Warn),
                "".into(),
                "".into(),
                "filtered out, not enterable, or a deleted pod's namespace kept alive by its sockets".into(),
            ]);
        }
        let tone = Tone::warn_if_any(c.unhashed);
        t.row(vec![
            "  in no table (\"closed\")".into(),
            cell(num(c.unhashed), tone),
            "".into(),
            "".into(),
            "alloc - inuse - those: sockets in state CLOSE that an application holds".into(),
        ]);
        if let Some(bound) = c.bound_inactive {
            t.row(vec![
                "    bound to a port".into(),
                num(bound).into(),
                "".into(),
                "".into(),
                "BOUND-INACTIVE: bind() without listen/connect, or reset after an explicit bind"
                    .into(),
            ]);
            t.row(vec![
                "    not bound".into(),
                num(c.unhashed.saturating_sub(bound)).into(),
                "".into(),
                "".into(),
                "never used, or reset/failed after connect and still held".into(),
            ]);
        }
    }
    if let Some(f) = &h.file_nr {
        let (pct, tone) = percent(f.allocated, f.max);
        t.row(vec![
            "file handles".into(),
            num(f.allocated).into(),
            num(f.max).into(),
            cell(pct, tone),
            "fs.file-nr vs fs.file-max".into(),
        ]);
    }
    if let Some(udp) = h.sockstat.udp_mem_pages {
        let (pct, tone) = ratio(udp, h.limits.udp_mem.map(|m| m.max));
        t.row(vec![
            "UDP memory".into(),
            num(udp).into(),
            opt(h.limits.udp_mem.map(|m| m.max)),
            cell(pct, tone),
            "pages, vs udp_mem max".into(),
        ]);
    }
    out.push_str(&t.render(style));
    if let Some(c) = &h.closed {
        if let Some(ss) = c.ss_closed {
            let _ = writeln!(
                out,
                "  {}",
                style.paint(
                    Tone::Dim,
                    &format!("(`ss -s` here would print \"closed {ss}\": alloc - (inuse - tw), which adds TIME-WAIT and, inside a container, every other namespace's sockets)")
                )
            );
        }
        if !c.complete {
            let _ = writeln!(out, "  {}", style.paint(Tone::Dim, "(not every namespace was summed, so \"in no table\" also holds the sockets of the others)"));
        }
    }
    out
}

fn ratio(value: u64, limit: Option<u64>) -> (String, Tone) {
    match limit {
        Some(l) => percent(value, l),
        None => ("-".into(), Tone::Dim),
    }
}

fn opt(v: Option<u64>) -> Cell {
    match v {
        Some(v) => num(v).into(),
        None => cell("?", Tone::Dim),
    }
}

/// The states shown as columns, in this order, with their short headers (`top`'s
/// states pane uses the same).
pub(crate) const COLUMNS: [(TcpState, &str); 11] = [
    (TcpState::Established, "ESTAB"),
    (TcpState::SynSent, "SYN-SENT"),
    (TcpState::SynRecv, "SYN-RECV"),
    (TcpState::FinWait1, "FIN-WAIT-1"),
    (TcpState::FinWait2, "FIN-WAIT-2"),
    (TcpState::TimeWait, "TIME-WAIT"),
    (TcpState::CloseWait, "CLOSE-WAIT"),
    (TcpState::LastAck, "LAST-ACK"),
    (TcpState::Closing, "CLOSING"),
    (TcpState::Listen, "LISTEN"),
    (TcpState::BoundInactive, "BOUND"),
];

/// One row per namespace; a state column only when some namespace has that state.
fn netns_section(snap: &Snapshot, style: Style) -> String {
    let mut out = format!(
        "\n{}\n",
        style.paint(Tone::Bold, "TCP sockets per network namespace")
    );
    let shown: Vec<(TcpState, &str)> = COLUMNS
        .iter()
        .copied()
        .filter(|(s, _)| {
            *s == TcpState::Established || snap.netns.iter().any(|n| n.states.count(*s) > 0)
        })
        .collect();
    let mut cols: Vec<(&str, Align)> = vec![
        ("NAMESPACE", Align::Left),
        ("PROCS", Align::Right),
        ("INUSE", Align::Right),
        ("ORPHANS", Align::Right),
    ];
    cols.extend(shown.iter().map(|(_, h)| (*h, Align::Right)));
    let mut t = Table::new(&cols);
    let mut derived = false;
    for ns in &snap.netns {
        let inuse = match (ns.sockstat.tcp_inuse, ns.sockstat.tcp6_inuse) {
            (None, None) => cell("?", Tone::Dim),
            _ => num(ns.sockstat.tcp_inuse_total()).into(),
        };
        let orphans = match ns.orphans {
            Some(n) => num(n).into(),
            None => cell("?", Tone::Dim),
        };
        let mut row: Vec<Cell> = vec![
            ns_label(ns).into(),
            num(ns.processes).into(),
            inuse,
            orphans,
        ];
        for (s, _) in &shown {
            row.push(match ns.states.get(*s) {
                Some(n) if *s == TcpState::Established && ns.established_derived => {
                    derived = true;
                    format!("{}*", num(n)).into()
                }
                Some(0) => cell("0", Tone::Dim),
                Some(n) => num(n).into(),
                None => cell("?", Tone::Dim),
            });
        }
        t.row(row);
    }
    out.push_str(&t.render(style));
    if derived {
        let _ = writeln!(out, "  {}", style.paint(Tone::Dim, "* ESTABLISHED = snmp CurrEstab - CLOSE-WAIT (not dumped; `sockmedic sockets` lists them)"));
    }
    out
}

fn ns_label(ns: &Netns) -> String {
    if ns.names.len() > 1 {
        format!("{} ({})", ns.names[0], ns.names[1..].join(", "))
    } else {
        ns.name().to_string()
    }
}

/// Per-namespace limits: TIME-WAIT buckets, ephemeral ports, listeners, conntrack.
fn limits_section(snap: &Snapshot, style: Style) -> String {
    let mut out = format!("\n{}\n", style.paint(Tone::Bold, "Per-namespace limits"));
    let mut t = Table::new(&[
        ("NAMESPACE", Align::Left),
        ("TIME-WAIT", Align::Right),
        ("TW-MAX", Align::Right),
        ("USE", Align::Right),
        ("EPHEMERAL PORTS", Align::Right),
        ("RANGE", Align::Right),
        ("USE", Align::Right),
        ("FULL QUEUES", Align::Right),
        ("CONNTRACK", Align::Right),
    ]);
    let mut partial_ports = false;
    for ns in &snap.netns {
        let tw = ns.sockstat.tcp_tw;
        let tw_max = ns.sysctl_u64("net.ipv4.tcp_max_tw_buckets");
        let (tw_pct, tw_tone) = match (tw, tw_max) {
            (Some(tw), Some(max)) => percent(tw, max),
            _ => ("-".into(), Tone::Dim),
        };
        let (eph, range, eph_pct) = match &ns.ephemeral {
            Some(e) => {
                partial_ports |= !e.includes_established;
                let used = e.ports_in_use as u64 + e.bound_inactive_ports.unwrap_or(0) as u64;
                let (p, tone) = percent(used, e.size as u64);
                let mark = if e.includes_established { "" } else { "+" };
                (
                    format!("{}{mark}", num(used)),
                    format!("{}-{}", e.range[0], e.range[1]),
                    cell(p, tone),
                )
            }
            None => ("?".into(), "?".into(), cell("-", Tone::Dim)),
        };
        // The kernel's rule (sk_acceptq_is_full): full when the queue exceeds the backlog.
        let full = ns
            .listeners
            .iter()
            .filter(|l| l.accept_queue > l.backlog)
            .count();
        let full_cell = if full > 0 {
            cell(format!("{full} of {}", ns.listeners.len()), Tone::Bad)
        } else {
            format!("0 of {}", ns.listeners.len()).into()
        };
        let conntrack = match (ns.conntrack_count, snap.host.limits.nf_conntrack_max) {
            (Some(c), Some(m)) => {
                let (p, tone) = percent(c, m);
                cell(format!("{} ({p})", num(c)), tone)
            }
            (Some(c), None) => num(c).into(),
            _ => cell("-", Tone::Dim),
        };
        t.row(vec![
            ns.name().into(),
            tw.map(num).unwrap_or_else(|| "?".into()).into(),
            tw_max.map(num).unwrap_or_else(|| "?".into()).into(),
            cell(tw_pct, tw_tone),
            eph.into(),
            range.into(),
            eph_pct,
            full_cell,
            conntrack,
        ]);
    }
    out.push_str(&t.render(style));
    let _ = writeln!(
        out,
        "  {}",
        style.paint(Tone::Dim, "TIME-WAIT counts minisockets (sockstat tw, includes FIN-WAIT-2 timewait); ephemeral ports = distinct local ports of the range in use, bound-inactive included")
    );
    if partial_ports {
        let _ = writeln!(out, "  {}", style.paint(Tone::Dim, "+ ESTABLISHED connections not included (stat does not dump them); `sockmedic sockets` counts every state"));
    }
    out
}

/// The busiest socket holders, and every process near its fd limit.
fn processes_section(snap: &Snapshot, style: Style) -> String {
    if snap.processes.is_empty() {
        return String::new();
    }
    let mut rows: Vec<&sockmedic_model::Process> = snap.processes.iter().collect();
    rows.sort_by(|a, b| b.socket_fds.cmp(&a.socket_fds).then(a.pid.cmp(&b.pid)));
    let near_limit = |p: &sockmedic_model::Process| p.fd_use().is_some_and(|u| u >= 0.8);
    let mut shown: Vec<&sockmedic_model::Process> = rows.iter().take(5).copied().collect();
    for p in rows
        .iter()
        .filter(|p| near_limit(p) || p.unhashed.unwrap_or(0) > 0)
    {
        if !shown.iter().any(|s| s.pid == p.pid) {
            shown.push(p);
        }
    }
    let title = format!(
        "Processes: the top socket holders and any near its fd limit or holding CLOSE sockets ({} of {}; `sockmedic procs` for all)",
        shown.len(),
        snap.processes.len()
    );
    format!(
        "\n{}\n{}",
        style.paint(Tone::Bold, &title),
        super::procs::table(snap, &shown, style)
    )
}
