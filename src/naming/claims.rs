//! Claims: every value a rule turned into a name, gathered per name, then settled into one
//! [`HostName`](super::HostName) (a single-instance name to the newest launch, a tier to all).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::rules::{How, rule_values};
use super::via::claim_text;
use super::{
    Backing, HostName, Limits, MAX_NAMES_PER_TAG, Rules, Via, normalize, plain_name, quoted,
    vias_text,
};
use crate::inventory::Instance;

/// One instance's claims on a name: each via, and whether a single-instance rule made it.
pub(super) type ClaimVias = smallvec::SmallVec<[(Via, bool); 1]>;

/// Every claim on one name. Kept lean: a 100k fleet makes hundreds of thousands of these.
#[derive(Default)]
pub(super) struct Claims {
    /// fleet index → (via, whether a single-instance rule made it). A vector in claim order
    /// (an instance's claims come together), sorted by id when the names are made: most names
    /// have one claimant, and a map's first node alone was ~550 bytes per name.
    by_instance: smallvec::SmallVec<[(u32, ClaimVias); 1]>,
    /// Some claim came from a single-instance rule (or the instance id).
    single: bool,
    /// Some claim came from a tier rule.
    tier: bool,
    /// Some value was the name as is (but for case).
    plain: bool,
    /// Values that had to change to become this name, lower-cased, with their instance: more
    /// than one value collapsing onto the name is reported.
    altered: Vec<(String, u32)>,
    inside_only: bool,
    slots: bool,
}

impl Claims {
    /// Records one claim of instance `index` (fleet index) through `via`; `altered` is the
    /// lower-cased value when it had to change to become the name.
    pub(super) fn add(&mut self, index: u32, via: Via, how: How, altered: Option<String>) {
        self.single |= how.single;
        self.tier |= !how.single;
        match altered {
            Some(lower) => self.altered.push((lower, index)),
            None => self.plain = true,
        }
        // One inside-only claim hides the name: showing it outside would leak that one.
        self.inside_only |= how.inside_only;
        self.slots |= how.slots;
        if self.by_instance.last().is_none_or(|(i, _)| *i != index) {
            self.by_instance.push((index, ClaimVias::new()));
        }
        if let Some((_, vias)) = self.by_instance.last_mut()
            && !vias.iter().any(|(v, _)| *v == via)
        {
            vias.push((via, how.single));
        }
    }

    /// The name these claims make: a single-instance name goes to the newest launch (the
    /// others are reported), any other to every claimant. Warnings name what was contested.
    pub(super) fn settle(
        mut self,
        name: String,
        fleet: &[Arc<Instance>],
        rule_tags: &[Option<String>],
        warnings: &mut Vec<String>,
    ) -> HostName {
        let id = |i: u32| fleet[i as usize].id.as_str();
        let c = &mut self;
        c.sort_instances(fleet);
        // One single-instance claim makes the name single: a database named by `SG-I-DB2` and
        // a `Name` tag must never answer two instances while a replacement overlaps the old one.
        let single = c.single;
        if let Some(from) = c.collisions(fleet) {
            warnings.push(format!(
                "{name}: different values collapse onto this name: {}",
                from.join(", ")
            ));
        }
        // Only a contested name can have a conflict worth reporting: skip the scan otherwise.
        let contested_by_both = c.single && c.tier && c.by_instance.len() > 1;
        let conflict =
            contested_by_both
                .then(|| c.conflict())
                .flatten()
                .map(|((si, sv), (ti, tv))| {
                    (
                        sv.text(&fleet[si as usize], &name, rule_tags),
                        tv.text(&fleet[ti as usize], &name, rule_tags),
                    )
                });
        let mut backing: Vec<Backing> = std::mem::take(&mut c.by_instance)
            .into_iter()
            .map(|(instance, via)| Backing {
                instance,
                via: via.into_iter().map(|(v, _)| v).collect(),
            })
            .collect();
        let mut contested = Vec::new();
        if single && backing.len() > 1 {
            // Newest launch wins: during a replacement the successor is the one to reach.
            // Ties (or unknown launch times) fall to the larger id, so the choice is stable.
            let winner = backing
                .iter()
                .max_by_key(|b| (fleet[b.instance as usize].launch_time, id(b.instance)))
                .map_or(0, |b| b.instance);
            let winner_id = id(winner);
            let losers: Vec<&Backing> = backing.iter().filter(|b| b.instance != winner).collect();
            if let Some((single_via, tier_via)) = &conflict {
                warnings.push(format!(
                    "{name}: conflict: a tier rule ({tier_via}) and a single-instance rule \
                     ({single_via}) claim it; it names one instance"
                ));
                contested.push(format!(
                    "conflict: the tier claim ({tier_via}) is overruled by the single-instance \
                     claim ({single_via})"
                ));
            }
            let ids: Vec<&str> = losers.iter().map(|b| id(b.instance)).collect();
            warnings.push(format!(
                "{name}: single-instance name claimed by {winner_id} and {}; serving {winner_id} (launched last)",
                ids.join(", ")
            ));
            for b in losers {
                let inst = &fleet[b.instance as usize];
                contested.push(format!(
                    "not served: {} via {}: a single-instance name, and {winner_id} launched later",
                    inst.id,
                    vias_text(&b.via, inst, &name, rule_tags)
                ));
            }
            backing.retain(|b| b.instance == winner);
        }
        HostName {
            name,
            backing: backing.into(),
            single,
            inside_only: c.inside_only,
            slots: c.slots && !single,
            contested,
        }
    }

    /// Sorts the claimants by id, merging an instance listed twice (the same id from two
    /// sources; the later entry in the fleet is the one kept, as in every id lookup).
    fn sort_instances(&mut self, fleet: &[Arc<Instance>]) {
        let id = |i: u32| fleet[i as usize].id.as_str();
        self.by_instance
            .sort_by(|a, b| id(a.0).cmp(id(b.0)).then(b.0.cmp(&a.0)));
        self.by_instance.dedup_by(|later, kept| {
            if id(later.0) != id(kept.0) {
                return false;
            }
            for via in later.1.drain(..) {
                if !kept.1.iter().any(|(v, _)| *v == via.0) {
                    kept.1.push(via);
                }
            }
            true
        });
    }

    /// The first claim (instance and via) of a single-instance rule and of a tier rule, when
    /// both kinds exist.
    fn conflict(&self) -> Option<((u32, Via), (u32, Via))> {
        let first = |single: bool| {
            self.by_instance.iter().find_map(|(i, vias)| {
                vias.iter()
                    .find(|(_, s)| *s == single)
                    .map(|(via, _)| (*i, *via))
            })
        };
        Some((first(true)?, first(false)?))
    }

    /// The distinct values (lower-cased) that collapse onto this name, with their instances,
    /// when there is more than one.
    fn collisions(&self, fleet: &[Arc<Instance>]) -> Option<Vec<String>> {
        let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (value, i) in &self.altered {
            values
                .entry(value)
                .or_default()
                .insert(&fleet[*i as usize].id);
        }
        if values.len() + usize::from(self.plain) < 2 {
            return None;
        }
        let mut out: Vec<String> = values
            .into_iter()
            .map(|(v, ids)| {
                format!(
                    "{} ({})",
                    quoted(v),
                    ids.into_iter().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        if self.plain {
            out.push("the name itself".to_owned());
        }
        Some(out)
    }
}

/// Every name one instance claims, each as the rules read it: `claim` hears the name (normalised
/// and within the zone's limits), its via, how its rule names, and the lower-cased value when
/// it had to change to become the name. Values that cannot be names are `warnings`. What
/// [`assign`](super::assign) gathers and the claim index of [`super::delta`] keeps.
pub(super) fn each(
    inst: &Instance,
    rules: &Rules,
    limits: &Limits,
    rule_tags: &[Option<String>],
    warnings: &mut Vec<String>,
    mut claim: impl FnMut(Cow<'_, str>, Via, How, Option<String>),
) {
    let claimed = |via: &Via, value: &str| claim_text(via, inst, value, rule_tags);
    let mut too_many = |key: &str, n: usize| {
        warnings.push(format!(
            "{}: tag {key} holds {n} names; only the first {MAX_NAMES_PER_TAG} are used",
            inst.id
        ));
    };
    let mut values = Vec::new();
    rule_values(inst, rules, &mut values, &mut too_many);
    for (value, via, how) in values {
        // Most values are names already, but for case (`host-1`, instance ids, `WEB`): those
        // skip normalising and its allocations.
        let (name, lower) = if let Some(name) = plain_name(value) {
            (name, None)
        } else {
            match normalize(value) {
                Ok(n) => (Cow::Owned(n), Some(value.to_lowercase())),
                Err(why) => {
                    let via = claimed(&via, value);
                    warnings.push(format!("{}: {via}: {why}; skipped", inst.id));
                    continue;
                }
            }
        };
        if let Some(why) = limits.refuses(&name) {
            warnings.push(format!(
                "{}: {}: {why}; skipped",
                inst.id,
                claimed(&via, value)
            ));
            continue;
        }
        let altered = lower.filter(|lower| *name != **lower);
        if altered.is_some() {
            warnings.push(format!(
                "{}: {} became `{name}` (not only lower-cased)",
                inst.id,
                claimed(&via, value)
            ));
        }
        claim(name, via, how, altered);
    }
}
