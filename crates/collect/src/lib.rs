//! Live kernel readers. Everything sockmedic learns from the running kernel comes
//! through here: procfs and sysctl files, sock_diag netlink dumps, the network
//! namespace walk. Each reader fails alone: what it cannot read becomes a
//! [`sockmedic_model::Missing`] entry and the rest of the Snapshot is still built.

pub mod aggregate;
pub mod cgroup;
pub mod kmsg;
mod namespace;
pub mod netns;
mod processes;
pub mod procfs;
pub mod procscan;
pub mod record;
mod replay;
mod snapshot;
pub mod sockdiag;
#[cfg(test)]
mod testutil;

pub use replay::{replay, ReplayOptions};
pub use snapshot::{
    closed_sockets_seen_from, collect, sysctl_file, CollectError, CollectOptions, DumpMode,
};
