//! A socket address as a small `Copy` key, cheap to hash while sockets stream by.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 address with a port. IPv4 uses the first 4 bytes of `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Endpoint {
    pub v6: bool,
    pub addr: [u8; 16],
    pub port: u16,
}

impl Endpoint {
    pub fn v4(addr: [u8; 4], port: u16) -> Endpoint {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&addr);
        Endpoint {
            v6: false,
            addr: a,
            port,
        }
    }
    pub fn v6(addr: [u8; 16], port: u16) -> Endpoint {
        Endpoint {
            v6: true,
            addr,
            port,
        }
    }
    /// The unspecified address (`0.0.0.0` or `::`): a listener on every address.
    pub fn is_wildcard(&self) -> bool {
        let n = if self.v6 { 16 } else { 4 };
        self.addr[..n].iter().all(|b| *b == 0)
    }
    /// The same endpoint with the port zeroed (a remote host, all ports).
    pub fn host(&self) -> Endpoint {
        Endpoint { port: 0, ..*self }
    }
}

/// Formats like `ss -n`: `10.0.0.1:80`, `[2001:db8::1]:443`, `[::ffff:10.0.0.1]:80`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format_endpoint(self);
        f.pad(&s)
    }
}

/// The text form of an endpoint (see the `Display` impl).
pub fn format_endpoint(e: &Endpoint) -> String {
    if e.v6 {
        format!("[{}]:{}", Ipv6Addr::from(e.addr), e.port)
    } else {
        let a = Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]);
        format!("{}:{}", a, e.port)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    /// Parses `1.2.3.4:80`, `[::1]:80`, `*:80` (IPv4 wildcard) and `[::]:80`.
    fn from_str(s: &str) -> Result<Endpoint, String> {
        let bad = || format!("not an ip:port endpoint: {s:?}");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = if port == "*" {
            0
        } else {
            port.parse().map_err(|_| bad())?
        };
        if host == "*" {
            return Ok(Endpoint::v4([0; 4], port));
        }
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            // ss appends %iface to link-local and interface-bound addresses.
            let inner = inner.split('%').next().unwrap_or(inner);
            let a: Ipv6Addr = inner.parse().map_err(|_| bad())?;
            return Ok(Endpoint::v6(a.octets(), port));
        }
        let host = host.split('%').next().unwrap_or(host);
        let a: Ipv4Addr = host.parse().map_err(|_| bad())?;
        Ok(Endpoint::v4(a.octets(), port))
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_ss() {
        assert_eq!(
            Endpoint::v4([10, 0, 0, 38], 51892).to_string(),
            "10.0.0.38:51892"
        );
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(Endpoint::v6(v6, 80).to_string(), "[::1]:80");
        assert!(Endpoint::v4([0; 4], 22).is_wildcard());
    }

    #[test]
    fn parses_what_it_prints() {
        for s in [
            "10.0.0.38:51892",
            "[::1]:80",
            "[::ffff:127.0.0.1]:8080",
            "0.0.0.0:0",
        ] {
            let e: Endpoint = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
        }
        assert_eq!(
            "*:22".parse::<Endpoint>().unwrap().to_string(),
            "0.0.0.0:22"
        );
        assert_eq!(
            "[fe80::1%eth0]:22".parse::<Endpoint>().unwrap().to_string(),
            "[fe80::1]:22"
        );
        assert!("nonsense".parse::<Endpoint>().is_err());
    }
}
