//! `sockmedic check` as text: the findings, most severe first, then the checks
//! that were skipped, the evidence (`stat`'s figures) and the counter rates.

use super::table::{Style, Tone};
use super::{header_line, wrap};
use crate::sysctl_out;
use sockmedic_diagnose::CATALOG;
use sockmedic_model::{Finding, Remedy, Report, Severity, Snapshot, Subject};
use std::fmt::Write;

/// How much to show.
pub struct Options<'a> {
    /// Every evidence line and remedy, and the explanation.
    pub verbose: bool,
    /// Only one snapshot was taken (`--once`).
    pub once: bool,
    /// Thresholds that differ from the defaults.
    pub changed: &'a [(&'static str, f64)],
}

/// Evidence lines shown per finding without `--verbose`.
const EVIDENCE_SHOWN: usize = 3;

/// The counters whose rates are shown, as (section, name).
pub const RATE_COUNTERS: [(&str, &str); 10] = [
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "TCPReqQFullDrop"),
    ("TcpExt", "TCPReqQFullDoCookies"),
    ("TcpExt", "TCPTimeWaitOverflow"),
    ("TcpExt", "TCPAbortOnMemory"),
    ("TcpExt", "TCPMemoryPressures"),
    ("TcpExt", "TCPAbortOnTimeout"),
    ("Tcp", "AttemptFails"),
    ("Tcp", "EstabResets"),
];

pub fn render(report: &Report, opts: &Options, style: Style) -> String {
    let snap = &report.snapshot;
    let mut out = header_line("check", snap, style);
    out.push('\n');
    out.push_str(&summary(report, opts, style));
    for f in &report.findings {
        out.push('\n');
        out.push_str(&finding(snap, f, opts.verbose, style));
    }
    out.push_str(&skipped(report, style));
    let _ = write!(
        out,
        "\n{}\n\n",
        style.paint(Tone::Bold, "Evidence (what `sockmedic stat` shows)")
    );
    out.push_str(super::stat::sections(snap, style).trim_start_matches('\n'));
    out.push_str(&kernel_log(snap, opts.verbose, style));
    out.push_str(&rates(report, opts, style));
    out
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::Warning => "WARNING",
        Severity::Info => "INFO",
    }
}

fn severity_tone(s: Severity) -> Tone {
    match s {
        Severity::Critical => Tone::Bad,
        Severity::Warning => Tone::Warn,
        Severity::Info => Tone::Dim,
    }
}

/// One line: how many findings of each severity, or that nothing was found, with
/// what was looked at.
fn summary(report: &Report, opts: &Options, style: Style) -> String {
    let snap = &report.snapshot;
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let (crit, warn, info) = (
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info),
    );
    // Capture-only codes never run on a snapshot (`sockmedic pcap` has them).
    let checks = CATALOG.iter().filter(|r| !r.capture_only()).count();
    let ran = checks.saturating_sub(report.skipped.len());
    let mut scope = format!(
        "{ran} of {checks} checks ran on {} network namespace{}",
        snap.netns.len(),
        plural(snap.netns.len())
    );
    if !snap.processes.is_empty() {
        let _ = write!(
            scope,
            " and {} process{}",
            snap.processes.len(),
            if snap.processes.len() == 1 { "" } else { "es" }
        );
    }
    match &report.rates {
        Some(r) => {
            let _ = write!(scope, ", counter rates over {:.1} s", r.interval_s);
        }
        None if opts.once => scope.push_str(", one snapshot (--once)"),
        None => scope.push_str(", no counter rates"),
    }
    if !opts.changed.is_empty() {
        let list: Vec<String> = opts
            .changed
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let _ = write!(scope, "; thresholds changed: {}", list.join(", "));
    }
    let mut out = String::new();
    if crit + warn == 0 {
        let head = if info == 0 {
            "No problem found".to_string()
        } else {
            format!(
                "No problem found above info ({info} info finding{})",
                plural(info)
            )
        };
        let _ = writeln!(out, "{}: {scope}.", style.paint(Tone::Bold, &head));
    } else {
        let mut parts = Vec::new();
        if crit > 0 {
            parts.push(style.paint(Tone::Bad, &format!("{crit} critical")));
        }
        if warn > 0 {
            parts.push(style.paint(Tone::Warn, &format!("{warn} warning{}", plural(warn))));
        }
        if info > 0 {
            parts.push(format!("{info} info"));
        }
        let _ = writeln!(out, "Findings: {} ({scope}).", parts.join(", "));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A finding in a few lines (all of it with `verbose`).
pub fn finding(snap: &Snapshot, f: &Finding, verbose: bool, style: Style) -> String {
    let mut out = format!(
        "{} {}  {}\n",
        style.paint(severity_tone(f.severity), severity_word(f.severity)),
        style.paint(Tone::Bold, &f.code),
        f.title
    );
    let subject = subject_words(&f.subject);
    if !subject.is_empty() {
        let _ = writeln!(out, "  subject: {subject}");
    }
    let shown = if verbose {
        f.evidence.len()
    } else {
        f.evidence.len().min(EVIDENCE_SHOWN)
    };
    for e in &f.evidence[..shown] {
        let _ = writeln!(out, "  - {e}");
    }
    let more = f.evidence.len() - shown;
    hidden_line(
        &mut out,
        style,
        more,
        &format!("evidence line{}", plural(more)),
    );
    if verbose && !f.explanation.is_empty() {
        out.push_str("  why:\n");
        for line in wrap(&f.explanation, 84) {
            let _ = writeln!(out, "    {line}");
        }
    }
    let remedies: Vec<&Remedy> = if verbose {
        f.remedy.iter().collect()
    } else {
        // The first real fix; "will not help" notes only with --verbose.
        f.remedy
            .iter()
            .find(|r| !is_wont_help(r))
            .or(f.remedy.first())
            .into_iter()
            .collect()
    };
    for r in remedies {
        let label = if is_wont_help(r) { "note" } else { "fix" };
        let _ = writeln!(out, "  {label}: {}", r.action);
        for (name, value) in &r.sysctl {
            let _ = writeln!(
                out,
                "    {}",
                style.paint(Tone::Bold, &sysctl_out::command(snap, f, name, value))
            );
        }
        if let Some(c) = &r.caveat {
            let _ = writeln!(out, "    caveat: {c}");
        }
    }
    if !verbose {
        let hidden = f.remedy.len().saturating_sub(1);
        let word = if hidden == 1 { "remedy" } else { "remedies" };
        hidden_line(&mut out, style, hidden, word);
    }
    let _ = writeln!(
        out,
        "  {}",
        style.paint(Tone::Dim, &format!("more: sockmedic explain {}", f.code))
    );
    out
}

fn is_wont_help(r: &Remedy) -> bool {
    r.action.starts_with("Will not help")
}

/// The subject's fields that are set, in the order of the JSON.
pub fn subject_words(s: &Subject) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(v) = &s.netns {
        parts.push(format!("netns {v}"));
    }
    if let Some(v) = &s.state {
        parts.push(format!("state {v}"));
    }
    if let Some(v) = &s.local {
        parts.push(format!("local {v}"));
    }
    if let Some(v) = &s.remote {
        parts.push(format!("remote {v}"));
    }
    match (s.pid, &s.process) {
        (Some(pid), Some(p)) => parts.push(format!("pid {pid} ({p})")),
        (Some(pid), None) => parts.push(format!("pid {pid}")),
        (None, Some(p)) => parts.push(format!("process {p}")),
        (None, None) => {}
    }
    if let Some(v) = &s.container {
        parts.push(format!("container {}", &v[..v.len().min(12)]));
    }
    if let Some(v) = &s.pod {
        parts.push(format!("pod {v}"));
    }
    if let Some(v) = s.count {
        parts.push(format!("count {v}"));
    }
    if let Some(v) = s.limit {
        parts.push(format!("limit {v}"));
    }
    parts.join(", ")
}

fn skipped(report: &Report, style: Style) -> String {
    if report.skipped.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{}\n",
        style.paint(Tone::Bold, "Checks skipped (the data they need is missing)")
    );
    for s in &report.skipped {
        let _ = writeln!(out, "  - {}: {}", s.code, s.why);
    }
    out
}

/// Kernel messages listed without `--verbose`.
const LOG_LINES_SHOWN: usize = 8;

/// What the kernel log held: one line per known message (the first
/// [`LOG_LINES_SHOWN`] unless `verbose`), with its count and the last time it was
/// seen. Nothing when the log was not read ("Not seen" says why).
fn kernel_log(snap: &Snapshot, verbose: bool, style: Style) -> String {
    let Some(k) = &snap.kernel_log else {
        return String::new();
    };
    let mut head = format!("Kernel log: {}, {} records", k.source, k.records);
    if k.suppressed > 0 {
        let _ = write!(
            head,
            " ({} more suppressed by rate limiting: counts are lower bounds)",
            k.suppressed
        );
    }
    if k.messages.is_empty() {
        head.push_str("; no known socket-exhaustion message");
    }
    let mut out = format!("\n{}\n", style.paint(Tone::Bold, &head));
    let shown = if verbose {
        k.messages.len()
    } else {
        k.messages.len().min(LOG_LINES_SHOWN)
    };
    for m in &k.messages[..shown] {
        let mut line = format!("  {} ×{}", m.kind, m.count);
        if let Some(d) = &m.detail {
            let _ = write!(line, " ({d})");
        }
        match (&m.last, m.last_uptime_s) {
            (Some(t), _) => {
                let _ = write!(line, ", last {t}");
            }
            (None, Some(u)) => {
                let _ = write!(line, ", last at uptime {u:.0} s");
            }
            _ => {}
        }
        let _ = writeln!(out, "{line}: \"{}\"", m.sample.trim());
    }
    let more = k.messages.len() - shown;
    hidden_line(&mut out, style, more, &format!("message{}", plural(more)));
    out
}

/// "(+3 more WHAT: --verbose)", dimmed, when something was left out.
fn hidden_line(out: &mut String, style: Style, n: usize, what: &str) {
    if n > 0 {
        let _ = writeln!(
            out,
            "  {}",
            style.paint(Tone::Dim, &format!("(+{n} more {what}: --verbose)"))
        );
    }
}

/// One line per namespace whose important counters moved.
fn rates(report: &Report, opts: &Options, style: Style) -> String {
    let Some(rates) = &report.rates else {
        let why = if opts.once {
            "not measured (--once: one snapshot)"
        } else {
            "not measured (the two snapshots carry no usable clock)"
        };
        return format!("\n{} {why}\n", style.paint(Tone::Bold, "Counter rates:"));
    };
    let mut out = format!(
        "\n{}\n",
        style.paint(
            Tone::Bold,
            &format!(
                "Counter rates over {:.1} s (per second; only the counters that matter and moved)",
                rates.interval_s
            )
        )
    );
    let snap = &report.snapshot;
    let mut quiet = 0usize;
    for ns in &snap.netns {
        let Some(sections) = rates.netns.get(&ns.id) else {
            continue;
        };
        let moved: Vec<String> = RATE_COUNTERS
            .iter()
            .filter_map(|(section, name)| {
                let r = *sections.get(*section)?.get(*name)?;
                (r != 0.0).then(|| format!("{name} {}/s", rate(r)))
            })
            .collect();
        if moved.is_empty() {
            quiet += 1;
        } else {
            let _ = writeln!(out, "  {}: {}", ns.name(), moved.join(", "));
        }
    }
    if quiet > 0 {
        let _ = writeln!(
            out,
            "  {quiet} namespace{}: none of them moved",
            plural(quiet)
        );
    }
    let _ = writeln!(
        out,
        "  {}",
        style.paint(
            Tone::Dim,
            &format!(
                "watched: {}",
                RATE_COUNTERS
                    .iter()
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        )
    );
    out
}

fn rate(r: f64) -> String {
    if r.abs() >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockmedic_model::Remedy;
    use std::collections::BTreeMap;

    fn sample() -> Finding {
        Finding {
            code: "close-wait-leak".into(),
            severity: Severity::Warning,
            title: "pid 7 (srv) holds 20 CLOSE-WAIT sockets".into(),
            subject: Subject {
                netns: Some("host".into()),
                state: Some("CLOSE-WAIT".into()),
                pid: Some(7),
                process: Some("srv".into()),
                count: Some(20),
                ..Subject::default()
            },
            evidence: (1..=5).map(|i| format!("evidence {i}")).collect(),
            explanation: "why it happens ".repeat(20),
            remedy: vec![
                Remedy {
                    action: "Fix it".into(),
                    sysctl: BTreeMap::from([("fs.file-max".to_string(), "100".to_string())]),
                    caveat: Some("careful".into()),
                },
                Remedy {
                    action: "Will not help: a sysctl".into(),
                    sysctl: BTreeMap::new(),
                    caveat: None,
                },
            ],
        }
    }

    #[test]
    fn the_kernel_log_lists_its_known_messages() {
        use sockmedic_model::{KernelLog, KernelMessage, LogKind};
        let style = Style { color: false };
        let mut snap = Snapshot::default();
        assert_eq!(kernel_log(&snap, false, style), "");
        snap.kernel_log = Some(KernelLog {
            source: "/dev/kmsg".into(),
            records: 416,
            suppressed: 0,
            messages: vec![KernelMessage {
                kind: LogKind::SynFlood,
                count: 2,
                first: None,
                last: Some("2026-11-22T06:13:38Z".into()),
                first_uptime_s: Some(1.0),
                last_uptime_s: Some(2.0),
                detail: Some("127.0.0.1:7500".into()),
                sample: "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:7500."
                    .into(),
            }],
            ..KernelLog::default()
        });
        assert_eq!(
            kernel_log(&snap, false, style),
            "\nKernel log: /dev/kmsg, 416 records\n  syn-flood ×2 (127.0.0.1:7500), last 2026-11-22T06:13:38Z: \"TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:7500.\"\n"
        );
    }

    #[test]
    fn a_finding_is_short_unless_verbose() {
        let snap = Snapshot::default();
        let style = Style { color: false };
        let short = finding(&snap, &sample(), false, style);
        assert!(
            short.starts_with("WARNING close-wait-leak  pid 7"),
            "{short}"
        );
        assert!(short.contains("subject: netns host, state CLOSE-WAIT, pid 7 (srv), count 20\n"));
        assert!(short.contains("evidence 3") && !short.contains("evidence 4"));
        assert!(short.contains("sysctl -w fs.file-max=100"));
        assert!(!short.contains("Will not help") && !short.contains("why:"));
        assert!(short
            .trim_end()
            .ends_with("more: sockmedic explain close-wait-leak"));
        let long = finding(&snap, &sample(), true, style);
        assert!(long.contains("evidence 5") && long.contains("note: Will not help"));
        assert!(long.contains("  why:\n    why it happens"));
        assert!(long
            .lines()
            .all(|l| l.chars().count() <= 100 || l.contains("evidence")));
    }
}
