//! sockmedic: finds, explains and fixes TCP socket exhaustion.

mod cli;
mod render;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, Common};
use render::table::Style;
use sockmedic_collect::{collect, CollectOptions, DumpMode};
use sockmedic_model::{Report, Snapshot, TcpState};
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
        Command::Stat(_) => {
            let opts = CollectOptions {
                mode: DumpMode::WithoutEstablished,
                ..options(&common)
            };
            let snap = collect(&opts)?;
            emit(&common, &snap, render::stat::render)
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
        ..CollectOptions::default()
    }
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
    text: fn(&Snapshot, Style) -> String,
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
