//! `sockmedic sockets` as text: per-state, per-endpoint and per-listener tables.

use super::table::{cell, num, percent, Align, Cell, Style, Table, Tone};
use super::{header_line, missing_section};
use sockmedic_model::{EndpointCount, Netns, Snapshot};
use std::fmt::Write;

pub fn render(snap: &Snapshot, style: Style) -> String {
    let mut out = header_line("sockets", snap, style);
    let (busy, empty): (Vec<&Netns>, Vec<&Netns>) = snap
        .netns
        .iter()
        .partition(|n| n.states.iter().any(|(_, c)| c > 0) || n.dump.is_none());
    for ns in busy {
        out.push_str(&netns_block(ns, style));
    }
    if !empty.is_empty() {
        let names: Vec<&str> = empty.iter().map(|n| n.name()).collect();
        let _ = writeln!(
            out,
            "\n{}",
            style.paint(
                Tone::Dim,
                &format!(
                    "{} namespace(s) with no matching TCP sockets: {}",
                    empty.len(),
                    names.join(", ")
                )
            )
        );
    }
    out.push_str(&missing_section(snap, style));
    out
}

fn netns_block(ns: &Netns, style: Style) -> String {
    let total: u64 = ns.states.iter().map(|(_, c)| c).sum();
    let mut title = format!(
        "Network namespace {} (id {}, {} processes): {} sockets",
        ns.name(),
        ns.id,
        ns.processes,
        num(total)
    );
    if let Some(d) = &ns.dump {
        let _ = write!(
            title,
            ", {} dump{} in {:.0} ms",
            d.parts,
            if d.parts == 1 { "" } else { "s" },
            d.duration_ms
        );
    }
    let mut out = format!("\n{}\n", style.paint(Tone::Bold, &title));
    if ns.dump.is_none() {
        out.push_str("  (sockets not dumped: see \"Not seen\" below)\n");
        return out;
    }
    out.push_str(&states_table(ns, total, style));
    out.push_str(&listeners_table(ns, style));
    out.push_str(&endpoint_table(
        "Top local endpoints per state",
        "LOCAL",
        &ns.top_local,
        ns,
        style,
    ));
    out.push_str(&endpoint_table(
        "Top remote endpoints per state",
        "REMOTE",
        &ns.top_remote,
        ns,
        style,
    ));
    out.push_str(&ephemeral_block(ns, style));
    if ns.dump.as_ref().is_some_and(|d| !d.exact) {
        let _ = writeln!(
            out,
            "  {}",
            style.paint(Tone::Dim, "~ approximate: more distinct endpoints than a table keeps; ~N is an upper bound, off by at most the figure in (±)")
        );
    }
    out
}

fn states_table(ns: &Netns, total: u64, style: Style) -> String {
    let mut t = Table::new(&[
        ("STATE", Align::Left),
        ("SOCKETS", Align::Right),
        ("SHARE", Align::Right),
    ]);
    for (s, n) in ns.states.iter() {
        let (share, _) = percent(n, total);
        let count: Cell = if n == 0 {
            cell("0", Tone::Dim)
        } else {
            num(n).into()
        };
        t.row(vec![s.name().into(), count, share.into()]);
    }
    format!("\n{}", t.render(style))
}

fn listeners_table(ns: &Netns, style: Style) -> String {
    if ns.listeners.is_empty() {
        return String::new();
    }
    let mut t = Table::new(&[
        ("LISTENER", Align::Left),
        ("ACCEPT-Q", Align::Right),
        ("BACKLOG", Align::Right),
        ("SYN-RECV", Align::Right),
        ("", Align::Left),
    ]);
    for l in &ns.listeners {
        let full = l.accept_queue > l.backlog;
        let note = if full {
            cell("accept queue full", Tone::Bad)
        } else {
            "".into()
        };
        let q = if full {
            cell(num(l.accept_queue as u64), Tone::Bad)
        } else {
            num(l.accept_queue as u64).into()
        };
        t.row(vec![
            l.local.to_string().into(),
            q,
            num(l.backlog as u64).into(),
            num(l.syn_recv).into(),
            note,
        ]);
    }
    format!("\n{}", t.render(style))
}

fn endpoint_table(
    title: &str,
    col: &str,
    rows: &[EndpointCount],
    ns: &Netns,
    style: Style,
) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut t = Table::new(&[
        ("STATE", Align::Left),
        (col, Align::Left),
        ("SOCKETS", Align::Right),
        ("OF STATE", Align::Right),
    ]);
    let mut last = None;
    for r in rows {
        let of_state = ns.states.count(r.state);
        let (share, _) = percent(r.count.min(of_state), of_state);
        let state: Cell = if last == Some(r.state) {
            "".into()
        } else {
            r.state.name().into()
        };
        last = Some(r.state);
        t.row(vec![
            state,
            r.endpoint.to_string().into(),
            count_cell(r.count, r.error),
            share.into(),
        ]);
    }
    format!(
        "\n  {}\n{}",
        style.paint(Tone::Bold, title),
        t.render(style)
    )
}

fn count_cell(count: u64, error: u64) -> Cell {
    if error == 0 {
        num(count).into()
    } else {
        cell(format!("~{} (±{})", num(count), num(error)), Tone::Dim)
    }
}

fn ephemeral_block(ns: &Netns, style: Style) -> String {
    let Some(e) = &ns.ephemeral else {
        return String::new();
    };
    let mut out = format!(
        "\n  {}\n",
        style.paint(
            Tone::Bold,
            &format!(
                "Ephemeral ports (ip_local_port_range {}-{}: {} ports, {} reserved)",
                e.range[0],
                e.range[1],
                num(e.size as u64),
                e.reserved
            )
        )
    );
    let (pct, tone) = percent(e.ports_in_use as u64, e.size as u64);
    let _ = writeln!(
        out,
        "  {} ports in use ({}) by {} sockets",
        num(e.ports_in_use as u64),
        style.paint(tone, &pct),
        num(e.sockets)
    );
    if let Some(b) = e.bound_inactive_ports {
        let (pct, tone) = percent(b as u64, e.size as u64);
        let _ = writeln!(
            out,
            "  {} ports held by bound-inactive sockets ({}): taken for every destination",
            num(b as u64),
            style.paint(tone, &pct)
        );
    }
    if !e.top_remote.is_empty() {
        let mut t = Table::new(&[
            ("REMOTE", Align::Left),
            ("SOCKETS", Align::Right),
            ("OF RANGE", Align::Right),
        ]);
        for r in &e.top_remote {
            let (p, tone) = percent(r.count, e.size as u64);
            t.row(vec![
                r.endpoint.to_string().into(),
                count_cell(r.count, r.error),
                cell(p, tone),
            ]);
        }
        out.push_str(&t.render(style));
    }
    out
}
