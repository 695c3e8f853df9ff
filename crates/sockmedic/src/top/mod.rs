//! `sockmedic top`: a live terminal view over the [`Watcher`]'s cycles.
//!
//! - [`state`]: what is shown ([`state::TopState`]: the cycles, a bounded history,
//!   the view settings the keys change), pure;
//! - [`view`]: draws a `TopState` into a ratatui frame, pure;
//! - this file: the arguments, the terminal (raw mode, alternate screen, restored on
//!   every way out: `q`, an error, a panic, SIGTERM/SIGINT/SIGHUP), the event loop,
//!   and `--once` (one frame as text on stdout).

pub mod state;
pub mod view;

use crate::cli::{Common, TopArgs};
use crate::watch::{Cycle, WatchConfig, Watcher};
use crate::{config, dump_mode, options};
use anyhow::{anyhow, bail, Context, Result};
use ratatui::backend::{CrosstermBackend, TestBackend};
use ratatui::crossterm::event::{self, Event};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use sockmedic_collect::CollectOptions;
use state::{Action, TopState};
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// The shortest and longest `--interval`.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// How long key presses on `+`/`-` settle before the watcher is restarted.
const INTERVAL_SETTLE: Duration = Duration::from_millis(600);

/// How often the loop looks for a new cycle, a key or a signal.
const TICK: Duration = Duration::from_millis(100);

pub fn run(common: &Common, args: &TopArgs) -> Result<ExitCode> {
    if common.json {
        bail!("--json does not apply to top (a live screen): use `sockmedic check --json`, or `sockmedic serve` for /api/report");
    }
    if common.from.is_some() {
        bail!("--from does not apply to top (it watches this host live): use `sockmedic check --from`");
    }
    let thresholds = config::thresholds(&args.limits)?;
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&args.interval) {
        bail!(
            "--interval {}: expected between 100ms and 1h",
            humantime::format_duration(args.interval)
        );
    }
    if !args.once && !std::io::stdout().is_terminal() {
        bail!("standard output is not a terminal: top draws a live screen (use `sockmedic check --json` for one report, `sockmedic serve` for metrics over time, or `sockmedic top --once` for one frame as text)");
    }
    let cfg = WatchConfig {
        interval: args.interval,
        options: CollectOptions {
            mode: dump_mode(&args.procs),
            processes: !args.procs.no_procs,
            ..options(common)
        },
        thresholds: thresholds.clone(),
        kernel_log: true,
    };
    let signals = Signals::install()?;
    let mut state = TopState::new(
        args.sort,
        args.interval,
        thresholds,
        !args.once && crate::style(common).color,
        !args.procs.no_procs,
    );
    let watcher = Watcher::start(cfg.clone());
    let Some(first) = first_cycle(&watcher, &signals)? else {
        return Ok(signals.exit_code());
    };
    state.ingest(first.clone());
    if args.once {
        // A second cycle, so that the rates are known.
        let timeout = args.interval + Duration::from_secs(120);
        match wait_cycle(&watcher, &signals, first.seq, timeout)? {
            Some(second) => state.ingest(second),
            None if signals.caught().is_some() => return Ok(signals.exit_code()),
            None => {}
        }
        watcher.stop();
        let (w, h) = args.size;
        let text = once_text(&state, w, h)?;
        crate::write_out(|out| out.write_all(text.as_bytes()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let code = live(state, watcher, cfg, &signals)?;
    Ok(code)
}

/// One frame of `state` drawn `w` x `h`, as text (`--once`, the README's example).
pub fn once_text(state: &TopState, w: u16, h: u16) -> Result<String> {
    let mut at_size = state.clone();
    at_size.size = (w, h);
    let mut t = Terminal::new(TestBackend::new(w, h))?;
    t.draw(|f| view::render(f, &at_size))?;
    Ok(view::buffer_text(t.backend().buffer()))
}

/// Waits for the watcher's first cycle. A collection that fails before any cycle
/// succeeded is an error (an unknown `--netns`). `None` when a signal came first.
fn first_cycle(w: &Watcher, signals: &Signals) -> Result<Option<Arc<Cycle>>> {
    loop {
        if signals.caught().is_some() {
            return Ok(None);
        }
        if let Some(c) = w.wait_newer(0, TICK) {
            return Ok(Some(c));
        }
        if w.stats().errors.load(Ordering::Relaxed) > 0 {
            let e = w
                .stats()
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| "collection failed".into());
            return Err(anyhow!(e));
        }
    }
}

/// Waits up to `timeout` for a cycle newer than `after`; `None` on a signal, a
/// timeout or a failed collection.
fn wait_cycle(
    w: &Watcher,
    signals: &Signals,
    after: u64,
    timeout: Duration,
) -> Result<Option<Arc<Cycle>>> {
    let deadline = Instant::now() + timeout;
    let errors = w.stats().errors.load(Ordering::Relaxed);
    while Instant::now() < deadline {
        if signals.caught().is_some() || w.stats().errors.load(Ordering::Relaxed) > errors {
            return Ok(None);
        }
        if let Some(c) = w.wait_newer(after, TICK) {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The interactive loop: draws when something changed (a cycle, a key, a resize),
/// never otherwise.
fn live(
    mut state: TopState,
    mut watcher: Watcher,
    mut cfg: WatchConfig,
    signals: &Signals,
) -> Result<ExitCode> {
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))
        .context("setting up the terminal")?;
    terminal.clear()?;
    let mut last_seq = state.current.as_ref().map_or(0, |c| c.seq);
    let mut pending_interval: Option<(Duration, Instant)> = None;
    // Failures of the current watcher already counted in `state.errors`.
    let mut seen_errors = 0;
    let mut dirty = true;
    let result = loop {
        if PANICKED.load(Ordering::Relaxed) {
            break Err(anyhow!(
                "internal error: a thread panicked (its message is above)"
            ));
        }
        if signals.caught().is_some() {
            break Ok(signals.exit_code());
        }
        // A settled interval change: a new watcher (the old one stops in the background).
        if let Some((d, at)) = pending_interval {
            if at.elapsed() >= INTERVAL_SETTLE {
                pending_interval = None;
                cfg.interval = d;
                let old = std::mem::replace(&mut watcher, Watcher::start(cfg.clone()));
                std::thread::spawn(move || old.stop());
                last_seq = 0;
                seen_errors = 0;
            }
        }
        if !state.view.paused {
            if let Some(c) = watcher.latest().filter(|c| c.seq > last_seq) {
                last_seq = c.seq;
                state.ingest(c);
                dirty = true;
            }
        }
        let errors = watcher.stats().errors.load(Ordering::Relaxed);
        if errors > seen_errors {
            state.errors += errors - seen_errors;
            seen_errors = errors;
            state.last_error = watcher
                .stats()
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            dirty = true;
        }
        if dirty {
            let size = terminal.size()?;
            state.size = (size.width, size.height);
            terminal.draw(|f| view::render(f, &state))?;
            dirty = false;
        }
        if !event::poll(TICK)? {
            continue;
        }
        match event::read()? {
            Event::Key(k) => match state.key(k) {
                Action::Nothing => {}
                Action::Redraw => dirty = true,
                Action::Quit => break Ok(ExitCode::SUCCESS),
                Action::Interval(d) => {
                    pending_interval = Some((d, Instant::now()));
                    dirty = true;
                }
            },
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    };
    drop(terminal);
    guard.leave();
    // Stopping waits for a collection under way; the screen is already restored.
    watcher.stop();
    result
}

/// Set by the panic hook: the loop stops at its next tick.
static PANICKED: AtomicBool = AtomicBool::new(false);
/// True while the terminal is in raw mode on the alternate screen.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Raw mode and the alternate screen, left on drop, on `leave`, and by the panic
/// hook (whichever comes first; leaving twice does nothing).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<TerminalGuard> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                PANICKED.store(true, Ordering::Relaxed);
                previous(info);
            }));
        });
        terminal::enable_raw_mode().context("setting the terminal to raw mode")?;
        ACTIVE.store(true, Ordering::SeqCst);
        let guard = TerminalGuard;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .context("entering the alternate screen")?;
        Ok(guard)
    }

    fn leave(self) {
        restore();
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor, and restores the terminal mode.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = std::io::stdout();
        let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
        let _ = out.flush();
    }
}

/// SIGTERM, SIGINT and SIGHUP end the loop (and `--once`'s waits) cleanly; the exit
/// code is then 128 + the signal's number, as a shell reports it.
struct Signals {
    caught: Arc<AtomicUsize>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn install() -> Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let caught = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            let id = signal_hook::flag::register_usize(sig, caught.clone(), sig as usize)
                .with_context(|| format!("installing a handler for signal {sig}"))?;
            ids.push(id);
        }
        Ok(Signals { caught, ids })
    }

    fn caught(&self) -> Option<usize> {
        match self.caught.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self.caught() {
            Some(sig) => ExitCode::from(128u8.saturating_add(sig as u8)),
            None => ExitCode::SUCCESS,
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests;
