//! The rules on Snapshots shaped like the incidents: code, severity, subject,
//! thresholds and remedy values.

use crate::testkit::*;
use crate::{diagnose, Thresholds};
use sockmedic_model::*;

fn run(snap: &Snapshot) -> Vec<Finding> {
    diagnose(snap, None, &Thresholds::default()).findings
}

fn with_code<'a>(f: &'a [Finding], code: &str) -> Vec<&'a Finding> {
    f.iter().filter(|x| x.code == code).collect()
}

fn one<'a>(f: &'a [Finding], code: &str) -> &'a Finding {
    let v = with_code(f, code);
    assert_eq!(
        v.len(),
        1,
        "{code}: {:#?}",
        f.iter().map(|x| (&x.code, &x.title)).collect::<Vec<_>>()
    );
    v[0]
}

fn sysctl_of(f: &Finding, name: &str) -> Option<String> {
    f.remedy.iter().find_map(|r| r.sysctl.get(name).cloned())
}

#[test]
fn healthy_host_has_no_finding() {
    let d = diagnose(&healthy(), None, &Thresholds::default());
    assert!(
        d.findings.iter().all(|f| f.severity == Severity::Info),
        "{:#?}",
        d.findings
    );
    // No kernel log in the snapshot: kernel-log says why it was skipped.
    assert!(d.skipped.iter().any(|s| s.code == "kernel-log"));
}

/// Incident 1: 94904 orphans of 131072, 67128 LAST-ACK, 62190 on one listener.
fn incident1() -> Snapshot {
    let mut s = healthy();
    s.host.sockstat.tcp_orphan = Some(94_904);
    let ns = &mut s.netns[0];
    ns.states.set(TcpState::LastAck, 67_128);
    ns.states.set(TcpState::FinWait1, 12_317);
    ns.states.set(TcpState::FinWait2, 11_712);
    ns.orphans = Some(94_904);
    ns.top_local
        .push(top(TcpState::LastAck, "10.0.0.38:51892", 62_190));
    ns.top_remote
        .push(top(TcpState::LastAck, "100.64.1.9:40001", 12));
    ns.listeners.push(Listener {
        local: ep("10.0.0.38:51892"),
        accept_queue: 0,
        backlog: 511,
        syn_recv: 0,
        inode: 77,
        uid: 0,
    });
    s.processes[0].listeners.push(ns.listeners[1].clone());
    s
}

#[test]
fn incident1_orphans_and_last_ack_on_one_listener() {
    let f = run(&incident1());
    let o = one(&f, "orphan-pressure");
    assert_eq!(o.severity, Severity::Critical);
    assert_eq!(
        (o.subject.count, o.subject.limit),
        (Some(94_904), Some(131_072))
    );
    assert_eq!(o.subject.netns.as_deref(), Some("host"));
    assert_eq!(o.subject.state.as_deref(), Some("LAST-ACK"));
    // 4 × 94904 = 379616 → the next power of two.
    assert_eq!(
        sysctl_of(o, "net.ipv4.tcp_max_orphans").as_deref(),
        Some("524288")
    );
    assert_eq!(
        sysctl_of(o, "net.ipv4.tcp_orphan_retries").as_deref(),
        Some("3")
    );
    assert!(o
        .remedy
        .iter()
        .any(|r| r.action.starts_with("Will not help") && r.action.contains("tcp_fin_timeout")));

    let stalls = with_code(&f, "teardown-stall");
    let la = stalls
        .iter()
        .find(|x| x.subject.state.as_deref() == Some("LAST-ACK"))
        .unwrap();
    assert_eq!(la.severity, Severity::Critical);
    assert_eq!(la.subject.local.as_deref(), Some("10.0.0.38:51892"));
    assert_eq!(la.subject.count, Some(62_190));
    assert_eq!(
        (la.subject.pid, la.subject.process.as_deref()),
        (Some(100), Some("nginx"))
    );
    assert!(
        la.evidence.iter().any(|e| e.contains("92.6%")),
        "{:#?}",
        la.evidence
    );
    // FIN-WAIT-1 12317 has no endpoint over the share: named as spread, still a finding.
    let fw1 = stalls
        .iter()
        .find(|x| x.subject.state.as_deref() == Some("FIN-WAIT-1"))
        .unwrap();
    assert_eq!(
        (fw1.subject.local.as_ref(), fw1.subject.remote.as_ref()),
        (None, None)
    );
    // Findings come most severe first.
    assert!(f.windows(2).all(|w| w[0].severity >= w[1].severity));
}

#[test]
fn orphan_penalty_thresholds() {
    let at = |orphans: u64| {
        let mut s = healthy();
        s.host.sockstat.tcp_orphan = Some(orphans);
        s.host.limits.tcp_max_orphans = Some(1000);
        with_code(&run(&s), "orphan-pressure")
            .first()
            .map(|f| f.severity)
    };
    assert_eq!(at(249), None);
    assert_eq!(at(250), Some(Severity::Warning)); // 4 × 250 = the limit
    assert_eq!(at(499), Some(Severity::Warning));
    assert_eq!(at(500), Some(Severity::Critical)); // 2 × 500
    let mut t = Thresholds::default();
    t.set("orphans.warning", 0.1).unwrap();
    let mut s = healthy();
    s.host.sockstat.tcp_orphan = Some(100);
    s.host.limits.tcp_max_orphans = Some(1000);
    assert_eq!(
        one(&diagnose(&s, None, &t).findings, "orphan-pressure").severity,
        Severity::Warning
    );
}

#[test]
fn orphan_message_without_pressure_now() {
    let mut s = healthy();
    s.kernel_log = Some(KernelLog {
        source: "/dev/kmsg".into(),
        read_uptime_s: Some(10_000.0),
        messages: vec![KernelMessage {
            kind: LogKind::TooManyOrphans,
            count: 3,
            first: None,
            last: None,
            first_uptime_s: Some(9_000.0),
            last_uptime_s: Some(9_500.0),
            detail: None,
            sample: "TCP: too many orphaned sockets".into(),
        }],
        ..KernelLog::default()
    });
    let d = diagnose(&s, None, &Thresholds::default());
    let o = one(&d.findings, "orphan-pressure");
    assert_eq!(o.severity, Severity::Warning);
    assert!(o
        .evidence
        .iter()
        .any(|e| e.contains("too many orphaned sockets") && e.contains("×3")));
    // Explained by orphan-pressure, so not repeated as kernel-log.
    assert!(with_code(&d.findings, "kernel-log").is_empty());
    // An hour later (kernel-log.recent) it is only info.
    let mut old = s.clone();
    old.kernel_log.as_mut().unwrap().read_uptime_s = Some(9_500.0 + 3_601.0);
    assert_eq!(one(&run(&old), "orphan-pressure").severity, Severity::Info);
}

#[test]
fn incident2_fin_wait_1_towards_one_remote() {
    let mut s = healthy();
    s.host.sockstat.tcp_orphan = Some(65_506);
    s.host.limits.tcp_max_orphans = Some(65_536);
    let ns = &mut s.netns[0];
    ns.states.set(TcpState::FinWait1, 120_000);
    ns.top_remote
        .push(top(TcpState::FinWait1, "198.51.100.7:443", 90_000));
    for i in 0..10 {
        ns.top_local.push(top(
            TcpState::FinWait1,
            &format!("10.0.0.2:{}", 40000 + i),
            1,
        ));
    }
    let f = run(&s);
    let st = one(&f, "teardown-stall");
    assert_eq!(st.severity, Severity::Critical);
    assert_eq!(st.subject.state.as_deref(), Some("FIN-WAIT-1"));
    assert_eq!(st.subject.remote.as_deref(), Some("198.51.100.7:443"));
    assert_eq!(st.subject.count, Some(90_000));
    assert_eq!(one(&f, "orphan-pressure").severity, Severity::Critical);
}

#[test]
fn teardown_threshold_and_share() {
    let mk = |n: u64, on_one: u64| {
        let mut s = healthy();
        s.netns[0].states.set(TcpState::LastAck, n);
        s.netns[0]
            .top_local
            .push(top(TcpState::LastAck, "10.0.0.1:443", on_one));
        s
    };
    assert!(with_code(&run(&mk(99, 99)), "teardown-stall").is_empty());
    let f = run(&mk(100, 50));
    let st = one(&f, "teardown-stall");
    assert_eq!(st.severity, Severity::Warning);
    assert_eq!(st.subject.local.as_deref(), Some("10.0.0.1:443")); // exactly the 0.5 share
    let f = run(&mk(100, 49));
    assert_eq!(one(&f, "teardown-stall").subject.local, None);
}

/// Incident 3: 40940 closed sockets, 12000 ports of 50000-62000 bound.
fn incident3() -> Snapshot {
    let mut s = healthy();
    s.host.sockstat.tcp_alloc = Some(41_019);
    s.host.closed = Some(Closed {
        alloc: 41_019,
        inuse: 81,
        unhashed: 40_938,
        complete: true,
        netns_counted: 1,
        ss_closed: Some(40_944),
        ..Closed::default()
    });
    let ns = &mut s.netns[0];
    ns.sysctl
        .insert("net.ipv4.ip_local_port_range".into(), "50000\t62000".into());
    ns.ephemeral = Some(EphemeralUse {
        range: [50000, 62000],
        size: 12_001,
        sockets: 70,
        ports_in_use: 70,
        bound_inactive_ports: Some(11_931),
        includes_established: true,
        ..EphemeralUse::default()
    });
    ns.states.set(TcpState::BoundInactive, 12_000);
    let mut p = process(4242, "bizd", ns.id);
    p.fds = Some(41_000);
    p.fd_limit = Some(65_536);
    p.states.set(TcpState::BoundInactive, 12_000);
    p.states.set(TcpState::Unhashed, 28_940);
    p.states.set(TcpState::Established, 3);
    p.unhashed = Some(40_940);
    p.bound_ports = vec![50000, 50002];
    s.processes.push(p);
    s
}

#[test]
fn incident3_port_exhaustion_and_socket_leak() {
    let f = run(&incident3());
    let pe = one(&f, "port-exhaustion");
    assert_eq!(pe.severity, Severity::Critical);
    assert_eq!(
        (pe.subject.count, pe.subject.limit),
        (Some(12_001), Some(12_001))
    );
    assert_eq!(
        (pe.subject.pid, pe.subject.process.as_deref()),
        (Some(4242), Some("bizd"))
    );
    assert!(pe.title.contains("EADDRNOTAVAIL"));
    // 2 × 12001 used = 24002 fit in the default range (28232 ports): propose it, as
    // risky-sysctl does for a narrow range.
    assert_eq!(
        sysctl_of(pe, "net.ipv4.ip_local_port_range").as_deref(),
        Some("32768 60999")
    );
    let narrow = with_code(&f, "risky-sysctl")
        .into_iter()
        .find(|r| r.title.contains("12001 ephemeral ports"))
        .unwrap();
    assert_eq!(
        sysctl_of(narrow, "net.ipv4.ip_local_port_range").as_deref(),
        Some("32768 60999")
    );
    assert!(
        narrow.evidence[0].contains("50000 62000"),
        "tab normalised: {:?}",
        narrow.evidence
    );
    let sl = with_code(&f, "socket-leak");
    assert_eq!(
        sl.len(),
        1,
        "the process accounts for nearly all: no unattributed finding"
    );
    assert_eq!(sl[0].severity, Severity::Critical);
    assert_eq!(
        (sl[0].subject.pid, sl[0].subject.count),
        (Some(4242), Some(40_940))
    );
    assert_eq!(sl[0].subject.state.as_deref(), Some("UNHASHED"));
    assert!(sl[0].evidence.iter().any(|e| e.contains("closed 40944")));
    // A narrow range is also a risky setting.
    assert!(with_code(&f, "risky-sysctl")
        .iter()
        .any(|r| r.title.contains("12001 ephemeral ports")));
}

#[test]
fn port_range_widening_reserves_listeners() {
    let mut s = incident3();
    s.netns[0].listeners.push(Listener {
        local: ep("0.0.0.0:40000"),
        accept_queue: 0,
        backlog: 10,
        syn_recv: 0,
        inode: 5,
        uid: 0,
    });
    let pe = run(&s)
        .into_iter()
        .find(|f| f.code == "port-exhaustion")
        .unwrap();
    assert_eq!(
        sysctl_of(&pe, "net.ipv4.ip_local_reserved_ports").as_deref(),
        Some("40000")
    );
}

#[test]
fn port_range_beyond_the_default() {
    let mut s = incident3();
    let e = s.netns[0].ephemeral.as_mut().unwrap();
    e.range = [32768, 60999];
    e.size = 28232;
    e.ports_in_use = 26_000;
    e.bound_inactive_ports = Some(0);
    let pe = run(&s)
        .into_iter()
        .find(|f| f.code == "port-exhaustion")
        .unwrap();
    // 2 × 26000 = 52000 ports ending at 65535, even start.
    assert_eq!(
        sysctl_of(&pe, "net.ipv4.ip_local_port_range").as_deref(),
        Some("13536 65535")
    );
}

#[test]
fn close_wait_of_clients_names_the_remote() {
    let mut s = healthy();
    s.netns[0].states.set(TcpState::CloseWait, 30);
    s.processes[0].states.set(TcpState::CloseWait, 30);
    s.netns[0]
        .top_local
        .push(top(TcpState::CloseWait, "127.0.0.1:40014", 1));
    s.netns[0]
        .top_remote
        .push(top(TcpState::CloseWait, "127.0.0.1:8080", 30));
    let cw = run(&s)
        .into_iter()
        .find(|f| f.code == "close-wait-leak")
        .unwrap();
    assert_eq!(
        (cw.subject.local.as_deref(), cw.subject.remote.as_deref()),
        (None, Some("127.0.0.1:8080"))
    );
}

#[test]
fn port_exhaustion_per_destination() {
    let mut s = healthy();
    let e = s.netns[0].ephemeral.as_mut().unwrap();
    e.top_remote.push(RemoteCount {
        endpoint: ep("10.1.1.1:3306"),
        count: 26_000,
        error: 0,
    });
    e.ports_in_use = 26_000;
    let pe = run(&s)
        .into_iter()
        .find(|f| f.code == "port-exhaustion")
        .unwrap();
    assert_eq!(pe.severity, Severity::Critical);
    assert_eq!(pe.subject.remote.as_deref(), Some("10.1.1.1:3306"));
}

/// Incident 4: Tomcat at 1024 of 1024 fds, a full accept queue, the audit.
fn incident4() -> Snapshot {
    let mut s = healthy();
    let ns = &mut s.netns[0];
    for (k, v) in [
        ("net.ipv4.tcp_tw_recycle", "1"),
        ("net.ipv4.tcp_max_tw_buckets", "5000"),
        ("net.core.somaxconn", "128"),
        ("net.ipv4.tcp_synack_retries", "0"),
    ] {
        ns.sysctl.insert(k.into(), v.into());
    }
    let l = Listener {
        local: ep("0.0.0.0:8080"),
        accept_queue: 101,
        backlog: 100,
        syn_recv: 60,
        inode: 9,
        uid: 0,
    };
    ns.listeners.push(l.clone());
    let mut p = process(777, "java", ns.id);
    p.fds = Some(1024);
    p.listeners.push(l);
    s.processes.push(p);
    s
}

#[test]
fn incident4_fds_accept_queue_syn_and_audit() {
    let mut prev = incident4();
    counter(&mut prev, "ListenOverflows", 1000);
    let mut now = prev.clone();
    now.source.uptime_s = Some(10_002.0);
    counter(&mut now, "ListenOverflows", 1050);
    let d = diagnose(&now, Some(&prev), &Thresholds::default());
    let f = &d.findings;
    assert_eq!(
        d.rates
            .as_ref()
            .unwrap()
            .get(now.netns[0].id, "TcpExt", "ListenOverflows"),
        Some(25.0)
    );
    let fd = one(f, "fd-exhaustion");
    assert_eq!(
        (
            fd.severity,
            fd.subject.pid,
            fd.subject.count,
            fd.subject.limit
        ),
        (Severity::Critical, Some(777), Some(1024), Some(1024))
    );
    assert!(fd
        .remedy
        .iter()
        .any(|r| r.action.contains("LimitNOFILE=65536")));
    assert!(fd
        .remedy
        .iter()
        .any(|r| r.action.contains("prlimit --pid 777")));
    let aq = one(f, "accept-queue-overflow");
    assert_eq!(
        (aq.severity, aq.subject.local.as_deref(), aq.subject.pid),
        (Severity::Critical, Some("0.0.0.0:8080"), Some(777))
    );
    assert!(
        aq.evidence
            .iter()
            .any(|e| e.contains("ListenOverflows rose 25.0/s")),
        "{:#?}",
        aq.evidence
    );
    assert!(aq.evidence.iter().any(|e| e.contains("EMFILE")));
    assert_eq!(sysctl_of(aq, "net.core.somaxconn").as_deref(), Some("1024"));
    let sb = one(f, "syn-backlog");
    assert_eq!(
        (sb.severity, sb.subject.count),
        (Severity::Warning, Some(60))
    );
    assert_eq!(
        sysctl_of(sb, "net.ipv4.tcp_synack_retries").as_deref(),
        None,
        "0 is flagged by the audit, not lowered further"
    );
    let risky = with_code(f, "risky-sysctl");
    let by = |name: &str| {
        risky
            .iter()
            .find(|r| r.remedy.iter().any(|x| x.sysctl.contains_key(name)))
            .copied()
    };
    assert_eq!(
        by("net.ipv4.tcp_tw_recycle").unwrap().severity,
        Severity::Critical
    );
    assert_eq!(
        sysctl_of(
            by("net.ipv4.tcp_max_tw_buckets").unwrap(),
            "net.ipv4.tcp_max_tw_buckets"
        )
        .as_deref(),
        Some("262144")
    );
    assert_eq!(
        sysctl_of(by("net.core.somaxconn").unwrap(), "net.core.somaxconn").as_deref(),
        Some("4096")
    );
    assert_eq!(
        sysctl_of(
            by("net.ipv4.tcp_synack_retries").unwrap(),
            "net.ipv4.tcp_synack_retries"
        )
        .as_deref(),
        Some("2")
    );
    // Without the second snapshot the same queue is only a warning.
    assert_eq!(
        one(&run(&incident4()), "accept-queue-overflow").severity,
        Severity::Warning
    );
}

#[test]
fn incident5_tcp_memory_and_the_holder() {
    let mut s = healthy();
    s.host.sockstat.tcp_mem_pages = Some(370_000);
    s.host.sockstat.tcp_alloc = Some(7385);
    let mut p = process(555, "streamer", s.netns[0].id);
    p.fds = Some(5400);
    p.fd_limit = Some(1_048_576);
    p.unhashed = Some(5336);
    p.states.set(TcpState::Unhashed, 5336);
    p.states.set(TcpState::Established, 1);
    p.pod = Some("live/streamer-0".into());
    s.processes.push(p);
    let f = run(&s);
    let m = one(&f, "tcp-memory-pressure");
    assert_eq!(m.severity, Severity::Critical); // 370000 ≥ 0.9 × 380000
    assert_eq!(
        (m.subject.count, m.subject.limit),
        (Some(370_000), Some(380_000))
    );
    assert!(m
        .evidence
        .iter()
        .any(|e| e.contains("pid 555 (streamer), pod live/streamer-0")));
    assert_eq!(
        sysctl_of(m, "net.ipv4.tcp_mem").as_deref(),
        Some("380000 500000 760000")
    );
    let sl = one(&f, "socket-leak");
    assert_eq!(
        (sl.subject.pid, sl.subject.pod.as_deref()),
        (Some(555), Some("live/streamer-0"))
    );
    // Over pressure but below 0.9 × max: a warning.
    s.host.sockstat.tcp_mem_pages = Some(260_000);
    assert_eq!(
        one(&run(&s), "tcp-memory-pressure").severity,
        Severity::Warning
    );
}

#[test]
fn close_wait_and_timewait() {
    let mut s = healthy();
    s.netns[0].states.set(TcpState::CloseWait, 10);
    s.processes[0].states.set(TcpState::CloseWait, 10);
    s.netns[0]
        .top_local
        .push(top(TcpState::CloseWait, "10.0.0.5:8080", 10));
    let f = run(&s);
    let cw = one(&f, "close-wait-leak");
    assert_eq!(
        (cw.severity, cw.subject.pid, cw.subject.count),
        (Severity::Warning, Some(100), Some(10))
    );
    assert_eq!(cw.subject.local.as_deref(), Some("10.0.0.5:8080"));
    s.processes[0].states.set(TcpState::CloseWait, 9);
    assert!(with_code(&run(&s), "close-wait-leak").is_empty());

    let mut prev = healthy();
    prev.netns[0]
        .sysctl
        .insert("net.ipv4.tcp_max_tw_buckets".into(), "32".into());
    prev.netns[0].sockstat.tcp_tw = Some(32);
    counter(&mut prev, "TCPTimeWaitOverflow", 5);
    let mut now = prev.clone();
    now.source.uptime_s = Some(10_001.0);
    counter(&mut now, "TCPTimeWaitOverflow", 25);
    let d = diagnose(&now, Some(&prev), &Thresholds::default());
    let tw = one(&d.findings, "timewait-pressure");
    assert_eq!(
        (tw.severity, tw.subject.count, tw.subject.limit),
        (Severity::Critical, Some(32), Some(32))
    );
    assert!(tw.title.contains("20.0/s"));
    assert_eq!(
        sysctl_of(tw, "net.ipv4.tcp_max_tw_buckets").as_deref(),
        Some("262144")
    );
}

#[test]
fn conntrack_and_host_files() {
    let mut s = healthy();
    s.host.limits.nf_conntrack_max = Some(1000);
    s.netns[0].conntrack_count = Some(960);
    s.host.limits.file_max = Some(10_000);
    s.host.file_nr = Some(FileNr {
        allocated: 8_100,
        unused: 0,
        max: 10_000,
    });
    let f = run(&s);
    let c = one(&f, "conntrack-full");
    assert_eq!(
        (c.severity, c.subject.count),
        (Severity::Critical, Some(960))
    );
    assert_eq!(
        sysctl_of(c, "net.netfilter.nf_conntrack_max").as_deref(),
        Some("2048")
    );
    let fd = one(&f, "fd-exhaustion");
    assert_eq!((fd.severity, fd.subject.pid), (Severity::Warning, None));
    assert_eq!(sysctl_of(fd, "fs.file-max").as_deref(), Some("16384"));
}

#[test]
fn missing_data_skips_with_reason() {
    let mut s = healthy();
    s.host.limits.tcp_max_orphans = None;
    s.missing.push(Missing::new(
        "net.ipv4.tcp_max_orphans",
        "permission denied",
    ));
    for ns in &mut s.netns {
        ns.dump = None;
    }
    let d = diagnose(&s, None, &Thresholds::default());
    let why = |code: &str| {
        d.skipped
            .iter()
            .find(|x| x.code == code)
            .map(|x| x.why.clone())
    };
    assert!(why("orphan-pressure")
        .unwrap()
        .contains("permission denied"));
    assert!(why("teardown-stall").unwrap().contains("socket tables"));
    assert!(why("conntrack-full").unwrap().contains("not loaded"));
}

#[test]
fn unexplained_kernel_messages_become_kernel_log() {
    let mut s = healthy();
    s.kernel_log = Some(KernelLog {
        source: "dmesg.txt".into(),
        messages: vec![KernelMessage {
            kind: LogKind::NeighborOverflow,
            count: 2,
            first: None,
            last: None,
            first_uptime_s: None,
            last_uptime_s: None,
            detail: Some("arp_cache".into()),
            sample: "arp_cache: neighbor table overflow!".into(),
        }],
        ..KernelLog::default()
    });
    let f = run(&s);
    let k = one(&f, "kernel-log");
    assert_eq!((k.severity, k.subject.count), (Severity::Warning, Some(2)));
}

#[test]
fn every_code_has_a_page() {
    for r in crate::CATALOG.iter() {
        assert!(r.page.starts_with(&format!("# {}", r.code)), "{}", r.code);
        for section in [
            "## What it means",
            "## How to confirm by hand",
            "## How to fix",
            "## What will not help",
        ] {
            assert!(r.page.contains(section), "{}: {section}", r.code);
        }
    }
}

fn message(kind: LogKind, sample: &str, detail: Option<&str>) -> KernelMessage {
    KernelMessage {
        kind,
        count: 1,
        first: None,
        last: None,
        first_uptime_s: None,
        last_uptime_s: None,
        detail: detail.map(str::to_string),
        sample: sample.into(),
    }
}

#[test]
fn a_message_is_explained_only_when_a_finding_quotes_it() {
    // A risky-sysctl finding that has nothing to do with the parity message, and
    // a parity message: kernel-log must still report it.
    let mut s = healthy();
    s.netns[0]
        .sysctl
        .insert("net.ipv4.tcp_max_tw_buckets".into(), "32".into());
    let parity = "ip_local_port_range: prefer different parity for start/end values.";
    s.kernel_log = Some(KernelLog {
        source: "dmesg.txt".into(),
        messages: vec![message(LogKind::PortRangeParity, parity, None)],
        ..KernelLog::default()
    });
    let f = run(&s);
    assert!(!with_code(&f, "risky-sysctl").is_empty());
    assert!(one(&f, "kernel-log")
        .title
        .contains("prefer different parity"));
    // With a same-parity range the audit quotes it, and kernel-log stays quiet.
    s.netns[0]
        .sysctl
        .insert("net.ipv4.ip_local_port_range".into(), "30000 60000".into());
    let f = run(&s);
    let p = with_code(&f, "risky-sysctl")
        .into_iter()
        .find(|r| r.title.contains("same parity"))
        .unwrap();
    assert!(p.evidence.iter().any(|e| e.contains(parity)));
    assert!(with_code(&f, "kernel-log").is_empty());
}

#[test]
fn syn_flood_messages_alone_are_counted_together() {
    let mut s = healthy();
    s.kernel_log = Some(KernelLog {
        source: "dmesg.txt".into(),
        messages: vec![
            message(LogKind::SynFlood, "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:80. Sending cookies.", Some("127.0.0.1:80")),
            message(LogKind::SynFlood, "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:81. Sending cookies.", Some("127.0.0.1:81")),
        ],
        ..KernelLog::default()
    });
    let f = run(&s);
    let sb = one(&f, "syn-backlog");
    assert_eq!(
        (sb.subject.count, sb.subject.local.as_ref()),
        (Some(2), None)
    );
    assert!(sb.title.contains("2 listeners"));
    assert!(with_code(&f, "kernel-log").is_empty());
}

#[test]
fn orphans_name_a_namespace_only_when_it_holds_most() {
    let mut s = healthy();
    s.host.sockstat.tcp_orphan = Some(1000);
    s.host.limits.tcp_max_orphans = Some(1500);
    s.netns[0].orphans = Some(400);
    assert_eq!(one(&run(&s), "orphan-pressure").subject.netns, None);
    s.netns[0].orphans = Some(600);
    assert_eq!(
        one(&run(&s), "orphan-pressure").subject.netns.as_deref(),
        Some("host")
    );
}

#[test]
fn tcp_memory_names_the_namespace_holding_the_queues() {
    let mut s = healthy();
    s.host.sockstat.tcp_mem_pages = Some(300_000);
    s.netns[0].queued = Some(QueuedBytes {
        recv: 150 << 20,
        send: 20 << 20,
    });
    let m = run(&s)
        .into_iter()
        .find(|f| f.code == "tcp-memory-pressure")
        .unwrap();
    assert_eq!(m.subject.netns.as_deref(), Some("host"));
    assert!(
        m.evidence.iter().any(|e| e.contains("170 MiB")),
        "{:#?}",
        m.evidence
    );
    assert!(m.title.contains("over tcp_mem pressure 250000:"));
}

#[test]
fn every_risky_setting_and_its_fix() {
    let cases: &[(&str, &str, &str, Severity, Option<&str>)] = &[
        (
            "net.ipv4.tcp_tw_recycle",
            "1",
            "net.ipv4.tcp_tw_recycle",
            Severity::Critical,
            Some("0"),
        ),
        (
            "net.ipv4.tcp_max_tw_buckets",
            "5000",
            "net.ipv4.tcp_max_tw_buckets",
            Severity::Warning,
            Some("262144"),
        ),
        (
            "net.core.somaxconn",
            "128",
            "net.core.somaxconn",
            Severity::Warning,
            Some("4096"),
        ),
        (
            "net.ipv4.tcp_synack_retries",
            "0",
            "net.ipv4.tcp_synack_retries",
            Severity::Warning,
            Some("2"),
        ),
        (
            "net.ipv4.ip_local_port_range",
            "61000 64999",
            "net.ipv4.ip_local_port_range",
            Severity::Warning,
            Some("32768 60999"),
        ),
        (
            "net.ipv4.ip_local_port_range",
            "30000 60000",
            "net.ipv4.ip_local_port_range",
            Severity::Info,
            Some("30000 60001"),
        ),
        (
            "net.ipv4.tcp_syncookies",
            "0",
            "net.ipv4.tcp_syncookies",
            Severity::Warning,
            Some("1"),
        ),
        (
            "net.ipv4.tcp_abort_on_overflow",
            "1",
            "net.ipv4.tcp_abort_on_overflow",
            Severity::Warning,
            Some("0"),
        ),
        (
            "net.ipv4.tcp_fin_timeout",
            "1",
            "net.ipv4.tcp_fin_timeout",
            Severity::Info,
            None,
        ),
        (
            "net.ipv4.tcp_orphan_retries",
            "12",
            "net.ipv4.tcp_orphan_retries",
            Severity::Info,
            Some("0"),
        ),
        (
            "net.ipv4.tcp_timestamps",
            "0",
            "net.ipv4.tcp_timestamps",
            Severity::Info,
            Some("1"),
        ),
    ];
    for (key, value, fixed, severity, fix) in cases {
        let mut s = healthy();
        s.netns[0].sysctl.insert(key.to_string(), value.to_string());
        if *key == "net.ipv4.tcp_timestamps" {
            s.netns[0]
                .sysctl
                .insert("net.ipv4.tcp_tw_reuse".into(), "1".into());
        }
        let f = run(&s);
        let risky = with_code(&f, "risky-sysctl");
        assert_eq!(
            risky.len(),
            1,
            "{key}={value}: {:#?}",
            risky.iter().map(|r| &r.title).collect::<Vec<_>>()
        );
        assert_eq!(risky[0].severity, *severity, "{key}={value}");
        assert_eq!(risky[0].subject.netns.as_deref(), Some("host"));
        assert_eq!(sysctl_of(risky[0], fixed).as_deref(), *fix, "{key}={value}");
    }
    // The same setting in two namespaces is one finding naming both.
    let mut s = healthy();
    let mut other = netns(4026532000, "pod shop/cart-0");
    other
        .sysctl
        .insert("net.core.somaxconn".into(), "128".into());
    s.netns[0]
        .sysctl
        .insert("net.core.somaxconn".into(), "128".into());
    s.netns.push(other);
    let f = run(&s);
    let r = one(&f, "risky-sysctl");
    assert_eq!(r.subject.count, Some(2));
    assert!(r.evidence[0].contains("host, pod shop/cart-0"));
}

#[test]
fn syn_backlog_remedies() {
    let mut s = healthy();
    s.netns[0]
        .sysctl
        .insert("net.ipv4.tcp_syncookies".into(), "0".into());
    s.netns[0].listeners[0].backlog = 64;
    s.netns[0].listeners[0].syn_recv = 40;
    let mut prev = s.clone();
    counter(&mut prev, "TCPReqQFullDrop", 10);
    counter(&mut s, "TCPReqQFullDrop", 30);
    s.source.uptime_s = Some(10_001.0);
    let d = diagnose(&s, Some(&prev), &Thresholds::default());
    let sb = one(&d.findings, "syn-backlog");
    assert_eq!(
        (sb.severity, sb.subject.local.as_deref()),
        (Severity::Critical, Some("0.0.0.0:80"))
    );
    assert_eq!(
        sysctl_of(sb, "net.ipv4.tcp_syncookies").as_deref(),
        Some("1")
    );
    assert_eq!(
        sysctl_of(sb, "net.ipv4.tcp_synack_retries").as_deref(),
        Some("2")
    );
    // Below syn.min it is no finding.
    let mut few = healthy();
    few.netns[0].listeners[0].backlog = 16;
    few.netns[0].listeners[0].syn_recv = 15;
    assert!(with_code(&run(&few), "syn-backlog").is_empty());
}

#[test]
fn teardown_and_timewait_remedies() {
    let mut s = healthy();
    s.netns[0]
        .sysctl
        .insert("net.ipv4.tcp_orphan_retries".into(), "12".into());
    s.netns[0].states.set(TcpState::FinWait1, 500);
    let f = run(&s);
    let st = one(&f, "teardown-stall");
    assert_eq!(
        sysctl_of(st, "net.ipv4.tcp_orphan_retries").as_deref(),
        Some("3")
    );
    assert!(
        st.evidence.iter().any(|e| e.contains("lives about 1638 s")),
        "{:#?}",
        st.evidence
    );
    let mut s = healthy();
    s.netns[0].sockstat.tcp_tw = Some(250_000);
    let f = run(&s);
    let tw = one(&f, "timewait-pressure");
    assert_eq!(tw.severity, Severity::Critical);
    assert_eq!(sysctl_of(tw, "net.ipv4.tcp_tw_reuse").as_deref(), Some("1"));
    assert_eq!(
        sysctl_of(tw, "net.ipv4.tcp_max_tw_buckets"),
        None,
        "already the default"
    );
}

/// Incident 3 as pasted: `ss -s` (old iproute2, with `ports`), sockstat and the
/// port range, no socket listing, no processes.
#[test]
fn incident3_from_saved_outputs() {
    let mut s = healthy();
    s.source.kind = SourceKind::Text;
    s.processes.clear();
    let ns = &mut s.netns[0];
    ns.dump = None;
    ns.ephemeral = None;
    ns.bind_buckets = Some(12_036);
    ns.sysctl
        .insert("net.ipv4.ip_local_port_range".into(), "50000 62000".into());
    s.host.sockstat.tcp_alloc = Some(41_019);
    s.host.closed = Some(Closed {
        alloc: 41_019,
        inuse: 81,
        unhashed: 40_938,
        complete: false,
        ss_closed: Some(40_944),
        ..Closed::default()
    });
    let d = diagnose(&s, None, &Thresholds::default());
    let pe = one(&d.findings, "port-exhaustion");
    assert_eq!(
        (pe.severity, pe.subject.count, pe.subject.limit),
        (Severity::Critical, Some(12_036), Some(12_001))
    );
    assert!(pe.title.contains("EADDRNOTAVAIL"));
    assert_eq!(
        sysctl_of(pe, "net.ipv4.ip_local_port_range").as_deref(),
        Some("32768 60999")
    );
    let sl = one(&d.findings, "socket-leak");
    assert_eq!(
        (sl.severity, sl.subject.count, sl.subject.pid),
        (Severity::Critical, Some(40_938), None)
    );
    assert!(sl
        .evidence
        .iter()
        .any(|e| e.contains("namespace the outputs were taken in")));
    // Live, the same partial sum proves nothing.
    s.source.kind = SourceKind::Live;
    assert!(with_code(&run(&s), "socket-leak").is_empty());
    assert!(d.skipped.iter().any(|x| x.code == "teardown-stall"));
}

/// `syn-unanswered` and `reset-storm` come only from a capture: declared (with a
/// page and the capture need), never found in a Snapshot, never listed as skipped.
#[test]
fn capture_only_codes_are_declared_and_silent_on_snapshots() {
    for code in ["syn-unanswered", "reset-storm"] {
        let r = crate::rule(code).unwrap();
        assert!(r.capture_only(), "{code}");
        assert_eq!(
            r.missing(&healthy()).as_deref(),
            Some("only from a capture: sockmedic pcap FILE")
        );
        assert!(r.page.starts_with(&format!("# {code}:")), "{code}");
    }
    for snap in [healthy(), Snapshot::default()] {
        let d = diagnose(&snap, None, &Thresholds::default());
        for code in ["syn-unanswered", "reset-storm"] {
            assert!(d.findings.iter().all(|f| f.code != code), "{code}");
            assert!(d.skipped.iter().all(|s| s.code != code), "{code}");
        }
    }
    let capture_only: Vec<&str> = crate::CATALOG
        .iter()
        .filter(|r| r.capture_only())
        .map(|r| r.code)
        .collect();
    assert_eq!(capture_only, ["syn-unanswered", "reset-storm"]);
}
