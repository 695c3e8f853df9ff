//! TCP inside tunnels and other encapsulations, on frames of this machine.
//!
//! This machine's kernel has VXLAN but no GRE, IPIP, Geneve or ERSPAN modules, so only
//! VXLAN is captured live (crates/sockmedic/tests/pcap_live.rs) and Geneve and PPP +
//! MPLS come from public captures (tests/public.rs). For the rest, every TCP frame of
//! `fixtures/lo.pcap` (captured here: IPv4, IPv6, IPv6 extension headers) is wrapped
//! in each encapsulation's headers, as its RFC lays them out, and written to a capture
//! file. tshark is the referee: it must find the same TCP header in each frame as
//! sockmedic does, and both must equal the unwrapped frame's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture;
use sockmedic_capture::{tcp_segment, Capture, Skip, TcpSegment, Tunnel};

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_PPP: u32 = 9;
const LINKTYPE_PPP_ETHER: u32 = 51;
const LINKTYPE_C_HDLC: u32 = 104;

/// The TCP frames of lo.pcap (Ethernet, as loopback captures are).
fn lo_frames() -> Vec<Vec<u8>> {
    let mut cap = Capture::open(&fixture("lo.pcap")).unwrap();
    let mut frames = Vec::new();
    cap.for_each_packet(
        |p| {
            if tcp_segment(p.linktype, p.data).is_ok() {
                frames.push(p.data.to_vec());
            }
        },
        |_| {},
    )
    .unwrap();
    assert!(frames.len() >= 40, "{}", frames.len());
    frames
}

fn ethertype(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[12], frame[13]])
}

fn ip_of(frame: &[u8]) -> &[u8] {
    &frame[14..]
}

fn is_v6(frame: &[u8]) -> bool {
    ethertype(frame) == 0x86DD
}

// ---------------------------------------------------------------------------------
// Headers, as their RFCs lay them out
// ---------------------------------------------------------------------------------

/// The Internet checksum (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend(total.to_be_bytes());
    h.extend([
        0, 1, 0x40, 0, 64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ]);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend(payload);
    h
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((payload.len() as u16).to_be_bytes());
    h.extend([next, 64]);
    let addr = |n: u8| {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = n;
        a
    };
    h.extend(addr(1));
    h.extend(addr(2));
    h.extend(payload);
    h
}

/// UDP with no checksum (allowed over IPv4, and for tunnels over IPv6: RFC 6935).
fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(49152u16.to_be_bytes());
    h.extend(dst_port.to_be_bytes());
    h.extend(((8 + payload.len()) as u16).to_be_bytes());
    h.extend([0, 0]);
    h.extend(payload);
    h
}

/// An outer IPv4 packet carrying `payload` as `protocol`.
fn over_ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    eth(0x0800, &ipv4(protocol, payload))
}

fn over_ipv6(protocol: u8, payload: &[u8]) -> Vec<u8> {
    eth(0x86DD, &ipv6(protocol, payload))
}

/// VXLAN (RFC 7348): flags with I, VNI 42.
fn vxlan(inner_frame: &[u8]) -> Vec<u8> {
    let mut h = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    h.extend(inner_frame);
    h
}

/// GRE (RFC 2784, 2890) with the checksum, key and sequence fields its flags ask for.
fn gre(protocol: u16, csum: bool, key: Option<u32>, seq: Option<u32>, inner: &[u8]) -> Vec<u8> {
    let flags: u16 = if csum { 0x8000 } else { 0 }
        | if key.is_some() { 0x2000 } else { 0 }
        | if seq.is_some() { 0x1000 } else { 0 };
    let mut h = Vec::new();
    h.extend(flags.to_be_bytes());
    h.extend(protocol.to_be_bytes());
    if csum {
        h.extend([0, 0, 0, 0]);
    }
    if let Some(k) = key {
        h.extend(k.to_be_bytes());
    }
    if let Some(s) = seq {
        h.extend(s.to_be_bytes());
    }
    h.extend(inner);
    if csum {
        let sum = checksum(&h);
        h[4..6].copy_from_slice(&sum.to_be_bytes());
    }
    h
}

/// The PPP protocol number of an IP packet.
fn ppp_protocol(frame: &[u8]) -> [u8; 2] {
    if is_v6(frame) {
        [0x00, 0x57]
    } else {
        [0x00, 0x21]
    }
}

/// A PPPoE session header (RFC 2516) and PPP.
fn pppoe(frame: &[u8]) -> Vec<u8> {
    let ip = ip_of(frame);
    let mut h = vec![0x11, 0x00, 0x12, 0x34];
    h.extend(((2 + ip.len()) as u16).to_be_bytes());
    h.extend(ppp_protocol(frame));
    h.extend(ip);
    h
}

// ---------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------

/// One way of wrapping a frame: its name, the link type of the result, the tunnel
/// sockmedic must report, and the wrapping.
struct Case {
    name: &'static str,
    linktype: u32,
    tunnel: Option<Tunnel>,
    wrap: fn(&[u8]) -> Vec<u8>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "vxlan",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Vxlan),
            wrap: |f| over_ipv4(17, &udp(4789, &vxlan(f))),
        },
        Case {
            name: "vxlan-over-ipv6",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Vxlan),
            wrap: |f| over_ipv6(17, &udp(4789, &vxlan(f))),
        },
        Case {
            name: "vxlan-in-vlan",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Vxlan),
            wrap: |f| {
                let mut tagged = vec![0x00, 0x64, 0x08, 0x00];
                tagged.extend(ipv4(17, &udp(4789, &vxlan(f))));
                eth(0x8100, &tagged)
            },
        },
        Case {
            // Next protocol IPv4 (1) or IPv6 (2), P and I flags set.
            name: "vxlan-gpe",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::VxlanGpe),
            wrap: |f| {
                let mut h = vec![0x0C, 0, 0, if is_v6(f) { 2 } else { 1 }, 0, 0, 42, 0];
                h.extend(ip_of(f));
                over_ipv4(17, &udp(4790, &h))
            },
        },
        Case {
            // Geneve (RFC 8926) with one 8-byte option before an Ethernet frame.
            name: "geneve-with-option",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Geneve),
            wrap: |f| {
                let mut h = vec![0x02, 0, 0x65, 0x58, 0, 0, 42, 0];
                h.extend([0x01, 0x02, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef]);
                h.extend(f);
                over_ipv4(17, &udp(6081, &h))
            },
        },
        Case {
            name: "gre",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Gre),
            wrap: |f| over_ipv4(47, &gre(ethertype(f), false, None, None, ip_of(f))),
        },
        Case {
            name: "gre-checksum-key-sequence",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Gre),
            wrap: |f| over_ipv4(47, &gre(ethertype(f), true, Some(7), Some(99), ip_of(f))),
        },
        Case {
            name: "gretap-with-key",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Gre),
            wrap: |f| over_ipv4(47, &gre(0x6558, false, Some(7), None, f)),
        },
        Case {
            name: "gre-over-ipv6",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Gre),
            wrap: |f| over_ipv6(47, &gre(ethertype(f), false, None, None, ip_of(f))),
        },
        Case {
            // PPTP's enhanced GRE (RFC 2637): version 1, key (payload length and call
            // id), sequence and acknowledgement; then PPP with address and control.
            name: "pptp-enhanced-gre",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Gre),
            wrap: |f| {
                let ppp_len = (4 + ip_of(f).len()) as u16;
                let mut h = vec![0x30, 0x81, 0x88, 0x0B];
                h.extend(ppp_len.to_be_bytes());
                h.extend([0x00, 0x05, 0, 0, 0, 1, 0, 0, 0, 0]);
                h.extend([0xFF, 0x03]);
                h.extend(ppp_protocol(f));
                h.extend(ip_of(f));
                over_ipv4(47, &h)
            },
        },
        Case {
            // ERSPAN type II: GRE with a sequence number, an 8-byte ERSPAN header.
            name: "erspan-type-2",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Erspan),
            wrap: |f| {
                let mut h = vec![0x10, 0x64, 0x00, 0x07, 0, 0, 0, 0];
                h.extend(f);
                over_ipv4(47, &gre(0x88BE, false, None, Some(1), &h))
            },
        },
        Case {
            // ERSPAN type III: a 12-byte header, O bit clear.
            name: "erspan-type-3",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Erspan),
            wrap: |f| {
                let mut h = vec![0x20, 0x64, 0x00, 0x07, 0, 0, 0, 1, 0, 0, 0, 0];
                h.extend(f);
                over_ipv4(47, &gre(0x22EB, false, None, Some(1), &h))
            },
        },
        Case {
            // ERSPAN type III with its O bit: 8 bytes of platform subheader follow.
            name: "erspan-type-3-platform",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Erspan),
            wrap: |f| {
                let mut h = vec![0x20, 0x64, 0x00, 0x07, 0, 0, 0, 1, 0, 0, 0, 1];
                h.extend([0x0C, 0, 0, 0, 0, 0, 0, 0]);
                h.extend(f);
                over_ipv4(47, &gre(0x22EB, false, None, Some(1), &h))
            },
        },
        Case {
            // ipip (IPv4 in IPv4, protocol 4) and sit (IPv6 in IPv4, 41).
            name: "ip-in-ipv4",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::IpInIp),
            wrap: |f| over_ipv4(if is_v6(f) { 41 } else { 4 }, ip_of(f)),
        },
        Case {
            // ip6tnl: IPv4 or IPv6 in IPv6.
            name: "ip-in-ipv6",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::IpInIp),
            wrap: |f| over_ipv6(if is_v6(f) { 41 } else { 4 }, ip_of(f)),
        },
        Case {
            // VXLAN inside GRE: the innermost tunnel is reported.
            name: "vxlan-in-gre",
            linktype: LINKTYPE_ETHERNET,
            tunnel: Some(Tunnel::Vxlan),
            wrap: |f| {
                let inner = ipv4(17, &udp(4789, &vxlan(f)));
                over_ipv4(47, &gre(0x0800, false, None, None, &inner))
            },
        },
        Case {
            // Two MPLS labels (RFC 3032), bottom of stack on the second.
            name: "mpls",
            linktype: LINKTYPE_ETHERNET,
            tunnel: None,
            wrap: |f| {
                let mut h = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
                h.extend(ip_of(f));
                eth(0x8847, &h)
            },
        },
        Case {
            name: "pppoe-session",
            linktype: LINKTYPE_ETHERNET,
            tunnel: None,
            wrap: |f| eth(0x8864, &pppoe(f)),
        },
        Case {
            name: "linktype-ppp-ether",
            linktype: LINKTYPE_PPP_ETHER,
            tunnel: None,
            wrap: pppoe,
        },
        Case {
            name: "linktype-ppp",
            linktype: LINKTYPE_PPP,
            tunnel: None,
            wrap: |f| {
                let mut h = vec![0xFF, 0x03];
                h.extend(ppp_protocol(f));
                h.extend(ip_of(f));
                h
            },
        },
        Case {
            name: "linktype-cisco-hdlc",
            linktype: LINKTYPE_C_HDLC,
            tunnel: None,
            wrap: |f| {
                let mut h = vec![0x0F, 0x00];
                h.extend(ethertype(f).to_be_bytes());
                h.extend(ip_of(f));
                h
            },
        },
    ]
}

/// Writes `frames` as a pcap file of `linktype` (microseconds, one per second).
fn write_pcap(path: &Path, linktype: u32, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend(0xA1B2_C3D4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(262_144u32.to_le_bytes());
    out.extend(linktype.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend((1_700_000_000 + i as u32).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(f);
    }
    std::fs::write(path, out).unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tunnels");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.pcap"))
}

/// The innermost TCP header of each frame as tshark sees it: ports, raw sequence and
/// acknowledgement numbers, flags, payload length ("" for a frame without TCP).
fn tshark_tcp(path: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-T", "fields", "-E", "occurrence=l", "-E", "separator=/s"])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.seq_raw",
        ])
        .args(["-e", "tcp.ack_raw", "-e", "tcp.flags", "-e", "tcp.len"])
        .output()
        .expect("tshark is missing (scripts/install-deps installs it)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

fn as_tshark(s: &TcpSegment) -> String {
    format!(
        "{} {} {} {} 0x{:04x} {}",
        s.src_port, s.dst_port, s.seq, s.ack, s.flags, s.payload_len
    )
}

/// Every lo.pcap TCP frame, wrapped each way: sockmedic finds the same TCP header
/// as in the unwrapped frame, in the tunnel the case names, and tshark finds it too.
#[test]
fn tcp_in_every_encapsulation_is_the_unwrapped_frames_and_tsharks() {
    let frames = lo_frames();
    let plain: Vec<TcpSegment> = frames
        .iter()
        .map(|f| tcp_segment(LINKTYPE_ETHERNET, f).unwrap())
        .collect();
    for case in cases() {
        let wrapped: Vec<Vec<u8>> = frames.iter().map(|f| (case.wrap)(f)).collect();
        let ours: Vec<TcpSegment> = wrapped
            .iter()
            .map(|w| {
                tcp_segment(case.linktype, w)
                    .unwrap_or_else(|e| panic!("{}: {e:?} on {w:02x?}", case.name))
            })
            .collect();
        for (got, want) in ours.iter().zip(&plain) {
            assert_eq!(
                *got,
                TcpSegment {
                    tunnel: case.tunnel,
                    ..*want
                },
                "{}",
                case.name
            );
        }
        let path = scratch(case.name);
        write_pcap(&path, case.linktype, &wrapped);
        let want: Vec<String> = ours.iter().map(as_tshark).collect();
        assert_eq!(tshark_tcp(&path), want, "{}: tshark", case.name);
    }
}

/// UDP to VXLAN's port whose first byte lacks the I flag is not VXLAN: nothing is
/// made of it (tshark shows it as malformed VXLAN).
#[test]
fn udp_on_a_tunnel_port_without_its_header_is_not_a_tunnel() {
    let f = &lo_frames()[0];
    let mut h = vxlan(f);
    h[0] = 0;
    let frame = over_ipv4(17, &udp(4789, &h));
    assert_eq!(tcp_segment(LINKTYPE_ETHERNET, &frame), Err(Skip::NotTcp));
    // Any other UDP port: not looked into.
    let frame = over_ipv4(17, &udp(4788, &vxlan(f)));
    assert_eq!(tcp_segment(LINKTYPE_ETHERNET, &frame), Err(Skip::NotTcp));
}

/// Encapsulations nest as deep as real ones do (a few levels); a crafted frame nesting
/// IP in IP without end is given up as malformed, without recursing further.
#[test]
fn nesting_is_bounded() {
    let f = &lo_frames()[0];
    let mut ip = ip_of(f).to_vec();
    for _ in 0..4 {
        ip = ipv4(4, &ip);
    }
    assert!(tcp_segment(LINKTYPE_ETHERNET, &eth(0x0800, &ip)).is_ok());
    for _ in 0..100 {
        ip = ipv4(4, &ip);
    }
    assert_eq!(
        tcp_segment(LINKTYPE_ETHERNET, &eth(0x0800, &ip)),
        Err(Skip::Malformed)
    );
}

/// Each wrapping cut at every length: no panic; a cut inside the inner TCP header is
/// `Truncated`, never a segment with made-up fields.
#[test]
fn cut_encapsulations_never_panic() {
    let f = &lo_frames()[0];
    for case in cases() {
        let w = (case.wrap)(f);
        let full = tcp_segment(case.linktype, &w).unwrap();
        for cut in 0..w.len() {
            if let Ok(seg) = tcp_segment(case.linktype, &w[..cut]) {
                assert_eq!(seg, full, "{} cut at {cut}", case.name);
            }
        }
    }
}
