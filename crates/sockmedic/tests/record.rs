//! `sockmedic record` and `sockmedic report` against the kernel: a recorder over a
//! namespace where an incident is reproduced (support/incidents.py), the HTML report
//! of that recording (its charts and the finding), the report rendered in headless
//! Chromium, the history after SIGKILLs in the middle of writing, retention, and the
//! refusals (exit 3, one line).

mod common;

use common::*;
use rusqlite::Connection;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `sockmedic record`, killed on drop (even when the test panics).
struct Recorder {
    child: Option<Child>,
    args: Vec<String>,
}

impl Recorder {
    fn start(args: &[&str]) -> Recorder {
        let mut full = vec!["record"];
        full.extend_from_slice(args);
        let child = Command::new(SOCKMEDIC)
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockmedic record");
        Recorder {
            child: Some(child),
            args: full.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Panics with its stderr if the recorder has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            let out = self.child.take().unwrap().wait_with_output().unwrap();
            panic!(
                "sockmedic {} exited early ({status})\n--- stderr\n{}",
                self.args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// SIGTERM, then its exit status, stdout and stderr.
    fn terminate(mut self) -> (Option<i32>, String, String) {
        let child = self.child.take().unwrap();
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = wait_output(child, Duration::from_secs(20));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// SIGKILL, and wait for it to be gone.
    fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "killed by SIGKILL"
        );
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for a child's exit with a deadline (then kills it and panics).
fn wait_output(mut child: Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "sockmedic record did not stop within {limit:?} of SIGTERM\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A second connection to the history, as a reader while the recorder writes.
fn reader(db: &Path) -> Connection {
    let c = Connection::open(db).unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn cycles(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM cycle", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Waits until the history holds at least `n` cycles.
fn wait_cycles(db: &Path, n: i64, rec: &mut Recorder, secs: u64) -> i64 {
    wait_for(&format!("{n} cycles in {}", db.display()), secs, || {
        rec.assert_running();
        if !db.exists() {
            return (None, -1);
        }
        let got = cycles(&reader(db));
        ((got >= n).then_some(got), got)
    })
}

/// Samples whose cycle is not in the file: each cycle and its samples are written in
/// one transaction, and deleted together.
fn samples_without_their_cycle(c: &Connection) -> i64 {
    c.query_row(
        "SELECT count(*) FROM netns_sample WHERE cycle_id NOT IN (SELECT id FROM cycle)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn integrity(c: &Connection) -> String {
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The TIME-WAIT incident of incidents.rs: a tiny bucket limit, connections closing
/// all the time (timewait-pressure, critical, in a few seconds).
fn timewait_incident(ns: &mut TestNetns, port: &str) {
    ns.set_sysctl("net.ipv4.tcp_max_tw_buckets", "32");
    incident(ns, &["churn", "--port", port, "--every", "0.005"]);
    wait_for("TIME-WAIT at the bucket limit", 20, || {
        let n = ns.ss_tan().count("TIME-WAIT");
        ((n >= 31).then_some(()), n)
    });
}

/// Records the incident for a few seconds at 200 ms, then the report: the charts,
/// the finding (code and subject), the episode's times, the worst moment.
#[test]
fn record_then_report_over_a_timewait_incident() {
    let mut ns = TestNetns::new("rec-timewait");
    let _unblock = Unblock::new(&ns);
    timewait_incident(&mut ns, "8105");
    let dir = TempDir::new("timewait");
    let db = dir.join("history.db");
    let started = Instant::now();
    let mut rec = Recorder::start(&["--netns", &ns.name, "--db", s(&db), "--interval", "200ms"]);
    wait_cycles(&db, 12, &mut rec, 60);
    let (code, stdout, stderr) = rec.terminate();
    assert_eq!(code, Some(0), "record on SIGTERM\n{stderr}");
    assert!(
        stdout.is_empty(),
        "record printed on stdout without -v: {stdout}"
    );
    assert!(
        stderr.starts_with("sockmedic record: every 200ms into "),
        "start line: {stderr}"
    );
    assert!(stderr.contains("stopped after"), "stop line: {stderr}");
    let elapsed = started.elapsed();

    // The rows: the namespace's TIME-WAIT against its limit, the episode.
    let c = reader(&db);
    assert_eq!(integrity(&c), "ok");
    let n = cycles(&c);
    assert!(n >= 12, "{n} cycles");
    assert!(
        (n as f64) <= elapsed.as_secs_f64() / 0.2 + 2.0,
        "{n} cycles in {elapsed:?} at 200 ms"
    );
    let (rows, tw_max, limit): (i64, i64, i64) = c
        .query_row(
            "SELECT count(*), max(s.time_wait), min(s.max_tw_buckets) FROM netns_sample s
             JOIN netns n ON n.id = s.netns_id WHERE n.name = ?1 AND n.inode = ?2",
            rusqlite::params![ns.name, ns.inode() as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows, n, "one netns_sample row per cycle for the namespace");
    assert!((31..=40).contains(&tw_max), "TIME-WAIT peak {tw_max}");
    assert_eq!(limit, 32);
    let (code_seen, cycles_seen, first, last): (String, i64, i64, i64) = c
        .query_row(
            "SELECT code, cycles, first_ms, last_ms FROM finding
             WHERE code = 'timewait-pressure' AND json_extract(subject, '$.netns') = ?1
               AND json_extract(subject, '$.remote') IS NULL",
            [&ns.name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap_or_else(|e| panic!("no timewait-pressure episode for {}: {e}", ns.name));
    assert_eq!(code_seen, "timewait-pressure");
    assert!(cycles_seen >= 10, "the episode lasted {cycles_seen} cycles");
    assert!(last - first >= 1800, "first {first} last {last}");
    drop(c);

    // The report.
    let html = dir.join("report.html");
    let run = sockmedic(&["report", "--db", s(&db), "-o", s(&html)]);
    run.assert_no_panic();
    assert_eq!(run.output.status.code(), Some(0), "{}", run.describe());
    let line = run.stdout();
    assert!(
        line.starts_with("sockmedic report: wrote ") && line.lines().count() == 1,
        "summary line: {line}"
    );
    assert!(line.contains(&format!("{n} cycles")), "{line}");
    assert!(line.contains("worst moment"), "{line}");
    let page = std::fs::read_to_string(&html).unwrap();
    for id in [
        "chart-orphans",
        "chart-orphan-share",
        "chart-tcp-mem",
        "chart-timewait",
        "chart-ports",
        "chart-listen-overflows",
        &format!("chart-states-{}", ns.inode()),
    ] {
        let at = page
            .find(&format!("<figure id=\"{id}\""))
            .unwrap_or_else(|| panic!("no chart {id} in the report"));
        let fig = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert!(fig.contains("<svg "), "chart {id} has no svg");
        assert!(
            fig.contains("<polyline") || fig.contains("<path"),
            "chart {id} draws no line"
        );
    }
    let fig = |id: &str| -> &str {
        let at = page.find(&format!("<figure id=\"{id}\"")).unwrap();
        &page[at..at + page[at..].find("</figure>").unwrap()]
    };
    // The series by their legend labels.
    assert!(has_text(fig("chart-orphans"), "orphans"));
    assert!(fig("chart-orphans").contains("tcp_max_orphans"));
    assert!(has_text(
        fig("chart-timewait"),
        &format!("{} TIME-WAIT", ns.name)
    ));
    assert!(has_text(
        fig("chart-timewait"),
        &format!("tcp_max_tw_buckets ({})", ns.name)
    ));
    let states = fig(&format!("chart-states-{}", ns.inode()));
    for state in ["TIME-WAIT", "LISTEN"] {
        assert!(has_text(states, state), "{state} in the states chart");
    }
    assert!(has_text(fig("chart-tcp-mem"), "mem (pages)"));
    // The finding, in the timeline, the episode table and the worst moment.
    let findings = &page[page.find("<section id=\"findings\">").unwrap()
        ..page.find("<section id=\"worst\">").unwrap()];
    assert!(
        findings.contains("timewait-pressure"),
        "no timewait-pressure in the findings section"
    );
    assert!(findings.contains(&format!("netns {}", ns.name)), "subject");
    assert!(
        findings.contains("class=\"bar critical\""),
        "a critical bar in the timeline"
    );
    let worst = &page
        [page.find("<section id=\"worst\">").unwrap()..page.find("<section id=\"host\">").unwrap()];
    assert!(
        worst.contains("<code>timewait-pressure</code>"),
        "worst moment:\n{worst}"
    );
    assert!(worst.contains(&ns.name));
    assert!(worst.contains("Evidence") && worst.contains("Remedy"));
    assert!(
        page.contains("id=\"explain-timewait-pressure\""),
        "the explain page"
    );
    // Self-contained: no script, no stylesheet or image fetched.
    for bad in ["<script", "<link", "src=", "url(", "@import"] {
        assert!(!page.contains(bad), "the report holds {bad:?}");
    }

    // --json: the summary with the episode and the worst moment.
    let run = sockmedic(&["report", "--db", s(&db), "-o", s(&html), "--json"]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.describe());
    let j = run
        .json
        .clone()
        .unwrap_or_else(|| panic!("no JSON\n{}", run.describe()));
    assert_eq!(j["schema"], "sockmedic.history-report/v1");
    assert_eq!(j["cycles"].as_i64(), Some(n));
    let ep: Vec<&Value> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "timewait-pressure" && f["subject"]["netns"] == ns.name.as_str())
        .collect();
    assert!(!ep.is_empty(), "{j}");
    assert_eq!(ep[0]["severity"], "critical");
    assert!(ep[0]["first_seen"].as_str() <= ep[0]["last_seen"].as_str());
    let worst = j["worst"]["findings"].as_array().expect("worst.findings");
    assert!(
        worst
            .iter()
            .any(|f| f["code"] == "timewait-pressure" && f["subject"]["limit"] == 32),
        "{}",
        j["worst"]
    );
    // --since after the last cycle: nothing to report, exit 3 with one line.
    let run = sockmedic(&[
        "report",
        "--db",
        s(&db),
        "-o",
        s(&html),
        "--since",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.describe());
    assert!(
        run.stderr().contains("no cycle between"),
        "{}",
        run.describe()
    );
}

/// The report of a recording opens in headless Chromium with no error: no script
/// error, no failed load (nothing is fetched), every chart parsed as SVG.
#[test]
fn report_renders_in_headless_chromium() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("headless Chromium is needed: install Debian's chromium (scripts/install-deps)");
    let mut ns = TestNetns::new("rec-chromium");
    let _unblock = Unblock::new(&ns);
    timewait_incident(&mut ns, "8106");
    let dir = TempDir::new("chromium");
    let db = dir.join("history.db");
    let mut rec = Recorder::start(&["--netns", &ns.name, "--db", s(&db), "--interval", "200ms"]);
    wait_cycles(&db, 8, &mut rec, 60);
    let (code, _, stderr) = rec.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let html = dir.join("report.html");
    let run = sockmedic(&["report", "--db", s(&db), "-o", s(&html)]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.describe());
    let page = std::fs::read_to_string(&html).unwrap();
    let charts = page.matches("<figure id=\"chart-").count();
    assert!(charts >= 7, "{charts} charts");

    // A copy with a catcher first in <head>: script errors, console errors and failed
    // loads (capture phase) are written into the DOM once the page has loaded.
    let catcher = r#"<script>window.__errs=[];
window.addEventListener('error',function(e){window.__errs.push('error: '+(e.message||((e.target&&(e.target.src||e.target.href))||e.type)));},true);
window.addEventListener('unhandledrejection',function(e){window.__errs.push('rejection: '+e.reason);});
(function(){var ce=console.error;console.error=function(){window.__errs.push('console: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};})();
window.addEventListener('load',function(){var svgs=document.querySelectorAll('figure svg');var ok=0;for(var i=0;i<svgs.length;i++){var b=svgs[i].getBBox();if(b.width>0&&b.height>0)ok++;}
var p=document.createElement('pre');p.id='__check';p.textContent=JSON.stringify({errors:window.__errs,svgs:svgs.length,drawn:ok,figures:document.querySelectorAll('figure.chart').length});document.body.appendChild(p);});
</script>"#;
    assert!(page.contains("<head>\n"));
    let probe = dir.join("probe.html");
    std::fs::write(
        &probe,
        page.replacen("<head>\n", &format!("<head>\n{catcher}\n"), 1),
    )
    .unwrap();
    let profile = dir.join("chromium-profile");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("file://{}", probe.display()),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chromium failed: {}\n{err}",
        out.status
    );
    let at = dom.find("<pre id=\"__check\">").unwrap_or_else(|| {
        panic!(
            "the page did not finish loading in chromium\n--- stderr\n{err}\n--- dom (start)\n{}",
            &dom[..dom.len().min(2000)]
        )
    });
    let json = &dom[at + "<pre id=\"__check\">".len()..];
    let json = &json[..json.find("</pre>").unwrap()];
    let check: Value = serde_json::from_str(&json.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(
        check["errors"],
        serde_json::json!([]),
        "errors in chromium: {check}\n{err}"
    );
    assert_eq!(check["figures"].as_u64(), Some(charts as u64), "{check}");
    assert_eq!(check["svgs"].as_u64(), Some(charts as u64), "{check}");
    assert_eq!(
        check["drawn"].as_u64(),
        Some(charts as u64),
        "every chart has a size: {check}"
    );
    // Chromium's own log: no uncaught error, no console error, no failed request.
    for bad in ["Uncaught", "CONSOLE", "net::ERR_"] {
        assert!(!err.contains(bad), "chromium logged {bad:?}:\n{err}");
    }
}

/// SIGKILL while cycles are being written, several times over the same file: each
/// time the file is intact, holds every cycle seen committed before the kill, and the
/// next recorder appends to it.
#[test]
fn sigkill_mid_write_leaves_an_intact_history() {
    let ns = TestNetns::new("rec-sigkill");
    let dir = TempDir::new("sigkill");
    let db = dir.join("history.db");
    let mut seen_total = 0;
    for round in 0..5u64 {
        // 10 ms: the recorder is in a transaction much of the time.
        let mut rec = Recorder::start(&[
            "--netns",
            &ns.name,
            "--db",
            s(&db),
            "--interval",
            "10ms",
            "--procs-every",
            "3",
        ]);
        wait_cycles(&db, seen_total + 20, &mut rec, 60);
        let pid = rec.pid();
        let r = reader(&db);
        let before = cycles(&r);
        drop(r);
        // Let it write on for a moment that differs per round, then kill.
        std::thread::sleep(Duration::from_millis(3 + 17 * round));
        rec.kill();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err()
        );

        let c = reader(&db);
        assert_eq!(integrity(&c), "ok", "round {round}: integrity_check");
        let after = cycles(&c);
        assert!(
            after >= before,
            "round {round}: {after} cycles after the kill, {before} seen committed before it"
        );
        assert!(after > seen_total, "round {round}: the recorder appended");
        // Every sample belongs to a cycle that was committed with it, and the runs
        // are all there.
        let dangling = samples_without_their_cycle(&c);
        assert_eq!(dangling, 0, "round {round}: samples without their cycle");
        let per_cycle: i64 = c
            .query_row(
                "SELECT count(*) FROM cycle WHERE id NOT IN (SELECT cycle_id FROM netns_sample)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            per_cycle, 0,
            "round {round}: a cycle without its namespace row"
        );
        let runs: i64 = c
            .query_row("SELECT count(DISTINCT run_id) FROM cycle", [], |r| r.get(0))
            .unwrap();
        assert_eq!(runs as u64, round + 1, "round {round}: runs");
        seen_total = after;
    }
    // A last recorder stops cleanly; the report reads everything.
    let mut rec = Recorder::start(&["--netns", &ns.name, "--db", s(&db), "--interval", "50ms"]);
    wait_cycles(&db, seen_total + 5, &mut rec, 60);
    let (code, _, stderr) = rec.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let c = reader(&db);
    assert_eq!(integrity(&c), "ok");
    let total = cycles(&c);
    assert!(total >= seen_total + 5);
    let html = dir.join("r.html");
    let run = sockmedic(&["report", "--db", s(&db), "-o", s(&html), "--json"]);
    assert_eq!(run.output.status.code(), Some(0), "{}", run.describe());
    let j = run.json.unwrap();
    assert_eq!(j["cycles"].as_i64(), Some(total));
    assert_eq!(j["runs"].as_i64(), Some(6));
}

/// --retention: rows older than it are deleted while recording.
#[test]
fn retention_deletes_old_rows() {
    let ns = TestNetns::new("rec-retention");
    let dir = TempDir::new("retention");
    let db = dir.join("history.db");
    let mut rec = Recorder::start(&[
        "--netns",
        &ns.name,
        "--db",
        s(&db),
        "--interval",
        "100ms",
        "--retention",
        "2s",
    ]);
    // Long enough that the first cycles are well past the retention.
    wait_cycles(&db, 5, &mut rec, 60);
    std::thread::sleep(Duration::from_secs(5));
    rec.assert_running();
    let c = reader(&db);
    let (n, oldest, newest, max_id): (i64, i64, i64, i64) = c
        .query_row(
            "SELECT count(*), min(ts_ms), max(ts_ms), max(id) FROM cycle",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    drop(c);
    let (code, _, stderr) = rec.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    // Pruning runs every retention/10 (200 ms), after a cycle: allow a second more.
    assert!(
        newest - oldest <= 3000,
        "the oldest row is {} ms older than the newest, retention 2 s",
        newest - oldest
    );
    assert!(
        max_id > n + 10,
        "{max_id} cycles written, {n} kept: old ones were deleted"
    );
    let c = reader(&db);
    let orphans = samples_without_their_cycle(&c);
    assert_eq!(orphans, 0, "samples of deleted cycles were deleted too");
    assert_eq!(integrity(&c), "ok");
}

/// A missing, foreign or corrupt file is one line on stderr and exit 3; so are bad
/// record arguments and an unknown namespace (before the file is created).
#[test]
fn refusals_are_one_line_and_exit_3() {
    require_root();
    let dir = TempDir::new("refusals");
    let out = dir.join("r.html");
    let garbage = dir.join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let foreign = dir.join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let truncated = dir.join("truncated.db");
    {
        // A real history cut in half.
        let ns = TestNetns::new("rec-refusals");
        let full = dir.join("full.db");
        let mut rec =
            Recorder::start(&["--netns", &ns.name, "--db", s(&full), "--interval", "20ms"]);
        wait_cycles(&full, 30, &mut rec, 60);
        let (code, _, _) = rec.terminate();
        assert_eq!(code, Some(0));
        let bytes = std::fs::read(&full).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    }
    let missing = dir.join("missing.db");
    for (db, want) in [
        (&missing, "missing.db"),
        (&garbage, "not a sockmedic history database"),
        (&foreign, "not a sockmedic history database"),
        (&truncated, "truncated.db"),
    ] {
        let run = sockmedic(&["report", "--db", s(db), "-o", s(&out)]);
        run.assert_no_panic();
        assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
        let err = run.stderr();
        assert_eq!(err.lines().count(), 1, "{}", run.describe());
        assert!(err.contains(want), "{}", run.describe());
    }
    assert!(!missing.exists(), "report created the missing file");
    assert!(!out.exists(), "no report written");

    let db = dir.join("new.db");
    for args in [
        vec!["--interval", "0"],
        vec!["--interval", "soon"],
        vec!["--max-size", "10K"],
        vec!["--retention", "0s"],
        vec!["--procs-every", "0"],
        vec!["--netns", "sm-no-such-namespace"],
        vec!["--threshold", "nope=1"],
    ] {
        let mut full = vec!["record", "--db", s(&db)];
        full.extend_from_slice(&args);
        let run = sockmedic(&full);
        run.assert_no_panic();
        assert_eq!(run.output.status.code(), Some(3), "{}", run.describe());
        assert!(!db.exists(), "{args:?} created the file");
    }
}

/// Whether an SVG text element holds `text` (plotters puts it on a line of its own).
fn has_text(svg: &str, text: &str) -> bool {
    let esc = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    svg.contains(&format!(">{esc}<")) || svg.contains(&format!(">\n{esc}\n<"))
}
