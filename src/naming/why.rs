//! Why a name is or is not made: the claims on it, for `stabledns why`.

use super::{Instance, Limits, RuleKind, Rules, normalize, quoted};

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
    instances: &[Instance],
    rules: &Rules,
    limits: &Limits,
) -> Vec<Claimant> {
    let states: Vec<&str> = rules.states.iter().map(|s| s.as_str()).collect();
    let mut out = Vec::new();
    for (index, inst) in (0u32..).zip(instances) {
        let mut values: Vec<(String, &str)> = Vec::new();
        if rules.instance_id_names {
            values.push(("instance id".to_owned(), &inst.id));
        }
        for rule in &rules.rules {
            match &rule.kind {
                RuleKind::Tag { key, separator } => {
                    let Some(value) = inst.tags.get(key) else {
                        continue;
                    };
                    let parts: Vec<&str> = match separator {
                        Some(sep) => value.split(sep.as_str()).map(str::trim).collect(),
                        None => vec![value.as_str()],
                    };
                    for part in parts {
                        values.push((format!("tag {key}={}", quoted(part)), part));
                    }
                }
                RuleKind::SecurityGroup { pattern } => {
                    for sg in &inst.security_groups {
                        if let Some(m) = pattern.captures(&sg.name).and_then(|c| c.name("name")) {
                            let via = format!("security group {} ({})", sg.name, sg.id);
                            values.push((via, m.as_str()));
                        }
                    }
                }
            }
        }
        for (via, value) in values {
            if normalize(value).ok().as_deref() != Some(name) {
                continue;
            }
            let dropped = if !rules.states.contains(&inst.state) {
                Some(format!(
                    "it is {}, and only {} instances get names (naming.states)",
                    inst.state,
                    states.join(", ")
                ))
            } else if name.len() > limits.max_name_len {
                Some("the name is too long to fit under the zone's apex".to_owned())
            } else if limits.reserved.contains(name) {
                Some("the name is one of the zone's own (a nameserver)".to_owned())
            } else {
                None
            };
            out.push(Claimant {
                instance: index,
                via,
                dropped,
            });
        }
    }
    out
}
