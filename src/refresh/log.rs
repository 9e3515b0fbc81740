//! The publish log: what changed between two snapshots' names, one line per name.

use std::collections::BTreeMap;

use tracing::{info, warn};

use crate::zone::Snapshot;

/// What changed between two name tables, one line per name, for the publish log.
pub fn diff(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, now) in after {
        match before.get(name) {
            None => lines.push(format!("added {name} -> {}", now.join(", "))),
            Some(was) if was != now => {
                lines.push(format!("{name}: {} -> {}", was.join(", "), now.join(", ")));
            }
            Some(_) => {}
        }
    }
    for (name, was) in before {
        if !after.contains_key(name) {
            lines.push(format!("removed {name} (was {})", was.join(", ")));
        }
    }
    lines
}

/// At most this many lines of a publish diff are logged; the rest is counted.
const MAX_DIFF_LINES: usize = 50;

pub(super) fn log_publish(previous: Option<&Snapshot>, new: &Snapshot) {
    // Each warning once, when it first appears: a conflict or an altered tag value that stays
    // in the fleet must not repeat at every publish. `check` and `names` print them all.
    let before: std::collections::HashSet<&str> = previous
        .map(|p| p.warnings.iter().map(String::as_str).collect())
        .unwrap_or_default();
    for w in new.warnings.iter().filter(|w| !before.contains(w.as_str())) {
        warn!("{w}");
    }
    info!(
        serial = new.serial,
        previous_serial = previous.map(|p| p.serial),
        instances = new.instance_count,
        names = new.name_total(),
        "published zone snapshot"
    );
    let Some(prev) = previous else {
        return;
    };
    let [before, after] = prev.name_changes(new);
    let lines = diff(&before, &after);
    let total = lines.len();
    for line in lines.iter().take(MAX_DIFF_LINES) {
        info!("{line}");
    }
    if total > MAX_DIFF_LINES {
        info!("... and {} more changes", total - MAX_DIFF_LINES);
    }
}
