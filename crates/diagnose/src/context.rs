//! What every rule reads: the snapshot, the rates, the thresholds, and helpers to
//! name subjects and quote the kernel log.

use crate::words::ago;
use crate::Thresholds;
use sockmedic_model::{
    Finding, KernelMessage, LogKind, Netns, Process, Rates, Remedy, Severity, Snapshot, Subject,
};
use std::collections::BTreeMap;

pub struct Ctx<'a> {
    pub snap: &'a Snapshot,
    pub rates: Option<&'a Rates>,
    pub t: &'a Thresholds,
}

impl<'a> Ctx<'a> {
    pub fn new(snap: &'a Snapshot, rates: Option<&'a Rates>, t: &'a Thresholds) -> Ctx<'a> {
        Ctx { snap, rates, t }
    }

    /// The per-second rate of a counter in a namespace, when two snapshots were taken.
    pub fn rate(&self, ns: &Netns, section: &str, name: &str) -> Option<f64> {
        self.rates?.get(ns.id, section, name)
    }

    /// "ListenOverflows rose 12.0/s over the last 1.0 s (total since boot 3456)" or,
    /// without rates, the total since boot alone.
    pub fn counter_sentence(&self, ns: &Netns, section: &str, name: &str) -> Option<String> {
        let total = ns.counter(section, name)?;
        Some(match (self.rate(ns, section, name), self.rates) {
            (Some(r), Some(rates)) if r > 0.0 => format!(
                "{section} {name} rose {r:.1}/s over {:.1} s (total since boot {total})",
                rates.interval_s
            ),
            (Some(_), Some(rates)) => format!(
                "{section} {name} did not move over {:.1} s (total since boot {total})",
                rates.interval_s
            ),
            _ => format!("{section} {name} = {total} since boot (no rate: one snapshot only)"),
        })
    }

    /// Whether a counter grew between the two snapshots.
    pub fn rising(&self, ns: &Netns, section: &str, name: &str) -> bool {
        self.rate(ns, section, name).is_some_and(|r| r > 0.0)
    }

    /// Kernel log messages of these kinds.
    pub fn log(&self, kinds: &[LogKind]) -> Vec<&'a KernelMessage> {
        match &self.snap.kernel_log {
            Some(k) => k
                .messages
                .iter()
                .filter(|m| kinds.contains(&m.kind))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether a message's last occurrence lies within `kernel-log.recent` seconds
    /// of when the log was read. A saved log (`--kernel-log FILE`) may come from
    /// another boot, so there "now" is its newest message. Without times at all, a
    /// message counts as recent.
    pub fn recent(&self, m: &KernelMessage) -> bool {
        let now = self.snap.kernel_log.as_ref().and_then(|k| {
            k.read_uptime_s.or_else(|| {
                k.messages
                    .iter()
                    .filter_map(|x| x.last_uptime_s)
                    .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
            })
        });
        match (m.last_uptime_s, now) {
            (Some(last), Some(now)) => now - last <= self.t.get("kernel-log.recent"),
            _ => true,
        }
    }

    /// One evidence sentence per message of these kinds: what, how often, when.
    pub fn log_evidence(&self, kinds: &[LogKind]) -> Vec<String> {
        self.quote(&self.log(kinds))
    }

    /// One evidence sentence per message.
    pub fn quote(&self, msgs: &[&KernelMessage]) -> Vec<String> {
        let log = self.snap.kernel_log.as_ref();
        let now = log.and_then(|k| k.read_uptime_s);
        let src = log.map(|k| k.source.as_str()).unwrap_or("kernel log");
        msgs.iter()
            .map(|m| {
                let when = match (m.first.as_deref(), m.last.as_deref()) {
                    (Some(f), Some(l)) if f != l => format!(", first {f}, last {l}"),
                    (_, Some(l)) => format!(", last {l}"),
                    _ => String::new(),
                };
                let age = match (m.last_uptime_s, now) {
                    (Some(last), Some(now)) if now >= last => format!(" ({} ago)", ago(now - last)),
                    _ => String::new(),
                };
                format!("{src}: \"{}\" ×{}{when}{age}", m.sample.trim(), m.count)
            })
            .collect()
    }

    /// The kernel release as (major, minor), e.g. (6, 18).
    pub fn kernel(&self) -> Option<(u32, u32)> {
        kernel_version(self.snap.source.kernel.as_deref()?)
    }

    /// The name of the namespace with this id, as `subject.netns` spells it.
    pub fn netns_name(&self, id: u64) -> Option<String> {
        self.snap
            .netns
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.name().to_string())
    }

    /// A subject naming a process: pid, comm, container, pod and its namespace.
    pub fn process_subject(&self, p: &Process) -> Subject {
        Subject {
            netns: p.netns.and_then(|id| self.netns_name(id)),
            pid: Some(p.pid),
            process: Some(p.comm.clone()),
            container: p.container.clone(),
            pod: p.pod.clone(),
            ..Subject::default()
        }
    }

    /// "pid 1234 (java), container 3f2a…, pod shop/cart-7d9 in netns X".
    pub fn process_words(&self, p: &Process) -> String {
        let mut s = format!("pid {} ({})", p.pid, p.comm);
        if let Some(pod) = &p.pod {
            s.push_str(&format!(", pod {pod}"));
        } else if let Some(c) = &p.container {
            s.push_str(&format!(", container {}", short_id(c)));
        }
        if let Some(name) = p.netns.and_then(|id| self.netns_name(id)) {
            s.push_str(&format!(", netns {name}"));
        }
        s
    }
}

/// `6.18.0-1-amd64` → (6, 18).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Who created some orphans: "pod shop/cart-0", "container 3f2a…", "cgroup
/// /system.slice/nginx.service", or the root cgroup (no container).
pub fn owner_words(o: &sockmedic_model::CgroupCount) -> String {
    match (&o.pod, &o.container, o.cgroup.as_deref()) {
        (Some(p), _, _) => format!("pod {p}"),
        (None, Some(c), _) => format!("container {}", short_id(c)),
        (None, None, Some("/")) | (None, None, None) => {
            "the root cgroup (no container)".to_string()
        }
        (None, None, Some(c)) => format!("cgroup {c}"),
    }
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Builds a finding: code, severity, title, subject, then evidence and remedies.
pub struct FindingBuilder {
    f: Finding,
}

pub fn finding(code: &str, severity: Severity, title: String, subject: Subject) -> FindingBuilder {
    FindingBuilder {
        f: Finding {
            code: code.to_string(),
            severity,
            title,
            subject,
            evidence: Vec::new(),
            explanation: String::new(),
            remedy: Vec::new(),
        },
    }
}

impl FindingBuilder {
    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.f.evidence.push(e.into());
        self
    }
    pub fn evidence_all(mut self, e: impl IntoIterator<Item = String>) -> Self {
        self.f.evidence.extend(e);
        self
    }
    pub fn explain(mut self, text: impl Into<String>) -> Self {
        self.f.explanation = text.into();
        self
    }
    /// A remedy without sysctl lines.
    pub fn fix(mut self, action: impl Into<String>, caveat: Option<&str>) -> Self {
        self.f.remedy.push(Remedy {
            action: action.into(),
            sysctl: BTreeMap::new(),
            caveat: caveat.map(str::to_string),
        });
        self
    }
    /// A remedy that sets sysctls.
    pub fn sysctl(
        mut self,
        action: impl Into<String>,
        lines: &[(&str, String)],
        caveat: Option<&str>,
    ) -> Self {
        self.f.remedy.push(Remedy {
            action: action.into(),
            sysctl: lines
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            caveat: caveat.map(str::to_string),
        });
        self
    }
    /// What will not help, stated as a remedy so it is shown beside the others.
    pub fn wont_help(mut self, what: impl Into<String>) -> Self {
        self.f.remedy.push(Remedy {
            action: format!("Will not help: {}", what.into()),
            sysctl: BTreeMap::new(),
            caveat: None,
        });
        self
    }
    pub fn build(self) -> Finding {
        self.f
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_versions() {
        assert_eq!(super::kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(
            super::kernel_version("3.10.0-1160.el7.x86_64"),
            Some((3, 10))
        );
        assert_eq!(super::kernel_version("garbage"), None);
    }
}
