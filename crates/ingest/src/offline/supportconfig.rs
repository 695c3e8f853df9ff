//! SUSE supportconfig files (`basic-environment.txt`, `network.txt`, `env.txt`,
//! `proc.txt`...): sections, each headed by a line `#==[ Kind ]====...#` and a label
//! line `# ...`. supportconfig.rc writes them so:
//!
//! - `#==[ Command ]` then `# /bin/ss -s` (the program by its full path), then the
//!   output;
//! - `#==[ Configuration File ]` then `# /proc/sys/net/ipv4/tcp_max_orphans` then the
//!   file with comment and blank lines removed (or `# PATH - File not found`);
//! - `#==[ Log File ]` then `# /var/log/messages` or `# PATH - Last N Lines`.
//!
//! Each section is read like a transcript's command output (the same dispatch:
//! [`super::transcript::dispatch`]), a file section with its path as the input's,
//! so `/proc/sys` values get their name.

use super::formats::{detect_leaf, Input};
use super::transcript::{dispatch, Tally};
use super::Offline;
use std::io::BufRead;
use std::path::PathBuf;

/// The kinds of section sockmedic reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Command,
    File,
    /// `Verification`, `Summary`, `Note`...: nothing sockmedic reads.
    Other,
}

/// `#==[ Command ]=====#` → the kind; `None` for any other line.
fn header(line: &str) -> Option<Kind> {
    let inside = line.trim_end().strip_prefix("#==[ ")?;
    let (name, _) = inside.split_once(" ]")?;
    Some(match name {
        "Command" => Kind::Command,
        "Configuration File" | "Log File" => Kind::File,
        _ => Kind::Other,
    })
}

/// A supportconfig file: a Command, Configuration File or Log File header near the top.
pub(crate) fn sniff(head: &str, _: &Input) -> bool {
    head.lines()
        .take(200)
        .any(|l| matches!(header(l), Some(Kind::Command | Kind::File)))
}

/// One section as written: its kind, its label (the line after the header, without
/// `# `) and its lines.
struct Section<'a> {
    kind: Kind,
    label: Option<&'a str>,
    body: Vec<&'a str>,
}

fn sections(text: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    for line in text.lines() {
        if let Some(kind) = header(line) {
            out.push(Section {
                kind,
                label: None,
                body: Vec::new(),
            });
            continue;
        }
        let Some(s) = out.last_mut() else { continue };
        match (s.label, line.strip_prefix("# ")) {
            (None, Some(label)) => s.label = Some(label.trim()),
            (None, None) if line.trim().is_empty() => {}
            _ => s.body.push(line),
        }
    }
    out
}

/// Reads every Command and File section sockmedic recognises.
pub(crate) fn parse(
    text: &mut dyn BufRead,
    out: &mut Offline,
    input: &Input,
) -> Result<(), String> {
    let text = super::formats::read_all(text)?;
    let mut tally = Tally::default();
    for s in sections(&text) {
        let Some(label) = s.label else { continue };
        let body = s.body.join("\n");
        let body = body.trim_end();
        match s.kind {
            Kind::Command => dispatch(label, body, out, input, &mut tally),
            Kind::File => file_section(label, body, out, input, &mut tally),
            Kind::Other => {}
        }
    }
    tally.finish(out, input, "sections")
}

/// A Configuration File or Log File section: `PATH`, `PATH - Last N Lines`, or
/// `PATH - File not found` (nothing to read).
fn file_section(label: &str, body: &str, out: &mut Offline, parent: &Input, tally: &mut Tally) {
    if label.ends_with(" - File not found") || body.trim().is_empty() {
        return;
    }
    let path = label.split(" - ").next().unwrap_or(label).trim();
    let input = Input {
        name: format!("{}: {path}", parent.name),
        path: Some(PathBuf::from(path)),
    };
    let head: String = body.chars().take(8192).collect();
    match detect_leaf(&head, &input) {
        Some(f) => match (f.parse)(&mut body.as_bytes(), out, &input) {
            Ok(()) => tally.read += 1,
            Err(why) => {
                out.missing(format!("{} ({})", input.name, f.name), why);
                tally.skipped.push(path.to_string());
            }
        },
        None => tally.skipped.push(path.to_string()),
    }
}
