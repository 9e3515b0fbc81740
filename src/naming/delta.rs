//! Naming a change, not the fleet: the names a few changed instances touch, settled again
//! from all of their claimants, as [`assign`](super::assign) over the whole fleet settles them.
//!
//! Naming is local. A name depends only on the instances that claim it (their claims, launch
//! times and ids); a tier's slot numbers on its members and on the names `<n>.<tier>` rules
//! claim; its rotation on its members' drain tags and health; its SRV records on its members'
//! tags. So when the instances at some fleet positions change, the names to settle again are
//! the names they claimed before and claim now, closed under two links: a name and the slot
//! names `1.<name>` .. `n.<name>` it may have (n the most claimants it has or had), and a name
//! `3.web` and the tier `web` it may be a slot of. Every claimant of those names, found in a
//! [`ClaimIndex`], is named again claiming only those names; the rest of the fleet is not read.
//!
//! Fleet positions must not move: the instance at a position not listed as changed is the
//! same before and after (the events path replaces in place and fills a hole with the last
//! instance, which then counts as changed). A tier as large as the fleet makes the part as
//! large as the fleet: still right, only not cheap.

use std::collections::BTreeSet;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Limits, Naming, Part, Rotation, Rules, SlotFixes, Slots, assign_part, claims};
use crate::inventory::Instance;

/// Which fleet positions claim a name: one entry (name hash, position) per claim. Two names
/// with one hash only make a part larger (a position claiming neither names nothing in it),
/// never wrong; storing hashes, not names, keeps the index at 16 bytes a claim.
#[derive(Debug, Default, Clone)]
pub struct ClaimIndex {
    table: HashTable<(u64, u32)>,
}

fn hash(name: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(name)
}

/// The names an instance claims, each once; none when its state gets no names.
fn claimed(
    inst: &Instance,
    rules: &Rules,
    limits: &Limits,
    tags: &[Option<String>],
) -> Vec<String> {
    if rules.unnamed_because(inst).is_some() {
        return Vec::new();
    }
    let mut names = Vec::new();
    // Said when the names are made, not here.
    let mut unsaid = Vec::new();
    claims::each(inst, rules, limits, tags, &mut unsaid, |name, _, _, _| {
        names.push(name.into_owned());
    });
    names.sort_unstable();
    names.dedup();
    names
}

impl ClaimIndex {
    /// The index of a whole fleet.
    pub fn new(fleet: &[Arc<Instance>], rules: &Rules, limits: &Limits) -> Self {
        let tags = rules.tags();
        let mut index = Self {
            table: HashTable::with_capacity(fleet.len() * 3),
        };
        for (at, inst) in (0u32..).zip(fleet) {
            for name in claimed(inst, rules, limits, &tags) {
                index.add(&name, at);
            }
        }
        index
    }

    fn add(&mut self, name: &str, at: u32) {
        let h = hash(name);
        self.table.insert_unique(h, (h, at), |e| e.0);
    }

    fn remove(&mut self, name: &str, at: u32) {
        let h = hash(name);
        if let Ok(entry) = self.table.find_entry(h, |e| *e == (h, at)) {
            entry.remove();
        }
    }

    fn claimants(&self, name: &str, out: &mut BTreeSet<u32>) {
        let h = hash(name);
        out.extend(self.table.iter_hash(h).filter(|e| e.0 == h).map(|e| e.1));
    }

    /// How many claims it holds.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every entry, sorted: two indexes of one fleet hold the same.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<(u64, u32)> {
        let mut all: Vec<(u64, u32)> = self.table.iter().copied().collect();
        all.sort_unstable();
        all
    }
}

/// The counts a part of the names holds: what [`Naming::apply`] takes out and puts back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    rotation: Rotation,
    slot_fixes: SlotFixes,
}

/// What naming a change gives.
#[derive(Debug)]
pub struct Delta {
    /// Every name settled again. Whatever the previous naming had under one of these names
    /// (the name, a tier's slot numbers, its SRV records) is replaced by what `part` has; a
    /// name `part` lacks is gone.
    pub touched: FxHashSet<String>,
    /// The touched names as naming the whole changed fleet makes them.
    pub part: Naming,
    /// The touched names as they were named before the change.
    pub was: Naming,
    /// Each changed position, and whether its instance (if any) is inside-only now.
    pub inside_only: Vec<(u32, bool)>,
    before: Counts,
    after: Counts,
}

/// Names what changed between `old` and `new`, two fleets that differ only at the positions
/// in `changed`, and brings `index` (the index of `old`) up to `new`. `previous` is the slot
/// numbers naming `new` in full would be given.
pub fn rename(
    index: &mut ClaimIndex,
    old: &[Arc<Instance>],
    new: &[Arc<Instance>],
    changed: &BTreeSet<u32>,
    rules: &Rules,
    limits: &Limits,
    previous: &Slots,
) -> Delta {
    let tags = rules.tags();
    let mut touched: FxHashSet<String> = FxHashSet::default();
    // The changed positions that claimed each name before.
    let mut claimed_before: FxHashMap<String, Vec<u32>> = FxHashMap::default();
    let (mut before, mut after) = (Counts::default(), Counts::default());
    let mut inside_only = Vec::with_capacity(changed.len());
    let count = |counts: &mut Counts, inst: &Instance| {
        if rules.unnamed_because(inst).is_none() {
            let r = Rotation::of_instance(inst, rules);
            counts.rotation.drained += r.drained;
            counts.rotation.impaired += r.impaired;
        }
    };
    for &at in changed {
        if let Some(inst) = old.get(at as usize) {
            for name in claimed(inst, rules, limits, &tags) {
                index.remove(&name, at);
                claimed_before.entry(name.clone()).or_default().push(at);
                touched.insert(name);
            }
            count(&mut before, inst);
        }
        let now = new.get(at as usize);
        if let Some(inst) = now {
            for name in claimed(inst, rules, limits, &tags) {
                index.add(&name, at);
                touched.insert(name);
            }
            count(&mut after, inst);
        }
        let inside =
            now.is_some_and(|i| rules.unnamed_because(i).is_none() && rules.tagged_inside_only(i));
        inside_only.push((at, inside));
    }

    // Closed under slots: see the module comment.
    let mut todo: Vec<String> = touched.iter().cloned().collect();
    let (mut claimants_old, mut claimants_new) = (BTreeSet::new(), BTreeSet::new());
    let mut found = BTreeSet::new();
    while let Some(name) = todo.pop() {
        found.clear();
        index.claimants(&name, &mut found);
        let unchanged = found.iter().filter(|at| !changed.contains(at));
        claimants_old.extend(unchanged.clone());
        let mut had = unchanged.count();
        if let Some(at) = claimed_before.get(&name) {
            claimants_old.extend(at);
            had += at.len();
        }
        let numbered = previous.get(&name).and_then(|m| m.values().max());
        let most = (found.len().max(had)).max(numbered.map_or(0, |&n| n as usize));
        claimants_new.append(&mut found);
        let mut add = |more: String| {
            if !touched.contains(&more) {
                touched.insert(more.clone());
                todo.push(more);
            }
        };
        for n in 1..=most {
            add(format!("{n}.{name}"));
        }
        if let Some((n, tier)) = name.split_once('.')
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            add(tier.to_owned());
        }
    }

    let part = |fleet: &[Arc<Instance>], at: BTreeSet<u32>| {
        let positions: Vec<u32> = at.into_iter().collect();
        let part = Part {
            positions: &positions,
            names: &touched,
        };
        assign_part(fleet, Some(&part), rules, limits, previous)
    };
    let was = part(old, claimants_old);
    let part = part(new, claimants_new);
    before.rotation.failing_open = was.rotation.failing_open;
    before.slot_fixes = was.slot_fixes;
    after.rotation.failing_open = part.rotation.failing_open;
    after.slot_fixes = part.slot_fixes;
    Delta {
        touched,
        part,
        was,
        inside_only,
        before,
        after,
    }
}

/// `total - before + after`, per count.
fn moved(total: u32, before: u32, after: u32) -> u32 {
    total.saturating_sub(before).saturating_add(after)
}

impl Delta {
    /// The rotation and slot counts of the whole naming after the change, from those before.
    pub fn counts(&self, rotation: Rotation, fixes: SlotFixes) -> (Rotation, SlotFixes) {
        let (b, a) = (&self.before, &self.after);
        let r = Rotation {
            drained: moved(rotation.drained, b.rotation.drained, a.rotation.drained),
            impaired: moved(rotation.impaired, b.rotation.impaired, a.rotation.impaired),
            failing_open: moved(
                rotation.failing_open,
                b.rotation.failing_open,
                a.rotation.failing_open,
            ),
        };
        let f = SlotFixes {
            duplicate: moved(
                fixes.duplicate,
                b.slot_fixes.duplicate,
                a.slot_fixes.duplicate,
            ),
            invalid: moved(fixes.invalid, b.slot_fixes.invalid, a.slot_fixes.invalid),
            above_size: moved(
                fixes.above_size,
                b.slot_fixes.above_size,
                a.slot_fixes.above_size,
            ),
        };
        (r, f)
    }

    /// The slot numbers after the change, from those before.
    pub fn slots(&self, before: &Slots) -> Slots {
        let mut slots = before.clone();
        slots.retain(|tier, _| !self.touched.contains(tier));
        slots.extend(self.part.slots.clone());
        slots
    }
}

impl Naming {
    /// The naming of the changed fleet `fleet`: `delta` applied to this, the naming of the
    /// fleet before. Its warnings are the delta's.
    pub fn apply(&mut self, delta: &Delta, fleet: &[Arc<Instance>]) {
        let touched = &delta.touched;
        let part = &delta.part;
        self.names.retain(|h| !touched.contains(&h.name));
        self.names.extend(part.names.iter().cloned());
        self.names.sort_by(|a, b| a.name.cmp(&b.name));
        self.slots = delta.slots(&self.slots);
        self.services.retain(|s| !touched.contains(&s.tier));
        self.services.extend(part.services.iter().cloned());
        let id = |i: u32| fleet.get(i as usize).map(|inst| inst.id.as_str());
        // Stable, as naming sorts them: an instance's services under one owner keep tag order.
        self.services
            .sort_by(|a, b| (&a.owner, id(a.instance)).cmp(&(&b.owner, id(b.instance))));
        for &(at, inside) in &delta.inside_only {
            if inside {
                self.inside_only_instances.insert(at);
            } else {
                self.inside_only_instances.remove(&at);
            }
        }
        (self.rotation, self.slot_fixes) = delta.counts(self.rotation, self.slot_fixes);
        self.warnings = part.warnings.clone();
    }
}
