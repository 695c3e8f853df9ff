//! Text output for people. JSON output is the model's own serialization.

pub mod check;
pub mod explain;
pub mod pcap;
pub mod procs;
pub mod sockets;
pub mod stat;
pub mod table;

use sockmedic_model::{Snapshot, SourceKind};
use std::fmt::Write;
use table::{Style, Tone};

/// The first line: what was looked at, where, when, and from which source, so an
/// offline report is never taken for a live one. Saved text also lists the files
/// read (a second line).
pub fn header_line(command: &str, snap: &Snapshot, style: Style) -> String {
    let s = &snap.source;
    let kernel = s
        .kernel
        .as_deref()
        .map(|k| format!(", Linux {k}"))
        .unwrap_or_default();
    let taken = short_time(&s.taken_at);
    let mut line = match s.kind {
        SourceKind::Live => {
            let mut l = format!(
                "sockmedic {command}: host {}{kernel}, {} (live",
                s.host, s.taken_at
            );
            if let Some(ms) = s.duration_ms {
                let _ = write!(l, ", {ms:.0} ms");
            }
            l.push(')');
            l
        }
        SourceKind::Bundle => format!(
            "sockmedic {command}: bundle from {}{kernel}, taken {taken} by {} (not live)",
            s.host,
            if s.tool.is_empty() {
                "sockmedic"
            } else {
                &s.tool
            }
        ),
        SourceKind::Text => {
            let when = if taken.is_empty() {
                "time not recorded".to_string()
            } else {
                format!("taken {taken}")
            };
            format!(
                "sockmedic {command}: saved text from host {}{kernel}, {when} (not live)",
                s.host
            )
        }
        SourceKind::Capture => format!(
            "sockmedic {command}: capture from {}{kernel}, {} (not live)",
            s.host, s.taken_at
        ),
    };
    if s.privileged == Some(false) {
        line.push_str(if s.kind == SourceKind::Live {
            " — not root: some figures missing"
        } else {
            " — collected without root: some figures missing"
        });
    }
    let mut out = format!(
        "{}
",
        style.paint(Tone::Bold, &line)
    );
    if s.kind == SourceKind::Text && !s.inputs.is_empty() {
        const SHOWN: usize = 4;
        let mut files = s.inputs[..s.inputs.len().min(SHOWN)].join(", ");
        if s.inputs.len() > SHOWN {
            let _ = write!(files, " and {} more", s.inputs.len() - SHOWN);
        }
        let _ = writeln!(out, "Read from: {files}");
    }
    out
}

/// `2026-11-22T06:38:12Z` → `2026-11-22T06:38Z` (minutes are enough to tell
/// one collection from another); anything else as it is.
fn short_time(t: &str) -> String {
    let b = t.as_bytes();
    if b.len() >= 17 && b[10] == b'T' && b[13] == b':' && b[16] == b':' && t.ends_with('Z') {
        format!("{}Z", &t[..16])
    } else {
        t.to_string()
    }
}

/// What could not be seen and why; nothing when everything was seen.
pub fn missing_section(snap: &Snapshot, style: Style) -> String {
    if snap.missing.is_empty() {
        return String::new();
    }
    let mut out = format!("\n{}\n", style.paint(Tone::Warn, "Not seen"));
    for m in &snap.missing {
        let _ = writeln!(out, "  - {}: {}", m.what, m.why);
    }
    out
}

/// Splits text into lines of at most `width` characters at spaces (a longer word
/// stays whole on its own line).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Test support: the README's table that starts with `want`'s header line must be
/// `want`, line for line (tables generated from a definition in code: thresholds,
/// metrics). A mismatch prints the table to paste.
#[cfg(test)]
pub(crate) fn assert_readme_table(what: &str, want: &str) {
    let readme = include_str!("../../../../README.md");
    let first = want.lines().next().unwrap_or_default();
    let start = readme
        .find(first)
        .unwrap_or_else(|| panic!("README.md has no {what} table (its header line)"));
    let got: String = readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        got, want,
        "README.md's {what} table disagrees with the code; replace it with:\n{want}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(kind: SourceKind) -> Snapshot {
        Snapshot {
            source: sockmedic_model::Source {
                kind,
                host: "node-7".into(),
                kernel: Some("6.18.0".into()),
                taken_at: "2026-11-22T06:38:12Z".into(),
                duration_ms: Some(812.0),
                tool: "sockmedic 0.1.0".into(),
                inputs: vec![
                    "ss.txt (ss -tan)".into(),
                    "sockstat (/proc/net/sockstat)".into(),
                ],
                ..Default::default()
            },
            ..Snapshot::default()
        }
    }

    #[test]
    fn the_header_says_where_the_figures_come_from() {
        let plain = Style { color: false };
        let live = header_line("check", &snap(SourceKind::Live), plain);
        assert!(live.contains("(live, 812 ms)"), "{live}");
        let bundle = header_line("stat", &snap(SourceKind::Bundle), plain);
        assert_eq!(
            bundle,
            "sockmedic stat: bundle from node-7, Linux 6.18.0, taken 2026-11-22T06:38Z by sockmedic 0.1.0 (not live)\n"
        );
        let text = header_line("sockets", &snap(SourceKind::Text), plain);
        assert!(text.contains("saved text from host node-7"), "{text}");
        assert!(
            text.contains("Read from: ss.txt (ss -tan), sockstat (/proc/net/sockstat)"),
            "{text}"
        );
    }

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(super::wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(super::wrap("", 6), Vec::<String>::new());
        assert_eq!(super::wrap("abcdefgh ij", 4), ["abcdefgh", "ij"]);
    }
}
