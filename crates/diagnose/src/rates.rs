//! Counter rates between two snapshots of the same host.

use sockmedic_model::{Rates, Snapshot};
use std::collections::BTreeMap;

/// Per-second growth of every counter that moved, per namespace present in both
/// snapshots. `None` when the snapshots carry no usable clock (`uptime_s`), or
/// `later` is not later.
pub fn rates(earlier: &Snapshot, later: &Snapshot) -> Option<Rates> {
    let interval_s = later.source.uptime_s? - earlier.source.uptime_s?;
    if interval_s.is_nan() || interval_s <= 0.0 {
        return None;
    }
    let mut out = Rates {
        interval_s,
        netns: BTreeMap::new(),
    };
    for ns in &later.netns {
        let Some(old) = earlier.netns.iter().find(|o| o.id == ns.id) else {
            continue;
        };
        let mut sections = BTreeMap::new();
        for (section, values) in &ns.counters {
            let Some(old_values) = old.counters.get(section) else {
                continue;
            };
            let moved: BTreeMap<String, f64> = values
                .iter()
                .filter_map(|(name, v)| {
                    let d = v.checked_sub(*old_values.get(name)?)?;
                    (d != 0).then(|| (name.clone(), d as f64 / interval_s))
                })
                .collect();
            if !moved.is_empty() {
                sections.insert(section.clone(), moved);
            }
        }
        out.netns.insert(ns.id, sections);
    }
    Some(out)
}
