//! One line of a kernel log, in whichever shape the tool that printed it gave:
//! `/dev/kmsg`, `dmesg` (plain, `-r`, `-x`, `-T`, `--time-format iso`),
//! `journalctl -k` (every `short-*` output), syslog files (rsyslog's traditional and
//! RFC 3339 formats, with or without the kernel's bracketed uptime), or a bare message.
//!
//! The parser is a chain of small recognisers, each tried in turn; anything none of
//! them recognises is a bare message, so no input is ever rejected for its shape.

use super::time;

/// The shape a line came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// `/dev/kmsg`: `PRI,SEQ,USEC,FLAGS[,...];MESSAGE`.
    Kmsg,
    /// `dmesg`: `[  123.456789] msg`; also `dmesg -r` (`<6>[...] msg`) and `dmesg -x`
    /// (`kern  :info  : [...] msg`).
    Dmesg,
    /// `dmesg -T`: `[Sun Nov 22 05:58:03 2026] msg`.
    DmesgCtime,
    /// `dmesg --time-format iso`: `2026-11-22T06:06:58,642665+00:00 msg`.
    DmesgIso,
    /// A syslog-style line `STAMP HOST TAG: msg`: every `journalctl -o short*`
    /// output and rsyslog files, with or without the bracketed uptime after `kernel:`.
    Syslog,
    /// A message with no recognised prefix.
    Bare,
}

/// One parsed line. The message borrows from the input.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine<'a> {
    pub format: LineFormat,
    /// The syslog priority (`facility * 8 + level`) when the line carries it
    /// (`/dev/kmsg`, `dmesg -r`).
    pub priority: Option<u32>,
    /// Seconds since boot on the kernel's log clock (`/dev/kmsg`, `dmesg`, syslog
    /// lines that kept the `[ 12.345678]` stamp, `journalctl -o short-monotonic`).
    pub uptime_s: Option<f64>,
    /// The wall-clock time the line carries, when the line has a full date:
    /// - an RFC 3339 date-time (`2026-11-22T05:58:03+00:00`) when it also names its
    ///   zone (`journalctl -o short-iso`/`short-full`/`short-unix`, `dmesg
    ///   --time-format iso`, rsyslog's RFC 3339 format);
    /// - `dmesg -T` prints local time without a zone: it becomes an RFC 3339 date-time
    ///   *without an offset* (`2026-11-22T05:58:03`), the local time of the machine
    ///   that printed it, since the zone cannot be known from the line;
    /// - a stamp without a year (`Nov 22 05:58:03`: `journalctl -k`, classic syslog)
    ///   gives `None`: guessing the year would be wrong across New Year and for old
    ///   files.
    pub wall: Option<String>,
    /// True when the line itself proves the kernel did not log it: a `/dev/kmsg` or
    /// `dmesg -r` record of a facility other than `kern` (userspace writes to
    /// /dev/kmsg always get a non-zero facility), a `dmesg -x` line of another
    /// facility, or a syslog line of another program (`sshd[812]:`).
    pub from_userspace: bool,
    /// The host a syslog-style line names (`Nov 22 05:58:03 vm kernel: ...`): lines
    /// of two hosts in one input are two machines' logs mixed.
    pub host: Option<&'a str>,
    /// The message as the kernel logged it, without the prefix (and without a
    /// `[T123]` caller id), trimmed.
    pub message: &'a str,
}

impl<'a> LogLine<'a> {
    fn new(format: LineFormat, message: &'a str) -> LogLine<'a> {
        LogLine {
            format,
            priority: None,
            uptime_s: None,
            wall: None,
            from_userspace: false,
            host: None,
            message: strip_caller_id(message.trim()),
        }
    }
}

/// Parses one line of a kernel log. `None` for blank lines and for the ` KEY=VALUE`
/// dictionary lines that follow a `/dev/kmsg` record. Only the first line of a
/// multi-line input is looked at. Never panics, whatever the input.
pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let line = line.split('\n').next().unwrap_or("").trim_end();
    if line.trim_start().is_empty() || is_kmsg_dictionary(line) || is_journal_marker(line) {
        return None;
    }
    if let Some(parsed) = kmsg(line) {
        return Some(parsed);
    }
    let (priority, rest) = strip_priority(line);
    let (facility_kern, rest) = strip_decoded_facility(rest);
    let mut parsed = bracketed(rest)
        .or_else(|| iso_stamped(rest))
        .or_else(|| bsd_stamped(rest))
        .or_else(|| full_stamped(rest))
        .or_else(|| unix_stamped(rest))
        .unwrap_or_else(|| LogLine::new(LineFormat::Bare, rest));
    if let Some(pri) = priority {
        parsed.priority = Some(pri);
        parsed.from_userspace |= pri >> 3 != 0;
    }
    parsed.from_userspace |= facility_kern == Some(false);
    Some(parsed)
}

/// ` SUBSYSTEM=acpi`, ` DEVICE=+acpi:PNP0A08:00`: the dictionary of a /dev/kmsg record.
fn is_kmsg_dictionary(line: &str) -> bool {
    let Some(rest) = line.strip_prefix(' ') else {
        return false;
    };
    match rest.split_once('=') {
        Some((key, _)) => {
            !key.is_empty()
                && key
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        }
        None => false,
    }
}

/// `-- Boot 0c3e... --`, `-- No entries --`, `-- Logs begin at ... --`: journalctl's
/// own lines, not records.
fn is_journal_marker(line: &str) -> bool {
    line.len() >= 6 && line.starts_with("-- ") && line.ends_with(" --")
}

/// `6,405,9973796775,-;TCP: ...` (and `...,-,caller=T12;msg` on kernels with
/// CONFIG_PRINTK_CALLER).
fn kmsg(line: &str) -> Option<LogLine<'_>> {
    let (prefix, message) = line.split_once(';')?;
    let mut fields = prefix.split(',');
    let priority: u32 = number(fields.next()?)?;
    let _sequence: u64 = number(fields.next()?)?;
    let usec: u64 = number(fields.next()?)?;
    let flags = fields.next()?;
    if flags.len() > 1 {
        return None;
    }
    let mut parsed = LogLine::new(LineFormat::Kmsg, message);
    parsed.priority = Some(priority);
    parsed.from_userspace = priority >> 3 != 0;
    parsed.uptime_s = Some(usec as f64 / 1e6);
    Some(parsed)
}

/// `<6>` at the start (`dmesg -r`).
fn strip_priority(line: &str) -> (Option<u32>, &str) {
    let parsed = line.strip_prefix('<').and_then(|rest| {
        let (digits, rest) = rest.split_once('>')?;
        Some((number::<u32>(digits)?, rest))
    });
    match parsed {
        Some((pri, rest)) => (Some(pri), rest),
        None => (None, line),
    }
}

/// `kern  :info  : ` at the start (`dmesg -x`): whether the facility is `kern`.
fn strip_decoded_facility(line: &str) -> (Option<bool>, &str) {
    const FACILITIES: [&str; 20] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
        "local7",
    ];
    const LEVELS: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
    ];
    let parsed = line.split_once(':').and_then(|(facility, rest)| {
        let facility = facility.trim_end();
        let (level, rest) = rest.split_once(':')?;
        let known = FACILITIES.contains(&facility) && LEVELS.contains(&level.trim_end());
        known.then_some((facility == "kern", rest.strip_prefix(' ').unwrap_or(rest)))
    });
    match parsed {
        Some((kern, rest)) => (Some(kern), rest),
        None => (None, line),
    }
}

/// `[  123.456789] msg` (dmesg), `[ 123.456789 <    0.000123>] msg` (dmesg -d),
/// `[<    0.000123>] msg` (dmesg --time-format delta: no uptime, only the time since
/// the previous record), `[  +0.000123] msg` (the same in older util-linux),
/// `[Sun Nov 22 05:58:03 2026] msg` (dmesg -T),
/// `[  123.456789] host kernel: msg` (journalctl -o short-monotonic).
fn bracketed(line: &str) -> Option<LogLine<'_>> {
    let (inside, rest) = line.strip_prefix('[')?.split_once(']')?;
    if let Some(delta) = inside.strip_prefix('<').and_then(|d| d.strip_suffix('>')) {
        uptime(delta)?;
        return Some(LogLine::new(LineFormat::Dmesg, rest));
    }
    if let Some(delta) = inside.trim_start().strip_prefix('+') {
        uptime(delta)?;
        return Some(LogLine::new(LineFormat::Dmesg, rest));
    }
    let inside = inside.split('<').next().unwrap_or(inside);
    if let Some(uptime) = uptime(inside) {
        let mut parsed = match syslog_tail(rest, false) {
            Some(tail) => tail.into_line(),
            None => LogLine::new(LineFormat::Dmesg, rest),
        };
        parsed.uptime_s = Some(uptime);
        return Some(parsed);
    }
    let wall = ctime(inside.trim())?;
    let mut parsed = LogLine::new(LineFormat::DmesgCtime, rest);
    parsed.wall = Some(wall);
    Some(parsed)
}

/// `2026-11-22T05:58:03+0000 host kernel: msg` (journalctl -o short-iso, rsyslog's
/// RFC 3339 format) or `2026-11-22T06:06:58,642665+00:00 msg` (dmesg --time-format
/// iso).
fn iso_stamped(line: &str) -> Option<LogLine<'_>> {
    let (stamp, rest) = line.split_once(' ')?;
    let wall = time::iso_datetime(stamp)?;
    let mut parsed = match syslog_tail(rest, false) {
        Some(tail) => tail.into_line(),
        None => LogLine::new(LineFormat::DmesgIso, rest),
    };
    parsed.wall = Some(wall);
    Some(parsed)
}

/// `Nov 22 05:58:03 host kernel: msg` and `Nov  2 06:07:08.060113 host kernel: msg`
/// (journalctl -k, short-precise, classic syslog): no year, so no wall time.
fn bsd_stamped(line: &str) -> Option<LogLine<'_>> {
    let (month, rest) = line.split_once(' ')?;
    time::month_number(month)?;
    let (day, rest) = rest.trim_start().split_once(' ')?;
    let day: u32 = number(day)?;
    let (clock, rest) = rest.split_once(' ')?;
    time::clock_time(clock)?;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some(syslog_tail(rest, true)?.into_line())
}

/// `Sun 2026-11-22 06:09:50 UTC host kernel: msg` (journalctl -o short-full).
fn full_stamped(line: &str) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(5, ' ');
    let weekday = parts.next()?;
    let (date, clock, zone, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !time::is_weekday(weekday) {
        return None;
    }
    time::calendar_date(date)?;
    let clock = time::clock_time(clock)?;
    let mut parsed = syslog_tail(rest, true)?.into_line();
    parsed.wall = Some(match time::utc_offset(zone) {
        Some(offset) => format!("{date}T{clock}{offset}"),
        // A zone name (CET, PDT) does not give the offset without a zone database.
        None => format!("{date}T{clock}"),
    });
    Some(parsed)
}

/// `1795327790.501719 host kernel: msg` (journalctl -o short-unix).
fn unix_stamped(line: &str) -> Option<LogLine<'_>> {
    let (stamp, rest) = line.split_once(' ')?;
    if !stamp.contains('.') {
        return None;
    }
    let epoch = uptime(stamp)?;
    let mut parsed = syslog_tail(rest, false)?.into_line();
    parsed.wall = time::format_rfc3339_utc(epoch);
    Some(parsed)
}

/// What follows a syslog stamp: `host tag: message`.
struct SyslogTail<'a> {
    host: &'a str,
    kernel: bool,
    message: &'a str,
}

impl<'a> SyslogTail<'a> {
    /// The line, with the `[ 12.345678]` uptime rsyslog keeps after `kernel:`.
    fn into_line(self) -> LogLine<'a> {
        let mut parsed = LogLine::new(LineFormat::Syslog, self.message);
        parsed.from_userspace = !self.kernel;
        parsed.host = Some(self.host);
        if let Some((inside, rest)) = self
            .message
            .trim_start()
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
        {
            if let Some(uptime) = uptime(inside) {
                parsed.uptime_s = Some(uptime);
                parsed.message = strip_caller_id(rest.trim());
            }
        }
        parsed
    }
}

/// `host kernel: msg` or `host prog[pid]: msg`. With `any_tag` (the stamp alone
/// proved a syslog line), any single-word tag is accepted; otherwise only `kernel`
/// and `name[pid]`, so that a dmesg message such as `TCP: request_sock_TCP: ...`
/// is not taken for a host and a tag.
fn syslog_tail(s: &str, any_tag: bool) -> Option<SyslogTail<'_>> {
    let s = s.trim_start();
    let (host, rest) = s.split_once(' ')?;
    if host.is_empty() || host.ends_with(':') {
        return None;
    }
    let (tag, message) = rest.split_once(':')?;
    if tag.is_empty() || tag.contains(char::is_whitespace) {
        return None;
    }
    let kernel = tag == "kernel" || tag.starts_with("kernel[");
    if !(kernel || any_tag || is_program_with_pid(tag)) {
        return None;
    }
    Some(SyslogTail {
        host,
        kernel,
        message,
    })
}

/// `sshd[812]`.
fn is_program_with_pid(tag: &str) -> bool {
    tag.strip_suffix(']')
        .and_then(|t| t.split_once('['))
        .is_some_and(|(name, pid)| !name.is_empty() && number::<u32>(pid).is_some())
}

/// `  123.456789` (digits, at most one dot) as seconds.
fn uptime(s: &str) -> Option<f64> {
    let s = s.trim();
    let valid = !s.is_empty()
        && !s.starts_with('.')
        && s.bytes().filter(|&c| c == b'.').count() <= 1
        && s.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    if !valid {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `Sun Nov 22 05:58:03 2026` as `2026-11-22T05:58:03` (local time, zone unknown).
fn ctime(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [weekday, month, day, clock, year] = parts.as_slice() else {
        return None;
    };
    if !time::is_weekday(weekday) {
        return None;
    }
    let month = time::month_number(month)?;
    let day: u32 = number(day)?;
    let year: u32 = number(year)?;
    let clock = time::clock_time(clock)?;
    time::valid_date(year, month, day).then(|| format!("{year:04}-{month:02}-{day:02}T{clock}"))
}

/// `[T123] msg`, `[    T1] msg`, `[C2] msg`: the caller id of CONFIG_PRINTK_CALLER.
fn strip_caller_id(message: &str) -> &str {
    let Some((inside, rest)) = message.strip_prefix('[').and_then(|r| r.split_once(']')) else {
        return message;
    };
    let inside = inside.trim_start();
    let is_caller = inside
        .strip_prefix(['T', 'C'])
        .is_some_and(|n| number::<u32>(n).is_some());
    if is_caller {
        rest.trim_start()
    } else {
        message
    }
}

/// ASCII digits only (no sign, no spaces) as a number.
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> LogLine<'_> {
        parse_line(line).unwrap_or_else(|| panic!("not parsed: {line:?}"))
    }

    #[test]
    fn kmsg_records() {
        let l = parse("6,405,9973796775,-;TCP: request_sock_TCPv6: Possible SYN flooding on port [::1]:443. Sending cookies.");
        assert_eq!(l.format, LineFormat::Kmsg);
        assert_eq!(l.priority, Some(6));
        assert_eq!(l.uptime_s, Some(9973.796775));
        assert!(!l.from_userspace);
        assert!(l.message.starts_with("TCP: request_sock_TCPv6: Possible"));
        let l = parse("4,12,3000000,-,caller=T42;[T42] socket: no more sockets");
        assert_eq!(l.message, "socket: no more sockets");
        assert_eq!(l.uptime_s, Some(3.0));
        // A userspace write (`echo ... > /dev/kmsg`) gets facility user (1).
        assert!(parse("12,500,9999000000,-;TCP: too many orphaned sockets").from_userspace);
        assert_eq!(parse_line(" SUBSYSTEM=acpi"), None);
        assert_eq!(parse_line(" DEVICE=+acpi:PNP0A08:00"), None);
        // A continued record's dictionary is cut off: only the first line counts.
        assert_eq!(
            parse("6,1,2,-;msg\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:00.0").message,
            "msg"
        );
    }

    #[test]
    fn dmesg_forms() {
        let l = parse("[ 9868.268383] TCP: too many orphaned sockets");
        assert_eq!(
            (l.format, l.uptime_s),
            (LineFormat::Dmesg, Some(9868.268383))
        );
        assert_eq!(l.message, "TCP: too many orphaned sockets");
        let l = parse(
            "<3>[ 9977.642665] ip_local_port_range: prefer different parity for start/end values.",
        );
        assert_eq!((l.priority, l.uptime_s), (Some(3), Some(9977.642665)));
        let l = parse("kern  :err   : [ 9977.642665] ip_local_port_range: x");
        assert_eq!(
            (l.message, l.from_userspace),
            ("ip_local_port_range: x", false)
        );
        assert!(
            parse("user  :warn  : [ 9977.642665] TCP: too many orphaned sockets").from_userspace
        );
        let l = parse("[Sun Nov 22 06:06:58 2026] ip_local_port_range: x");
        assert_eq!(l.format, LineFormat::DmesgCtime);
        assert_eq!(l.wall.as_deref(), Some("2026-11-22T06:06:58"));
        assert_eq!(l.uptime_s, None);
        let l = parse("2026-11-22T06:06:58,642665+00:00 TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8443. Dropping request.");
        assert_eq!(l.format, LineFormat::DmesgIso);
        assert_eq!(l.wall.as_deref(), Some("2026-11-22T06:06:58.642665+00:00"));
        assert!(l.message.starts_with("TCP: request_sock_TCP: Possible"));
        let l = parse("[ 9975.097350 <    0.667859>] TCP: x");
        assert_eq!((l.uptime_s, l.message), (Some(9975.09735), "TCP: x"));
        let l = parse("[<    2.807312>] TCP: x");
        assert_eq!(
            (l.format, l.uptime_s, l.message),
            (LineFormat::Dmesg, None, "TCP: x")
        );
        let l = parse("[  +0.667859] TCP: x");
        assert_eq!(
            (l.format, l.uptime_s, l.message),
            (LineFormat::Dmesg, None, "TCP: x")
        );
        let l = parse("[    1.000000] [    T1] VFS: file-max limit 65536 reached");
        assert_eq!(l.message, "VFS: file-max limit 65536 reached");
    }

    #[test]
    fn syslog_forms() {
        let l = parse("Nov 22 06:07:08 vm kernel: TCP: too many orphaned sockets");
        assert_eq!(
            (l.format, l.wall.as_deref(), l.uptime_s),
            (LineFormat::Syslog, None, None)
        );
        assert_eq!(l.message, "TCP: too many orphaned sockets");
        let l = parse("Nov  2 06:07:34 vm kernel: [ 9973.796775] TCP: x");
        assert_eq!((l.uptime_s, l.message), (Some(9973.796775), "TCP: x"));
        let l = parse("Nov 22 06:07:08.060113 vm kernel: TCP: x");
        assert_eq!(l.message, "TCP: x");
        let l = parse("2026-11-22T06:07:08+0000 vm kernel: TCP: x");
        assert_eq!(l.wall.as_deref(), Some("2026-11-22T06:07:08+00:00"));
        assert_eq!((l.format, l.message), (LineFormat::Syslog, "TCP: x"));
        let l = parse("2026-11-22T06:07:34.123456+00:00 vm kernel: [ 12.5] TCP: x");
        assert_eq!((l.uptime_s, l.message), (Some(12.5), "TCP: x"));
        let l = parse("Sun 2026-11-22 06:09:50 UTC vm kernel: TCP: x");
        assert_eq!(l.wall.as_deref(), Some("2026-11-22T06:09:50Z"));
        let l = parse("Sun 2026-11-22 06:09:50 CET vm kernel: TCP: x");
        assert_eq!(l.wall.as_deref(), Some("2026-11-22T06:09:50"));
        let l = parse("1795327790.501719 vm kernel: TCP: x");
        assert_eq!(l.wall.as_deref(), Some("2026-11-22T06:09:50Z"));
        let l = parse("[ 9973.796775] vm kernel: TCP: x");
        assert_eq!(
            (l.format, l.uptime_s, l.message),
            (LineFormat::Syslog, Some(9973.796775), "TCP: x")
        );
        let l = parse("Nov 22 06:07:08 vm sshd[812]: TCP: too many orphaned sockets");
        assert!(l.from_userspace);
        assert!(parse("Nov 22 06:07:08 vm CRON: x").from_userspace);
    }

    #[test]
    fn bare_and_lookalikes() {
        let l = parse("TCP: too many orphaned sockets");
        assert_eq!(
            (l.format, l.message),
            (LineFormat::Bare, "TCP: too many orphaned sockets")
        );
        // dmesg messages that look like a syslog tail or a bracketed stamp.
        assert_eq!(
            parse("[Firmware Bug]: TSC doesn't count").format,
            LineFormat::Bare
        );
        assert_eq!(
            parse("[ 1.0] TCP: request_sock_TCP: x").message,
            "TCP: request_sock_TCP: x"
        );
        assert_eq!(
            parse("Nov 99 06:07:08 vm kernel: x").format,
            LineFormat::Bare
        );
        assert_eq!(parse("  padded  ").message, "padded");
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("   \t "), None);
        assert_eq!(parse_line("\r\n"), None);
        assert_eq!(parse_line("-- No entries --"), None);
        assert_eq!(
            parse_line("-- Boot 0c3e9a3b5f2e4e51a0c4d3e2f1a0b9c8 --"),
            None
        );
        assert_eq!(parse("-- x").message, "-- x");
    }
}
