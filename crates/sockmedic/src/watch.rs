//! The watcher behind `top`, `serve` and `record`: it collects a Snapshot on its own
//! schedule (never because somebody asked), diagnoses it against the one before (so
//! every cycle after the first has rates), and publishes the latest [`Cycle`]. Readers
//! take an `Arc` of it: a million-socket dump happens once per interval however many
//! readers there are, and a reader never waits for a dump.

use anyhow::Result;
use sockmedic_collect::{collect, CollectOptions};
use sockmedic_diagnose::{diagnose, Thresholds};
use sockmedic_model::{Report, Snapshot};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// What the watcher collects and how often.
#[derive(Clone)]
pub struct WatchConfig {
    pub interval: Duration,
    pub options: CollectOptions,
    pub thresholds: Thresholds,
    /// Read /dev/kmsg each cycle (the `kernel-log` and cited-message evidence).
    pub kernel_log: bool,
}

/// One collection and its diagnosis.
#[derive(Debug)]
pub struct Cycle {
    /// 1 for the first cycle, then one more each time.
    pub seq: u64,
    pub report: Report,
    /// When the collection began and how long collection plus diagnosis took.
    pub started: SystemTime,
    pub duration: Duration,
}

/// Counters about the watcher itself (exported by `serve`).
#[derive(Debug, Default)]
pub struct WatchStats {
    pub cycles: AtomicU64,
    /// Cycles whose collection failed (the previous report stays published).
    pub errors: AtomicU64,
    /// The last failure, for `/healthz` and the status line.
    pub last_error: Mutex<Option<String>>,
    /// Failures since the last cycle that succeeded (0 while collection works).
    pub consecutive_errors: AtomicU64,
}

#[derive(Default)]
struct Shared {
    latest: Mutex<Option<Arc<Cycle>>>,
    /// Signalled when a cycle is published or the watcher is asked to stop.
    changed: Condvar,
    stop: AtomicBool,
    stats: WatchStats,
}

/// A running watcher; dropping it stops its thread.
pub struct Watcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts collecting at once, then every `interval` (measured start to start; a
    /// cycle that takes longer than the interval is followed by the next at once).
    pub fn start(cfg: WatchConfig) -> Watcher {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sockmedic-watch".into())
            .spawn(move || run(cfg, &s))
            .expect("spawn the watcher thread");
        Watcher {
            shared,
            thread: Some(thread),
        }
    }

    /// The latest cycle, if one has finished.
    pub fn latest(&self) -> Option<Arc<Cycle>> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits up to `timeout` for a cycle newer than `after` (a `seq`; 0 for any).
    pub fn wait_newer(&self, after: u64, timeout: Duration) -> Option<Arc<Cycle>> {
        let deadline = Instant::now() + timeout;
        let mut latest = self.shared.latest.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(c) = latest.as_ref().filter(|c| c.seq > after) {
                return Some(c.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shared.stop.load(Ordering::Relaxed) {
                return None;
            }
            latest = self
                .shared
                .changed
                .wait_timeout(latest, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn stats(&self) -> &WatchStats {
        &self.shared.stats
    }

    /// Stops the thread and waits for it (at most one collection's time).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One cycle without a thread: collect, read the kernel log, diagnose against `prev`.
/// Returns the Snapshot too, to serve as the next cycle's `prev`.
pub fn collect_cycle(cfg: &WatchConfig, prev: Option<&Snapshot>) -> Result<(Snapshot, Report)> {
    let mut snap = collect(&cfg.options)?;
    if cfg.kernel_log {
        let (log, missing) = crate::kernel_log::read(None)?;
        snap.kernel_log = log;
        snap.missing.extend(missing);
    }
    let report = diagnose(&snap, prev, &cfg.thresholds).into_report(snap.clone());
    Ok((snap, report))
}

/// How much lower than its readers' the collection's CPU priority is: a nice
/// increment of the watcher thread, which the threads a collection starts inherit.
/// A reader (a scrape, a terminal refresh) is answered at once even while a
/// million-socket dump keeps every core busy; on an idle machine the collection
/// takes as long as before. Priority is only ever lowered, which needs no privilege.
const COLLECT_NICE: i32 = 10;

fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Ok(now) = rustix::process::getpriority_process(Some(tid)) {
        let _ = rustix::process::setpriority_process(Some(tid), (now + COLLECT_NICE).min(19));
    }
}

fn run(cfg: WatchConfig, shared: &Shared) {
    lower_priority();
    let mut prev: Option<Snapshot> = None;
    let mut seq = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        let started = SystemTime::now();
        match collect_cycle(&cfg, prev.as_ref()) {
            Ok((snap, report)) => {
                seq += 1;
                let cycle = Arc::new(Cycle {
                    seq,
                    report,
                    started,
                    duration: began.elapsed(),
                });
                prev = Some(snap);
                *shared.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(cycle);
                shared.stats.cycles.fetch_add(1, Ordering::Relaxed);
                shared.stats.consecutive_errors.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                shared.stats.errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .stats
                    .consecutive_errors
                    .fetch_add(1, Ordering::Relaxed);
                *shared
                    .stats
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(format!("{e:#}"));
            }
        }
        shared.changed.notify_all();
        // Sleep out the interval, waking at once when asked to stop.
        let wake = began + cfg.interval;
        let mut guard = shared.latest.lock().unwrap_or_else(|e| e.into_inner());
        while !shared.stop.load(Ordering::Relaxed) {
            let left = wake.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = shared
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockmedic_collect::DumpMode;

    fn counters_only(interval_ms: u64) -> WatchConfig {
        WatchConfig {
            interval: Duration::from_millis(interval_ms),
            options: CollectOptions {
                netns: Some("self".into()),
                mode: DumpMode::CountersOnly,
                processes: false,
                ..CollectOptions::default()
            },
            thresholds: Thresholds::default(),
            kernel_log: false,
        }
    }

    /// Cycles are published in order; from the second on they carry rates (the
    /// diagnosis had the cycle before); stopping returns promptly mid-interval.
    #[test]
    fn publishes_cycles_with_rates_and_stops() {
        let w = Watcher::start(counters_only(100));
        let first = w
            .wait_newer(0, Duration::from_secs(20))
            .expect("a first cycle");
        assert_eq!(first.seq, 1);
        assert!(
            first.report.rates.is_none(),
            "no rates without an earlier cycle"
        );
        let second = w
            .wait_newer(first.seq, Duration::from_secs(20))
            .expect("a second cycle");
        assert!(second.seq >= 2);
        assert!(
            second.report.rates.is_some(),
            "rates against the cycle before"
        );
        assert_eq!(w.stats().errors.load(Ordering::Relaxed), 0);
        assert!(w.latest().is_some_and(|c| c.seq >= second.seq));

        let slow = Watcher::start(counters_only(3_600_000));
        slow.wait_newer(0, Duration::from_secs(20))
            .expect("a cycle");
        let t = Instant::now();
        slow.stop();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "stop waited out the interval"
        );
    }
}
