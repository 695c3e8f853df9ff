//! The finding catalog: each rule is a pure function from a [`Snapshot`] (and the
//! rates measured against an earlier one) to [`Finding`]s, with the evidence, the
//! explanation in kernel terms and the remedies computed for this host.
//!
//! Nothing here does I/O: the binary collects (or reads) the snapshots, calls
//! [`diagnose`], and renders what comes back. Every rule declares itself once in
//! [`CATALOG`] (code, what it needs, its thresholds, the kernel messages it
//! accounts for, its `explain` page), the way clippy declares its lints.

mod catalog;
mod context;
mod rates;
mod rules;
mod thresholds;
mod words;

pub use catalog::{explain_page, rule, Need, Rule, CATALOG};
pub use rates::rates;
pub use thresholds::{ThresholdDef, ThresholdError, Thresholds, THRESHOLDS};

use context::Ctx;
use sockmedic_model::{Finding, KernelMessage, Rates, Report, Skipped, Snapshot};

/// What the catalog concluded about one snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diagnosis {
    /// Most severe first, then in catalog order.
    pub findings: Vec<Finding>,
    /// Rules that could not run, and why.
    pub skipped: Vec<Skipped>,
    /// Counter rates between `prev` and the snapshot, when there was a `prev`.
    pub rates: Option<Rates>,
}

impl Diagnosis {
    /// The report of `snapshot` with this diagnosis of it: its findings, the checks
    /// skipped and the rates.
    pub fn into_report(self, snapshot: Snapshot) -> Report {
        Report {
            findings: self.findings,
            skipped: self.skipped,
            rates: self.rates,
            ..Report::new(snapshot, Vec::new())
        }
    }
}

/// Runs every rule of the catalog on `snap`. `prev` is an earlier snapshot of the
/// same host (counters suffice): rules judge counters by how fast they grow
/// between the two.
///
/// Capture-only rules ([`Rule::capture_only`]: `syn-unanswered`, `reset-storm`) are
/// skipped silently: a Snapshot never holds a capture, so listing them under
/// "skipped" would be noise on every run. `sockmedic pcap` produces their findings.
pub fn diagnose(snap: &Snapshot, prev: Option<&Snapshot>, thresholds: &Thresholds) -> Diagnosis {
    let rates = prev.and_then(|p| rates(p, snap));
    let ctx = Ctx::new(snap, rates.as_ref(), thresholds);
    let mut findings = Vec::new();
    let mut skipped = Vec::new();
    for rule in CATALOG
        .iter()
        .filter(|r| r.code != "kernel-log" && !r.capture_only())
    {
        if let Some(why) = rule.missing(snap) {
            skipped.push(Skipped {
                code: rule.code.to_string(),
                why,
            });
            continue;
        }
        findings.extend((rule.check)(&ctx));
    }
    // Last: the messages no finding above cites as its evidence.
    match rule("kernel-log").and_then(|r| r.missing(snap)) {
        Some(why) => skipped.push(Skipped {
            code: "kernel-log".into(),
            why,
        }),
        None => {
            let cited = |m: &KernelMessage| {
                let sample = m.sample.trim();
                findings
                    .iter()
                    .any(|f| f.evidence.iter().any(|e| e.contains(sample)))
            };
            let rest = rules::kernel_log::uncited(&ctx, &cited);
            findings.extend(rest);
        }
    }
    sort(&mut findings);
    Diagnosis {
        findings,
        skipped,
        rates,
    }
}

/// Most severe first; within a severity, in catalog order, then by count.
fn sort(findings: &mut [Finding]) {
    let order = |code: &str| {
        CATALOG
            .iter()
            .position(|r| r.code == code)
            .unwrap_or(usize::MAX)
    };
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(order(&a.code).cmp(&order(&b.code)))
            .then(b.subject.count.cmp(&a.subject.count))
    });
}

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
