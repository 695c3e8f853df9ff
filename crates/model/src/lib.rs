//! sockmedic's data model: everything it knows at one instant (the [`Snapshot`]),
//! what it concludes ([`Finding`]) and the JSON report that carries both
//! (schema [`REPORT_SCHEMA`]). Plain serializable data; no I/O lives here, so every
//! source (live kernel, bundle, pasted `ss` output) and every consumer meet in these
//! types.

mod endpoint;
mod finding;
mod kernel_log;
mod snapshot;
mod state;

pub use endpoint::{format_endpoint, Endpoint};
pub use finding::{Finding, Remedy, Severity, Subject};
pub use kernel_log::{KernelLog, KernelMessage, LogKind};
pub use snapshot::*;
pub use state::{StateCounts, TcpState};

/// The JSON report's schema name; bump it (and note it in CHANGELOG.md) on any
/// incompatible change.
pub const REPORT_SCHEMA: &str = "sockmedic.report/v1";
