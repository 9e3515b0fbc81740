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

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use crate::inventory::{Instance, InstanceState};

/// Longest DNS label (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;

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
    pub backing: Vec<Backing>,
    /// Made only by single-instance rules (or instance ids).
    pub single: bool,
    /// Never shown to outside views (an inside-only rule made it).
    pub inside_only: bool,
    /// A tier whose instances get numbered names (a rule with `slots` made it).
    pub slots: bool,
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
    /// The instance offering it.
    pub instance: String,
    /// Port.
    pub port: u16,
}

/// One instance behind a name, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// Instance id.
    pub instance: String,
    /// Which rules made the name for it, e.g. `tag Name="db1"`, `security group SG-I-DB1`.
    pub via: Vec<String>,
}

/// The result of naming a fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    /// Sorted by name.
    pub names: Vec<HostName>,
    /// Values that were skipped or contested, each naming the instance.
    pub warnings: Vec<String>,
    /// Slot numbers of every tier's instances, to be kept by the next refresh.
    pub slots: Slots,
    /// SRV records to publish, sorted by owner.
    pub services: Vec<Service>,
    /// Instances tagged inside-only: outside views leave them out of every answer.
    pub inside_only_instances: BTreeSet<String>,
}

/// Limits the caller knows from the zone: how long a relative name may be, which are taken.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Longest relative name (in presentation form) that still fits under the apex.
    pub max_name_len: usize,
    /// Relative names the zone itself uses (its nameservers); rules cannot take them.
    pub reserved: BTreeSet<String>,
}

#[derive(Default)]
struct Claims {
    /// instance id → via
    by_instance: BTreeMap<String, Vec<String>>,
    any_tier: bool,
    inside_only: bool,
    slots: bool,
}

/// Whether a tag value means yes.
fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1"
    )
}

/// Names a fleet. `previous` holds the slot numbers the last refresh gave, so instances keep
/// theirs.
pub fn assign(instances: &[Instance], rules: &Rules, limits: &Limits, previous: &Slots) -> Naming {
    let mut claims: BTreeMap<String, Claims> = BTreeMap::new();
    let mut warnings = Vec::new();

    let named: Vec<&Instance> = instances
        .iter()
        .filter(|i| rules.states.contains(&i.state))
        .collect();

    let inside_only_instances: BTreeSet<String> = named
        .iter()
        .filter(|i| {
            i.tags
                .get(&rules.inside_only_tag)
                .is_some_and(|v| truthy(v))
        })
        .map(|i| i.id.clone())
        .collect();
    for inst in &named {
        let mut claim = |value: &str,
                         via: String,
                         (single, inside_only, slots): (bool, bool, bool),
                         warnings: &mut Vec<String>| {
            let name = match normalize(value) {
                Ok(n) => n,
                Err(why) => {
                    warnings.push(format!("{}: {via}: {why}; skipped", inst.id));
                    return;
                }
            };
            if name.len() > limits.max_name_len {
                warnings.push(format!(
                    "{}: {via}: `{name}` is longer than the {} characters that fit in the zone; skipped",
                    inst.id, limits.max_name_len
                ));
                return;
            }
            if limits.reserved.contains(&name) {
                warnings.push(format!(
                    "{}: {via}: `{name}` is a name of the zone itself (a nameserver); skipped",
                    inst.id
                ));
                return;
            }
            let c = claims.entry(name).or_default();
            c.any_tier |= !single;
            // One inside-only claim hides the name: showing it outside would leak that one.
            c.inside_only |= inside_only;
            c.slots |= slots;
            let vias = c.by_instance.entry(inst.id.clone()).or_default();
            if !vias.contains(&via) {
                vias.push(via);
            }
        };

        if rules.instance_id_names {
            claim(
                &inst.id,
                "instance id".to_owned(),
                (true, false, false),
                &mut warnings,
            );
        }
        for rule in &rules.rules {
            let how = (rule.single, rule.inside_only, rule.slots);
            match &rule.kind {
                RuleKind::Tag { key, separator } => {
                    let Some(value) = inst.tags.get(key) else {
                        continue;
                    };
                    match separator {
                        Some(sep) => {
                            let parts: Vec<&str> = value
                                .split(sep.as_str())
                                .map(str::trim)
                                .filter(|p| !p.is_empty())
                                .collect();
                            if parts.len() > MAX_NAMES_PER_TAG {
                                warnings.push(format!(
                                    "{}: tag {key} holds {} names; only the first \
                                     {MAX_NAMES_PER_TAG} are used",
                                    inst.id,
                                    parts.len()
                                ));
                            }
                            for part in parts.into_iter().take(MAX_NAMES_PER_TAG) {
                                let via = format!("tag {key}={}", quoted(part));
                                claim(part, via, how, &mut warnings);
                            }
                        }
                        None => {
                            let via = format!("tag {key}={}", quoted(value));
                            claim(value, via, how, &mut warnings);
                        }
                    }
                }
                RuleKind::SecurityGroup { pattern } => {
                    for sg in &inst.security_groups {
                        let Some(m) = pattern.captures(&sg.name).and_then(|c| c.name("name"))
                        else {
                            continue;
                        };
                        let via = format!("security group {} ({})", sg.name, sg.id);
                        claim(m.as_str(), via, how, &mut warnings);
                    }
                }
            }
        }
    }

    let launched: BTreeMap<&str, &Instance> = named.iter().map(|i| (i.id.as_str(), *i)).collect();
    let mut names = Vec::with_capacity(claims.len());
    for (name, c) in claims {
        let single = !c.any_tier;
        let mut backing: Vec<Backing> = c
            .by_instance
            .into_iter()
            .map(|(instance, via)| Backing { instance, via })
            .collect();
        if single && backing.len() > 1 {
            // Newest launch wins: during a replacement the successor is the one to reach.
            // Ties (or unknown launch times) fall to the larger id, so the choice is stable.
            let winner = backing
                .iter()
                .max_by_key(|b| {
                    (
                        launched[b.instance.as_str()].launch_time,
                        b.instance.clone(),
                    )
                })
                .map(|b| b.instance.clone())
                .unwrap_or_default();
            let losers: Vec<&str> = backing
                .iter()
                .filter(|b| b.instance != winner)
                .map(|b| b.instance.as_str())
                .collect();
            warnings.push(format!(
                "{name}: single-instance name claimed by {winner} and {}; serving {winner} (launched last)",
                losers.join(", ")
            ));
            backing.retain(|b| b.instance == winner);
        }
        names.push(HostName {
            name,
            backing,
            single,
            inside_only: c.inside_only,
            slots: c.slots && !single,
        });
    }
    let slots = assign_slots(&names, &launched, previous);
    add_slot_names(&mut names, &slots, limits, &mut warnings);
    let services = services(&names, &launched, &rules.srv_tag, &mut warnings);
    Naming {
        names,
        warnings,
        slots,
        services,
        inside_only_instances,
    }
}

/// Gives every tier member a number: the one it had, or the lowest free one (newest launches
/// last, so the older instances of a new tier get the low numbers).
fn assign_slots(
    names: &[HostName],
    launched: &BTreeMap<&str, &Instance>,
    previous: &Slots,
) -> Slots {
    let mut slots = Slots::new();
    for host in names.iter().filter(|h| h.slots) {
        let before = previous.get(&host.name);
        let mut numbers: BTreeMap<String, u32> = BTreeMap::new();
        let mut newcomers = Vec::new();
        for b in &host.backing {
            match before.and_then(|m| m.get(&b.instance)) {
                Some(&n) => {
                    numbers.insert(b.instance.clone(), n);
                }
                None => newcomers.push(b.instance.as_str()),
            }
        }
        newcomers.sort_by_key(|id| (launched.get(id).and_then(|i| i.launch_time), *id));
        let mut taken: BTreeSet<u32> = numbers.values().copied().collect();
        let mut next = 1;
        for id in newcomers {
            while taken.contains(&next) {
                next += 1;
            }
            taken.insert(next);
            numbers.insert(id.to_owned(), next);
        }
        slots.insert(host.name.clone(), numbers);
    }
    slots
}

/// `<n>.<tier>` for every slot, unless a rule already made that name.
fn add_slot_names(
    names: &mut Vec<HostName>,
    slots: &Slots,
    limits: &Limits,
    warnings: &mut Vec<String>,
) {
    let inside_only: BTreeMap<&str, bool> = names
        .iter()
        .map(|h| (h.name.as_str(), h.inside_only))
        .collect();
    let taken: BTreeSet<String> = names.iter().map(|h| h.name.clone()).collect();
    let mut added = Vec::new();
    for (tier, members) in slots {
        for (instance, n) in members {
            let name = format!("{n}.{tier}");
            if taken.contains(&name) {
                warnings.push(format!(
                    "{name}: slot {n} of tier {tier} ({instance}) is already a name made by a rule; the rule wins"
                ));
                continue;
            }
            if name.len() > limits.max_name_len {
                warnings.push(format!(
                    "{instance}: slot name `{name}` is longer than the {} characters that fit in the zone; skipped",
                    limits.max_name_len
                ));
                continue;
            }
            added.push(HostName {
                name,
                backing: vec![Backing {
                    instance: instance.clone(),
                    via: vec![format!("slot {n} of tier {tier}")],
                }],
                single: true,
                inside_only: inside_only.get(tier.as_str()).copied().unwrap_or(false),
                slots: false,
            });
        }
    }
    names.extend(added);
    names.sort_by(|a, b| a.name.cmp(&b.name));
}

/// SRV records from the SRV tag (`http:tcp:80, metrics:tcp:9100`) under every tier the
/// instance is in.
fn services(
    names: &[HostName],
    launched: &BTreeMap<&str, &Instance>,
    tag: &str,
    warnings: &mut Vec<String>,
) -> Vec<Service> {
    let mut out = Vec::new();
    let mut parsed: BTreeMap<&str, Vec<(String, String, u16)>> = BTreeMap::new();
    for (id, inst) in launched {
        let Some(value) = inst.tags.get(tag) else {
            continue;
        };
        let mut list = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match parse_service(item) {
                Some(s) => list.push(s),
                None => warnings.push(format!(
                    "{id}: tag {tag}={item:?} is not service:protocol:port (e.g. http:tcp:80); skipped"
                )),
            }
        }
        parsed.insert(id, list);
    }
    for host in names.iter().filter(|h| !h.single) {
        for b in &host.backing {
            for (service, proto, port) in parsed.get(b.instance.as_str()).into_iter().flatten() {
                out.push(Service {
                    owner: format!("_{service}._{proto}.{}", host.name),
                    tier: host.name.clone(),
                    instance: b.instance.clone(),
                    port: *port,
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.owner, &a.instance).cmp(&(&b.owner, &b.instance)));
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

/// Turns a tag value or capture into a relative DNS name: lower case, letters, digits and
/// hyphens, labels split on dots, each at most 63 long, no leading or trailing hyphens.
pub fn normalize(value: &str) -> Result<String, &'static str> {
    let mut labels = Vec::new();
    for raw in value.trim().split('.') {
        let mut label = String::with_capacity(raw.len());
        for c in raw.chars() {
            let c = c.to_ascii_lowercase();
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if !(c == '-' && (label.is_empty() || label.ends_with('-'))) {
                label.push(c);
            }
        }
        label.truncate(MAX_LABEL);
        let label = label.trim_end_matches('-');
        if !label.is_empty() {
            labels.push(label.to_owned());
        }
    }
    if labels.is_empty() {
        return Err("no letters or digits, so it cannot be a DNS name");
    }
    Ok(labels.join("."))
}

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
                    id: format!("sg-{n}"),
                    name: (*s).to_owned(),
                })
                .collect(),
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
        }
    }

    fn limits() -> Limits {
        Limits {
            max_name_len: 200,
            reserved: ["ns1".to_owned()].into(),
        }
    }

    /// name → (backing ids, single)
    fn table(n: &Naming) -> BTreeMap<String, (Vec<String>, bool)> {
        n.names
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    (
                        h.backing.iter().map(|b| b.instance.clone()).collect(),
                        h.single,
                    ),
                )
            })
            .collect()
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
            ("café", Ok("caf")),
            ("*", Err(())),
            ("", Err(())),
            ("!!!", Err(())),
            ("...", Err(())),
            ("ünïcödé", Ok("n-c-d")),
        ];
        for (input, want) in cases {
            let got = normalize(input);
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
                Err(()) => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
        }
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
        let t = table(&n);
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
        assert_eq!(web.backing[0].via, vec!["security group SG-T-WEB (sg-0)"]);
    }

    #[test]
    fn configured_states_decide_who_is_named() {
        let fleet = vec![
            inst("i-a", InstanceState::Stopped, &[("Name", "a")], &[]),
            inst("i-b", InstanceState::Pending, &[("Name", "b")], &[]),
        ];
        let mut r = rules();
        r.states = [InstanceState::Running, InstanceState::Pending].into();
        let t = table(&assign(&fleet, &r, &limits(), &Slots::new()));
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
        let t = table(&n);
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
        let n = assign(&[old, new], &rules(), &limits(), &Slots::new());
        let t = table(&n);
        assert_eq!(t["db1"], (vec!["i-a-new".into()], true));
        assert_eq!(n.warnings.len(), 1);
        assert!(
            n.warnings[0].contains("serving i-a-new"),
            "{:?}",
            n.warnings
        );
    }

    #[test]
    fn a_tier_rule_makes_a_shared_name_a_tier_even_when_a_single_rule_also_claims_it() {
        let fleet = vec![
            inst(
                "i-1",
                InstanceState::Running,
                &[("Name", "db")],
                &["SG-I-DB"],
            ),
            inst("i-2", InstanceState::Running, &[("Name", "db")], &[]),
        ];
        let n = assign(&fleet, &rules(), &limits(), &Slots::new());
        assert_eq!(table(&n)["db"], (vec!["i-1".into(), "i-2".into()], false));
        let db = &n.names.iter().find(|h| h.name == "db").expect("db").backing[0];
        assert_eq!(
            db.via,
            vec!["tag Name=\"db\"", "security group SG-I-DB (sg-0)"]
        );
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
        assert_eq!(api.backing[0].via.len(), 3, "{:?}", api.backing[0].via);
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
        let t = table(&first);
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
        assert_eq!(table(&n)["1.web"].0, ["i-1"], "the tag's name stands");
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
            .map(|s| (s.owner.as_str(), s.instance.as_str(), s.port))
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
            n.inside_only_instances.iter().collect::<Vec<_>>(),
            ["i-2"],
            "only a true value hides an instance"
        );
    }
}
