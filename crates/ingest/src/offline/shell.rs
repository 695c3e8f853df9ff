//! File-descriptor limits as people save them: a shell's `ulimit -a` (every shell's
//! wording) and a process's `/proc/PID/limits`.
//!
//! `ulimit -n` alone prints a bare number, which says nothing by itself: it is read
//! only from a transcript that shows the command (`$ ulimit -n`, see
//! [`super::transcript`]).

use super::{Input, Offline};
use std::io::BufRead;
use std::path::Path;

/// What the `open files` limit of one line is, when the line is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nofile {
    /// A number of descriptors.
    Limit(u64),
    /// `unlimited`: no number to compare with (Linux never allows it for
    /// RLIMIT_NOFILE, other systems do).
    Unlimited,
}

/// A limit value as `ulimit` and `/proc/PID/limits` print it.
pub(crate) fn limit_value(word: &str) -> Option<Nofile> {
    match word {
        "unlimited" | "infinity" => Some(Nofile::Unlimited),
        w => w.parse().ok().map(Nofile::Limit),
    }
}

// ---------------------------------------------------------------- ulimit -a

/// The label of an `open files` line in each shell's `ulimit -a`:
/// bash and busybox `open files (-n)`, ksh93 `nofile (-n)`, dash `nofiles`,
/// mksh `-n: nofiles(descriptors)`, zsh `-n: file descriptors`, and the
/// `nofiles(descriptors)` of System V shells.
fn is_nofile_label(label: &str) -> bool {
    let l = label.trim().to_ascii_lowercase();
    let l = l.strip_prefix("-n:").unwrap_or(&l).trim();
    let flag_ok = !l.contains("(-") || l.contains("-n)");
    flag_ok
        && (l.starts_with("open files")
            || l.starts_with("nofile")
            || l.starts_with("file descriptors"))
}

/// One `ulimit -a` line as (label, value word): the value is the last word.
fn ulimit_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end();
    let (label, value) = line.rsplit_once(char::is_whitespace)?;
    let label = label.trim();
    let looks_like_value = value == "unlimited" || value.bytes().all(|b| b.is_ascii_digit());
    (!label.is_empty() && looks_like_value && label.chars().any(|c| c.is_ascii_alphabetic()))
        .then_some((label, value))
}

/// The `open files` limit of an `ulimit -a` output, if it has the line.
pub(crate) fn ulimit_a_nofile(text: &str) -> Option<Nofile> {
    text.lines()
        .filter_map(ulimit_line)
        .find(|(label, _)| is_nofile_label(label))
        .and_then(|(_, v)| limit_value(v))
}

/// `ulimit -a`: most lines are `label value`, one of them the `open files` line.
pub(crate) fn ulimit_a_sniff(head: &str, _: &Input) -> bool {
    let lines: Vec<&str> = head
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(30)
        .collect();
    let limits = lines
        .iter()
        .filter(|l| ulimit_line(l).is_some() || l.trim_end().ends_with("not supported"))
        .count();
    lines.len() >= 4
        && limits * 10 >= lines.len() * 9
        && lines
            .iter()
            .filter_map(|l| ulimit_line(l))
            .any(|(label, _)| is_nofile_label(label))
}

/// `ulimit -a` (the soft limits): the shell's `open files`.
pub(crate) fn ulimit_a_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    apply_ulimit_a(&text, false, out, input)
}

/// An `ulimit -a` (or `ulimit -Ha` when `hard`) output into the shell's limits.
pub(crate) fn apply_ulimit_a(
    text: &str,
    hard: bool,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    match ulimit_a_nofile(text) {
        Some(n) => {
            apply_shell_nofile(n, hard, out);
            Ok(())
        }
        None => Err(format!("{}: no `open files` line", input.name)),
    }
}

/// A shell's `open files` limit, soft or hard.
pub(crate) fn apply_shell_nofile(n: Nofile, hard: bool, out: &mut Offline) {
    let Nofile::Limit(v) = n else { return };
    if hard {
        out.shell_nofile_hard(v);
    } else {
        let known_hard = out.shell_limits().and_then(|(_, h)| h);
        out.shell_nofile(v, known_hard);
    }
}

// ---------------------------------------------------------------- /proc/PID/limits

/// The pid of a `proc/PID/limits` path (`/proc/1234/limits`, a sosreport's
/// `proc/1234/limits`); `None` for `/proc/self/limits` and other names.
pub(crate) fn pid_of_limits_path(path: &Path) -> Option<u32> {
    let mut parts = path.iter().rev();
    let last = parts.next()?.to_str()?;
    if last != "limits" {
        return None;
    }
    parts.next()?.to_str()?.parse().ok()
}

/// `Max open files  1024  4096  files` → (soft, hard); `None` unless the line is
/// whole (a cut line lacks its `files` unit).
fn open_files_line(line: &str) -> Option<(Nofile, Nofile)> {
    let rest = line.trim_start().strip_prefix("Max open files")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        [soft, hard, "files"] => Some((limit_value(soft)?, limit_value(hard)?)),
        _ => None,
    }
}

/// `/proc/PID/limits`: its heading line, or its `Max open files` line.
pub(crate) fn limits_sniff(head: &str, _: &Input) -> bool {
    let first = head.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let heading =
        first.starts_with("Limit") && first.contains("Soft Limit") && first.contains("Hard Limit");
    heading || head.lines().take(3).any(|l| open_files_line(l).is_some())
}

/// `/proc/PID/limits`: the process's fd limits, or the shell's when the path names
/// no process.
pub(crate) fn limits_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    let (soft, hard) = text
        .lines()
        .find_map(open_files_line)
        .ok_or_else(|| format!("{}: no whole `Max open files` line", input.name))?;
    let pid = input.path.as_deref().and_then(pid_of_limits_path);
    apply_limits(pid, soft, hard, out);
    Ok(())
}

fn apply_limits(pid: Option<u32>, soft: Nofile, hard: Nofile, out: &mut Offline) {
    let hard = match hard {
        Nofile::Limit(h) => Some(h),
        Nofile::Unlimited => None,
    };
    match (pid, soft) {
        (_, Nofile::Unlimited) => {}
        (Some(pid), Nofile::Limit(s)) => out.fd_limit(pid, s, hard),
        (None, Nofile::Limit(s)) => {
            out.shell_nofile(s, hard);
            if let Some(h) = hard {
                out.shell_nofile_hard(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_labels_of_every_shell() {
        for label in [
            "open files                          (-n)",
            "open files                      (-n)",
            "nofile                                  (-n)",
            "nofiles",
            "-n: nofiles(descriptors)",
            "-n: file descriptors",
            "nofiles(descriptors)",
        ] {
            assert!(is_nofile_label(label), "{label}");
        }
        for label in [
            "file size (blocks) (-f)",
            "file locks (-x)",
            "-f: file(blocks)",
        ] {
            assert!(!is_nofile_label(label), "{label}");
        }
    }

    #[test]
    fn limits_path_pid() {
        assert_eq!(
            pid_of_limits_path(Path::new("/proc/1234/limits")),
            Some(1234)
        );
        assert_eq!(
            pid_of_limits_path(Path::new("sosreport-x/proc/77/limits")),
            Some(77)
        );
        assert_eq!(pid_of_limits_path(Path::new("/proc/self/limits")), None);
        assert_eq!(pid_of_limits_path(Path::new("limits")), None);
    }

    #[test]
    fn a_cut_open_files_line_is_not_read() {
        assert!(open_files_line("Max open files            1024                 52").is_none());
        assert_eq!(
            open_files_line(
                "Max open files            1024                 524288               files     "
            ),
            Some((Nofile::Limit(1024), Nofile::Limit(524288)))
        );
    }
}
