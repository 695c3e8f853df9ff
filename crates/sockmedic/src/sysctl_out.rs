//! Where a proposed sysctl takes effect, and `check --sysctl-out FILE`: every sysctl
//! the findings' remedies propose, as a commented sysctl.d file to review. Nothing
//! is applied.

use crate::render::wrap;
use anyhow::{Context, Result};
use sockmedic_collect::procfs::{HOST_SYSCTLS, NETNS_SYSCTLS};
use sockmedic_model::{Finding, Netns, Remedy, Severity, Snapshot};
use std::fmt::Write;
use std::path::Path;

/// Whether a sysctl has one value for the host or one per network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One value for every namespace; set in the initial namespace.
    Host,
    /// Each network namespace has its own.
    Netns,
}

/// The scope of a sysctl: from the collector's lists, else by its prefix (`fs.`,
/// `vm.`, `kernel.` are host-wide; other `net.` settings are per namespace).
pub fn scope(name: &str) -> Scope {
    if HOST_SYSCTLS.iter().any(|s| s.name == name) {
        Scope::Host
    } else if NETNS_SYSCTLS.iter().any(|s| s.name == name) || name.starts_with("net.") {
        Scope::Netns
    } else {
        Scope::Host
    }
}

/// The namespace a finding is about, and how to run a command in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host`, or `netns NAME`.
    pub label: String,
    /// What to put before `sysctl -w` to run it there (`ip netns exec demo`); empty
    /// for the host.
    pub prefix: String,
    /// For a pod: how to keep the setting across the pod's restarts.
    pub pod: Option<String>,
}

impl Target {
    fn host() -> Target {
        Target {
            label: "the host".into(),
            prefix: String::new(),
            pod: None,
        }
    }

    pub fn is_host(&self) -> bool {
        self.prefix.is_empty()
    }
}

/// Where a per-namespace setting of this finding must be made: the namespace its
/// subject names (or the one of its process).
pub fn target(snap: &Snapshot, f: &Finding) -> Target {
    let s = &f.subject;
    let ns: Option<&Netns> = s
        .netns
        .as_deref()
        .and_then(|name| {
            snap.netns
                .iter()
                .find(|n| n.names.iter().any(|x| x == name))
        })
        .or_else(|| {
            let pid = s.pid?;
            let id = snap.processes.iter().find(|p| p.pid == pid)?.netns?;
            snap.netns.iter().find(|n| n.id == id)
        });
    let Some(ns) = ns else {
        // A namespace the snapshot does not hold: reach it through the process.
        return match (s.netns.as_deref(), s.pid) {
            (Some(name), Some(pid)) if name != "host" => Target {
                label: format!("netns {name}"),
                prefix: format!("nsenter --net=/proc/{pid}/ns/net"),
                pod: s.pod.clone(),
            },
            _ => Target::host(),
        };
    };
    if ns.host {
        return Target::host();
    }
    let pod = ns.pod.clone().or_else(|| s.pod.clone());
    let ip_name = ns.names.iter().find(|n| {
        !n.starts_with('/')
            && !n.starts_with("pid ")
            && !n.starts_with("pod ")
            && !n.starts_with("container ")
            && !n.contains('/')
            && Path::new("/run/netns").join(n.as_str()).exists()
    });
    let pid = ns
        .names
        .iter()
        .find_map(|n| {
            n.strip_prefix("pid ")?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .or_else(|| {
            snap.processes
                .iter()
                .find(|p| p.netns == Some(ns.id))
                .map(|p| p.pid)
        })
        .or(s.pid);
    let prefix = match (ip_name, ns.names.iter().find(|n| n.starts_with('/')), pid) {
        (Some(name), _, _) => format!("ip netns exec {name}"),
        (None, Some(path), _) => format!("nsenter --net={path}"),
        (None, None, Some(pid)) => format!("nsenter --net=/proc/{pid}/ns/net"),
        // Only its inode is known: name it, the user has to find a way in.
        (None, None, None) => format!("nsenter --net=<a path to netns {}>", ns.id),
    };
    Target {
        label: format!("netns {}", ns.name()),
        prefix,
        pod,
    }
}

/// The command that applies one setting where it takes effect.
pub fn command(snap: &Snapshot, f: &Finding, name: &str, value: &str) -> String {
    let set = format!("sysctl -w {name}={}", shell_word(value));
    match scope(name) {
        Scope::Host => set,
        Scope::Netns => {
            let t = target(snap, f);
            if t.is_host() {
                set
            } else {
                format!("{} {set}", t.prefix)
            }
        }
    }
}

fn shell_word(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || ",.-_:/".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

/// One proposal of a value for a sysctl, by one remedy of one finding.
struct Proposal<'a> {
    finding: &'a Finding,
    remedy: &'a Remedy,
    value: &'a str,
    target: Target,
}

/// The sysctl.d text of every setting the findings propose.
pub fn render(snap: &Snapshot, findings: &[Finding]) -> String {
    // Settings in the order the findings (most severe first) propose them.
    let mut order: Vec<&str> = Vec::new();
    let mut proposals: Vec<(&str, Proposal)> = Vec::new();
    for f in findings {
        for r in &f.remedy {
            for (name, value) in &r.sysctl {
                if !order.contains(&name.as_str()) {
                    order.push(name);
                }
                proposals.push((
                    name,
                    Proposal {
                        finding: f,
                        remedy: r,
                        value,
                        target: target(snap, f),
                    },
                ));
            }
        }
    }
    let src = &snap.source;
    let mut out = String::new();
    let _ = writeln!(out, "# sysctl settings proposed by `sockmedic check`");
    let _ = writeln!(
        out,
        "# host {}, {}, {}",
        src.host,
        src.taken_at,
        if src.tool.is_empty() {
            concat!("sockmedic ", env!("CARGO_PKG_VERSION"))
        } else {
            &src.tool
        }
    );
    let _ = writeln!(out, "# Review before applying; sockmedic changed nothing.");
    let _ = writeln!(out, "#");
    for line in wrap(
        "Host-only settings have one value for the whole host: apply them in the initial namespace \
         (`sysctl -p FILE`, or copy FILE to /etc/sysctl.d/ to keep them across reboots). \
         Per-namespace settings take effect only in the network namespace where they are set: \
         each one below names its namespace and the command that sets it there; applying this \
         file on the host sets them for the host's own namespace instead.",
        86,
    ) {
        let _ = writeln!(out, "# {line}");
    }
    if order.is_empty() {
        let _ = writeln!(out, "\n# No finding proposed a sysctl change.");
        return out;
    }
    for name in order {
        let mine: Vec<&Proposal> = proposals
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, p)| p)
            .collect();
        out.push('\n');
        let (value, conflict) = choose(&mine);
        match scope(name) {
            Scope::Host => {
                let _ = writeln!(out, "# {name}: host-only (one value for the whole host)");
            }
            Scope::Netns => {
                let mut targets: Vec<&Target> = Vec::new();
                for p in &mine {
                    if !targets.contains(&&p.target) {
                        targets.push(&p.target);
                    }
                }
                let _ = writeln!(
                    out,
                    "# {name}: per-namespace, for {}",
                    targets
                        .iter()
                        .map(|t| t.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for t in targets {
                    let set = format!("sysctl -w {name}={}", shell_word(value));
                    if t.is_host() {
                        let _ = writeln!(out, "#   on the host: {set}");
                    } else {
                        let _ = writeln!(out, "#   {}: {} {set}", t.label, t.prefix);
                    }
                    if let Some(pod) = &t.pod {
                        let _ = writeln!(
                            out,
                            "#   pod {pod}: to keep it across restarts, set it in the pod spec (securityContext.sysctls)"
                        );
                    }
                }
            }
        }
        for p in &mine {
            let f = p.finding;
            let sev = match f.severity {
                Severity::Critical => "critical",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            for (i, line) in wrap(&format!("{} ({sev}): {}", f.code, f.title), 84)
                .into_iter()
                .enumerate()
            {
                let _ = writeln!(out, "# {}{line}", if i == 0 { "" } else { "  " });
            }
            let action = format!("{} = {}: {}", name, p.value, p.remedy.action);
            for line in wrap(&action, 82) {
                let _ = writeln!(out, "#   {line}");
            }
            if let Some(c) = &p.remedy.caveat {
                for (i, line) in wrap(&format!("Caveat: {c}"), 82).into_iter().enumerate() {
                    let _ = writeln!(out, "#   {}{line}", if i == 0 { "" } else { "  " });
                }
            }
        }
        if let Some(note) = conflict {
            let _ = writeln!(out, "# {note}");
        }
        let _ = writeln!(out, "{name} = {value}");
    }
    out
}

/// The value to write, and a note when the proposals disagree: the largest number
/// wins; of ranges (`low high`, as ip_local_port_range), the widest; otherwise the
/// first (most severe finding's) value is kept.
fn choose<'a>(ps: &[&Proposal<'a>]) -> (&'a str, Option<String>) {
    let first = ps[0].value;
    let mut distinct: Vec<&'a str> = Vec::new();
    for p in ps {
        if !distinct.contains(&p.value) {
            distinct.push(p.value);
        }
    }
    if distinct.len() == 1 {
        return (first, None);
    }
    let numbers =
        |v: &str| -> Option<Vec<f64>> { v.split_whitespace().map(|n| n.parse().ok()).collect() };
    let parsed: Option<Vec<Vec<f64>>> = distinct.iter().map(|v| numbers(v)).collect();
    let listed = distinct.join(", ");
    let best = |key: &dyn Fn(&[f64]) -> f64, parsed: &[Vec<f64>]| {
        let mut at = 0;
        for (i, v) in parsed.iter().enumerate() {
            if key(v) > key(&parsed[at]) {
                at = i;
            }
        }
        distinct[at]
    };
    match parsed {
        Some(p) if p.iter().all(|v| v.len() == 1) => {
            let v = best(&|v| v[0], &p);
            (
                v,
                Some(format!(
                    "Conflicting values proposed ({listed}): kept the largest, {v}"
                )),
            )
        }
        Some(p) if p.iter().all(|v| v.len() == 2) => {
            let v = best(&|v| v[1] - v[0], &p);
            (
                v,
                Some(format!(
                    "Conflicting ranges proposed ({listed}): kept the widest, {v}"
                )),
            )
        }
        _ => (
            first,
            Some(format!(
                "Conflicting values proposed ({listed}): kept the most severe finding's, {first}"
            )),
        ),
    }
}

/// Writes the file; an error names it.
pub fn write(path: &Path, snap: &Snapshot, findings: &[Finding]) -> Result<()> {
    std::fs::write(path, render(snap, findings))
        .with_context(|| format!("--sysctl-out {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockmedic_model::{Netns, Subject};
    use std::collections::BTreeMap;

    fn finding(code: &str, sev: Severity, netns: &str, sysctl: &[(&str, &str)]) -> Finding {
        Finding {
            code: code.into(),
            severity: sev,
            title: format!("{code} title"),
            subject: Subject {
                netns: Some(netns.into()),
                ..Subject::default()
            },
            evidence: vec![],
            explanation: String::new(),
            remedy: vec![Remedy {
                action: format!("{code} action"),
                sysctl: sysctl
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                caveat: Some(format!("{code} caveat")),
            }],
        }
    }

    fn snapshot() -> Snapshot {
        let mut snap = Snapshot::default();
        snap.source.host = "box".into();
        snap.source.taken_at = "2026-01-01T00:00:00Z".into();
        snap.source.tool = "sockmedic 9.9".into();
        snap.netns = vec![
            Netns {
                id: 1,
                names: vec!["host".into()],
                host: true,
                ..Netns::default()
            },
            Netns {
                id: 2,
                names: vec!["pod shop/cart".into(), "pid 42 (java)".into()],
                pod: Some("shop/cart".into()),
                ..Netns::default()
            },
        ];
        snap
    }

    /// `name = value` lines of a sysctl.d text, checking every other line is a
    /// comment or blank.
    fn settings(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.split_once(" = ").unwrap_or_else(|| panic!("{l:?}"));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn settings_are_commented_scoped_and_deduplicated() {
        let snap = snapshot();
        let findings = [
            finding(
                "orphan-pressure",
                Severity::Critical,
                "host",
                &[
                    ("net.ipv4.tcp_max_orphans", "262144"),
                    ("net.ipv4.tcp_orphan_retries", "3"),
                ],
            ),
            finding(
                "teardown-stall",
                Severity::Warning,
                "pod shop/cart",
                &[("net.ipv4.tcp_orphan_retries", "5")],
            ),
            finding(
                "port-exhaustion",
                Severity::Warning,
                "pod shop/cart",
                &[("net.ipv4.ip_local_port_range", "40000 65535")],
            ),
            finding(
                "risky-sysctl",
                Severity::Warning,
                "pod shop/cart",
                &[("net.ipv4.ip_local_port_range", "32768 60999")],
            ),
        ];
        let text = render(&snap, &findings);
        assert!(text.starts_with("# sysctl settings proposed by `sockmedic check`\n# host box, 2026-01-01T00:00:00Z, sockmedic 9.9\n# Review before applying; sockmedic changed nothing.\n"), "{text}");
        assert_eq!(
            settings(&text),
            [
                ("net.ipv4.tcp_max_orphans".to_string(), "262144".to_string()),
                ("net.ipv4.tcp_orphan_retries".into(), "5".into()),
                ("net.ipv4.ip_local_port_range".into(), "32768 60999".into()),
            ]
        );
        assert!(
            text.contains("# net.ipv4.tcp_max_orphans: host-only"),
            "{text}"
        );
        assert!(
            text.contains(
                "# net.ipv4.tcp_orphan_retries: per-namespace, for the host, netns pod shop/cart"
            ),
            "{text}"
        );
        assert!(
            text.contains("nsenter --net=/proc/42/ns/net sysctl -w net.ipv4.tcp_orphan_retries=5"),
            "{text}"
        );
        assert!(
            text.contains("pod shop/cart: to keep it across restarts"),
            "{text}"
        );
        assert!(
            text.contains("Conflicting values proposed (3, 5): kept the largest, 5"),
            "{text}"
        );
        assert!(text.contains("kept the widest, 32768 60999"), "{text}");
        assert!(
            text.contains("# orphan-pressure (critical): orphan-pressure title"),
            "{text}"
        );
        assert!(text.contains("#   Caveat: teardown-stall caveat"), "{text}");
        assert!(
            text.lines()
                .filter(|l| !l.contains("sysctl -w"))
                .all(|l| l.chars().count() <= 100),
            "{text}"
        );
    }

    #[test]
    fn no_proposal_still_writes_the_header() {
        let text = render(&snapshot(), &[]);
        assert!(settings(&text).is_empty());
        assert!(text.contains("No finding proposed a sysctl change"));
    }

    #[test]
    fn commands_run_where_the_setting_applies() {
        let snap = snapshot();
        let f = finding("x", Severity::Warning, "pod shop/cart", &[]);
        assert_eq!(
            command(&snap, &f, "net.ipv4.tcp_tw_reuse", "1"),
            "nsenter --net=/proc/42/ns/net sysctl -w net.ipv4.tcp_tw_reuse=1"
        );
        // Host-only: always the host, whatever namespace the finding names.
        assert_eq!(
            command(&snap, &f, "net.ipv4.tcp_max_orphans", "65536"),
            "sysctl -w net.ipv4.tcp_max_orphans=65536"
        );
        assert_eq!(scope("fs.file-max"), Scope::Host);
        assert_eq!(scope("net.core.somaxconn"), Scope::Netns);
    }
}
