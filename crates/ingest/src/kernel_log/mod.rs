//! The kernel log, from raw lines to counted messages: [`parse_line`] takes one line
//! of any of the usual captures apart, [`classify`] says which known message it is,
//! [`KernelLogBuilder`] counts them while they stream past and builds the
//! [`KernelLog`] of the Snapshot.

mod classify;
mod line;
pub(crate) mod time;

pub use classify::{classify, suppressed};
pub use line::{parse_line, LineFormat, LogLine};
pub use time::format_rfc3339_utc;

use sockmedic_model::{KernelLog, KernelMessage, LogKind};
use std::collections::HashMap;
use std::io::{self, BufRead};

/// How many distinct (kind, detail) entries a [`KernelLog`] keeps by default. A SYN
/// flood across thousands of ports must not grow the report (or the memory) without
/// bound; what does not fit is folded into one [`OTHERS`] entry per kind.
pub const DEFAULT_MAX_MESSAGES: usize = 256;

/// The detail of the entry that holds, for one kind, every occurrence whose own
/// detail did not fit under the cap.
pub const OTHERS: &str = "(others)";

/// A sample longer than this is cut: it is shown, not parsed.
const MAX_SAMPLE: usize = 1024;

/// Lines longer than this are cut by [`kernel_log_from_reader`] (a kernel record is
/// at most about 1 KiB of text; anything longer is not a kernel log).
pub const MAX_LINE: usize = 64 * 1024;

/// Counts known kernel messages line by line. Memory is bounded by the number of
/// distinct (kind, detail) pairs, itself capped (see [`DEFAULT_MAX_MESSAGES`]), never
/// by the length of the log.
#[derive(Debug)]
pub struct KernelLogBuilder {
    log: KernelLog,
    boot_time: Option<f64>,
    max_messages: usize,
    index: HashMap<(LogKind, Option<String>), usize>,
}

impl KernelLogBuilder {
    /// A builder for the log read from `source` (`/dev/kmsg`, a file name).
    pub fn new(source: impl Into<String>) -> KernelLogBuilder {
        KernelLogBuilder {
            log: KernelLog {
                source: source.into(),
                ..KernelLog::default()
            },
            boot_time: None,
            max_messages: DEFAULT_MAX_MESSAGES,
            index: HashMap::new(),
        }
    }

    /// When the kernel booted, in seconds since the epoch: uptime stamps
    /// (`/dev/kmsg`, `dmesg`) then also get an RFC 3339 UTC wall time. Give it only
    /// for a log of the running boot (it is `boot_time_s()` of sockmedic-collect).
    pub fn boot_time(mut self, boot_time: Option<f64>) -> KernelLogBuilder {
        self.boot_time = boot_time.filter(|b| b.is_finite());
        self
    }

    /// The uptime (on the log's clock) at which the log was read.
    pub fn read_uptime_s(mut self, read_uptime_s: Option<f64>) -> KernelLogBuilder {
        self.log.read_uptime_s = read_uptime_s;
        self
    }

    /// Caps the distinct (kind, detail) entries (at least one per kind is always
    /// possible: the [`OTHERS`] entries come on top, at most one per kind).
    pub fn max_messages(mut self, max: usize) -> KernelLogBuilder {
        self.max_messages = max;
        self
    }

    /// Takes text that may hold several lines (a /dev/kmsg record with its
    /// dictionary, a whole file).
    pub fn push_text(&mut self, text: &str) {
        for line in text.split('\n') {
            self.push_line(line);
        }
    }

    /// Takes one line of the log.
    pub fn push_line(&mut self, line: &str) {
        let Some(parsed) = parse_line(line) else {
            return;
        };
        self.push_parsed(&parsed);
    }

    /// Takes one parsed line.
    pub fn push_parsed(&mut self, line: &LogLine<'_>) {
        self.log.records += 1;
        if let Some(uptime) = line.uptime_s {
            let oldest = self.log.oldest_uptime_s.get_or_insert(uptime);
            *oldest = oldest.min(uptime);
        }
        if line.from_userspace {
            return;
        }
        if let Some(n) = suppressed(line.message) {
            self.log.suppressed = self.log.suppressed.saturating_add(n);
            return;
        }
        if let Some((kind, detail)) = classify(line.message) {
            let wall = line.wall.clone().or_else(|| self.wall_of(line.uptime_s));
            let at = self.slot(kind, detail);
            let m = &mut self.log.messages[at];
            m.count = m.count.saturating_add(1);
            if m.count == 1 {
                m.first.clone_from(&wall);
                m.first_uptime_s = line.uptime_s;
            }
            m.last = wall;
            m.last_uptime_s = line.uptime_s;
            m.sample = classify::truncate(line.message, MAX_SAMPLE).to_string();
        }
    }

    /// The counted log.
    pub fn finish(self) -> KernelLog {
        self.log
    }

    /// The wall time of an uptime stamp, from the boot time.
    fn wall_of(&self, uptime: Option<f64>) -> Option<String> {
        format_rfc3339_utc(self.boot_time? + uptime?)
    }

    /// The index of the entry for (kind, detail), made if need be; past the cap,
    /// the kind's [`OTHERS`] entry.
    fn slot(&mut self, kind: LogKind, detail: Option<String>) -> usize {
        let key = (kind, detail);
        if let Some(&at) = self.index.get(&key) {
            return at;
        }
        let key = if self.index.len() < self.max_messages {
            key
        } else {
            (kind, Some(OTHERS.to_string()))
        };
        if let Some(&at) = self.index.get(&key) {
            return at;
        }
        let at = self.log.messages.len();
        self.log.messages.push(KernelMessage {
            kind,
            count: 0,
            first: None,
            last: None,
            first_uptime_s: None,
            last_uptime_s: None,
            detail: key.1.clone(),
            sample: String::new(),
        });
        self.index.insert(key, at);
        at
    }
}

/// The [`KernelLog`] of some lines (or multi-line texts, such as /dev/kmsg records
/// with their dictionary), e.g. the records of `read_kmsg()` of sockmedic-collect or
/// the lines of a saved `dmesg`/`journalctl -k` output.
///
/// `boot_time` (seconds since the epoch) turns uptime stamps into wall times: give
/// it only for a log of the running boot. `read_uptime_s` is the uptime at which the
/// log was read, on the log's clock.
pub fn kernel_log_from_lines<I, S>(
    source: &str,
    lines: I,
    boot_time: Option<f64>,
    read_uptime_s: Option<f64>,
) -> KernelLog
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut builder = KernelLogBuilder::new(source)
        .boot_time(boot_time)
        .read_uptime_s(read_uptime_s);
    for line in lines {
        builder.push_text(line.as_ref());
    }
    builder.finish()
}

/// The [`KernelLog`] of a file or stream (`--kernel-log FILE`), read line by line in
/// bounded memory: bytes that are not UTF-8 are replaced, lines longer than
/// [`MAX_LINE`] are cut. Fails only if reading fails.
pub fn kernel_log_from_reader<R: BufRead>(
    source: &str,
    mut reader: R,
    boot_time: Option<f64>,
    read_uptime_s: Option<f64>,
) -> io::Result<KernelLog> {
    let mut builder = KernelLogBuilder::new(source)
        .boot_time(boot_time)
        .read_uptime_s(read_uptime_s);
    let mut line = Vec::new();
    while read_capped_line(&mut reader, &mut line, MAX_LINE)? {
        builder.push_line(&String::from_utf8_lossy(&line));
    }
    Ok(builder.finish())
}

/// Reads up to and including the next `\n` into `buf` (cleared first), keeping at
/// most `max` bytes of it; false at the end of input.
fn read_capped_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<bool> {
    buf.clear();
    let mut read_any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(take);
        if done {
            return Ok(true);
        }
    }
}
