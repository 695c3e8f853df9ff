//! Draws a [`TopState`] into a ratatui frame: a header line, the host-wide gauges,
//! the states / endpoints / processes / findings panes and the key line. Pure: the
//! same state always draws the same screen, so tests render it into a `TestBackend`.
//!
//! The layout degrades with the terminal: below 20 rows the gauges shrink, then go;
//! below 70 columns the endpoints pane goes and processes move under the states; the
//! key line always fits 80 columns.

use super::state::{
    compact, duration_words, pct, sort_name, EndpointRow, GaugeRow, Level, NsFilter, Overlay, Pane,
    ProcRow, Side, StateRow, TopState, HISTORY,
};
use crate::cli::ProcSort;
use crate::render::check::subject_words;
use crate::render::table::num;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;
use sockmedic_model::Severity;

/// The smallest terminal drawn at all.
pub const MIN_SIZE: (u16, u16) = (40, 10);

/// Where each part goes at one terminal size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub header: Rect,
    pub gauges: Option<Rect>,
    pub states: Option<Rect>,
    pub endpoints: Option<Rect>,
    pub processes: Option<Rect>,
    pub findings: Option<Rect>,
    pub footer: Rect,
    /// Smaller than [`MIN_SIZE`]: only a note is drawn.
    pub too_small: bool,
}

impl Plan {
    pub fn shows(&self, p: Pane) -> bool {
        match p {
            Pane::States => self.states.is_some(),
            Pane::Endpoints => self.endpoints.is_some(),
            Pane::Processes => self.processes.is_some(),
            Pane::Findings => self.findings.is_some(),
        }
    }
    fn area(&self, p: Pane) -> Option<Rect> {
        match p {
            Pane::States => self.states,
            Pane::Endpoints => self.endpoints,
            Pane::Processes => self.processes,
            Pane::Findings => self.findings,
        }
    }
}

/// The layout of a `w` x `h` terminal.
pub fn plan(w: u16, h: u16) -> Plan {
    let mut p = Plan {
        header: Rect::new(0, 0, w, 1.min(h)),
        footer: Rect::new(0, h.saturating_sub(1), w, 1.min(h)),
        ..Plan::default()
    };
    if w < MIN_SIZE.0 || h < MIN_SIZE.1 {
        p.too_small = true;
        return p;
    }
    let mut y = 1;
    let mut rest = h - 2;
    // Gauges: a title and five figures; three below 20 rows; none below 15.
    let gauge_rows = match h {
        20.. => 6,
        15..=19 => 4,
        _ => 0,
    };
    if gauge_rows > 0 {
        p.gauges = Some(Rect::new(0, y, w, gauge_rows));
        y += gauge_rows;
        rest -= gauge_rows;
    }
    // Findings: a third of what is left (title + rows), 3 to 12 rows, at the bottom.
    let findings_rows = (rest / 3).clamp(3, 12);
    p.findings = Some(Rect::new(0, y + rest - findings_rows, w, findings_rows));
    let body = Rect::new(0, y, w, rest - findings_rows);
    if w >= 70 {
        // The states pane; the right column keeps 44 (an IPv4 endpoint with its count).
        let left = ((w as u32 * 45 / 100) as u16).clamp(26, w - 44);
        p.states = Some(Rect::new(0, body.y, left, body.height));
        let right = Rect::new(left, body.y, w - left, body.height);
        if body.height >= 8 {
            let top = body.height * 45 / 100;
            p.endpoints = Some(Rect::new(right.x, right.y, right.width, top));
            p.processes = Some(Rect::new(
                right.x,
                right.y + top,
                right.width,
                right.height - top,
            ));
        } else {
            p.processes = Some(right);
        }
    } else if body.height >= 10 {
        let top = body.height / 2;
        p.states = Some(Rect::new(0, body.y, w, top));
        p.processes = Some(Rect::new(0, body.y + top, w, body.height - top));
    } else {
        p.states = Some(body);
    }
    p
}

/// Colours, or bold/dim only without them.
#[derive(Clone, Copy)]
struct Look {
    color: bool,
}

impl Look {
    fn level(self, l: Level) -> Style {
        match (self.color, l) {
            (_, Level::Ok) if !self.color => Style::new(),
            (true, Level::Ok) => Style::new().fg(Color::Green),
            (true, Level::Warn) => Style::new().fg(Color::Yellow),
            (true, Level::Bad) => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            (false, Level::Warn) => Style::new().add_modifier(Modifier::BOLD),
            (false, Level::Bad) => Style::new().add_modifier(Modifier::BOLD),
            (_, Level::Dim) => self.dim(),
            (false, Level::Ok) => Style::new(),
        }
    }
    fn severity(self, s: Severity) -> Style {
        self.level(match s {
            Severity::Critical => Level::Bad,
            Severity::Warning => Level::Warn,
            Severity::Info => Level::Dim,
        })
    }
    fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    fn key(self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    fn title(self, focused: bool) -> Style {
        match (focused, self.color) {
            (true, true) => Style::new()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED),
            (true, false) => Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            (false, _) => self.bold(),
        }
    }
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, state: &TopState) {
    let area = frame.area();
    let p = plan(area.width, area.height);
    let look = Look { color: state.color };
    if p.too_small {
        let msg = format!(
            "terminal too small ({}x{}; top needs {}x{}) - q quits",
            area.width, area.height, MIN_SIZE.0, MIN_SIZE.1
        );
        frame.render_widget(Paragraph::new(fit(&msg, area.width)), area);
        return;
    }
    header(frame, state, p.header, look);
    footer(frame, state, p.footer, look);
    if state.current.is_none() {
        let body = Rect::new(0, 1, area.width, area.height.saturating_sub(2));
        let msg = match &state.last_error {
            Some(e) => format!("collection failed: {e}"),
            None => "waiting for the first collection...".into(),
        };
        frame.render_widget(Paragraph::new(fit(&msg, body.width)), body);
        return;
    }
    if let Some(a) = p.gauges {
        gauges(frame, state, a, look);
    }
    for pane in Pane::ALL {
        if let Some(a) = p.area(pane) {
            let focused = state.view.focus == pane;
            match pane {
                Pane::States => states(frame, state, a, focused, look),
                Pane::Endpoints => endpoints(frame, state, a, focused, look),
                Pane::Processes => processes(frame, state, a, focused, look),
                Pane::Findings => findings(frame, state, a, focused, look),
            }
        }
    }
    match &state.view.overlay {
        Overlay::None => {}
        Overlay::Help => help(frame, area, look),
        Overlay::Finding { scroll, .. } => detail(frame, state, area, *scroll, look),
    }
}

/// The first line: what, where, when, how often; PAUSED or a problem on the right.
/// When it does not fit, the kernel goes first, then the collection time, then the
/// clock.
fn header(frame: &mut Frame, state: &TopState, area: Rect, look: Look) {
    let right: Option<(String, Style)> = if let Some(m) = &state.view.message {
        Some((m.clone(), look.bold()))
    } else if state.view.paused {
        Some((
            "PAUSED".into(),
            look.level(Level::Warn).add_modifier(Modifier::REVERSED),
        ))
    } else if state.errors > 0 {
        let e = state.last_error.as_deref().unwrap_or("?");
        Some((
            format!("{} failed: {e}", state.errors),
            look.level(Level::Bad),
        ))
    } else {
        None
    };
    let w = area.width as usize;
    let right_w = right
        .as_ref()
        .map_or(0, |(t, _)| t.chars().count().min(w / 2) + 2);
    // (separator, text, priority: the lowest goes first when it does not fit)
    let mut parts: Vec<(&str, String, u8)> = vec![("", "sockmedic top".into(), 9)];
    if let Some(c) = &state.current {
        let s = &c.report.snapshot.source;
        parts.push(("  ", s.host.clone(), 8));
        if let Some(k) = &s.kernel {
            parts.push(("  ", format!("Linux {k}"), 1));
        }
        if let Some(t) = s.taken_at.get(11..19) {
            parts.push(("  ", format!("{t} UTC"), 3));
        }
        parts.push(("  ", format!("cycle {}", state.cycles), 5));
        parts.push((" ", format!("in {} ms", c.duration.as_millis()), 2));
    }
    parts.push((
        "  ",
        format!("every {}", duration_words(state.view.interval)),
        7,
    ));
    let len = |p: &[(&str, String, u8)]| -> usize {
        p.iter()
            .enumerate()
            .map(|(i, (sep, t, _))| t.chars().count() + if i > 0 { sep.len() } else { 0 })
            .sum()
    };
    while len(&parts) + right_w > w && parts.len() > 1 {
        let lowest = (0..parts.len()).min_by_key(|i| parts[*i].2).unwrap_or(0);
        parts.remove(lowest);
    }
    let mut spans = Vec::new();
    for (i, (sep, t, _)) in parts.iter().enumerate() {
        if i == 0 {
            spans.push(Span::styled(t.clone(), look.bold()));
        } else {
            spans.push(Span::raw(format!("{sep}{t}")));
        }
    }
    if let Some((text, style)) = right {
        let text = fit(&text, (w / 2) as u16);
        let used = len(&parts);
        let pad = w.saturating_sub(used + text.chars().count()).max(2);
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(text, style));
    }
    frame.render_widget(
        Paragraph::new(fit_line(Line::from(spans), area.width)),
        area,
    );
}

/// The keys: every one fits 80 columns (two spaces between them from 84).
fn footer(frame: &mut Frame, state: &TopState, area: Rect, look: Look) {
    if let Some(text) = &state.view.prompt {
        let line = Line::from(vec![
            Span::styled(" netns ", look.key()),
            Span::raw(format!(" {text}")),
            Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(
                "  enter: show it (a name, part of one, or an id; empty: all)  esc: cancel",
                look.dim(),
            ),
        ]);
        frame.render_widget(Paragraph::new(fit_line(line, area.width)), area);
        return;
    }
    frame.render_widget(Paragraph::new(key_line(area.width, look)), area);
}

/// The keys of the footer, as (key, what).
pub const FOOTER_KEYS: [(&str, &str); 9] = [
    ("q", "quit"),
    ("p", "pause"),
    ("s", "sort"),
    ("n", "netns"),
    ("/", "find"),
    ("+/-", "interval"),
    ("tab", "pane"),
    ("enter", "details"),
    ("?", "help"),
];

fn key_line(width: u16, look: Look) -> Line<'static> {
    let gap = if width >= 84 { "  " } else { " " };
    let mut spans = Vec::new();
    let mut used = 0;
    for (i, (k, what)) in FOOTER_KEYS.iter().enumerate() {
        let len = k.len() + 1 + what.len() + if i > 0 { gap.len() } else { 0 };
        // `? help` always fits: the others give way to it on a narrow terminal.
        let reserve = if *k == "?" { 0 } else { 7 };
        if used + len + reserve > width as usize {
            continue;
        }
        if i > 0 {
            spans.push(Span::raw(gap));
        }
        spans.push(Span::styled(*k, look.key()));
        spans.push(Span::raw(format!(" {what}")));
        used += len;
    }
    Line::from(spans)
}

/// Draws a pane's frame: a top rule with the title (reversed when focused), and a rule
/// on the right for the left column. Returns the pane's inside.
fn pane(
    frame: &mut Frame,
    area: Rect,
    title: String,
    focused: bool,
    right_rule: bool,
    look: Look,
) -> Rect {
    let borders = if right_rule {
        Borders::TOP | Borders::RIGHT
    } else {
        Borders::TOP
    };
    let block = Block::default()
        .borders(borders)
        .border_style(look.dim())
        .title(Span::styled(
            format!(" {} ", fit(&title, area.width.saturating_sub(4))),
            look.title(focused),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}

fn gauges(frame: &mut Frame, state: &TopState, area: Rect, look: Look) {
    let scope = match state.view.netns {
        NsFilter::All => "tw buckets and conntrack: the namespace nearest its limit",
        NsFilter::One(_) => "tw buckets and conntrack: this namespace",
    };
    let title = format!("Host-wide limits ({scope})");
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(look.dim())
        .title(Span::styled(
            fit(&format!(" {title} "), area.width.saturating_sub(2)),
            look.bold(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = state.gauges();
    let rows = &rows[..rows.len().min(inner.height as usize)];
    let figures_w = rows
        .iter()
        .map(|g| g.figures.chars().count())
        .max()
        .unwrap_or(0);
    let note_w = rows
        .iter()
        .map(|g| g.note.chars().count())
        .max()
        .unwrap_or(0);
    let label_w = rows.iter().map(|g| g.label.len()).max().unwrap_or(0);
    let fixed = label_w + 1 + figures_w + 1 + 6 + 1;
    let w = inner.width as usize;
    let (bar_w, note_w) = if w >= fixed + 10 + 1 + note_w {
        ((w - fixed - 1 - note_w).min(50), note_w)
    } else {
        (
            10.min(w.saturating_sub(fixed)),
            w.saturating_sub(fixed + 11),
        )
    };
    let lines: Vec<Line> = rows
        .iter()
        .map(|g| gauge_line(g, label_w, figures_w, bar_w, note_w, look))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn gauge_line(
    g: &GaugeRow,
    label_w: usize,
    figures_w: usize,
    bar_w: usize,
    note_w: usize,
    look: Look,
) -> Line<'static> {
    let style = look.level(g.level);
    let ratio_text = g.ratio.map(pct).unwrap_or_else(|| "-".into());
    let mut spans = vec![
        Span::styled(pad_right(g.label, label_w), look.bold()),
        Span::raw(" "),
        Span::raw(pad_left(&g.figures, figures_w)),
        Span::raw(" "),
        Span::styled(pad_left(&ratio_text, 6), style),
        Span::raw(" "),
    ];
    let (filled, empty) = bar(g.ratio, &g.marks, bar_w);
    spans.push(Span::styled(filled, style));
    spans.push(Span::styled(empty, look.dim()));
    if note_w > 0 {
        let note_style = if g.label == "orphans" || g.note == "UNDER PRESSURE" {
            style
        } else {
            look.dim()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(fit(&g.note, note_w as u16), note_style));
    }
    Line::from(spans)
}

/// A bar `width` cells long: the filled part (eighths of a cell) and the rest, with
/// `marks` (fractions) drawn as `|` in the rest.
pub fn bar(ratio: Option<f64>, marks: &[f64], width: usize) -> (String, String) {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let Some(r) = ratio else {
        return (String::new(), "·".repeat(width));
    };
    let eighths = (r.clamp(0.0, 1.0) * width as f64 * 8.0).round() as usize;
    let full = eighths / 8;
    let mut filled: String = "█".repeat(full);
    let mut cells = full;
    if !eighths.is_multiple_of(8) && cells < width {
        filled.push(PARTS[eighths % 8]);
        cells += 1;
    }
    let mut empty = String::new();
    for i in cells..width {
        let mark = marks
            .iter()
            .any(|m| ((m * width as f64).round() as usize).min(width - 1) == i);
        empty.push(if mark { '|' } else { '░' });
    }
    (filled, empty)
}

/// A sparkline of `values`: blank for 0, else 1 to 8 eighths between the window's
/// low and high. The range is at least a tenth of the high, so that a large,
/// steady count does not turn its noise into waves, and a count that comes and
/// goes starts from 0.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let hi = values.iter().copied().max().unwrap_or(0);
    let lo = values.iter().copied().min().unwrap_or(0);
    let range = (hi - lo).max(hi / 10).max(1);
    let floor = hi.saturating_sub(range);
    values
        .iter()
        .map(|v| {
            if *v == 0 {
                BARS[0]
            } else {
                let up = v.saturating_sub(floor) as f64 / range as f64;
                BARS[(1 + (up * 7.0).round() as usize).min(8)]
            }
        })
        .collect()
}

/// A per-second change: `+12`, `-3.5`, `0`.
pub fn rate_words(r: f64) -> String {
    let a = r.abs();
    let sign = if r > 0.0 { "+" } else { "-" };
    if a < 0.05 {
        "0".into()
    } else if a < 10.0 {
        format!("{sign}{a:.1}")
    } else {
        format!("{sign}{}", num(a.round() as u64))
    }
}

fn states(frame: &mut Frame, state: &TopState, area: Rect, focused: bool, look: Look) {
    let right_rule = area.x == 0 && area.width < frame.area().width;
    let inner = pane(
        frame,
        area,
        format!("TCP states · {}", state.netns_label()),
        focused,
        right_rule,
        look,
    );
    let rows = state.state_rows();
    let spark_w = (inner.width as usize).saturating_sub(10 + 1 + 9 + 1 + 6 + 1);
    let window = state_window(state, spark_w);
    let head = row_line(
        &[
            ("STATE".into(), look.dim()),
            ("COUNT".into(), look.dim()),
            ("/s".into(), look.dim()),
            (window, look.dim()),
        ],
        &[(10, L), (9, R), (6, R), (spark_w, L)],
    );
    let mut lines = vec![head];
    let body = (inner.height as usize).saturating_sub(1);
    // A spare row at the bottom shows the counter rates.
    let rates = state.counter_rates();
    let show_rates = body > rows.len() && inner.height >= 3;
    let room = if show_rates { body - 1 } else { body };
    let sel = state.selected(Pane::States);
    lines.extend(visible_lines(&rows, sel, room, focused, look, |r| {
        state_line(r, spark_w, look)
    }));
    if show_rates {
        while lines.len() < inner.height as usize - 1 {
            lines.push(Line::raw(""));
        }
        // Opens always, the other counters when they moved.
        let text = match rates {
            Some(list) => {
                let moved: Vec<String> = list
                    .iter()
                    .enumerate()
                    .filter(|(i, (_, v))| *i == 0 || v.abs() >= 0.05)
                    .map(|(_, (n, v))| format!("{n} {}", rate_words(*v).trim_start_matches('+')))
                    .collect();
                format!("per s: {}", moved.join(", "))
            }
            None => "counter rates from the second cycle".into(),
        };
        lines.push(Line::styled(fit(&text, inner.width), look.dim()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// `last 4m`: how far back a sparkline `width` cells wide reaches.
fn state_window(state: &TopState, width: usize) -> String {
    let label = match state.history_span(width.min(HISTORY)) {
        Some(secs) if secs >= 120.0 => format!("last {:.0}m", secs / 60.0),
        Some(secs) => format!("last {secs:.0}s"),
        None => "trend".into(),
    };
    if label.chars().count() > width {
        "trend".into()
    } else {
        label
    }
}

fn state_line(r: &StateRow, spark_w: usize, look: Look) -> Line<'static> {
    let rate = r.rate.map(rate_words).unwrap_or_else(|| "-".into());
    let hist = &r.history[r.history.len().saturating_sub(spark_w)..];
    let count_style = if r.count == 0 {
        look.dim()
    } else {
        Style::new()
    };
    let rate_style = match r.rate {
        Some(x) if x >= 0.05 => look.level(Level::Warn),
        Some(x) if x <= -0.05 => look.level(Level::Ok),
        _ => look.dim(),
    };
    row_line(
        &[
            (r.label.to_string(), look.bold()),
            (num(r.count), count_style),
            (rate, rate_style),
            (sparkline(hist), look.level(Level::Ok)),
        ],
        &[(10, L), (9, R), (6, R), (spark_w, L)],
    )
}

fn endpoints(frame: &mut Frame, state: &TopState, area: Rect, focused: bool, look: Look) {
    let side = match state.view.side {
        Side::Local => "local",
        Side::Remote => "remote",
    };
    let inner = pane(
        frame,
        area,
        format!("Top {side} endpoints (e)"),
        focused,
        false,
        look,
    );
    let rows = state.endpoint_rows();
    let all = state.view.netns == NsFilter::All;
    let w = inner.width as usize;
    let ns_w = if all && w >= 10 + 1 + 21 + 1 + 8 + 1 + 8 {
        (w - (10 + 1 + 21 + 1 + 8 + 1)).min(20)
    } else {
        0
    };
    let ep_w = w.saturating_sub(10 + 1 + 8 + 1 + if ns_w > 0 { ns_w + 1 } else { 0 });
    let mut cols = vec![(10, L), (ep_w, L), (8, R)];
    let mut head = vec![
        ("STATE".to_string(), look.dim()),
        (side.to_uppercase(), look.dim()),
        ("COUNT".to_string(), look.dim()),
    ];
    if ns_w > 0 {
        cols.push((ns_w, L));
        head.push(("NETNS".into(), look.dim()));
    }
    let mut lines = vec![row_line(&head, &cols)];
    if rows.is_empty() {
        lines.push(Line::styled("no socket outside LISTEN", look.dim()));
    }
    let room = (inner.height as usize).saturating_sub(1);
    let sel = state.selected(Pane::Endpoints);
    lines.extend(visible_lines(&rows, sel, room, focused, look, |r| {
        endpoint_line(r, &cols, look)
    }));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn endpoint_line(r: &EndpointRow, cols: &[(usize, Align)], look: Look) -> Line<'static> {
    let count = if r.error > 0 {
        format!("~{}", num(r.count))
    } else {
        num(r.count)
    };
    let mut cells = vec![
        (short_state(r.state.name()).to_string(), look.bold()),
        (r.endpoint.clone(), Style::new()),
        (count, Style::new()),
    ];
    if cols.len() > 3 {
        cells.push((r.netns.clone(), look.dim()));
    }
    row_line(&cells, cols)
}

fn short_state(name: &str) -> &str {
    match name {
        "ESTABLISHED" => "ESTAB",
        "BOUND-INACTIVE" => "BOUND",
        n => n,
    }
}

/// A processes-pane column: header, width, alignment, the value, and its priority
/// (lower is kept first when the pane is narrow).
struct ProcCol {
    head: &'static str,
    width: usize,
    align: Align,
    prio: u8,
    sort: Option<ProcSort>,
    cell: fn(&ProcRow) -> (String, Level),
}

/// A count that is a symptom whenever it is not zero (CLOSE-WAIT, unhashed sockets).
fn warn_if_any(n: u64) -> (String, Level) {
    let level = if n > 0 { Level::Warn } else { Level::Dim };
    (num(n), level)
}

fn proc_cols(group: bool) -> Vec<ProcCol> {
    vec![
        ProcCol {
            head: if group { "POD / CONTAINER" } else { "PID" },
            width: if group { 20 } else { 7 },
            align: if group { L } else { R },
            prio: 0,
            sort: Some(ProcSort::Pid),
            cell: |r| (r.key.clone(), Level::Ok),
        },
        ProcCol {
            head: if group { "PROCS" } else { "PROCESS" },
            width: if group { 8 } else { 9 },
            align: L,
            prio: 1,
            sort: None,
            cell: |r| (r.name.clone(), Level::Ok),
        },
        ProcCol {
            head: "SOCK",
            width: 7,
            align: R,
            prio: 2,
            sort: Some(ProcSort::Sockets),
            cell: |r| (num(r.sockets), Level::Ok),
        },
        ProcCol {
            head: "TCP",
            width: 7,
            align: R,
            prio: 6,
            sort: Some(ProcSort::Tcp),
            cell: |r| (num(r.tcp), Level::Ok),
        },
        ProcCol {
            head: "ESTAB",
            width: 7,
            align: R,
            prio: 9,
            sort: Some(ProcSort::Established),
            cell: |r| (num(r.established), Level::Ok),
        },
        ProcCol {
            head: "CL-WAIT",
            width: 7,
            align: R,
            prio: 5,
            sort: Some(ProcSort::CloseWait),
            cell: |r| warn_if_any(r.close_wait),
        },
        ProcCol {
            head: "UNHASH",
            width: 6,
            align: R,
            prio: 7,
            sort: Some(ProcSort::Unhashed),
            cell: |r| warn_if_any(r.unhashed),
        },
        ProcCol {
            head: "FDS/LIMIT",
            width: 11,
            align: R,
            prio: 4,
            sort: Some(ProcSort::Fds),
            cell: |r| {
                let fds = r.fds.map(short).unwrap_or_else(|| "?".into());
                let limit = match r.fd_limit {
                    Some(u64::MAX) => "unlim".to_string(),
                    Some(l) => short(l),
                    None => "?".into(),
                };
                (format!("{fds}/{limit}"), Level::Ok)
            },
        },
        ProcCol {
            head: "USE",
            width: 6,
            align: R,
            prio: 3,
            sort: Some(ProcSort::FdUse),
            cell: |r| match r.fd_use {
                Some(u) => {
                    let l = if u >= 0.95 {
                        Level::Bad
                    } else if u >= 0.8 {
                        Level::Warn
                    } else {
                        Level::Ok
                    };
                    (pct(u), l)
                }
                None => ("-".into(), Level::Dim),
            },
        },
        ProcCol {
            head: "POD / CONTAINER",
            width: 0, // the rest
            align: L,
            prio: 8,
            sort: None,
            cell: |r| (r.owner.clone(), Level::Dim),
        },
    ]
}

fn processes(frame: &mut Frame, state: &TopState, area: Rect, focused: bool, look: Look) {
    let right_rule = area.x == 0 && area.width < frame.area().width;
    let what = if state.view.group {
        "Pods/containers"
    } else {
        "Processes"
    };
    let title = format!(
        "{what} by {} (s, g)",
        sort_name(state.view.sort).replace('-', " ")
    );
    let inner = pane(frame, area, title, focused, right_rule, look);
    if !state.procs {
        let msg = "no process scan (--no-procs)";
        frame.render_widget(Paragraph::new(Line::styled(msg, look.dim())), inner);
        return;
    }
    // Keep the columns that fit, by priority (the sort key's always), in their order.
    let mut cols = proc_cols(state.view.group);
    if state.view.group {
        cols.retain(|c| c.head != "POD / CONTAINER" || c.prio == 0);
    }
    let w = inner.width as usize;
    let mut order: Vec<usize> = (0..cols.len()).collect();
    order.sort_by_key(|i| {
        let c = &cols[*i];
        (c.sort != Some(state.view.sort) || c.prio == 0, c.prio)
    });
    let mut keep = vec![false; cols.len()];
    let mut used = 0;
    for i in order {
        // The owner column takes what is left, at least 8.
        let need = match cols[i].width {
            0 => 8,
            n => n,
        } + usize::from(used > 0);
        if used + need <= w {
            keep[i] = true;
            used += need;
        }
    }
    let mut i = 0;
    cols.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    // What is left goes to the owner column if shown, else to the name column.
    let fixed: usize = cols.iter().map(|c| c.width).sum::<usize>() + cols.len().saturating_sub(1);
    let spare = w.saturating_sub(fixed);
    let grow = cols
        .iter()
        .position(|c| c.width == 0)
        .or_else(|| cols.iter().position(|c| c.prio == 1));
    let widths: Vec<(usize, Align)> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if Some(i) == grow {
                (c.width + spare, c.align)
            } else {
                (c.width, c.align)
            }
        })
        .collect();
    let head: Vec<(String, Style)> = cols
        .iter()
        .map(|c| {
            let s = if c.sort == Some(state.view.sort) && c.prio != 0
                || (c.prio == 0 && state.view.sort == ProcSort::Pid)
            {
                look.bold().add_modifier(Modifier::UNDERLINED)
            } else {
                look.dim()
            };
            (c.head.to_string(), s)
        })
        .collect();
    let mut lines = vec![row_line(&head, &widths)];
    let rows = state.process_rows();
    if rows.is_empty() {
        lines.push(Line::styled("no process holds a socket here", look.dim()));
    }
    let room = (inner.height as usize).saturating_sub(1);
    let sel = state.selected(Pane::Processes);
    lines.extend(visible_lines(&rows, sel, room, focused, look, |r| {
        let cells: Vec<(String, Style)> = cols
            .iter()
            .map(|c| {
                let (text, l) = (c.cell)(r);
                (text, look.level(l))
            })
            .collect();
        row_line(&cells, &widths)
    }));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn findings(frame: &mut Frame, state: &TopState, area: Rect, focused: bool, look: Look) {
    let list = state.findings();
    let total = state.report().map_or(0, |r| r.findings.len());
    let count = if list.len() == total {
        format!("{total}")
    } else {
        format!("{} of {total}", list.len())
    };
    let inner = pane(
        frame,
        area,
        format!("Findings ({count}; enter: evidence and remedy)"),
        focused,
        false,
        look,
    );
    if list.is_empty() {
        let msg = if total == 0 {
            "no finding: nothing near a limit".to_string()
        } else {
            format!("none here ({total} elsewhere: n or / for all)")
        };
        frame.render_widget(Paragraph::new(Line::styled(msg, look.dim())), inner);
        return;
    }
    let code_w = list.iter().map(|f| f.code.len()).max().unwrap_or(0).min(22);
    let w = inner.width as usize;
    let room = inner.height as usize;
    let sel = state.selected(Pane::Findings);
    let lines: Vec<Line> = visible_lines(&list, sel, room, focused, look, |f| {
        let sev = match f.severity {
            Severity::Critical => "CRIT",
            Severity::Warning => "WARN",
            Severity::Info => "INFO",
        };
        let title_w = w.saturating_sub(4 + 1 + code_w + 1);
        row_line(
            &[
                (sev.into(), look.severity(f.severity)),
                (f.code.clone(), look.bold()),
                (f.title.clone(), Style::new()),
            ],
            &[(4, L), (code_w, L), (title_w, L)],
        )
    })
    .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// A bordered box drawn over the panes at `box_area`, titled; returns its inside.
fn overlay(frame: &mut Frame, box_area: Rect, title: &'static str, look: Look) -> Rect {
    frame.render_widget(Clear, box_area);
    let block = Block::bordered()
        .border_style(look.bold())
        .title(Span::styled(title, look.bold()));
    let inner = block.inner(box_area);
    frame.render_widget(block, box_area);
    inner
}

/// A box in the middle of `area`, `w` x `h` at most.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// Every key, with what it does.
pub const HELP: [(&str, &str); 17] = [
    ("q, Esc, Ctrl-C", "quit (the terminal is restored)"),
    ("p, space", "pause / resume the screen (collection goes on)"),
    ("s, S", "next / previous process sort key"),
    ("g", "processes, or grouped by pod / container"),
    ("e", "local or remote endpoints"),
    ("n, N", "next / previous namespace, then all of them"),
    ("/", "type a namespace name (or part, or id); enter"),
    ("+, -", "longer / shorter interval between collections"),
    ("tab, arrows", "move between panes (left/right, h/l too)"),
    ("up, down, j, k", "move in the pane (PgUp, PgDn, Home, End)"),
    ("enter, i", "the selected finding: evidence and remedy"),
    ("?", "this help (any key closes it)"),
    (
        "orphans",
        "×2 and ×4: the kernel's penalty (tcp_max_orphans)",
    ),
    (
        "| in a bar",
        "the penalty points (25%, 50%); tcp_mem pressure",
    ),
    (
        "tw buckets",
        "TIME-WAIT + FIN-WAIT-2 minisockets vs tcp_max_tw_buckets",
    ),
    ("/s", "change per second since the cycle before"),
    ("trend", "the counts of the last cycles (up to 120)"),
];

fn help(frame: &mut Frame, area: Rect, look: Look) {
    let box_area = centered(area, 70, HELP.len() as u16 + 4);
    let inner = overlay(frame, box_area, " sockmedic top: keys and legend ", look);
    let key_w = HELP.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(pad_right(k, key_w), look.bold()),
                Span::raw("  "),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "sockmedic explain CODE: the long page of a finding code",
        look.dim(),
    ));
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The selected finding in full: `check --verbose`'s text for it.
fn detail(frame: &mut Frame, state: &TopState, area: Rect, scroll: u16, look: Look) {
    let box_area = centered(
        area,
        area.width.saturating_sub(4).max(20),
        area.height.saturating_sub(2),
    );
    let inner = overlay(
        frame,
        box_area,
        " finding (esc: back, up/down: scroll) ",
        look,
    );
    let (Some(f), Some(r)) = (state.detail_finding(), state.report()) else {
        let msg = "this finding is gone (the condition cleared)";
        frame.render_widget(Paragraph::new(Line::styled(msg, look.dim())), inner);
        return;
    };
    let width = inner.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    for (i, part) in wrap_indented(&format!("{} {}", f.code, f.title), 0, width)
        .into_iter()
        .enumerate()
    {
        let style = if i == 0 {
            look.severity(f.severity)
        } else {
            look.bold()
        };
        lines.push(Line::styled(part, style));
    }
    let para = |head: &str, text: &str, lines: &mut Vec<Line>| {
        for part in wrap_indented(&format!("{head}{text}"), 2, width) {
            lines.push(Line::raw(part));
        }
    };
    let sev = match f.severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    para("severity: ", sev, &mut lines);
    let subject = subject_words(&f.subject);
    if !subject.is_empty() {
        para("subject: ", &subject, &mut lines);
    }
    if !f.evidence.is_empty() {
        lines.push(Line::styled("evidence:", look.bold()));
        for e in &f.evidence {
            para("- ", e, &mut lines);
        }
    }
    if !f.explanation.is_empty() {
        lines.push(Line::styled("why:", look.bold()));
        para("", &f.explanation, &mut lines);
    }
    if !f.remedy.is_empty() {
        lines.push(Line::styled("remedy:", look.bold()));
        for rem in &f.remedy {
            para("- ", &rem.action, &mut lines);
            for (name, value) in &rem.sysctl {
                let cmd = crate::sysctl_out::command(&r.snapshot, f, name, value);
                for part in wrap_indented(&cmd, 4, width) {
                    lines.push(Line::styled(part, look.bold()));
                }
            }
            if let Some(c) = &rem.caveat {
                for part in wrap_indented(&format!("caveat: {c}"), 4, width) {
                    lines.push(Line::raw(part));
                }
            }
        }
    }
    lines.push(Line::styled(
        format!("more: sockmedic explain {}", f.code),
        look.dim(),
    ));
    let max = lines.len().saturating_sub(inner.height as usize) as u16;
    frame.render_widget(Paragraph::new(lines).scroll((scroll.min(max), 0)), inner);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}
const L: Align = Align::Left;
const R: Align = Align::Right;

/// Cells padded or cut to their widths, one space apart.
fn row_line(cells: &[(String, Style)], cols: &[(usize, Align)]) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, ((text, style), (w, align))) in cells.iter().zip(cols).enumerate() {
        if *w == 0 {
            continue;
        }
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        let t = fit(text, *w as u16);
        let padded = match align {
            Align::Left => pad_right(&t, *w),
            Align::Right => pad_left(&t, *w),
        };
        spans.push(Span::styled(padded, *style));
    }
    Line::from(spans)
}

/// `text` wrapped to `width`, each line indented by `indent` (continuations by 2 more).
fn wrap_indented(text: &str, indent: usize, width: usize) -> Vec<String> {
    let w = width.saturating_sub(indent + 2).max(10);
    crate::render::wrap(text, w)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let pad = if i == 0 { indent } else { indent + 2 };
            format!("{}{l}", " ".repeat(pad))
        })
        .collect()
}

/// A count in at most 5 characters: `65536`, `524k`, `1.0M`.
fn short(n: u64) -> String {
    match n {
        0..100_000 => n.to_string(),
        100_000..1_000_000 => format!("{}k", n / 1000),
        _ => compact(n),
    }
}

/// The lines of the `rows` that fit in `room`, scrolled so that the selected one
/// shows, and it highlighted when the pane has the focus.
fn visible_lines<'a, T>(
    rows: &'a [T],
    sel: usize,
    room: usize,
    focused: bool,
    look: Look,
    line: impl Fn(&T) -> Line<'static> + 'a,
) -> impl Iterator<Item = Line<'static>> + 'a {
    rows.iter()
        .enumerate()
        .skip(scroll_offset(sel, room, rows.len()))
        .take(room)
        .map(move |(i, r)| {
            let l = line(r);
            if focused && i == sel {
                l.patch_style(look.selected())
            } else {
                l
            }
        })
}

/// The first row to show so that `sel` is visible in `room` rows.
fn scroll_offset(sel: usize, room: usize, len: usize) -> usize {
    if room == 0 || len <= room {
        0
    } else {
        sel.saturating_sub(room - 1).min(len - room)
    }
}

/// `text` cut to `w` characters, with `…` when cut.
pub fn fit(text: &str, w: u16) -> String {
    let w = w as usize;
    if text.chars().count() <= w {
        text.to_string()
    } else if w == 0 {
        String::new()
    } else {
        let mut s: String = text.chars().take(w - 1).collect();
        s.push('…');
        s
    }
}

fn fit_line(line: Line<'static>, w: u16) -> Line<'static> {
    let mut left = w as usize;
    let mut spans = Vec::new();
    for s in line.spans {
        if left == 0 {
            break;
        }
        let n = s.content.chars().count();
        if n <= left {
            left -= n;
            spans.push(s);
        } else {
            spans.push(Span::styled(fit(&s.content, left as u16), s.style));
            left = 0;
        }
    }
    Line::from(spans)
}

fn pad_right(s: &str, w: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

fn pad_left(s: &str, w: usize) -> String {
    let n = s.chars().count();
    format!("{}{s}", " ".repeat(w.saturating_sub(n)))
}

/// The screen as text, one line per row, trailing spaces cut (`--once`, tests).
pub fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod visible_lines_tests {
    use super::*;

    /// Ten rows in four lines with the 8th selected: rows 4 to 7 show (the selected
    /// one last), and only it is reversed, and only when the pane has the focus.
    #[test]
    fn scrolls_to_the_selection_and_highlights_it_when_focused() {
        let rows: Vec<usize> = (0..10).collect();
        let look = Look { color: false };
        let show = |focused| -> Vec<(String, bool)> {
            visible_lines(&rows, 7, 4, focused, look, |r| Line::raw(r.to_string()))
                .map(|l| {
                    let reversed = l.style.add_modifier.contains(Modifier::REVERSED);
                    (l.to_string(), reversed)
                })
                .collect()
        };
        let texts = |v: &[(String, bool)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        let on = show(true);
        assert_eq!(texts(&on), ["4", "5", "6", "7"]);
        assert_eq!(
            on.iter().map(|x| x.1).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        assert!(show(false).iter().all(|x| !x.1));
    }
}
