//! What `top` shows, apart from any terminal: the cycles seen (the latest one and a
//! bounded history of the per-state counts), the view settings the keys change, and
//! the rows of every pane computed from them. `view::render` draws it; tests drive it
//! with keys and cycles and read ratatui's `TestBackend`.

use crate::cli::ProcSort;
use crate::render::procs::tcp_total;
use crate::watch::Cycle;
use clap::ValueEnum;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use sockmedic_diagnose::Thresholds;
use sockmedic_model::{Finding, Netns, Process, Report, TcpState};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Cycles kept for the sparklines and the per-state rates.
pub const HISTORY: usize = 120;

/// The states of the states pane, in `ss` order, with their short labels (the same
/// columns `stat` shows).
pub const STATES: [(TcpState, &str); 11] = crate::render::stat::COLUMNS;

/// The refresh intervals `+` and `-` step through.
pub const INTERVAL_STEPS: [Duration; 9] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(3),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

/// The panes, in the order Tab visits them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    States,
    Endpoints,
    Processes,
    Findings,
}

impl Pane {
    pub const ALL: [Pane; 4] = [
        Pane::States,
        Pane::Endpoints,
        Pane::Processes,
        Pane::Findings,
    ];
    fn index(self) -> usize {
        self as usize
    }
}

/// Which namespaces the per-namespace panes show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsFilter {
    All,
    /// One namespace, by nsfs inode (kept even while it is absent from a cycle).
    One(u64),
}

/// Local or remote endpoints in the endpoints pane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// What covers the panes, if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// The selected finding's subject, evidence, explanation and remedies; `scroll`
    /// lines scrolled.
    Finding {
        code: String,
        title: String,
        scroll: u16,
    },
}

/// What the terminal loop must do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Redraw,
    Quit,
    /// Collect at this interval from now on (and redraw).
    Interval(Duration),
}

/// The settings the keys change.
#[derive(Clone, Debug)]
pub struct View {
    pub focus: Pane,
    pub sort: ProcSort,
    pub netns: NsFilter,
    pub side: Side,
    /// Processes grouped by pod (or container).
    pub group: bool,
    pub paused: bool,
    pub interval: Duration,
    /// The selected row of each pane (clamped when drawn).
    pub selected: [usize; 4],
    pub overlay: Overlay,
    /// The namespace name being typed after `/`.
    pub prompt: Option<String>,
    /// A one-line note for the header (a namespace not found, the interval changed).
    pub message: Option<String>,
}

/// The per-namespace state counts of one cycle.
#[derive(Clone, Debug)]
struct Sample {
    /// Seconds on a monotonic-enough clock (uptime when known, else wall time).
    at: f64,
    states: BTreeMap<u64, [u64; STATES.len()]>,
}

/// Everything `top` knows and shows.
#[derive(Clone)]
pub struct TopState {
    pub current: Option<Arc<Cycle>>,
    history: VecDeque<Sample>,
    /// Cycles taken in (a restarted watcher counts from 1 again; this does not).
    pub cycles: u64,
    pub view: View,
    pub thresholds: Thresholds,
    /// Colours on the screen (not with --no-color / NO_COLOR).
    pub color: bool,
    /// The process scan runs (not `--no-procs`).
    pub procs: bool,
    /// The terminal size, for the layout and for the panes Tab visits.
    pub size: (u16, u16),
    /// Collection failures so far and the last one.
    pub errors: u64,
    pub last_error: Option<String>,
}

/// One row of the states pane.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRow {
    pub state: TcpState,
    pub label: &'static str,
    pub count: u64,
    /// Change per second since the cycle before; `None` on the first cycle.
    pub rate: Option<f64>,
    /// Oldest first, the current count last.
    pub history: Vec<u64>,
}

/// One row of the endpoints pane.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRow {
    pub state: TcpState,
    pub endpoint: String,
    pub count: u64,
    /// The count may be over by this much (the bounded top-N table overflowed).
    pub error: u64,
    pub netns: String,
}

/// One row of the processes pane: a process, or a pod / container with its processes.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcRow {
    /// The pid, or the pod / container for a group.
    pub key: String,
    /// The comm, or `N procs` for a group.
    pub name: String,
    pub pid: Option<u32>,
    pub sockets: u64,
    pub tcp: u64,
    pub established: u64,
    pub close_wait: u64,
    pub unhashed: u64,
    pub fds: Option<u64>,
    pub fd_limit: Option<u64>,
    /// fds / soft limit (the highest of a group).
    pub fd_use: Option<f64>,
    /// Pod (container) or container id, `-` when neither.
    pub owner: String,
    pub netns: String,
}

/// One host-wide (or per-namespace) figure against its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct GaugeRow {
    pub label: &'static str,
    pub value: Option<u64>,
    pub limit: Option<u64>,
    /// value / limit.
    pub ratio: Option<f64>,
    /// Where to mark the bar (fractions of the limit): the orphan penalties, tcp_mem pressure.
    pub marks: Vec<f64>,
    /// `62,190 / 131,072`.
    pub figures: String,
    /// What the ratio means here: the ×2/×4 penalty, the namespace, pressure.
    pub note: String,
    pub level: Level,
}

/// How alarming a figure is (colours and words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Dim,
    Ok,
    Warn,
    Bad,
}

impl TopState {
    pub fn new(
        sort: ProcSort,
        interval: Duration,
        thresholds: Thresholds,
        color: bool,
        procs: bool,
    ) -> TopState {
        TopState {
            current: None,
            history: VecDeque::with_capacity(HISTORY),
            cycles: 0,
            view: View {
                focus: Pane::Findings,
                sort,
                netns: NsFilter::All,
                side: Side::Local,
                group: false,
                paused: false,
                interval,
                selected: [0; 4],
                overlay: Overlay::None,
                prompt: None,
                message: None,
            },
            thresholds,
            color,
            procs,
            size: (80, 24),
            errors: 0,
            last_error: None,
        }
    }

    /// Takes in a new cycle (the caller does not while paused).
    pub fn ingest(&mut self, cycle: Arc<Cycle>) {
        let snap = &cycle.report.snapshot;
        let at = snap.source.uptime_s.unwrap_or_else(|| {
            cycle
                .started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        let states = snap
            .netns
            .iter()
            .map(|ns| {
                let mut counts = [0u64; STATES.len()];
                for (i, (s, _)) in STATES.iter().enumerate() {
                    counts[i] = ns.states.count(*s);
                }
                (ns.id, counts)
            })
            .collect();
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Sample { at, states });
        self.cycles += 1;
        self.current = Some(cycle);
    }

    pub fn report(&self) -> Option<&Report> {
        self.current.as_ref().map(|c| &c.report)
    }

    /// The namespaces the per-namespace panes show (those of the current cycle).
    pub fn shown_netns(&self) -> Vec<&Netns> {
        let Some(r) = self.report() else {
            return Vec::new();
        };
        r.snapshot
            .netns
            .iter()
            .filter(|n| self.netns_shown(n.id))
            .collect()
    }

    fn netns_shown(&self, id: u64) -> bool {
        match self.view.netns {
            NsFilter::All => true,
            NsFilter::One(want) => id == want,
        }
    }

    /// `all N namespaces`, or `ns NAME` for the chosen one (`gone` when it left).
    pub fn netns_label(&self) -> String {
        let Some(r) = self.report() else {
            return "all namespaces".into();
        };
        match self.view.netns {
            NsFilter::All => {
                let n = r.snapshot.netns.len();
                format!("all {n} namespace{}", if n == 1 { "" } else { "s" })
            }
            NsFilter::One(id) => match r.snapshot.netns.iter().find(|n| n.id == id) {
                Some(ns) => format!("ns {}", ns.name()),
                None => format!("ns {id} (gone)"),
            },
        }
    }

    /// The namespace name of an id, for rows that mix namespaces.
    pub fn netns_name(&self, id: Option<u64>) -> String {
        let Some(id) = id else { return "?".into() };
        self.report()
            .and_then(|r| r.snapshot.netns.iter().find(|n| n.id == id))
            .map(|n| n.name().to_string())
            .unwrap_or_else(|| id.to_string())
    }

    /// Per-state counts summed over the shown namespaces, with their rate and history.
    /// ESTABLISHED and TIME-WAIT always; the others when they held a socket in the
    /// window of history.
    pub fn state_rows(&self) -> Vec<StateRow> {
        let sum = |s: &Sample, i: usize| -> u64 {
            s.states
                .iter()
                .filter(|(id, _)| self.netns_shown(**id))
                .map(|(_, c)| c[i])
                .sum()
        };
        let mut rows = Vec::new();
        for (i, (state, label)) in STATES.iter().enumerate() {
            let history: Vec<u64> = self.history.iter().map(|s| sum(s, i)).collect();
            let always = matches!(state, TcpState::Established | TcpState::TimeWait);
            if !always && history.iter().all(|n| *n == 0) {
                continue;
            }
            let count = history.last().copied().unwrap_or(0);
            let rate = match (
                self.history.len().checked_sub(2).map(|j| &self.history[j]),
                self.history.back(),
            ) {
                (Some(a), Some(b)) if b.at > a.at => {
                    Some((sum(b, i) as f64 - sum(a, i) as f64) / (b.at - a.at))
                }
                _ => None,
            };
            rows.push(StateRow {
                state: *state,
                label,
                count,
                rate,
                history,
            });
        }
        rows
    }

    /// Seconds between the oldest and the newest of the last `n` cycles; `None`
    /// with fewer than two.
    pub fn history_span(&self, n: usize) -> Option<f64> {
        let n = n.min(self.history.len());
        if n < 2 {
            return None;
        }
        let first = &self.history[self.history.len() - n];
        let last = self.history.back()?;
        Some(last.at - first.at)
    }

    /// Rates of a few counters (per second, summed over the shown namespaces);
    /// `None` before the watcher has two cycles.
    pub fn counter_rates(&self) -> Option<Vec<(&'static str, f64)>> {
        const SHOWN: [(&str, &[(&str, &str)]); 5] = [
            ("opens", &[("Tcp", "ActiveOpens"), ("Tcp", "PassiveOpens")]),
            ("resets", &[("Tcp", "EstabResets"), ("Tcp", "AttemptFails")]),
            ("tw-overflow", &[("TcpExt", "TCPTimeWaitOverflow")]),
            ("listen-overflow", &[("TcpExt", "ListenOverflows")]),
            ("abort-on-memory", &[("TcpExt", "TCPAbortOnMemory")]),
        ];
        let r = self.report()?;
        let rates = r.rates.as_ref()?;
        let ids: Vec<u64> = self.shown_netns().iter().map(|n| n.id).collect();
        Some(
            SHOWN
                .iter()
                .map(|(label, counters)| {
                    let v = ids
                        .iter()
                        .flat_map(|id| counters.iter().map(move |(s, n)| (id, s, n)))
                        .filter_map(|(id, s, n)| rates.get(*id, s, n))
                        .sum();
                    (*label, v)
                })
                .collect(),
        )
    }

    /// The busiest endpoints of the shown namespaces (LISTEN left out: one socket
    /// each), most sockets first.
    pub fn endpoint_rows(&self) -> Vec<EndpointRow> {
        let mut rows: Vec<EndpointRow> = self
            .shown_netns()
            .iter()
            .flat_map(|ns| {
                let list = match self.view.side {
                    Side::Local => &ns.top_local,
                    Side::Remote => &ns.top_remote,
                };
                list.iter()
                    .filter(|e| e.state != TcpState::Listen && e.count > 0)
                    .map(|e| EndpointRow {
                        state: e.state,
                        endpoint: e.endpoint.to_string(),
                        count: e.count,
                        error: e.error,
                        netns: ns.name().to_string(),
                    })
            })
            .collect();
        rows.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.state.cmp(&b.state))
                .then(a.endpoint.cmp(&b.endpoint))
        });
        rows
    }

    /// The processes of the shown namespaces (or their pods), in the sort order.
    pub fn process_rows(&self) -> Vec<ProcRow> {
        let Some(r) = self.report() else {
            return Vec::new();
        };
        let procs = r
            .snapshot
            .processes
            .iter()
            .filter(|p| match self.view.netns {
                NsFilter::All => true,
                NsFilter::One(id) => p.netns == Some(id),
            });
        let mut rows: Vec<ProcRow> = if self.view.group {
            let mut groups: BTreeMap<String, ProcRow> = BTreeMap::new();
            for p in procs {
                let key = group_key(p);
                let row = self.proc_row(p);
                groups
                    .entry(key.clone())
                    .and_modify(|g| merge_group(g, &row))
                    .or_insert_with(|| ProcRow {
                        key,
                        name: "1 proc".into(),
                        pid: None,
                        ..row
                    });
            }
            groups.into_values().collect()
        } else {
            procs.map(|p| self.proc_row(p)).collect()
        };
        let sort = self.view.sort;
        let key = |r: &ProcRow| -> (u64, u64) {
            let first = match sort {
                ProcSort::Sockets => r.sockets,
                ProcSort::Tcp => r.tcp,
                ProcSort::Fds => r.fds.unwrap_or(0),
                // In millionths, so that it sorts as an integer.
                ProcSort::FdUse => (r.fd_use.unwrap_or(0.0) * 1_000_000.0) as u64,
                ProcSort::Unhashed => r.unhashed,
                ProcSort::CloseWait => r.close_wait,
                ProcSort::Established => r.established,
                ProcSort::Pid => 0,
            };
            (first, r.sockets)
        };
        if sort == ProcSort::Pid {
            rows.sort_by(|a, b| a.pid.cmp(&b.pid).then(a.key.cmp(&b.key)));
        } else {
            rows.sort_by(|a, b| key(b).cmp(&key(a)).then(a.key.cmp(&b.key)));
        }
        rows
    }

    fn proc_row(&self, p: &Process) -> ProcRow {
        ProcRow {
            key: p.pid.to_string(),
            name: p.comm.clone(),
            pid: Some(p.pid),
            sockets: p.socket_fds.unwrap_or(0),
            tcp: tcp_total(p),
            established: p.states.count(TcpState::Established),
            close_wait: p.states.count(TcpState::CloseWait),
            unhashed: p.unhashed.unwrap_or(0),
            fds: p.fds,
            fd_limit: p.fd_limit,
            fd_use: p.fd_use(),
            owner: crate::render::procs::owner(p),
            netns: self.netns_name(p.netns),
        }
    }

    /// The findings about the shown namespaces, and the host-wide ones (no
    /// namespace in their subject), most severe first (the report's order).
    pub fn findings(&self) -> Vec<&Finding> {
        let Some(r) = self.report() else {
            return Vec::new();
        };
        let names: Option<Vec<&str>> = match self.view.netns {
            NsFilter::All => None,
            NsFilter::One(id) => Some(
                r.snapshot
                    .netns
                    .iter()
                    .filter(|n| n.id == id)
                    .flat_map(|n| n.names.iter().map(String::as_str))
                    .chain(std::iter::once(""))
                    .collect(),
            ),
        };
        r.findings
            .iter()
            .filter(|f| match (&names, f.subject.netns.as_deref()) {
                (None, _) | (_, None) => true,
                (Some(names), Some(ns)) => {
                    names.contains(&ns) || names.iter().any(|n| n.strip_prefix("pod ") == Some(ns))
                }
            })
            .collect()
    }

    /// The host-wide figures against their limits, and the two per-namespace ones
    /// (TIME-WAIT, conntrack) for the namespace nearest its limit.
    pub fn gauges(&self) -> Vec<GaugeRow> {
        let Some(r) = self.report() else {
            return Vec::new();
        };
        let snap = &r.snapshot;
        let h = &snap.host;
        let t = |name: &str| self.thresholds.get(name);
        let mut out = Vec::new();

        // Orphans: the kernel may count them ×2 or ×4 against tcp_max_orphans.
        let orphans = h.sockstat.tcp_orphan;
        let max = h.limits.tcp_max_orphans;
        let ratio_o = ratio(orphans, max);
        let note = match ratio_o {
            Some(r) => format!("×2 {} ×4 {}", pct(2.0 * r), pct(4.0 * r)),
            None => "tcp_max_orphans".into(),
        };
        out.push(GaugeRow {
            label: "orphans",
            value: orphans,
            limit: max,
            ratio: ratio_o,
            marks: vec![0.25, 0.5],
            figures: figures(orphans, max, ""),
            note,
            level: level(ratio_o, t("orphans.warning"), t("orphans.critical")),
        });

        // TIME-WAIT buckets (sockstat tw: TIME-WAIT and FIN-WAIT-2 minisockets)
        // against tcp_max_tw_buckets, per namespace: the one nearest its limit.
        let tw = self
            .shown_netns()
            .into_iter()
            .filter_map(|ns| {
                let tw = ns.sockstat.tcp_tw?;
                let max = ns.sysctl_u64("net.ipv4.tcp_max_tw_buckets");
                Some((ns, tw, max))
            })
            .max_by(|a, b| {
                let ra = ratio(Some(a.1), a.2).unwrap_or(0.0);
                let rb = ratio(Some(b.1), b.2).unwrap_or(0.0);
                ra.total_cmp(&rb).then(a.1.cmp(&b.1))
            });
        let (value, limit, note) = match tw {
            Some((ns, tw, max)) => (Some(tw), max, format!("ns {}", ns.name())),
            None => (None, None, "not read".into()),
        };
        let ratio_tw = ratio(value, limit);
        out.push(GaugeRow {
            label: "tw buckets",
            value,
            limit,
            ratio: ratio_tw,
            marks: Vec::new(),
            figures: figures(value, limit, ""),
            note,
            level: level(ratio_tw, t("timewait.warning"), t("timewait.critical")),
        });

        // TCP memory in pages against tcp_mem (pressure marked, ratio of max).
        let mem = h.sockstat.tcp_mem_pages;
        let tcp_mem = h.limits.tcp_mem;
        let ratio_mem = ratio(mem, tcp_mem.map(|m| m.max));
        let pressure = match (mem, tcp_mem) {
            (Some(v), Some(m)) => v > m.pressure,
            _ => false,
        };
        let mut level_mem = level(ratio_mem, f64::INFINITY, t("tcp-mem.critical"));
        if pressure && level_mem < Level::Warn {
            level_mem = Level::Warn;
        }
        out.push(GaugeRow {
            label: "TCP memory",
            value: mem,
            limit: tcp_mem.map(|m| m.max),
            ratio: ratio_mem,
            marks: tcp_mem
                .filter(|m| m.max > 0)
                .map(|m| vec![m.pressure as f64 / m.max as f64])
                .unwrap_or_default(),
            figures: figures(mem, tcp_mem.map(|m| m.max), " pg"),
            note: match (tcp_mem, mem) {
                (Some(m), Some(v)) if v > m.pressure => "UNDER PRESSURE".into(),
                (Some(m), _) => format!("pressure {}", compact(m.pressure)),
                _ => "tcp_mem".into(),
            },
            level: level_mem,
        });

        // File handles: fs.file-nr against fs.file-max (host-wide).
        let (files, file_max) = match &h.file_nr {
            Some(f) => (Some(f.allocated), Some(f.max)),
            None => (None, h.limits.file_max),
        };
        let ratio_f = ratio(files, file_max);
        out.push(GaugeRow {
            label: "files",
            value: files,
            limit: file_max,
            ratio: ratio_f,
            marks: Vec::new(),
            figures: figures(files, file_max, ""),
            note: "file-nr/file-max".into(),
            level: level(ratio_f, t("fd.warning"), t("fd.critical")),
        });

        // Conntrack: the count is per namespace, nf_conntrack_max global.
        let ct_max = h.limits.nf_conntrack_max;
        let ct = self
            .shown_netns()
            .into_iter()
            .filter_map(|ns| Some((ns, ns.conntrack_count?)))
            .max_by_key(|(_, c)| *c);
        let (value, note) = match ct {
            Some((ns, c)) => (Some(c), format!("ns {}", ns.name())),
            None => (None, "not readable".into()),
        };
        let ratio_ct = ratio(value, ct_max);
        out.push(GaugeRow {
            label: "conntrack",
            value,
            limit: ct_max,
            ratio: ratio_ct,
            marks: Vec::new(),
            figures: figures(value, ct_max, ""),
            note,
            level: level(ratio_ct, t("conntrack.warning"), t("conntrack.critical")),
        });
        out
    }

    /// Handles one key. The caller redraws on anything but `Nothing`.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        if key.kind != KeyEventKind::Press {
            return Action::Nothing;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if self.view.prompt.is_some() {
            return self.prompt_key(key);
        }
        let had_message = self.view.message.take().is_some();
        let action = match self.view.overlay.clone() {
            Overlay::Help => self.help_key(key),
            Overlay::Finding { .. } => self.detail_key(key),
            Overlay::None => self.pane_key(key),
        };
        match action {
            Action::Nothing if had_message => Action::Redraw,
            a => a,
        }
    }

    fn help_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            _ => {
                self.view.overlay = Overlay::None;
                Action::Redraw
            }
        }
    }

    fn detail_key(&mut self, key: KeyEvent) -> Action {
        let Overlay::Finding { scroll, .. } = &mut self.view.overlay else {
            return Action::Nothing;
        };
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace | KeyCode::Char('i') => {
                self.view.overlay = Overlay::None
            }
            KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => *scroll = scroll.saturating_add(10),
            KeyCode::PageUp => *scroll = scroll.saturating_sub(10),
            KeyCode::Home => *scroll = 0,
            KeyCode::Char('?') => self.view.overlay = Overlay::Help,
            _ => return Action::Nothing,
        }
        Action::Redraw
    }

    fn prompt_key(&mut self, key: KeyEvent) -> Action {
        let Some(text) = self.view.prompt.as_mut() else {
            return Action::Nothing;
        };
        match key.code {
            KeyCode::Esc => self.view.prompt = None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => text.push(c),
            KeyCode::Enter => {
                let want = text.trim().to_string();
                self.view.prompt = None;
                self.choose_netns(&want);
            }
            _ => return Action::Nothing,
        }
        Action::Redraw
    }

    /// `/NAME`: the namespace whose id or one of whose names is NAME, else the first
    /// whose name contains it; empty: every namespace.
    pub fn choose_netns(&mut self, want: &str) {
        if want.is_empty() || want == "all" {
            self.set_netns(NsFilter::All);
            return;
        }
        let Some(r) = self.report() else {
            self.view.message = Some("no cycle yet".into());
            return;
        };
        let list = &r.snapshot.netns;
        let exact = list.iter().find(|n| {
            n.id.to_string() == want
                || n.names
                    .iter()
                    .any(|x| x == want || x.strip_prefix("pod ") == Some(want))
        });
        let lower = want.to_lowercase();
        let found = exact.or_else(|| {
            list.iter().find(|n| {
                n.names
                    .iter()
                    .any(|x| x.to_lowercase().contains(lower.as_str()))
            })
        });
        match found.map(|n| n.id) {
            Some(id) => self.set_netns(NsFilter::One(id)),
            None => self.view.message = Some(format!("no namespace matches {want:?}")),
        }
    }

    fn set_netns(&mut self, f: NsFilter) {
        if self.view.netns != f {
            self.view.netns = f;
            self.view.selected = [0; 4];
        }
    }

    /// `n` / `N`: the next (previous) namespace of the current cycle, then all.
    fn cycle_netns(&mut self, forward: bool) {
        let ids: Vec<u64> = self
            .report()
            .map(|r| r.snapshot.netns.iter().map(|n| n.id).collect())
            .unwrap_or_default();
        // Positions: 0 = all, i + 1 = ids[i].
        let n = ids.len() + 1;
        let at = match self.view.netns {
            NsFilter::All => 0,
            NsFilter::One(id) => ids.iter().position(|x| *x == id).map_or(0, |i| i + 1),
        };
        let next = if forward {
            (at + 1) % n
        } else {
            (at + n - 1) % n
        };
        self.set_netns(if next == 0 {
            NsFilter::All
        } else {
            NsFilter::One(ids[next - 1])
        });
    }

    fn pane_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Char('p') | KeyCode::Char(' ') => self.view.paused = !self.view.paused,
            KeyCode::Char('s') => self.view.sort = next_sort(self.view.sort, true),
            KeyCode::Char('S') => self.view.sort = next_sort(self.view.sort, false),
            KeyCode::Char('n') => self.cycle_netns(true),
            KeyCode::Char('N') => self.cycle_netns(false),
            KeyCode::Char('/') => self.view.prompt = Some(String::new()),
            KeyCode::Char('e') => {
                self.view.side = match self.view.side {
                    Side::Local => Side::Remote,
                    Side::Remote => Side::Local,
                };
                self.view.selected[Pane::Endpoints.index()] = 0;
            }
            KeyCode::Char('g') => {
                self.view.group = !self.view.group;
                self.view.selected[Pane::Processes.index()] = 0;
            }
            KeyCode::Char('+') | KeyCode::Char('=') => return self.step_interval(true),
            KeyCode::Char('-') | KeyCode::Char('_') => return self.step_interval(false),
            KeyCode::Tab | KeyCode::Right => self.move_focus(true),
            KeyCode::BackTab | KeyCode::Left => self.move_focus(false),
            KeyCode::Char('l') => self.move_focus(true),
            KeyCode::Char('h') => self.move_focus(false),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::Home => self.view.selected[self.view.focus.index()] = 0,
            KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Enter | KeyCode::Char('i') => return self.open_detail(),
            KeyCode::Char('?') | KeyCode::F(1) => self.view.overlay = Overlay::Help,
            _ => return Action::Nothing,
        }
        Action::Redraw
    }

    fn step_interval(&mut self, up: bool) -> Action {
        let now = self.view.interval;
        let next = if up {
            INTERVAL_STEPS.iter().copied().find(|d| *d > now)
        } else {
            INTERVAL_STEPS.iter().rev().copied().find(|d| *d < now)
        };
        match next {
            Some(d) => {
                self.view.interval = d;
                self.view.message = Some(format!("interval {}", duration_words(d)));
                Action::Interval(d)
            }
            None => {
                self.view.message = Some(format!(
                    "interval {} is the {}",
                    duration_words(now),
                    if up { "longest" } else { "shortest" }
                ));
                Action::Redraw
            }
        }
    }

    /// The panes on screen at the current size, in Tab order.
    pub fn visible_panes(&self) -> Vec<Pane> {
        let l = super::view::plan(self.size.0, self.size.1);
        Pane::ALL.into_iter().filter(|p| l.shows(*p)).collect()
    }

    fn move_focus(&mut self, forward: bool) {
        let panes = self.visible_panes();
        if panes.is_empty() {
            return;
        }
        let at = panes.iter().position(|p| *p == self.view.focus);
        let n = panes.len();
        let next = match at {
            None => 0,
            Some(i) if forward => (i + 1) % n,
            Some(i) => (i + n - 1) % n,
        };
        self.view.focus = panes[next];
    }

    /// The number of rows of a pane (for clamping the selection).
    pub fn rows_in(&self, pane: Pane) -> usize {
        match pane {
            Pane::States => self.state_rows().len(),
            Pane::Endpoints => self.endpoint_rows().len(),
            Pane::Processes => self.process_rows().len(),
            Pane::Findings => self.findings().len(),
        }
    }

    /// The selected row of a pane, within its rows.
    pub fn selected(&self, pane: Pane) -> usize {
        let n = self.rows_in(pane);
        self.view.selected[pane.index()].min(n.saturating_sub(1))
    }

    fn move_selection(&mut self, by: isize) {
        let pane = self.view.focus;
        let n = self.rows_in(pane);
        let at = self.selected(pane) as isize;
        let to = (at + by).clamp(0, n.saturating_sub(1) as isize);
        self.view.selected[pane.index()] = to as usize;
    }

    /// Enter: the selected finding's details (from any pane; the findings pane's
    /// selection decides which).
    fn open_detail(&mut self) -> Action {
        let i = self.selected(Pane::Findings);
        let Some(f) = self.findings().get(i).copied() else {
            self.view.message = Some("no finding to show".into());
            return Action::Redraw;
        };
        self.view.overlay = Overlay::Finding {
            code: f.code.clone(),
            title: f.title.clone(),
            scroll: 0,
        };
        self.view.focus = Pane::Findings;
        Action::Redraw
    }

    /// The finding the detail overlay shows: the same code and title in the current
    /// cycle, else the same code, else none (it went away).
    pub fn detail_finding(&self) -> Option<&Finding> {
        let Overlay::Finding { code, title, .. } = &self.view.overlay else {
            return None;
        };
        let list = self.report().map(|r| &r.findings)?;
        list.iter()
            .find(|f| &f.code == code && &f.title == title)
            .or_else(|| list.iter().find(|f| &f.code == code))
    }
}

fn group_key(p: &Process) -> String {
    match (&p.pod, &p.container) {
        (Some(pod), _) => pod.clone(),
        (None, Some(c)) => c.chars().take(12).collect(),
        (None, None) => format!("{} ({})", p.pid, p.comm),
    }
}

fn merge_group(g: &mut ProcRow, r: &ProcRow) {
    let n: u64 = g
        .name
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    g.name = format!("{} procs", n + 1);
    g.sockets += r.sockets;
    g.tcp += r.tcp;
    g.established += r.established;
    g.close_wait += r.close_wait;
    g.unhashed += r.unhashed;
    g.fds = match (g.fds, r.fds) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    // The limit is per process: the group shows its most used member's.
    if r.fd_use.unwrap_or(-1.0) > g.fd_use.unwrap_or(-1.0) {
        g.fd_use = r.fd_use;
        g.fd_limit = r.fd_limit;
    }
}

/// The next sort key in `--sort`'s order (every value of the flag).
pub fn next_sort(now: ProcSort, forward: bool) -> ProcSort {
    let all = ProcSort::value_variants();
    let i = all.iter().position(|s| *s == now).unwrap_or(0);
    let n = all.len();
    all[if forward {
        (i + 1) % n
    } else {
        (i + n - 1) % n
    }]
}

/// The flag spelling of a sort key (`fd-use`).
pub fn sort_name(s: ProcSort) -> String {
    s.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

fn ratio(value: Option<u64>, limit: Option<u64>) -> Option<f64> {
    match (value, limit) {
        (Some(v), Some(l)) if l > 0 => Some(v as f64 / l as f64),
        _ => None,
    }
}

fn level(ratio: Option<f64>, warning: f64, critical: f64) -> Level {
    match ratio {
        None => Level::Dim,
        Some(r) if r >= critical => Level::Bad,
        Some(r) if r >= warning => Level::Warn,
        Some(_) => Level::Ok,
    }
}

/// `value / limit` with the unit, compact for large numbers.
fn figures(value: Option<u64>, limit: Option<u64>, unit: &str) -> String {
    let v = value.map(compact).unwrap_or_else(|| "?".into());
    match limit {
        Some(l) => format!("{v} / {}{unit}", compact(l)),
        None => format!("{v}{unit}"),
    }
}

/// A count in at most 7 characters: `131,072` exactly below a million, then
/// `1.2M`, `9.2E` (powers of 1000).
pub fn compact(n: u64) -> String {
    if n < 1_000_000 {
        return crate::render::table::num(n);
    }
    const UNITS: [&str; 5] = ["M", "G", "T", "P", "E"];
    let mut v = n as f64 / 1_000_000.0;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if v >= 100.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// A ratio as a percentage (`47.4%`, `>999%`).
pub fn pct(r: f64) -> String {
    let p = r * 100.0;
    if p >= 999.5 {
        ">999%".into()
    } else if p >= 99.95 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// `500ms`, `2s`, `1m`.
pub fn duration_words(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms > 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}
