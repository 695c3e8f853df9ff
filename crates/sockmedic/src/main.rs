//! sockmedic: finds, explains and fixes TCP socket exhaustion.

mod charts;
mod check;
mod cli;
mod collect_cmd;
mod config;
mod history;
mod kernel_log;
mod pcap_cmd;
mod progress;
mod record_cmd;
mod render;
mod report_cmd;
mod serve;
mod sysctl_out;
mod top;
mod watch;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, Common, ExplainArgs, NoProcs, ProcSort, ProcsArgs, ScanArgs};
use render::table::Style;
use sockmedic_collect::{collect, CollectOptions, DumpMode};
use sockmedic_model::{Process, Report, Snapshot, TcpState};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Exit code when sockmedic could not run (the monitoring-plugin convention).
const EXIT_CANNOT_RUN: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and succeed; a bad argument is "could not run".
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CANNOT_RUN)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
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
    match cli.command.unwrap_or(Command::Check(cli.check)) {
        Command::Check(args) => check::run(&common, &args),
        Command::Collect(args) => {
            refuse(
                common.from.is_some(),
                "--from",
                "collect (it reads this host)",
            )?;
            collect_cmd::run(&common, &args)
        }
        Command::Explain(args) => {
            refuse(common.from.is_some(), "--from", "explain")?;
            explain(&common, &args)
        }
        Command::Pcap(args) => {
            refuse(common.from.is_some(), "--from", "pcap (it reads FILE)")?;
            refuse(
                common.netns.is_some(),
                "--netns",
                "pcap (a capture has no namespaces: use --filter)",
            )?;
            pcap_cmd::run(&common, &args)
        }
        Command::Serve(args) => {
            refuse(
                common.from.is_some(),
                "--from",
                "serve (it watches this host)",
            )?;
            refuse(
                common.json,
                "--json",
                "serve (/api/report is the JSON report)",
            )?;
            serve::run(&common, &args)
        }
        Command::Top(args) => top::run(&common, &args),
        Command::Record(args) => {
            refuse(
                common.from.is_some(),
                "--from",
                "record (it reads this host)",
            )?;
            record_cmd::run(&common, &args)
        }
        Command::Report(args) => {
            refuse(common.from.is_some(), "--from", "report (it reads --db)")?;
            report_cmd::run(&common, &args)
        }
        Command::Stat(args) => {
            let opts = CollectOptions {
                mode: dump_mode(&args.procs),
                processes: !args.procs.no_procs,
                ..scan_options(&common, &args.scan)
            };
            let snap = snapshot(&common, &opts)?;
            emit(&common, &snap, render::stat::render)
        }
        Command::Procs(args) => {
            let opts = CollectOptions {
                mode: DumpMode::Full,
                ..scan_options(&common, &args.scan)
            };
            let mut snap = snapshot(&common, &opts)?;
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
            let snap = snapshot(&common, &opts)?;
            emit(&common, &snap, render::sockets::render)
        }
    }
}

/// A global flag given to a command it means nothing to: refused rather than ignored.
fn refuse(given: bool, flag: &str, command: &str) -> Result<()> {
    if given {
        bail!("{flag} does not apply to {command}");
    }
    Ok(())
}

/// The snapshot a command works on: saved data with `--from`, else this host's.
pub fn snapshot(common: &Common, opts: &CollectOptions) -> Result<Snapshot> {
    match &common.from {
        Some(path) => {
            let mut snap = read_saved(path, common, opts)?;
            if let Some(sel) = &common.netns {
                select_saved_netns(&mut snap, sel, path)?;
            }
            Ok(snap)
        }
        None => Ok(collect(opts)?),
    }
}

/// `--netns SEL` on saved data: keep the namespace whose id or one of whose names
/// is SEL (a bundle holds every namespace it recorded; saved text holds one).
fn select_saved_netns(snap: &mut Snapshot, sel: &str, path: &std::path::Path) -> Result<()> {
    let matches = |n: &sockmedic_model::Netns| {
        n.id.to_string() == sel
            || n.names
                .iter()
                .any(|x| x == sel || x.strip_prefix("pod ") == Some(sel))
    };
    if !snap.netns.iter().any(matches) {
        let have: Vec<String> = snap
            .netns
            .iter()
            .map(|n| format!("{} ({})", n.id, n.names.join(", ")))
            .collect();
        bail!(
            "--netns {sel}: no such namespace in {} (it holds: {})",
            path.display(),
            have.join("; ")
        );
    }
    snap.netns.retain(matches);
    let kept: Vec<u64> = snap.netns.iter().map(|n| n.id).collect();
    snap.processes
        .retain(|p| p.netns.is_none_or(|id| kept.contains(&id)));
    Ok(())
}

/// `--from PATH`: an unreadable input is one line naming it (exit 3).
fn read_saved(
    path: &std::path::Path,
    common: &Common,
    opts: &CollectOptions,
) -> Result<Snapshot, sockmedic_ingest::IngestError> {
    let read = sockmedic_ingest::ReadOptions {
        top: common.top,
        states: opts.states,
        port: opts.port,
    };
    sockmedic_ingest::read_path(path, read)
}

/// Attributing sockets to processes needs every socket dumped; without the
/// process scan, ESTABLISHED is derived from CurrEstab instead.
fn dump_mode(procs: &NoProcs) -> DumpMode {
    if procs.no_procs {
        DumpMode::WithoutEstablished
    } else {
        DumpMode::Full
    }
}

/// `sockmedic explain [CODE]`.
fn explain(common: &Common, args: &ExplainArgs) -> Result<ExitCode> {
    let style = style(common);
    let text = match args.code.as_deref() {
        None => {
            if common.json {
                return write_json(&explain_json(None));
            }
            render::explain::list(style)
        }
        Some("thresholds") => {
            if common.json {
                return write_json(&serde_json::json!({ "thresholds": thresholds_json() }));
            }
            render::explain::thresholds(style)
        }
        Some(code) => {
            let Some(rule) = sockmedic_diagnose::rule(code) else {
                bail!(
                    "explain {code:?}: no such finding code (known: {})",
                    render::explain::known_codes()
                );
            };
            if common.json {
                return write_json(&explain_json(Some(rule)));
            }
            render::explain::page(rule.page)
        }
    };
    write_out(|out| out.write_all(text.as_bytes()))?;
    Ok(ExitCode::SUCCESS)
}

/// `explain --json`: one code's entry, or every code and threshold.
fn explain_json(rule: Option<&sockmedic_diagnose::Rule>) -> serde_json::Value {
    let entry = |r: &sockmedic_diagnose::Rule| {
        serde_json::json!({
            "code": r.code, "summary": r.summary, "thresholds": r.thresholds, "page": r.page,
        })
    };
    match rule {
        Some(r) => entry(r),
        None => serde_json::json!({
            "codes": sockmedic_diagnose::CATALOG.iter().map(entry).collect::<Vec<_>>(),
            "thresholds": thresholds_json(),
        }),
    }
}

fn thresholds_json() -> serde_json::Value {
    sockmedic_diagnose::THRESHOLDS
        .iter()
        .map(|t| serde_json::json!({ "name": t.name, "default": t.default, "doc": t.doc }))
        .collect()
}

pub(crate) fn write_json(v: &impl serde::Serialize) -> Result<ExitCode> {
    write_out(|out| {
        serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::from)?;
        writeln!(out)
    })?;
    Ok(ExitCode::SUCCESS)
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

/// Writes the report as JSON or text.
fn emit(
    common: &Common,
    snap: &Snapshot,
    text: impl Fn(&Snapshot, Style) -> String,
) -> Result<ExitCode> {
    if common.json {
        return write_json(&Report::new(snap.clone(), Vec::new()));
    }
    let text = text(snap, style(common));
    write_out(|out| out.write_all(text.as_bytes()))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout. A closed stdout (`| head`) is not an error.
pub(crate) fn write_out(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match f(&mut out).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the output")
        }
        _ => Ok(()),
    }
}

/// Colour only on a terminal, and never with --no-color or NO_COLOR set.
pub(crate) fn style(common: &Common) -> Style {
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Style {
        color: !common.no_color && !no_color_env && std::io::stdout().is_terminal(),
    }
}
