//! TCP states with the names `ss` prints, plus sockmedic's two pseudo-states.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A TCP state as sockmedic reports it. The discriminants of the real states are
/// the kernel's numbers (include/net/tcp_states.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    /// CLOSE: only seen through the bound-inactive dump (the kernel reports 7 there).
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    /// Bound, neither listening nor connected: the kernel's request-only state 13
    /// (6.8+), answered as CLOSE.
    BoundInactive = 13,
    /// Allocated and in no table: known only from a process's fds.
    Unhashed = 14,
}

impl TcpState {
    /// Every state in report order (the order `ss` users expect to read them).
    pub const ALL: [TcpState; 13] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::BoundInactive,
        TcpState::Unhashed,
        TcpState::Close,
    ];

    /// The states a sock_diag dump can return as themselves (kernel numbers 1..=11
    /// without CLOSE, which only comes back for a bound-inactive request).
    pub const DUMPABLE: [TcpState; 10] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    /// Orphan-capable states after the application closed (kernel-notes §2.1).
    pub const POST_CLOSE: [TcpState; 5] = [
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::LastAck,
        TcpState::Closing,
    ];

    /// The state for a kernel state number as found in `inet_diag_msg.idiag_state`.
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        Some(match n {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 | 12 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            13 => TcpState::BoundInactive,
            _ => return None,
        })
    }

    /// The kernel's number, for `idiag_states` masks (pseudo-states have none
    /// except bound-inactive's request bit).
    pub fn kernel_number(self) -> Option<u8> {
        match self {
            TcpState::Unhashed => None,
            s => Some(s as u8),
        }
    }

    /// The name as `ss` prints it (and as the JSON report spells it).
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::BoundInactive => "BOUND-INACTIVE",
            TcpState::Unhashed => "UNHASHED",
        }
    }

    /// Parses a state name: the report's spelling, `ss`'s short forms (`ESTAB`,
    /// `UNCONN`), `netstat`'s (`FIN_WAIT1`, `SYN_RECV`, `TIME_WAIT`) and `ss`'s
    /// lower-case filter words (`fin-wait-1`, `syn-recv`), case-insensitively.
    pub fn parse(s: &str) -> Option<TcpState> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_uppercase)
            .collect();
        Some(match norm.as_str() {
            "ESTABLISHED" | "ESTAB" => TcpState::Established,
            "SYNSENT" => TcpState::SynSent,
            "SYNRECV" | "SYNRECEIVED" => TcpState::SynRecv,
            "FINWAIT1" => TcpState::FinWait1,
            "FINWAIT2" => TcpState::FinWait2,
            "TIMEWAIT" => TcpState::TimeWait,
            "CLOSE" | "CLOSED" | "UNCONN" => TcpState::Close,
            "CLOSEWAIT" => TcpState::CloseWait,
            "LASTACK" => TcpState::LastAck,
            "LISTEN" | "LISTENING" => TcpState::Listen,
            "CLOSING" => TcpState::Closing,
            "BOUNDINACTIVE" | "BOUND" => TcpState::BoundInactive,
            "UNHASHED" => TcpState::Unhashed,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        // Position in the fixed array of StateCounts.
        match self {
            TcpState::Unhashed => 12,
            TcpState::BoundInactive => 11,
            s => s as usize - 1,
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for TcpState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TcpState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TcpState::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown TCP state {s:?}")))
    }
}

/// Counts per state; a state that was not looked at is absent (`None`), which is
/// different from a count of zero. Serializes as a JSON object keyed by state name,
/// in report order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts([Option<u64>; 13]);

impl StateCounts {
    pub fn get(&self, s: TcpState) -> Option<u64> {
        self.0[s.index()]
    }
    pub fn set(&mut self, s: TcpState, n: u64) {
        self.0[s.index()] = Some(n);
    }
    /// Adds to a state, making it present.
    pub fn add(&mut self, s: TcpState, n: u64) {
        let slot = &mut self.0[s.index()];
        *slot = Some(slot.unwrap_or(0) + n);
    }
    /// The count, or 0 when the state was not looked at.
    pub fn count(&self, s: TcpState) -> u64 {
        self.get(s).unwrap_or(0)
    }
    /// Present states with their counts, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (TcpState, u64)> + '_ {
        TcpState::ALL
            .iter()
            .filter_map(move |s| self.get(*s).map(|n| (*s, n)))
    }
    /// Sum over the states that are real kernel table entries (everything except
    /// the pseudo-states BOUND-INACTIVE, UNHASHED and CLOSE).
    pub fn total_in_tables(&self) -> u64 {
        TcpState::DUMPABLE.iter().map(|s| self.count(*s)).sum()
    }
    /// Adds every present count of `other` into `self`.
    pub fn merge(&mut self, other: &StateCounts) {
        for (s, n) in other.iter() {
            self.add(s, n);
        }
    }
}

impl Serialize for StateCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.iter().count();
        let mut map = s.serialize_map(Some(n))?;
        for (state, count) in self.iter() {
            map.serialize_entry(state.name(), &count)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StateCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StateCounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from TCP state names to counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StateCounts, A::Error> {
                let mut out = StateCounts::default();
                while let Some((k, v)) = m.next_entry::<String, u64>()? {
                    let s = TcpState::parse(&k).ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown TCP state {k:?}"))
                    })?;
                    out.set(s, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_round_trip() {
        for s in TcpState::DUMPABLE {
            assert_eq!(TcpState::from_kernel(s.kernel_number().unwrap()), Some(s));
        }
        assert_eq!(TcpState::from_kernel(12), Some(TcpState::SynRecv));
        assert_eq!(TcpState::from_kernel(0), None);
    }

    #[test]
    fn parses_every_spelling() {
        assert_eq!(TcpState::parse("ESTAB"), Some(TcpState::Established));
        assert_eq!(TcpState::parse("FIN_WAIT1"), Some(TcpState::FinWait1));
        assert_eq!(TcpState::parse("fin-wait-1"), Some(TcpState::FinWait1));
        assert_eq!(TcpState::parse("TIME-WAIT"), Some(TcpState::TimeWait));
        assert_eq!(TcpState::parse("SYN_RECV"), Some(TcpState::SynRecv));
        assert_eq!(TcpState::parse("bogus"), None);
        for s in TcpState::ALL {
            assert_eq!(TcpState::parse(s.name()), Some(s), "{s}");
        }
    }

    #[test]
    fn counts_serialize_in_order_and_back() {
        let mut c = StateCounts::default();
        c.set(TcpState::Listen, 2);
        c.add(TcpState::Established, 5);
        c.add(TcpState::Established, 1);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(j, r#"{"ESTABLISHED":6,"LISTEN":2}"#);
        let back: StateCounts = serde_json::from_str(&j).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.get(TcpState::TimeWait), None);
        assert_eq!(back.total_in_tables(), 8);
    }
}
