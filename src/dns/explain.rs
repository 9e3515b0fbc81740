//! `_explain.<name>` TXT answers: what a name answers in the client's view and why, for
//! operators troubleshooting with dig.

use super::*;

/// The label that turns a TXT question into an explanation of the name below it.
const EXPLAIN_LABEL: &[u8] = b"_explain";

/// For `_explain.<name>` in a view that explains: `<name>`.
pub(super) fn target(view: &ViewZone, snapshot: &Snapshot, name: &LowerName) -> Option<LowerName> {
    // Every handler query passes here: the first label is compared in place (LowerName is
    // lower case already), and only then anything else.
    let first = name.iter().next()?;
    if first != EXPLAIN_LABEL
        || !view.policy.explain
        || !snapshot.apex.zone_of(name)
        || view.is_passthrough(name)
    {
        return None;
    }
    Some(name.base_name())
}

impl Handler {
    /// TXT records that say what `target` answers in this view, which instances back it and
    /// why, why the client got this view, and how old the data is. Built per query: it is a
    /// troubleshooting answer, not the hot path.
    pub(super) fn explain(
        &self,
        snapshot: &Snapshot,
        view: &ViewZone,
        client: IpAddr,
        owner: &LowerName,
        target: &LowerName,
    ) -> Vec<Record> {
        let mut lines = Vec::new();
        let why = match snapshot.selector.select_why(client) {
            Some((_, Some(net))) => format!("client {} matched {net}", client.to_canonical()),
            _ => format!(
                "client {} matched no listed network (catch-all view)",
                client.to_canonical()
            ),
        };
        lines.push(format!("view {}: {why}", view.name));
        let sets = view.describe(target);
        if sets.is_empty() {
            lines.push(format!(
                "{target} exists only as a parent of other names (no records)"
            ));
        }
        for (rtype, data) in sets {
            lines.push(format!("{target} {rtype} {}", data.join(" ")));
        }
        lines.extend(view.capped(target));
        // Vias read slots' tiers and services' owners from the name, relative to the apex.
        let full = Name::from(target).to_ascii();
        let apex = Name::from(&snapshot.apex).to_ascii();
        let relative = full
            .strip_suffix(apex.as_str())
            .map_or(full.as_str(), |r| r.trim_end_matches('.'));
        for b in view.backing(target).unwrap_or(&[]) {
            let Some(inst) = snapshot.fleet.get(b.instance as usize) else {
                continue;
            };
            let mut line = format!("{} {}", inst.id, inst.state);
            if let Some(t) = inst.launch_time {
                line.push_str(&format!(", launched {t}"));
            }
            if let Some(az) = inst.availability_zone() {
                line.push_str(&format!(", {az}"));
            }
            let vias = crate::naming::vias_text(&b.via, inst, relative, &snapshot.rule_tags);
            line.push_str(&format!(", via {vias}"));
            lines.push(line);
        }
        if view.backing(target).is_some() {
            lines.extend(
                snapshot
                    .contested
                    .get(target)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        let now = SystemTime::now();
        let built = now.duration_since(snapshot.built_at).unwrap_or_default();
        let mut data = format!(
            "data: serial {}, {} instances, built {}s ago",
            snapshot.serial,
            snapshot.instance_count,
            built.as_secs()
        );
        if let Some(age) = self.stats.as_ref().and_then(|s| s.age(now)) {
            data.push_str(&format!(
                ", confirmed by the inventory {}s ago",
                age.as_secs()
            ));
        } else if self
            .stats
            .as_ref()
            .is_some_and(|s| s.successes.load(Ordering::Relaxed) == 0)
        {
            data.push_str(", not yet confirmed by the inventory (from the state file)");
        }
        cap_explain(&mut lines, snapshot.max_records_per_rrset, relative);
        lines.push(data);
        let owner = Name::from(owner);
        lines
            .into_iter()
            .map(|line| {
                // A TXT string holds 255 octets; longer lines are split over several strings.
                let chunks = line
                    .as_bytes()
                    .chunks(255)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                Record::from_rdata(owner.clone(), 0, RData::TXT(TXT::new(chunks)))
            })
            .collect()
    }
}

/// Most text an `_explain` answer carries: with the data line and the record overheads it
/// stays far inside one 64 KiB TCP message, and inside what resolvers relay.
const EXPLAIN_MAX_BYTES: usize = 16 * 1024;

/// Caps `_explain` lines like any other RRset: at most `max_records - 1` of them (the data
/// line comes last) and [`EXPLAIN_MAX_BYTES`] of text, the rest counted in one closing line
/// that says where to read them all. A resolver refuses a TXT set past its record limit
/// (BIND 9.18's is 100), and 700 members' lines would not fit one message.
fn cap_explain(lines: &mut Vec<String>, max_records: u16, relative: &str) {
    let room = usize::from(max_records).saturating_sub(2).max(1);
    let mut bytes = 0;
    let mut keep = 0;
    for line in lines.iter() {
        if keep == room || bytes + line.len() > EXPLAIN_MAX_BYTES {
            break;
        }
        bytes += line.len();
        keep += 1;
    }
    let left = lines.len() - keep;
    if left > 0 {
        lines.truncate(keep);
        lines.push(format!(
            "... and {left} more lines: `stabledns why {relative}` lists them all"
        ));
    }
}
