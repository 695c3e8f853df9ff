//! `sockmedic procs` as text, and the process part of `stat`.

use super::table::{cell, num, percent, Align, Cell, Style, Table, Tone};
use super::{header_line, missing_section};
use sockmedic_model::{Process, Snapshot, TcpState};
use std::fmt::Write;

/// State columns a process can hold (request socks and minisockets have no fd).
const COLUMNS: [(TcpState, &str); 10] = [
    (TcpState::Established, "ESTAB"),
    (TcpState::SynSent, "SYN-SENT"),
    (TcpState::FinWait1, "FIN-WAIT-1"),
    (TcpState::FinWait2, "FIN-WAIT-2"),
    (TcpState::CloseWait, "CLOSE-WAIT"),
    (TcpState::LastAck, "LAST-ACK"),
    (TcpState::Closing, "CLOSING"),
    (TcpState::Listen, "LISTEN"),
    (TcpState::BoundInactive, "BOUND"),
    (TcpState::Unhashed, "UNHASHED"),
];

/// The `procs` report: `rows` are the processes to show, already sorted and cut.
pub fn render(snap: &Snapshot, rows: &[&Process], total: usize, style: Style) -> String {
    let mut out = header_line("procs", snap, style);
    let _ = writeln!(
        out,
        "\n{}",
        style.paint(
            Tone::Bold,
            &format!(
                "Processes holding sockets: {} shown of {}",
                rows.len(),
                total
            )
        )
    );
    out.push_str(&table(snap, rows, style));
    out.push_str(&details(rows, style));
    out.push_str(&legend(style));
    out.push_str(&missing_section(snap, style));
    out
}

/// One row per process; a state column only when a shown process has that state.
pub fn table(snap: &Snapshot, rows: &[&Process], style: Style) -> String {
    let shown: Vec<(TcpState, &str)> = COLUMNS
        .iter()
        .copied()
        .filter(|(s, _)| rows.iter().any(|p| p.states.count(*s) > 0))
        .collect();
    let mut cols: Vec<(&str, Align)> = vec![
        ("PID", Align::Right),
        ("PROCESS", Align::Left),
        ("POD / CONTAINER", Align::Left),
        ("NETNS", Align::Left),
        ("FDS", Align::Right),
        ("LIMIT", Align::Right),
        ("USE", Align::Right),
        ("SOCKETS", Align::Right),
        ("TCP", Align::Right),
    ];
    cols.extend(shown.iter().map(|(_, h)| (*h, Align::Right)));
    let mut t = Table::new(&cols);
    for p in rows {
        let (use_pct, use_tone) = match (p.fds, p.fd_limit) {
            (Some(f), Some(l)) if l != u64::MAX => percent(f, l),
            _ => ("-".into(), Tone::Dim),
        };
        let mut row: Vec<Cell> = vec![
            p.pid.to_string().into(),
            p.comm.clone().into(),
            owner(p).into(),
            netns_name(snap, p.netns).into(),
            opt(p.fds),
            limit(p.fd_limit),
            cell(use_pct, use_tone),
            opt(p.socket_fds),
            num(tcp_total(p)).into(),
        ];
        for (s, _) in &shown {
            let n = p.states.count(*s);
            let tone = match s {
                _ if n == 0 => Tone::Dim,
                TcpState::CloseWait | TcpState::Unhashed => Tone::Warn,
                _ => Tone::Plain,
            };
            row.push(cell(num(n), tone));
        }
        t.row(row);
    }
    t.render(style)
}

/// Lines under the table for what a column cannot say: listeners with full queues,
/// what the CLOSE sockets really are, command lines.
fn details(rows: &[&Process], style: Style) -> String {
    let mut out = String::new();
    for p in rows {
        let mut notes = Vec::new();
        for l in &p.listeners {
            if l.accept_queue > l.backlog {
                notes.push(style.paint(
                    Tone::Bad,
                    &format!(
                        "listener {} accept queue full: {} waiting, backlog {}",
                        l.local, l.accept_queue, l.backlog
                    ),
                ));
            }
        }
        if let Some(c) = &p.unhashed_check {
            if c.checked > 0 {
                let mut s = format!(
                    "UNHASHED: {} confirmed in state CLOSE (pidfd_getfd + TCP_INFO)",
                    c.close
                );
                if c.in_other_netns > 0 {
                    let _ = write!(
                        s,
                        "; {} other TCP sockets live in a namespace that was not dumped",
                        c.in_other_netns
                    );
                }
                if !c.errors.is_empty() {
                    let errs: Vec<String> =
                        c.errors.iter().map(|(e, n)| format!("{e} {n}")).collect();
                    let _ = write!(s, ", failed connections never closed: {}", errs.join(", "));
                }
                notes.push(s);
            } else if let Some(why) = &c.unavailable {
                notes.push(format!("CLOSE sockets not checked: {why}"));
            }
        }
        if !p.bound_ports.is_empty() {
            let ports: Vec<String> = p.bound_ports.iter().map(u16::to_string).collect();
            notes.push(format!("BOUND: holds ports {}", ports.join(", ")));
        }
        if let Some(cmd) = p.cmdline.as_ref().filter(|c| !c.is_empty()) {
            notes.push(style.paint(Tone::Dim, cmd));
        }
        for n in notes {
            let _ = writeln!(out, "  {:>7}  {n}", p.pid);
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\n{out}")
    }
}

fn legend(style: Style) -> String {
    format!(
        "  {}\n",
        style.paint(
            Tone::Dim,
            "USE = fds / RLIMIT_NOFILE soft limit; BOUND and UNHASHED are TCP sockets in state CLOSE (bound to a port, or in no table at all)"
        )
    )
}

/// Pod (and container name) or container id, or `-`.
pub fn owner(p: &Process) -> String {
    match (&p.pod, &p.container_name, &p.container) {
        (Some(pod), Some(name), _) => format!("{pod} ({name})"),
        (Some(pod), None, _) => pod.clone(),
        (None, _, Some(id)) => id.chars().take(12).collect(),
        _ => "-".into(),
    }
}

fn netns_name(snap: &Snapshot, id: Option<u64>) -> String {
    let Some(id) = id else { return "?".into() };
    snap.netns
        .iter()
        .find(|n| n.id == id)
        .map(|n| n.name().to_string())
        .unwrap_or_else(|| id.to_string())
}

pub fn tcp_total(p: &Process) -> u64 {
    COLUMNS.iter().map(|(s, _)| p.states.count(*s)).sum()
}

fn opt(v: Option<u64>) -> Cell {
    match v {
        Some(v) => num(v).into(),
        None => cell("?", Tone::Dim),
    }
}

fn limit(v: Option<u64>) -> Cell {
    match v {
        Some(u64::MAX) => "unlimited".into(),
        v => opt(v),
    }
}
