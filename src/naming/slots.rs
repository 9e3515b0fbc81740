//! Tier slots: each member of a slotted tier gets a number 1..n (`1.web`), kept in the fleet
//! as a `stabledns:slot:<tier>` tag so every replica numbers alike. Pure, like the rest of
//! naming: the caller writes the tags [`slot_tag_writes`] lists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Backing, HostName, Limits, Rules, Slots, Via, quoted};
use crate::inventory::{Instance, TagWrite};

/// Where tier slot numbers are kept (`naming.slot_numbers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SlotStore {
    /// In the fleet: a `stabledns:slot:<tier>` tag on each member, which every replica reads
    /// and stabledns writes (`ec2:CreateTags`). Numbers depend on the fleet alone.
    #[default]
    Tags,
    /// Slot tags are read but never written; untagged members keep the numbers this process
    /// gave them last (its state file). Replicas with different histories may disagree.
    StateFile,
}

impl SlotStore {
    /// As the config and the logs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotStore::Tags => "tags",
            SlotStore::StateFile => "state-file",
        }
    }
}

/// Where a tier member's slot number is kept: [`SLOT_TAG_PREFIX`] and the tier's name, on
/// the instance (`stabledns:slot:web = 2`).
pub fn slot_tag(tier: &str) -> String {
    format!("{SLOT_TAG_PREFIX}{tier}")
}

/// The tag keys that hold slot numbers start with this; the IAM policy lets stabledns write
/// tags under `stabledns:` and no others.
pub const SLOT_TAG_PREFIX: &str = "stabledns:slot:";

/// Longest tag key EC2 accepts: a tier whose key would be longer is numbered by the rule alone.
pub const MAX_TAG_KEY_LEN: usize = 128;

/// Gives every tier member a number, so that a tier of n members is numbered 1..n, from the
/// fleet as read, and from the last refresh's numbers in `previous` in the state-file mode or
/// for a tier without any slot tag yet:
/// - a member keeps the number its slot tag holds (or, without a tag, the one in `previous`)
///   when that number is in 1..n and nobody launched earlier holds it too;
/// - every other member (no number yet, a tag that is no number, above n after the tier
///   shrank, or held by an earlier launch) takes the lowest free number, earliest launch
///   first, ties by instance id.
///
/// Tags and launch times are the same on every replica that read the same fleet, so every
/// replica gives the same numbers; the caller writes the tags that differ, and the next read
/// keeps the numbers.
pub(super) fn assign_slots(
    names: &[HostName],
    fleet: &[Arc<Instance>],
    rules: &Rules,
    previous: &Slots,
    warnings: &mut Vec<String>,
) -> (Slots, SlotFixes, Vec<SlotNote>) {
    let launch = |i: u32| {
        let inst = &fleet[i as usize];
        (inst.launch_time, inst.id.as_str())
    };
    let mut slots = Slots::new();
    let mut fixes = SlotFixes::default();
    let mut notes = Vec::new();
    for host in names.iter().filter(|h| h.slots) {
        let tier = host.name.as_str();
        let key = slot_tag(tier);
        // In the tags mode `previous` counts only for a tier none of whose members has a tag
        // yet: the first start after an upgrade from the state file renumbers nothing.
        let adopt = rules.slot_store == SlotStore::StateFile
            || !host
                .backing
                .iter()
                .any(|b| fleet[b.instance as usize].tags.get(&key).is_some());
        let before = previous.get(tier).filter(|_| adopt);
        let size = u32::try_from(host.backing.len()).unwrap_or(u32::MAX);
        let mut claims: Vec<(u32, u32)> = Vec::new(); // (fleet index, number)
        let mut unnumbered: Vec<(u32, Option<String>)> = Vec::new();
        for b in host.backing.iter() {
            let inst = &fleet[b.instance as usize];
            match inst.tags.get(&key) {
                Some(value) => match value.trim().parse::<u32>() {
                    Ok(n) if (1..=size).contains(&n) => claims.push((b.instance, n)),
                    Ok(n) if n > size => {
                        fixes.above_size += 1;
                        let why =
                            format!("tag {key}={n} is above the tier's {size} members (one left)");
                        unnumbered.push((b.instance, Some(why)));
                    }
                    _ => {
                        fixes.invalid += 1;
                        let why = format!(
                            "tag {key}={} is not a number from 1 to {size}",
                            quoted(value)
                        );
                        unnumbered.push((b.instance, Some(why)));
                    }
                },
                None => match before.and_then(|m| m.get(&inst.id)) {
                    Some(&n) if (1..=size).contains(&n) => claims.push((b.instance, n)),
                    _ => unnumbered.push((b.instance, None)),
                },
            }
        }
        // Of two members holding one number, the earlier launch keeps it.
        claims.sort_by_key(|&(i, n)| (n, launch(i)));
        let mut numbers: BTreeMap<u32, u32> = BTreeMap::new();
        let mut holder: Option<(u32, u32)> = None; // (number, fleet index)
        for (i, n) in claims {
            match holder {
                Some((held, first)) if held == n => {
                    fixes.duplicate += 1;
                    let why = format!(
                        "slot {n} is also claimed by {}, launched earlier, which keeps it",
                        fleet[first as usize].id
                    );
                    unnumbered.push((i, Some(why)));
                }
                _ => {
                    holder = Some((n, i));
                    numbers.insert(i, n);
                }
            }
        }
        unnumbered.sort_by_key(|(i, _)| launch(*i));
        let taken: BTreeSet<u32> = numbers.values().copied().collect();
        let mut free = (1..).filter(|n| !taken.contains(n));
        for (i, why) in unnumbered {
            let Some(n) = free.next() else { break };
            numbers.insert(i, n);
            if let Some(why) = why {
                let id = &fleet[i as usize].id;
                warnings.push(format!("{tier}: {id}: {why}; renumbered {n}"));
                notes.push(SlotNote {
                    name: format!("{n}.{tier}"),
                    line: format!("renumbered: {id}: {why}"),
                });
            }
        }
        let numbers = numbers
            .into_iter()
            .map(|(i, n)| (fleet[i as usize].id.clone(), n))
            .collect();
        slots.insert(host.name.clone(), numbers);
    }
    (slots, fixes, notes)
}

/// A line for `_explain` on a slot name whose member was renumbered.
pub(super) struct SlotNote {
    pub(super) name: String,
    pub(super) line: String,
}

/// Members renumbered in this naming pass, by why: what the slot metric counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotFixes {
    /// Their number was also held by a member launched earlier.
    pub duplicate: u32,
    /// Their slot tag held no number (or 0).
    pub invalid: u32,
    /// Their slot tag's number was above the tier's size: a member left, the tier shrank.
    pub above_size: u32,
}

/// The slot tags `fleet` lacks (or holds with another value) for the numbers in `slots`.
/// Tiers whose key would be longer than EC2 accepts are left out: the rule numbers them alone.
pub fn slot_tag_writes(slots: &Slots, fleet: &[Arc<Instance>]) -> Vec<TagWrite> {
    let by_id: rustc_hash::FxHashMap<&str, &Instance> =
        fleet.iter().map(|i| (i.id.as_str(), &**i)).collect();
    let mut out = Vec::new();
    for (tier, members) in slots {
        let key = slot_tag(tier);
        if key.len() > MAX_TAG_KEY_LEN {
            continue;
        }
        for (id, n) in members {
            let Some(inst) = by_id.get(id.as_str()) else {
                continue;
            };
            let value = n.to_string();
            if inst.tags.get(&key) != Some(&value) {
                out.push(TagWrite {
                    instance: id.clone(),
                    region: inst.region().map(str::to_owned),
                    account: inst.account().map(str::to_owned),
                    key: key.clone(),
                    value,
                });
            }
        }
    }
    out
}

/// `<n>.<tier>` for every slot, unless a rule already made that name.
pub(super) fn add_slot_names(
    names: &mut Vec<HostName>,
    slots: &Slots,
    fleet: &[Arc<Instance>],
    limits: &Limits,
    warnings: &mut Vec<String>,
) {
    let taken: BTreeSet<&str> = names.iter().map(|h| h.name.as_str()).collect();
    let mut added = Vec::new();
    for host in names.iter().filter(|h| h.slots) {
        let tier = &host.name;
        let Some(members) = slots.get(tier) else {
            continue;
        };
        for b in host.backing.iter() {
            let instance = &fleet[b.instance as usize].id;
            let Some(&n) = members.get(instance) else {
                continue;
            };
            let name = format!("{n}.{tier}");
            if taken.contains(name.as_str()) {
                warnings.push(format!(
                    "{name}: slot {n} of tier {tier} ({instance}) is already a name made by a rule; the rule wins"
                ));
                continue;
            }
            if let Some(why) = limits.refuses(&name) {
                warnings.push(format!(
                    "{instance}: slot {n} of tier {tier}: {why}; skipped"
                ));
                continue;
            }
            added.push(HostName {
                name,
                backing: std::sync::Arc::new([Backing {
                    instance: b.instance,
                    via: crate::naming::Vias::one(Via::Slot { n }),
                }]),
                single: true,
                inside_only: host.inside_only,
                slots: false,
                contested: Vec::new(),
            });
        }
    }
    names.extend(added);
    names.sort_by(|a, b| a.name.cmp(&b.name));
}
