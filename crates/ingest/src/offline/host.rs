//! Which machine and when: `uname -a`, `hostname`, `date`, and a
//! pasted `/proc/sys/fs/file-nr`. Each is one line; the host they name is checked
//! against the other inputs' (two hosts mixed is an error).

use super::{Input, Offline};
use crate::kernel_log::time;
use sockmedic_collect::procfs;
use std::io::BufRead;

/// The only non-blank line of a head, if it has exactly one.
fn single_line(head: &str) -> Option<&str> {
    let mut lines = head.lines().map(str::trim).filter(|l| !l.is_empty());
    let one = lines.next()?;
    lines.next().is_none().then_some(one)
}

// ---------------------------------------------------------------- uname -a

/// `Linux vm 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0 x86_64 GNU/Linux` → (host,
/// release).
pub(crate) fn uname_a(line: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["Linux", host, release, version, ..]
            if release.starts_with(|c: char| c.is_ascii_digit())
                && release.contains('.')
                && version.starts_with('#') =>
        {
            Some((host, release))
        }
        _ => None,
    }
}

pub(crate) fn uname_sniff(head: &str, _: &Input) -> bool {
    single_line(head).is_some_and(|l| uname_a(l).is_some())
}

pub(crate) fn uname_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    let (host, release) = text
        .lines()
        .find_map(uname_a)
        .ok_or_else(|| format!("{}: not a whole `uname -a` line", input.name))?;
    out.kernel(release);
    out.host_name(host, &input.name)
}

// ---------------------------------------------------------------- hostname

/// A file whose name says it holds a host name: `hostname` (sosreport, `/etc`),
/// `hostname_-f`, `HOSTNAME` (SUSE's `/etc/HOSTNAME`). The content alone, one
/// word, cannot say it.
fn named_hostname(input: &Input) -> bool {
    let Some(name) = input
        .path
        .as_deref()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
    else {
        return false;
    };
    name.eq_ignore_ascii_case("hostname") || name.starts_with("hostname_-")
}

/// One word of host-name characters.
pub(crate) fn host_word(line: &str) -> Option<&str> {
    let w = line.trim();
    let ok = !w.is_empty()
        && w.len() <= 253
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    ok.then_some(w)
}

pub(crate) fn hostname_sniff(head: &str, input: &Input) -> bool {
    named_hostname(input) && single_line(head).and_then(host_word).is_some()
}

pub(crate) fn hostname_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    let host = single_line(&text)
        .and_then(host_word)
        .ok_or_else(|| format!("{}: not one host name", input.name))?;
    out.host_name(host, &input.name)
}

// ---------------------------------------------------------------- date

/// A `date` output as an RFC 3339 date-time: `Sun Nov 22 06:49:52 UTC 2026`
/// (the default, in UTC or GMT: a zone name gives no offset), `date -R`
/// (`Sun, 22 Nov 2026 06:49:52 +0000`), `date -Is` (`2026-11-22T06:49:52+00:00`),
/// `date --rfc-3339=seconds` (`2026-11-22 06:49:52+00:00`).
pub(crate) fn date_line(line: &str) -> Option<String> {
    let line = line.trim();
    if let Some(iso) = time::iso_datetime(line) {
        return Some(iso);
    }
    if let Some(iso) = line
        .split_once(' ')
        .and_then(|(d, t)| time::iso_datetime(&format!("{d}T{t}")))
    {
        return Some(iso);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [wd, mon, day, clock, zone, year] if time::is_weekday(wd) => {
            civil(year, mon, day, clock, zone)
        }
        [wd, day, mon, year, clock, zone] if wd.strip_suffix(',').is_some_and(time::is_weekday) => {
            civil(year, mon, day, clock, zone)
        }
        _ => None,
    }
}

fn civil(year: &str, mon: &str, day: &str, clock: &str, zone: &str) -> Option<String> {
    let month = time::month_number(mon)?;
    let day: u32 = day.parse().ok()?;
    if year.len() != 4 {
        return None;
    }
    let year: u32 = year.parse().ok()?;
    if !time::valid_date(year, month, day) {
        return None;
    }
    let clock = time::clock_time(clock)?;
    let offset = time::utc_offset(zone)?;
    Some(format!("{year:04}-{month:02}-{day:02}T{clock}{offset}"))
}

/// Whether a line has the shape of a `date` output in a zone that cannot be
/// converted (`Sun Nov 22 01:49:52 EST 2026`).
fn date_in_named_zone(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    matches!(words.as_slice(), [wd, mon, _, clock, _, _]
        if time::is_weekday(wd) && time::month_number(mon).is_some() && time::clock_time(clock).is_some())
}

pub(crate) fn date_sniff(head: &str, _: &Input) -> bool {
    single_line(head).is_some_and(|l| date_line(l).is_some() || date_in_named_zone(l))
}

pub(crate) fn date_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    let line = single_line(&text).ok_or_else(|| format!("{}: not one line", input.name))?;
    match date_line(line) {
        Some(when) => out.taken_at(&when),
        None => out.missing(
            format!("{} (date)", input.name),
            format!("{line:?}: a zone name gives no UTC offset; the time taken is not known"),
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------- file-nr

/// `/proc/sys/fs/file-nr` pasted without its name: three numbers separated by
/// tabs, as the kernel prints them.
pub(crate) fn file_nr_sniff(head: &str, _: &Input) -> bool {
    single_line(head).is_some_and(|l| {
        let fields: Vec<&str> = l.split('\t').collect();
        fields.len() == 3
            && fields
                .iter()
                .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
    })
}

pub(crate) fn file_nr_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    _: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    let nr = procfs::parse_file_nr(&text).map_err(|e| e.to_string())?;
    out.file_nr(nr);
    out.sysctl("fs.file-nr", text.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_shapes() {
        assert_eq!(
            date_line("Sun Nov 22 06:49:52 UTC 2026").as_deref(),
            Some("2026-11-22T06:49:52Z")
        );
        assert_eq!(
            date_line("Sun, 22 Nov 2026 06:49:52 +0000").as_deref(),
            Some("2026-11-22T06:49:52+00:00")
        );
        assert_eq!(
            date_line("2026-11-22 06:49:52+00:00").as_deref(),
            Some("2026-11-22T06:49:52+00:00")
        );
        assert_eq!(date_line("Sun Nov 22 01:49:52 EST 2026"), None);
        assert!(date_in_named_zone("Sun Nov 22 01:49:52 EST 2026"));
    }

    #[test]
    fn uname_needs_its_version_field() {
        assert!(
            uname_a("Linux vm 6.18.44-fc-v669 #1 SMP PREEMPT_DYNAMIC @0 x86_64 GNU/Linux")
                .is_some()
        );
        assert!(uname_a("Linux is a kernel").is_none());
    }
}
