//! Text output for people. JSON output is the model's own serialization.

pub mod check;
pub mod explain;
pub mod procs;
pub mod sockets;
pub mod stat;
pub mod table;

use sockmedic_model::{Snapshot, SourceKind};
use std::fmt::Write;
use table::{Style, Tone};

/// The first line: what was looked at, where, when, and from which source.
pub fn header_line(command: &str, snap: &Snapshot, style: Style) -> String {
    let s = &snap.source;
    let kind = match s.kind {
        SourceKind::Live => "live",
        SourceKind::Bundle => "bundle",
        SourceKind::Text => "saved text",
        SourceKind::Capture => "capture",
    };
    let mut line = format!("sockmedic {command}: host {}", s.host);
    if let Some(k) = &s.kernel {
        let _ = write!(line, ", Linux {k}");
    }
    let _ = write!(line, ", {} ({kind}", s.taken_at);
    if let Some(ms) = s.duration_ms {
        let _ = write!(line, ", {ms:.0} ms");
    }
    if s.privileged == Some(false) {
        line.push_str(", not root: some figures missing");
    }
    line.push(')');
    format!("{}\n", style.paint(Tone::Bold, &line))
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

#[cfg(test)]
mod tests {
    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(super::wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(super::wrap("", 6), Vec::<String>::new());
        assert_eq!(super::wrap("abcdefgh ij", 4), ["abcdefgh", "ij"]);
    }
}
