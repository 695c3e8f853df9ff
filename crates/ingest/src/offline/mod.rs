//! Offline input: saved command outputs, /proc files, sosreport/supportconfig trees
//! and sockmedic bundles, turned into the same [`Snapshot`] the live collector
//! builds (`sockmedic_model::Snapshot`), so `check` gives the same diagnosis offline
//! as live.
//!
//! A format is recognised from the content, never the file name (except where the
//! content alone cannot say: a `/proc/sys/...` value, a `/proc/PID/limits`). Each
//! format declares itself once in [`FORMATS`]: its name, how to recognise it, how
//! to parse it into an [`Offline`] builder.

mod builder;
pub mod bundle;
mod formats;
mod host;
mod netstat;
mod path;
mod proc_tcp;
mod shell;
mod ss;
mod supportconfig;
mod transcript;

pub use builder::{Offline, ReadOptions, SsSummary, DEFAULT_TOP};
pub use formats::{detect, Format, Input, FORMATS};
pub use path::{read_path, IngestError};
