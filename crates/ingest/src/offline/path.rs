//! Reading a `--from PATH`: one file, a directory tree (sosreport, supportconfig,
//! a `collect --script` output), or standard input (`-`).

use super::formats::{detect, Format, Input};
use super::{Offline, ReadOptions};
use sockmedic_model::{Snapshot, SourceKind};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// How much of an input is looked at to recognise it.
const SNIFF_BYTES: usize = 8192;
/// Files in a tree larger than this are skipped (a core dump, a capture).
const MAX_TREE_FILE: u64 = 2 << 30;
/// Files looked at in a tree, at most.
const MAX_TREE_FILES: usize = 20_000;

/// Why an input could not be read: one line, naming the input and the problem.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {why}")]
    Io { path: String, why: String },
    #[error("{path}: empty")]
    Empty { path: String },
    #[error("{path}: binary data, not a saved command output or /proc file")]
    Binary { path: String },
    #[error("{path}: not a format sockmedic reads ({hint})")]
    Unrecognised { path: String, hint: String },
    #[error("{path}: {why}")]
    Parse { path: String, why: String },
    #[error("{0}")]
    TwoHosts(String),
    #[error("{path}: no file in it is a format sockmedic reads ({files} files looked at)")]
    NothingRecognised { path: String, files: usize },
}

/// A recognised input waiting to be parsed.
struct Pending {
    input: Input,
    format: &'static Format,
    /// Standard input cannot be reopened: its bytes are kept.
    bytes: Option<Vec<u8>>,
}

/// Reads `path` (a file, a directory, or `-` for standard input) into a Snapshot.
pub fn read_path(path: &Path, opts: ReadOptions) -> Result<Snapshot, IngestError> {
    if let Some(snap) = super::bundle::read_bundle(path, opts)? {
        return Ok(snap);
    }
    let mut out = Offline::new(SourceKind::Text, opts);
    let mut pending = Vec::new();
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| io("standard input", e))?;
        let input = Input {
            name: "standard input".into(),
            path: None,
        };
        let format = recognise(&input, &bytes)?;
        pending.push(Pending {
            input,
            format,
            bytes: Some(bytes),
        });
    } else if path.is_dir() {
        pending = tree(path, &mut out)?;
    } else {
        let input = Input {
            name: path.display().to_string(),
            path: Some(path.to_path_buf()),
        };
        let head = head_of(path)?;
        let format = recognise(&input, &head)?;
        pending.push(Pending {
            input,
            format,
            bytes: None,
        });
    }
    pending.sort_by_key(|p| p.format.order);
    let single = pending.len() == 1;
    for p in pending {
        let parsed = match &p.bytes {
            Some(b) => (p.format.parse)(&mut &b[..], &mut out, &p.input),
            None => match File::open(p.input.path.as_deref().unwrap_or(Path::new(""))) {
                Ok(f) => (p.format.parse)(
                    &mut BufReader::with_capacity(1 << 16, f),
                    &mut out,
                    &p.input,
                ),
                Err(e) => Err(e.to_string()),
            },
        };
        match parsed {
            Ok(()) => out.inputs.push((p.input.name.clone(), p.format.name)),
            Err(why) if why.contains("two hosts") => return Err(IngestError::TwoHosts(why)),
            // A single input that does not parse is fatal; in a tree, the rest is
            // still read and the failure is listed.
            Err(why) if single => {
                return Err(IngestError::Parse {
                    path: p.input.name,
                    why,
                })
            }
            Err(why) => out.missing(format!("{} ({})", p.input.name, p.format.name), why),
        }
    }
    Ok(out.finish())
}

fn io(path: &str, e: std::io::Error) -> IngestError {
    IngestError::Io {
        path: path.to_string(),
        why: e.to_string(),
    }
}

fn head_of(path: &Path) -> Result<Vec<u8>, IngestError> {
    let name = path.display().to_string();
    let mut f = File::open(path).map_err(|e| io(&name, e))?;
    let mut buf = vec![0; SNIFF_BYTES];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(io(&name, e)),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// The format of one input, or why it has none.
fn recognise(input: &Input, head: &[u8]) -> Result<&'static Format, IngestError> {
    let path = input.name.clone();
    if head.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(IngestError::Empty { path });
    }
    if looks_binary(head) {
        return Err(IngestError::Binary { path });
    }
    let text = String::from_utf8_lossy(head);
    detect(&text, input).ok_or_else(|| IngestError::Unrecognised {
        path,
        hint: format!(
            "it starts with {:?}; sockmedic reads ss, netstat, sysctl -a, dmesg/journalctl, /proc/net and /proc/sys files, ulimit -a, /proc/PID/limits",
            text.lines().next().unwrap_or("").chars().take(60).collect::<String>()
        ),
    })
}

fn looks_binary(head: &[u8]) -> bool {
    let controls = head
        .iter()
        .filter(|&&b| b == 0 || (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t')))
        .count();
    controls * 100 > head.len().max(1)
}

/// Every recognised file of a directory tree; the others are counted as skipped.
fn tree(root: &Path, out: &mut Offline) -> Result<Vec<Pending>, IngestError> {
    let mut pending = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let (mut looked, mut skipped) = (0usize, 0usize);
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                out.missing(dir.display().to_string(), format!("cannot list: {e}"));
                continue;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                // `collect --script` keeps other namespaces apart: one namespace per --from.
                if dir == root
                    && e.file_name() == "netns"
                    && root.join("sockmedic-collect.txt").exists()
                {
                    out.missing(
                        p.display().to_string(),
                        "other network namespaces: read each with --from DIR/netns/NAME",
                    );
                    continue;
                }
                stack.push(p);
                continue;
            }
            if !meta.is_file() || meta.len() == 0 || meta.len() > MAX_TREE_FILE {
                continue;
            }
            looked += 1;
            if looked > MAX_TREE_FILES {
                out.missing(
                    root.display().to_string(),
                    format!("more than {MAX_TREE_FILES} files: the rest not read"),
                );
                return Ok(pending);
            }
            let input = Input {
                name: p.display().to_string(),
                path: Some(p.clone()),
            };
            match head_of(&p).and_then(|h| recognise(&input, &h)) {
                Ok(format) => pending.push(Pending {
                    input,
                    format,
                    bytes: None,
                }),
                Err(_) => skipped += 1,
            }
        }
    }
    if pending.is_empty() {
        return Err(IngestError::NothingRecognised {
            path: root.display().to_string(),
            files: looked,
        });
    }
    if skipped > 0 {
        out.missing(
            root.display().to_string(),
            format!("{skipped} of {looked} files are not a format sockmedic reads (skipped)"),
        );
    }
    Ok(pending)
}
