//! Draining and instance health: members out of their tiers' answers, never the last ones.

use super::{Backing, HostName, Rules};
use crate::inventory::Instance;

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

impl Rotation {
    /// What one named instance adds to the counts: drained (the tag wins), impaired or none.
    pub(super) fn of_instance(inst: &Instance, rules: &Rules) -> Rotation {
        let drained = rules.tagged_drain(inst);
        Rotation {
            drained: u32::from(drained),
            impaired: u32::from(!drained && inst.impaired),
            failing_open: 0,
        }
    }
}

/// Takes drained and impaired instances out of every tier (a name a tier rule made), but
/// never the last ones: a tier whose every member is out answers them all, as Route 53's
/// health checks fail open, because an empty answer is cached as NXDOMAIN or NODATA and
/// breaks every client at once. Their own names (ids, single-instance rules, slots) stay.
pub(super) fn rotate(
    names: &mut [HostName],
    named: &[(u32, &Instance)],
    rules: &Rules,
) -> Rotation {
    let mut rotation = Rotation::default();
    let mut out: rustc_hash::FxHashMap<u32, String> = Default::default();
    for &(i, inst) in named {
        let counted = Rotation::of_instance(inst, rules);
        rotation.drained += counted.drained;
        rotation.impaired += counted.impaired;
        let why = if counted.drained > 0 {
            format!("drained: tag {}=true", rules.drain_tag)
        } else if counted.impaired > 0 {
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
