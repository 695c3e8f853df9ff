//! Calendar arithmetic for log timestamps, without a date library: the few
//! conversions a kernel log needs (epoch seconds to RFC 3339, the pieces of a
//! `dmesg -T` or syslog stamp to a date-time string).

/// `Jan`..`Dec` as 1..12.
pub(crate) fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

/// Whether `name` is an English weekday abbreviation, as `dmesg -T` and
/// `journalctl -o short-full` print them.
pub(crate) fn is_weekday(name: &str) -> bool {
    matches!(name, "Mon" | "Tue" | "Wed" | "Thu" | "Fri" | "Sat" | "Sun")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Seconds since the epoch as an RFC 3339 UTC date-time with whole seconds
/// (`2026-11-22T05:58:03Z`), like the report's `taken_at`. Whole seconds because a
/// time derived from a kernel uptime is only as good as the boot-time estimate.
/// `None` outside the years 0000-9999 (garbage uptimes, absurd boot times).
pub fn format_rfc3339_utc(epoch_s: f64) -> Option<String> {
    if !epoch_s.is_finite() {
        return None;
    }
    let secs = epoch_s.floor();
    // Year 0 to year 9999 in seconds since 1970.
    if !(-62_167_219_200.0..253_402_300_800.0).contains(&secs) {
        return None;
    }
    let secs = secs as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, d) = civil_from_days(days);
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    ))
}

/// `HH:MM:SS` with each field in range, optionally followed by a fraction
/// (`.123456` or `,123456`): returns the time part with a `.` fraction.
pub(crate) fn clock_time(s: &str) -> Option<String> {
    let (hms, frac) = match s.find(['.', ',']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let h = two_digits(&hms[0..2])?;
    let m = two_digits(&hms[3..5])?;
    let sec = two_digits(&hms[6..8])?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    match frac {
        None => Some(hms.to_string()),
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|c| c.is_ascii_digit()) => {
            Some(format!("{hms}.{f}"))
        }
        Some(_) => None,
    }
}

/// `YYYY-MM-DD` with each field in range.
pub(crate) fn calendar_date(s: &str) -> Option<(u32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = two_digits(&s[5..7])?;
    let day = two_digits(&s[8..10])?;
    valid_date(year, month, day).then_some((year, month, day))
}

/// A plausible calendar date (day within 1..=31; exact month lengths do not matter
/// for parsing logs).
pub(crate) fn valid_date(year: u32, month: u32, day: u32) -> bool {
    year <= 9999 && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// A UTC offset as RFC 3339 wants it: `Z`, `+00:00`; accepts `+0000`, `+00:00`,
/// `Z`, and the zone names `UTC`/`GMT` (as `journalctl -o short-full` prints).
pub(crate) fn utc_offset(s: &str) -> Option<String> {
    match s {
        "Z" | "z" | "UTC" | "GMT" => return Some("Z".to_string()),
        _ => {}
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => ('+', &s[1..]),
        Some(b'-') => ('-', &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.len() {
        4 => (&rest[0..2], &rest[2..4]),
        5 if rest.as_bytes()[2] == b':' => (&rest[0..2], &rest[3..5]),
        _ => return None,
    };
    let (hh, mm) = (two_digits(h)?, two_digits(m)?);
    (hh <= 23 && mm <= 59).then(|| format!("{sign}{hh:02}:{mm:02}"))
}

/// An ISO 8601 / RFC 3339 date-time as the log tools print it
/// (`2026-11-22T05:58:03+0000`, `2026-11-22T06:06:58,642665+00:00`,
/// `2026-11-22T05:58:03.123456Z`), normalised to RFC 3339
/// (`2026-11-22T05:58:03+00:00`). `None` if it is not one.
pub(crate) fn iso_datetime(s: &str) -> Option<String> {
    let (date, rest) = (s.get(..10)?, s.get(10..)?);
    calendar_date(date)?;
    let rest = rest.strip_prefix(['T', 't'])?;
    let zone_at = rest
        .char_indices()
        .skip(8)
        .find(|(_, c)| matches!(c, '+' | '-' | 'Z' | 'z'))
        .map(|(i, _)| i)?;
    let time = clock_time(&rest[..zone_at])?;
    let zone = utc_offset(&rest[zone_at..])?;
    Some(format!("{date}T{time}{zone}"))
}

fn two_digits(s: &str) -> Option<u32> {
    (s.len() == 2).then_some(())?;
    digits(s)
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_become_rfc3339() {
        assert_eq!(
            format_rfc3339_utc(0.0).as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        // `date -u -d @1795327614` = Sun Nov 22 06:06:54 UTC 2026.
        assert_eq!(
            format_rfc3339_utc(1_795_327_614.9).as_deref(),
            Some("2026-11-22T06:06:54Z")
        );
        assert_eq!(
            format_rfc3339_utc(951_782_400.0).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            format_rfc3339_utc(-1.0).as_deref(),
            Some("1969-12-31T23:59:59Z")
        );
        assert_eq!(format_rfc3339_utc(f64::NAN), None);
        assert_eq!(format_rfc3339_utc(1e300), None);
    }

    #[test]
    fn iso_stamps_are_normalised() {
        assert_eq!(
            iso_datetime("2026-11-22T05:58:03+0000").as_deref(),
            Some("2026-11-22T05:58:03+00:00")
        );
        assert_eq!(
            iso_datetime("2026-11-22T06:06:58,642665+00:00").as_deref(),
            Some("2026-11-22T06:06:58.642665+00:00")
        );
        assert_eq!(
            iso_datetime("2026-11-22T06:06:58.5Z").as_deref(),
            Some("2026-11-22T06:06:58.5Z")
        );
        assert_eq!(
            iso_datetime("2026-11-22T06:06:58-0130").as_deref(),
            Some("2026-11-22T06:06:58-01:30")
        );
        for bad in [
            "2026-11-22T06:06:58",
            "2026-13-22T06:06:58Z",
            "2026-11-22 06:06:58Z",
            "2026-11-22T25:06:58Z",
            "2026-11-22T06:06:58+9",
            "2026-11-2",
            "",
        ] {
            assert_eq!(iso_datetime(bad), None, "{bad}");
        }
    }
}
