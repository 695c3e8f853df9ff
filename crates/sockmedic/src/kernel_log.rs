//! The kernel log for `check`: the known socket-exhaustion messages of /dev/kmsg,
//! or of a saved `dmesg` / `journalctl -k` file given with `--kernel-log`.
//! Reading is `sockmedic_collect::kmsg`'s, parsing and counting `sockmedic_ingest`'s;
//! this is the glue.

use anyhow::{Context, Result};
use sockmedic_collect::kmsg;
use sockmedic_model::{KernelLog, Missing};
use std::io::BufReader;
use std::path::Path;

/// Reads the kernel log. A file named with `--kernel-log` that cannot be read is an
/// error (the user asked for it); /dev/kmsg that cannot be read (not root,
/// `kernel.dmesg_restrict`, a container) is a `missing` entry, and the check goes on
/// without the log.
pub fn read(path: Option<&Path>) -> Result<(Option<KernelLog>, Vec<Missing>)> {
    match path {
        Some(p) => {
            let what = || format!("--kernel-log {}", p.display());
            let file = std::fs::File::open(p).with_context(what)?;
            // A saved file may come from another boot or another host: no boot time
            // (its uptime stamps get no wall time) and no reading time.
            let log = sockmedic_ingest::kernel_log_from_reader(
                &p.display().to_string(),
                BufReader::new(file),
                None,
                None,
            )
            .with_context(what)?;
            Ok((Some(log), Vec::new()))
        }
        None => match kmsg::read_kmsg() {
            Ok(records) => {
                let log = sockmedic_ingest::kernel_log_from_lines(
                    "/dev/kmsg",
                    records,
                    Some(kmsg::boot_time_s()),
                    Some(kmsg::kmsg_now_s()),
                );
                Ok((Some(log), Vec::new()))
            }
            Err(e) => Ok((None, vec![e.missing()])),
        },
    }
}
