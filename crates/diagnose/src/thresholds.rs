//! The thresholds every rule reads, with their defaults: the one place they are
//! defined. `--threshold NAME=VALUE` and the config file's `[thresholds]` table
//! change them; the README's table is checked against this list by a test.

use std::collections::BTreeMap;

/// One configurable threshold.
#[derive(Debug)]
pub struct ThresholdDef {
    pub name: &'static str,
    pub default: f64,
    /// What the value is compared with, and what crossing it means.
    pub doc: &'static str,
}

const fn def(name: &'static str, default: f64, doc: &'static str) -> ThresholdDef {
    ThresholdDef { name, default, doc }
}

#[rustfmt::skip] // a table: one threshold a line
pub static THRESHOLDS: &[ThresholdDef] = &[
    def("orphans.warning", 0.25, "orphans / tcp_max_orphans for a warning: 4× the orphans (the kernel's largest penalty) reach the limit"),
    def("orphans.critical", 0.5, "orphans / tcp_max_orphans for critical: 2× the orphans reach the limit"),
    def("teardown.min", 100.0, "sockets in FIN-WAIT-1 + LAST-ACK + CLOSING in one namespace for a teardown-stall warning"),
    def("teardown.critical", 10000.0, "... for critical"),
    def("teardown.share", 0.5, "share of a state's sockets on one endpoint for it to be named as the concentration"),
    def("timewait.warning", 0.8, "TIME-WAIT / tcp_max_tw_buckets (per namespace) for a warning"),
    def("timewait.critical", 0.95, "... for critical"),
    def("close-wait.warning", 10.0, "CLOSE-WAIT sockets held by one process for a warning"),
    def("close-wait.critical", 1000.0, "... for critical"),
    def("socket-leak.warning", 10.0, "TCP sockets in no table (CLOSE) held by one process for a warning"),
    def("socket-leak.critical", 1000.0, "... for critical"),
    def("ports.warning", 0.7, "ephemeral ports in use / ports in ip_local_port_range (in total or towards one destination) for a warning"),
    def("ports.critical", 0.9, "... for critical"),
    def("fd.warning", 0.8, "open fds / soft RLIMIT_NOFILE of a process, or file-nr / file-max, for a warning"),
    def("fd.critical", 0.95, "... for critical"),
    def("accept.warning", 0.8, "accept queue / (backlog + 1) of a listener for a warning (full, with ListenOverflows rising: critical)"),
    def("syn.warning", 0.5, "SYN-RECV / backlog of a listener for a warning (TCPReqQFullDrop rising: critical)"),
    def("syn.min", 16.0, "fewest SYN-RECV sockets on a listener worth a finding"),
    def("tcp-mem.critical", 0.9, "sockstat mem / tcp_mem max for critical (above tcp_mem pressure: warning)"),
    def("conntrack.warning", 0.8, "nf_conntrack_count / nf_conntrack_max for a warning"),
    def("conntrack.critical", 0.95, "... for critical"),
    def("kernel-log.recent", 3600.0, "seconds: a kernel message seen within this long is a warning, older ones info"),
    def("capture.fin-wait-warning-ms", 1000.0, "pcap: milliseconds from a FIN to its ACK (or to the capture's end) for a teardown-stall warning on a server endpoint; any FIN retransmission is one too"),
    def("capture.fin-wait-critical-ms", 10000.0, "pcap: ... for critical (the orphan's retries are being spent)"),
    def("capture.syn-unanswered-min", 1.0, "pcap: connections to one listener whose SYN got neither SYN-ACK nor RST, or whose SYN-ACK was sent again, for a syn-unanswered warning"),
    def("capture.reset-min", 10.0, "pcap: connections ended by a RST for a reset-storm warning, if they are also capture.reset-share of all"),
    def("capture.reset-share", 0.2, "pcap: connections ended by a RST / connections in the capture for a reset-storm warning"),
];

/// A set of threshold values: the defaults, with some changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    values: BTreeMap<&'static str, f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThresholdError {
    #[error("unknown threshold {0:?} (known: {known})", known = THRESHOLDS.iter().map(|t| t.name).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("threshold {name}: {value:?} is not a number >= 0")]
    BadValue { name: String, value: String },
    #[error("--threshold {0:?}: expected NAME=VALUE")]
    NoEquals(String),
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            values: THRESHOLDS.iter().map(|t| (t.name, t.default)).collect(),
        }
    }
}

impl Thresholds {
    /// The value of a threshold. Panics on a name not in [`THRESHOLDS`]: that is a
    /// bug in a rule, caught by the unit tests.
    pub fn get(&self, name: &str) -> f64 {
        match self.values.get(name) {
            Some(v) => *v,
            None => panic!("rule reads unknown threshold {name}"),
        }
    }

    pub fn set(&mut self, name: &str, value: f64) -> Result<(), ThresholdError> {
        let def = THRESHOLDS
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ThresholdError::Unknown(name.to_string()))?;
        if !(value.is_finite() && value >= 0.0) {
            return Err(ThresholdError::BadValue {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        self.values.insert(def.name, value);
        Ok(())
    }

    /// `NAME=VALUE`, as `--threshold` takes it.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ThresholdError> {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| ThresholdError::NoEquals(pair.to_string()))?;
        let (name, value) = (name.trim(), value.trim());
        let v: f64 = value.parse().map_err(|_| ThresholdError::BadValue {
            name: name.to_string(),
            value: value.to_string(),
        })?;
        self.set(name, v)
    }

    /// The values that differ from the defaults.
    pub fn changed(&self) -> Vec<(&'static str, f64)> {
        THRESHOLDS
            .iter()
            .filter(|t| self.get(t.name) != t.default)
            .map(|t| (t.name, self.get(t.name)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_and_unknown_names_are_refused() {
        let mut t = Thresholds::default();
        t.set_pair("teardown.min = 50").unwrap();
        assert_eq!(t.get("teardown.min"), 50.0);
        assert_eq!(t.changed(), vec![("teardown.min", 50.0)]);
        assert!(matches!(
            t.set_pair("nope=1"),
            Err(ThresholdError::Unknown(_))
        ));
        assert!(matches!(
            t.set_pair("fd.warning=-1"),
            Err(ThresholdError::BadValue { .. })
        ));
        assert!(matches!(
            t.set_pair("fd.warning=x"),
            Err(ThresholdError::BadValue { .. })
        ));
        assert!(matches!(
            t.set_pair("fd.warning"),
            Err(ThresholdError::NoEquals(_))
        ));
    }

    #[test]
    fn every_rule_names_known_thresholds() {
        for r in crate::CATALOG.iter() {
            for name in r.thresholds {
                assert!(
                    THRESHOLDS.iter().any(|t| t.name == *name),
                    "{}: {name}",
                    r.code
                );
            }
        }
    }
}
