//! `sockmedic pcap FILE`: the teardown analysis of a capture, as a report with a
//! `capture` section and findings of its own.

use crate::check::exit_code;
use crate::cli::{Common, PcapArgs};
use crate::render;
use anyhow::{anyhow, bail, Result};
use sockmedic_capture::{analyze_with, capture_section, findings, Capture, Config, Filter};
use sockmedic_model::{Missing, Report, Snapshot, Source, SourceKind};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

pub fn run(common: &Common, args: &PcapArgs) -> Result<ExitCode> {
    let filter = Filter::parse(&args.filter).map_err(|e| anyhow!("--filter {e}"))?;
    let thresholds = crate::config::thresholds(&args.limits)?;
    let name = args.file.display().to_string();
    let started = std::time::Instant::now();
    let mut cap = Capture::open(&args.file).map_err(|e| anyhow!("{name}: {e}"))?;
    let cfg = Config {
        top_n: common.top.max(1),
        ..Config::default()
    };
    let bar = match cap.input_len() {
        Some(len) => crate::progress::bar(
            "{spinner} sockmedic pcap {bytes}/{total_bytes} {wide_bar} {bytes_per_sec}, {eta} left",
            Some(len),
        ),
        None => crate::progress::bar(
            "{spinner} sockmedic pcap: {bytes} read, {bytes_per_sec}",
            None,
        ),
    };
    let (summary, err) = analyze_with(&mut cap, cfg, &filter, |n| bar.set_position(n));
    bar.finish_and_clear();
    let mut missing = Vec::new();
    if let Some(e) = err {
        if summary.first_ts_ns.is_none() {
            bail!("{name}: {e}");
        }
        let why = format!(
            "{e}; the figures cover the {} packets before it",
            summary.packets
        );
        eprintln!("sockmedic: warning: {name}: {why}");
        missing.push(Missing::new(format!("the rest of {name}"), why));
    }
    let taken_at = summary
        .first_ts_ns
        .and_then(|ns| u64::try_from(ns).ok())
        .map(|ns| {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
        })
        .unwrap_or_default();
    let snap = Snapshot {
        source: Source {
            kind: SourceKind::Capture,
            taken_at,
            duration_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            tool: format!("sockmedic {}", env!("CARGO_PKG_VERSION")),
            inputs: vec![format!("{name} (capture)")],
            ..Source::default()
        },
        missing,
        ..Snapshot::default()
    };
    let found = findings(&summary, &thresholds);
    let code = exit_code(found.iter().map(|f| f.severity).max());
    let report = Report {
        capture: Some(capture_section(&summary, common.top)),
        ..Report::new(snap, found)
    };
    if common.json {
        crate::write_json(&report)?;
    } else {
        let text =
            render::pcap::render(&report, &summary, &filter, common.top, crate::style(common));
        crate::write_out(|out| out.write_all(text.as_bytes()))?;
    }
    Ok(code)
}
