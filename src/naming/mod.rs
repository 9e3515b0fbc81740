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
//!
//! [`assign`] runs the steps, each in a file of its own: `rules` (the config and the values
//! each rule reads), `normalize` (values into labels), `claims` (claims gathered per name,
//! then settled), `slots` (tier numbers, kept in the fleet's tags), `rotation` (drained
//! and impaired members), `services` (SRV records); `via` says why an instance has a name
//! and `why` why a name is missing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use crate::inventory::Instance;

mod claims;
pub mod delta;
mod normalize;
mod rotation;
mod rules;
mod services;
mod slots;
mod via;
mod why;

use claims::Claims;
#[cfg(test)]
use normalize::is_normal;
pub use normalize::normalize;
use normalize::plain_name;
pub use rotation::Rotation;
use rotation::rotate;
use rules::rule_values;
pub use rules::{Limits, MAX_NAMES_PER_TAG, Rule, RuleKind, Rules};
pub use services::Service;
use services::services;
pub use slots::{
    MAX_TAG_KEY_LEN, SLOT_TAG_PREFIX, SlotFixes, SlotStore, slot_tag, slot_tag_writes,
};
use slots::{add_slot_names, assign_slots};
pub use via::{Via, Vias, vias_text};
use via::{claim_text, quoted};
pub use why::{Claimant, claimants};

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

/// Names a fleet. `previous` holds the slot numbers the last refresh gave, so instances keep
/// theirs. Backings refer to instances by their index in `instances`.
pub fn assign(
    instances: &[Arc<Instance>],
    rules: &Rules,
    limits: &Limits,
    previous: &Slots,
) -> Naming {
    assign_part(instances, None, rules, limits, previous)
}

/// A part of a fleet to name: the instances at `positions` (ascending), claiming only `names`.
/// When every claimant of those names is among the instances, each name comes out as naming
/// the whole fleet makes it (see [`delta`]).
pub(crate) struct Part<'a> {
    positions: &'a [u32],
    names: &'a rustc_hash::FxHashSet<String>,
}

/// [`assign`] over the whole fleet, or over a [`Part`] of it; backings keep fleet indices.
fn assign_part(
    instances: &[Arc<Instance>],
    part: Option<&Part<'_>>,
    rules: &Rules,
    limits: &Limits,
    previous: &Slots,
) -> Naming {
    let mut warnings = Vec::new();
    let rule_tags = rules.tags();

    let named: Vec<(u32, &Instance)> = match part {
        None => (0u32..).zip(instances.iter().map(|i| &**i)).collect(),
        Some(part) => (part.positions.iter())
            .filter_map(|&i| instances.get(i as usize).map(|inst| (i, &**inst)))
            .collect(),
    };
    let named: Vec<(u32, &Instance)> = named
        .into_iter()
        .filter(|(_, i)| rules.unnamed_because(i).is_none())
        .collect();

    let inside_only_instances: BTreeSet<u32> = named
        .iter()
        .filter(|(_, i)| rules.tagged_inside_only(i))
        .map(|(n, _)| *n)
        .collect();
    // Hashed while claiming (hundreds of thousands of names), sorted once at the end. The
    // table holds only each name's place in `claims`: sized for about two names an instance
    // up front, it never rehashes the claims, and growing it moves 32 bytes a name, not 100.
    let expected = part.map_or(named.len() * 2, |p| p.names.len());
    let mut at: rustc_hash::FxHashMap<String, u32> =
        rustc_hash::FxHashMap::with_capacity_and_hasher(expected, Default::default());
    let mut claims: Vec<Claims> = Vec::with_capacity(expected);
    for &(index, inst) in &named {
        let claim = |name: Cow<'_, str>, via, how, altered| {
            if part.is_some_and(|p| !p.names.contains(name.as_ref())) {
                return;
            }
            // The key is allocated only for a name not claimed before (a tier's first member).
            let i = match at.get(name.as_ref()) {
                Some(&i) => i as usize,
                None => {
                    at.insert(name.into_owned(), claims.len() as u32);
                    claims.push(Claims::default());
                    claims.len() - 1
                }
            };
            claims[i].add(index, via, how, altered);
        };
        claims::each(inst, rules, limits, &rule_tags, &mut warnings, claim);
    }

    let fleet = instances;
    let mut order: Vec<(u64, String, u32)> = at
        .into_iter()
        .map(|(name, i)| (sort_key(&name), name, i))
        .collect();
    // Most names differ in their first eight bytes: compared as one integer, not by memcmp.
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut names = Vec::with_capacity(order.len());
    for (_, name, i) in order {
        let c = std::mem::take(&mut claims[i as usize]);
        names.push(c.settle(name, fleet, &rule_tags, &mut warnings));
    }
    drop(claims);
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

/// A name's first eight bytes as a big-endian integer, zero-padded: names hold no NUL, so two
/// keys order as the names do unless they are equal.
fn sort_key(name: &str) -> u64 {
    let mut head = [0u8; 8];
    let n = name.len().min(8);
    head[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_be_bytes(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{InstanceState, SecurityGroup};
    use regex::Regex;

    fn inst(id: &str, state: InstanceState, tags: &[(&str, &str)], sgs: &[&str]) -> Instance {
        Instance {
            id: id.to_owned(),
            state,
            launch_time: None,
            place: Default::default(),
            private_ip: None,
            private_dns_name: None,
            public_ip: None,
            public_dns_name: None,
            ipv6: Box::default(),
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
    fn shared(fleet: &[Instance]) -> Vec<Arc<Instance>> {
        fleet.iter().cloned().map(Arc::new).collect()
    }

    /// [`super::assign`] over owned instances, as the tests build them.
    fn assign(instances: &[Instance], rules: &Rules, limits: &Limits, previous: &Slots) -> Naming {
        super::assign(&shared(instances), rules, limits, previous)
    }

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
        assert!(slot_tag_writes(&fresh.slots, &shared(&fleet)).is_empty());
        // Untagged i-d during the overlap and after: every replica gives it the same number,
        // and the writes say which tag to set.
        let (r, fleet) = db_tier(&[
            ("i-a", 1, Some("1")),
            ("i-c", 3, Some("3")),
            ("i-d", 4, None),
        ]);
        let n = assign(&fleet, &r, &limits(), &other);
        assert_eq!(slots_of(&n, "db")[2], ("i-d".into(), 2));
        let writes = slot_tag_writes(&n.slots, &shared(&fleet));
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
        let writes = slot_tag_writes(&n.slots, &shared(&fleet));
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
        let c = claimants("web", &shared(&fleet), &rules(), &limits());
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
        let reserved = claimants("ns1", &shared(&fleet), &rules(), &limits());
        assert!(
            reserved[0]
                .dropped
                .as_deref()
                .unwrap_or_default()
                .contains("nameserver")
        );
        assert!(claimants("nope", &shared(&fleet), &rules(), &limits()).is_empty());
    }

    #[test]
    fn names_sort_by_their_head_as_by_their_bytes() {
        let mut names: Vec<String> = [
            "web",
            "web1",
            "web.eu",
            "1.web",
            "",
            "a",
            "abcdefgh",
            "abcdefghi",
            "abcdefgg-z",
            "i-00000000000000001",
            "i-00000000000000010",
            "i-0000000",
            "host-9",
            "host-10",
            "xn--bcher-kva",
            "zzzzzzzzzzzzzzzzzz",
            "web-",
            "we",
        ]
        .map(String::from)
        .into();
        let mut by_key = names.clone();
        by_key.sort_unstable_by(|a, b| sort_key(a).cmp(&sort_key(b)).then_with(|| a.cmp(b)));
        names.sort();
        assert_eq!(by_key, names);
        // Keys alone decide whenever the first eight bytes differ.
        assert!(sort_key("abcdefgh") < sort_key("abcdefgi"));
        assert!(sort_key("abc") < sort_key("abc-"));
        assert_eq!(sort_key("abcdefgh1"), sort_key("abcdefgh2"));
    }
}
