//! `sockmedic check`: two snapshots (a light one for the counters, then the full
//! one), the catalog's diagnosis, and the report: text or JSON, an optional
//! sysctl.d file, and the exit code of the worst finding.

use crate::cli::{CheckArgs, Common};
use crate::render::check::Options;
use crate::{
    config, dump_mode, kernel_log, options, render, style, sysctl_out, write_json, write_out,
};
use anyhow::{bail, Result};
use sockmedic_collect::{collect, CollectOptions, DumpMode};
use sockmedic_diagnose::diagnose;
use sockmedic_model::Severity;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes of the monitoring-plugin convention.
const EXIT_WARNING: u8 = 1;
const EXIT_CRITICAL: u8 = 2;

/// The longest `--interval` taken: an hour.
const MAX_INTERVAL_S: f64 = 3600.0;

pub fn run(common: &Common, args: &CheckArgs) -> Result<ExitCode> {
    // Everything that can be wrong with the arguments fails before any collection.
    let thresholds = config::thresholds(&args.limits)?;
    let interval_ok = args.interval > 0.0 && args.interval <= MAX_INTERVAL_S;
    if !args.once && !interval_ok {
        bail!(
            "--interval {}: expected seconds above 0 and at most {MAX_INTERVAL_S}",
            args.interval
        );
    }
    if let Some(p) = &args.kernel_log {
        std::fs::File::open(p).map_err(|e| anyhow::anyhow!("--kernel-log {}: {e}", p.display()))?;
    }

    let full = CollectOptions {
        mode: dump_mode(&args.procs),
        processes: !args.procs.no_procs,
        ..options(common)
    };
    let prev = if args.once || common.from.is_some() {
        None
    } else {
        // Counters only: no dump, no process scan; it serves for the rates alone.
        let light = CollectOptions {
            mode: DumpMode::CountersOnly,
            processes: false,
            ..full.clone()
        };
        let prev = collect(&light)?;
        std::thread::sleep(Duration::from_secs_f64(args.interval));
        Some(prev)
    };
    let mut snap = crate::snapshot(common, &full)?;
    // Saved data carries its own kernel log; /dev/kmsg belongs to this host.
    if common.from.is_none() || args.kernel_log.is_some() {
        let (log, missing) = kernel_log::read(args.kernel_log.as_deref())?;
        snap.kernel_log = log;
        snap.missing.extend(missing);
    }

    let report = diagnose(&snap, prev.as_ref(), &thresholds).into_report(snap);
    if let Some(path) = &args.sysctl_out {
        sysctl_out::write(path, &report.snapshot, &report.findings)?;
    }
    let code = exit_code(report.findings.iter().map(|f| f.severity).max());
    if common.json {
        write_json(&report)?;
    } else {
        let changed = thresholds.changed();
        let opts = Options {
            verbose: args.verbose,
            once: args.once,
            changed: &changed,
        };
        let text = render::check::render(&report, &opts, style(common));
        write_out(|out| out.write_all(text.as_bytes()))?;
    }
    Ok(code)
}

pub(crate) fn exit_code(worst: Option<Severity>) -> ExitCode {
    match worst {
        Some(Severity::Critical) => ExitCode::from(EXIT_CRITICAL),
        Some(Severity::Warning) => ExitCode::from(EXIT_WARNING),
        Some(Severity::Info) | None => ExitCode::SUCCESS,
    }
}
