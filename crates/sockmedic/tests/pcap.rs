//! `sockmedic pcap` through the binary, on sockmedic-capture's fixtures
//! (`crates/capture/tests/fixtures/`, whose README says how each was made):
//! the FIN-WAIT-1 capture gives a `teardown-stall` naming the remote endpoint, the
//! JSON `capture` section counts what tshark counts (`expected.txt`), a truncated
//! file gives a partial result with a warning, a file that is not a capture exit 3.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SOCKMEDIC: &str = env!("CARGO_BIN_EXE_sockmedic");
const EXIT_CANNOT_RUN: i32 = 3;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../capture/tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(SOCKMEDIC)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sockmedic")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// tshark's counts for a fixture: `packets tcp syn fin rst fin-rexmit`.
fn expected(name: &str) -> [u64; 6] {
    let text = std::fs::read_to_string(fixture("expected.txt")).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in expected.txt"));
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    v.try_into().unwrap()
}

fn counts(cap: &Value) -> [u64; 6] {
    [
        "packets",
        "tcp_packets",
        "syn_packets",
        "fin_packets",
        "rst_packets",
        "fin_retransmissions",
    ]
    .map(|k| {
        cap[k]
            .as_u64()
            .unwrap_or_else(|| panic!("capture.{k}: {cap}"))
    })
}

#[test]
fn fin_retransmissions_are_a_teardown_stall_naming_the_remote() {
    let f = fixture("fin-retrans.pcap");
    let out = run(&["pcap", f.to_str().unwrap(), "--json"]);
    let r = json(&out);
    assert_eq!(r["source"]["kind"], "capture");
    let stall: Vec<&Value> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "teardown-stall")
        .collect();
    assert_eq!(stall.len(), 1, "{:#}", r["findings"]);
    let s = stall[0];
    assert_eq!(s["subject"]["remote"], "127.0.0.1:8300");
    assert_eq!(s["subject"]["count"], 1);
    assert!(s["subject"]["local"].is_null());
    assert_eq!(s["subject"]["state"], "FIN-WAIT-1");
    let evidence = s["evidence"].to_string();
    assert!(evidence.contains("5 FIN retransmissions"), "{evidence}");
    assert!(evidence.contains("3.3 s"), "{evidence}");
    // The exit code follows the worst finding, as `check`'s does.
    let worst = if s["severity"] == "critical" { 2 } else { 1 };
    assert_eq!(out.status.code(), Some(worst));

    let cap = &r["capture"];
    assert_eq!(counts(cap), expected("fin-retrans.pcap"));
    assert_eq!(cap["top_stalled"][0]["endpoint"], "127.0.0.1:8300");
    assert_eq!(cap["top_stalled"][0]["fin_retransmissions"], 5);
    let wait = cap["top_stalled"][0]["max_fin_wait_ms"].as_u64().unwrap();
    assert!((3000..4000).contains(&wait), "{wait}");

    // The text names it too, with the timeline.
    let out = run(&["pcap", f.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("teardown-stall"), "{text}");
    assert!(text.contains("127.0.0.1:8300"), "{text}");
    assert!(text.contains("Slowest teardowns"), "{text}");
}

#[test]
fn json_counts_equal_tsharks() {
    for name in [
        "lo.pcap",
        "lo.pcapng",
        "lo.pcapng.gz",
        "any-sll2-nano.pcap",
        "two-interfaces.pcapng",
    ] {
        let out = run(&["pcap", fixture(name).to_str().unwrap(), "--json"]);
        let r = json(&out);
        assert_eq!(counts(&r["capture"]), expected(name), "{name}");
        assert!(r["capture"]["connections"].as_u64().unwrap() > 0, "{name}");
        assert!(r["host"].is_object());
    }
    // lo.pcap: clean closes, one SO_LINGER reset, one refused connection.
    let r = json(&run(&[
        "pcap",
        fixture("lo.pcap").to_str().unwrap(),
        "--json",
    ]));
    assert!(r["capture"]["top_stalled"].as_array().unwrap().is_empty());
    assert!(r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["code"] != "teardown-stall"));
}

#[test]
fn standard_input_and_filter() {
    let bytes = std::fs::read(fixture("lo.pcap")).unwrap();
    let mut child = Command::new(SOCKMEDIC)
        .args(["pcap", "-", "--json", "--filter", "port:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r = json(&out);
    assert_eq!(r["capture"]["packets"], 0, "nothing on port 1");

    let out = run(&["pcap", "-", "--filter", "nonsense"]);
    assert_eq!(out.status.code(), Some(EXIT_CANNOT_RUN));
}

#[test]
fn truncated_file_is_a_partial_result_with_a_warning() {
    let bytes = std::fs::read(fixture("lo.pcap")).unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let cut = dir.join(format!("pcap-truncated-{}.pcap", std::process::id()));
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).unwrap();
    let out = run(&["pcap", cut.to_str().unwrap(), "--json"]);
    let _ = std::fs::remove_file(&cut);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning"), "{stderr}");
    assert_ne!(out.status.code(), Some(EXIT_CANNOT_RUN), "{stderr}");
    let r = json(&out);
    let packets = r["capture"]["packets"].as_u64().unwrap();
    assert!(packets > 0 && packets < 60, "{packets}");
    assert!(!r["missing"].as_array().unwrap().is_empty());
}

#[test]
fn not_a_capture_is_one_line_and_exit_3() {
    for path in [
        fixture("README.md"),
        PathBuf::from("/nonexistent/capture.pcap"),
    ] {
        let out = run(&["pcap", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(EXIT_CANNOT_RUN), "{path:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// `--threshold` and `--config` apply to `pcap` as to `check`: the capture's
/// thresholds are the catalog's `capture.*` ones.
#[test]
fn thresholds_and_config_apply_to_pcap() {
    let f = fixture("fin-retrans.pcap");
    let f = f.to_str().unwrap();
    let stall = |out: &Output| {
        let r = json(out);
        let s = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["code"] == "teardown-stall")
            .map(|x| x["severity"].as_str().unwrap().to_string());
        (s, out.status.code())
    };
    let out = run(&[
        "pcap",
        f,
        "--json",
        "--threshold",
        "capture.fin-wait-critical-ms=100",
    ]);
    assert_eq!(stall(&out), (Some("critical".into()), Some(2)));

    let dir = std::env::temp_dir().join(format!("sockmedic-pcap-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        "[thresholds]\n\"capture.fin-wait-critical-ms\" = 100\n",
    )
    .unwrap();
    let out = run(&["pcap", f, "--json", "--config", cfg.to_str().unwrap()]);
    assert_eq!(stall(&out), (Some("critical".into()), Some(2)));
    // --threshold overrides the file.
    let out = run(&[
        "pcap",
        f,
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--threshold",
        "capture.fin-wait-critical-ms=60000",
    ]);
    assert_eq!(stall(&out), (Some("warning".into()), Some(1)));
    std::fs::remove_dir_all(&dir).ok();

    let out = run(&["pcap", f, "--threshold", "nope=1"]);
    assert_eq!(out.status.code(), Some(EXIT_CANNOT_RUN));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// The text report: the packet shares, the finding, and the slowest close as a
/// timeline with the five retransmissions of the client's FIN folded into one line.
#[test]
fn text_shows_the_stalled_close_as_a_timeline() {
    let out = run(&["pcap", fixture("fin-retrans.pcap").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a warning");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "FIN retransmitted            5   19.2%",
        "WARNING teardown-stall  closes with 127.0.0.1:8300 stall: 5 FIN retransmissions",
        "client 127.0.0.1:40300   FIN retransmitted ×5",
        "server 127.0.0.1:8300    ACK of the client's FIN",
        "Server endpoints (the side that got the SYN), by FIN retransmissions",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

/// Global flags that mean nothing for a capture are refused, not ignored.
#[test]
fn from_and_netns_do_not_apply_to_pcap() {
    let file = fixture("lo.pcap");
    for extra in [["--from", "/tmp"], ["--netns", "self"]] {
        let out = run(&["pcap", file.to_str().unwrap(), extra[0], extra[1]]);
        assert_eq!(out.status.code(), Some(EXIT_CANNOT_RUN), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("does not apply to pcap"), "{stderr}");
    }
}
