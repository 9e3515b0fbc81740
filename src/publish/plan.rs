//! What a sync changes: the desired record sets against the zone's, through ownership. Pure: no
//! I/O, so every rule below is a table test.
//!
//! A record set is ours only if an ownership TXT says so, at `_stabledns-<type>.<name>` with
//! the value `"heritage=stabledns,stabledns/owner=<owner_id>"` (external-dns's shape, under a
//! name no naming rule can make: labels with `_` are never host names). Anything else in the
//! zone (hand-made records, external-dns's, another stabledns's) is never changed or deleted; a
//! name we want that someone else holds is a conflict, reported and skipped.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::RecordType;

use super::provider::Limits;

/// One record set as Route 53 holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordSet {
    /// Absolute, lower case, with the trailing dot.
    pub name: String,
    /// Its type.
    pub rtype: RecordType,
    /// Seconds.
    pub ttl: u32,
    /// Each record's data in presentation form (TXT values quoted), sorted.
    pub values: Vec<String>,
}

impl RecordSet {
    /// Resource records it counts for in a change batch's limits.
    fn records(&self) -> usize {
        self.values.len()
    }

    /// Characters of values it counts for in a change batch's limits.
    fn chars(&self) -> usize {
        self.values.iter().map(String::len).sum()
    }
}

/// What a sync may do to records it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Create, update and delete.
    Sync,
    /// Create and update; never delete.
    UpsertOnly,
    /// Create only.
    CreateOnly,
}

/// One change as Route 53 takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new record set.
    Create(RecordSet),
    /// A record set replaced (its old values are only for the plan's text).
    Upsert {
        /// What the zone holds now.
        old: RecordSet,
        /// What it will hold.
        new: RecordSet,
    },
    /// A record set removed; Route 53 wants its current values exactly.
    Delete(RecordSet),
}

impl Change {
    /// The record set it sends.
    pub fn set(&self) -> &RecordSet {
        match self {
            Change::Create(s) | Change::Delete(s) | Change::Upsert { new: s, .. } => s,
        }
    }

    /// Route 53's action name.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Create(_) => "CREATE",
            Change::Upsert { .. } => "UPSERT",
            Change::Delete(_) => "DELETE",
        }
    }

    /// Records it counts for in a batch: an UPSERT counts twice (Route 53's rule).
    fn records(&self) -> usize {
        match self {
            Change::Upsert { new, .. } => 2 * new.records(),
            c => c.set().records(),
        }
    }

    fn chars(&self) -> usize {
        match self {
            Change::Upsert { new, .. } => 2 * new.chars(),
            c => c.set().chars(),
        }
    }
}

/// Changes that must travel in one batch: a record set and its ownership TXT, so the zone
/// never holds one without the other.
pub type Unit = Vec<Change>;

/// The result of comparing what the zone holds with what the view answers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In order: creates, updates, deletes (by name within each).
    pub units: Vec<Unit>,
    /// Names we want that someone else holds, each with why.
    pub conflicts: Vec<String>,
    /// Record sets we own now (before the plan).
    pub owned: usize,
    /// Why the plan's deletions are held back, if they are.
    pub held: Option<String>,
}

impl Plan {
    /// Changes by action: (creates, updates, deletes), ownership records included.
    pub fn counts(&self) -> (usize, usize, usize) {
        counts(self.units.iter().flatten())
    }

    /// The units in batches within the provider's `limits`, units kept whole.
    pub fn batches(&self, limits: Limits) -> Vec<Vec<Unit>> {
        let (max_records, max_chars) = (limits.records, limits.chars);
        let mut out: Vec<Vec<Unit>> = Vec::new();
        let (mut records, mut chars) = (0, 0);
        for unit in &self.units {
            let r: usize = unit.iter().map(Change::records).sum();
            let c: usize = unit.iter().map(Change::chars).sum();
            let fits = records + r <= max_records && chars + c <= max_chars;
            if out.is_empty() || !fits {
                out.push(Vec::new());
                (records, chars) = (0, 0);
            }
            if let Some(batch) = out.last_mut() {
                batch.push(unit.clone());
            }
            records += r;
            chars += c;
        }
        out
    }
}

/// Changes by action: (creates, updates, deletes).
pub fn counts<'a>(changes: impl IntoIterator<Item = &'a Change>) -> (usize, usize, usize) {
    let mut n = (0, 0, 0);
    for change in changes {
        match change {
            Change::Create(_) => n.0 += 1,
            Change::Upsert { .. } => n.1 += 1,
            Change::Delete(_) => n.2 += 1,
        }
    }
    n
}

/// How every ownership TXT's name starts: `_`, which no naming rule can make.
pub const OWNERSHIP_PREFIX: &str = "_stabledns-";

/// The name of the ownership TXT of a record set.
pub fn ownership_name(name: &str, rtype: RecordType) -> String {
    format!(
        "{OWNERSHIP_PREFIX}{}.{name}",
        rtype.to_string().to_ascii_lowercase()
    )
}

/// Whether a set is one of our ownership TXTs (named by [`ownership_name`]).
pub fn is_ownership(set: &RecordSet) -> bool {
    set.rtype == RecordType::TXT && set.name.starts_with(OWNERSHIP_PREFIX)
}

/// The ownership TXT's value (quoted, as Route 53 holds TXT values).
pub fn ownership_value(owner: &str) -> String {
    format!("\"heritage=stabledns,stabledns/owner={owner}\"")
}

/// (owner, name, type) of a stabledns ownership TXT; `None` for any other record set.
fn owner_of(set: &RecordSet) -> Option<(&str, &str, RecordType)> {
    let rest = set.name.strip_prefix(OWNERSHIP_PREFIX)?;
    let (rtype, name) = rest.split_once('.')?;
    let rtype: RecordType = rtype.to_ascii_uppercase().parse().ok()?;
    let owner = set
        .values
        .first()?
        .trim_matches('"')
        .strip_prefix("heritage=stabledns,stabledns/owner=")?;
    Some((owner, name, rtype))
}

/// Compares `desired` (what the view answers) with `actual` (the whole zone) for `owner`.
pub fn plan(
    desired: &[RecordSet],
    actual: &[RecordSet],
    owner: &str,
    policy: Policy,
    max_delete_fraction: f64,
) -> Plan {
    let key = |s: &RecordSet| (s.name.clone(), s.rtype);
    let zone: BTreeMap<(String, RecordType), &RecordSet> =
        actual.iter().map(|s| (key(s), s)).collect();
    // (name, type) → the owner its TXT names, and that TXT.
    let mut claimed: BTreeMap<(String, RecordType), (String, &RecordSet)> = BTreeMap::new();
    for set in actual.iter().filter(|s| s.rtype == RecordType::TXT) {
        if let Some((who, name, rtype)) = owner_of(set) {
            claimed.insert((name.to_owned(), rtype), (who.to_owned(), set));
        }
    }
    let ours = |k: &(String, RecordType)| claimed.get(k).is_some_and(|(w, _)| w == owner);
    let names_in_zone: BTreeMap<&str, Vec<&RecordSet>> =
        actual.iter().fold(BTreeMap::new(), |mut m, s| {
            m.entry(s.name.as_str()).or_insert_with(Vec::new).push(s);
            m
        });
    let txt = |name: &str, rtype: RecordType, ttl: u32| RecordSet {
        name: ownership_name(name, rtype),
        rtype: RecordType::TXT,
        ttl,
        values: vec![ownership_value(owner)],
    };

    let mut out = Plan {
        owned: claimed.keys().filter(|k| ours(k)).count(),
        ..Plan::default()
    };
    let (mut creates, mut updates, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
    let wanted: BTreeSet<(String, RecordType)> = desired.iter().map(key).collect();
    for want in desired {
        let k = key(want);
        if ours(&k) {
            match zone.get(&k) {
                Some(have) if **have == *want => {}
                Some(have) if policy != Policy::CreateOnly => updates.push(vec![Change::Upsert {
                    old: (*have).clone(),
                    new: want.clone(),
                }]),
                Some(_) => {}
                // Ours, but the record itself was removed by hand: put it back.
                None => creates.push(vec![Change::Create(want.clone())]),
            }
            continue;
        }
        if let Some((who, _)) = claimed.get(&k) {
            out.conflicts.push(format!(
                "{} {}: owned by stabledns owner `{who}`, not `{owner}`; left alone",
                want.name, want.rtype
            ));
            continue;
        }
        // A CNAME cannot share its name with anything; anything else cannot share it with a
        // CNAME (RFC 1034 3.6.2). Someone else's records there make ours a conflict.
        let others: Vec<String> = names_in_zone
            .get(want.name.as_str())
            .into_iter()
            .flatten()
            .filter(|s| {
                s.rtype == want.rtype
                    || want.rtype == RecordType::CNAME
                    || s.rtype == RecordType::CNAME
            })
            .filter(|s| !ours(&key(s)))
            .map(|s| s.rtype.to_string())
            .collect();
        if !others.is_empty() {
            out.conflicts.push(format!(
                "{} {}: the zone already has {} there that stabledns does not own; left alone",
                want.name,
                want.rtype,
                others.join(", ")
            ));
            continue;
        }
        creates.push(vec![
            Change::Create(want.clone()),
            Change::Create(txt(&want.name, want.rtype, want.ttl)),
        ]);
    }
    if policy == Policy::Sync {
        for (k, (who, ownership)) in &claimed {
            if who != owner || wanted.contains(k) {
                continue;
            }
            let mut unit: Unit = Vec::new();
            if let Some(have) = zone.get(k) {
                unit.push(Change::Delete((*have).clone()));
            }
            unit.push(Change::Delete((*ownership).clone()));
            deletes.push(unit);
        }
    }
    // A name that changes type (a tier shrunk to one instance answers by CNAME): its old sets
    // travel in the new set's unit, deletions first, so one batch swaps them and the name is
    // never without an answer nor, for a moment, a CNAME beside other data.
    for unit in &mut creates {
        let name = unit[0].set().name.clone();
        let mut swap: Unit = Vec::new();
        deletes.retain(|d: &Unit| {
            let same = d.first().is_some_and(|c| c.set().name == name);
            if same {
                swap.extend(d.iter().cloned());
            }
            !same
        });
        if !swap.is_empty() {
            swap.append(unit);
            *unit = swap;
        }
    }
    // Like the fleet's valve: a plan that deletes most of what we own is far more often a
    // wrong view or an empty fleet than a real change.
    let removed = deletes.len();
    if removed > 0
        && (desired.is_empty() || removed as f64 > max_delete_fraction * out.owned as f64)
    {
        out.held = Some(format!(
            "the plan deletes {removed} of the {} record sets stabledns owns here, more than \
             publish.max_delete_fraction ({max_delete_fraction}); deletions held back",
            out.owned
        ));
        deletes.clear();
    }
    out.units.extend(creates);
    out.units.extend(updates);
    out.units.extend(deletes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, rtype: RecordType, values: &[&str]) -> RecordSet {
        RecordSet {
            name: name.to_owned(),
            rtype,
            ttl: 60,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn owned(name: &str, rtype: RecordType, owner: &str) -> RecordSet {
        RecordSet {
            name: ownership_name(name, rtype),
            rtype: RecordType::TXT,
            ttl: 60,
            values: vec![ownership_value(owner)],
        }
    }

    use RecordType::{A, CNAME, TXT};

    #[test]
    fn creates_updates_deletes_only_what_is_ours() {
        let zone = vec![
            set("db1.internal.", CNAME, &["ec2-old.compute.amazonaws.com."]),
            owned("db1.internal.", CNAME, "me"),
            set("gone.internal.", A, &["10.0.0.9"]),
            owned("gone.internal.", A, "me"),
            set("same.internal.", A, &["10.0.0.5"]),
            owned("same.internal.", A, "me"),
            set("hand.internal.", A, &["10.9.9.9"]),
            set(
                "ext.internal.",
                TXT,
                &["\"heritage=external-dns,external-dns/owner=k8s\""],
            ),
        ];
        let want = vec![
            set("db1.internal.", CNAME, &["ec2-new.compute.amazonaws.com."]),
            set("same.internal.", A, &["10.0.0.5"]),
            set("web.internal.", A, &["10.0.0.1", "10.0.0.2"]),
        ];
        let p = plan(&want, &zone, "me", Policy::Sync, 1.0);
        assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
        assert_eq!(p.owned, 3);
        assert_eq!(p.counts(), (2, 1, 2));
        let touched: BTreeSet<&str> = p
            .units
            .iter()
            .flatten()
            .map(|c| c.set().name.as_str())
            .collect();
        assert!(!touched.contains("hand.internal.") && !touched.contains("ext.internal."));
        assert!(!touched.contains("same.internal."));
        // A record set and its ownership travel together.
        assert!(p.units.iter().all(|u| !u.is_empty() && u.len() <= 2));
        // The second sync of the same zone changes nothing.
        let mut after: Vec<RecordSet> = zone.clone();
        after.retain(|s| !s.name.contains("gone"));
        after.retain(|s| s.name != "db1.internal." || s.rtype != CNAME);
        after.push(want[0].clone());
        after.push(want[2].clone());
        after.push(owned("web.internal.", A, "me"));
        assert_eq!(
            plan(&want, &after, "me", Policy::Sync, 1.0).units,
            Vec::<Unit>::new()
        );
    }

    #[test]
    fn someone_elses_names_are_conflicts() {
        let zone = vec![
            set("hand.internal.", A, &["10.9.9.9"]),
            set("other.internal.", A, &["10.0.0.7"]),
            owned("other.internal.", A, "another-stabledns"),
            set("cn.internal.", CNAME, &["x.example."]),
        ];
        let want = vec![
            set("hand.internal.", A, &["10.0.0.1"]),
            set("other.internal.", A, &["10.0.0.2"]),
            set("cn.internal.", A, &["10.0.0.3"]),
        ];
        let p = plan(&want, &zone, "me", Policy::Sync, 1.0);
        assert!(p.units.is_empty(), "{:?}", p.units);
        assert_eq!(p.conflicts.len(), 3, "{:?}", p.conflicts);
        assert!(
            p.conflicts[1].contains("another-stabledns"),
            "{:?}",
            p.conflicts
        );
    }

    #[test]
    fn policies_and_the_delete_valve() {
        let zone = vec![
            set("a.internal.", A, &["10.0.0.1"]),
            owned("a.internal.", A, "me"),
            set("b.internal.", A, &["10.0.0.2"]),
            owned("b.internal.", A, "me"),
        ];
        let want = vec![set("a.internal.", A, &["10.0.0.9"])];
        assert_eq!(
            plan(&want, &zone, "me", Policy::Sync, 1.0).counts(),
            (0, 1, 2)
        );
        assert_eq!(
            plan(&want, &zone, "me", Policy::UpsertOnly, 1.0).counts(),
            (0, 1, 0)
        );
        assert_eq!(
            plan(&want, &zone, "me", Policy::CreateOnly, 1.0).counts(),
            (0, 0, 0)
        );
        let held = plan(&want, &zone, "me", Policy::Sync, 0.4);
        assert_eq!(held.counts(), (0, 1, 0));
        assert!(held.held.is_some());
        // An empty view deletes nothing, whatever the fraction.
        let empty = plan(&[], &zone, "me", Policy::Sync, 1.0);
        assert_eq!(empty.counts(), (0, 0, 0));
        assert!(empty.held.is_some());
    }

    #[test]
    fn a_type_change_swaps_in_one_unit() {
        let zone = vec![
            set("web.internal.", A, &["10.0.0.1", "10.0.0.2"]),
            owned("web.internal.", A, "me"),
        ];
        let want = vec![set(
            "web.internal.",
            CNAME,
            &["ec2-1.compute.amazonaws.com."],
        )];
        // Even with a valve that holds every deletion: this one is part of a replacement.
        let p = plan(&want, &zone, "me", Policy::Sync, 0.0);
        assert!(p.held.is_none());
        assert_eq!(p.units.len(), 1, "{:?}", p.units);
        let actions: Vec<&str> = p.units[0].iter().map(Change::action).collect();
        assert_eq!(actions, ["DELETE", "DELETE", "CREATE", "CREATE"]);
    }

    #[test]
    fn batches_keep_units_whole_and_count_upserts_twice() {
        let records = |records| Limits {
            records,
            chars: 32_000,
        };
        let units: Vec<Unit> = (0..10)
            .map(|i| {
                let s = set(&format!("h{i}.internal."), A, &["10.0.0.1"]);
                vec![
                    Change::Create(s.clone()),
                    Change::Create(owned(&s.name, A, "me")),
                ]
            })
            .collect();
        let p = Plan {
            units,
            ..Plan::default()
        };
        let batches = p.batches(records(5));
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2, 2, 2, 2]
        );
        let up = Plan {
            units: vec![
                vec![Change::Upsert {
                    old: set("a.", A, &["1.1.1.1"]),
                    new: set("a.", A, &["1.1.1.2", "1.1.1.3"]),
                }];
                3
            ],
            ..Plan::default()
        };
        assert_eq!(
            up.batches(records(8))
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            [2, 1]
        );
    }
}
