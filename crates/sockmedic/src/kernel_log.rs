//! The kernel log for `check`: the known socket-exhaustion messages of /dev/kmsg,
//! or of a saved `dmesg` / `journalctl -k` file given with `--kernel-log`.
//!
//! The reader (`sockmedic_collect::kmsg`) and the parser (`sockmedic_ingest`) are
//! being written on another branch; until they land, the log is reported as not
//! read, so the `kernel-log` check is skipped with that reason.

use anyhow::{Context, Result};
use sockmedic_model::{KernelLog, Missing};
use std::path::Path;

/// What the `missing` entry of the kernel log is called (the catalog's `KernelLog`
/// need finds its reason under this name).
const WHAT: &str = "kernel log";

/// Reads the kernel log. A file named with `--kernel-log` that cannot be read is an
/// error (the user asked for it); /dev/kmsg that cannot be read is a `missing`
/// entry, and the check goes on without the log.
pub fn read(path: Option<&Path>) -> Result<(Option<KernelLog>, Vec<Missing>)> {
    match path {
        Some(p) => {
            // Read it all the same: an unreadable or misspelt file must fail now.
            let bytes =
                std::fs::read(p).with_context(|| format!("--kernel-log {}", p.display()))?;
            Ok((
                None,
                vec![Missing::new(
                    WHAT,
                    format!(
                        "not read: {} ({} bytes) was opened, but this build cannot parse kernel logs yet",
                        p.display(),
                        bytes.len()
                    ),
                )],
            ))
        }
        None => Ok((
            None,
            vec![Missing::new(
                WHAT,
                "not read: this build cannot read /dev/kmsg yet",
            )],
        )),
    }
}
