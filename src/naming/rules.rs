//! The naming rules: the validated `[naming]` config, the zone's limits on names, and the
//! values each rule reads from an instance (what [`assign`](super::assign) claims and `why`
//! explains).

use std::collections::BTreeSet;

use regex::Regex;

use super::Via;
use crate::inventory::{Instance, InstanceState};

use super::slots::SlotStore;

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

impl Rules {
    /// Whether the instance's inside-only tag says yes: no name of it is shown outside.
    pub fn tagged_inside_only(&self, inst: &Instance) -> bool {
        inst.tags.get(&self.inside_only_tag).is_some_and(truthy)
    }

    /// Whether the instance's drain tag says yes: it leaves its tiers' answers.
    pub fn tagged_drain(&self, inst: &Instance) -> bool {
        inst.tags.get(&self.drain_tag).is_some_and(truthy)
    }

    /// The tag each rule reads (`None` for a security-group rule), by rule index.
    pub(super) fn tags(&self) -> Vec<Option<String>> {
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

/// How a rule's names name: what a claim carries besides its via.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct How {
    /// The name names one instance.
    pub(super) single: bool,
    /// The name is never shown outside.
    pub(super) inside_only: bool,
    /// A tier whose members are numbered.
    pub(super) slots: bool,
}

/// Every value the rules read from one instance, in rule order (its id first, when ids are
/// names), each with its via and how its rule names: the parts of a
/// separated tag, at most [`MAX_NAMES_PER_TAG`] of them (`too_many` hears of a longer list),
/// and the `name` capture of each matching group. What `assign` claims and `claimants`
/// explains.
pub(super) fn rule_values<'a>(
    inst: &'a Instance,
    rules: &Rules,
    out: &mut Vec<(&'a str, Via, How)>,
    too_many: &mut impl FnMut(&str, usize),
) {
    if rules.instance_id_names {
        out.push((
            &inst.id,
            Via::InstanceId,
            How {
                single: true,
                ..How::default()
            },
        ));
    }
    for (rule_index, rule) in rules.rules.iter().enumerate() {
        let how = How {
            single: rule.single,
            inside_only: rule.inside_only,
            slots: rule.slots,
        };
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

/// Names one separated tag may give one instance: a runaway value must not flood the zone.
pub const MAX_NAMES_PER_TAG: usize = 32;
