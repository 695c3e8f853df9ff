//! `sockmedic pcap` as text: the packet shares, connections by outcome, the findings,
//! the slowest teardowns with their timelines, and the endpoints whose closes stall.

use super::table::{cell, num, Align, Style, Table, Tone};
use sockmedic_capture::{Aggregate, Connection, EventKind, Filter, Outcome, Role, Summary};
use sockmedic_model::Report;
use std::fmt::Write;

fn share(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / of as f64)
    }
}

fn ms(ns: i64) -> String {
    format!("{:.0} ms", ns.max(0) as f64 / 1e6)
}

pub fn render(report: &Report, s: &Summary, filter: &Filter, top: usize, style: Style) -> String {
    let snap = &report.snapshot;
    let mut out = String::new();
    let input = snap.source.inputs.first().cloned().unwrap_or_default();
    let _ = write!(out, "sockmedic pcap: {input}");
    if !snap.source.taken_at.is_empty() {
        let _ = write!(out, ", first packet {}", snap.source.taken_at);
    }
    if let (Some(a), Some(b)) = (s.first_ts_ns, s.last_ts_ns) {
        let _ = write!(
            out,
            ", spanning {:.1} s",
            b.saturating_sub(a).max(0) as f64 / 1e9
        );
    }
    if !filter.is_empty() {
        let mut terms: Vec<String> = filter.hosts.iter().map(|h| format!("host:{h}")).collect();
        terms.extend(filter.ports.iter().map(|p| format!("port:{p}")));
        let _ = write!(out, " (filter {})", terms.join(" "));
    }
    out.push_str("\n\n");

    let _ = writeln!(out, "{}", style.paint(Tone::Bold, "Packets"));
    let mut t = Table::new(&[
        ("", Align::Left),
        ("packets", Align::Right),
        ("share", Align::Right),
    ]);
    let mut rows: Vec<(String, u64, u64)> = [
        ("all", s.packets, s.packets),
        ("TCP", s.tcp_packets, s.packets),
        ("SYN", s.syn_packets, s.tcp_packets),
        ("SYN retransmitted", s.syn_retransmissions, s.tcp_packets),
        (
            "SYN-ACK retransmitted",
            s.syn_ack_retransmissions,
            s.tcp_packets,
        ),
        ("FIN", s.fin_packets, s.tcp_packets),
        ("FIN retransmitted", s.fin_retransmissions, s.tcp_packets),
        ("RST", s.rst_packets, s.tcp_packets),
        ("data retransmitted", s.data_retransmissions, s.tcp_packets),
        ("zero window", s.zero_windows, s.tcp_packets),
    ]
    .into_iter()
    .map(|(name, n, of)| (name.to_string(), n, of))
    .collect();
    // TCP found inside tunnels, per kind, right below all TCP.
    let inside = s
        .tunnels()
        .map(|(t, n)| (format!("  inside {}", t.label()), n, s.tcp_packets));
    rows.splice(2..2, inside);
    for (name, n, of) in rows {
        t.row(vec![
            cell(&name, Tone::Plain),
            cell(num(n), Tone::Plain),
            cell(share(n, of), Tone::Dim),
        ]);
    }
    out.push_str(&t.render(style));

    let _ = writeln!(
        out,
        "\n{}",
        style.paint(Tone::Bold, "Connections by outcome")
    );
    let mut t = Table::new(&[
        ("outcome", Align::Left),
        ("connections", Align::Right),
        ("share", Align::Right),
    ]);
    let rows = [
        (
            "closed (both FINs acknowledged)",
            s.closes_completed,
            Tone::Plain,
        ),
        ("reset", s.resets, Tone::warn_if_any(s.resets)),
        (
            "still closing at the end",
            s.closing_at_end,
            Tone::warn_if_any(s.closing_at_end),
        ),
        ("open at the end", s.open_at_end, Tone::Plain),
        (
            "SYN unanswered",
            s.syn_unanswered,
            Tone::warn_if_any(s.syn_unanswered),
        ),
    ];
    for (name, n, tone) in rows {
        t.row(vec![
            cell(name, Tone::Plain),
            cell(num(n), tone),
            cell(share(n, s.connections), Tone::Dim),
        ]);
    }
    t.row(vec![
        cell("all", Tone::Bold),
        cell(num(s.connections), Tone::Bold),
        cell("", Tone::Plain),
    ]);
    out.push_str(&t.render(style));
    if s.evicted > 0 {
        let _ = writeln!(
            out,
            "({} open connections folded early to bound memory)",
            num(s.evicted)
        );
    }

    if report.findings.is_empty() {
        let _ = writeln!(out, "\n{}", style.paint(Tone::Bold, "No finding."));
    } else {
        let _ = writeln!(out, "\n{}", style.paint(Tone::Bold, "Findings"));
        for f in &report.findings {
            out.push('\n');
            out.push_str(&super::check::finding(snap, f, false, style));
        }
    }

    let slow: Vec<_> = s
        .slowest
        .iter()
        // A teardown under a millisecond is not slow, whatever its rank.
        .filter(|c| c.teardown_ns.or(c.max_fin_wait_ns()).unwrap_or(0) >= 1_000_000)
        .take(top)
        .collect();
    if !slow.is_empty() {
        let _ = writeln!(out, "\n{}", style.paint(Tone::Bold, "Slowest teardowns"));
        for c in slow {
            out.push_str(&timeline(c, style));
        }
    }

    let stalled = s.top_stalled(top);
    out.push_str(&aggregates(
        "Server endpoints (the side that got the SYN), by FIN retransmissions",
        "server",
        stalled.iter().map(|(e, a)| (e.to_string(), *a)),
        style,
    ));
    out.push_str(&aggregates(
        "Client hosts, by FIN retransmissions",
        "client",
        s.top_clients(top)
            .into_iter()
            .map(|(h, a)| (h.to_string(), a)),
        style,
    ));
    out.push_str(&super::missing_section(snap, style));
    out
}

fn aggregates(
    title: &str,
    key: &str,
    rows: impl Iterator<Item = (String, Aggregate)>,
    style: Style,
) -> String {
    let mut t = Table::new(&[
        (key, Align::Left),
        ("conns", Align::Right),
        ("stalled", Align::Right),
        ("FIN rexmit", Align::Right),
        ("closed", Align::Right),
        ("reset", Align::Right),
        ("max FIN wait", Align::Right),
    ]);
    let mut any = false;
    for (k, a) in rows {
        any = true;
        let tone = Tone::warn_if_any(a.stalled);
        t.row(vec![
            cell(k, Tone::Plain),
            cell(num(a.connections), Tone::Plain),
            cell(num(a.stalled), tone),
            cell(num(a.fin_retransmissions), tone),
            cell(num(a.closes_completed), Tone::Plain),
            cell(num(a.resets), Tone::Plain),
            cell(ms(a.max_fin_wait_ns), Tone::Plain),
        ]);
    }
    if !any {
        return String::new();
    }
    format!("\n{}\n{}", style.paint(Tone::Bold, title), t.render(style))
}

/// One slow teardown as a timeline, the way Wireshark's "Follow TCP stream" with the
/// flags column reads: one line per event, repeated FINs folded into one line.
fn timeline(c: &Connection, style: Style) -> String {
    let took = c.teardown_ns.or(c.max_fin_wait_ns()).unwrap_or(0);
    let outcome = match c.outcome {
        Outcome::Closed => "closed",
        Outcome::Reset => "reset",
        Outcome::Closing => "still closing at the end",
        Outcome::Open => "open at the end",
        Outcome::SynUnanswered => "SYN unanswered",
    };
    let mut out = format!(
        "  {}  {} → {}  ({outcome})\n",
        style.paint(Tone::Bold, &ms(took)),
        c.client,
        c.server
    );
    let t0 = c.first_ts_ns;
    let at = |ts: i64| format!("+{:.3} s", ts.saturating_sub(t0) as f64 / 1e9);
    let who = |r: Role| match r {
        Role::Client => "client",
        Role::Server => "server",
        Role::Unknown => "",
    };
    let mut i = 0;
    while i < c.events.len() {
        let e = &c.events[i];
        let mut j = i + 1;
        while j < c.events.len() && c.events[j].kind == e.kind && c.events[j].from == e.from {
            j += 1;
        }
        let what = match e.kind {
            EventKind::Syn => "SYN",
            EventKind::SynRetransmission => "SYN retransmitted",
            EventKind::SynAck => "SYN-ACK",
            EventKind::SynAckRetransmission => "SYN-ACK retransmitted",
            EventKind::Fin => "FIN",
            EventKind::FinRetransmission => "FIN retransmitted",
            EventKind::FinAcked if e.role == Role::Server => "ACK of the client's FIN",
            EventKind::FinAcked if e.role == Role::Client => "ACK of the server's FIN",
            EventKind::FinAcked => "ACK of the other side's FIN",
            EventKind::Rst => "RST",
            EventKind::ZeroWindow => "zero window",
            EventKind::DataRetransmission => "data retransmitted",
        };
        let n = j - i;
        let when = if n > 1 {
            format!("{} … {}", at(e.ts_ns), at(c.events[j - 1].ts_ns))
        } else {
            at(e.ts_ns)
        };
        let times = if n > 1 {
            format!(" ×{n}")
        } else {
            String::new()
        };
        let tone = match e.kind {
            EventKind::FinRetransmission
            | EventKind::SynRetransmission
            | EventKind::SynAckRetransmission
            | EventKind::Rst => Tone::Warn,
            _ => Tone::Plain,
        };
        let _ = writeln!(
            out,
            "      {when:<22} {:<24} {}",
            format!("{} {}", who(e.role), e.from).trim(),
            style.paint(tone, &format!("{what}{times}"))
        );
        i = j;
    }
    if c.events_dropped > 0 {
        let _ = writeln!(out, "      (+{} later events not kept)", c.events_dropped);
    }
    out
}
