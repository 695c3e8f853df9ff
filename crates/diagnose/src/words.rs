//! Small formatting helpers shared by the rules' titles and evidence.

/// 0.4251 → "42.5%".
pub fn pct(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{:.0}%", ratio * 100.0)
    } else {
        format!("{:.1}%", ratio * 100.0)
    }
}

/// 4000.0 s → "1h06m".
pub fn ago(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{} days", s / 86_400),
    }
}

/// The smallest power of two ≥ n (a friendly value for a limit).
pub fn pow2_at_least(n: u64) -> u64 {
    n.max(1).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats() {
        assert_eq!(pct(0.4251), "42.5%");
        assert_eq!(pct(12.0), "1200%");
        assert_eq!(ago(30.0), "30 s");
        assert_eq!(ago(4000.0), "66 min");
        assert_eq!(ago(8000.0), "2h13m");
        assert_eq!(pow2_at_least(1000), 1024);
    }
}
