//! Why a name is or is not made: the claims on it, for `stabledns why`.

use super::{Instance, Limits, Rules, claim_text, normalize, rule_values};
use std::sync::Arc;

/// An instance that has a value a rule would turn into a name, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    /// Its index in the fleet.
    pub instance: u32,
    /// The rule and value, as people read it (`tag Name="db1"`).
    pub via: String,
    /// Why the claim made no name, or `None` when it did (the name is then in the naming
    /// pass's output, perhaps lost to another instance or hidden from a view).
    pub dropped: Option<String>,
}

/// Every instance whose tags, groups or id a rule would make `name` (relative, lower case)
/// of, and why each claim did or did not make it: for `stabledns why`, when a name someone
/// expects is missing. A scan of the fleet: a troubleshooting path, never a query's.
pub fn claimants(
    name: &str,
    instances: &[Arc<Instance>],
    rules: &Rules,
    limits: &Limits,
) -> Vec<Claimant> {
    let rule_tags = rules.tags();
    let mut out = Vec::new();
    for (index, inst) in (0u32..).zip(instances) {
        let mut values = Vec::new();
        rule_values(inst, rules, &mut values, &mut |_, _| {});
        for (value, via, _) in values {
            if normalize(value).ok().as_deref() != Some(name) {
                continue;
            }
            out.push(Claimant {
                instance: index,
                via: claim_text(&via, inst, value, &rule_tags),
                dropped: rules.unnamed_because(inst).or_else(|| limits.refuses(name)),
            });
        }
    }
    out
}
