//! Reading a `--from PATH`: one file, a directory tree (sosreport, supportconfig,
//! a `collect --script` output), or standard input (`-`).

use super::formats::{detect, Format, Input};
use super::{Offline, ReadOptions};
use sockmedic_model::{Snapshot, SourceKind};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// How much of an input is looked at to recognise it.
const SNIFF_BYTES: usize = 8192;
/// Files in a tree larger than this are skipped (a core dump, a capture).
const MAX_TREE_FILE: u64 = 2 << 30;
/// Files looked at in a tree, at most.
const MAX_TREE_FILES: usize = 20_000;
/// Directory levels below the root walked into, at most (a sosreport's deepest
/// useful files are 4 levels down; `sys/` goes far deeper).
const MAX_DEPTH: usize = 12;
/// Unreadable entries of a tree listed one by one in `missing`; the rest are counted.
const MAX_LISTED: usize = 50;

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
    #[error("{path}: no file in it is a format sockmedic reads ({files} files looked at, {unreadable} not readable)")]
    NothingRecognised {
        path: String,
        files: usize,
        unreadable: usize,
    },
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
    let mut pending = if path == Path::new("-") {
        let input = Input {
            name: "standard input".into(),
            path: None,
        };
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| io(&input.name, e))?;
        vec![in_memory(input, bytes)?]
    } else if path.is_dir() {
        tree(path, &mut out)?
    } else {
        vec![single_file(path)?]
    };
    pending.sort_by_key(|p| p.format.order);
    let single = pending.len() == 1;
    for p in pending {
        out.begin_input(&p.input.name);
        let parsed = parse_one(&p, &mut out);
        if let Some(conflict) = out.host_conflict() {
            return Err(IngestError::TwoHosts(conflict.to_string()));
        }
        match parsed {
            Ok(()) => out.inputs.push((p.input.name.clone(), p.format.name)),
            // A single input that does not parse is fatal; in a tree, the rest is
            // still read and the failure is listed.
            Err(why) if single => {
                return Err(IngestError::Parse {
                    path: p.input.name,
                    why: format!("{} ({})", why, p.format.name),
                })
            }
            Err(why) => out.missing(format!("{} ({})", p.input.name, p.format.name), why),
        }
    }
    Ok(out.finish())
}

/// An input read whole into memory (standard input, a pipe), recognised.
fn in_memory(input: Input, bytes: Vec<u8>) -> Result<Pending, IngestError> {
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    let format = recognise(&input, head)?;
    Ok(Pending {
        input,
        format,
        bytes: Some(bytes),
    })
}

/// A `--from FILE`: a regular file is sniffed, then read again by its parser; a
/// pipe or other stream (`--from <(ssh host ss -s)`) can be read once only, so it
/// is read whole.
fn single_file(path: &Path) -> Result<Pending, IngestError> {
    let input = Input {
        name: path.display().to_string(),
        path: Some(path.to_path_buf()),
    };
    let meta = std::fs::metadata(path).map_err(|e| io(&input.name, e))?;
    if !meta.is_file() {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| io(&input.name, e))?;
        return in_memory(input, bytes);
    }
    let head = head_of(path)?;
    let format = recognise(&input, &head)?;
    Ok(Pending {
        input,
        format,
        bytes: None,
    })
}

/// Runs the parser of one recognised input.
fn parse_one(p: &Pending, out: &mut Offline) -> Result<(), String> {
    match &p.bytes {
        Some(b) => (p.format.parse)(&mut &b[..], out, &p.input),
        None => match File::open(p.input.path.as_deref().unwrap_or(Path::new(""))) {
            Ok(f) => (p.format.parse)(&mut BufReader::with_capacity(1 << 16, f), out, &p.input),
            Err(e) => Err(format!("cannot read: {e}")),
        },
    }
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

/// Every recognised file of a directory tree (a sosreport, a supportconfig
/// directory, a `collect --script` output), walked breadth first so the shallow
/// files (sosreport's `sos_commands/`, `proc/net/`) come before the deep `sys/`
/// trees when the file limit is reached. Files that are no format sockmedic reads are
/// counted; what cannot be read at all is listed in `missing`:
/// - symlinks are not followed: one pointing inside the tree names a file read
///   where it is (sosreport's `hostname -> sos_commands/host/hostname`); one
///   pointing out of the tree, or nowhere, is listed;
/// - FIFOs, sockets and devices are listed, never opened (a FIFO would block);
/// - files larger than [`MAX_TREE_FILE`], and directories deeper than
///   [`MAX_DEPTH`], are listed;
/// - unreadable files and directories are listed with the system's reason.
fn tree(root: &Path, out: &mut Offline) -> Result<Vec<Pending>, IngestError> {
    let mut walk = Walk {
        root: std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
        pending: Vec::new(),
        looked: 0,
        skipped: 0,
        unreadable: 0,
        too_deep: (0, None),
    };
    let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::from([(root.to_path_buf(), 0)]);
    while let Some((dir, depth)) = queue.pop_front() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                walk.unreadable += 1;
                out.missing(dir.display().to_string(), format!("cannot list: {e}"));
                continue;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            match walk.entry(e.path(), depth, out) {
                Step::Dir(p) => queue.push_back((p, depth + 1)),
                Step::Done => {}
                Step::Full => {
                    out.missing(
                        root.display().to_string(),
                        format!("more than {MAX_TREE_FILES} files: the rest not read"),
                    );
                    return walk.finish(root, out);
                }
            }
        }
    }
    walk.finish(root, out)
}

/// What to do after one entry of a tree.
enum Step {
    Dir(PathBuf),
    Done,
    /// The file limit is reached.
    Full,
}

/// The state of a tree walk.
struct Walk {
    /// The tree's root, resolved (symlinks are judged against it).
    root: PathBuf,
    pending: Vec<Pending>,
    /// Regular files looked at.
    looked: usize,
    /// Files of no format sockmedic reads (or empty, or binary).
    skipped: usize,
    /// Entries that could not be read at all (listed in `missing`, the first
    /// [`MAX_LISTED`] one by one).
    unreadable: usize,
    /// Directories deeper than [`MAX_DEPTH`] (one `missing` entry for all), the first.
    too_deep: (usize, Option<String>),
}

impl Walk {
    fn entry(&mut self, p: PathBuf, depth: usize, out: &mut Offline) -> Step {
        let name = p.display().to_string();
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) => return self.unreadable(out, name, format!("cannot stat: {e}")),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            return self.symlink(&p, out);
        }
        if kind.is_dir() {
            // `collect --script` keeps other namespaces apart: one namespace per --from.
            if depth == 0
                && p.file_name() == Some("netns".as_ref())
                && p.with_file_name("sockmedic-collect.txt").exists()
            {
                out.missing(
                    name,
                    "other network namespaces: read each with --from DIR/netns/NAME",
                );
                return Step::Done;
            }
            if depth + 1 > MAX_DEPTH {
                self.too_deep.0 += 1;
                self.too_deep.1.get_or_insert(name);
                return Step::Done;
            }
            return Step::Dir(p);
        }
        if !kind.is_file() {
            return self.unreadable(
                out,
                name,
                format!("{}, not a regular file: not read", special_kind(&kind)),
            );
        }
        if meta.len() == 0 {
            // sosreport keeps a file per command, empty when it printed nothing.
            return Step::Done;
        }
        if meta.len() > MAX_TREE_FILE {
            return self.unreadable(
                out,
                name,
                format!(
                    "{} bytes, larger than the {MAX_TREE_FILE} a file may have: not read",
                    meta.len()
                ),
            );
        }
        self.looked += 1;
        if self.looked > MAX_TREE_FILES {
            return Step::Full;
        }
        let input = Input {
            name,
            path: Some(p.clone()),
        };
        match head_of(&p).and_then(|h| recognise(&input, &h)) {
            Ok(format) => self.pending.push(Pending {
                input,
                format,
                bytes: None,
            }),
            Err(IngestError::Io { path, why }) => return self.unreadable(out, path, why),
            Err(_) => self.skipped += 1,
        }
        Step::Done
    }

    fn unreadable(&mut self, out: &mut Offline, what: String, why: String) -> Step {
        self.unreadable += 1;
        if self.unreadable <= MAX_LISTED {
            out.missing(what, why);
        }
        Step::Done
    }

    /// A symlink: skipped when it points into the tree (its target is read
    /// there), listed when it points out of it or nowhere.
    fn symlink(&mut self, p: &Path, out: &mut Offline) -> Step {
        let name = p.display().to_string();
        let target = std::fs::read_link(p)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        match std::fs::canonicalize(p) {
            Ok(resolved) if resolved.starts_with(&self.root) => Step::Done,
            Ok(_) => self.unreadable(
                out,
                name,
                format!("a symlink to {target}, out of the tree: not followed"),
            ),
            Err(e) => self.unreadable(
                out,
                name,
                format!("a symlink to {target}, which cannot be reached ({e}): not read"),
            ),
        }
    }

    fn finish(self, root: &Path, out: &mut Offline) -> Result<Vec<Pending>, IngestError> {
        let here = root.display().to_string();
        if self.unreadable > MAX_LISTED {
            out.missing(
                here.clone(),
                format!(
                    "{} more entries could not be read (not listed one by one)",
                    self.unreadable - MAX_LISTED
                ),
            );
        }
        if let (n, Some(first)) = &self.too_deep {
            out.missing(
                here.clone(),
                format!(
                    "{n} directories deeper than {MAX_DEPTH} levels not read (the first: {first})"
                ),
            );
        }
        if self.pending.is_empty() {
            return Err(IngestError::NothingRecognised {
                path: root.display().to_string(),
                files: self.looked,
                unreadable: self.unreadable,
            });
        }
        if self.skipped > 0 {
            out.missing(
                root.display().to_string(),
                format!(
                    "{} of {} files are not a format sockmedic reads (skipped)",
                    self.skipped, self.looked
                ),
            );
        }
        Ok(self.pending)
    }
}

/// What a non-regular, non-directory file is, in words.
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}
