//! Snapshots for the rule tests, shaped like the incidents' figures.

use sockmedic_model::*;
use std::collections::BTreeMap;

pub fn ep(s: &str) -> Endpoint {
    let (ip, port) = s.rsplit_once(':').unwrap();
    let a: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
    Endpoint::v4([a[0], a[1], a[2], a[3]], port.parse().unwrap())
}

/// A healthy host: default limits, a few connections, defaults everywhere.
pub fn healthy() -> Snapshot {
    let mut ns = netns(4026531833, "host");
    ns.host = true;
    ns.states.set(TcpState::Established, 40);
    ns.states.set(TcpState::TimeWait, 12);
    ns.states.set(TcpState::Listen, 3);
    ns.sockstat = NetnsSockstat {
        tcp_inuse: Some(43),
        tcp6_inuse: Some(0),
        tcp_tw: Some(12),
        ..NetnsSockstat::default()
    };
    ns.listeners.push(Listener {
        local: ep("0.0.0.0:80"),
        accept_queue: 0,
        backlog: 4096,
        syn_recv: 0,
        inode: 1,
        uid: 0,
    });
    ns.ephemeral = Some(EphemeralUse {
        range: [32768, 60999],
        size: 28232,
        sockets: 40,
        ports_in_use: 40,
        bound_inactive_ports: Some(0),
        includes_established: true,
        ..EphemeralUse::default()
    });
    Snapshot {
        source: Source {
            kernel: Some("6.18.0".into()),
            uptime_s: Some(10_000.0),
            ..Source::default()
        },
        host: Host {
            sockstat: HostSockstat {
                tcp_orphan: Some(0),
                tcp_alloc: Some(50),
                tcp_mem_pages: Some(20),
                udp_mem_pages: Some(0),
            },
            limits: HostLimits {
                tcp_mem: Some(MemLimits {
                    min: 190_000,
                    pressure: 250_000,
                    max: 380_000,
                }),
                tcp_max_orphans: Some(131_072),
                file_max: Some(9_223_372_036_854_775_807),
                nr_open: Some(1_048_576),
                ..HostLimits::default()
            },
            file_nr: Some(FileNr {
                allocated: 2000,
                unused: 0,
                max: 9_223_372_036_854_775_807,
            }),
            page_size: 4096,
            ..Host::default()
        },
        netns: vec![ns],
        processes: vec![process(100, "nginx", 4026531833)],
        ..Snapshot::default()
    }
}

pub fn netns(id: u64, name: &str) -> Netns {
    let sysctl: BTreeMap<String, String> = [
        ("net.ipv4.tcp_orphan_retries", "0"),
        ("net.ipv4.tcp_fin_timeout", "60"),
        ("net.ipv4.tcp_max_tw_buckets", "262144"),
        ("net.ipv4.tcp_tw_reuse", "2"),
        ("net.ipv4.tcp_timestamps", "1"),
        ("net.ipv4.ip_local_port_range", "32768\t60999"),
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_max_syn_backlog", "4096"),
        ("net.ipv4.tcp_syncookies", "1"),
        ("net.ipv4.tcp_synack_retries", "5"),
        ("net.ipv4.tcp_abort_on_overflow", "0"),
        ("net.ipv4.tcp_ehash_entries", "524288"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Netns {
        id,
        names: vec![name.to_string()],
        sysctl,
        dump: Some(DumpInfo {
            parts: 1,
            exact: true,
            ..DumpInfo::default()
        }),
        counters: BTreeMap::from([
            ("TcpExt".to_string(), BTreeMap::new()),
            ("Tcp".to_string(), BTreeMap::new()),
        ]),
        ..Netns::default()
    }
}

pub fn process(pid: u32, comm: &str, netns: u64) -> Process {
    Process {
        pid,
        comm: comm.into(),
        netns: Some(netns),
        fds: Some(20),
        fd_limit: Some(1024),
        fd_limit_hard: Some(524_288),
        socket_fds: Some(5),
        ..Process::default()
    }
}

pub fn top(state: TcpState, endpoint: &str, count: u64) -> EndpointCount {
    EndpointCount {
        state,
        endpoint: ep(endpoint),
        count,
        error: 0,
    }
}

/// Sets a counter in the snapshot's first namespace.
pub fn counter(snap: &mut Snapshot, name: &str, v: i64) {
    snap.netns[0]
        .counters
        .entry("TcpExt".into())
        .or_default()
        .insert(name.into(), v);
}
