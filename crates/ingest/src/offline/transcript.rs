//! Pasted terminal transcripts: prompt lines (`$ cat /proc/sys/net/ipv4/tcp_max_orphans`,
//! `root@web1:~# ss -s`, `[root@db ~]# sysctl net.ipv4.ip_local_port_range`) each
//! followed by the command's output. A transcript is split at its prompt lines and
//! each output is read as what the command says it is: a few commands print values
//! that only the command can name (`ulimit -n`, `sysctl -n NAME`, `hostname`), the
//! others go through [`super::formats::detect`] like any file, with the file a `cat`
//! read as their path (so `/proc/sys/...` values get their name and
//! `/proc/PID/limits` its pid).
//!
//! Also here: pasted `name = value` sysctl lines that use the short names people
//! write (`ip_local_port_range = 50000 62000`).

use super::formats::{detect_leaf, Input};
use super::shell;
use super::{host, Offline};
use sockmedic_collect::procfs::{HOST_SYSCTLS, NETNS_SYSCTLS};
use std::io::BufRead;
use std::path::PathBuf;

/// How much of a command's output is looked at to recognise it.
const SNIFF_CHARS: usize = 8192;

/// Programs whose bare-`#` prompt lines (`# ss -s`) are taken for a root prompt; a
/// `#` line naming anything else is a comment.
const KNOWN: &[&str] = &[
    "awk",
    "bash",
    "cat",
    "conntrack",
    "date",
    "dmesg",
    "egrep",
    "free",
    "grep",
    "head",
    "hostname",
    "hostnamectl",
    "id",
    "ip",
    "journalctl",
    "less",
    "ls",
    "lsof",
    "netstat",
    "nstat",
    "prlimit",
    "ps",
    "sh",
    "sort",
    "ss",
    "sudo",
    "sysctl",
    "tail",
    "ulimit",
    "uname",
    "uptime",
    "wc",
];

/// A prompt line: the host it shows, if any, and the command typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prompt<'a> {
    pub host: Option<&'a str>,
    pub command: &'a str,
}

/// A prompt line, or `None` for an output line. Recognised shapes:
/// `user@host:dir$ cmd` and `user@host:dir# cmd` (Debian's PS1), `[user@host dir]# cmd`
/// (Red Hat's and SUSE's), `bash-5.2# cmd`, `$ cmd`, and `# cmd` when `cmd` is a
/// command of [`KNOWN`] with plausible arguments (so `# a comment` is not one).
pub(crate) fn prompt(line: &str) -> Option<Prompt<'_>> {
    let line = line.trim_end();
    if let Some(p) = bracketed_prompt(line).or_else(|| user_at_host_prompt(line)) {
        return Some(p);
    }
    if let Some(cmd) = line
        .strip_prefix("$ ")
        .or_else(|| (line == "$").then_some(""))
    {
        return Some(Prompt {
            host: None,
            command: cmd.trim(),
        });
    }
    if let Some((shell, cmd)) = line.split_once(['$', '#']) {
        // `bash-5.2# cmd`, `sh-5.2$ cmd`
        let shell_version = shell.split_once('-').is_some_and(|(name, v)| {
            matches!(name, "bash" | "sh" | "zsh" | "ksh")
                && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        });
        if shell_version && (cmd.is_empty() || cmd.starts_with(' ')) {
            return Some(Prompt {
                host: None,
                command: cmd.trim(),
            });
        }
    }
    let cmd = line.strip_prefix("# ")?.trim();
    plausible_root_command(cmd).then_some(Prompt {
        host: None,
        command: cmd,
    })
}

/// `[root@web1 ~]# cmd`, `[user@web1 tmp]$ cmd`.
fn bracketed_prompt(line: &str) -> Option<Prompt<'_>> {
    let (inside, rest) = line.strip_prefix('[')?.split_once(']')?;
    let cmd = rest
        .strip_prefix(['#', '$'])
        .filter(|c| c.is_empty() || c.starts_with(' '))?;
    let (_, host_dir) = inside.split_once('@')?;
    let host = host_dir.split_whitespace().next()?;
    host::host_word(host)?;
    Some(Prompt {
        host: Some(host),
        command: cmd.trim(),
    })
}

/// `root@web1:~# cmd`, `user@web1:/tmp$ cmd`, `user@web1$ cmd`.
fn user_at_host_prompt(line: &str) -> Option<Prompt<'_>> {
    let at = line.find(['#', '$'])?;
    let (prefix, rest) = line.split_at(at);
    let cmd = &rest[1..];
    if !(cmd.is_empty() || cmd.starts_with(' ')) || prefix.contains(char::is_whitespace) {
        return None;
    }
    let (user, host_dir) = prefix.split_once('@')?;
    let user_ok = !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let host = host_dir.split(':').next()?;
    (user_ok && host::host_word(host).is_some()).then_some(Prompt {
        host: Some(host),
        command: cmd.trim(),
    })
}

/// `ss -s`, `cat /proc/...`, `sysctl net.ipv4...`, `hostname`: a known program whose
/// first argument is a flag, a path, a dotted name, a number or a pipe.
fn plausible_root_command(cmd: &str) -> bool {
    let mut words = cmd.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    if !KNOWN.contains(&program) {
        return false;
    }
    match words.next() {
        None => true,
        Some(arg) => {
            arg.starts_with(['-', '/', '|', '>'])
                || arg.contains('.')
                || arg.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

/// A transcript: its first non-blank line is a prompt.
pub(crate) fn sniff(head: &str, _: &Input) -> bool {
    head.lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| prompt(l).is_some())
}

/// Splits the transcript at its prompts and reads each command's output.
pub(crate) fn parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    let mut tally = Tally::default();
    let mut current: Option<(Prompt<'_>, Vec<&str>)> = None;
    for line in text.lines() {
        match prompt(line) {
            Some(p) => {
                if let Some((prev, body)) = current.take() {
                    run_part(prev, &body, out, input, &mut tally);
                }
                current = Some((p, Vec::new()));
            }
            None => {
                if let Some((_, body)) = &mut current {
                    body.push(line);
                }
            }
        }
    }
    if let Some((prev, body)) = current.take() {
        run_part(prev, &body, out, input, &mut tally);
    }
    tally.finish(out, input, "command outputs")
}

fn run_part(p: Prompt<'_>, body: &[&str], out: &mut Offline, parent: &Input, tally: &mut Tally) {
    if let Some(host) = p.host {
        // A conflict is kept by the builder and reported by the reader.
        let _ = out.host_name(
            host,
            &format!("{} (prompt of `{}`)", parent.name, p.command),
        );
    }
    dispatch(p.command, body.join("\n").trim_end(), out, parent, tally);
}

/// What became of the parts of a container (transcript, supportconfig file).
#[derive(Default)]
pub(crate) struct Tally {
    /// Parts read into the snapshot.
    pub read: usize,
    /// Parts with output that is no format sockmedic reads (the commands, for the note).
    pub skipped: Vec<String>,
}

impl Tally {
    /// An error when nothing was read; a `missing` note for what was skipped.
    pub(crate) fn finish(
        self,
        out: &mut Offline,
        input: &Input,
        parts: &str,
    ) -> Result<(), String> {
        if self.read == 0 {
            return Err(format!(
                "no command output in it is a format sockmedic reads ({} {parts} looked at)",
                self.skipped.len()
            ));
        }
        if !self.skipped.is_empty() {
            let shown: Vec<String> = self
                .skipped
                .iter()
                .take(5)
                .map(|c| format!("`{c}`"))
                .collect();
            let more = self.skipped.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            out.missing(
                input.name.clone(),
                format!(
                    "{} of {} {parts} are not a format sockmedic reads (skipped): {}{more}",
                    self.skipped.len(),
                    self.skipped.len() + self.read,
                    shown.join(", ")
                ),
            );
        }
        Ok(())
    }
}

/// A command line reduced to what decides its output: the first command of a
/// pipeline or list, without `sudo`, its program as a base name.
struct Command<'a> {
    program: &'a str,
    args: Vec<&'a str>,
    line: &'a str,
}

impl<'a> Command<'a> {
    fn parse(line: &'a str) -> Option<Command<'a>> {
        let first = line.split(['|', ';', '&', '>', '<']).next().unwrap_or("");
        let mut words = first.split_whitespace().peekable();
        while words
            .peek()
            .is_some_and(|w| matches!(*w, "sudo" | "time" | "command"))
        {
            words.next();
        }
        let program = words.next()?;
        let program = program.rsplit('/').next().unwrap_or(program);
        Some(Command {
            program,
            args: words.collect(),
            line,
        })
    }

    /// The letters of its short flags (`-Hn` → `Hn`).
    fn flags(&self) -> String {
        self.args
            .iter()
            .filter(|a| a.starts_with('-') && !a.starts_with("--"))
            .flat_map(|a| a[1..].chars())
            .collect()
    }

    fn operands(&self) -> Vec<&'a str> {
        self.args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect()
    }
}

/// Reads one command's output (`command` as typed or as supportconfig logged it).
pub(crate) fn dispatch(
    command: &str,
    body: &str,
    out: &mut Offline,
    parent: &Input,
    tally: &mut Tally,
) {
    if body.trim().is_empty() {
        return;
    }
    let Some(cmd) = Command::parse(command) else {
        // Output before any command: read it as it is.
        return read_output(None, body, out, parent, tally, "(no command)");
    };
    let name = format!("{}: `{}`", parent.name, cmd.line.trim());
    let input = Input { name, path: None };
    if matches!(cmd.program, "exit" | "logout" | "cd" | "clear") {
        return;
    }
    let handled = match cmd.program {
        "ulimit" => ulimit(&cmd, body, out, &input),
        "hostname" => hostname(&cmd, body, out, &input),
        "uname" => uname(&cmd, body, out, &input),
        "sysctl" => sysctl(&cmd, body, out),
        "cat" => cat(&cmd, body, out, &input),
        _ => None,
    };
    match handled {
        Some(Ok(())) => tally.read += 1,
        // Not what the command prints (an error message instead): skipped.
        Some(Err(_)) => tally.skipped.push(cmd.line.trim().to_string()),
        None => {
            let path = (cmd.program == "cat")
                .then(|| cmd.operands())
                .and_then(|o| (o.len() == 1).then(|| PathBuf::from(o[0])));
            let input = Input { path, ..input };
            read_output(Some(&input), body, out, parent, tally, cmd.line.trim());
        }
    }
}

/// An output whose command does not say what it holds: recognised from the content.
fn read_output(
    input: Option<&Input>,
    body: &str,
    out: &mut Offline,
    parent: &Input,
    tally: &mut Tally,
    label: &str,
) {
    let input = input.cloned().unwrap_or_else(|| Input {
        name: parent.name.clone(),
        path: None,
    });
    let head = head_of(body);
    match detect_leaf(head, &input) {
        Some(format) => match (format.parse)(&mut body.as_bytes(), out, &input) {
            Ok(()) => tally.read += 1,
            Err(why) => {
                out.missing(format!("{} ({})", input.name, format.name), why);
                tally.skipped.push(label.to_string());
            }
        },
        None => tally.skipped.push(label.to_string()),
    }
}

/// The first [`SNIFF_CHARS`] of a text, cut at a character boundary.
fn head_of(body: &str) -> &str {
    let mut end = body.len().min(SNIFF_CHARS);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

fn first_line(body: &str) -> Option<&str> {
    body.lines().map(str::trim).find(|l| !l.is_empty())
}

/// `ulimit -n`/`-Sn`/`-Hn` (a bare number) and `ulimit -a`/`-Ha`.
fn ulimit(
    cmd: &Command<'_>,
    body: &str,
    out: &mut Offline,
    input: &Input,
) -> Option<Result<(), String>> {
    let flags = cmd.flags();
    let hard = flags.contains('H');
    if flags.contains('a') {
        return Some(shell::apply_ulimit_a(body, hard, out, input));
    }
    if !flags.contains('n') || !cmd.operands().is_empty() {
        // `ulimit` alone prints the file-size limit; `ulimit -n 4096` sets one.
        return None;
    }
    let value = first_line(body).and_then(shell::limit_value);
    Some(match value {
        Some(n) => {
            shell::apply_shell_nofile(n, hard, out);
            Ok(())
        }
        None => Err(format!("{}: not a number", input.name)),
    })
}

/// `hostname`, `hostname -s`, `hostname -f`: the host name (not `hostname -I`).
fn hostname(
    cmd: &Command<'_>,
    body: &str,
    out: &mut Offline,
    input: &Input,
) -> Option<Result<(), String>> {
    let names_host = cmd
        .args
        .iter()
        .all(|a| matches!(*a, "-s" | "-f" | "--short" | "--fqdn" | "--long" | "-A"));
    if !names_host || !cmd.operands().is_empty() {
        return None;
    }
    let host = first_line(body).and_then(host::host_word)?;
    Some(out.host_name(host, &input.name))
}

/// `uname -n` (host), `uname -r` (release); `uname -a` is recognised from its content.
fn uname(
    cmd: &Command<'_>,
    body: &str,
    out: &mut Offline,
    input: &Input,
) -> Option<Result<(), String>> {
    let line = first_line(body)?;
    match cmd.flags().as_str() {
        "n" => Some(out.host_name(host::host_word(line)?, &input.name)),
        "r" => {
            out.kernel(line);
            Some(Ok(()))
        }
        _ => None,
    }
}

/// `sysctl -n NAME...` prints bare values in the order asked; `sysctl NAME...` and
/// `sysctl -a` print `name = value` lines.
fn sysctl(cmd: &Command<'_>, body: &str, out: &mut Offline) -> Option<Result<(), String>> {
    let flags = cmd.flags();
    if flags.contains('w') || cmd.operands().iter().any(|o| o.contains('=')) {
        // A write echoes what it set: not necessarily what is in force.
        return None;
    }
    if flags.contains('n') {
        let names = cmd.operands();
        let values: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
        if names.is_empty() || names.len() != values.len() {
            return None;
        }
        for (n, v) in names.iter().zip(values) {
            out.sysctl(&n.replace('/', "."), v);
        }
        return Some(Ok(()));
    }
    (sysctl_lines(body, out) > 0).then_some(Ok(()))
}

/// `cat /proc/sys/a /proc/sys/b`: one value a line, in the order of the files.
fn cat(cmd: &Command<'_>, body: &str, out: &mut Offline, _: &Input) -> Option<Result<(), String>> {
    let files = cmd.operands();
    let names: Vec<String> = files
        .iter()
        .map(|f| proc_sys_name(f))
        .collect::<Option<Vec<_>>>()?;
    let values: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    if files.len() < 2 || names.len() != values.len() {
        // One file is read through its path (`/proc/sys value`, file-nr).
        return None;
    }
    for (n, v) in names.iter().zip(values) {
        out.sysctl(n, v);
    }
    Some(Ok(()))
}

/// `/proc/sys/net/ipv4/tcp_mem` → `net.ipv4.tcp_mem`.
fn proc_sys_name(path: &str) -> Option<String> {
    let rel = &path[path.find("proc/sys/")? + "proc/sys/".len()..];
    (!rel.is_empty()).then(|| rel.replace('/', "."))
}

// ---------------------------------------------------------------- name = value lines

/// The full name of a sysctl written by its last part (`ip_local_port_range` →
/// `net.ipv4.ip_local_port_range`), for the sysctls sockmedic reads.
fn full_sysctl_name(short: &str) -> Option<&'static str> {
    let mut found = HOST_SYSCTLS
        .iter()
        .chain(NETNS_SYSCTLS)
        .map(|s| s.name)
        .filter(|n| n.rsplit('.').next() == Some(short));
    let one = found.next()?;
    found.next().is_none().then_some(one)
}

/// A `name = value` line (`sysctl` prints ` = `; people also paste `name=value`)
/// with a dotted name or a short name sockmedic knows.
fn sysctl_pair(line: &str) -> Option<(String, &str)> {
    let (k, v) = line.split_once('=')?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || v.is_empty() || !k.chars().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    if k.contains('.') && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return Some((k.to_string(), v));
    }
    full_sysctl_name(k).map(|n| (n.to_string(), v))
}

/// Every `name = value` line of a text into the builder; how many.
fn sysctl_lines(text: &str, out: &mut Offline) -> usize {
    let mut n = 0;
    for (k, v) in text.lines().filter_map(sysctl_pair) {
        out.sysctl(&k, v);
        n += 1;
    }
    n
}

/// Pasted sysctl lines, some with short names (`ip_local_port_range = 50000 62000`):
/// most lines are `name = value`, and one name at least is a short one (all-dotted
/// files are `sysctl -a`'s).
pub(crate) fn sysctl_lines_sniff(head: &str, _: &Input) -> bool {
    let lines: Vec<&str> = head
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    let pairs = lines.iter().filter(|l| sysctl_pair(l).is_some()).count();
    !lines.is_empty() && pairs * 10 >= lines.len() * 8
}

pub(crate) fn sysctl_lines_parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    match sysctl_lines(&text, out) {
        0 => Err(format!("{}: no `name = value` line", input.name)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts() {
        let p = |l| prompt(l).map(|p| (p.host, p.command));
        assert_eq!(p("root@vm:~# ss -s"), Some((Some("vm"), "ss -s")));
        assert_eq!(p("nobody@vm:/$ ulimit -n"), Some((Some("vm"), "ulimit -n")));
        assert_eq!(
            p("[root@web1 ~]# cat /proc/net/sockstat"),
            Some((Some("web1"), "cat /proc/net/sockstat"))
        );
        assert_eq!(
            p("$ cat /proc/sys/net/ipv4/tcp_max_orphans"),
            Some((None, "cat /proc/sys/net/ipv4/tcp_max_orphans"))
        );
        assert_eq!(
            p("# sysctl net.ipv4.ip_local_port_range"),
            Some((None, "sysctl net.ipv4.ip_local_port_range"))
        );
        assert_eq!(p("bash-5.2# hostname"), Some((None, "hostname")));
        assert_eq!(p("# sysctl settings are defined through files in"), None);
        assert_eq!(p("# Kernel sysctl configuration file"), None);
        assert_eq!(p("TCP: inuse 81 orphan 0 tw 6 alloc 41019 mem 286"), None);
        assert_eq!(p("net.ipv4.tcp_mem = 1 2 3"), None);
    }

    #[test]
    fn short_sysctl_names() {
        assert_eq!(
            full_sysctl_name("ip_local_port_range"),
            Some("net.ipv4.ip_local_port_range")
        );
        assert_eq!(full_sysctl_name("somaxconn"), Some("net.core.somaxconn"));
        assert_eq!(full_sysctl_name("no_such_thing"), None);
        assert_eq!(
            shell::limit_value("unlimited"),
            Some(shell::Nofile::Unlimited)
        );
    }
}
