//! From a captured frame to its TCP header. Everything borrows from the frame; a packet
//! cut short by the snaplen is used as far as its headers go, and the TCP payload length
//! comes from the IP length fields (what was sent), not from what was captured.

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
    /// IP, but not TCP.
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
const IPPROTO_TCP: u8 = 6;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes the TCP segment in a frame of the given LINKTYPE.
pub fn tcp_segment(linktype: u32, frame: &[u8]) -> Result<TcpSegment, Skip> {
    let t = Skip::Truncated;
    match linktype {
        1 => {
            let ethertype = be16(frame, 12).ok_or(t)?;
            by_ethertype(ethertype, frame, 14)
        }
        // Linux cooked v1: protocol at 14, header 16 bytes.
        113 => by_ethertype(be16(frame, 14).ok_or(t)?, frame, 16),
        // Linux cooked v2: protocol first, header 20 bytes.
        276 => by_ethertype(be16(frame, 0).ok_or(t)?, frame, 20),
        101 | 228 | 229 => by_version(frame),
        // Null / loop: a 4-byte address family, but its byte order and AF_INET6 value
        // differ per OS that wrote it; the IP version nibble says the same unambiguously.
        0 | 108 => by_version(frame.get(4..).ok_or(t)?),
        other => Err(Skip::LinkType(other)),
    }
}

/// An ethertype at a link header's end, following any 802.1Q / QinQ tags.
fn by_ethertype(mut ethertype: u16, frame: &[u8], mut at: usize) -> Result<TcpSegment, Skip> {
    while ETH_VLAN.contains(&ethertype) {
        ethertype = be16(frame, at + 2).ok_or(Skip::Truncated)?;
        at += 4;
    }
    let ip = frame.get(at..).ok_or(Skip::Truncated)?;
    match ethertype {
        ETH_IPV4 => ipv4(ip),
        ETH_IPV6 => ipv6(ip),
        _ => Err(Skip::NotIp),
    }
}

fn by_version(ip: &[u8]) -> Result<TcpSegment, Skip> {
    match ip.first().ok_or(Skip::Truncated)? >> 4 {
        4 => ipv4(ip),
        6 => ipv6(ip),
        _ => Err(Skip::NotIp),
    }
}

fn ipv4(ip: &[u8]) -> Result<TcpSegment, Skip> {
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
    if ip[9] != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    let total = be16(ip, 2).ok_or(Skip::Truncated)? as usize;
    // Total length 0 is what segmentation offload leaves in captures on the sending host.
    let ip_len = if total == 0 { ip.len() } else { total };
    let src = Ipv4Addr::from(be32(ip, 12).ok_or(Skip::Truncated)?);
    let dst = Ipv4Addr::from(be32(ip, 16).ok_or(Skip::Truncated)?);
    let tcp_bytes = ip_len.checked_sub(header_len).ok_or(Skip::Malformed)?;
    tcp(
        ip.get(header_len..).ok_or(Skip::Truncated)?,
        src.into(),
        dst.into(),
        tcp_bytes,
    )
}

fn ipv6(ip: &[u8]) -> Result<TcpSegment, Skip> {
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
                return tcp(
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
            _ => return Err(Skip::NotTcp),
        };
        next = *ip.get(at).ok_or(Skip::Truncated)?;
        at += len;
        left = left.checked_sub(len).ok_or(Skip::Malformed)?;
    }
}

fn tcp(seg: &[u8], src: IpAddr, dst: IpAddr, seg_len: usize) -> Result<TcpSegment, Skip> {
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
    })
}
