//! From a [`Summary`] to the report: the `capture` section, the findings, and the
//! `--filter` that picks the packets analysed.

use std::net::SocketAddr;

use sockmedic_diagnose::Thresholds;
use sockmedic_model::{self as model, Finding, Remedy, Severity, Subject};

use crate::summary::{Aggregate, Connection, EventKind, Role, Summary};

/// `ip:port`, `[v6]:port`, as everywhere in the report.
pub fn endpoint(a: &SocketAddr) -> String {
    a.to_string()
}

fn ms(ns: i64) -> u64 {
    u64::try_from(ns.max(0) / 1_000_000).unwrap_or(0)
}

/// The report's `capture` section, with the `top` most stalled server endpoints
/// (those without a stall are left out).
pub fn capture_section(s: &Summary, top: usize) -> model::Capture {
    model::Capture {
        packets: s.packets,
        tcp_packets: s.tcp_packets,
        syn_packets: s.syn_packets,
        fin_packets: s.fin_packets,
        rst_packets: s.rst_packets,
        fin_retransmissions: s.fin_retransmissions,
        connections: s.connections,
        closes_completed: s.closes_completed,
        syn_retransmissions: s.syn_retransmissions,
        syn_ack_retransmissions: s.syn_ack_retransmissions,
        data_retransmissions: s.data_retransmissions,
        zero_windows: s.zero_windows,
        resets: s.resets,
        syn_unanswered: s.syn_unanswered,
        closing_at_end: s.closing_at_end,
        open_at_end: s.open_at_end,
        tunneled_packets: s.tunneled_packets(),
        tunnels: s
            .tunnels()
            .map(|(t, n)| (t.name().to_string(), n))
            .collect(),
        top_stalled: s
            .top_stalled(top)
            .into_iter()
            .filter(|(_, a)| a.stalled > 0)
            .map(|(e, a)| model::StalledEndpoint {
                endpoint: endpoint(&e),
                connections: a.connections,
                fin_retransmissions: a.fin_retransmissions,
                max_fin_wait_ms: ms(a.max_fin_wait_ns),
            })
            .collect(),
    }
}

/// Findings from a capture: `teardown-stall` per server endpoint, `syn-unanswered`
/// per listener, `reset-storm` for the whole capture. Worst first.
///
/// The thresholds are the catalog's `capture.*` ones
/// (`sockmedic_diagnose::THRESHOLDS`): `capture.fin-wait-warning-ms`,
/// `capture.fin-wait-critical-ms`, `capture.syn-unanswered-min`,
/// `capture.reset-min`, `capture.reset-share`.
pub fn findings(s: &Summary, t: &Thresholds) -> Vec<Finding> {
    let fin_wait_warning = t.get("capture.fin-wait-warning-ms");
    let fin_wait_critical = t.get("capture.fin-wait-critical-ms");
    let syn_min = t.get("capture.syn-unanswered-min");
    let reset_min = t.get("capture.reset-min");
    let reset_share = t.get("capture.reset-share");
    let mut out = Vec::new();
    let remotes = s.top_stalled(usize::MAX);
    for (ep, a) in &remotes {
        let wait = ms(a.max_fin_wait_ns);
        if a.stalled == 0 || (a.fin_retransmissions == 0 && (wait as f64) < fin_wait_warning) {
            continue;
        }
        let severity = if wait as f64 >= fin_wait_critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        out.push(teardown_stall(s, ep, a, severity));
    }
    for (ep, a) in &remotes {
        // At least one: a listener whose SYNs were all answered has nothing to say.
        let worst = a.syn_unanswered.max(a.syn_ack_retransmitted);
        if worst > 0 && worst as f64 >= syn_min {
            out.push(syn_unanswered(ep, a));
        }
    }
    if s.resets > 0
        && s.resets as f64 >= reset_min
        && s.resets as f64 >= reset_share * s.connections.max(1) as f64
    {
        out.push(reset_storm(s));
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn teardown_stall(s: &Summary, ep: &SocketAddr, a: &Aggregate, severity: Severity) -> Finding {
    let wait = ms(a.max_fin_wait_ns);
    let mut evidence = vec![format!(
        "{} of {} connections with {ep} did not close cleanly: {} FIN retransmissions, longest wait from a FIN to its ACK {}",
        a.stalled,
        a.connections,
        a.fin_retransmissions,
        secs(wait)
    )];
    if let Some((role, state, n)) = a.main_stall() {
        evidence.push(match role {
            Role::Server => format!(
                "in {n} of them {ep}'s own FIN went unacknowledged: its sockets wait in {state} for peers that do not answer"
            ),
            _ => format!(
                "in {n} of them the FIN sent to {ep} went unacknowledged: the clients' sockets wait in {state} for {ep} to answer"
            ),
        });
    }
    for c in s
        .slowest
        .iter()
        .filter(|c| c.server == *ep && c.fin_stalled())
        .take(3)
    {
        evidence.push(timeline_sentence(c));
    }
    Finding {
        code: "teardown-stall".into(),
        severity,
        title: format!(
            "closes with {ep} stall: {} FIN retransmissions over {} connection{}, FIN unacknowledged for up to {}",
            a.fin_retransmissions,
            a.stalled,
            if a.stalled == 1 { "" } else { "s" },
            secs(wait)
        ),
        subject: stall_subject(ep, a),
        evidence,
        explanation: "A FIN that is not acknowledged is retransmitted with exponential backoff; \
            meanwhile the closing socket sits in FIN-WAIT-1 (or LAST-ACK / CLOSING), as an \
            orphan once the application has closed it, for up to tcp_orphan_retries \
            retransmissions. The peer or something on the path (a firewall, a NAT, a load \
            balancer that forgot the flow) is not acknowledging the close."
            .into(),
        remedy: vec![
            Remedy {
                action: format!(
                    "find why {ep} (or the path to it) does not acknowledge FINs: its state table, a firewall dropping packets of flows it forgot"
                ),
                sysctl: Default::default(),
                caveat: None,
            },
            Remedy {
                action: "bound how long orphaned closes retry".into(),
                sysctl: [("net.ipv4.tcp_orphan_retries".to_string(), "2".to_string())]
                    .into_iter()
                    .collect(),
                caveat: Some(
                    "a peer that is only slow loses the end of the stream when the socket gives up"
                        .into(),
                ),
            },
        ],
    }
}

/// The stalled closes' socket: at the endpoint itself (`local`) when its own FINs go
/// unacknowledged, at its clients (`remote` is the endpoint) when theirs do; the state is
/// where most of them wait, as `check` would find them with `ss`.
fn stall_subject(ep: &SocketAddr, a: &Aggregate) -> Subject {
    let (role, state) = a
        .main_stall()
        .map_or((Role::Client, None), |(r, s, _)| (r, Some(s.to_string())));
    let here = Some(endpoint(ep));
    Subject {
        state,
        count: Some(a.stalled),
        local: if role == Role::Server {
            here.clone()
        } else {
            None
        },
        remote: if role == Role::Server { None } else { here },
        ..Subject::default()
    }
}

/// "10.0.0.1:40300 → 10.0.0.2:8300: FIN from 10.0.0.1:40300 at +0.009 s, FIN from
/// 10.0.0.1:40300 retransmitted 5×, ACKed by 10.0.0.2:8300 at +3.352 s".
pub fn timeline_sentence(c: &Connection) -> String {
    let t0 = c.first_ts_ns;
    let at = |ts: i64| format!("+{:.3} s", ts.saturating_sub(t0) as f64 / 1e9);
    let mut parts = Vec::new();
    // Retransmissions of a FIN are told as one part, in their place among the events.
    let mut rexmit: Option<(SocketAddr, u32)> = None;
    let flush = |parts: &mut Vec<String>, rexmit: &mut Option<(SocketAddr, u32)>| {
        if let Some((from, n)) = rexmit.take() {
            parts.push(format!("FIN from {from} retransmitted {n}×"));
        }
    };
    for e in &c.events {
        if e.kind == EventKind::FinRetransmission {
            match &mut rexmit {
                Some((from, n)) if *from == e.from => *n += 1,
                _ => {
                    flush(&mut parts, &mut rexmit);
                    rexmit = Some((e.from, 1));
                }
            }
            continue;
        }
        let part = match e.kind {
            EventKind::Fin => format!("FIN from {} at {}", e.from, at(e.ts_ns)),
            EventKind::FinAcked => format!("ACKed by {} at {}", e.from, at(e.ts_ns)),
            EventKind::Rst => format!("RST from {} at {}", e.from, at(e.ts_ns)),
            _ => continue,
        };
        flush(&mut parts, &mut rexmit);
        parts.push(part);
    }
    let never_acked = rexmit.is_some();
    flush(&mut parts, &mut rexmit);
    if never_acked {
        parts.push("never ACKed".into());
    }
    format!("{} → {}: {}", c.client, c.server, parts.join(", "))
}

/// Handshakes with a listener that do not complete: SYNs never answered (the clients
/// wait in SYN-SENT), or SYN-ACKs sent again because the handshake's last ACK did not
/// arrive (the listener's request sockets wait in SYN-RECV). The subject is the
/// listener, in the state of whichever is more common.
fn syn_unanswered(ep: &SocketAddr, a: &Aggregate) -> Finding {
    let mut evidence = Vec::new();
    if a.syn_unanswered > 0 {
        evidence.push(format!(
            "{} of {} connections to {ep} got neither a SYN-ACK nor a RST in the capture",
            a.syn_unanswered, a.connections
        ));
    }
    if a.syn_ack_retransmitted > 0 {
        evidence.push(format!(
            "{ep} sent its SYN-ACK again {} times in {} of {} connections: the handshake's last ACK did not reach it",
            a.syn_ack_retransmissions, a.syn_ack_retransmitted, a.connections
        ));
    }
    let syn_recv = a.syn_ack_retransmitted > a.syn_unanswered;
    let title = if syn_recv {
        format!(
            "handshakes with {ep} do not complete: SYN-ACK retransmitted in {} of {} connections",
            a.syn_ack_retransmitted, a.connections
        )
    } else {
        format!(
            "{} of {} connections to {ep} got no answer to their SYN",
            a.syn_unanswered, a.connections
        )
    };
    Finding {
        code: "syn-unanswered".into(),
        severity: Severity::Warning,
        title,
        subject: Subject {
            local: Some(endpoint(ep)),
            state: Some(if syn_recv { "SYN-RECV" } else { "LISTEN" }.into()),
            count: Some(a.syn_unanswered.max(a.syn_ack_retransmitted)),
            ..Subject::default()
        },
        evidence,
        explanation: "A SYN without answer was dropped: the listener's SYN queue or accept \
            queue was full (ListenOverflows, ListenDrops), a firewall dropped it, or nothing \
            routes back. The client retries with backoff and holds a SYN-SENT socket and an \
            ephemeral port meanwhile. A SYN-ACK sent again means the client's final ACK of \
            the handshake did not arrive (dropped on the way, or by the listener when its \
            accept queue was full): the request waits in SYN-RECV, retried \
            tcp_synack_retries times."
            .into(),
        remedy: vec![Remedy {
            action: format!(
                "on the host of {ep}: check the listener's backlog (ss -ltn, nstat ListenOverflows, ListenDrops) and the firewall on both directions"
            ),
            sysctl: Default::default(),
            caveat: None,
        }],
    }
}

fn reset_storm(s: &Summary) -> Finding {
    let pct = s.resets * 100 / s.connections.max(1);
    Finding {
        code: "reset-storm".into(),
        severity: Severity::Warning,
        title: format!(
            "{} of {} connections ({pct}%) ended in a reset; {} RST packets",
            s.resets, s.connections, s.rst_packets
        ),
        subject: Subject {
            count: Some(s.resets),
            ..Subject::default()
        },
        evidence: vec![format!(
            "{} connections reset, {} closed with FINs, {} RST packets of {} TCP packets",
            s.resets, s.closes_completed, s.rst_packets, s.tcp_packets
        )],
        explanation: "Connections that end in RST were aborted: SO_LINGER 0 closes, a \
            process exiting with unread data, a peer answering segments of a connection it \
            no longer knows, or a middlebox timing flows out."
            .into(),
        remedy: vec![Remedy {
            action: "see which endpoints send the RSTs (the slowest teardowns' timelines) and why"
                .into(),
            sysctl: Default::default(),
            caveat: None,
        }],
    }
}
