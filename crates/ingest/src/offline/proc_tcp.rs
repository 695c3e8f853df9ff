//! `/proc/net/tcp` and `/proc/net/tcp6`: the kernel's own listing of hashed TCP
//! sockets (listeners, connections, request socks, TIME-WAIT), in hex.
//!
//! What it holds differs from a sock_diag dump in known ways: TIME-WAIT and
//! SYN-RECV lines have inode 0 (and TIME-WAIT uid 0), a listener's `rx_queue` is
//! its accept queue but its backlog is not shown, and unhashed (CLOSE) sockets
//! are absent, as from every listing.

use super::netstat::ListenerQueues;
use super::ss::{for_each_line, note_skipped, Fields};
use super::{Input, Offline};
use sockmedic_collect::sockdiag::{DiagSocket, ALL_STATES};
use sockmedic_model::Endpoint;
use std::io::BufRead;

/// The header: `  sl  local_address rem_address   st tx_queue rx_queue tr ...`
/// (tcp6: `remote_address`). /proc/net/udp has the same start but ends in `drops`.
pub(super) fn sniff(head: &str, _: &Input) -> bool {
    let first = head.lines().next().unwrap_or("").trim();
    first.starts_with("sl")
        && first.contains("local_address")
        && first.contains("st tx_queue rx_queue tr tm->when retrnsmt")
        && !first.ends_with("drops")
}

pub(super) fn parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let mut listeners = ListenerQueues::default();
    let (mut sockets, mut bad, mut lines) = (0u64, 0u64, 0u64);
    super::ss::streamed(out, |sink| {
        for_each_line(text, |line| {
            lines += 1;
            let mut f = Fields::new(line);
            match f.next() {
                None => {}
                Some(b"sl") => {}
                Some(_) => match record(&mut f) {
                    Some(mut s) => {
                        listeners.strip(&mut s);
                        sockets += 1;
                        sink.socket(&s);
                    }
                    None => bad += 1,
                },
            }
        })
    })?;
    if sockets == 0 && bad > 0 {
        return Err(format!("{}: no socket line in {lines} lines", input.name));
    }
    // Every hashed state: the kernel walks the listening and established hashes.
    out.listing(ALL_STATES & !(1 << 7));
    listeners.note(out, input);
    note_skipped(out, input, "/proc/net/tcp", bad, lines);
    Ok(())
}

/// `0100007F:1C24 00000000:0000 0A 00000000:00000003 00:00000000 00000000 0 0 92709891 ...`
/// (after the `sl` field).
fn record(f: &mut Fields) -> Option<DiagSocket> {
    let local = hex_endpoint(f.next()?)?;
    let remote = hex_endpoint(f.next()?)?;
    let state = u8::try_from(hex(f.next()?)?).ok()?;
    if !(1..=12).contains(&state) {
        return None;
    }
    let (tx, rx) = pair(f.next()?)?;
    let (tr, when) = pair(f.next()?)?;
    let retrans = hex(f.next()?)?;
    let uid = dec(f.next()?)?;
    let _timeout = f.next()?;
    let inode = dec(f.next()?)?;
    Some(DiagSocket {
        state,
        timer: u8::try_from(tr).unwrap_or(0),
        retrans: retrans.min(255) as u8,
        local,
        remote,
        // tm->when is in clock ticks (USER_HZ, 100 per second).
        expires_ms: when.saturating_mul(10).min(u64::from(u32::MAX)) as u32,
        rqueue: rx.min(u64::from(u32::MAX)) as u32,
        wqueue: tx.min(u64::from(u32::MAX)) as u32,
        uid: uid.min(u64::from(u32::MAX)) as u32,
        inode: inode.min(u64::from(u32::MAX)) as u32,
        ..DiagSocket::default()
    })
}

fn hex(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    t.iter().try_fold(0u64, |v, &b| {
        Some(v << 4 | u64::from((b as char).to_digit(16)?))
    })
}

fn dec(t: &[u8]) -> Option<u64> {
    super::ss::num(t)
}

/// `00000000:00000003`, `00:00000000`.
fn pair(t: &[u8]) -> Option<(u64, u64)> {
    let c = t.iter().position(|&b| b == b':')?;
    Some((hex(&t[..c])?, hex(&t[c + 1..])?))
}

/// `0100007F:1C24` or 32 hex digits and a port. The address words are printed in
/// the host's byte order: this reads them as little-endian (x86, arm64), which is
/// where nearly every saved file comes from.
fn hex_endpoint(t: &[u8]) -> Option<Endpoint> {
    let c = t.iter().position(|&b| b == b':')?;
    let (addr, port) = (&t[..c], &t[c + 1..]);
    if port.len() != 4 {
        return None;
    }
    let port = u16::try_from(hex(port)?).ok()?;
    let mut out = [0u8; 16];
    let words = match addr.len() {
        8 => 1,
        32 => 4,
        _ => return None,
    };
    for w in 0..words {
        let v = u32::try_from(hex(&addr[w * 8..w * 8 + 8])?).ok()?;
        out[w * 4..w * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    Some(if words == 1 {
        Endpoint::v4([out[0], out[1], out[2], out[3]], port)
    } else {
        Endpoint::v6(out, port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = hex_endpoint(b"0100007F:1C24").unwrap();
        assert_eq!(sockmedic_model::format_endpoint(&e), "127.0.0.1:7204");
        let e = hex_endpoint(b"00000000000000000000000001000000:1C24").unwrap();
        assert_eq!(sockmedic_model::format_endpoint(&e), "[::1]:7204");
        let e = hex_endpoint(b"0000000000000000FFFF00000100007F:0050").unwrap();
        assert_eq!(
            sockmedic_model::format_endpoint(&e),
            "[::ffff:127.0.0.1]:80"
        );
        assert!(hex_endpoint(b"0100007F:1C2").is_none());
    }
}
