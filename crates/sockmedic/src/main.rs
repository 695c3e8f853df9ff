//! sockmedic: finds, explains and fixes TCP socket exhaustion.

mod cli;
mod render;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, Common, ProcSort, ProcsArgs, ScanArgs};
use render::table::Style;
use sockmedic_collect::{collect, CollectOptions, DumpMode};
use sockmedic_model::{Process, Report, Snapshot, TcpState};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Exit code when sockmedic could not run (the monitoring-plugin convention).
const EXIT_CANNOT_RUN: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockmedic: {e:#}");
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let common = cli.common.clone();
    match cli.command.unwrap_or(Command::Stat(Default::default())) {
        Command::Stat(args) => {
            // Attributing sockets to processes needs every socket dumped; without
            // the process scan, ESTABLISHED is derived from CurrEstab instead.
            let mode = if args.no_procs {
                DumpMode::WithoutEstablished
            } else {
                DumpMode::Full
            };
            let opts = CollectOptions {
                mode,
                processes: !args.no_procs,
                ..scan_options(&common, &args.scan)
            };
            let snap = collect(&opts)?;
            emit(&common, &snap, render::stat::render)
        }
        Command::Procs(args) => {
            let opts = CollectOptions {
                mode: DumpMode::Full,
                ..scan_options(&common, &args.scan)
            };
            let mut snap = collect(&opts)?;
            let total = snap.processes.len();
            select_processes(&mut snap.processes, &args, &common);
            let shown: Vec<&Process> = snap.processes.iter().collect();
            let text = render::procs::render(&snap, &shown, total, style(&common));
            emit(&common, &snap, move |_, _| text.clone())
        }
        Command::Sockets(args) => {
            let mut opts = CollectOptions {
                mode: DumpMode::Full,
                port: args.port,
                ..options(&common)
            };
            if !args.state.is_empty() {
                opts.states = Some(state_mask(&args.state)?);
            }
            let snap = collect(&opts)?;
            emit(&common, &snap, render::sockets::render)
        }
    }
}

fn options(common: &Common) -> CollectOptions {
    CollectOptions {
        netns: common.netns.clone(),
        top: common.top,
        pods_dir: common.pods_dir.clone(),
        containers_dir: common.containers_dir.clone(),
        ..CollectOptions::default()
    }
}

fn scan_options(common: &Common, scan: &ScanArgs) -> CollectOptions {
    CollectOptions {
        processes: true,
        cmdline: scan.cmdline,
        so_error: scan.so_error,
        ..options(common)
    }
}

/// Keeps the processes `procs` asked for, in the order asked, `--top` of them
/// unless `--all`.
fn select_processes(procs: &mut Vec<Process>, args: &ProcsArgs, common: &Common) {
    procs.retain(|p| args.pid.is_empty() || args.pid.contains(&p.pid));
    if let Some(want) = &args.pod {
        procs.retain(|p| pod_matches(p, want));
    }
    let key = |p: &Process| -> (u64, u64) {
        // In millionths, so that it sorts as an integer.
        let fd_use = (p.fd_use().unwrap_or(0.0) * 1_000_000.0) as u64;
        let first = match args.sort {
            ProcSort::Sockets => p.socket_fds.unwrap_or(0),
            ProcSort::Tcp => render::procs::tcp_total(p),
            ProcSort::Fds => p.fds.unwrap_or(0),
            ProcSort::FdUse => fd_use,
            ProcSort::Unhashed => p.unhashed.unwrap_or(0),
            ProcSort::CloseWait => p.states.count(TcpState::CloseWait),
            ProcSort::Established => p.states.count(TcpState::Established),
            ProcSort::Pid => 0,
        };
        (first, p.socket_fds.unwrap_or(0))
    };
    if args.sort == ProcSort::Pid {
        procs.sort_by_key(|p| p.pid);
    } else {
        procs.sort_by(|a, b| key(b).cmp(&key(a)).then(a.pid.cmp(&b.pid)));
    }
    if !args.all {
        procs.truncate(common.top);
    }
}

/// `--pod`: the full `namespace/name`, the bare name, the UID, or a part of the name.
fn pod_matches(p: &Process, want: &str) -> bool {
    let by_name = p.pod.as_deref().is_some_and(|pod| {
        pod == want || pod.rsplit('/').next() == Some(want) || pod.contains(want)
    });
    by_name || p.pod_uid.as_deref() == Some(want)
}

/// `--state` words to the kernel's `idiag_states` mask.
fn state_mask(words: &[String]) -> Result<u32> {
    let mut mask = 0u32;
    for w in words {
        let state = TcpState::parse(w).with_context(|| {
            format!("--state {w:?}: not a TCP state (established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, close-wait, last-ack, listen, closing, bound-inactive)")
        })?;
        match state.kernel_number() {
            Some(7) | None => bail!("--state {w:?}: sockets in this state are in no kernel table, so a dump cannot list them"),
            Some(n) => mask |= 1 << n,
        }
    }
    Ok(mask)
}

/// Writes the report as JSON or text. A closed stdout (`| head`) is not an error.
fn emit(
    common: &Common,
    snap: &Snapshot,
    text: impl Fn(&Snapshot, Style) -> String,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let written = if common.json {
        let report = Report::new(snap.clone(), Vec::new());
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|_| writeln!(out))
    } else {
        out.write_all(text(snap, style(common)).as_bytes())
    };
    match written.and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the output")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Colour only on a terminal, and never with --no-color or NO_COLOR set.
fn style(common: &Common) -> Style {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Style {
        color: !common.no_color && !no_color_env && std::io::stdout().is_terminal(),
    }
}
