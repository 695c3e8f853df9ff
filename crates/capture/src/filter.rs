//! `--filter`: which packets the analysis counts.

use std::net::IpAddr;

use crate::decode::TcpSegment;

/// Which packets to analyse: `host:ADDR` and `port:N` terms. A packet passes when
/// one of its addresses is one of the hosts (if any is given) and one of its ports is
/// one of the ports (if any is given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub hosts: Vec<IpAddr>,
    pub ports: Vec<u16>,
}

impl Filter {
    /// Parses the terms (`host:10.0.0.1`, `host:::1`, `port:443`).
    pub fn parse<S: AsRef<str>>(terms: &[S]) -> Result<Filter, String> {
        let mut f = Filter::default();
        for t in terms {
            let t = t.as_ref();
            if let Some(a) = t.strip_prefix("host:") {
                let a = a.trim_start_matches('[').trim_end_matches(']');
                f.hosts.push(
                    a.parse()
                        .map_err(|_| format!("{t:?}: not an IP address after host:"))?,
                );
            } else if let Some(p) = t.strip_prefix("port:") {
                f.ports.push(
                    p.parse()
                        .map_err(|_| format!("{t:?}: not a port number after port:"))?,
                );
            } else {
                return Err(format!("{t:?}: a filter is host:ADDR or port:N"));
            }
        }
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.ports.is_empty()
    }

    pub fn matches(&self, s: &TcpSegment) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| *h == s.src || *h == s.dst))
            && (self.ports.is_empty()
                || self
                    .ports
                    .iter()
                    .any(|p| *p == s.src_port || *p == s.dst_port))
    }
}
