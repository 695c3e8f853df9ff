//! Parsers for captured text: what sockmedic reads from files and pasted command
//! outputs rather than from the running kernel. Pure functions of their input (the
//! only I/O is reading a caller's `BufRead`), so every parser is tested on fixtures
//! captured from real kernels and tools (`tests/fixtures/`).

//! The kernel log, as the binary glues it (collect reads, ingest counts):
//!
//! ```text
//! // sockmedic check: the live kernel
//! match sockmedic_collect::kmsg::read_kmsg() {
//!     Ok(records) => snap.kernel_log = Some(kernel_log_from_lines(
//!         "/dev/kmsg", &records,
//!         Some(kmsg::boot_time_s()), Some(kmsg::kmsg_now_s()))),
//!     Err(e) => snap.missing.push(e.missing()),
//! }
//! // sockmedic check --kernel-log FILE: another boot or machine, so no boot time
//! let log = kernel_log_from_reader(path, BufReader::new(File::open(path)?), None, None)?;
//! ```

pub mod kernel_log;
pub mod offline;

pub use kernel_log::{kernel_log_from_lines, kernel_log_from_reader, KernelLogBuilder};
pub use offline::{read_path, IngestError, Offline, ReadOptions};
