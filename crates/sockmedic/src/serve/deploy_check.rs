//! Tests of `deploy/`: the alert rules and the dashboard use only metrics and labels
//! the exporter defines ([`super::metrics::METRICS`]), promtool accepts the rules and
//! their unit tests, the Kubernetes YAML parses and grants exactly the capabilities
//! deploy/README.md lists, and every command line in deploy/ is one `sockmedic`
//! accepts.

use super::metrics::{all_names, Scope, METRICS, NETNS_LABELS, NETSTAT, PROCESS_LABELS};
use clap::Parser;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn deploy(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// Labels Prometheus adds to every series of a target (`node`: the ServiceMonitor's
/// relabeling).
const TARGET_LABELS: [&str; 3] = ["instance", "job", "node"];

/// The labels a family's series carry, target labels included.
fn labels_of(name: &str) -> Option<BTreeSet<&'static str>> {
    let mut l: BTreeSet<&'static str> = TARGET_LABELS.into_iter().collect();
    if let Some(m) = METRICS.iter().find(|m| m.name == name) {
        match m.scope {
            Scope::Netns => l.extend(NETNS_LABELS),
            Scope::Process => l.extend(PROCESS_LABELS),
            Scope::Host | Scope::Own => {}
        }
        l.extend(m.labels.iter().copied());
        return Some(l);
    }
    if NETSTAT
        .iter()
        .any(|(s, c, _)| super::metrics::netstat_name(s, c) == name)
    {
        l.extend(NETNS_LABELS);
        return Some(l);
    }
    None
}

/// Every label name any family has.
fn any_label() -> BTreeSet<&'static str> {
    let mut all: BTreeSet<&'static str> = TARGET_LABELS.into_iter().collect();
    all.extend(NETNS_LABELS);
    all.extend(PROCESS_LABELS);
    for m in METRICS {
        all.extend(m.labels.iter().copied());
    }
    all
}

/// The problems of one PromQL expression: unknown metric names, label names a
/// selector uses that the metric does not have, grouping labels no metric has.
fn check_expr(expr: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let names: BTreeSet<String> = all_names().into_iter().collect();
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    let mut used = 0;
    while let Some(off) = expr[i..].find("sockmedic_") {
        let start = i + off;
        let mut end = start;
        while end < b.len() && ident(b[end]) {
            end += 1;
        }
        i = end;
        if start > 0 && ident(b[start - 1]) {
            continue;
        }
        let name = &expr[start..end];
        used += 1;
        if !names.contains(name) {
            errs.push(format!("unknown metric {name}"));
            continue;
        }
        let labels = labels_of(name).unwrap();
        let rest = expr[end..].trim_start();
        if let Some(sel) = rest.strip_prefix('{') {
            let sel = &sel[..sel.find('}').unwrap_or(sel.len())];
            for m in sel.split(',').filter(|m| !m.trim().is_empty()) {
                let key = m.split(['=', '!', '~']).next().unwrap_or("").trim();
                if !labels.contains(key) {
                    errs.push(format!("{name} has no label {key:?}"));
                }
            }
        }
    }
    if used == 0 {
        errs.push("uses no sockmedic metric".into());
    }
    // by (...), without (...), on (...), ignoring (...), group_left (...)
    let all = any_label();
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut j = 0;
        while let Some(off) = expr[j..].find(kw) {
            let at = j + off;
            j = at + kw.len();
            if at > 0 && ident(b[at - 1]) || j < b.len() && ident(b[j]) {
                continue;
            }
            let after = expr[j..].trim_start();
            let Some(inner) = after.strip_prefix('(') else {
                continue;
            };
            let inner = &inner[..inner.find(')').unwrap_or(0)];
            for l in inner.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                if !all.contains(l) {
                    errs.push(format!("{kw}({l}): no sockmedic metric has label {l:?}"));
                }
            }
        }
    }
    errs
}

/// Runs promtool, or says why not: skipped outside CI when it is not installed
/// (scripts/install-deps installs Debian's `prometheus`), a failure in CI.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).output() {
        Ok(o) => Some(o),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not found ({e}): scripts/install-deps installs it; skipped");
            None
        }
        Err(e) => panic!("promtool not found ({e}); CI must have it: scripts/install-deps"),
    }
}

fn assert_promtool_ok(args: &[&str]) {
    if let Some(o) = promtool(args) {
        assert!(
            o.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn alert_rules_load_in_promtool_and_fire_in_its_unit_tests() {
    let rules = deploy("prometheus/alerts.yml");
    assert_promtool_ok(&["check", "rules", rules.to_str().unwrap()]);
    let tests = deploy("prometheus/alerts_test.yml");
    assert_promtool_ok(&["test", "rules", tests.to_str().unwrap()]);
}

#[test]
fn alert_rules_use_only_exported_metrics_and_labels() {
    let doc: serde_yaml::Value = serde_yaml::from_str(&read("prometheus/alerts.yml")).unwrap();
    let groups = doc["groups"].as_sequence().expect("groups");
    let mut alerts = BTreeSet::new();
    let mut errs = Vec::new();
    let all = any_label();
    for g in groups {
        for r in g["rules"].as_sequence().expect("rules") {
            let name = r["alert"]
                .as_str()
                .expect("every rule is an alert")
                .to_string();
            assert!(alerts.insert(name.clone()), "{name} twice");
            let expr = r["expr"].as_str().expect("expr");
            errs.extend(check_expr(expr).into_iter().map(|e| format!("{name}: {e}")));
            let sev = r["labels"]["severity"].as_str();
            assert!(
                matches!(sev, Some("warning") | Some("critical")),
                "{name}: severity {sev:?}"
            );
            for a in ["summary", "description"] {
                let text = r["annotations"][a].as_str().unwrap_or("");
                assert!(!text.is_empty(), "{name}: no {a}");
                for part in text.split("$labels.").skip(1) {
                    let l: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !all.contains(l.as_str()) {
                        errs.push(format!("{name}: {a} uses $labels.{l}"));
                    }
                }
            }
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
    // The ratios the issue asks for, each with an alert.
    for needed in [
        "sockmedic_tcp_orphan_limit_penalized",
        "sockmedic_tcp_mem_limit_pages",
        "sockmedic_process_fd_limit",
        "sockmedic_netstat_TcpExt_ListenOverflows_total",
        "sockmedic_ephemeral_port_range_size",
        "sockmedic_netstat_TcpExt_TCPTimeWaitOverflow_total",
        "sockmedic_finding{severity=\"critical\"}",
    ] {
        assert!(
            read("prometheus/alerts.yml").contains(needed),
            "no alert on {needed}"
        );
    }
}

#[test]
fn dashboard_is_valid_json_whose_queries_use_exported_metrics() {
    let d: serde_json::Value =
        serde_json::from_str(&read("grafana/sockmedic.json")).expect("the dashboard is JSON");
    assert_eq!(d["uid"], "sockmedic");
    let vars: BTreeSet<String> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    let mut errs = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = t["expr"].as_str().expect("a target has an expr");
            errs.extend(check_expr(e).into_iter().map(|x| format!("{title}: {x}")));
            exprs.push(e.to_string());
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            errs.extend(check_expr(q).into_iter().map(|x| format!("variable: {x}")));
        }
    }
    assert!(exprs.len() > 10, "the dashboard has queries");
    // Every variable used is defined.
    for e in &exprs {
        for part in e.split('$').skip(1) {
            let v: String = part
                .trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !vars.contains(&v) {
                errs.push(format!("undefined variable ${v} in {e}"));
            }
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
    // Their PromQL syntax: as recording rules, through promtool.
    let dir = std::env::temp_dir().join(format!("sm-dash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dashboard-rules.yml");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let plain = e.replace("$instance", ".*").replace("$netns", ".*");
        rules.push_str(&format!(
            "      - record: sockmedic_dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(&plain).unwrap()
        ));
    }
    std::fs::write(&file, rules).unwrap();
    assert_promtool_ok(&["check", "rules", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The capability names of the README table's rows whose `column` says yes.
fn readme_caps(column: &str) -> BTreeSet<String> {
    let text = read("README.md");
    let head = text
        .lines()
        .find(|l| l.starts_with("| capability |"))
        .expect("deploy/README.md has the capabilities table");
    let cols: Vec<&str> = head.split('|').map(str::trim).collect();
    let at = cols.iter().position(|c| *c == column).expect("column");
    text.lines()
        .skip_while(|l| !l.starts_with("| capability |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            (f[at] == "yes").then(|| f[1].trim_matches('`').to_string())
        })
        .collect()
}

fn yaml_docs(text: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("the YAML parses"))
        .collect()
}

/// A command line of deploy/ as `sockmedic` parses it (`$(NODE_IP)` as an address).
fn parses(args: &[String]) {
    let mut full = vec!["sockmedic".to_string()];
    full.extend(args.iter().map(|a| a.replace("$(NODE_IP)", "192.0.2.1")));
    if let Err(e) = crate::cli::Cli::try_parse_from(&full) {
        panic!("sockmedic refuses {full:?}: {e}");
    }
}

#[test]
fn kubernetes_manifests_parse_and_grant_the_readme_capabilities() {
    let docs = yaml_docs(&read("kubernetes/sockmedic.yaml"));
    let kind = |k: &str| -> &serde_yaml::Value {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    for d in &docs {
        assert!(d["apiVersion"].as_str().is_some(), "{d:?}");
        assert!(d["metadata"]["name"].as_str().is_some(), "{d:?}");
    }
    let ds = kind("DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    let drop: Vec<&str> = sc["capabilities"]["drop"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(drop, ["ALL"]);
    let add: BTreeSet<String> = sc["capabilities"]["add"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| format!("CAP_{}", v.as_str().unwrap()))
        .collect();
    assert_eq!(
        add,
        readme_caps("DaemonSet"),
        "the DaemonSet's capabilities"
    );
    // Host paths are mounted read-only.
    for m in c["volumeMounts"].as_sequence().unwrap() {
        assert_eq!(m["readOnly"], true, "{m:?}");
    }
    // The command line is sockmedic's.
    let args: Vec<String> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[0], "serve");
    parses(&args);
    // Service → pods, ServiceMonitor → the Service's port, probes → the port.
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    let svc = kind("Service");
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &pod_labels[k], v,
            "the Service selects the DaemonSet's pods"
        );
    }
    let port_name = c["ports"][0]["name"].as_str().unwrap();
    assert_eq!(c["ports"][0]["containerPort"], 9917);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], port_name);
    let sm = kind("ServiceMonitor");
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v);
    }
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], port_name);
}

#[test]
fn systemd_unit_grants_the_readme_capabilities_and_verifies() {
    let unit = read("systemd/sockmedic.service");
    let value = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in the unit"))
            .to_string()
    };
    let set = |v: String| -> BTreeSet<String> { v.split_whitespace().map(String::from).collect() };
    let want = readme_caps("systemd");
    assert_eq!(set(value("AmbientCapabilities")), want);
    assert_eq!(set(value("CapabilityBoundingSet")), want);
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("ProtectSystem"), "strict");
    let exec: Vec<String> = value("ExecStart")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(exec[0], "/usr/local/bin/sockmedic");
    parses(&exec[1..]);
    // systemd-analyze verify, with ExecStart pointing at an executable that exists.
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("sm-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sockmedic.service");
    std::fs::write(
        &file,
        unit.replace("/usr/local/bin/sockmedic ", &format!("{} ", exe.display())),
    )
    .unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
    {
        Ok(o) => assert!(
            o.status.success() && o.stderr.is_empty(),
            "systemd-analyze verify:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("systemd-analyze not found ({e}): the unit is not verified"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn containerfile_builds_the_binary_and_runs_serve() {
    let cf = read("Containerfile");
    assert!(
        cf.contains("cargo build --release --locked"),
        "a release build"
    );
    assert_eq!(
        cf.lines().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "two stages"
    );
    let cmd = cf
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD");
    let args: Vec<String> = serde_json::from_str(cmd).expect("CMD is a JSON array");
    parses(&args);
    assert!(cf.contains("ENTRYPOINT [\"/usr/local/bin/sockmedic\"]"));
}

#[test]
fn the_expression_checker_catches_mistakes() {
    assert!(check_expr("sockmedic_tcp_sockets{state=\"LISTEN\"}").is_empty());
    assert!(!check_expr("sockmedic_tcp_socket").is_empty());
    assert!(!check_expr("sockmedic_tcp_sockets{stat=\"LISTEN\"}").is_empty());
    assert!(!check_expr("sum by (podname) (sockmedic_tcp_sockets)").is_empty());
    assert!(check_expr("sum by (pod) (sockmedic_tcp_sockets)").is_empty());
    assert!(!check_expr("up == 0").is_empty());
}
