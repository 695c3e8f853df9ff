//! The command line: every flag is defined once, here; `--help`, the README's
//! tables and the error messages all come from these definitions.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sockmedic",
    version,
    about = "Find, explain and fix TCP socket exhaustion on Linux hosts and Kubernetes nodes",
    long_about = "Find, explain and fix TCP socket exhaustion on Linux hosts and Kubernetes nodes.\n\n\
        Without a subcommand, runs `check` (and takes its flags): the findings, most severe \
        first, then the evidence. Exit codes: 0 no finding above info, 1 the worst finding is a \
        warning, 2 critical, 3 could not run (bad arguments, an unreadable config or kernel \
        log file, an unknown namespace). `sockmedic explain CODE` explains a finding code.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `check`'s flags, for `sockmedic` without a subcommand.
    #[command(flatten)]
    pub check: CheckArgs,
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
    /// Diagnose saved data instead of this host: a sockmedic bundle, a directory of
    /// saved outputs (sosreport, supportconfig, `collect --script`), one saved
    /// output (`ss -tan`, `ss -s`, `netstat`, `sysctl -a`, dmesg, /proc files), or
    /// `-` for standard input. The format is recognised from the content.
    #[arg(long, global = true, value_name = "PATH")]
    pub from: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Diagnose now (the default): findings, most severe first, each with its subject,
    /// evidence and remedy; then the checks skipped, the evidence (`stat`) and the
    /// counter rates. Exit 0 no finding above info, 1 warning, 2 critical, 3 could
    /// not run.
    Check(CheckArgs),
    /// The long explanation of a finding code (`sockmedic explain teardown-stall`);
    /// without a code, every code and every threshold.
    Explain(ExplainArgs),
    /// What `ss -s` should have said: every TCP count with its scope, limit and ratio.
    Stat(StatArgs),
    /// Sockets by state, by local and remote endpoint, by listener, and ephemeral
    /// port use: the `ss -ant | awk | sort | uniq -c` pipelines in one command.
    Sockets(SocketsArgs),
    /// Processes holding sockets: fds against their limit, socket fds, TCP sockets
    /// by state, sockets in no table, container and pod. The `for pid in /proc/*;
    /// ls -l /proc/$pid/fd | grep socket` loop, done right.
    Procs(ProcsArgs),
    /// Write a bundle: one .tar.gz holding the raw sources `check` reads on this host
    /// (the /proc and /proc/sys files of every namespace, the raw sock_diag replies,
    /// the process scan, the kernel log), to diagnose elsewhere with `check --from`.
    /// Never payload data or environment variables; command lines only with
    /// --include-cmdline. With --script, prints a POSIX sh script that gathers the
    /// same sources with stock tools on a host without sockmedic.
    Collect(CollectArgs),
    /// Teardown analysis of a packet capture (pcap, pcapng, gzip; `-` for standard
    /// input): shares of FIN/RST/SYN packets, connections by how they ended, the
    /// slowest teardowns with their timelines, the server endpoints and client hosts
    /// whose closes stall, and findings (`teardown-stall`, `syn-unanswered`,
    /// `reset-storm`). Exit codes as `check`'s; 3 when the file cannot be read.
    Pcap(PcapArgs),
    /// Prometheus exporter and JSON API: collects on its own schedule (every
    /// --interval, never because of a request) and serves the latest collection:
    /// `/metrics` (Prometheus text format), `/api/report` (the JSON report),
    /// `/healthz` (200 while collections are fresh, 503 with the reason otherwise)
    /// and `/`. Stops cleanly on SIGTERM or SIGINT (exit 0).
    Serve(ServeArgs),
    /// A live terminal view, refreshed every --interval: host-wide figures against
    /// their limits (orphans with the kernel's ×2/×4 penalty, TIME-WAIT, TCP memory,
    /// file handles, conntrack), sockets per state with rates and trends, the top
    /// endpoints, processes and pods, and the findings with their evidence and
    /// remedy. Keys are listed on screen (`?` for all). Needs a terminal; `--once`
    /// prints one frame as text instead. Exit 0 on `q`, 3 when it cannot run.
    Top(TopArgs),
    /// Keep a history: collect and diagnose every --interval, writing the figures
    /// (host-wide, per namespace, top processes) and the findings (first seen, last
    /// seen, cycles) into an embedded SQLite file. Safe to kill at any moment (WAL,
    /// one transaction per cycle); old rows go after --retention or when the file
    /// passes --max-size. Silent on stdout unless -v; SIGINT/SIGTERM stop it (exit 0).
    Record(RecordArgs),
    /// Render a history written by `record` as one self-contained HTML file: charts
    /// over time of the key figures against their limits, the findings' timeline,
    /// and the worst moment's findings with their evidence and remedies. Prints a
    /// summary line (with --json, a JSON summary). Exit 3 when the file is missing
    /// or not a history.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Time between collections (`1s`, `500ms`, `2m`; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// The history file (created with its directory when missing).
    #[arg(long, value_name = "FILE", default_value = crate::history::DEFAULT_DB)]
    pub db: std::path::PathBuf,
    /// Rows older than this are deleted (`7d`, `12h`, `30m`).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    pub retention: std::time::Duration,
    /// The oldest rows are deleted while the file (and its WAL) is larger than this
    /// (K, M, G suffixes: 1024-based; at least 1M).
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_size)]
    pub max_size: u64,
    /// Scan processes (fds, limits, sockets per process, pods) every Nth cycle; the
    /// cycles between reuse the last scan. 1 scans every cycle.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub procs_every: u32,
    /// Never scan processes (no per-process rows; the process checks are skipped).
    #[arg(long)]
    pub no_procs: bool,
    /// Do not read the kernel log (/dev/kmsg); it is read on the process-scanning
    /// cycles otherwise.
    #[arg(long)]
    pub no_kernel_log: bool,
    /// One line per cycle on stdout (with --json: one JSON object per line).
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub limits: ThresholdArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The history file written by `record`.
    #[arg(long, value_name = "FILE", default_value = crate::history::DEFAULT_DB)]
    pub db: std::path::PathBuf,
    /// Start of the period: RFC 3339 (`2026-11-22T09:00:00Z`) or a time ago (`1h`,
    /// `30m`, `2d`). Default: the first cycle in the file.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// End of the period, as --since. Default: the last cycle.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Where to write the HTML (`-` for standard output; the summary then goes to
    /// standard error).
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "sockmedic-report.html"
    )]
    pub output: std::path::PathBuf,
}

/// `1s`, `250ms`, `7d`, or a bare number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return std::time::Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?}: not a duration (e.g. 1s, 500ms, 7d)"));
    }
    humantime::parse_duration(t).map_err(|e| format!("{s:?}: {e} (e.g. 1s, 500ms, 7d)"))
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Time between collections (`2s`, `500ms`, `1m`; a bare number is seconds),
    /// 100ms to 1h. `+` and `-` change it while running.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// The processes pane's order at start (`s` cycles through the keys).
    #[arg(long, value_enum, default_value_t = ProcSort::Sockets)]
    pub sort: ProcSort,
    #[command(flatten)]
    pub procs: NoProcs,
    #[command(flatten)]
    pub limits: ThresholdArgs,
    /// Print one frame as text on stdout and exit, without a terminal: two
    /// collections --interval apart (so that rates are known), then the screen as
    /// it would be drawn, without colours.
    #[arg(long)]
    pub once: bool,
    /// The size of the frame `--once` prints, COLSxROWS.
    #[arg(long, value_name = "COLSxROWS", default_value = "80x24", value_parser = parse_screen, requires = "once")]
    pub size: (u16, u16),
}

/// `80x24`: columns and rows, at least 40x10 and at most 1000x1000.
fn parse_screen(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?}: expected COLSxROWS, from 40x10 to 1000x1000 (e.g. 80x24)");
    let (c, r) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let c: u16 = c.trim().parse().map_err(|_| bad())?;
    let r: u16 = r.trim().parse().map_err(|_| bad())?;
    if !(40..=1000).contains(&c) || !(10..=1000).contains(&r) {
        return Err(bad());
    }
    Ok((c, r))
}

#[derive(Args, Debug, Default)]
pub struct PcapArgs {
    /// The capture file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Only packets to or from a host (`host:10.0.0.1`, `host:::1`) or a port
    /// (`port:443`); repeatable. Hosts are alternatives, ports too; a packet must
    /// match a host (if any is given) and a port (if any is given).
    #[arg(long, value_name = "host:ADDR|port:N")]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub limits: ThresholdArgs,
}

/// The wait between `check`'s two snapshots when `--interval` is not given.
pub const DEFAULT_INTERVAL_S: f64 = 1.0;

/// Where `check` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/sockmedic/config.toml";

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// One snapshot only: no counter rates (a counter's total since boot is all
    /// there is to judge it by).
    #[arg(long)]
    pub once: bool,
    /// Seconds between the light first snapshot (counters only) and the full one;
    /// the counter rates are measured over it. Fractions allowed.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_INTERVAL_S)]
    pub interval: f64,
    /// Every evidence line and remedy ("will not help" ones too), and the
    /// explanation of each finding.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub procs: NoProcs,
    #[command(flatten)]
    pub limits: ThresholdArgs,
    /// Read the kernel log from this file (saved `dmesg` or `journalctl -k` output)
    /// instead of /dev/kmsg.
    #[arg(long, value_name = "FILE")]
    pub kernel_log: Option<std::path::PathBuf>,
    /// Write the sysctl settings the findings propose to FILE, as a commented
    /// sysctl.d file to review. Nothing is applied.
    #[arg(long, value_name = "FILE")]
    pub sysctl_out: Option<std::path::PathBuf>,
}

/// `--threshold` and `--config`, for every command that diagnoses (`check`, `pcap`,
/// `top`, `serve`, `record`).
#[derive(Args, Debug, Default, Clone)]
pub struct ThresholdArgs {
    /// Change a threshold (`close-wait.warning=50`, `capture.reset-min=20`);
    /// repeatable. `sockmedic explain thresholds` lists them.
    #[arg(long = "threshold", value_name = "NAME=VALUE")]
    pub thresholds: Vec<String>,
    /// A TOML file with a `[thresholds]` table of NAME = number. Default:
    /// /etc/sockmedic/config.toml when it exists. `--threshold` overrides it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

impl Default for CheckArgs {
    fn default() -> Self {
        CheckArgs {
            once: false,
            interval: DEFAULT_INTERVAL_S,
            verbose: false,
            procs: NoProcs::default(),
            limits: ThresholdArgs::default(),
            kernel_log: None,
            sysctl_out: None,
        }
    }
}

#[derive(Args, Debug, Default)]
pub struct ExplainArgs {
    /// A finding code (`close-wait-leak`), or `thresholds` for the thresholds alone.
    /// Without it: every code with its summary, then every threshold.
    #[arg(value_name = "CODE")]
    pub code: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct StatArgs {
    #[command(flatten)]
    pub scan: ScanArgs,
    #[command(flatten)]
    pub procs: NoProcs,
}

/// `--no-procs` (`stat`, `check`).
#[derive(Args, Debug, Clone, Default)]
pub struct NoProcs {
    /// Skip the process scan: no process is named (no `processes` section), and
    /// ESTABLISHED is taken from snmp CurrEstab − CLOSE-WAIT instead of dumped (the
    /// fast path on a host with a million connections).
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

#[derive(Args, Debug, Default)]
pub struct CollectArgs {
    /// Where to write the bundle. Default: sockmedic-HOST-YYYYmmddTHHMMSSZ.tar.gz in
    /// the current directory.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Keep each process's command line (it may hold secrets passed as arguments).
    #[arg(long)]
    pub include_cmdline: bool,
    /// The most raw socket data (sock_diag replies) kept, in bytes (K, M, G
    /// suffixes: 1024-based). A namespace over it keeps its exact counts, from the
    /// live aggregate, and the manifest says it was cut.
    #[arg(long, value_name = "BYTES", default_value = "256M", value_parser = parse_size)]
    pub max_socket_bytes: u64,
    /// Print a POSIX sh script that gathers the same sources with stock tools (ss,
    /// cat, dmesg, ip netns, nsenter) into a directory `check --from` reads, for a
    /// host where sockmedic cannot be installed.
    #[arg(long)]
    pub script: bool,
}

/// Where `serve` listens when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9917";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The address to listen on: `HOST:PORT` (port 0 picks a free port; the address
    /// bound is printed on stderr). Anything but loopback exposes the process and pod
    /// names of the report to whoever can reach it.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Time between the starts of two collections (`15s`, `1m`, `500ms`; a bare
    /// number is seconds). A collection that takes longer is followed by the next
    /// at once.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_serve_interval)]
    pub interval: std::time::Duration,
    #[command(flatten)]
    pub procs: NoProcs,
    /// Do not read the kernel log (/dev/kmsg) each collection: no `kernel-log` check,
    /// no `sockmedic_kernel_log_messages`.
    #[arg(long)]
    pub no_kernel_log: bool,
    #[command(flatten)]
    pub limits: ThresholdArgs,
}

/// `serve --interval`: a duration as `parse_duration` reads it, 100 ms to a day.
fn parse_serve_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(86_400) {
        return Err(format!("{s:?}: expected between 100ms and 24h"));
    }
    Ok(d)
}

/// `256M`, `1G`, `4096`: a size in bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("{s:?}: unknown unit {c:?} (K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?}: not a size in bytes (e.g. 256M)"))
}
