//! Naming: instances + rules → host names. Pure: no I/O, no clock, no logging.
//!
//! Rules run in order over every instance in a configured state. A tag rule turns a tag's value
//! (or each part of it, split on a separator) into a name; a security-group rule turns the
//! `name` capture of a regex over group names into one (`^SG-T-(?P<name>.+)$` → `web`). Every
//! instance is also named by its id. Values are normalised into DNS labels; what cannot be made
//! valid is skipped with a warning that names the instance, which the caller logs.
//!
//! A name backed by several instances is a tier. A name that only `single` rules (or the
//! instance id) made names one instance: if several claim it (a replacement overlapping its
//! predecessor, or a copied tag), the newest launch wins and the others are reported.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use crate::inventory::{Instance, InstanceState};

mod normalize;
mod slots;
mod why;
#[cfg(test)]
use normalize::is_normal;
pub use normalize::normalize;
use normalize::plain_name;
pub use slots::{
    MAX_TAG_KEY_LEN, SLOT_TAG_PREFIX, SlotFixes, SlotStore, slot_tag, slot_tag_writes,
};
use slots::{add_slot_names, assign_slots};
pub use why::{Claimant, claimants};

/// The validated `[naming]` config.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Only instances in these states get names.
    pub states: BTreeSet<InstanceState>,
    /// Whether every instance is also named by its id.
    pub instance_id_names: bool,
    /// In order.
    pub rules: Vec<Rule>,
    /// Tag whose value (`http:tcp:80`, comma-separated) makes SRV records under the tiers.
    pub srv_tag: String,
    /// Tag that, set to `true`, keeps every name of the instance from outside views.
    pub inside_only_tag: String,
    /// Tag that, set to `true`, takes the instance out of its tiers' answers (draining); it
    /// keeps its own names.
    pub drain_tag: String,
    /// Where tier slot numbers are kept between refreshes.
    pub slot_store: SlotStore,
}

/// One naming rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Where the name comes from.
    pub kind: RuleKind,
    /// The names it makes name one instance each.
    pub single: bool,
    /// The names it makes are never shown to outside views.
    pub inside_only: bool,
    /// The tiers it makes number their instances (`1.web`).
    pub slots: bool,
}

/// Where a rule reads names from.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// A tag's value; with a separator, each part of it.
    Tag {
        /// Tag key, e.g. `Name`.
        key: String,
        /// e.g. `,` for `dns:names = "db1, primary"`.
        separator: Option<String>,
    },
    /// The `name` capture of a regex over each security group's name.
    SecurityGroup {
        /// e.g. `^SG-T-(?P<name>.+)$`.
        pattern: Regex,
    },
}

/// A name and the instances behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    /// Relative to the zone apex, lower case, labels joined by dots (`db1`, `web.eu`).
    pub name: String,
    /// The instances it answers for, sorted by id; more than one makes it a tier.
    /// Shared, not copied, by every view of the snapshot that shows them all.
    pub backing: std::sync::Arc<[Backing]>,
    /// Made only by single-instance rules (or instance ids).
    pub single: bool,
    /// Never shown to outside views (an inside-only rule made it).
    pub inside_only: bool,
    /// A tier whose instances get numbered names (a rule with `slots` made it).
    pub slots: bool,
    /// Claims that lost (instances not served, overruled tier claims), for `_explain`.
    pub contested: Vec<String>,
}

/// Stable slot numbers: tier name → instance id → number (`1.web`).
pub type Slots = BTreeMap<String, BTreeMap<String, u32>>;

/// A service an instance offers (from the SRV tag), published under each of its tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Relative owner, e.g. `_http._tcp.web`.
    pub owner: String,
    /// The tier it is published under, e.g. `web`.
    pub tier: String,
    /// The instance offering it (fleet index).
    pub instance: u32,
    /// Port.
    pub port: u16,
}

/// One instance behind a name, and why. Compact (an index and, almost always, one via held
/// inline): a 100,000-instance fleet has hundreds of thousands of these, kept for the
/// snapshot's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// The instance: its index in the fleet the names were made from.
    pub instance: u32,
    /// Which rules made the name for it.
    pub via: Vias,
}

/// The vias of one instance behind one name: one, or rarely a few.
pub type Vias = smallvec::SmallVec<[Via; 1]>;

/// Why an instance has a name: the logic reads these (PTR targets prefer names a rule made),
/// people read their text (`_explain`, logs) through [`Via::text`]. Indices, not text: the
/// text is made only when someone reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Every instance is named by its id.
    InstanceId,
    /// A tag rule (by its index in [`Rules::rules`]) read the instance's tag.
    Tag {
        /// The rule.
        rule: u16,
    },
    /// A security-group rule matched one of the instance's groups.
    SecurityGroup {
        /// The group's index in the instance's list.
        group: u16,
    },
    /// A tier member's number; the tier is the name without its first label.
    Slot {
        /// The number.
        n: u32,
    },
    /// An SRV record from the service tag; the name is its owner.
    Service {
        /// The port.
        port: u16,
    },
    /// A PTR record for the instance's address.
    Address,
}

impl Via {
    /// The via as people read it. `name` is the relative name it made (a slot's tier and a
    /// service's owner are read from it); `rule_tags` is [`Naming::rule_tags`].
    pub fn text(&self, inst: &Instance, name: &str, rule_tags: &[Option<String>]) -> String {
        match *self {
            Via::InstanceId => "instance id".to_owned(),
            Via::Tag { rule } => {
                let key = rule_tags.get(usize::from(rule)).and_then(Option::as_deref);
                let key = key.unwrap_or("(unknown)");
                match inst.tags.get(key) {
                    Some(value) => format!("tag {key}={}", quoted(value)),
                    None => format!("tag {key}"),
                }
            }
            Via::SecurityGroup { group } => match inst.security_groups.get(usize::from(group)) {
                Some(g) => format!("security group {} ({})", g.name, g.id),
                None => "a security group".to_owned(),
            },
            Via::Slot { n } => {
                let tier = name.split_once('.').map_or(name, |(_, tier)| tier);
                format!("slot {n} of tier {tier}")
            }
            Via::Service { port } => format!("tag service {name} port {port}"),
            Via::Address => format!("address of {}", inst.id),
        }
    }
}

/// The text of one instance's vias for one name, for `_explain` and logs.
pub fn vias_text(
    vias: &[Via],
    inst: &Instance,
    name: &str,
    rule_tags: &[Option<String>],
) -> String {
    vias.iter()
        .map(|v| v.text(inst, name, rule_tags))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The result of naming a fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    /// Sorted by name.
    pub names: Vec<HostName>,
    /// Values that were skipped or contested, each naming the instance.
    pub warnings: Vec<String>,
    /// Slot numbers of every tier's instances: written to the fleet as tags (or kept by the
    /// next refresh, in the state-file mode).
    pub slots: Slots,
    /// Members renumbered because their number was taken, malformed or too high.
    pub slot_fixes: SlotFixes,
    /// SRV records to publish, sorted by owner.
    pub services: Vec<Service>,
    /// Instances tagged inside-only (by fleet index): outside views leave them out of every
    /// answer.
    pub inside_only_instances: BTreeSet<u32>,
    /// The tag each rule reads (`None` for a security-group rule), by rule index: what a
    /// [`Via::Tag`] needs to be read back as text.
    pub rule_tags: Vec<Option<String>>,
    /// Instances out of their tiers' answers, and tiers answering in full despite them.
    pub rotation: Rotation,
}

/// What draining and instance health did to the tiers, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Named instances tagged to drain.
    pub drained: u32,
    /// Named instances EC2 reports impaired (and not drained).
    pub impaired: u32,
    /// Tiers whose every member is drained or impaired, so answered in full.
    pub failing_open: u32,
}

/// Limits the caller knows from the zone: how long a relative name may be, which are taken.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Longest relative name (in presentation form) that still fits under the apex.
    pub max_name_len: usize,
    /// Relative names the zone itself uses (its nameservers); rules cannot take them.
    pub reserved: BTreeSet<String>,
}

impl Limits {
    /// Why the zone cannot hold `name` (relative, normalised), if it cannot: the one check
    /// that naming, slots and `stabledns why` all make, so they cannot drift.
    pub fn refuses(&self, name: &str) -> Option<String> {
        if name.len() > self.max_name_len {
            Some(format!(
                "`{name}` is longer than the {} characters that fit in the zone",
                self.max_name_len
            ))
        } else if self.reserved.contains(name) {
            Some(format!(
                "`{name}` is a name of the zone itself (a nameserver)"
            ))
        } else {
            None
        }
    }
}

impl Rules {
    /// Why `inst` gets no names at all, if it does not: its state.
    pub fn unnamed_because(&self, inst: &Instance) -> Option<String> {
        (!self.states.contains(&inst.state)).then(|| {
            let states: Vec<&str> = self.states.iter().map(|s| s.as_str()).collect();
            format!(
                "it is {}, and only {} instances get names (naming.states)",
                inst.state,
                states.join(", ")
            )
        })
    }
}

/// One instance's claims on a name: each via, and whether a single-instance rule made it.
type ClaimVias = smallvec::SmallVec<[(Via, bool); 1]>;

/// Every claim on one name. Kept lean: a 100k fleet makes hundreds of thousands of these.
#[derive(Default)]
struct Claims {
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
    /// Sorts the claimants by id, merging an instance listed twice (the same id from two
    /// sources; the later entry in the fleet is the one kept, as in every id lookup).
    fn sort_instances(&mut self, fleet: &[Instance]) {
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
    fn collisions(&self, fleet: &[Instance]) -> Option<Vec<String>> {
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

impl Rules {
    /// Whether the instance's inside-only tag says yes: no name of it is shown outside.
    pub fn tagged_inside_only(&self, inst: &Instance) -> bool {
        inst.tags
            .get(&self.inside_only_tag)
            .is_some_and(|v| truthy(v))
    }

    /// Whether the instance's drain tag says yes: it leaves its tiers' answers.
    pub fn tagged_drain(&self, inst: &Instance) -> bool {
        inst.tags.get(&self.drain_tag).is_some_and(|v| truthy(v))
    }

    /// The tag each rule reads (`None` for a security-group rule), by rule index.
    fn tags(&self) -> Vec<Option<String>> {
        self.rules
            .iter()
            .map(|r| match &r.kind {
                RuleKind::Tag { key, .. } => Some(key.clone()),
                RuleKind::SecurityGroup { .. } => None,
            })
            .collect()
    }
}

/// Whether a tag value means yes.
fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1"
    )
}

/// Names a fleet. `previous` holds the slot numbers the last refresh gave, so instances keep
/// theirs. Backings refer to instances by their index in `instances`.
pub fn assign(instances: &[Instance], rules: &Rules, limits: &Limits, previous: &Slots) -> Naming {
    // Hashed while claiming (hundreds of thousands of names), sorted once at the end.
    let mut claims: rustc_hash::FxHashMap<String, Claims> = Default::default();
    let mut warnings = Vec::new();
    let rule_tags = rules.tags();

    let named: Vec<(u32, &Instance)> = (0u32..)
        .zip(instances)
        .filter(|(_, i)| rules.unnamed_because(i).is_none())
        .collect();

    let inside_only_instances: BTreeSet<u32> = named
        .iter()
        .filter(|(_, i)| rules.tagged_inside_only(i))
        .map(|(n, _)| *n)
        .collect();
    for &(index, inst) in &named {
        let claimed = |via: &Via, value: &str| claim_text(via, inst, value, &rule_tags);
        let mut claim = |value: &str,
                         via: Via,
                         (single, inside_only, slots): (bool, bool, bool),
                         warnings: &mut Vec<String>| {
            // Most values are names already, but for case (`host-1`, instance ids, `WEB`):
            // those skip normalising and its allocations.
            let (name, lower) = if let Some(name) = plain_name(value) {
                (name, None)
            } else {
                match normalize(value) {
                    Ok(n) => (Cow::Owned(n), Some(value.to_lowercase())),
                    Err(why) => {
                        let via = claimed(&via, value);
                        warnings.push(format!("{}: {via}: {why}; skipped", inst.id));
                        return;
                    }
                }
            };
            if let Some(why) = limits.refuses(&name) {
                warnings.push(format!(
                    "{}: {}: {why}; skipped",
                    inst.id,
                    claimed(&via, value)
                ));
                return;
            }
            let altered = lower.filter(|lower| *name != **lower);
            if altered.is_some() {
                warnings.push(format!(
                    "{}: {} became `{name}` (not only lower-cased)",
                    inst.id,
                    claimed(&via, value)
                ));
            }
            // The key is allocated only for a name not claimed before (a tier's first member).
            let c = match claims.get_mut(name.as_ref()) {
                Some(c) => c,
                None => claims.entry(name.into_owned()).or_default(),
            };
            c.single |= single;
            c.tier |= !single;
            match altered {
                Some(lower) => c.altered.push((lower, index)),
                None => c.plain = true,
            }
            // One inside-only claim hides the name: showing it outside would leak that one.
            c.inside_only |= inside_only;
            c.slots |= slots;
            if c.by_instance.last().is_none_or(|(i, _)| *i != index) {
                c.by_instance.push((index, ClaimVias::new()));
            }
            if let Some((_, vias)) = c.by_instance.last_mut()
                && !vias.iter().any(|(v, _)| *v == via)
            {
                vias.push((via, single));
            }
        };

        let mut too_many = |key: &str, n: usize| {
            warnings.push(format!(
                "{}: tag {key} holds {n} names; only the first {MAX_NAMES_PER_TAG} are used",
                inst.id
            ));
        };
        let mut values = Vec::new();
        rule_values(inst, rules, &mut values, &mut too_many);
        for (value, via, how) in values {
            claim(value, via, how, &mut warnings);
        }
    }

    let fleet = instances;
    let id = |i: u32| fleet[i as usize].id.as_str();
    let mut claims: Vec<(String, Claims)> = claims.into_iter().collect();
    claims.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut names = Vec::with_capacity(claims.len());
    for (name, mut c) in claims {
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
                        sv.text(&fleet[si as usize], &name, &rule_tags),
                        tv.text(&fleet[ti as usize], &name, &rule_tags),
                    )
                });
        let mut backing: Vec<Backing> = c
            .by_instance
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
                    vias_text(&b.via, inst, &name, &rule_tags)
                ));
            }
            backing.retain(|b| b.instance == winner);
        }
        names.push(HostName {
            name,
            backing: backing.into(),
            single,
            inside_only: c.inside_only,
            slots: c.slots && !single,
            contested,
        });
    }
    // Slots are numbered before rotation: a drained member keeps its number and `1.web`.
    let (slots, slot_fixes, notes) = assign_slots(&names, fleet, rules, previous, &mut warnings);
    add_slot_names(&mut names, &slots, fleet, limits, &mut warnings);
    for note in notes {
        if let Ok(i) = names.binary_search_by(|h| h.name.as_str().cmp(&note.name)) {
            names[i].contested.push(note.line);
        }
    }
    let rotation = rotate(&mut names, &named, rules);
    // After rotation, so a drained member's SRV records leave its tiers with it.
    let services = services(&names, &named, fleet, &rules.srv_tag, &mut warnings);
    Naming {
        names,
        warnings,
        slots,
        slot_fixes,
        services,
        inside_only_instances,
        rule_tags,
        rotation,
    }
}

/// Takes drained and impaired instances out of every tier (a name a tier rule made), but
/// never the last ones: a tier whose every member is out answers them all, as Route 53's
/// health checks fail open, because an empty answer is cached as NXDOMAIN or NODATA and
/// breaks every client at once. Their own names (ids, single-instance rules, slots) stay.
fn rotate(names: &mut [HostName], named: &[(u32, &Instance)], rules: &Rules) -> Rotation {
    let mut rotation = Rotation::default();
    let mut out: rustc_hash::FxHashMap<u32, String> = Default::default();
    for &(i, inst) in named {
        let why = if rules.tagged_drain(inst) {
            rotation.drained += 1;
            format!("drained: tag {}=true", rules.drain_tag)
        } else if inst.impaired {
            rotation.impaired += 1;
            "impaired: EC2 reports its status impaired".to_owned()
        } else {
            continue;
        };
        out.insert(i, format!("out of rotation: {} ({why})", inst.id));
    }
    if out.is_empty() {
        return rotation;
    }
    for host in names.iter_mut().filter(|h| !h.single) {
        let leaving = host
            .backing
            .iter()
            .filter(|b| out.contains_key(&b.instance))
            .count();
        if leaving == 0 {
            continue;
        }
        if leaving == host.backing.len() {
            // A name one instance makes through a tier rule (its `Name` tag) is no tier: it
            // stays, without counting as one failing open.
            let line = if leaving == 1 {
                "its only instance is drained or impaired: answering it (fail open)"
            } else {
                rotation.failing_open += 1;
                "every instance behind it is drained or impaired: answering them all (fail open)"
            };
            host.contested.push(line.to_owned());
            continue;
        }
        for b in host.backing.iter() {
            if let Some(line) = out.get(&b.instance) {
                host.contested.push(line.clone());
            }
        }
        let kept: Vec<Backing> = host
            .backing
            .iter()
            .filter(|b| !out.contains_key(&b.instance))
            .cloned()
            .collect();
        host.backing = kept.into();
    }
    rotation
}

/// Every value the rules read from one instance, in rule order (its id first, when ids are
/// names), each with its via and its rule's (single, inside-only, slots): the parts of a
/// separated tag, at most [`MAX_NAMES_PER_TAG`] of them (`too_many` hears of a longer list),
/// and the `name` capture of each matching group. What `assign` claims and `claimants`
/// explains.
fn rule_values<'a>(
    inst: &'a Instance,
    rules: &Rules,
    out: &mut Vec<(&'a str, Via, (bool, bool, bool))>,
    too_many: &mut impl FnMut(&str, usize),
) {
    if rules.instance_id_names {
        out.push((&inst.id, Via::InstanceId, (true, false, false)));
    }
    for (rule_index, rule) in rules.rules.iter().enumerate() {
        let how = (rule.single, rule.inside_only, rule.slots);
        let rule_index = u16::try_from(rule_index).unwrap_or(u16::MAX);
        match &rule.kind {
            RuleKind::Tag { key, separator } => {
                let Some(value) = inst.tags.get(key) else {
                    continue;
                };
                let via = Via::Tag { rule: rule_index };
                match separator {
                    Some(sep) => {
                        let parts: Vec<&str> = value
                            .split(sep.as_str())
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .collect();
                        if parts.len() > MAX_NAMES_PER_TAG {
                            too_many(key, parts.len());
                        }
                        for part in parts.into_iter().take(MAX_NAMES_PER_TAG) {
                            out.push((part, via, how));
                        }
                    }
                    None => out.push((value, via, how)),
                }
            }
            RuleKind::SecurityGroup { pattern } => {
                for (group, sg) in inst.security_groups.iter().enumerate() {
                    let Some(m) = pattern.captures(&sg.name).and_then(|c| c.name("name")) else {
                        continue;
                    };
                    let group = u16::try_from(group).unwrap_or(u16::MAX);
                    out.push((m.as_str(), Via::SecurityGroup { group }, how));
                }
            }
        }
    }
}

/// A claim as warnings and `stabledns why` name it: a tag rule's text shows the value (or part)
/// that was read, not the whole tag.
fn claim_text(via: &Via, inst: &Instance, value: &str, rule_tags: &[Option<String>]) -> String {
    match via {
        Via::Tag { rule } => format!(
            "tag {}={}",
            rule_tags
                .get(usize::from(*rule))
                .and_then(Option::as_deref)
                .unwrap_or_default(),
            quoted(value)
        ),
        _ => via.text(inst, value, rule_tags),
    }
}

/// SRV records from the SRV tag (`http:tcp:80, metrics:tcp:9100`) under every tier the
/// instance is in.
fn services(
    names: &[HostName],
    named: &[(u32, &Instance)],
    fleet: &[Instance],
    tag: &str,
    warnings: &mut Vec<String>,
) -> Vec<Service> {
    let mut out = Vec::new();
    // By fleet index, in id order (so are the warnings): every named instance's tag, parsed
    // once however many tiers it is in.
    let mut ids: Vec<u32> = named.iter().map(|(i, _)| *i).collect();
    ids.sort_by(|a, b| fleet[*a as usize].id.cmp(&fleet[*b as usize].id));
    let mut parsed: rustc_hash::FxHashMap<u32, Vec<(String, String, u16)>> = Default::default();
    for i in ids {
        let inst = &fleet[i as usize];
        let Some(value) = inst.tags.get(tag) else {
            continue;
        };
        let mut list = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match parse_service(item) {
                Some(s) => list.push(s),
                None => warnings.push(format!(
                    "{}: tag {tag}={item:?} is not service:protocol:port (e.g. http:tcp:80); skipped",
                    inst.id
                )),
            }
        }
        parsed.insert(i, list);
    }
    for host in names.iter().filter(|h| !h.single) {
        for b in host.backing.iter() {
            for (service, proto, port) in parsed.get(&b.instance).into_iter().flatten() {
                out.push(Service {
                    owner: format!("_{service}._{proto}.{}", host.name),
                    tier: host.name.clone(),
                    instance: b.instance,
                    port: *port,
                });
            }
        }
    }
    let id = |i: u32| fleet[i as usize].id.as_str();
    out.sort_by(|a, b| (&a.owner, id(a.instance)).cmp(&(&b.owner, id(b.instance))));
    out
}

/// `http:tcp:80` → ("http", "tcp", 80). Service names per RFC 6335: letters, digits, hyphens.
fn parse_service(item: &str) -> Option<(String, String, u16)> {
    let mut parts = item.split(':').map(str::trim);
    let (service, proto, port) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 15
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let proto = proto.to_ascii_lowercase();
    if !label_ok(service) || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let port = port.parse().ok()?;
    Some((service.to_ascii_lowercase(), proto, port))
}

/// A tag value for logs and `_explain`: quoted, and cut short when it is long (tags hold up
/// to 256 characters in AWS, more in a hand-made dump).
fn quoted(s: &str) -> String {
    const SHOWN: usize = 80;
    match s.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
        None => format!("{s:?}"),
    }
}

/// Names one separated tag may give one instance: a runaway value must not flood the zone.
pub const MAX_NAMES_PER_TAG: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::SecurityGroup;

    fn inst(id: &str, state: InstanceState, tags: &[(&str, &str)], sgs: &[&str]) -> Instance {
        Instance {
            id: id.to_owned(),
            state,
            launch_time: None,
            account: None,
            region: None,
            availability_zone: None,
            vpc_id: None,
            subnet_id: None,
            private_ip: None,
            private_dns_name: None,
            public_ip: None,
            public_dns_name: None,
            ipv6: vec![],
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            security_groups: sgs
                .iter()
                .enumerate()
                .map(|(n, s)| SecurityGroup {
                    id: format!("sg-{n}").into(),
                    name: (*s).into(),
                })
                .collect(),
            impaired: false,
        }
    }

    fn rules() -> Rules {
        Rules {
            states: [InstanceState::Running].into(),
            instance_id_names: true,
            rules: vec![
                Rule {
                    kind: RuleKind::Tag {
                        key: "Name".into(),
                        separator: None,
                    },
                    single: false,
                    inside_only: false,
                    slots: false,
                },
                Rule {
                    kind: RuleKind::Tag {
                        key: "dns:names".into(),
                        separator: Some(",".into()),
                    },
                    single: false,
                    inside_only: false,
                    slots: false,
                },
                Rule {
                    kind: RuleKind::SecurityGroup {
                        pattern: Regex::new("^SG-T-(?P<name>.+)$").expect("regex"),
                    },
                    single: false,
                    inside_only: false,
                    slots: false,
                },
                Rule {
                    kind: RuleKind::SecurityGroup {
                        pattern: Regex::new("^SG-I-(?P<name>.+)$").expect("regex"),
                    },
                    single: true,
                    inside_only: false,
                    slots: false,
                },
            ],
            srv_tag: "stabledns:srv".into(),
            inside_only_tag: "stabledns:inside-only".into(),
            drain_tag: "stabledns:drain".into(),
            slot_store: SlotStore::Tags,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_name_len: 200,
            reserved: ["ns1".to_owned()].into(),
        }
    }

    /// name → (backing ids, single)
    fn table(n: &Naming, fleet: &[Instance]) -> BTreeMap<String, (Vec<String>, bool)> {
        n.names
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    (
                        h.backing
                            .iter()
                            .map(|b| fleet[b.instance as usize].id.clone())
                            .collect(),
                        h.single,
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn drained_and_impaired_members_leave_their_tiers_but_never_the_last() {
        let mut fleet = vec![
            inst(
                "i-1",
                InstanceState::Running,
                &[("Name", "web1"), ("stabledns:srv", "http:tcp:80")],
                &["SG-T-WEB", "SG-I-WEB1"],
            ),
            inst(
                "i-2",
                InstanceState::Running,
                &[
                    ("Name", "web2"),
                    ("stabledns:srv", "http:tcp:80"),
                    ("stabledns:drain", "true"),
                ],
                &["SG-T-WEB", "SG-I-WEB2"],
            ),
            inst(
                "i-3",
                InstanceState::Running,
                &[("Name", "web3"), ("stabledns:srv", "http:tcp:80")],
                &["SG-T-WEB", "SG-I-WEB3"],
            ),
            inst(
                "i-4",
                InstanceState::Running,
                &[("stabledns:drain", "yes")],
                &["SG-T-DB"],
            ),
            inst("i-5", InstanceState::Running, &[], &["SG-T-DB"]),
        ];
        fleet[2].impaired = true;
        fleet[4].impaired = true;
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        let t = table(&n, &fleet);
        assert_eq!(
            t["web"].0,
            ["i-1"],
            "the drained and the impaired member leave"
        );
        let web = n.names.iter().find(|h| h.name == "web").expect("web");
        assert_eq!(
            web.contested,
            [
                "out of rotation: i-2 (drained: tag stabledns:drain=true)",
                "out of rotation: i-3 (impaired: EC2 reports its status impaired)",
            ]
        );
        // Their own names stay: ids, single-instance groups, and a Name tag only they carry.
        for own in ["i-2", "web2", "i-3", "web3"] {
            assert_eq!(t[own].0.len(), 1, "{own}");
        }
        assert_eq!(t["web2"].0, ["i-2"]);
        let srv: Vec<&str> = n
            .services
            .iter()
            .filter(|s| s.tier == "web")
            .map(|s| fleet[s.instance as usize].id.as_str())
            .collect();
        assert_eq!(srv, ["i-1"], "SRV records follow the tier");
        // Every db member is out: the tier answers them all.
        assert_eq!(t["db"].0, ["i-4", "i-5"]);
        assert_eq!(
            n.rotation,
            Rotation {
                drained: 2,
                impaired: 2,
                failing_open: 1
            }
        );
        // Without drain or health, nothing changes.
        for i in &mut fleet {
            i.impaired = false;
            i.tags.insert("stabledns:drain", "false".to_owned());
        }
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        assert_eq!(table(&n, &fleet)["web"].0, ["i-1", "i-2", "i-3"]);
        assert_eq!(n.rotation, Rotation::default());
    }

    #[test]
    fn normalisation_table() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("db1", Ok("db1")),
            ("DB1", Ok("db1")),
            ("  web  ", Ok("web")),
            ("Web Server #1", Ok("web-server-1")),
            ("api_gateway", Ok("api-gateway")),
            ("web.eu", Ok("web.eu")),
            ("web..eu.", Ok("web.eu")),
            ("--edge--", Ok("edge")),
            ("café", Ok("xn--caf-dma")),
            ("CAFÉ", Ok("xn--caf-dma")),
            ("ÜBER_cache", Ok("xn--ber-cache-p9a")),
            ("xn--caf-dma", Ok("xn--caf-dma")),
            ("a--b", Ok("a-b")),
            ("café。eu", Ok("xn--caf-dma.eu")),
            ("*", Err(())),
            ("", Err(())),
            ("!!!", Err(())),
            ("...", Err(())),
            ("ünïcödé", Ok("xn--ncd-dma1a7bzb")),
            ("\u{1F680}", Ok("xn--158h")),
            ("web\u{0378}", Err(())),
        ];
        for (input, want) in cases {
            let got = normalize(input);
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
                Err(()) => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
        }
        // The shortcut for values that are names already must agree with the general path.
        let more = [
            "host-1", "i-0abc", "web.eu", "a--b", "-a", "a-", "a.", ".a", "a..b", "Web", "x y",
        ];
        for input in cases.iter().map(|(i, _)| *i).chain(more) {
            if is_normal(input) {
                assert_eq!(normalize(input).as_deref(), Ok(input), "input {input:?}");
            }
            if let Some(name) = plain_name(input) {
                assert_eq!(normalize(input).as_deref(), Ok(&*name), "input {input:?}");
            }
        }
        assert!(is_normal("host-1") && is_normal("web.eu") && is_normal(&"x".repeat(63)));
        assert!(!is_normal("xn--caf-dma") && !is_normal(&"x".repeat(64)) && !is_normal("Web"));
        let long = "x".repeat(100);
        assert_eq!(normalize(&long).map(|s| s.len()), Ok(63));
        // Truncation must not leave a trailing hyphen.
        let edge = format!("{}-y", "x".repeat(62));
        assert_eq!(normalize(&edge), Ok("x".repeat(62)));
    }

    #[test]
    fn tiers_singles_and_ids() {
        let fleet = vec![
            inst(
                "i-w1",
                InstanceState::Running,
                &[("Name", "web-1")],
                &["SG-T-WEB", "SG-I-WEB1"],
            ),
            inst(
                "i-w2",
                InstanceState::Running,
                &[("Name", "web-2")],
                &["SG-T-WEB", "SG-I-WEB2"],
            ),
            inst(
                "i-d1",
                InstanceState::Running,
                &[("dns:names", "db1, primary ,")],
                &["SG-T-DB"],
            ),
            inst(
                "i-old",
                InstanceState::Stopped,
                &[("Name", "web-1")],
                &["SG-T-WEB"],
            ),
            inst("i-x", InstanceState::Running, &[], &["default", "SG-T-"]),
        ];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        let t = table(&n, &fleet);
        let get = |k: &str| {
            t.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} missing in {t:?}"))
        };
        assert_eq!(get("web"), (vec!["i-w1".into(), "i-w2".into()], false));
        assert_eq!(get("web1"), (vec!["i-w1".into()], true));
        assert_eq!(get("web-1"), (vec!["i-w1".into()], false));
        assert_eq!(get("db1"), (vec!["i-d1".into()], false));
        assert_eq!(get("primary"), (vec!["i-d1".into()], false));
        assert_eq!(get("db"), (vec!["i-d1".into()], false));
        assert_eq!(get("i-w1"), (vec!["i-w1".into()], true));
        assert_eq!(get("i-x"), (vec!["i-x".into()], true));
        assert!(!t.contains_key("i-old"), "stopped instances get no name");
        // `SG-T-` does not match `.+`, `default` matches nothing: no name, no warning.
        assert_eq!(t.len(), 12, "{t:?}");
        assert!(n.warnings.is_empty(), "{:?}", n.warnings);
        let web = n.names.iter().find(|h| h.name == "web").expect("web");
        assert_eq!(
            vias_text(&web.backing[0].via, &fleet[0], "web", &n.rule_tags),
            "security group SG-T-WEB (sg-0)"
        );
    }

    #[test]
    fn configured_states_decide_who_is_named() {
        let fleet = vec![
            inst("i-a", InstanceState::Stopped, &[("Name", "a")], &[]),
            inst("i-b", InstanceState::Pending, &[("Name", "b")], &[]),
        ];
        let mut r = rules();
        r.states = [InstanceState::Running, InstanceState::Pending].into();
        let t = table(&assign(&fleet, &r, &limits(), &Slots::new()), &fleet);
        assert!(t.contains_key("b") && t.contains_key("i-b"));
        assert!(!t.contains_key("a") && !t.contains_key("i-a"));
    }

    #[test]
    fn odd_values_are_skipped_with_a_warning_naming_the_instance() {
        let fleet = vec![
            inst(
                "i-odd",
                InstanceState::Running,
                &[("Name", "%%%")],
                &["SG-I-NS1"],
            ),
            inst(
                "i-long",
                InstanceState::Running,
                &[("Name", &"a.".repeat(120))],
                &[],
            ),
        ];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        let t = table(&n, &fleet);
        assert_eq!(t.keys().collect::<Vec<_>>(), ["i-long", "i-odd"]);
        assert_eq!(n.warnings.len(), 3, "{:?}", n.warnings);
        assert!(
            n.warnings[0].starts_with("i-odd: tag Name=\"%%%\""),
            "{:?}",
            n.warnings
        );
        assert!(n.warnings[1].contains("nameserver"), "{:?}", n.warnings);
        assert!(n.warnings[2].starts_with("i-long") && n.warnings[2].contains("longer"));
    }

    #[test]
    fn contested_single_names_go_to_the_newest_launch() {
        let mut old = inst("i-b-old", InstanceState::Running, &[], &["SG-I-DB1"]);
        old.launch_time = Some("2026-01-01T00:00:00Z".parse().expect("time"));
        let mut new = inst("i-a-new", InstanceState::Running, &[], &["SG-I-DB1"]);
        new.launch_time = Some("2026-06-01T00:00:00Z".parse().expect("time"));
        let fleet = [old, new];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        let t = table(&n, &fleet);
        assert_eq!(t["db1"], (vec!["i-a-new".into()], true));
        assert_eq!(n.warnings.len(), 1);
        assert!(
            n.warnings[0].contains("serving i-a-new"),
            "{:?}",
            n.warnings
        );
    }

    #[test]
    fn a_single_rule_makes_a_name_single_even_when_a_tier_rule_also_claims_it() {
        // The README's convention during a launch-then-terminate replacement: both instances
        // carry Name=db2 (a tier rule) and SG-I-DB2 (a single rule).
        let mut old = inst(
            "i-b-old",
            InstanceState::Running,
            &[("Name", "db2")],
            &["SG-I-DB2"],
        );
        old.launch_time = Some("2026-01-01T00:00:00Z".parse().expect("time"));
        let mut new = inst(
            "i-a-new",
            InstanceState::Running,
            &[("Name", "db2")],
            &["SG-I-DB2"],
        );
        new.launch_time = Some("2026-06-01T00:00:00Z".parse().expect("time"));
        let fleet = [old, new];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        assert_eq!(table(&n, &fleet)["db2"], (vec!["i-a-new".into()], true));
        let db2 = n.names.iter().find(|h| h.name == "db2").expect("db2");
        assert_eq!(
            vias_text(&db2.backing[0].via, &fleet[1], "db2", &n.rule_tags),
            "tag Name=\"db2\"; security group SG-I-DB2 (sg-0)"
        );
        assert!(
            db2.contested.iter().any(|c| c.contains("i-b-old")),
            "{:?}",
            db2.contested
        );
        assert!(
            db2.contested.iter().any(|c| c.starts_with("conflict")),
            "{:?}",
            db2.contested
        );
        let conflicts = n.warnings.iter().filter(|w| w.contains("conflict")).count();
        assert_eq!(conflicts, 1, "{:?}", n.warnings);

        // One instance with both claims is no conflict and no warning.
        let alone = inst(
            "i-1",
            InstanceState::Running,
            &[("Name", "db2")],
            &["SG-I-DB2"],
        );
        let n = assign(&[alone], &rules(), &limits(), &Slots::new());
        assert!(n.warnings.is_empty(), "{:?}", n.warnings);
    }

    #[test]
    fn altered_and_colliding_values_are_reported() {
        let fleet = vec![
            inst("i-1", InstanceState::Running, &[("Name", "café")], &[]),
            inst("i-2", InstanceState::Running, &[("Name", "web_1")], &[]),
            inst("i-3", InstanceState::Running, &[("Name", "Web-1")], &[]),
            inst(
                "i-4",
                InstanceState::Running,
                &[("Name", &"y".repeat(300))],
                &[],
            ),
            inst(
                "i-5",
                InstanceState::Running,
                &[("Name", "DB1")],
                &["SG-I-DB1"],
            ),
        ];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        let about = |what: &str| -> Vec<&String> {
            n.warnings.iter().filter(|w| w.contains(what)).collect()
        };
        assert_eq!(about("i-1: tag Name=\"café\"").len(), 1, "{:?}", n.warnings);
        assert!(
            about("i-1")[0].contains("`xn--caf-dma`"),
            "{:?}",
            n.warnings
        );
        assert_eq!(about("i-2:").len(), 1, "{:?}", n.warnings);
        assert!(about("i-3:").is_empty(), "lower-casing alone is silent");
        assert_eq!(about("i-4:").len(), 1, "cut to 63: {:?}", n.warnings);
        assert!(about("i-5").is_empty(), "DB1 and db1 are one value");
        let collide = about("collapse");
        assert_eq!(collide.len(), 1, "{:?}", n.warnings);
        assert!(collide[0].starts_with("web-1:") && collide[0].contains("i-2"));
    }

    #[test]
    fn duplicate_claims_by_one_instance_count_once() {
        let fleet = vec![inst(
            "i-1",
            InstanceState::Running,
            &[("Name", "api"), ("dns:names", "api,API, api")],
            &[],
        )];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        let api = n.names.iter().find(|h| h.name == "api").expect("api");
        assert_eq!(api.backing.len(), 1);
        // One via per rule: `api` and `API` are the same rule reading the same tag.
        assert_eq!(
            api.backing[0].via.as_slice(),
            [Via::Tag { rule: 0 }, Via::Tag { rule: 1 }]
        );
    }
    fn slots_of(n: &Naming, tier: &str) -> Vec<(String, u32)> {
        n.slots
            .get(tier)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn slots_are_kept_and_a_replacement_takes_the_lowest_free_number() {
        let mut r = rules();
        r.rules[2].slots = true; // SG-T-*
        let web = |id: &str, t: &str| {
            let mut i = inst(id, InstanceState::Running, &[], &["SG-T-WEB"]);
            i.launch_time = Some(t.parse().expect("time"));
            i
        };
        let fleet = vec![
            web("i-c", "2026-01-01T00:00:00Z"),
            web("i-a", "2026-02-01T00:00:00Z"),
            web("i-b", "2026-03-01T00:00:00Z"),
        ];
        let first = assign(&fleet, &r, &limits(), &Slots::new());
        // A new tier numbers by launch time, oldest first.
        assert_eq!(
            slots_of(&first, "web"),
            [("i-a".into(), 2), ("i-b".into(), 3), ("i-c".into(), 1)]
        );
        let t = table(&first, &fleet);
        assert_eq!(t["1.web"], (vec!["i-c".to_owned()], true));
        assert_eq!(t["3.web"], (vec!["i-b".to_owned()], true));

        // i-a (slot 2) is replaced by i-d, launched last: it takes 2, the others keep theirs.
        let fleet = vec![
            web("i-c", "2026-01-01T00:00:00Z"),
            web("i-b", "2026-03-01T00:00:00Z"),
            web("i-d", "2026-04-01T00:00:00Z"),
        ];
        let second = assign(&fleet, &r, &limits(), &first.slots);
        assert_eq!(
            slots_of(&second, "web"),
            [("i-b".into(), 3), ("i-c".into(), 1), ("i-d".into(), 2)]
        );
        // From scratch the numbers would differ: they live on only through `previous`.
        let scratch = assign(&fleet, &r, &limits(), &Slots::new());
        assert_eq!(slots_of(&scratch, "web")[2], ("i-d".into(), 3));
        // Single names get no slots.
        assert!(
            second.slots.keys().all(|k| k == "web"),
            "{:?}",
            second.slots
        );
    }

    #[test]
    fn a_rolling_replacement_keeps_the_numbers_one_to_n() {
        let mut r = rules();
        r.rules[2].slots = true; // SG-T-*
        let db = |id: &str, month: u32| {
            let mut i = inst(id, InstanceState::Running, &[], &["SG-T-DB"]);
            i.launch_time = Some(
                format!("2026-{month:02}-01T00:00:00Z")
                    .parse()
                    .expect("time"),
            );
            i
        };
        let first = assign(
            &[db("i-a", 1), db("i-b", 2), db("i-c", 3)],
            &r,
            &limits(),
            &Slots::new(),
        );
        assert_eq!(
            slots_of(&first, "db"),
            [("i-a".into(), 1), ("i-b".into(), 2), ("i-c".into(), 3)]
        );
        // Launch i-d to replace i-b: during the overlap it takes 4, nobody moves.
        let fleet = [db("i-a", 1), db("i-b", 2), db("i-c", 3), db("i-d", 4)];
        let overlap = assign(&fleet, &r, &limits(), &first.slots);
        assert_eq!(slots_of(&overlap, "db")[3], ("i-d".into(), 4));
        assert_eq!(table(&overlap, &fleet)["2.db"].0, ["i-b"]);
        // i-b terminates: i-d moves into 2, so 1..3 answer again and 4 is gone.
        let fleet = [db("i-a", 1), db("i-c", 3), db("i-d", 4)];
        let after = assign(&fleet, &r, &limits(), &overlap.slots);
        assert_eq!(
            slots_of(&after, "db"),
            [("i-a".into(), 1), ("i-c".into(), 3), ("i-d".into(), 2)]
        );
        let t = table(&after, &fleet);
        assert_eq!(t["2.db"].0, ["i-d"]);
        assert!(!t.contains_key("4.db"));
        // Two members above the size after a shrink: the earlier launch takes the lower number.
        let wide = [
            db("i-a", 1),
            db("i-b", 2),
            db("i-c", 3),
            db("i-d", 4),
            db("i-e", 5),
        ];
        let wide = assign(&wide, &r, &limits(), &Slots::new());
        let fleet = [db("i-a", 1), db("i-d", 4), db("i-e", 5)];
        let shrunk = assign(&fleet, &r, &limits(), &wide.slots);
        assert_eq!(
            slots_of(&shrunk, "db"),
            [("i-a".into(), 1), ("i-d".into(), 2), ("i-e".into(), 3)]
        );
        // A number held twice in a damaged state file goes to one member only.
        let mut bad = Slots::new();
        bad.insert("db".into(), [("i-a".into(), 1), ("i-c".into(), 1)].into());
        let fixed = assign(&[db("i-a", 1), db("i-c", 3)], &r, &limits(), &bad);
        assert_eq!(
            slots_of(&fixed, "db"),
            [("i-a".into(), 1), ("i-c".into(), 2)]
        );
    }

    /// A `db` tier from `SG-T-DB`, members launched in the given months, with slot tags.
    fn db_tier(members: &[(&str, u32, Option<&str>)]) -> (Rules, Vec<Instance>) {
        let mut r = rules();
        r.rules[2].slots = true; // SG-T-*
        let fleet = members
            .iter()
            .map(|&(id, month, tag)| {
                let tags: Vec<(&str, &str)> =
                    tag.map(|t| ("stabledns:slot:db", t)).into_iter().collect();
                let mut i = inst(id, InstanceState::Running, &tags, &["SG-T-DB"]);
                i.launch_time = Some(
                    format!("2026-{month:02}-01T00:00:00Z")
                        .parse()
                        .expect("time"),
                );
                i
            })
            .collect();
        (r, fleet)
    }

    #[test]
    fn slot_tags_decide_the_numbers_whatever_the_history() {
        // The fleet after a launch-first replacement of i-b (slot 2) by i-d, tags written by a
        // replica that saw it all: i-d moved into 2.
        let (r, fleet) = db_tier(&[
            ("i-a", 1, Some("1")),
            ("i-c", 3, Some("3")),
            ("i-d", 4, Some("2")),
        ]);
        let fresh = assign(&fleet, &r, &limits(), &Slots::new());
        // A replica whose state file remembers another numbering follows the tags.
        let mut other = Slots::new();
        other.insert(
            "db".into(),
            [("i-a".into(), 1), ("i-c".into(), 2), ("i-d".into(), 3)].into(),
        );
        let old = assign(&fleet, &r, &limits(), &other);
        let want = [("i-a".into(), 1), ("i-c".into(), 3), ("i-d".into(), 2)];
        assert_eq!(slots_of(&fresh, "db"), want);
        assert_eq!(slots_of(&old, "db"), want);
        assert_eq!(fresh.slot_fixes, SlotFixes::default());
        assert!(slot_tag_writes(&fresh.slots, &fleet).is_empty());
        // Untagged i-d during the overlap and after: every replica gives it the same number,
        // and the writes say which tag to set.
        let (r, fleet) = db_tier(&[
            ("i-a", 1, Some("1")),
            ("i-c", 3, Some("3")),
            ("i-d", 4, None),
        ]);
        let n = assign(&fleet, &r, &limits(), &other);
        assert_eq!(slots_of(&n, "db")[2], ("i-d".into(), 2));
        let writes = slot_tag_writes(&n.slots, &fleet);
        assert_eq!(writes.len(), 1);
        assert_eq!(
            (
                writes[0].instance.as_str(),
                writes[0].key.as_str(),
                writes[0].value.as_str()
            ),
            ("i-d", "stabledns:slot:db", "2")
        );
    }

    #[test]
    fn a_slot_held_twice_stays_with_the_earlier_launch() {
        // A launch template copied i-a's tag onto i-d.
        let (r, fleet) = db_tier(&[
            ("i-d", 4, Some("1")),
            ("i-a", 1, Some("1")),
            ("i-c", 3, Some("2")),
        ]);
        let n = assign(&fleet, &r, &limits(), &Slots::new());
        assert_eq!(
            slots_of(&n, "db"),
            [("i-a".into(), 1), ("i-c".into(), 2), ("i-d".into(), 3)]
        );
        assert_eq!(n.slot_fixes.duplicate, 1);
        assert!(
            n.warnings.iter().any(|w| w.contains("i-d")
                && w.contains("also claimed by i-a")
                && w.contains("renumbered 3")),
            "{:?}",
            n.warnings
        );
        let three = n.names.iter().find(|h| h.name == "3.db").expect("3.db");
        assert!(
            three
                .contested
                .iter()
                .any(|l| l.starts_with("renumbered: i-d")),
            "{:?}",
            three.contested
        );
        let writes = slot_tag_writes(&n.slots, &fleet);
        assert_eq!(
            writes
                .iter()
                .map(|w| (w.instance.as_str(), w.value.as_str()))
                .collect::<Vec<_>>(),
            [("i-d", "3")]
        );
    }

    #[test]
    fn malformed_and_too_high_slot_tags_are_renumbered_not_fatal() {
        let (r, fleet) = db_tier(&[
            ("i-a", 1, Some("one")),
            ("i-b", 2, Some("-2")),
            ("i-c", 3, Some("9")),
            ("i-d", 4, Some(" 2 ")),
            ("i-e", 5, Some("0")),
        ]);
        let n = assign(&fleet, &r, &limits(), &Slots::new());
        // i-d keeps 2 (spaces are trimmed); the rest fill 1, 3, 4, 5 by launch.
        assert_eq!(
            slots_of(&n, "db"),
            [
                ("i-a".into(), 1),
                ("i-b".into(), 3),
                ("i-c".into(), 4),
                ("i-d".into(), 2),
                ("i-e".into(), 5)
            ]
        );
        assert_eq!(
            n.slot_fixes,
            SlotFixes {
                duplicate: 0,
                invalid: 3,
                above_size: 1
            }
        );
        assert_eq!(
            n.warnings
                .iter()
                .filter(|w| w.contains("renumbered"))
                .count(),
            4,
            "{:?}",
            n.warnings
        );
        // Every number 1..n answers exactly once.
        let t = table(&n, &fleet);
        for k in 1..=5 {
            assert_eq!(t[&format!("{k}.db")].0.len(), 1);
        }
    }

    #[test]
    fn the_state_file_mode_keeps_untagged_numbers_from_previous() {
        let (mut r, fleet) = db_tier(&[("i-a", 1, Some("1")), ("i-c", 3, None), ("i-d", 4, None)]);
        let mut previous = Slots::new();
        previous.insert("db".into(), [("i-c".into(), 3), ("i-d".into(), 2)].into());
        // Tags mode: a tagged tier ignores the state file.
        let tags = assign(&fleet, &r, &limits(), &previous);
        assert_eq!(
            slots_of(&tags, "db"),
            [("i-a".into(), 1), ("i-c".into(), 2), ("i-d".into(), 3)]
        );
        r.slot_store = SlotStore::StateFile;
        let state = assign(&fleet, &r, &limits(), &previous);
        assert_eq!(
            slots_of(&state, "db"),
            [("i-a".into(), 1), ("i-c".into(), 3), ("i-d".into(), 2)]
        );
    }

    #[test]
    fn a_slot_name_never_takes_a_name_a_rule_made() {
        let mut r = rules();
        r.rules[2].slots = true; // SG-T-*
        let fleet = vec![
            inst(
                "i-1",
                InstanceState::Running,
                &[("Name", "1.web")],
                &["SG-T-WEB"],
            ),
            inst("i-2", InstanceState::Running, &[], &["SG-T-WEB"]),
        ];
        let n = assign(&fleet, &r, &limits(), &Slots::new());
        assert_eq!(
            table(&n, &fleet)["1.web"].0,
            ["i-1"],
            "the tag's name stands"
        );
        assert!(
            n.warnings.iter().any(|w| w.contains("already a name")),
            "{:?}",
            n.warnings
        );
    }

    #[test]
    fn services_come_from_the_tag_under_every_tier() {
        let fleet = vec![
            inst(
                "i-1",
                InstanceState::Running,
                &[(
                    "stabledns:srv",
                    "http:tcp:80, metrics:TCP:9100, bad, x:icmp:1, y:tcp:99999",
                )],
                &["SG-T-WEB", "SG-I-WEB1"],
            ),
            inst("i-2", InstanceState::Running, &[], &["SG-T-WEB"]),
        ];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        let got: Vec<(&str, &str, u16)> = n
            .services
            .iter()
            .map(|s| {
                (
                    s.owner.as_str(),
                    fleet[s.instance as usize].id.as_str(),
                    s.port,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("_http._tcp.web", "i-1", 80),
                ("_metrics._tcp.web", "i-1", 9100)
            ],
            "only under tiers, not the single name web1"
        );
        assert_eq!(n.warnings.len(), 3, "{:?}", n.warnings);
    }

    #[test]
    fn inside_only_comes_from_rules_and_tags() {
        let mut r = rules();
        r.rules.push(Rule {
            kind: RuleKind::Tag {
                key: "internal:name".into(),
                separator: None,
            },
            single: false,
            inside_only: true,
            slots: false,
        });
        let fleet = vec![
            inst(
                "i-1",
                InstanceState::Running,
                &[("Name", "api"), ("internal:name", "api-admin")],
                &[],
            ),
            inst(
                "i-2",
                InstanceState::Running,
                &[("Name", "vault"), ("stabledns:inside-only", "True")],
                &[],
            ),
            inst(
                "i-3",
                InstanceState::Running,
                &[("stabledns:inside-only", "no")],
                &[],
            ),
        ];
        let n = assign(&fleet, &r, &limits(), &Slots::new());
        let hidden = |name: &str| {
            n.names
                .iter()
                .find(|h| h.name == name)
                .unwrap_or_else(|| panic!("{name}"))
                .inside_only
        };
        assert!(hidden("api-admin"));
        assert!(!hidden("api"));
        assert_eq!(
            n.inside_only_instances
                .iter()
                .map(|&i| fleet[i as usize].id.as_str())
                .collect::<Vec<_>>(),
            ["i-2"],
            "only a true value hides an instance"
        );
    }

    #[test]
    fn claimants_say_why_a_claim_made_no_name() {
        let fleet = vec![
            inst(
                "i-run",
                InstanceState::Running,
                &[("Name", "Web")],
                &["SG-T-WEB"],
            ),
            inst("i-stop", InstanceState::Stopped, &[("Name", "web")], &[]),
            inst("i-ns", InstanceState::Running, &[("Name", "ns1")], &[]),
        ];
        let c = claimants("web", &fleet, &rules(), &limits());
        let got: Vec<(&str, &str, bool)> = c
            .iter()
            .map(|c| {
                (
                    fleet[c.instance as usize].id.as_str(),
                    c.via.as_str(),
                    c.dropped.is_none(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("i-run", "tag Name=\"Web\"", true),
                ("i-run", "security group SG-T-WEB (sg-0)", true),
                ("i-stop", "tag Name=\"web\"", false),
            ]
        );
        assert!(
            c[2].dropped
                .as_deref()
                .unwrap_or_default()
                .contains("stopped")
        );
        let reserved = claimants("ns1", &fleet, &rules(), &limits());
        assert!(
            reserved[0]
                .dropped
                .as_deref()
                .unwrap_or_default()
                .contains("nameserver")
        );
        assert!(claimants("nope", &fleet, &rules(), &limits()).is_empty());
    }
}
