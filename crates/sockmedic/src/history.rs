//! The history file of `sockmedic record`, read back by `sockmedic report`: an
//! embedded SQLite database (schema `sockmedic.history/v1`).
//!
//! Shape, for time-series queries: one `cycle` row per collection (the host-wide
//! figures and the number of findings by severity), one `netns_sample` row per cycle
//! per network namespace (states, TIME-WAIT against its bucket limit, ephemeral
//! ports against the range, listen-overflow counters and their rates), one
//! `process_sample` row per cycle per top process (on the cycles that scanned
//! processes). Cycle ids grow with time, and samples are keyed by
//! `(cycle_id, ...)` without a rowid, so a time range is an index range on
//! `cycle(ts_ms)` followed by primary-key range scans.
//!
//! Findings are kept as episodes (`finding`): one row per code and subject while it is
//! seen in consecutive cycles (`first_ms`, `last_ms`, `cycles`, `open`); a cycle that
//! ran the rule without seeing it closes the episode, and the next sighting opens a
//! new one. A cycle that could not run the rule (its data missing) leaves it open.
//! The full findings (evidence, remedies) of the worst cycle of each minute are kept
//! in `moment`, so that the report can show the worst moment's details.
//!
//! Durability: WAL journal, `synchronous=NORMAL`, one transaction per cycle. A
//! recorder killed at any moment (SIGKILL included) leaves a consistent file holding
//! every cycle committed before the kill; the next open rolls the WAL forward.

use anyhow::{anyhow, bail, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use sockmedic_model::{Finding, Netns, Process, Report, Severity, Subject, TcpState};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The schema's name, in `meta`.
pub const SCHEMA: &str = "sockmedic.history/v1";
/// Bumped on any change to the tables; a newer file is refused, an older one migrated.
pub const SCHEMA_VERSION: i64 = 1;
/// Where `record` writes and `report` reads when `--db` is not given.
pub const DEFAULT_DB: &str = "/var/lib/sockmedic/history.db";
/// Names (`netns`, `process`) no sample uses are deleted at most this often.
const NAMES_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// The worst cycle of each window this long keeps its full findings (`moment`).
pub const MOMENT_WINDOW_MS: i64 = 60_000;

/// The columns of `netns_sample` that count sockets per state, and their states.
pub const STATE_COLUMNS: [(&str, TcpState); 11] = [
    ("established", TcpState::Established),
    ("syn_sent", TcpState::SynSent),
    ("syn_recv", TcpState::SynRecv),
    ("fin_wait_1", TcpState::FinWait1),
    ("fin_wait_2", TcpState::FinWait2),
    ("time_wait", TcpState::TimeWait),
    ("close_wait", TcpState::CloseWait),
    ("last_ack", TcpState::LastAck),
    ("listen", TcpState::Listen),
    ("closing", TcpState::Closing),
    ("bound_inactive", TcpState::BoundInactive),
];

const DDL: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per `sockmedic record` run.
CREATE TABLE run (
    id          INTEGER PRIMARY KEY,
    started_ms  INTEGER NOT NULL,
    stopped_ms  INTEGER,              -- NULL: still running, or killed
    host        TEXT NOT NULL,
    kernel      TEXT,
    tool        TEXT NOT NULL,
    interval_ms INTEGER NOT NULL,
    procs_every INTEGER NOT NULL,     -- processes scanned every Nth cycle (0: never)
    netns       TEXT                  -- --netns, when given
);

-- One row per collection: the host-wide figures (NULL: not read).
CREATE TABLE cycle (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL,
    ts_ms           INTEGER NOT NULL, -- collection start, Unix milliseconds
    duration_ms     REAL NOT NULL,    -- collection and diagnosis
    procs           INTEGER NOT NULL, -- 1: processes scanned in this cycle
    orphans         INTEGER,          -- sockstat TCP orphan
    max_orphans     INTEGER,          -- net.ipv4.tcp_max_orphans
    alloc           INTEGER,          -- sockstat TCP alloc
    unhashed        INTEGER,          -- alloc - inuse: in no table (ss -s 'closed', done right)
    mem_pages       INTEGER,          -- sockstat TCP mem
    mem_min         INTEGER,          -- net.ipv4.tcp_mem
    mem_pressure    INTEGER,
    mem_max         INTEGER,
    page_size       INTEGER,
    file_alloc      INTEGER,          -- fs.file-nr
    file_max        INTEGER,
    conntrack_count INTEGER,          -- initial namespace
    conntrack_max   INTEGER,
    critical        INTEGER NOT NULL, -- findings by severity
    warning         INTEGER NOT NULL,
    info            INTEGER NOT NULL,
    weight          INTEGER NOT NULL  -- sum of subject.count of the most severe findings
);
CREATE INDEX cycle_ts ON cycle(ts_ms);

CREATE TABLE netns (
    id    INTEGER PRIMARY KEY,
    inode INTEGER NOT NULL,
    name  TEXT NOT NULL,              -- the first of names
    names TEXT NOT NULL,              -- JSON array
    pod   TEXT,
    host  INTEGER NOT NULL,
    UNIQUE (inode, name)
);

-- One row per cycle per network namespace.
CREATE TABLE netns_sample (
    cycle_id         INTEGER NOT NULL,
    netns_id         INTEGER NOT NULL,
    established      INTEGER,
    syn_sent         INTEGER,
    syn_recv         INTEGER,
    fin_wait_1       INTEGER,
    fin_wait_2       INTEGER,
    time_wait        INTEGER,
    close_wait       INTEGER,
    last_ack         INTEGER,
    listen           INTEGER,
    closing          INTEGER,
    bound_inactive   INTEGER,
    orphans          INTEGER,         -- dumped orphans of this namespace
    inuse            INTEGER,         -- sockstat(6) TCP inuse
    tw               INTEGER,         -- sockstat TCP tw
    max_tw_buckets   INTEGER,         -- net.ipv4.tcp_max_tw_buckets
    ports_in_use     INTEGER,         -- distinct ephemeral ports in use
    port_range       INTEGER,         -- ports in ip_local_port_range, less reserved
    port_sockets     INTEGER,         -- sockets with an ephemeral local port
    listen_overflows INTEGER,         -- TcpExt counters, since boot
    listen_drops     INTEGER,
    tw_overflow      INTEGER,         -- TCPTimeWaitOverflow
    reqq_full_drop   INTEGER,         -- TCPReqQFullDrop
    listen_overflows_rate REAL,       -- per second against the cycle before
    listen_drops_rate     REAL,
    tw_overflow_rate      REAL,
    reqq_full_drop_rate   REAL,
    listeners        INTEGER,
    accept_full      INTEGER,         -- listeners whose accept queue is full
    conntrack_count  INTEGER,
    PRIMARY KEY (cycle_id, netns_id)
) WITHOUT ROWID;

CREATE TABLE process (
    id        INTEGER PRIMARY KEY,
    pid       INTEGER NOT NULL,
    comm      TEXT NOT NULL,
    netns     INTEGER NOT NULL,       -- nsfs inode, 0 unknown
    container TEXT NOT NULL,          -- '' unknown
    pod       TEXT NOT NULL,          -- '' unknown
    UNIQUE (pid, comm, netns, container, pod)
);

-- One row per scanning cycle per top process (--top, by socket fds).
CREATE TABLE process_sample (
    cycle_id   INTEGER NOT NULL,
    process_id INTEGER NOT NULL,
    fds        INTEGER,
    fd_limit   INTEGER,
    socket_fds INTEGER,
    tcp        INTEGER,               -- TCP sockets held, every state
    established INTEGER,
    close_wait INTEGER,
    unhashed   INTEGER,
    PRIMARY KEY (cycle_id, process_id)
) WITHOUT ROWID;

-- A finding episode: one code and subject seen in consecutive cycles.
CREATE TABLE finding (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL,
    subject_key TEXT NOT NULL,        -- the subject without count and limit
    subject     TEXT NOT NULL,        -- JSON, as last seen
    severity    TEXT NOT NULL,        -- the worst seen
    title       TEXT NOT NULL,        -- as last seen
    first_ms    INTEGER NOT NULL,
    last_ms     INTEGER NOT NULL,
    first_cycle INTEGER NOT NULL,
    last_cycle  INTEGER NOT NULL,
    cycles      INTEGER NOT NULL,     -- cycles that saw it
    max_count   INTEGER,              -- largest subject.count seen
    open        INTEGER NOT NULL
);
CREATE INDEX finding_last ON finding(last_ms);
CREATE INDEX finding_open ON finding(open) WHERE open = 1;

-- The worst cycle of each minute, with its findings in full (JSON array).
CREATE TABLE moment (
    window_ms INTEGER PRIMARY KEY,
    cycle_id  INTEGER NOT NULL,
    ts_ms     INTEGER NOT NULL,
    critical  INTEGER NOT NULL,
    warning   INTEGER NOT NULL,
    info      INTEGER NOT NULL,
    weight    INTEGER NOT NULL,
    findings  TEXT NOT NULL
);
CREATE INDEX moment_ts ON moment(ts_ms);
";

/// How bad a cycle is: compared field by field, most severe first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    pub critical: i64,
    pub warning: i64,
    pub info: i64,
    /// Sum of `subject.count` of the findings of the worst severity present.
    pub weight: i64,
}

impl Score {
    pub fn of(findings: &[Finding]) -> Score {
        let n = |s: Severity| findings.iter().filter(|f| f.severity == s).count() as i64;
        let worst = findings.iter().map(|f| f.severity).max();
        let weight = findings
            .iter()
            .filter(|f| Some(f.severity) == worst)
            .map(|f| f.subject.count.unwrap_or(0).min(i64::MAX as u64) as i64)
            .sum();
        Score {
            critical: n(Severity::Critical),
            warning: n(Severity::Warning),
            info: n(Severity::Info),
            weight,
        }
    }
}

/// Opens (or creates) the file for writing, with the pragmas that make it safe to
/// kill: WAL, synchronous=NORMAL, incremental auto-vacuum (set at creation).
pub fn open_for_writing(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--db {}: creating {}", path.display(), dir.display()))?;
    }
    let conn = Connection::open(path).with_context(|| format!("--db {}", path.display()))?;
    let what = || format!("--db {}", path.display());
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .with_context(what)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| not_history(path, e))?;
    if tables == 0 {
        // auto_vacuum must be chosen before the first table exists.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
            .with_context(what)?;
        use_wal(&conn, path)?;
        let tx = conn.unchecked_transaction().with_context(what)?;
        tx.execute_batch(DDL).with_context(what)?;
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let tool = format!("sockmedic {}", env!("CARGO_PKG_VERSION"));
        for (k, v) in [
            ("schema", SCHEMA.to_string()),
            ("schema_version", SCHEMA_VERSION.to_string()),
            ("created_at", now),
            ("created_by", tool),
        ] {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .with_context(what)?;
        }
        tx.commit().with_context(what)?;
    } else {
        check_schema(&conn, path)?;
        use_wal(&conn, path)?;
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;")
        .with_context(what)?;
    Ok(conn)
}

/// Switches the file to a WAL journal (kept in the file once set): readers never block
/// the recorder, and a kill leaves the last committed cycle intact.
fn use_wal(conn: &Connection, path: &Path) -> Result<()> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .with_context(|| format!("--db {}", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!(
            "--db {}: cannot use a WAL journal (got {mode})",
            path.display()
        );
    }
    Ok(())
}

/// Opens an existing history for reading. A missing file, a file that is not a
/// SQLite database, or one that is not sockmedic's, is one line naming it.
pub fn open_for_reading(path: &Path) -> Result<Connection> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("--db {}: {e}", path.display()))?;
    if !meta.is_file() {
        bail!("--db {}: not a file", path.display());
    }
    // Read-write when allowed (a reader of a WAL file may need to create its -shm),
    // read-only otherwise; never create.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .or_else(|_| {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    })
    .map_err(|e| not_history(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| not_history(path, e))?;
    check_schema(&conn, path)?;
    Ok(conn)
}

fn not_history(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    anyhow!(
        "--db {}: not a sockmedic history database ({})",
        path.display(),
        one_line(&e.to_string())
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_schema(conn: &Connection, path: &Path) -> Result<()> {
    let get = |k: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .optional()
    };
    let schema = get("schema").map_err(|e| not_history(path, e))?;
    if schema.as_deref() != Some(SCHEMA) {
        bail!(
            "--db {}: not a sockmedic history database (meta schema {:?}, expected {SCHEMA})",
            path.display(),
            schema.unwrap_or_default()
        );
    }
    let version: i64 = get("schema_version")
        .map_err(|e| not_history(path, e))?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        bail!(
            "--db {}: written by a newer sockmedic (history schema version {version}, this one knows {SCHEMA_VERSION})",
            path.display()
        );
    }
    if version < 1 {
        bail!(
            "--db {}: damaged meta table (schema_version {version})",
            path.display()
        );
    }
    Ok(())
}

/// A process's identity in `process`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ProcKey {
    pid: u32,
    comm: String,
    netns: u64,
    container: String,
    pod: String,
}

struct OpenEpisode {
    id: i64,
    severity: Severity,
}

/// What the writer did with one cycle.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    pub cycle_id: i64,
    pub opened: usize,
    pub closed: usize,
}

/// What one pruning pass removed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pruned {
    /// Cycles older than the retention.
    pub expired: usize,
    /// Oldest cycles removed to stay under the size cap.
    pub for_size: usize,
}

/// One cycle to write.
pub struct CycleIn<'a> {
    pub ts_ms: i64,
    pub duration_ms: f64,
    pub report: &'a Report,
    /// Whether this cycle scanned processes (its `processes` are fresh).
    pub procs_scanned: bool,
    /// Process rows kept per scanning cycle.
    pub top: usize,
}

/// The recorder's side of the file.
pub struct Writer {
    conn: Connection,
    run_id: i64,
    netns_ids: HashMap<(u64, String), i64>,
    process_ids: HashMap<ProcKey, i64>,
    open: HashMap<(String, String), OpenEpisode>,
    /// The current moment window and the score of the cycle kept for it.
    moment: Option<(i64, Score)>,
    /// When unused names were last deleted.
    names_forgotten: Option<std::time::Instant>,
}

/// How a run is described in `run`.
pub struct RunInfo<'a> {
    pub host: &'a str,
    pub kernel: Option<&'a str>,
    pub interval_ms: i64,
    pub procs_every: u32,
    pub netns: Option<&'a str>,
}

impl Writer {
    /// Starts a run: the file is opened (created), episodes left open by an earlier
    /// run are closed (the time between two runs is a gap), and a `run` row added.
    pub fn start(path: &Path, info: &RunInfo) -> Result<Writer> {
        let conn = open_for_writing(path)?;
        let now = now_ms();
        let tx = conn.unchecked_transaction()?;
        tx.execute("UPDATE finding SET open = 0 WHERE open = 1", [])?;
        tx.execute(
            "INSERT INTO run(started_ms, host, kernel, tool, interval_ms, procs_every, netns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                now,
                info.host,
                info.kernel,
                format!("sockmedic {}", env!("CARGO_PKG_VERSION")),
                info.interval_ms,
                info.procs_every,
                info.netns
            ],
        )?;
        let run_id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Writer {
            conn,
            run_id,
            netns_ids: HashMap::new(),
            process_ids: HashMap::new(),
            open: HashMap::new(),
            moment: None,
            names_forgotten: None,
        })
    }

    #[cfg(test)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Writes one cycle in one transaction: nothing of it is visible (or left
    /// behind) unless all of it is.
    pub fn write(&mut self, c: &CycleIn) -> Result<Written> {
        self.conn.execute_batch("BEGIN")?;
        let r = self
            .write_in(c)
            .and_then(|w| Ok(self.conn.execute_batch("COMMIT").map(|_| w)?));
        match r {
            Ok(w) => Ok(w),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                // The in-memory state may name rows the rollback removed.
                self.netns_ids.clear();
                self.process_ids.clear();
                self.moment = None;
                self.reload_open()?;
                Err(e)
            }
        }
    }

    fn reload_open(&mut self) -> Result<()> {
        self.open.clear();
        let mut st = self
            .conn
            .prepare("SELECT id, code, subject_key, severity FROM finding WHERE open = 1")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (id, code, key, sev) = row?;
            let severity = parse_severity(&sev).unwrap_or(Severity::Info);
            self.open.insert((code, key), OpenEpisode { id, severity });
        }
        Ok(())
    }

    fn write_in(&mut self, c: &CycleIn) -> Result<Written> {
        let snap = &c.report.snapshot;
        let host = &snap.host;
        let score = Score::of(&c.report.findings);
        let initial = snap.netns.iter().find(|n| n.host);
        let tcp_mem = host.limits.tcp_mem;
        self.conn
            .prepare_cached(
                "INSERT INTO cycle(run_id, ts_ms, duration_ms, procs, orphans, max_orphans,
                    alloc, unhashed, mem_pages, mem_min, mem_pressure, mem_max, page_size,
                    file_alloc, file_max, conntrack_count, conntrack_max,
                    critical, warning, info, weight)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                    ?16, ?17, ?18, ?19, ?20, ?21)",
            )?
            .execute(params![
                self.run_id,
                c.ts_ms,
                c.duration_ms,
                c.procs_scanned,
                int(host.sockstat.tcp_orphan),
                int(host.limits.tcp_max_orphans),
                int(host.sockstat.tcp_alloc),
                int(host.closed.as_ref().map(|x| x.unhashed)),
                int(host.sockstat.tcp_mem_pages),
                int(tcp_mem.map(|m| m.min)),
                int(tcp_mem.map(|m| m.pressure)),
                int(tcp_mem.map(|m| m.max)),
                int(Some(host.page_size).filter(|p| *p > 0)),
                int(host.file_nr.map(|f| f.allocated)),
                int(host.file_nr.map(|f| f.max).or(host.limits.file_max)),
                int(initial.and_then(|n| n.conntrack_count)),
                int(host.limits.nf_conntrack_max),
                score.critical,
                score.warning,
                score.info,
                score.weight,
            ])?;
        let cycle_id = self.conn.last_insert_rowid();

        for ns in &snap.netns {
            let netns_id = self.netns_id(ns)?;
            self.write_netns(cycle_id, netns_id, ns, c.report)?;
        }
        if c.procs_scanned && c.top > 0 {
            for p in top_processes(&snap.processes, c.top) {
                let pid = self.process_id(p)?;
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO process_sample(cycle_id, process_id, fds,
                            fd_limit, socket_fds, tcp, established, close_wait, unhashed)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        cycle_id,
                        pid,
                        int(p.fds),
                        int(p.fd_limit.filter(|l| *l != u64::MAX)),
                        int(p.socket_fds),
                        int(Some(tcp_held(p))),
                        int(p.states.get(TcpState::Established)),
                        int(p.states.get(TcpState::CloseWait)),
                        int(p.unhashed),
                    ])?;
            }
        }
        let (opened, closed) = self.episodes(cycle_id, c)?;
        self.moment(cycle_id, c, score)?;
        Ok(Written {
            cycle_id,
            opened,
            closed,
        })
    }

    fn write_netns(&mut self, cycle_id: i64, netns_id: i64, ns: &Netns, r: &Report) -> Result<()> {
        let counter = |name: &str| int(ns.counter("TcpExt", name).map(|v| v.max(0) as u64));
        let rate = |name: &str| {
            r.rates
                .as_ref()
                .and_then(|rt| rt.get(ns.id, "TcpExt", name))
        };
        let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(32);
        values.push(cycle_id.into());
        values.push(netns_id.into());
        for (_, state) in STATE_COLUMNS {
            values.push(opt(int(ns.states.get(state))));
        }
        let eph = ns.ephemeral.as_ref();
        let accept_full = ns
            .listeners
            .iter()
            .filter(|l| l.accept_queue > l.backlog)
            .count() as i64;
        let more: [Option<i64>; 9] = [
            int(ns.orphans),
            int(Some(ns.sockstat.tcp_inuse_total())
                .filter(|_| ns.sockstat.tcp_inuse.is_some() || ns.sockstat.tcp6_inuse.is_some())),
            int(ns.sockstat.tcp_tw),
            int(ns.sysctl_u64("net.ipv4.tcp_max_tw_buckets")),
            int(eph.map(|e| e.ports_in_use as u64)),
            int(eph.map(|e| e.size as u64)),
            int(eph.map(|e| e.sockets)),
            counter("ListenOverflows"),
            counter("ListenDrops"),
        ];
        values.extend(more.into_iter().map(opt));
        values.push(opt(counter("TCPTimeWaitOverflow")));
        values.push(opt(counter("TCPReqQFullDrop")));
        for name in [
            "ListenOverflows",
            "ListenDrops",
            "TCPTimeWaitOverflow",
            "TCPReqQFullDrop",
        ] {
            values.push(match rate(name) {
                Some(v) => v.into(),
                None => rusqlite::types::Value::Null,
            });
        }
        values.push((ns.listeners.len() as i64).into());
        values.push(accept_full.into());
        values.push(opt(int(ns.conntrack_count)));
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO netns_sample(cycle_id, netns_id, established, syn_sent,
                    syn_recv, fin_wait_1, fin_wait_2, time_wait, close_wait, last_ack, listen,
                    closing, bound_inactive, orphans, inuse, tw, max_tw_buckets, ports_in_use,
                    port_range, port_sockets, listen_overflows, listen_drops, tw_overflow,
                    reqq_full_drop, listen_overflows_rate, listen_drops_rate, tw_overflow_rate,
                    reqq_full_drop_rate, listeners, accept_full, conntrack_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
            )?
            .execute(rusqlite::params_from_iter(values))?;
        Ok(())
    }

    fn netns_id(&mut self, ns: &Netns) -> Result<i64> {
        let key = (ns.id, ns.name().to_string());
        if let Some(id) = self.netns_ids.get(&key) {
            return Ok(*id);
        }
        let names = serde_json::to_string(&ns.names)?;
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO netns(inode, name, names, pod, host) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(inode, name) DO UPDATE SET names = excluded.names,
                    pod = excluded.pod, host = excluded.host
                 RETURNING id",
            )?
            .query_row(params![ns.id as i64, key.1, names, ns.pod, ns.host], |r| {
                r.get(0)
            })?;
        self.netns_ids.insert(key, id);
        Ok(id)
    }

    fn process_id(&mut self, p: &Process) -> Result<i64> {
        let key = ProcKey {
            pid: p.pid,
            comm: p.comm.clone(),
            netns: p.netns.unwrap_or(0),
            container: p.container.clone().unwrap_or_default(),
            pod: p.pod.clone().unwrap_or_default(),
        };
        if let Some(id) = self.process_ids.get(&key) {
            return Ok(*id);
        }
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO process(pid, comm, netns, container, pod) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(pid, comm, netns, container, pod) DO UPDATE SET pid = excluded.pid
                 RETURNING id",
            )?
            .query_row(
                params![key.pid, key.comm, key.netns as i64, key.container, key.pod],
                |r| r.get(0),
            )?;
        if self.process_ids.len() > 10_000 {
            self.process_ids.clear();
        }
        self.process_ids.insert(key, id);
        Ok(id)
    }

    /// Opens, extends and closes the finding episodes.
    fn episodes(&mut self, cycle_id: i64, c: &CycleIn) -> Result<(usize, usize)> {
        let skipped: HashSet<&str> = c.report.skipped.iter().map(|s| s.code.as_str()).collect();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut opened = 0;
        for f in &c.report.findings {
            let key = self.resolve((f.code.clone(), subject_key(&f.subject)))?;
            let subject = serde_json::to_string(&f.subject)?;
            let count = int(f.subject.count);
            match self.open.get_mut(&key) {
                Some(ep) => {
                    let worse = f.severity > ep.severity;
                    if worse {
                        ep.severity = f.severity;
                    }
                    // A second finding with the same key in one cycle counts once.
                    let again = seen.contains(&key);
                    self.conn
                        .prepare_cached(
                            "UPDATE finding SET subject = ?2, title = ?3, last_ms = ?4,
                                last_cycle = ?5, cycles = cycles + ?6,
                                max_count = max(coalesce(max_count, ?7), coalesce(?7, max_count)),
                                severity = ?8
                             WHERE id = ?1",
                        )?
                        .execute(params![
                            ep.id,
                            subject,
                            f.title,
                            c.ts_ms,
                            cycle_id,
                            if again { 0 } else { 1 },
                            count,
                            severity_name(ep.severity),
                        ])?;
                }
                None => {
                    let id: i64 = self
                        .conn
                        .prepare_cached(
                            "INSERT INTO finding(code, subject_key, subject, severity, title,
                                first_ms, last_ms, first_cycle, last_cycle, cycles, max_count, open)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?7, 1, ?8, 1)
                             RETURNING id",
                        )?
                        .query_row(
                            params![
                                key.0,
                                key.1,
                                subject,
                                severity_name(f.severity),
                                f.title,
                                c.ts_ms,
                                cycle_id,
                                count
                            ],
                            |r| r.get(0),
                        )?;
                    self.open.insert(
                        key.clone(),
                        OpenEpisode {
                            id,
                            severity: f.severity,
                        },
                    );
                    opened += 1;
                }
            }
            seen.insert(key);
        }
        // Not seen by a rule that ran: the episode ends.
        let ended: Vec<(String, String)> = self
            .open
            .keys()
            .filter(|k| !seen.contains(*k) && !skipped.contains(k.0.as_str()))
            .cloned()
            .collect();
        for k in &ended {
            if let Some(ep) = self.open.remove(k) {
                self.conn
                    .prepare_cached("UPDATE finding SET open = 0 WHERE id = ?1")?
                    .execute([ep.id])?;
            }
        }
        Ok((opened, ended.len()))
    }

    /// The open episode a finding continues. Its place (namespace, state,
    /// endpoints) must be the same; its process may only be named on one side: a
    /// process seen between two process scans is named from the next scan on, and
    /// the episode goes on under the more precise subject.
    fn resolve(&mut self, key: (String, String)) -> Result<(String, String)> {
        if self.open.contains_key(&key) {
            return Ok(key);
        }
        let (place, process) = split_key(&key.1);
        let found = self.open.keys().find(|(code, k)| {
            let (p, q) = split_key(k);
            *code == key.0 && p == place && (q.is_empty() || process.is_empty())
        });
        let Some(old) = found.cloned() else {
            return Ok(key);
        };
        if split_key(&old.1).1.is_empty() {
            // The process is known now: the episode takes the new key.
            if let Some(ep) = self.open.remove(&old) {
                self.conn
                    .prepare_cached("UPDATE finding SET subject_key = ?2 WHERE id = ?1")?
                    .execute(params![ep.id, key.1])?;
                self.open.insert(key.clone(), ep);
            }
            Ok(key)
        } else {
            Ok(old)
        }
    }

    /// Keeps the findings of the worst cycle of the current minute.
    fn moment(&mut self, cycle_id: i64, c: &CycleIn, score: Score) -> Result<()> {
        if c.report.findings.is_empty() {
            return Ok(());
        }
        let window = c.ts_ms.div_euclid(MOMENT_WINDOW_MS) * MOMENT_WINDOW_MS;
        if let Some((w, best)) = self.moment {
            if w == window && score <= best {
                return Ok(());
            }
        }
        if self.moment.is_none_or(|(w, _)| w != window) {
            // A restart within a minute: the window may already hold a worse cycle.
            let kept: Option<(i64, i64, i64, i64)> = self
                .conn
                .prepare_cached(
                    "SELECT critical, warning, info, weight FROM moment WHERE window_ms = ?1",
                )?
                .query_row([window], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            if let Some((critical, warning, info, weight)) = kept {
                let best = Score {
                    critical,
                    warning,
                    info,
                    weight,
                };
                self.moment = Some((window, best));
                if score <= best {
                    return Ok(());
                }
            }
        }
        let findings = serde_json::to_string(&c.report.findings)?;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO moment(window_ms, cycle_id, ts_ms, critical, warning,
                    info, weight, findings)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                window,
                cycle_id,
                c.ts_ms,
                score.critical,
                score.warning,
                score.info,
                score.weight,
                findings
            ])?;
        self.moment = Some((window, score));
        Ok(())
    }

    /// Deletes what is older than `retention_ms`, then, while the file is over
    /// `max_bytes`, the oldest cycles; frees the pages to the file system.
    pub fn prune(&mut self, now_ms: i64, retention_ms: i64, max_bytes: u64) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        let cutoff = now_ms.saturating_sub(retention_ms);
        let oldest: Option<i64> = self
            .conn
            .query_row("SELECT min(ts_ms) FROM cycle", [], |r| r.get(0))?;
        if oldest.is_some_and(|o| o < cutoff) {
            let last: Option<i64> = self.conn.query_row(
                "SELECT max(id) FROM cycle WHERE ts_ms < ?1",
                [cutoff],
                |r| r.get(0),
            )?;
            if let Some(last) = last {
                pruned.expired = self.delete_through(last, cutoff)?;
            }
        }
        let used = self.used_bytes()?;
        if used > max_bytes {
            // Remove the oldest share of the cycles that brings the file to 80% of the
            // cap (the samples take room in proportion to the cycles).
            let cycles: i64 = self
                .conn
                .query_row("SELECT count(*) FROM cycle", [], |r| r.get(0))?;
            let share = 1.0 - (max_bytes as f64 * 0.8) / used as f64;
            let n = ((cycles as f64 * share).ceil() as i64).clamp(1, cycles.max(1));
            let last: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM cycle ORDER BY id LIMIT 1 OFFSET ?1",
                    [n - 1],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(last) = last {
                let ts: i64 =
                    self.conn
                        .query_row("SELECT ts_ms FROM cycle WHERE id = ?1", [last], |r| {
                            r.get(0)
                        })?;
                pruned.for_size = self.delete_through(last, ts + 1)?;
            }
        }
        if pruned.expired + pruned.for_size > 0 {
            self.forget_names()?;
            // Give the free pages back, and start the WAL afresh.
            self.conn.execute_batch("PRAGMA incremental_vacuum;")?;
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(pruned)
    }

    /// Deletes the cycles up to id `last` (and their samples), the episodes that
    /// ended before `before_ms`, and the moments before it.
    fn delete_through(&mut self, last: i64, before_ms: i64) -> Result<usize> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM netns_sample WHERE cycle_id <= ?1", [last])?;
        tx.execute("DELETE FROM process_sample WHERE cycle_id <= ?1", [last])?;
        let n = tx.execute("DELETE FROM cycle WHERE id <= ?1", [last])?;
        tx.execute(
            "DELETE FROM finding WHERE open = 0 AND last_ms < ?1",
            [before_ms],
        )?;
        tx.execute("DELETE FROM moment WHERE ts_ms < ?1", [before_ms])?;
        tx.execute(
            "DELETE FROM run WHERE id < coalesce((SELECT run_id FROM cycle ORDER BY id LIMIT 1), ?1)",
            [self.run_id],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Deletes the namespaces and processes no sample refers to any more. It reads
    /// every sample (0.4 s for a week of three namespaces at 1 s), so it runs at
    /// most once an hour.
    fn forget_names(&mut self) -> Result<()> {
        if self
            .names_forgotten
            .is_some_and(|t| t.elapsed() < NAMES_EVERY)
        {
            return Ok(());
        }
        self.names_forgotten = Some(std::time::Instant::now());
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM netns WHERE id NOT IN (SELECT DISTINCT netns_id FROM netns_sample)",
            [],
        )?;
        tx.execute(
            "DELETE FROM process WHERE id NOT IN (SELECT DISTINCT process_id FROM process_sample)",
            [],
        )?;
        tx.commit()?;
        self.netns_ids.clear();
        self.process_ids.clear();
        Ok(())
    }

    /// Bytes the database takes: its pages in use, plus the WAL.
    pub fn used_bytes(&self) -> Result<u64> {
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let wal = self
            .conn
            .path()
            .and_then(|p| std::fs::metadata(format!("{p}-wal")).ok())
            .map_or(0, |m| m.len());
        Ok(((pages - free).max(0) as u64) * page_size as u64 + wal)
    }

    /// Marks the run stopped and checkpoints the WAL into the file; returns the
    /// file's size then.
    pub fn finish(self) -> Result<u64> {
        let path = self.conn.path().map(std::path::PathBuf::from);
        self.conn.execute(
            "UPDATE run SET stopped_ms = ?2 WHERE id = ?1",
            params![self.run_id, now_ms()],
        )?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(path
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len()))
    }
}

/// The processes kept per cycle: the `top` holders of socket fds.
fn top_processes(procs: &[Process], top: usize) -> Vec<&Process> {
    let mut v: Vec<&Process> = procs.iter().collect();
    v.sort_by(|a, b| {
        b.socket_fds
            .unwrap_or(0)
            .cmp(&a.socket_fds.unwrap_or(0))
            .then(b.fds.unwrap_or(0).cmp(&a.fds.unwrap_or(0)))
            .then(a.pid.cmp(&b.pid))
    });
    v.truncate(top);
    v
}

fn tcp_held(p: &Process) -> u64 {
    p.states.iter().map(|(_, n)| n).sum()
}

/// A subject without its figures (count, limit): what stays the same while one
/// problem goes on.
pub fn subject_key(s: &Subject) -> String {
    let f = |v: &Option<String>| v.clone().unwrap_or_default();
    format!(
        "netns={}|state={}|local={}|remote={}|pid={}|process={}|container={}|pod={}",
        f(&s.netns),
        f(&s.state),
        f(&s.local),
        f(&s.remote),
        s.pid.map(|p| p.to_string()).unwrap_or_default(),
        f(&s.process),
        f(&s.container),
        f(&s.pod)
    )
}

/// A subject key's place (`netns..remote`) and process part (`pid..pod`, empty
/// when no process is named).
fn split_key(k: &str) -> (&str, &str) {
    match k.find("|pid=") {
        Some(i) => {
            let proc = &k[i..];
            let empty = proc == "|pid=|process=|container=|pod=";
            (&k[..i], if empty { "" } else { proc })
        }
        None => (k, ""),
    }
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

pub fn parse_severity(s: &str) -> Option<Severity> {
    match s {
        "critical" => Some(Severity::Critical),
        "warning" => Some(Severity::Warning),
        "info" => Some(Severity::Info),
        _ => None,
    }
}

fn int(v: Option<u64>) -> Option<i64> {
    v.map(|x| x.min(i64::MAX as u64) as i64)
}

fn opt(v: Option<i64>) -> rusqlite::types::Value {
    match v {
        Some(x) => x.into(),
        None => rusqlite::types::Value::Null,
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockmedic_model::{Snapshot, StateCounts};

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sm-history-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("h.db")
    }

    fn finding(code: &str, netns: &str, sev: Severity, count: u64) -> Finding {
        Finding {
            code: code.into(),
            severity: sev,
            title: format!("{code} {count}"),
            subject: Subject {
                netns: Some(netns.into()),
                count: Some(count),
                ..Subject::default()
            },
            evidence: vec!["e".into()],
            explanation: "x".into(),
            remedy: vec![],
        }
    }

    fn report(findings: Vec<Finding>, skipped: &[&str]) -> Report {
        let mut snap = Snapshot::default();
        let mut states = StateCounts::default();
        states.set(TcpState::TimeWait, 3);
        snap.netns.push(Netns {
            id: 42,
            names: vec!["demo".into()],
            states,
            ..Netns::default()
        });
        let mut r = Report::new(snap, findings);
        r.skipped = skipped
            .iter()
            .map(|c| sockmedic_model::Skipped {
                code: c.to_string(),
                why: "no".into(),
            })
            .collect();
        r
    }

    /// One cycle of `r` at `ts_ms`, as `record` writes it without a process scan.
    fn write_at(w: &mut Writer, ts_ms: i64, r: &Report) {
        w.write(&CycleIn {
            ts_ms,
            duration_ms: 1.0,
            report: r,
            procs_scanned: false,
            top: 10,
        })
        .unwrap();
    }

    fn info() -> RunInfo<'static> {
        RunInfo {
            host: "h",
            kernel: None,
            interval_ms: 1000,
            procs_every: 1,
            netns: None,
        }
    }

    /// An episode lasts while seen in consecutive cycles; a gap closes it; a cycle
    /// that skipped the rule leaves it open; a new run closes what the last left open.
    #[test]
    fn episodes_open_extend_and_close() {
        let path = tmp("episodes");
        let mut w = Writer::start(&path, &info()).unwrap();
        let cw = |n| finding("close-wait-leak", "demo", Severity::Warning, n);
        let seq: Vec<(Vec<Finding>, Vec<&str>)> = vec![
            (vec![cw(10)], vec![]),
            (vec![cw(20)], vec![]),
            (vec![], vec!["close-wait-leak"]), // skipped: stays open
            (
                vec![
                    cw(30),
                    finding("close-wait-leak", "demo", Severity::Critical, 5),
                ],
                vec![],
            ),
            (vec![], vec![]), // gap: closes
            (vec![cw(40)], vec![]),
        ];
        for (i, (f, s)) in seq.into_iter().enumerate() {
            let r = report(f, &s);
            write_at(&mut w, 1_000_000 + i as i64 * 1000, &r);
        }
        let rows: Vec<(i64, i64, i64, i64, String, i64)> = w
            .connection()
            .prepare("SELECT first_ms, last_ms, cycles, max_count, severity, open FROM finding ORDER BY id")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            vec![
                (1_000_000, 1_003_000, 3, 30, "critical".into(), 0),
                (1_005_000, 1_005_000, 1, 40, "warning".into(), 1),
            ]
        );
        let samples: i64 = w
            .connection()
            .query_row(
                "SELECT count(*) FROM netns_sample WHERE time_wait = 3",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(samples, 6);
        drop(w);
        let w = Writer::start(&path, &info()).unwrap();
        let open: i64 = w
            .connection()
            .query_row("SELECT count(*) FROM finding WHERE open = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(open, 0, "a new run closes the episodes of the last");
    }

    /// A process named from the next scan on continues the episode; two processes
    /// at one place are two episodes.
    #[test]
    fn a_process_named_later_continues_the_episode() {
        let path = tmp("process-later");
        let mut w = Writer::start(&path, &info()).unwrap();
        let at = |pid: Option<u32>| {
            let mut f = finding("teardown-stall", "demo", Severity::Warning, 5);
            f.subject.local = Some("127.0.0.1:80".into());
            f.subject.pid = pid;
            f.subject.process = pid.map(|_| "nginx".to_string());
            f
        };
        let seq = [
            vec![at(None)],
            vec![at(Some(7))],
            vec![at(None)],
            vec![at(Some(7)), at(Some(8))],
        ];
        for (i, f) in seq.into_iter().enumerate() {
            let r = report(f, &[]);
            write_at(&mut w, 1_000_000 + i as i64 * 1000, &r);
        }
        let rows: Vec<(i64, String)> = w
            .connection()
            .prepare("SELECT cycles, subject_key FROM finding ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].0, 4);
        assert!(rows[0].1.contains("pid=7|process=nginx"), "{rows:?}");
        assert!(rows[1].1.contains("pid=8"), "{rows:?}");
    }

    /// The worst cycle of a minute keeps its findings; a lesser one does not replace it.
    #[test]
    fn moment_keeps_the_worst_cycle_of_each_minute() {
        let path = tmp("moment");
        let mut w = Writer::start(&path, &info()).unwrap();
        let base = 60_000 * 1000;
        for (i, n) in [5u64, 50, 7].into_iter().enumerate() {
            let r = report(vec![finding("x", "demo", Severity::Warning, n)], &[]);
            write_at(&mut w, base + i as i64 * 1000, &r);
        }
        let (ts, weight): (i64, i64) = w
            .connection()
            .query_row("SELECT ts_ms, weight FROM moment", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((ts, weight), (base + 1000, 50));
    }

    /// Retention removes old cycles with their samples; a non-history file is refused.
    #[test]
    fn prune_and_refuse() {
        let path = tmp("prune");
        let mut w = Writer::start(&path, &info()).unwrap();
        for i in 0..10 {
            let r = report(vec![], &[]);
            write_at(&mut w, 1_000_000 + i * 1000, &r);
        }
        let p = w.prune(1_010_000, 5_000, u64::MAX).unwrap();
        assert_eq!(p.expired, 5);
        let (n, min): (i64, i64) = w
            .connection()
            .query_row("SELECT count(*), min(ts_ms) FROM cycle", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, min), (5, 1_005_000));
        let s: i64 = w
            .connection()
            .query_row("SELECT count(*) FROM netns_sample", [], |r| r.get(0))
            .unwrap();
        assert_eq!(s, 5);

        // Over the size cap: the oldest cycles go until the file is at 80% of it.
        for i in 10..400 {
            let r = report(vec![], &[]);
            write_at(&mut w, 1_000_000 + i * 1000, &r);
        }
        let before = w.used_bytes().unwrap();
        let n_before: i64 = w
            .connection()
            .query_row("SELECT count(*) FROM cycle", [], |r| r.get(0))
            .unwrap();
        let p = w.prune(1_400_000, i64::MAX / 2, before / 2).unwrap();
        assert_eq!(p.expired, 0);
        assert!(p.for_size > 0);
        let after = w.used_bytes().unwrap();
        let (n_after, max_ts): (i64, i64) = w
            .connection()
            .query_row("SELECT count(*), max(ts_ms) FROM cycle", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(n_after, n_before - p.for_size as i64);
        assert_eq!(max_ts, 1_399_000, "the newest cycles stay");
        assert!(after < before, "{after} bytes after, {before} before");
        let page_size: u64 = w
            .connection()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let pages: u64 = w
            .connection()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        assert!(
            pages * page_size <= before,
            "the file shrank: {} bytes of pages",
            pages * page_size
        );
        w.finish().unwrap();

        let bad = path.with_file_name("bad.db");
        std::fs::write(&bad, b"this is not sqlite at all, not even close........").unwrap();
        let e = open_for_reading(&bad).unwrap_err().to_string();
        assert!(e.contains("not a sockmedic history database"), "{e}");
        assert!(!e.contains('\n'));
        let e = open_for_reading(&path.with_file_name("none.db"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.db"), "{e}");
    }
}
