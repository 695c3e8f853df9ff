//! `sockmedic report`: one self-contained HTML file (inline CSS and SVG, no script,
//! nothing fetched) from a history written by `record`: charts of the key figures
//! against their limits, the findings' timeline, and the worst moment in detail.
//!
//! Long periods are drawn in buckets (at most [`POINTS`] per line), each point the
//! largest value of its bucket (the smallest, for a limit): a peak is never
//! averaged away.

use crate::charts::{self, Bar, Chart, Series, Unit};
use crate::cli::{parse_duration, Common, ReportArgs};
use crate::history::{self, STATE_COLUMNS};
use crate::record_cmd::size_words;
use crate::write_out;
use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sockmedic_model::Finding;
use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

/// Points per line at most.
const POINTS: i64 = 720;
/// Namespaces and processes drawn per chart at most.
const LINES: usize = 6;

const TEMPLATE: &str = include_str!("report.html.j2");

pub fn run(common: &Common, args: &ReportArgs) -> Result<ExitCode> {
    let now = history::now_ms();
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time(s, now, "--since"))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| parse_time(s, now, "--until"))
        .transpose()?;
    if let (Some(a), Some(b)) = (since, until) {
        if a > b {
            bail!("--since {} is after --until {}", rfc(a), rfc(b));
        }
    }
    let conn = history::open_for_reading(&args.db)?;
    let db = args.db.display().to_string();
    let data = Data::load(&conn, &db, since, until, common)?;
    let html = data.render(&db)?;
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout {
        write_out(|out| out.write_all(html.as_bytes()))?;
    } else {
        std::fs::write(&args.output, &html)
            .with_context(|| format!("-o {}", args.output.display()))?;
    }
    let output = if to_stdout {
        "-".to_string()
    } else {
        args.output.display().to_string()
    };
    if common.json {
        let summary = data.summary_json(&db, &output, html.len());
        if to_stdout {
            eprintln!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            crate::write_json(&summary)?;
        }
    } else {
        let line = data.summary_line(&output, html.len());
        if to_stdout {
            eprintln!("{line}");
        } else {
            write_out(|out| writeln!(out, "{line}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`/`--until`: RFC 3339 (UTC), `now`, or a time ago (`1h`, `30m`).
fn parse_time(s: &str, now_ms: i64, flag: &str) -> Result<i64> {
    let t = s.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(t) {
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| anyhow!("{flag} {s:?}: before 1970"))?
            .as_millis();
        return Ok(ms.min(i64::MAX as u128) as i64);
    }
    if let Ok(ago) = parse_duration(t) {
        return Ok(now_ms.saturating_sub(ago.as_millis().min(i64::MAX as u128) as i64));
    }
    bail!("{flag} {s:?}: expected an RFC 3339 time in UTC (2026-11-22T09:00:00Z), `now`, or a time ago (1h, 30m, 2d)")
}

fn rfc(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// `5m 12s`, `3h 2m`, `2d 4h`.
fn span_words(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// One finding episode in the period.
#[derive(Clone, Debug, Serialize)]
struct Episode {
    code: String,
    severity: String,
    title: String,
    subject: serde_json::Value,
    #[serde(skip)]
    subject_key: String,
    first_ms: i64,
    last_ms: i64,
    cycles: i64,
    max_count: Option<i64>,
    open: bool,
}

/// The worst cycle kept in `moment`.
struct Worst {
    cycle_id: i64,
    ts_ms: i64,
    score: history::Score,
    findings: Vec<Finding>,
}

/// A namespace seen in the period.
#[derive(Clone, Debug)]
struct NsInfo {
    id: i64,
    inode: i64,
    name: String,
    pod: Option<String>,
    peak_sockets: i64,
    in_findings: bool,
}

/// Rows of one bucketed query: per group (namespace or process id, 0 for the host),
/// `(unix seconds, values)`.
type Buckets = BTreeMap<i64, Vec<(f64, Vec<Option<f64>>)>>;

struct Data {
    host: String,
    kernel: Option<String>,
    t0: i64,
    t1: i64,
    cycles: i64,
    runs: i64,
    interval_ms: i64,
    procs_every: i64,
    bucket_ms: i64,
    netns: Vec<NsInfo>,
    netns_total: usize,
    episodes: Vec<Episode>,
    worst: Option<Worst>,
    host_rows: Buckets,
    ns_rows: Buckets,
    procs: Vec<(i64, String)>,
    proc_rows: Buckets,
    asked: (Option<i64>, Option<i64>),
}

/// The host-wide columns of the bucketed query, in order.
const HOST_COLS: [&str; 13] = [
    "max(orphans)",
    "min(max_orphans)",
    "max(alloc)",
    "max(100.0 * orphans / nullif(alloc, 0))",
    "max(mem_pages)",
    "min(mem_pressure)",
    "min(mem_max)",
    "max(file_alloc)",
    "min(file_max)",
    "max(conntrack_count)",
    "min(conntrack_max)",
    "max(unhashed)",
    "max(100.0 * unhashed / nullif(alloc, 0))",
];
const H_ORPHANS: usize = 0;
const H_MAX_ORPHANS: usize = 1;
const H_ALLOC: usize = 2;
const H_SHARE: usize = 3;
const H_MEM: usize = 4;
const H_MEM_PRESSURE: usize = 5;
const H_MEM_MAX: usize = 6;
const H_FILE: usize = 7;
const H_FILE_MAX: usize = 8;
const H_CT: usize = 9;
const H_CT_MAX: usize = 10;
const H_UNHASHED: usize = 11;
const H_UNHASHED_SHARE: usize = 12;

/// The per-namespace columns: the states (in `STATE_COLUMNS` order), then these.
const NS_MORE: [&str; 8] = [
    "max(tw)",
    "min(max_tw_buckets)",
    "max(ports_in_use)",
    "min(port_range)",
    "max(listen_overflows_rate)",
    "max(listen_drops_rate)",
    "max(tw_overflow_rate)",
    "max(reqq_full_drop_rate)",
];
const N_TW: usize = STATE_COLUMNS.len();
const N_TW_MAX: usize = N_TW + 1;
const N_PORTS: usize = N_TW + 2;
const N_RANGE: usize = N_TW + 3;
const N_LO_RATE: usize = N_TW + 4;
const N_LD_RATE: usize = N_TW + 5;
const N_TWO_RATE: usize = N_TW + 6;
const N_RQ_RATE: usize = N_TW + 7;

impl Data {
    fn load(
        conn: &Connection,
        db: &str,
        since: Option<i64>,
        until: Option<i64>,
        common: &Common,
    ) -> Result<Data> {
        let q = |e: rusqlite::Error| anyhow!("--db {db}: {}", e.to_string().replace('\n', " "));
        let (all_n, all_min, all_max): (i64, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT count(*), min(ts_ms), max(ts_ms) FROM cycle",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(q)?;
        if all_n == 0 {
            bail!("--db {db}: the history holds no cycle yet (is `sockmedic record` writing it?)");
        }
        let lo = since.unwrap_or(i64::MIN);
        let hi = until.unwrap_or(i64::MAX);
        let (cycles, t0, t1): (i64, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT count(*), min(ts_ms), max(ts_ms) FROM cycle WHERE ts_ms BETWEEN ?1 AND ?2",
                [lo, hi],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(q)?;
        let (Some(t0), Some(t1)) = (t0, t1) else {
            bail!(
                "--db {db}: no cycle between {} and {} (the history holds {} to {})",
                since.map_or("the start".into(), rfc),
                until.map_or("the end".into(), rfc),
                rfc(all_min.unwrap_or(0)),
                rfc(all_max.unwrap_or(0))
            );
        };
        let (runs, interval_ms, procs_every): (i64, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT count(*), max(interval_ms), max(procs_every) FROM run WHERE id IN
                    (SELECT DISTINCT run_id FROM cycle WHERE ts_ms BETWEEN ?1 AND ?2)",
                [t0, t1],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(q)?;
        let (host, kernel): (String, Option<String>) = conn
            .query_row(
                "SELECT host, kernel FROM run WHERE id = (SELECT run_id FROM cycle
                    WHERE ts_ms BETWEEN ?1 AND ?2 ORDER BY id DESC LIMIT 1)",
                [t0, t1],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(q)?
            .unwrap_or_else(|| ("?".into(), None));
        let bucket_ms = ((t1 - t0) / POINTS).max(1);

        let episodes = load_episodes(conn, t0, t1).map_err(q)?;
        let worst = load_worst(conn, t0, t1).map_err(q)?;

        // Namespaces: the ones findings name first, then by peak sockets.
        let mut netns = load_netns(conn, t0, t1).map_err(q)?;
        for ns in &mut netns {
            ns.in_findings = episodes
                .iter()
                .any(|e| e.subject["netns"].as_str() == Some(ns.name.as_str()));
        }
        let netns_total = netns.len();
        if let Some(sel) = &common.netns {
            netns.retain(|n| {
                n.name == *sel
                    || n.inode.to_string() == *sel
                    || n.pod.as_deref() == Some(sel.as_str())
            });
            if netns.is_empty() {
                bail!(
                    "--netns {sel}: no such namespace in {db} between {} and {}",
                    rfc(t0),
                    rfc(t1)
                );
            }
        }
        netns.sort_by(|a, b| {
            b.in_findings
                .cmp(&a.in_findings)
                .then(b.peak_sockets.cmp(&a.peak_sockets))
                .then(a.name.cmp(&b.name))
        });
        netns.truncate(common.top.max(1));

        let host_sql = format!(
            "SELECT 0, min(ts_ms), {} FROM cycle WHERE ts_ms BETWEEN ?1 AND ?2
             GROUP BY (ts_ms - ?1) / ?3 ORDER BY 2",
            HOST_COLS.join(", ")
        );
        let host_rows = buckets(conn, &host_sql, t0, t1, bucket_ms).map_err(q)?;
        let ids: Vec<String> = netns.iter().map(|n| n.id.to_string()).collect();
        let mut ns_cols: Vec<String> = STATE_COLUMNS
            .iter()
            .map(|(c, _)| format!("max(s.{c})"))
            .collect();
        ns_cols.extend(NS_MORE.iter().map(|c| c.replace('(', "(s.")));
        let ns_sql = format!(
            "SELECT s.netns_id, min(c.ts_ms), {} FROM netns_sample s JOIN cycle c ON c.id = s.cycle_id
             WHERE c.ts_ms BETWEEN ?1 AND ?2 AND s.netns_id IN ({})
             GROUP BY s.netns_id, (c.ts_ms - ?1) / ?3 ORDER BY 1, 2",
            ns_cols.join(", "),
            if ids.is_empty() { "NULL".into() } else { ids.join(",") }
        );
        let ns_rows = buckets(conn, &ns_sql, t0, t1, bucket_ms).map_err(q)?;

        let procs = load_top_processes(conn, t0, t1, &netns, common.netns.is_some()).map_err(q)?;
        let pids: Vec<String> = procs.iter().map(|p| p.0.to_string()).collect();
        let proc_sql = format!(
            "SELECT p.process_id, min(c.ts_ms), max(p.socket_fds), max(p.fds), min(p.fd_limit)
             FROM process_sample p JOIN cycle c ON c.id = p.cycle_id
             WHERE c.ts_ms BETWEEN ?1 AND ?2 AND p.process_id IN ({})
             GROUP BY p.process_id, (c.ts_ms - ?1) / ?3 ORDER BY 1, 2",
            if pids.is_empty() {
                "NULL".into()
            } else {
                pids.join(",")
            }
        );
        let proc_rows = buckets(conn, &proc_sql, t0, t1, bucket_ms).map_err(q)?;

        Ok(Data {
            host,
            kernel,
            t0,
            t1,
            cycles,
            runs,
            interval_ms: interval_ms.unwrap_or(1000).max(1),
            procs_every: procs_every.unwrap_or(1),
            bucket_ms,
            netns,
            netns_total,
            episodes,
            worst,
            host_rows,
            ns_rows,
            procs,
            proc_rows,
            asked: (since, until),
        })
    }

    /// Two points further apart than this are on either side of a gap.
    fn gap_s(&self, every: i64) -> f64 {
        secs((3 * self.interval_ms * every.max(1)).max(2 * self.bucket_ms) + 1)
    }

    /// The segments of column `col` of `group` in `rows`, `f` applied to each value.
    fn line(
        &self,
        rows: &Buckets,
        group: i64,
        col: usize,
        every: i64,
        f: impl Fn(f64) -> f64,
    ) -> Vec<Vec<(f64, f64)>> {
        let gap = self.gap_s(every);
        let mut segs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut last: Option<f64> = None;
        for (t, vals) in rows.get(&group).into_iter().flatten() {
            let Some(v) = vals.get(col).copied().flatten() else {
                last = None;
                continue;
            };
            if last.is_none_or(|l| t - l > gap) || segs.is_empty() {
                segs.push(Vec::new());
            }
            if let Some(s) = segs.last_mut() {
                s.push((*t, f(v)));
            }
            last = Some(*t);
        }
        segs
    }

    fn host_line(&self, col: usize) -> Vec<Vec<(f64, f64)>> {
        self.line(&self.host_rows, 0, col, 1, |v| v)
    }

    fn marker(&self) -> Option<f64> {
        self.worst.as_ref().map(|w| secs(w.ts_ms))
    }

    fn chart(
        &self,
        id: &str,
        title: &str,
        intro: &str,
        unit: Unit,
        series: Vec<Series>,
    ) -> Result<ChartView> {
        let drawn = charts::draw(&Chart {
            series,
            unit,
            x: (secs(self.t0), secs(self.t1)),
            marker: self.marker(),
        })?;
        let mut caption = intro.to_string();
        for (label, peak) in &drawn.off_scale {
            caption.push_str(&format!(
                " {label} ({}) is far above the values and left off the scale.",
                charts::number_label(*peak, Unit::Count)
            ));
        }
        Ok(ChartView {
            id: id.to_string(),
            title: title.to_string(),
            caption,
            svg: drawn.svg,
        })
    }

    fn host_charts(&self) -> Result<Vec<ChartView>> {
        let mut v = Vec::new();
        let max = self.host_line(H_MAX_ORPHANS);
        let scaled = |k: f64| -> Vec<Vec<(f64, f64)>> {
            max.iter()
                .map(|s| s.iter().map(|(t, y)| (*t, (y / k).floor())).collect())
                .collect()
        };
        v.push(self.chart(
            "chart-orphans",
            "Orphans vs tcp_max_orphans (host-wide)",
            "TCP sockets the applications have closed and TCP still holds (FIN-WAIT-1, LAST-ACK, CLOSING, long FIN-WAIT-2), from sockstat. The kernel compares 2× or 4× the count with tcp_max_orphans for a socket under penalty (a soft error, or nothing sent for a while), so `Out of socket memory` can print at a half or a quarter of the limit: the dashed lines.",
            Unit::Count,
            vec![
                Series::value("orphans", charts::color(0), self.host_line(H_ORPHANS)),
                Series::limit("tcp_max_orphans", charts::color(1), max.clone()),
                Series::limit("tcp_max_orphans / 2 (penalty ×2)", charts::color(3), scaled(2.0)),
                Series::limit("tcp_max_orphans / 4 (penalty ×4)", charts::color(4), scaled(4.0)),
            ],
        )?);
        v.push(self.chart(
            "chart-orphan-share",
            "Orphan share of all TCP sockets (host-wide)",
            "Orphans as a share of every allocated TCP socket (sockstat orphan / alloc): incident 1's curve, high for 19 minutes while the final ACKs were lost. Beside it, the sockets in no table (alloc − inuse, `ss -s`'s \"closed\") as a share of alloc: incident 3's.",
            Unit::Percent,
            vec![
                Series::value("orphans / alloc", charts::color(0), self.host_line(H_SHARE)),
                Series::value(
                    "in no table / alloc",
                    charts::color(5),
                    self.host_line(H_UNHASHED_SHARE),
                ),
            ],
        )?);
        v.push(self.chart(
            "chart-tcp-mem",
            "TCP memory vs tcp_mem (host-wide, pages)",
            "sockstat TCP mem against tcp_mem: above pressure the kernel trims buffers; at max it refuses memory (`out of memory -- consider tuning tcp_mem`). Incident 5 crept up to max over days.",
            Unit::Count,
            vec![
                Series::value("mem (pages)", charts::color(0), self.host_line(H_MEM)),
                Series::limit("tcp_mem pressure", charts::color(3), self.host_line(H_MEM_PRESSURE)),
                Series::limit("tcp_mem max", charts::color(1), self.host_line(H_MEM_MAX)),
            ],
        )?);
        v.push(self.chart(
            "chart-alloc",
            "Allocated TCP sockets (host-wide)",
            "sockstat TCP alloc: every TCP socket in existence, in every namespace, in a table or not; beside it the ones in no table.",
            Unit::Count,
            vec![
                Series::value("alloc", charts::color(0), self.host_line(H_ALLOC)),
                Series::value("in no table", charts::color(5), self.host_line(H_UNHASHED)),
            ],
        )?);
        v.push(self.chart(
            "chart-file-nr",
            "File handles vs fs.file-max (host-wide)",
            "fs.file-nr's allocated handles against fs.file-max.",
            Unit::Count,
            vec![
                Series::value("file handles", charts::color(0), self.host_line(H_FILE)),
                Series::limit("fs.file-max", charts::color(1), self.host_line(H_FILE_MAX)),
            ],
        )?);
        let ct = self.host_line(H_CT_MAX);
        if !ct.is_empty() {
            v.push(self.chart(
                "chart-conntrack",
                "Conntrack entries vs nf_conntrack_max",
                "nf_conntrack_count of the initial namespace against nf_conntrack_max: a full table drops packets (`table full, dropping packet`).",
                Unit::Count,
                vec![
                    Series::value("nf_conntrack_count", charts::color(0), self.host_line(H_CT)),
                    Series::limit("nf_conntrack_max", charts::color(1), ct),
                ],
            )?);
        }
        Ok(v)
    }

    /// The namespaces with a non-zero peak in `col` (at most LINES).
    fn ns_with(&self, col: usize) -> Vec<&NsInfo> {
        self.netns
            .iter()
            .filter(|n| {
                self.ns_rows
                    .get(&n.id)
                    .into_iter()
                    .flatten()
                    .any(|(_, v)| v.get(col).copied().flatten().unwrap_or(0.0) > 0.0)
            })
            .take(LINES)
            .collect()
    }

    fn ns_charts(&self) -> Result<Vec<ChartView>> {
        let mut v = Vec::new();
        let ns_line = |n: &NsInfo, col| self.line(&self.ns_rows, n.id, col, 1, |x| x);
        // TIME-WAIT against each namespace's bucket limit (one dashed line per
        // distinct limit).
        let mut series = Vec::new();
        let mut limits: Vec<(f64, &NsInfo)> = Vec::new();
        for (i, n) in self.ns_with(N_TW).into_iter().enumerate() {
            series.push(Series::value(
                format!("{} TIME-WAIT", n.name),
                charts::color(i),
                ns_line(n, N_TW),
            ));
            let lim = ns_line(n, N_TW_MAX);
            let peak = lim.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
            if peak > 0.0 && !limits.iter().any(|(l, _)| *l == peak) {
                limits.push((peak, n));
                series.push(Series::limit(
                    format!("tcp_max_tw_buckets ({})", n.name),
                    charts::color(i),
                    lim,
                ));
            }
        }
        v.push(self.chart(
            "chart-timewait",
            "TIME-WAIT vs tcp_max_tw_buckets (per namespace)",
            "sockstat tw of each namespace against its tcp_max_tw_buckets: at the limit, new TIME-WAIT sockets are destroyed at once (`time wait bucket table overflow`, TCPTimeWaitOverflow).",
            Unit::Count,
            series,
        )?);
        let mut series = Vec::new();
        for (i, n) in self.ns_with(N_PORTS).into_iter().enumerate() {
            series.push(Series::value(
                format!("{} ports in use", n.name),
                charts::color(i),
                ns_line(n, N_PORTS),
            ));
            series.push(Series::limit(
                format!("{} ip_local_port_range", n.name),
                charts::color(i),
                ns_line(n, N_RANGE),
            ));
        }
        v.push(self.chart(
            "chart-ports",
            "Ephemeral ports in use vs ip_local_port_range (per namespace)",
            "Distinct local ports of the ephemeral range in use (bound, connected, TIME-WAIT) against the range's size: when they are all taken, connect() and bind() fail with EADDRNOTAVAIL (incident 3).",
            Unit::Count,
            series,
        )?);
        let mut series = Vec::new();
        let mut i = 0;
        for (col, what) in [
            (N_LO_RATE, "ListenOverflows/s"),
            (N_LD_RATE, "ListenDrops/s"),
            (N_TWO_RATE, "TCPTimeWaitOverflow/s"),
            (N_RQ_RATE, "TCPReqQFullDrop/s"),
        ] {
            for n in self.ns_with(col) {
                series.push(Series::value(
                    format!("{} {what}", n.name),
                    charts::color(i),
                    ns_line(n, col),
                ));
                i += 1;
            }
        }
        if series.is_empty() {
            // Nothing overflowed: draw the zero line of the namespaces shown.
            for (i, n) in self.netns.iter().take(LINES).enumerate() {
                series.push(Series::value(
                    format!("{} ListenOverflows/s", n.name),
                    charts::color(i),
                    ns_line(n, N_LO_RATE),
                ));
            }
        }
        v.push(self.chart(
            "chart-listen-overflows",
            "Listen overflows and drops per second (per namespace)",
            "How fast ListenOverflows and ListenDrops (a listener's accept queue full: SYNs and final ACKs dropped), TCPReqQFullDrop (SYN queue full) and TCPTimeWaitOverflow grew, per second between two cycles. Only the counters that moved are drawn.",
            Unit::PerSecond,
            series,
        )?);
        for n in &self.netns {
            let mut series = Vec::new();
            for (k, (col, state)) in STATE_COLUMNS.iter().enumerate() {
                let _ = col;
                let line = ns_line(n, k);
                if line.iter().flatten().any(|p| p.1 > 0.0) {
                    series.push(Series::value(state.to_string(), state_color(k), line));
                }
            }
            let pod = n
                .pod
                .as_ref()
                .map(|p| format!(", pod {p}"))
                .unwrap_or_default();
            v.push(self.chart(
                &format!("chart-states-{}", n.inode),
                &format!("TCP states in namespace {} ({}{pod})", n.name, n.inode),
                "Sockets per state in this namespace, from the kernel's socket tables (states that stayed at zero are left out).",
                Unit::Count,
                series,
            )?);
        }
        Ok(v)
    }

    fn proc_charts(&self) -> Result<Vec<ChartView>> {
        if self.procs.is_empty() {
            return Ok(Vec::new());
        }
        let every = self.procs_every;
        let mut sockets = Vec::new();
        let mut fds = Vec::new();
        for (i, (id, label)) in self.procs.iter().enumerate() {
            sockets.push(Series::value(
                label.clone(),
                charts::color(i),
                self.line(&self.proc_rows, *id, 0, every, |x| x),
            ));
            fds.push(Series::value(
                format!("{label} fds"),
                charts::color(i),
                self.line(&self.proc_rows, *id, 1, every, |x| x),
            ));
            fds.push(Series::limit(
                format!("{label} RLIMIT_NOFILE"),
                charts::color(i),
                self.line(&self.proc_rows, *id, 2, every, |x| x),
            ));
        }
        Ok(vec![
            self.chart(
                "chart-process-sockets",
                "Socket fds of the top processes",
                "Socket file descriptors held by the processes that held the most (incident 5's leak: thousands of sockets for one connection).",
                Unit::Count,
                sockets,
            )?,
            self.chart(
                "chart-process-fds",
                "Open fds vs RLIMIT_NOFILE of the top processes",
                "Open file descriptors of the same processes against their soft limit: at the limit, accept() fails with EMFILE and the accept queue fills (incident 4).",
                Unit::Count,
                fds,
            )?,
        ])
    }

    fn render(&self, db: &str) -> Result<String> {
        let mut sections = vec![Section {
            id: "host".into(),
            nav: "Host-wide".into(),
            title: "Host-wide figures".into(),
            charts: self.host_charts()?,
        }];
        sections.push(Section {
            id: "netns".into(),
            nav: "Per namespace".into(),
            title: if self.netns.len() < self.netns_total {
                format!(
                    "Per namespace ({} of {} shown: the ones findings name first, then by sockets; --top or --netns to choose)",
                    self.netns.len(),
                    self.netns_total
                )
            } else {
                "Per namespace".into()
            },
            charts: self.ns_charts()?,
        });
        let procs = self.proc_charts()?;
        if !procs.is_empty() {
            sections.push(Section {
                id: "processes".into(),
                nav: "Processes".into(),
                title: "Processes".into(),
                charts: procs,
            });
        }
        let page = Page {
            host: self.host.clone(),
            kernel: self.kernel.clone(),
            since: rfc(self.t0),
            until: rfc(self.t1),
            span: span_words(self.t1 - self.t0),
            cycles: self.cycles,
            runs: self.runs,
            interval: humantime::format_duration(std::time::Duration::from_millis(
                self.interval_ms as u64,
            ))
            .to_string(),
            bucket: if self.bucket_ms > self.interval_ms {
                Some(
                    humantime::format_duration(std::time::Duration::from_millis(
                        self.bucket_ms as u64,
                    ))
                    .to_string(),
                )
            } else {
                None
            },
            generated: rfc(history::now_ms()),
            tool: format!("sockmedic {}", env!("CARGO_PKG_VERSION")),
            db: db.to_string(),
            command: self.command(db),
            cards: self.cards(),
            timeline: self.timeline(),
            episodes: self.episode_rows(),
            worst: self.worst_view(),
            sections,
            explanations: self.explanations(),
        };
        let mut env = minijinja::Environment::new();
        env.add_template("report.html", TEMPLATE)
            .map_err(|e| anyhow!("report template: {e}"))?;
        let t = env
            .get_template("report.html")
            .map_err(|e| anyhow!("report template: {e}"))?;
        t.render(&page)
            .map_err(|e| anyhow!("rendering the report: {e:#}"))
    }

    fn command(&self, db: &str) -> String {
        let mut c = format!("sockmedic report --db {db}");
        if let Some(s) = self.asked.0 {
            c.push_str(&format!(" --since {}", rfc(s)));
        }
        if let Some(u) = self.asked.1 {
            c.push_str(&format!(" --until {}", rfc(u)));
        }
        c
    }

    fn cards(&self) -> Vec<Card> {
        let mut v = Vec::new();
        let count = |s: &str| self.episodes.iter().filter(|e| e.severity == s).count();
        let worst = ["critical", "warning", "info"]
            .into_iter()
            .find(|s| count(s) > 0);
        v.push(Card {
            label: "findings".into(),
            value: format!("{}", self.episodes.len()),
            note: format!(
                "{} critical, {} warning, {} info",
                count("critical"),
                count("warning"),
                count("info")
            ),
            class: worst.unwrap_or("ok").into(),
        });
        let peak = |col: usize| -> Option<f64> {
            self.host_rows
                .get(&0)
                .into_iter()
                .flatten()
                .filter_map(|(_, v)| v.get(col).copied().flatten())
                .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
        };
        let low = |col: usize| -> Option<f64> {
            self.host_rows
                .get(&0)
                .into_iter()
                .flatten()
                .filter_map(|(_, v)| v.get(col).copied().flatten())
                .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.min(x))))
        };
        let n = |x: f64| charts::number_label(x, Unit::Count);
        if let (Some(o), Some(m)) = (peak(H_ORPHANS), low(H_MAX_ORPHANS)) {
            v.push(Card {
                label: "peak orphans".into(),
                value: n(o),
                note: format!(
                    "of tcp_max_orphans {} ({:.1}%; ×4 penalty at {:.1}%)",
                    n(m),
                    100.0 * o / m.max(1.0),
                    400.0 * o / m.max(1.0)
                ),
                class: ratio_class(4.0 * o / m.max(1.0)).into(),
            });
        }
        if let (Some(mem), Some(max)) = (peak(H_MEM), low(H_MEM_MAX)) {
            v.push(Card {
                label: "peak TCP memory".into(),
                value: format!("{} pages", n(mem)),
                note: format!(
                    "of tcp_mem max {} ({:.1}%)",
                    n(max),
                    100.0 * mem / max.max(1.0)
                ),
                class: ratio_class(mem / max.max(1.0)).into(),
            });
        }
        let ns_peak = |col: usize, lim: usize| -> Option<(f64, f64, String)> {
            self.netns
                .iter()
                .filter_map(|ns| {
                    let rows = self.ns_rows.get(&ns.id)?;
                    rows.iter()
                        .filter_map(|(_, v)| {
                            let x = v.get(col).copied().flatten()?;
                            let l = v.get(lim).copied().flatten()?;
                            Some((x, l, ns.name.clone()))
                        })
                        .max_by(|a, b| (a.0 / a.1.max(1.0)).total_cmp(&(b.0 / b.1.max(1.0))))
                })
                .max_by(|a, b| (a.0 / a.1.max(1.0)).total_cmp(&(b.0 / b.1.max(1.0))))
        };
        if let Some((tw, lim, ns)) = ns_peak(N_TW, N_TW_MAX) {
            v.push(Card {
                label: "peak TIME-WAIT".into(),
                value: n(tw),
                note: format!("of tcp_max_tw_buckets {} in {ns}", n(lim)),
                class: ratio_class(tw / lim.max(1.0)).into(),
            });
        }
        if let Some((p, lim, ns)) = ns_peak(N_PORTS, N_RANGE) {
            v.push(Card {
                label: "peak ephemeral ports".into(),
                value: n(p),
                note: format!("of {} in the range in {ns}", n(lim)),
                class: ratio_class(p / lim.max(1.0)).into(),
            });
        }
        v
    }

    fn timeline(&self) -> String {
        let mut rows: Vec<(String, Vec<Bar>)> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let mut order: Vec<&Episode> = self.episodes.iter().collect();
        order.sort_by(|a, b| {
            sev_rank(&b.severity)
                .cmp(&sev_rank(&a.severity))
                .then(a.first_ms.cmp(&b.first_ms))
        });
        for e in order {
            let key = (e.code.clone(), e.subject_key.clone());
            let i = *index.entry(key).or_insert_with(|| {
                rows.push((
                    format!("{} {}", e.code, subject_words(&e.subject)),
                    Vec::new(),
                ));
                rows.len() - 1
            });
            // An episode seen once still spans one interval.
            let to = e.last_ms.max(e.first_ms + self.interval_ms);
            rows[i].1.push(Bar {
                severity: sev_static(&e.severity),
                from: secs(e.first_ms),
                to: secs(to),
                tooltip: format!(
                    "{} ({}) {} to {} ({}, {} cycles): {}",
                    e.code,
                    e.severity,
                    rfc(e.first_ms),
                    rfc(e.last_ms),
                    span_words(e.last_ms - e.first_ms),
                    e.cycles,
                    e.title
                ),
            });
        }
        charts::timeline(&rows, (secs(self.t0), secs(self.t1)), self.marker())
    }

    fn episode_rows(&self) -> Vec<EpisodeRow> {
        let mut v: Vec<&Episode> = self.episodes.iter().collect();
        v.sort_by(|a, b| {
            sev_rank(&b.severity)
                .cmp(&sev_rank(&a.severity))
                .then(a.first_ms.cmp(&b.first_ms))
        });
        v.into_iter()
            .map(|e| EpisodeRow {
                code: e.code.clone(),
                severity: e.severity.clone(),
                subject: subject_words(&e.subject),
                title: e.title.clone(),
                first: rfc(e.first_ms),
                last: rfc(e.last_ms),
                duration: span_words(e.last_ms - e.first_ms),
                cycles: e.cycles,
                max_count: e.max_count,
                open: e.open && e.last_ms >= self.t1,
            })
            .collect()
    }

    fn explanations(&self) -> Vec<Explanation> {
        let mut codes: Vec<&str> = self.episodes.iter().map(|e| e.code.as_str()).collect();
        if let Some(w) = &self.worst {
            codes.extend(w.findings.iter().map(|f| f.code.as_str()));
        }
        codes.sort();
        codes.dedup();
        codes
            .into_iter()
            .filter_map(|c| {
                sockmedic_diagnose::explain_page(c).map(|p| Explanation {
                    code: c.to_string(),
                    page: p.to_string(),
                })
            })
            .collect()
    }

    fn worst_view(&self) -> Option<WorstView> {
        let w = self.worst.as_ref()?;
        Some(WorstView {
            at: rfc(w.ts_ms),
            cycle: w.cycle_id,
            score: format!(
                "{} critical, {} warning, {} info",
                w.score.critical, w.score.warning, w.score.info
            ),
            findings: w
                .findings
                .iter()
                .map(|f| FindingView {
                    code: f.code.clone(),
                    severity: history::severity_name(f.severity).to_string(),
                    title: f.title.clone(),
                    subject: subject_rows(&f.subject),
                    evidence: f.evidence.clone(),
                    explanation: f.explanation.clone(),
                    remedies: f
                        .remedy
                        .iter()
                        .map(|r| RemedyView {
                            action: r.action.clone(),
                            sysctl: r.sysctl.iter().map(|(k, v)| format!("{k} = {v}")).collect(),
                            caveat: r.caveat.clone(),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    fn summary_line(&self, output: &str, bytes: usize) -> String {
        let count = |s: &str| self.episodes.iter().filter(|e| e.severity == s).count();
        let worst = match &self.worst {
            Some(w) => {
                let top = w.findings.first();
                format!(
                    "; worst moment {}{}",
                    rfc(w.ts_ms),
                    top.map(|f| format!(": {} ({})", f.code, history::severity_name(f.severity)))
                        .unwrap_or_default()
                )
            }
            None => String::new(),
        };
        format!(
            "sockmedic report: wrote {output} ({}): host {}, {} to {} ({}), {} cycles in {} run{}, {} namespace{}; {} finding{} ({} critical, {} warning, {} info){worst}",
            size_words(bytes as u64),
            self.host,
            rfc(self.t0),
            rfc(self.t1),
            span_words(self.t1 - self.t0),
            self.cycles,
            self.runs,
            if self.runs == 1 { "" } else { "s" },
            self.netns_total,
            if self.netns_total == 1 { "" } else { "s" },
            self.episodes.len(),
            if self.episodes.len() == 1 { "" } else { "s" },
            count("critical"),
            count("warning"),
            count("info"),
        )
    }

    fn summary_json(&self, db: &str, output: &str, bytes: usize) -> serde_json::Value {
        serde_json::json!({
            "schema": "sockmedic.history-report/v1",
            "db": db,
            "output": output,
            "bytes": bytes,
            "host": self.host,
            "kernel": self.kernel,
            "since": rfc(self.t0),
            "until": rfc(self.t1),
            "cycles": self.cycles,
            "runs": self.runs,
            "interval_ms": self.interval_ms,
            "netns": self.netns.iter().map(|n| serde_json::json!({
                "id": n.inode, "name": n.name, "pod": n.pod, "peak_sockets": n.peak_sockets,
            })).collect::<Vec<_>>(),
            "netns_total": self.netns_total,
            "findings": self.episodes.iter().map(|e| serde_json::json!({
                "code": e.code,
                "severity": e.severity,
                "title": e.title,
                "subject": e.subject,
                "first_seen": rfc(e.first_ms),
                "last_seen": rfc(e.last_ms),
                "cycles": e.cycles,
                "max_count": e.max_count,
                "open": e.open && e.last_ms >= self.t1,
            })).collect::<Vec<_>>(),
            "worst": self.worst.as_ref().map(|w| serde_json::json!({
                "taken_at": rfc(w.ts_ms),
                "critical": w.score.critical,
                "warning": w.score.warning,
                "info": w.score.info,
                "findings": w.findings,
            })),
        })
    }
}

fn ratio_class(r: f64) -> &'static str {
    if r >= 0.9 {
        "critical"
    } else if r >= 0.7 {
        "warning"
    } else {
        "ok"
    }
}

fn sev_rank(s: &str) -> u8 {
    match s {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

fn sev_static(s: &str) -> &'static str {
    match s {
        "critical" => "critical",
        "warning" => "warning",
        _ => "info",
    }
}

/// A distinct colour per state, the same in every namespace's chart.
fn state_color(k: usize) -> plotters::style::RGBColor {
    charts::color(k)
}

/// `netns demo, LAST-ACK, local 127.0.0.1:8001, python3 (pid 42)`.
fn subject_words(s: &serde_json::Value) -> String {
    let get = |k: &str| s[k].as_str().map(str::to_string);
    let mut parts = Vec::new();
    if let Some(n) = get("netns") {
        parts.push(format!("netns {n}"));
    }
    if let Some(st) = get("state") {
        parts.push(st);
    }
    if let Some(l) = get("local") {
        parts.push(format!("local {l}"));
    }
    if let Some(r) = get("remote") {
        parts.push(format!("remote {r}"));
    }
    match (get("process"), s["pid"].as_u64()) {
        (Some(p), Some(pid)) => parts.push(format!("{p} (pid {pid})")),
        (None, Some(pid)) => parts.push(format!("pid {pid}")),
        (Some(p), None) => parts.push(p),
        (None, None) => {}
    }
    if let Some(p) = get("pod") {
        parts.push(format!("pod {p}"));
    } else if let Some(c) = get("container") {
        parts.push(format!("container {}", &c[..c.len().min(12)]));
    }
    if parts.is_empty() {
        "host".into()
    } else {
        parts.join(", ")
    }
}

fn subject_rows(s: &sockmedic_model::Subject) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut add = |k: &str, val: Option<String>| {
        if let Some(val) = val {
            v.push((k.to_string(), val));
        }
    };
    add("netns", s.netns.clone());
    add("state", s.state.clone());
    add("local", s.local.clone());
    add("remote", s.remote.clone());
    add("pid", s.pid.map(|p| p.to_string()));
    add("process", s.process.clone());
    add("container", s.container.clone());
    add("pod", s.pod.clone());
    add("count", s.count.map(|c| c.to_string()));
    add("limit", s.limit.map(|c| c.to_string()));
    v
}

fn buckets(conn: &Connection, sql: &str, t0: i64, t1: i64, b: i64) -> rusqlite::Result<Buckets> {
    let mut st = conn.prepare(sql)?;
    let n = st.column_count();
    let mut out: Buckets = BTreeMap::new();
    let mut rows = st.query(params![t0, t1, b])?;
    while let Some(r) = rows.next()? {
        let group: i64 = r.get(0)?;
        let t: i64 = r.get(1)?;
        let mut vals = Vec::with_capacity(n - 2);
        for i in 2..n {
            vals.push(r.get::<_, Option<f64>>(i)?);
        }
        out.entry(group).or_default().push((secs(t), vals));
    }
    Ok(out)
}

fn load_episodes(conn: &Connection, t0: i64, t1: i64) -> rusqlite::Result<Vec<Episode>> {
    let mut st = conn.prepare(
        "SELECT code, severity, title, subject, subject_key, first_ms, last_ms, cycles, max_count, open
         FROM finding WHERE last_ms >= ?1 AND first_ms <= ?2 ORDER BY first_ms, id",
    )?;
    let rows = st.query_map([t0, t1], |r| {
        let subject: String = r.get(3)?;
        Ok(Episode {
            code: r.get(0)?,
            severity: r.get(1)?,
            title: r.get(2)?,
            subject: serde_json::from_str(&subject).unwrap_or(serde_json::Value::Null),
            subject_key: r.get(4)?,
            first_ms: r.get(5)?,
            last_ms: r.get(6)?,
            cycles: r.get(7)?,
            max_count: r.get(8)?,
            open: r.get::<_, i64>(9)? != 0,
        })
    })?;
    rows.collect()
}

fn load_worst(conn: &Connection, t0: i64, t1: i64) -> rusqlite::Result<Option<Worst>> {
    conn.query_row(
        "SELECT cycle_id, ts_ms, critical, warning, info, weight, findings FROM moment
         WHERE ts_ms BETWEEN ?1 AND ?2
         ORDER BY critical DESC, warning DESC, info DESC, weight DESC, ts_ms ASC LIMIT 1",
        [t0, t1],
        |r| {
            let findings: String = r.get(6)?;
            Ok(Worst {
                cycle_id: r.get(0)?,
                ts_ms: r.get(1)?,
                score: history::Score {
                    critical: r.get(2)?,
                    warning: r.get(3)?,
                    info: r.get(4)?,
                    weight: r.get(5)?,
                },
                findings: serde_json::from_str(&findings).unwrap_or_default(),
            })
        },
    )
    .optional()
}

fn load_netns(conn: &Connection, t0: i64, t1: i64) -> rusqlite::Result<Vec<NsInfo>> {
    let total: Vec<String> = STATE_COLUMNS
        .iter()
        .map(|(c, _)| format!("coalesce(s.{c}, 0)"))
        .collect();
    let sql = format!(
        "SELECT n.id, n.inode, n.name, n.pod, max({}) FROM netns_sample s
         JOIN cycle c ON c.id = s.cycle_id JOIN netns n ON n.id = s.netns_id
         WHERE c.ts_ms BETWEEN ?1 AND ?2 GROUP BY n.id",
        total.join(" + ")
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map([t0, t1], |r| {
        Ok(NsInfo {
            id: r.get(0)?,
            inode: r.get(1)?,
            name: r.get(2)?,
            pod: r.get(3)?,
            peak_sockets: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
            in_findings: false,
        })
    })?;
    rows.collect()
}

/// The processes that held the most socket fds in the period, as `(id, label)`;
/// with --netns, only the namespaces shown.
fn load_top_processes(
    conn: &Connection,
    t0: i64,
    t1: i64,
    netns: &[NsInfo],
    only_shown: bool,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut st = conn.prepare(
        "SELECT p.id, p.pid, p.comm, p.netns, p.pod, max(ps.socket_fds) m
         FROM process_sample ps JOIN cycle c ON c.id = ps.cycle_id
         JOIN process p ON p.id = ps.process_id
         WHERE c.ts_ms BETWEEN ?1 AND ?2
         GROUP BY p.id ORDER BY m DESC, p.pid LIMIT 50",
    )?;
    let rows = st.query_map([t0, t1], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut v = Vec::new();
    for row in rows {
        let (id, pid, comm, ns, pod) = row?;
        if only_shown && !netns.iter().any(|n| n.inode == ns) {
            continue;
        }
        let label = if pod.is_empty() {
            format!("{comm} ({pid})")
        } else {
            format!("{comm} ({pid}, {pod})")
        };
        v.push((id, label));
        if v.len() == LINES {
            break;
        }
    }
    Ok(v)
}

#[derive(Serialize)]
struct Page {
    host: String,
    kernel: Option<String>,
    since: String,
    until: String,
    span: String,
    cycles: i64,
    runs: i64,
    interval: String,
    bucket: Option<String>,
    generated: String,
    tool: String,
    db: String,
    command: String,
    cards: Vec<Card>,
    timeline: String,
    episodes: Vec<EpisodeRow>,
    worst: Option<WorstView>,
    sections: Vec<Section>,
    explanations: Vec<Explanation>,
}

#[derive(Serialize)]
struct Card {
    label: String,
    value: String,
    note: String,
    class: String,
}

#[derive(Serialize)]
struct Section {
    id: String,
    nav: String,
    title: String,
    charts: Vec<ChartView>,
}

#[derive(Serialize)]
struct ChartView {
    id: String,
    title: String,
    caption: String,
    svg: String,
}

#[derive(Serialize)]
struct EpisodeRow {
    code: String,
    severity: String,
    subject: String,
    title: String,
    first: String,
    last: String,
    duration: String,
    cycles: i64,
    max_count: Option<i64>,
    open: bool,
}

#[derive(Serialize)]
struct WorstView {
    at: String,
    cycle: i64,
    score: String,
    findings: Vec<FindingView>,
}

#[derive(Serialize)]
struct FindingView {
    code: String,
    severity: String,
    title: String,
    subject: Vec<(String, String)>,
    evidence: Vec<String>,
    explanation: String,
    remedies: Vec<RemedyView>,
}

#[derive(Serialize)]
struct RemedyView {
    action: String,
    sysctl: Vec<String>,
    caveat: Option<String>,
}

#[derive(Serialize)]
struct Explanation {
    code: String,
    page: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("1h", now, "--since").unwrap(), now - 3_600_000);
        assert_eq!(parse_time("30m", now, "--since").unwrap(), now - 1_800_000);
        assert_eq!(parse_time("now", now, "--until").unwrap(), now);
        assert_eq!(
            parse_time("2027-01-15T08:00:00Z", now, "--since").unwrap(),
            1_800_000_000_000
        );
        let e = parse_time("yesterday", now, "--since")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--since \"yesterday\""), "{e}");
        assert_eq!(span_words(312_000), "5m 12s");
        assert_eq!(span_words(2 * 86_400_000 + 4 * 3_600_000), "2d 4h");
    }
}
