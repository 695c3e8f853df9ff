//! `top`'s pure part on made-up cycles: what each pane shows, what each key changes,
//! and that every size from 40x10 up draws without losing the key line. The same
//! code on real cycles, in a real terminal, is tests/top.rs's.

use super::state::{Action, NsFilter, Overlay, Pane, TopState, HISTORY};
use super::view::{self, bar, sparkline, FOOTER_KEYS};
use crate::cli::ProcSort;
use crate::watch::Cycle;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use sockmedic_diagnose::Thresholds;
use sockmedic_model::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const HOST_NS: u64 = 4026531833;
const POD_NS: u64 = 4026532500;

fn netns(id: u64, name: &str, states: &[(TcpState, u64)], tw_max: u64) -> Netns {
    let mut ns = Netns {
        id,
        names: vec![name.to_string()],
        host: id == HOST_NS,
        ..Netns::default()
    };
    for (s, n) in states {
        ns.states.set(*s, *n);
    }
    ns.sockstat.tcp_tw = Some(ns.states.count(TcpState::TimeWait));
    ns.sysctl
        .insert("net.ipv4.tcp_max_tw_buckets".into(), tw_max.to_string());
    ns.conntrack_count = Some(100);
    ns
}

fn process(pid: u32, comm: &str, ns: u64, sockets: u64, fds: u64, limit: u64) -> Process {
    let mut p = Process {
        pid,
        comm: comm.into(),
        netns: Some(ns),
        fds: Some(fds),
        fd_limit: Some(limit),
        socket_fds: Some(sockets),
        ..Process::default()
    };
    p.states.set(TcpState::Established, sockets / 2);
    p
}

fn finding(code: &str, severity: Severity, netns: Option<&str>, title: &str) -> Finding {
    Finding {
        code: code.into(),
        severity,
        title: title.into(),
        subject: Subject {
            netns: netns.map(str::to_string),
            count: Some(62190),
            ..Subject::default()
        },
        evidence: vec![format!("evidence of {code}: 62190 sockets")],
        explanation: "because the kernel does so".into(),
        remedy: vec![Remedy {
            action: format!("fix {code}"),
            sysctl: BTreeMap::from([("net.ipv4.tcp_orphan_retries".into(), "3".into())]),
            caveat: Some("mind the peers".into()),
        }],
    }
}

/// A node with a LAST-ACK storm in the pod's namespace; `k` varies the counts.
fn cycle(seq: u64, k: u64) -> Arc<Cycle> {
    let mut pod = netns(
        POD_NS,
        "pod shop/proxy-7",
        &[
            (TcpState::Established, 29556 + k),
            (TcpState::LastAck, 62190 + 10 * k),
            (TcpState::CloseWait, 25),
            (TcpState::TimeWait, 4823),
            (TcpState::Listen, 3),
        ],
        5226,
    );
    pod.names.push("proxy".into());
    pod.top_local = vec![
        EndpointCount {
            state: TcpState::LastAck,
            endpoint: Endpoint::v4([10, 0, 0, 38], 51892),
            count: 62190,
            error: 0,
        },
        EndpointCount {
            state: TcpState::Listen,
            endpoint: Endpoint::v4([10, 0, 0, 38], 51892),
            count: 1,
            error: 0,
        },
    ];
    pod.top_remote = vec![EndpointCount {
        state: TcpState::Established,
        endpoint: Endpoint::v4([10, 0, 0, 9], 5432),
        count: 700,
        error: 0,
    }];
    let host = netns(
        HOST_NS,
        "host",
        &[(TcpState::Established, 12), (TcpState::Listen, 4)],
        262144,
    );
    let snap = Snapshot {
        source: Source {
            host: "node-7".into(),
            kernel: Some("6.18.0".into()),
            taken_at: "2026-11-22T06:38:12Z".into(),
            uptime_s: Some(1000.0 + 2.0 * seq as f64),
            ..Source::default()
        },
        host: Host {
            sockstat: HostSockstat {
                tcp_orphan: Some(94904),
                tcp_alloc: Some(146848),
                tcp_mem_pages: Some(200_000),
                udp_mem_pages: None,
            },
            limits: HostLimits {
                tcp_mem: Some(MemLimits {
                    min: 90_000,
                    pressure: 120_000,
                    max: 180_000,
                }),
                tcp_max_orphans: Some(131072),
                nf_conntrack_max: Some(262144),
                ..HostLimits::default()
            },
            file_nr: Some(FileNr {
                allocated: 5000,
                unused: 0,
                max: 9_223_372_036_854_775_807,
            }),
            page_size: 4096,
            ..Host::default()
        },
        netns: vec![host, pod],
        processes: vec![
            process(4242, "nginx", POD_NS, 90000, 90100, 100_000),
            process(77, "sshd", HOST_NS, 3, 10, 1024),
            process(4300, "envoy", POD_NS, 500, 60000, 65536),
        ],
        ..Snapshot::default()
    };
    let findings = vec![
        finding(
            "orphan-pressure",
            Severity::Critical,
            Some("pod shop/proxy-7"),
            "94904 orphaned sockets, 72.4% of tcp_max_orphans 131072",
        ),
        finding(
            "teardown-stall",
            Severity::Warning,
            Some("pod shop/proxy-7"),
            "62190 of 67128 LAST-ACK sockets are on local 10.0.0.38:51892",
        ),
        finding(
            "risky-sysctl",
            Severity::Info,
            Some("host"),
            "somaxconn is 128",
        ),
    ];
    let mut report = Report::new(snap, findings);
    report.rates = (seq > 1).then(|| Rates {
        interval_s: 2.0,
        netns: BTreeMap::from([(
            POD_NS,
            BTreeMap::from([(
                "TcpExt".to_string(),
                BTreeMap::from([("TCPTimeWaitOverflow".to_string(), 5.0)]),
            )]),
        )]),
    });
    Arc::new(Cycle {
        seq,
        report,
        started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 2 * seq),
        duration: Duration::from_millis(210),
    })
}

fn state_with(cycles: u64) -> TopState {
    let mut s = TopState::new(
        ProcSort::Sockets,
        Duration::from_secs(2),
        Thresholds::default(),
        false,
        true,
    );
    for i in 1..=cycles {
        s.ingest(cycle(i, i));
    }
    s
}

fn screen(state: &TopState, w: u16, h: u16) -> String {
    let mut s = state.clone();
    s.size = (w, h);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::render(f, &s)).unwrap();
    view::buffer_text(t.backend().buffer())
}

fn key(s: &mut TopState, code: KeyCode) -> Action {
    s.key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn chars(s: &mut TopState, text: &str) {
    for c in text.chars() {
        key(s, KeyCode::Char(c));
    }
}

/// The line of the screen that starts (after spaces) with `start`.
fn line_starting<'a>(screen: &'a str, start: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with {start:?} in\n{screen}"))
}

/// The right column's part of the line holding `what` (after the `│` rule).
fn right_part<'a>(screen: &'a str, what: &str) -> &'a str {
    let line = screen
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line holds {what:?} in\n{screen}"));
    line.rsplit('│').next().unwrap().trim()
}

const KEY_LINE: &str =
    "q quit p pause s sort n netns / find +/- interval tab pane enter details ? help";

#[test]
fn an_80x24_screen_has_every_pane_and_the_whole_key_line() {
    let s = state_with(3);
    let text = screen(&s, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 24, "{text}");
    assert_eq!(lines[23], KEY_LINE, "{text}");
    for (k, what) in FOOTER_KEYS {
        assert!(lines[23].contains(&format!("{k} {what}")), "{k}: {text}");
    }
    assert!(lines[0].starts_with("sockmedic top  node-7"), "{text}");
    for pane in [
        "Host-wide limits",
        "TCP states · all 2 namespaces",
        "Top local endpoints",
        "Processes by sockets",
        "Findings (3;",
    ] {
        assert!(text.contains(pane), "{pane} missing:\n{text}");
    }
    // Gauges: figures against limits, the orphan penalty, tcp_mem pressure.
    let orphans = line_starting(&text, "orphans");
    assert!(orphans.contains("94,904 / 131,072"), "{orphans}");
    assert!(orphans.contains("72.4%"), "{orphans}");
    assert!(
        orphans.contains("×2 145%") && orphans.contains("×4 290%"),
        "{orphans}"
    );
    let tw = line_starting(&text, "tw buckets");
    assert!(tw.contains("4,823 / 5,226") && tw.contains("92.3%"), "{tw}");
    let mem = line_starting(&text, "TCP memory");
    assert!(mem.contains("200,000 / 180,000 pg"), "{mem}");
    assert!(
        line_starting(&text, "files").contains("5,000 / 9.2E"),
        "{text}"
    );
    assert!(line_starting(&text, "conntrack").contains("100 / 262,144"));
    // States summed over both namespaces, with rates per second (k grows by 1 a
    // cycle of 2 s: +0.5/s for ESTABLISHED, +5/s for LAST-ACK).
    let words = |start: &str| -> Vec<String> {
        line_starting(&text, start)
            .split_whitespace()
            .take(3)
            .map(str::to_string)
            .collect()
    };
    assert_eq!(words("LAST-ACK"), ["LAST-ACK", "62,220", "+5.0"]);
    assert_eq!(words("ESTAB "), ["ESTAB", "29,571", "+0.5"]);
    // Endpoints: LISTEN rows are left out.
    assert!(text.contains("LAST-ACK   10.0.0.38:51892"), "{text}");
    assert!(!text.contains("LISTEN     10.0.0.38"), "{text}");
    // Processes by sockets: nginx first, with its fds against its limit.
    let nginx = right_part(&text, "4242 nginx");
    assert!(nginx.starts_with("4242 nginx      90,000"), "{nginx}");
    assert!(nginx.contains("90100/100k"), "{nginx}");
    assert!(nginx.contains("90.1%"), "{nginx}");
    // Findings, most severe first.
    let crit = line_starting(&text, "CRIT");
    assert!(crit.contains("orphan-pressure") && crit.contains("94904 orphaned"));
    assert!(line_starting(&text, "WARN").contains("teardown-stall"));
}

#[test]
fn every_size_draws_and_keeps_the_key_line() {
    let s = state_with(2);
    for (w, h) in [
        (40, 10),
        (50, 14),
        (69, 19),
        (70, 20),
        (80, 24),
        (100, 30),
        (132, 43),
        (200, 60),
    ] {
        let text = screen(&s, w, h);
        let last = text.lines().last().unwrap();
        assert!(last.starts_with("q quit"), "{w}x{h}: {last}");
        assert!(last.ends_with("? help"), "{w}x{h}: {last}");
        assert!(text.contains("Findings"), "{w}x{h}:\n{text}");
        assert!(text.contains("TCP states"), "{w}x{h}:\n{text}");
        if h >= 15 {
            assert!(text.contains("orphans"), "{w}x{h}:\n{text}");
        }
        if w >= 70 && h >= 20 {
            assert!(text.contains("Top local endpoints"), "{w}x{h}:\n{text}");
        }
        // Tab visits exactly the panes on screen.
        let mut st = s.clone();
        st.size = (w, h);
        let panes = st.visible_panes();
        let mut seen = Vec::new();
        for _ in 0..panes.len() {
            key(&mut st, KeyCode::Tab);
            seen.push(st.view.focus);
        }
        seen.sort_by_key(|p| *p as usize);
        assert_eq!(seen, panes, "{w}x{h}");
    }
    let tiny = screen(&s, 30, 8);
    assert!(tiny.contains("terminal too small"), "{tiny}");
}

#[test]
fn pause_freezes_the_screen_until_resumed() {
    let mut s = state_with(2);
    assert_eq!(key(&mut s, KeyCode::Char('p')), Action::Redraw);
    assert!(s.view.paused);
    let text = screen(&s, 80, 24);
    assert!(text.lines().next().unwrap().ends_with("PAUSED"), "{text}");
    assert_eq!(key(&mut s, KeyCode::Char(' ')), Action::Redraw);
    assert!(!s.view.paused);
    assert!(!screen(&s, 80, 24).contains("PAUSED"));
}

#[test]
fn sort_keys_cycle_and_reorder_the_processes() {
    let mut s = state_with(1);
    let first = |s: &TopState| s.process_rows()[0].name.clone();
    assert_eq!(first(&s), "nginx");
    // s: sockets -> tcp -> fds -> fd-use -> unhashed -> close-wait -> established -> pid.
    let mut seen = vec![];
    for _ in 0..8 {
        key(&mut s, KeyCode::Char('s'));
        seen.push(super::state::sort_name(s.view.sort));
        let text = screen(&s, 100, 30);
        let title = format!("by {}", seen.last().unwrap().replace('-', " "));
        assert!(text.contains(&title), "{title}:\n{text}");
    }
    assert_eq!(
        seen,
        [
            "tcp",
            "fds",
            "fd-use",
            "unhashed",
            "close-wait",
            "established",
            "pid",
            "sockets"
        ]
    );
    // fd-use puts envoy (60000 of 65536: 91.6%) above nginx (90.1%).
    s.view.sort = ProcSort::FdUse;
    assert_eq!(first(&s), "envoy");
    let text = screen(&s, 80, 24);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("envoy") || l.contains("nginx"))
        .collect();
    assert!(rows[0].contains("envoy"), "{text}");
    s.view.sort = ProcSort::Pid;
    assert_eq!(first(&s), "sshd");
    key(&mut s, KeyCode::Char('S'));
    assert_eq!(s.view.sort, ProcSort::Established);
}

#[test]
fn the_namespace_filter_cycles_and_finds_by_name() {
    let mut s = state_with(2);
    key(&mut s, KeyCode::Char('n'));
    assert_eq!(s.view.netns, NsFilter::One(HOST_NS));
    let text = screen(&s, 80, 24);
    assert!(text.contains("TCP states · ns host"), "{text}");
    assert!(line_starting(&text, "ESTAB ").contains(" 12 "), "{text}");
    assert!(
        !text.contains("LAST-ACK  "),
        "host has no LAST-ACK:\n{text}"
    );
    // Only the host's findings: risky-sysctl (netns host).
    assert!(text.contains("Findings (1 of 3;"), "{text}");
    assert!(text.contains("sshd") && !text.contains("nginx"), "{text}");

    key(&mut s, KeyCode::Char('n'));
    assert_eq!(s.view.netns, NsFilter::One(POD_NS));
    let text = screen(&s, 80, 24);
    assert!(text.contains("TCP states · ns pod shop/proxy-7"), "{text}");
    assert!(text.contains("Findings (2 of 3;"), "{text}");
    key(&mut s, KeyCode::Char('n'));
    assert_eq!(s.view.netns, NsFilter::All);
    key(&mut s, KeyCode::Char('N'));
    assert_eq!(s.view.netns, NsFilter::One(POD_NS));

    // `/` and a name: exact names, the pod without `pod `, a part, an id.
    for (typed, want) in [
        ("host", NsFilter::One(HOST_NS)),
        ("shop/proxy-7", NsFilter::One(POD_NS)),
        ("prox", NsFilter::One(POD_NS)),
        (&HOST_NS.to_string(), NsFilter::One(HOST_NS)),
        ("", NsFilter::All),
    ] {
        key(&mut s, KeyCode::Char('/'));
        assert!(s.view.prompt.is_some());
        // Keys are typed, not obeyed, while the prompt is open.
        chars(&mut s, typed);
        assert!(!s.view.paused);
        let text = screen(&s, 80, 24);
        assert!(
            text.lines()
                .last()
                .unwrap()
                .contains(&format!("netns  {typed}_")),
            "{text}"
        );
        key(&mut s, KeyCode::Enter);
        assert_eq!(s.view.netns, want, "/{typed}");
        assert!(s.view.prompt.is_none());
    }
    key(&mut s, KeyCode::Char('/'));
    chars(&mut s, "nope");
    key(&mut s, KeyCode::Enter);
    assert_eq!(s.view.netns, NsFilter::All);
    let text = screen(&s, 80, 24);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("no namespace matches \"nope\""),
        "{text}"
    );
    // Esc in the prompt cancels it and does not quit.
    key(&mut s, KeyCode::Char('/'));
    assert_eq!(key(&mut s, KeyCode::Esc), Action::Redraw);
    assert!(s.view.prompt.is_none());
}

#[test]
fn enter_shows_the_selected_finding_and_esc_goes_back() {
    let mut s = state_with(2);
    assert_eq!(s.view.focus, Pane::Findings);
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Enter);
    assert!(matches!(&s.view.overlay, Overlay::Finding { code, .. } if code == "teardown-stall"));
    let text = screen(&s, 100, 40);
    for want in [
        "teardown-stall 62190 of 67128 LAST-ACK",
        "severity: warning",
        "subject: netns pod shop/proxy-7, count 62190",
        "evidence of teardown-stall: 62190 sockets",
        "why:",
        "because the kernel does so",
        "- fix teardown-stall",
        "sysctl -w net.ipv4.tcp_orphan_retries=3",
        "caveat: mind the peers",
        "more: sockmedic explain teardown-stall",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    assert_eq!(key(&mut s, KeyCode::Esc), Action::Redraw);
    assert_eq!(s.view.overlay, Overlay::None);
    // Esc with nothing open quits; so does q from an overlay.
    assert_eq!(key(&mut s, KeyCode::Esc), Action::Quit);
    key(&mut s, KeyCode::Char('?'));
    assert!(screen(&s, 80, 24).contains("keys and legend"));
    assert_eq!(key(&mut s, KeyCode::Char('q')), Action::Quit);
    assert_eq!(
        s.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
}

#[test]
fn plus_and_minus_step_the_interval() {
    let mut s = state_with(1);
    assert_eq!(
        key(&mut s, KeyCode::Char('+')),
        Action::Interval(Duration::from_secs(3))
    );
    assert_eq!(
        key(&mut s, KeyCode::Char('-')),
        Action::Interval(Duration::from_secs(2))
    );
    for _ in 0..3 {
        key(&mut s, KeyCode::Char('-'));
    }
    assert_eq!(s.view.interval, Duration::from_millis(500));
    assert_eq!(key(&mut s, KeyCode::Char('-')), Action::Redraw);
    assert!(screen(&s, 80, 24).contains("every 500ms"));
}

#[test]
fn endpoints_toggle_and_processes_group_by_pod() {
    let mut s = state_with(1);
    key(&mut s, KeyCode::Char('e'));
    let text = screen(&s, 80, 24);
    assert!(text.contains("Top remote endpoints"), "{text}");
    assert!(text.contains("ESTAB      10.0.0.9:5432"), "{text}");
    for p in &mut Arc::get_mut(s.current.as_mut().unwrap())
        .unwrap()
        .report
        .snapshot
        .processes
    {
        if p.netns == Some(POD_NS) {
            p.pod = Some("shop/proxy-7".into());
        }
    }
    key(&mut s, KeyCode::Char('g'));
    let rows = s.process_rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].key, "shop/proxy-7");
    assert_eq!(rows[0].name, "2 procs");
    assert_eq!(rows[0].sockets, 90500);
    // The group's fd use is its most used process's.
    assert_eq!(rows[0].fd_limit, Some(65536));
    assert!(screen(&s, 100, 30).contains("Pods/containers by sockets"));
}

#[test]
fn history_is_bounded_and_drawn_as_sparklines() {
    let s = state_with(HISTORY as u64 + 30);
    let rows = s.state_rows();
    let estab = rows
        .iter()
        .find(|r| r.state == TcpState::Established)
        .unwrap();
    assert_eq!(estab.history.len(), HISTORY);
    assert_eq!(*estab.history.last().unwrap(), estab.count);
    assert_eq!(s.history_span(HISTORY), Some(2.0 * (HISTORY - 1) as f64));
    // 100 columns: sparklines 16 cycles (30 s) long; 200: 61 (2 minutes).
    let text = screen(&s, 100, 30);
    assert!(text.contains("last 30s"), "{text}");
    let text = screen(&s, 200, 30);
    assert!(text.contains("last 2m"), "{text}");
}

#[test]
fn bars_and_sparklines() {
    assert_eq!(bar(Some(0.5), &[], 4), ("██".into(), "░░".into()));
    assert_eq!(
        bar(Some(0.0), &[0.25, 0.5], 8),
        ("".into(), "░░|░|░░░".into())
    );
    assert_eq!(bar(Some(2.0), &[], 3), ("███".into(), "".into()));
    assert_eq!(bar(Some(0.0625), &[], 4), ("▎".into(), "░░░".into()));
    assert_eq!(bar(None, &[], 3), ("".into(), "···".into()));
    assert_eq!(sparkline(&[0, 1, 4, 8]), " ▂▅█");
    assert_eq!(sparkline(&[0, 0]), "  ");
    // A steady 29,558 +-100 stays flat; 62,190 -> 63,690 rises.
    assert_eq!(sparkline(&[29_558, 29_658, 29_458]), "███");
    assert_eq!(sparkline(&[62_190, 62_940, 63_690]), "▆▇█");
    assert_eq!(sparkline(&[5, 5]), "██");
    assert_eq!(super::state::compact(9_223_372_036_854_775_807), "9.2E");
    assert_eq!(super::state::compact(131_072), "131,072");
    assert_eq!(super::state::pct(2.9), "290%");
    assert_eq!(super::state::pct(0.724), "72.4%");
    assert_eq!(view::rate_words(-0.01), "0");
    assert_eq!(view::rate_words(1234.4), "+1,234");
}

#[test]
fn without_a_cycle_it_says_it_is_waiting() {
    let s = TopState::new(
        ProcSort::Sockets,
        Duration::from_secs(2),
        Thresholds::default(),
        true,
        true,
    );
    let text = screen(&s, 80, 24);
    assert!(text.contains("waiting for the first collection"), "{text}");
    assert_eq!(text.lines().last().unwrap(), KEY_LINE);
}
