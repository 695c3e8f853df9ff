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
#[derive(Args, Debug, Clone)]
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
    /// Where kubelet keeps pod logs, named `<namespace>_<name>_<uid>`: how pod names
    /// are found without an API server.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/log/pods"
    )]
    pub pods_dir: std::path::PathBuf,
    /// Where kubelet keeps the container log links, named
    /// `<pod>_<namespace>_<container>-<id>.log`: how container names are found.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/log/containers"
    )]
    pub containers_dir: std::path::PathBuf,
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
    /// Processes holding sockets: fds against their limit, socket fds, TCP sockets
    /// by state, sockets in no table, container and pod. The `for pid in /proc/*;
    /// ls -l /proc/$pid/fd | grep socket` loop, done right.
    Procs(ProcsArgs),
}

#[derive(Args, Debug, Default)]
pub struct StatArgs {
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Skip the process scan: no `processes` section, and ESTABLISHED is taken from
    /// snmp CurrEstab − CLOSE-WAIT instead of dumped (the fast path on a host with
    /// a million connections).
    #[arg(long)]
    pub no_procs: bool,
}

/// Flags of the process scan (`stat`, `procs`).
#[derive(Args, Debug, Clone, Default)]
pub struct ScanArgs {
    /// Include each process's command line (it may hold secrets passed as arguments).
    #[arg(long)]
    pub cmdline: bool,
    /// Also read SO_ERROR of the sampled CLOSE sockets, to tell reset/refused/timed
    /// out connections apart. Not read-only: reading it clears the error the
    /// application has not read yet.
    #[arg(long)]
    pub so_error: bool,
}

/// How `procs` orders its rows.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcSort {
    /// Socket fds, most first.
    #[default]
    Sockets,
    /// TCP sockets, most first.
    Tcp,
    /// Open fds, most first.
    Fds,
    /// Open fds as a share of the soft limit, highest first.
    FdUse,
    /// TCP sockets in no table (CLOSE), most first.
    Unhashed,
    /// CLOSE-WAIT sockets, most first.
    CloseWait,
    /// ESTABLISHED sockets, most first.
    Established,
    /// Process id.
    Pid,
}

#[derive(Args, Debug, Default)]
pub struct ProcsArgs {
    #[command(flatten)]
    pub scan: ScanArgs,
    /// Order of the rows.
    #[arg(long, value_enum, default_value_t = ProcSort::Sockets)]
    pub sort: ProcSort,
    /// Only these processes (repeat or separate with commas).
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// Only processes of this pod: `namespace/name`, a name, a part of one, or a pod UID.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// Every process with sockets, not only the first --top.
    #[arg(long)]
    pub all: bool,
}

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
