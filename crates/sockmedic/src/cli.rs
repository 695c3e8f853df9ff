//! The command line: every flag is defined once, here; `--help`, the README's
//! tables and the error messages all come from these definitions.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sockmedic",
    version,
    about = "Find, explain and fix TCP socket exhaustion on Linux hosts and Kubernetes nodes",
    long_about = "Find, explain and fix TCP socket exhaustion on Linux hosts and Kubernetes nodes.\n\n\
        Without a subcommand, runs `stat`. Exit codes: 0 ok, 3 could not run \
        (bad arguments, an unknown namespace)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: Common,
}

/// Flags every subcommand takes.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Print the JSON report (schema sockmedic.report/v1) on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Look only at this network namespace: `self`, an `ip netns` name, a pid, or a
    /// namespace inode. Default: every namespace reachable.
    #[arg(long, global = true, value_name = "SEL")]
    pub netns: Option<String>,
    /// Rows per top-N table.
    #[arg(long, global = true, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// No colours, even on a terminal (also: the NO_COLOR environment variable).
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// What `ss -s` should have said: every TCP count with its scope, limit and ratio.
    Stat(StatArgs),
    /// Sockets by state, by local and remote endpoint, by listener, and ephemeral
    /// port use: the `ss -ant | awk | sort | uniq -c` pipelines in one command.
    Sockets(SocketsArgs),
}

#[derive(Args, Debug, Default)]
pub struct StatArgs {}

#[derive(Args, Debug, Default)]
pub struct SocketsArgs {
    /// Only these states (repeat or separate with commas): established, syn-sent,
    /// syn-recv, fin-wait-1, fin-wait-2, time-wait, close-wait, last-ack, listen,
    /// closing, bound-inactive.
    #[arg(long, value_name = "STATE", value_delimiter = ',')]
    pub state: Vec<String>,
    /// Only sockets whose local or remote port is PORT.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}
