//! From a captured frame to its TCP header, through VLAN tags, MPLS, PPP and PPPoE and
//! the tunnels of [`Tunnel`] (VXLAN, Geneve, GRE, ERSPAN, IP in IP), to the innermost
//! TCP. Everything borrows from the frame; a packet cut short by the snaplen is used as
//! far as its headers go, and the TCP payload length comes from the IP length fields
//! (what was sent), not from what was captured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TCP flag bits as in the header's 13th byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// The parts of a TCP segment the teardown analysis needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Payload bytes the segment carried on the wire (not only those captured).
    pub payload_len: u32,
    /// The tunnel it was found in, if any.
    pub tunnel: Option<Tunnel>,
}

impl TcpSegment {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Why a frame yields no TCP segment. Counted by callers, never an error: a capture
/// holds ARP, UDP and fragments too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    LinkType(u32),
    /// Not IPv4/IPv6 (ARP, LLDP...).
    NotIp,
    /// IP, but not TCP (nor a tunnel holding TCP).
    NotTcp,
    /// An IP fragment: only non-fragmented TCP is analysed (TCP avoids fragmenting).
    Fragment,
    /// Cut (by the snaplen or damage) before the TCP flags.
    Truncated,
    Malformed,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88A8, 0x9100];
const ETH_MPLS: [u16; 2] = [0x8847, 0x8848];
const ETH_PPPOE_SESSION: u16 = 0x8864;
/// "Transparent Ethernet bridging": what GRE and Geneve call an Ethernet frame inside.
const ETH_BRIDGED: u16 = 0x6558;
const ETH_ERSPAN_2: u16 = 0x88BE;
const ETH_ERSPAN_3: u16 = 0x22EB;
const ETH_PPP: u16 = 0x880B;

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;

/// UDP ports of the tunnels decoded: IANA's VXLAN port, and the Linux kernel's default
/// (`ip link add type vxlan` without `dstport`) that flannel and Calico use.
const VXLAN_PORTS: [u16; 2] = [4789, 8472];
const VXLAN_GPE_PORT: u16 = 4790;
const GENEVE_PORT: u16 = 6081;

/// How many encapsulations deep a frame is followed. Real ones nest two or three
/// (VXLAN in GRE in MPLS); a crafted capture could nest forever.
const MAX_DEPTH: u8 = 8;

/// The tunnel a TCP segment was found in (the innermost one when they nest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tunnel {
    /// VXLAN (UDP 4789, or 8472: Linux's default, flannel's and Calico's).
    Vxlan,
    /// VXLAN-GPE (UDP 4790).
    VxlanGpe,
    /// Geneve (UDP 6081; OVN, Cilium, AWS Gateway Load Balancer).
    Geneve,
    /// GRE and its Ethernet form (gretap), including PPTP's enhanced GRE.
    Gre,
    /// ERSPAN type II or III: mirrored traffic inside GRE.
    Erspan,
    /// IP in IP: IPv4 or IPv6 directly inside IPv4 or IPv6 (ipip, sit, ip6tnl; Calico's
    /// IPIP mode).
    IpInIp,
}

impl Tunnel {
    pub const ALL: [Tunnel; 6] = [
        Tunnel::Vxlan,
        Tunnel::VxlanGpe,
        Tunnel::Geneve,
        Tunnel::Gre,
        Tunnel::Erspan,
        Tunnel::IpInIp,
    ];

    /// Its place in [`Tunnel::ALL`] (and in per-kind counters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name people know it by, for text.
    pub fn label(self) -> &'static str {
        match self {
            Tunnel::Vxlan => "VXLAN",
            Tunnel::VxlanGpe => "VXLAN-GPE",
            Tunnel::Geneve => "Geneve",
            Tunnel::Gre => "GRE",
            Tunnel::Erspan => "ERSPAN",
            Tunnel::IpInIp => "IP in IP",
        }
    }

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Tunnel::Vxlan => "vxlan",
            Tunnel::VxlanGpe => "vxlan-gpe",
            Tunnel::Geneve => "geneve",
            Tunnel::Gre => "gre",
            Tunnel::Erspan => "erspan",
            Tunnel::IpInIp => "ipip",
        }
    }
}

fn is_tunnel_port(port: u16) -> bool {
    VXLAN_PORTS.contains(&port) || port == VXLAN_GPE_PORT || port == GENEVE_PORT
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes the TCP segment in a frame of the given LINKTYPE, following VLAN tags, MPLS
/// labels, PPP and PPPoE, and the tunnels of [`Tunnel`] down to the innermost TCP.
pub fn tcp_segment(linktype: u32, frame: &[u8]) -> Result<TcpSegment, Skip> {
    Decoder {
        depth: 0,
        tunnel: None,
    }
    .link(linktype, frame)
}

/// One frame's walk down its headers: how deep it is, and the tunnel it is in.
struct Decoder {
    depth: u8,
    tunnel: Option<Tunnel>,
}

impl Decoder {
    fn link(&mut self, linktype: u32, frame: &[u8]) -> Result<TcpSegment, Skip> {
        let t = Skip::Truncated;
        match linktype {
            1 => self.ethernet(frame),
            // PPP, with or without HDLC framing; PPPoE (a 6-byte header, then PPP).
            9 | 50 => self.ppp_hdlc(frame),
            51 => self.ppp(frame.get(6..).ok_or(t)?),
            // Cisco HDLC: address, control, then an ethertype.
            104 => self.by_ethertype(be16(frame, 2).ok_or(t)?, frame, 4),
            // Linux cooked v1: protocol at 14, header 16 bytes.
            113 => self.by_ethertype(be16(frame, 14).ok_or(t)?, frame, 16),
            // Linux cooked v2: protocol first, header 20 bytes.
            276 => self.by_ethertype(be16(frame, 0).ok_or(t)?, frame, 20),
            101 | 228 | 229 => self.by_version(frame),
            // Null / loop: a 4-byte address family, but its byte order and AF_INET6 value
            // differ per OS that wrote it; the IP version nibble says the same unambiguously.
            0 | 108 => self.by_version(frame.get(4..).ok_or(t)?),
            other => Err(Skip::LinkType(other)),
        }
    }

    /// One level deeper into an encapsulation; too deep is damage (or a crafted frame).
    fn enter(&mut self, tunnel: Option<Tunnel>) -> Result<(), Skip> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Skip::Malformed);
        }
        if tunnel.is_some() {
            self.tunnel = tunnel;
        }
        Ok(())
    }

    fn ethernet(&mut self, frame: &[u8]) -> Result<TcpSegment, Skip> {
        self.by_ethertype(be16(frame, 12).ok_or(Skip::Truncated)?, frame, 14)
    }

    /// An ethertype at a link header's end, following any 802.1Q / QinQ tags.
    fn by_ethertype(
        &mut self,
        mut ethertype: u16,
        frame: &[u8],
        mut at: usize,
    ) -> Result<TcpSegment, Skip> {
        while ETH_VLAN.contains(&ethertype) {
            ethertype = be16(frame, at + 2).ok_or(Skip::Truncated)?;
            at += 4;
        }
        let next = frame.get(at..).ok_or(Skip::Truncated)?;
        match ethertype {
            ETH_IPV4 => self.ipv4(next),
            ETH_IPV6 => self.ipv6(next),
            e if ETH_MPLS.contains(&e) => self.mpls(next),
            // PPPoE session: version/type, code, session id, length; then PPP.
            ETH_PPPOE_SESSION => self.ppp(next.get(6..).ok_or(Skip::Truncated)?),
            _ => Err(Skip::NotIp),
        }
    }

    fn by_version(&mut self, ip: &[u8]) -> Result<TcpSegment, Skip> {
        match ip.first().ok_or(Skip::Truncated)? >> 4 {
            4 => self.ipv4(ip),
            6 => self.ipv6(ip),
            _ => Err(Skip::NotIp),
        }
    }

    /// An MPLS label stack: labels up to the one with bottom-of-stack set, then IP (told
    /// by its version nibble: MPLS does not say what it carries).
    fn mpls(&mut self, mut b: &[u8]) -> Result<TcpSegment, Skip> {
        self.enter(None)?;
        loop {
            let label = be32(b, 0).ok_or(Skip::Truncated)?;
            b = &b[4..];
            if label & 0x100 != 0 {
                return self.by_version(b);
            }
        }
    }

    /// PPP in HDLC-like framing: an optional `ff 03` address and control, then PPP.
    fn ppp_hdlc(&mut self, b: &[u8]) -> Result<TcpSegment, Skip> {
        match b.get(..2).ok_or(Skip::Truncated)? {
            [0xFF, 0x03] => self.ppp(&b[2..]),
            _ => self.ppp(b),
        }
    }

    /// A PPP protocol field (one byte when compressed: its low bit is set), then its
    /// packet.
    fn ppp(&mut self, b: &[u8]) -> Result<TcpSegment, Skip> {
        self.enter(None)?;
        let first = *b.first().ok_or(Skip::Truncated)?;
        let (protocol, at) = if first & 1 == 1 {
            (u16::from(first), 1)
        } else {
            (be16(b, 0).ok_or(Skip::Truncated)?, 2)
        };
        let next = b.get(at..).ok_or(Skip::Truncated)?;
        match protocol {
            0x0021 => self.ipv4(next),
            0x0057 => self.ipv6(next),
            0x0281 | 0x0283 => self.mpls(next),
            _ => Err(Skip::NotIp),
        }
    }

    /// An IP payload that is not TCP: a tunnel, or nothing for us.
    fn ip_payload(&mut self, protocol: u8, payload: &[u8]) -> Result<TcpSegment, Skip> {
        match protocol {
            IPPROTO_UDP => self.udp(payload),
            IPPROTO_GRE => self.gre(payload),
            IPPROTO_IPIP | IPPROTO_IPV6 => {
                self.enter(Some(Tunnel::IpInIp))?;
                self.by_version(payload)
            }
            _ => Err(Skip::NotTcp),
        }
    }

    /// UDP to or from a tunnel's port (the destination is tried first: a tunnel's
    /// source port is a flow hash that can be anything, including another tunnel's port).
    fn udp(&mut self, b: &[u8]) -> Result<TcpSegment, Skip> {
        let (src, dst) = (
            be16(b, 0).ok_or(Skip::NotTcp)?,
            be16(b, 2).ok_or(Skip::NotTcp)?,
        );
        let payload = b.get(8..).ok_or(Skip::NotTcp)?;
        let port = if is_tunnel_port(dst) { dst } else { src };
        match port {
            p if VXLAN_PORTS.contains(&p) => self.vxlan(payload),
            VXLAN_GPE_PORT => self.vxlan_gpe(payload),
            GENEVE_PORT => self.geneve(payload),
            _ => Err(Skip::NotTcp),
        }
    }

    /// VXLAN (RFC 7348): 8 bytes whose flags have the I bit (a valid VNI), then Ethernet.
    fn vxlan(&mut self, b: &[u8]) -> Result<TcpSegment, Skip> {
        let flags = *b.first().ok_or(Skip::NotTcp)?;
        if flags & 0x08 == 0 {
            return Err(Skip::NotTcp); // not VXLAN after all: UDP on that port
        }
        self.enter(Some(Tunnel::Vxlan))?;
        self.ethernet(b.get(8..).ok_or(Skip::Truncated)?)
    }

    /// VXLAN-GPE: like VXLAN, with a next-protocol byte when its P flag is set.
    fn vxlan_gpe(&mut self, b: &[u8]) -> Result<TcpSegment, Skip> {
        let flags = *b.first().ok_or(Skip::NotTcp)?;
        let next = if flags & 0x04 != 0 {
            *b.get(3).ok_or(Skip::NotTcp)?
        } else {
            3 // no next protocol: Ethernet, as plain VXLAN
        };
        self.enter(Some(Tunnel::VxlanGpe))?;
        let inner = b.get(8..).ok_or(Skip::Truncated)?;
        match next {
            1 => self.ipv4(inner),
            2 => self.ipv6(inner),
            3 => self.ethernet(inner),
            _ => Err(Skip::NotTcp), // NSH, MPLS...
        }
    }

    /// Geneve (RFC 8926): version 0, options of the length its first byte gives, then
    /// the protocol type as an ethertype.
    fn geneve(&mut self, b: &[u8]) -> Result<TcpSegment, Skip> {
        let first = *b.first().ok_or(Skip::NotTcp)?;
        if first >> 6 != 0 {
            return Err(Skip::NotTcp);
        }
        let header = 8 + usize::from(first & 0x3F) * 4;
        let protocol = be16(b, 2).ok_or(Skip::Truncated)?;
        self.enter(Some(Tunnel::Geneve))?;
        self.encapsulated(protocol, b.get(header..).ok_or(Skip::Truncated)?)
    }

    /// GRE (RFC 2784/2890; version 1 is PPTP's): flags saying which of checksum, key,
    /// sequence and acknowledgement follow, then the protocol as an ethertype.
    fn gre(&mut self, b: &[u8]) -> Result<TcpSegment, Skip> {
        let flags = be16(b, 0).ok_or(Skip::Truncated)?;
        let protocol = be16(b, 2).ok_or(Skip::Truncated)?;
        let version = flags & 0x7;
        if version > 1 {
            return Err(Skip::NotTcp);
        }
        let present = |bit: u16| usize::from(flags & bit != 0) * 4;
        let mut header = 4 + present(0x2000) + present(0x1000);
        if version == 0 {
            header += if flags & 0xC000 != 0 { 4 } else { 0 }; // checksum (+ offset)
        } else {
            header += present(0x0080); // enhanced GRE's acknowledgement number
        }
        let inner = b.get(header..).ok_or(Skip::Truncated)?;
        match protocol {
            ETH_ERSPAN_2 => {
                self.enter(Some(Tunnel::Erspan))?;
                self.ethernet(inner.get(8..).ok_or(Skip::Truncated)?)
            }
            ETH_ERSPAN_3 => {
                // 12 bytes, and 8 more of platform subheader when its O bit is set.
                let o = inner.get(11).ok_or(Skip::Truncated)? & 0x01 != 0;
                self.enter(Some(Tunnel::Erspan))?;
                let at = if o { 20 } else { 12 };
                self.ethernet(inner.get(at..).ok_or(Skip::Truncated)?)
            }
            ETH_PPP => {
                self.enter(Some(Tunnel::Gre))?;
                self.ppp_hdlc(inner)
            }
            _ => {
                self.enter(Some(Tunnel::Gre))?;
                self.encapsulated(protocol, inner)
            }
        }
    }

    /// What an ethertype-typed tunnel (GRE, Geneve) carries.
    fn encapsulated(&mut self, protocol: u16, inner: &[u8]) -> Result<TcpSegment, Skip> {
        match protocol {
            ETH_BRIDGED => self.ethernet(inner),
            ETH_IPV4 => self.ipv4(inner),
            ETH_IPV6 => self.ipv6(inner),
            p if ETH_MPLS.contains(&p) => self.mpls(inner),
            _ => Err(Skip::NotTcp),
        }
    }

    fn ipv4(&mut self, ip: &[u8]) -> Result<TcpSegment, Skip> {
        if ip.len() < 20 {
            return Err(Skip::Truncated);
        }
        let header_len = ((ip[0] & 0x0F) as usize) * 4;
        if header_len < 20 {
            return Err(Skip::Malformed);
        }
        let frag = be16(ip, 6).ok_or(Skip::Truncated)?;
        if frag & 0x3FFF != 0 {
            return Err(Skip::Fragment); // more-fragments set, or an offset
        }
        let total = be16(ip, 2).ok_or(Skip::Truncated)? as usize;
        // Total length 0 is what segmentation offload leaves in captures on the sending host.
        let ip_len = if total == 0 { ip.len() } else { total };
        let payload = ip.get(header_len..).ok_or(Skip::Truncated)?;
        if ip[9] != IPPROTO_TCP {
            // A tunnel's inner packet ends where the IP length says (Ethernet padding
            // and trailers after it are not part of it).
            let end = ip_len.saturating_sub(header_len).min(payload.len());
            return self.ip_payload(ip[9], &payload[..end]);
        }
        let src = Ipv4Addr::from(be32(ip, 12).ok_or(Skip::Truncated)?);
        let dst = Ipv4Addr::from(be32(ip, 16).ok_or(Skip::Truncated)?);
        let tcp_bytes = ip_len.checked_sub(header_len).ok_or(Skip::Malformed)?;
        self.tcp(payload, src.into(), dst.into(), tcp_bytes)
    }

    fn ipv6(&mut self, ip: &[u8]) -> Result<TcpSegment, Skip> {
        if ip.len() < 40 {
            return Err(Skip::Truncated);
        }
        let payload = be16(ip, 4).ok_or(Skip::Truncated)? as usize;
        // Payload length 0: a jumbogram or offload; the captured length is the best we know.
        let mut left = if payload == 0 { ip.len() - 40 } else { payload };
        let mut next = ip[6];
        let mut at = 40;
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
        loop {
            let len = match next {
                IPPROTO_TCP => {
                    return self.tcp(
                        ip.get(at..).ok_or(Skip::Truncated)?,
                        src.into(),
                        dst.into(),
                        left,
                    )
                }
                // Hop-by-hop, routing, destination options: length in 8-byte units after the first 8.
                0 | 43 | 60 => (*ip.get(at + 1).ok_or(Skip::Truncated)? as usize + 1) * 8,
                44 => {
                    let off_flags = be16(ip, at + 2).ok_or(Skip::Truncated)?;
                    if off_flags & 0xFFF9 != 0 {
                        return Err(Skip::Fragment); // an offset or more-fragments: not an atomic fragment
                    }
                    8
                }
                // Authentication header: length in 4-byte units after the first 8.
                51 => (*ip.get(at + 1).ok_or(Skip::Truncated)? as usize + 2) * 4,
                other => {
                    let rest = ip.get(at..).ok_or(Skip::Truncated)?;
                    return self.ip_payload(other, &rest[..left.min(rest.len())]);
                }
            };
            next = *ip.get(at).ok_or(Skip::Truncated)?;
            at += len;
            left = left.checked_sub(len).ok_or(Skip::Malformed)?;
        }
    }

    fn tcp(
        &self,
        seg: &[u8],
        src: IpAddr,
        dst: IpAddr,
        seg_len: usize,
    ) -> Result<TcpSegment, Skip> {
        // Ports to window: the first 16 bytes. Options, checksum and payload may be cut.
        if seg.len() < 16 {
            return Err(Skip::Truncated);
        }
        let header_len = ((seg[12] >> 4) as usize) * 4;
        if header_len < 20 {
            return Err(Skip::Malformed);
        }
        Ok(TcpSegment {
            src,
            dst,
            src_port: be16(seg, 0).unwrap(),
            dst_port: be16(seg, 2).unwrap(),
            seq: be32(seg, 4).unwrap(),
            ack: be32(seg, 8).unwrap(),
            flags: seg[13],
            window: be16(seg, 14).unwrap(),
            payload_len: seg_len.saturating_sub(header_len) as u32,
            tunnel: self.tunnel,
        })
    }
}
