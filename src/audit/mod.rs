//! The security-group audit: firewall rules that break when an instance is replaced.
//!
//! A rule that allows `10.0.1.20/32` (an instance's address) stops matching when the instance
//! is replaced; a rule that names a group never does. This reads the rules, every interface's
//! addresses and the fleet (from `inventory`), and the stable names (from the snapshot the
//! server would serve), and reports:
//! - **pinned**: a /32 or /128 of a live instance's address, with the group-reference rule
//!   that replaces it (the instance's own group by the naming rules' `single` group pattern,
//!   else its tier group) as ready `aws ec2` commands;
//! - **stale**: a /32 or /128 inside the VPCs that no interface holds any more (whoever gets
//!   it next is let in), or one the state file knows an instance held: then it names that
//!   instance and the one that has its stable name now. An address outside the VPCs that was
//!   never ours (an office, a partner) is not ours to judge;
//! - **ephemeral-public**: a /32 of an auto-assigned public address (not an Elastic IP): it
//!   goes back to AWS at the next stop, and to another customer after that;
//! - **open-admin**: SSH, RDP or a database port open to the whole internet;
//! - **convention**: what keeps the convention from working: an instance without a tier
//!   group, without the admin group or without its own group; an instance group with no
//!   member or several; a tier group with none; a rule naming a group that no longer exists.
//!   The group patterns are the naming rules' (`single` ones for instance groups).
//!
//! The findings are pure: they never call AWS. [`watch`] (serving with `audit_interval`) reads
//! the firewall again on a timer. Nothing here changes anything.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::inventory::Instance;
use crate::inventory::security::{Firewall, Interface, Rule};
use crate::naming::{RuleKind, Rules, normalize};
use crate::state::Departed;
use crate::zone::Snapshot;

mod sarif;
pub mod stats;
#[cfg(feature = "ec2")]
pub mod watch;
pub use sarif::sarif;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fragile, not yet wrong.
    Low,
    /// Breaks at the next replacement.
    Medium,
    /// Wrong now (open to anyone, or to whoever gets a released address), or wrong for a
    /// stranger at the next stop.
    High,
}

impl Severity {
    /// `low`, `medium`, `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A rule pinned to a live instance's address.
    Pinned,
    /// A rule pinned to an address nothing holds.
    Stale,
    /// A rule pinned to an auto-assigned public address (not an Elastic IP).
    EphemeralPublic,
    /// An administration or database port open to the internet.
    OpenAdmin,
    /// The group convention broken.
    Convention,
}

impl Kind {
    /// `pinned`, `stale`, …: the JSON's `kind` and the SARIF rule id.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pinned => "pinned",
            Kind::Stale => "stale",
            Kind::EphemeralPublic => "ephemeral-public",
            Kind::OpenAdmin => "open-admin",
            Kind::Convention => "convention",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `<kind>:<rule id>`: the same finding has the same id in every run.
    pub id: String,
    /// What kind.
    pub kind: Kind,
    /// How bad.
    pub severity: Severity,
    /// The rule (`sgr-…`).
    #[serde(serialize_with = "empty_as_null")]
    pub rule_id: String,
    /// Its group.
    #[serde(serialize_with = "empty_as_null")]
    pub group_id: String,
    /// Its group's name.
    #[serde(serialize_with = "empty_as_null")]
    pub group_name: String,
    /// `ingress` or `egress`.
    #[serde(serialize_with = "empty_as_null")]
    pub direction: &'static str,
    /// `tcp 3306`, `all`.
    #[serde(serialize_with = "empty_as_null")]
    pub ports: String,
    /// The CIDR the rule names.
    #[serde(serialize_with = "empty_as_null")]
    pub peer: String,
    /// The instance the address belongs to.
    pub instance: Option<String>,
    /// The instance's stable name.
    pub name: Option<String>,
    /// For a stale address the state file knows: the instance that has its holder's name now.
    pub replaced_by: Option<String>,
    /// What to do, with commands where there are some.
    pub fix: String,
    /// Anything else worth knowing.
    pub note: Option<String>,
}

/// A field a finding does not have is `null` in JSON, not absent: every finding has the same
/// keys, so `jq '.[] | .rule_id'` and typed readers need no special case per kind.
fn empty_as_null<S: serde::Serializer, T: AsRef<str>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    match v.as_ref() {
        "" => s.serialize_none(),
        text => s.serialize_str(text),
    }
}

/// Ports whose exposure to the whole internet is a finding of its own: SSH, RDP and the
/// common databases and caches.
const ADMIN_PORTS: [(i32, &str); 11] = [
    (22, "SSH"),
    (3389, "RDP"),
    (3306, "MySQL"),
    (5432, "PostgreSQL"),
    (1433, "SQL Server"),
    (1521, "Oracle"),
    (27017, "MongoDB"),
    (6379, "Redis"),
    (9200, "Elasticsearch"),
    (11211, "memcached"),
    (5984, "CouchDB"),
];

/// The findings for `fleet` and `firewall`, each instance called by the names `snapshot`
/// serves it under ([`Snapshot::own_names`]), each departure by the names it had then.
/// `fleet` may hold more than the snapshot's (stopped instances keep their addresses).
pub fn findings(
    fleet: &[Arc<Instance>],
    firewall: &Firewall,
    rules: &Rules,
    snapshot: &Snapshot,
    departed: &[Departed],
) -> Vec<Finding> {
    audit(
        fleet,
        firewall,
        rules,
        &snapshot.own_names_by_id(),
        departed,
    )
}

/// The audit's findings, most severe first. `names` maps an instance id to its stable names
/// (the first is the one reported).
pub fn audit(
    fleet: &[Arc<Instance>],
    firewall: &Firewall,
    rules: &Rules,
    names: &HashMap<String, Vec<String>>,
    departed: &[Departed],
) -> Vec<Finding> {
    let group_names: HashMap<&str, &str> = firewall
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.name.as_str()))
        .collect();
    // Who holds each address now: an instance of the fleet (by index), or any interface. A
    // terminated instance holds nothing, whatever the API still lists for it.
    let mut instances: HashMap<IpAddr, (usize, bool)> = HashMap::new();
    for (i, inst) in fleet.iter().enumerate() {
        if !inst.state.holds_addresses() {
            continue;
        }
        if let Some(ip) = inst.private_ip {
            instances.insert(ip.into(), (i, false));
        }
        if let Some(ip) = inst.public_ip {
            instances.insert(ip.into(), (i, true));
        }
        for ip in &inst.ipv6 {
            instances.insert((*ip).into(), (i, false));
        }
    }
    let terminated: HashSet<&str> = fleet
        .iter()
        .filter(|i| !i.state.holds_addresses())
        .map(|i| i.id.as_str())
        .collect();
    let mut interfaces: HashMap<IpAddr, (&Interface, bool)> = HashMap::new();
    for n in &firewall.interfaces {
        if n.instance_id
            .as_deref()
            .is_some_and(|i| terminated.contains(i))
        {
            continue;
        }
        for ip in &n.private {
            interfaces.insert(*ip, (n, false));
        }
        for (ip, _) in &n.public {
            interfaces.insert(*ip, (n, true));
        }
    }
    let elastic: HashSet<IpAddr> = firewall.elastic.iter().copied().collect();
    // The last instance that held each address, newest departure last so it wins.
    let mut holders: HashMap<IpAddr, &Departed> = HashMap::new();
    for d in departed {
        let i = &d.instance;
        let addresses = (i.private_ip.map(IpAddr::from).into_iter())
            .chain(i.public_ip.map(IpAddr::from))
            .chain(i.ipv6.iter().map(|a| IpAddr::from(*a)));
        for ip in addresses {
            holders.insert(ip, d);
        }
    }
    // Who answers each stable name now, to find what replaced a departed instance.
    let by_name: HashMap<&str, usize> = fleet
        .iter()
        .enumerate()
        .filter(|(_, i)| i.state.holds_addresses())
        .flat_map(|(n, i)| {
            names
                .get(&i.id)
                .into_iter()
                .flatten()
                .map(move |name| (name.as_str(), n))
        })
        .collect();
    let mut out = Vec::new();
    for rule in &firewall.rules {
        let group_name = group_names
            .get(rule.group_id.as_str())
            .copied()
            .unwrap_or("?");
        let finding = |kind: Kind, severity, fix: String| Finding {
            id: format!("{}:{}", kind.as_str(), rule.id),
            kind,
            severity,
            rule_id: rule.id.clone(),
            group_id: rule.group_id.clone(),
            group_name: group_name.to_owned(),
            direction: if rule.egress { "egress" } else { "ingress" },
            ports: rule.ports_text(),
            peer: rule.cidr.map(|c| c.to_string()).unwrap_or_default(),
            instance: None,
            name: None,
            replaced_by: None,
            fix,
            note: None,
        };
        let Some(cidr) = rule.cidr else {
            continue;
        };
        if cidr.prefix_len() == cidr.max_prefix_len() {
            let ip = cidr.addr();
            if let Some(&(i, public)) = instances.get(&ip) {
                let inst = &fleet[i];
                let mut f = if public && !elastic.contains(&ip) {
                    finding(
                        Kind::EphemeralPublic,
                        Severity::High,
                        ephemeral_fix(rule, ip, &format!("{}'s", inst.id), Some(&inst.id)),
                    )
                } else {
                    let mut f = finding(
                        Kind::Pinned,
                        Severity::Medium,
                        replacement(rule, inst, rules),
                    );
                    if public {
                        f.note = Some(PUBLIC_NOTE.into());
                    }
                    f
                };
                f.instance = Some(inst.id.clone());
                f.name = names.get(&inst.id).and_then(|n| n.first()).cloned();
                out.push(f);
            } else if let Some(&(iface, true)) = interfaces.get(&ip)
                && !elastic.contains(&ip)
            {
                let whose = match &iface.description {
                    Some(d) => format!("{} ({d})'s", iface.id),
                    None => format!("{}'s", iface.id),
                };
                out.push(finding(
                    Kind::EphemeralPublic,
                    Severity::High,
                    ephemeral_fix(rule, ip, &whose, None),
                ));
            } else if interfaces.contains_key(&ip) || elastic.contains(&ip) {
                // Held by something that is not an instance, or an Elastic IP the account
                // keeps: the address does not move.
            } else if let Some(d) = holders.get(&ip) {
                out.push(stale_departed(
                    finding(Kind::Stale, Severity::High, String::new()),
                    rule,
                    ip,
                    d,
                    &by_name,
                    fleet,
                    rules,
                ));
            } else if firewall.networks.iter().any(|n| n.contains(&ip)) {
                let fix = format!(
                    "nothing holds {ip} now; whoever is given it next is let in: {}",
                    revoke(rule)
                );
                out.push(finding(Kind::Stale, Severity::High, fix));
            }
        }
        let everyone = cidr.prefix_len() == 0;
        if everyone && !rule.egress {
            let open: Vec<&str> = ADMIN_PORTS
                .iter()
                .filter(|(port, _)| rule.allows_tcp(*port))
                .map(|(_, what)| *what)
                .collect();
            if !open.is_empty() {
                let fix = format!(
                    "{} open to {cidr}: allow your admin network or a bastion's group instead, \
                     then {}",
                    open.join(", "),
                    revoke(rule)
                );
                out.push(finding(Kind::OpenAdmin, Severity::High, fix));
            }
        }
    }
    out.extend(convention(fleet, firewall, rules));
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    once_each(&mut out);
    out
}

/// Each group reference is authorized once, by the first fix (in the order printed) that
/// needs it: two `/32`s of one tier on one port both become that tier's reference, and a
/// second `authorize` of the same permission fails (InvalidPermission.Duplicate), so its
/// `&& revoke` would never run and the pinned rule would stay. Later fixes revoke only.
fn once_each(findings: &mut [Finding]) {
    let mut authorized = HashSet::new();
    for f in findings.iter_mut() {
        let Some((head, commands)) = f.fix.split_once(" instead: ") else {
            continue;
        };
        let Some((authorize, revoke)) = commands.split_once(" && ") else {
            continue;
        };
        if !authorized.insert(authorize.to_owned()) {
            f.fix = format!(
                "{head} (a fix above already adds that reference; adding it again would fail \
                 as a duplicate) instead: {revoke}"
            );
        }
    }
}

/// Said of a group-reference fix for a rule that names a public address.
const PUBLIC_NOTE: &str = "a public address: a group reference matches only private traffic \
    from the same or a peered VPC, so traffic over the internet needs another way in (a load \
    balancer, or the Elastic IP moved to the replacement)";

/// Whether an address is one a group reference can stand for: private IPv4 (RFC 1918, and
/// the shared 100.64/10 some VPCs use) or IPv6 unique-local; a VPC's IPv6 is global, but
/// group references match it too.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64),
        IpAddr::V6(_) => true,
    }
}

/// The fix for a rule pinned to an auto-assigned public address (`whose` it is).
fn ephemeral_fix(rule: &Rule, ip: IpAddr, whose: &str, instance: Option<&str>) -> String {
    let verb = if rule.egress { "egress" } else { "ingress" };
    let ports = match (rule.from_port, rule.to_port) {
        (Some(a), Some(b)) => format!(",FromPort={a},ToPort={b}"),
        _ => String::new(),
    };
    let allow = format!(
        "aws ec2 authorize-security-group-{verb} --group-id {} --ip-permissions \
         'IpProtocol={}{ports},IpRanges=[{{CidrIp=<the Elastic IP>/32}}]'",
        rule.group_id, rule.protocol
    );
    let eip = match instance {
        Some(id) => format!(
            "Give {id} an Elastic IP (aws ec2 allocate-address --domain vpc, then aws ec2 \
             associate-address --instance-id {id} --allocation-id <eipalloc-…>) and allow \
             that: {allow}"
        ),
        None => format!("Put an Elastic IP in front of it and allow that: {allow}"),
    };
    format!(
        "{ip} is {whose} auto-assigned public address: it changes at every stop and start, \
         and AWS then gives it to another customer, whom this rule lets in. {eip}; then {}",
        revoke(rule)
    )
}

/// A stale finding for an address the state file knows `d` held, naming the instance that
/// has its stable name now, and the rule that would follow that one.
#[allow(clippy::too_many_arguments)]
fn stale_departed(
    mut f: Finding,
    rule: &Rule,
    ip: IpAddr,
    d: &Departed,
    by_name: &HashMap<&str, usize>,
    fleet: &[Arc<Instance>],
    rules: &Rules,
) -> Finding {
    let old = &d.instance;
    f.instance = Some(old.id.clone());
    f.name = d.names.first().cloned();
    let when = d.departed_at.strftime("%Y-%m-%d %H:%M UTC");
    let was = match &f.name {
        Some(n) => format!("{ip} was {} ({n}) until {when}", old.id),
        None => format!("{ip} was {} until {when}", old.id),
    };
    let successor = (d.names.iter())
        .find_map(|n| by_name.get(n.as_str()).map(|&i| (n, &fleet[i])))
        .filter(|(_, i)| i.id != old.id);
    f.fix = match successor {
        Some((name, new)) => {
            f.replaced_by = Some(new.id.clone());
            if !is_private(ip) {
                f.note = Some(PUBLIC_NOTE.into());
            }
            format!(
                "{was}; {} has {name} now, and nothing holds {ip}: {}",
                new.id,
                replacement(rule, new, rules)
            )
        }
        None => format!(
            "{was}; nothing holds it now, and whoever is given it next is let in: {}",
            revoke(rule)
        ),
    };
    f
}

/// The convention's findings: each instance in a tier group, the admin group (a tier group
/// named `admin`, when there is one) and a group of its own; each instance group with exactly
/// one member; each tier group with some; every referenced group still there.
fn convention(fleet: &[Arc<Instance>], firewall: &Firewall, rules: &Rules) -> Vec<Finding> {
    // The label the naming rules make of a group name (normalised as naming does, so
    // `SG-T-ÄDMIN` is the tier DNS serves), by whether the rule names single instances.
    let capture = |name: &str, single: bool| {
        rules.rules.iter().find_map(|r| match &r.kind {
            RuleKind::SecurityGroup { pattern } if r.single == single => pattern
                .captures(name)
                .and_then(|c| c.name("name").and_then(|m| normalize(m.as_str()).ok())),
            _ => None,
        })
    };
    let finding = |id: String, group_id: &str, group_name: &str, fix: String| Finding {
        id: format!("convention:{id}"),
        kind: Kind::Convention,
        severity: Severity::Low,
        rule_id: String::new(),
        group_id: group_id.to_owned(),
        group_name: group_name.to_owned(),
        direction: "",
        ports: String::new(),
        peer: String::new(),
        instance: None,
        name: None,
        replaced_by: None,
        fix,
        note: None,
    };
    let mut out = Vec::new();
    let admin_exists = firewall
        .groups
        .iter()
        .any(|g| capture(&g.name, false).as_deref() == Some("admin"));
    let live: Vec<&Instance> = fleet
        .iter()
        .map(|i| &**i)
        .filter(|i| rules.states.contains(&i.state))
        .collect();
    let mut members: HashMap<&str, usize> = HashMap::new();
    for inst in &live {
        let mut tier = false;
        let mut admin = false;
        let mut own = false;
        for g in &inst.security_groups {
            *members.entry(g.id.as_str()).or_default() += 1;
            match capture(&g.name, false) {
                // The admin group is a tier too: its members answer `admin.<apex>`.
                Some(n) if n == "admin" => (admin, tier) = (true, true),
                Some(_) => tier = true,
                None => {}
            }
            own |= capture(&g.name, true).is_some();
        }
        let missing = [
            (
                !tier,
                "no-tier",
                "no tier group (SG-T-<role>): it answers no role's name",
            ),
            (
                !admin && admin_exists,
                "no-admin",
                "not in the admin group: the admin rules do not reach it",
            ),
            (
                !own,
                "no-own",
                "no group of its own (SG-I-<name>): rules for it alone must name its address",
            ),
        ];
        for (_, what, why) in missing.iter().filter(|m| m.0) {
            let mut f = finding(
                format!("{}:{what}", inst.id),
                "",
                "",
                format!("{} has {why}", inst.id),
            );
            f.instance = Some(inst.id.clone());
            out.push(f);
        }
    }
    for g in &firewall.groups {
        let n = members.get(g.id.as_str()).copied().unwrap_or(0);
        let problem = if capture(&g.name, true).is_some() && n != 1 {
            Some(format!(
                "an instance group with {n} members: it should hold exactly one instance"
            ))
        } else if capture(&g.name, false).is_some() && n == 0 {
            Some("a tier group with no members: its rules reach nothing".to_owned())
        } else {
            None
        };
        if let Some(why) = problem {
            out.push(finding(
                format!("{}:members", g.id),
                &g.id,
                &g.name,
                format!("{} is {why}", g.name),
            ));
        }
    }
    let known: std::collections::HashSet<&str> =
        firewall.groups.iter().map(|g| g.id.as_str()).collect();
    for rule in &firewall.rules {
        if let Some(gone) = rule.group_ref.as_deref().filter(|r| !known.contains(r)) {
            let group_name = firewall
                .groups
                .iter()
                .find(|g| g.id == rule.group_id)
                .map_or("?", |g| g.name.as_str());
            let mut f = finding(
                format!("{}:gone", rule.id),
                &rule.group_id,
                group_name,
                format!(
                    "the rule names {gone}, which no longer exists: {}",
                    revoke(rule)
                ),
            );
            f.rule_id = rule.id.clone();
            f.direction = if rule.egress { "egress" } else { "ingress" };
            f.ports = rule.ports_text();
            f.peer = gone.to_owned();
            out.push(f);
        }
    }
    out
}

/// The revoke command for `rule`.
fn revoke(rule: &Rule) -> String {
    let verb = if rule.egress { "egress" } else { "ingress" };
    format!(
        "aws ec2 revoke-security-group-{verb} --group-id {} --security-group-rule-ids {}",
        rule.group_id, rule.id
    )
}

/// The group-reference rule that replaces `rule`, pinned to `inst`: its own group (a `single`
/// security-group naming rule's pattern), else its tier group (any other), then the revoke.
fn replacement(rule: &Rule, inst: &Instance, rules: &Rules) -> String {
    let pick = |single: bool| {
        inst.security_groups.iter().find(|g| {
            rules.rules.iter().any(|r| {
                r.single == single
                    && matches!(&r.kind, RuleKind::SecurityGroup { pattern } if pattern.is_match(&g.name))
            })
        })
    };
    let Some(group) = pick(true).or_else(|| pick(false)) else {
        return format!(
            "{} has no group the naming rules recognise: give it its own (SG-I-<name>), \
             reference that, then {}",
            inst.id,
            revoke(rule)
        );
    };
    let verb = if rule.egress { "egress" } else { "ingress" };
    let ports = match (rule.from_port, rule.to_port) {
        (Some(a), Some(b)) => format!(",FromPort={a},ToPort={b}"),
        _ => String::new(),
    };
    format!(
        "reference {name} ({id}) instead: aws ec2 authorize-security-group-{verb} --group-id {g} \
         --ip-permissions 'IpProtocol={p}{ports},UserIdGroupPairs=[{{GroupId={id}}}]' && {rv}",
        name = group.name,
        id = group.id,
        g = rule.group_id,
        p = rule.protocol,
        rv = revoke(rule),
    )
}

impl Finding {
    /// What the finding is about, in one line: the rule, its group, direction, ports and peer,
    /// and the instance.
    pub fn subject(&self) -> String {
        let mut who = match (&self.instance, &self.name) {
            (Some(i), Some(n)) => format!(" {i} ({n})"),
            (Some(i), None) => format!(" {i}"),
            _ => String::new(),
        };
        if let Some(new) = &self.replaced_by {
            who.push_str(&format!(", replaced by {new}"));
        }
        let group = if self.group_id.is_empty() {
            String::new()
        } else {
            format!("{} ({})", self.group_name, self.group_id)
        };
        let rule = [
            self.rule_id.as_str(),
            &group,
            self.direction,
            &self.ports,
            &self.peer,
        ]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        format!("{rule}{who}").trim().to_owned()
    }
}

/// The findings as a table for people.
pub fn table(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no findings\n".into();
    }
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<6} {:<16} {}\n    fix: {}\n",
            f.severity.as_str(),
            f.kind.as_str(),
            f.subject(),
            f.fix
        ));
        if let Some(note) = &f.note {
            out.push_str(&format!("    note: {note}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::security::Group;
    use crate::naming::Rule as NamingRule;

    fn rules() -> Rules {
        let sg = |pattern: &str, single| NamingRule {
            kind: RuleKind::SecurityGroup {
                pattern: regex::Regex::new(pattern).expect("regex"),
            },
            single,
            inside_only: false,
            slots: false,
        };
        Rules {
            states: Default::default(),
            instance_id_names: true,
            rules: vec![
                sg("^SG-T-(?P<name>.+)$", false),
                sg("^SG-I-(?P<name>.+)$", true),
            ],
            srv_tag: "stabledns:srv".into(),
            inside_only_tag: "stabledns:inside-only".into(),
            drain_tag: "stabledns:drain".into(),
            slot_store: Default::default(),
        }
    }

    #[test]
    fn an_admin_only_instance_has_a_tier_and_json_keeps_every_key() {
        let mut bastion: Instance = serde_json::from_value(serde_json::json!({
            "id": "i-bastion", "state": "running", "launch_time": null, "account": null,
            "region": null, "availability_zone": null, "vpc_id": null, "subnet_id": null,
            "private_ip": "10.0.0.5", "private_dns_name": null, "public_ip": null,
            "public_dns_name": null, "ipv6": [], "tags": {},
            "security_groups": [{"id": "sg-admin", "name": "SG-T-ADMIN"}]
        }))
        .expect("instance");
        bastion.state = crate::inventory::InstanceState::Running;
        let firewall = Firewall {
            groups: vec![Group {
                id: "sg-admin".into(),
                name: "SG-T-ADMIN".into(),
                vpc_id: None,
            }],
            ..Default::default()
        };
        let mut r = rules();
        r.states = [crate::inventory::InstanceState::Running].into();
        let found = audit(&[Arc::new(bastion)], &firewall, &r, &HashMap::new(), &[]);
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        // It answers admin.<apex>: no "answers no role's name". It still has no group of its own.
        assert_eq!(ids, ["convention:i-bastion:no-own"], "{found:#?}");
        let json = serde_json::to_value(&found[0]).expect("json");
        for key in [
            "rule_id",
            "group_id",
            "group_name",
            "direction",
            "ports",
            "peer",
        ] {
            assert_eq!(
                json.get(key),
                Some(&serde_json::Value::Null),
                "{key}: {json}"
            );
        }
    }

    #[test]
    fn an_ephemeral_address_fix_says_how_to_allow_the_elastic_ip() {
        let rule = Rule {
            id: "sgr-9".into(),
            group_id: "sg-db".into(),
            egress: false,
            protocol: "tcp".into(),
            from_port: Some(5432),
            to_port: Some(5432),
            cidr: Some("34.240.10.11/32".parse().expect("cidr")),
            group_ref: None,
            description: None,
        };
        let ip: IpAddr = "34.240.10.11".parse().expect("ip");
        let fix = ephemeral_fix(&rule, ip, "i-1's", Some("i-1"));
        assert!(
            fix.contains(
                "aws ec2 authorize-security-group-ingress --group-id sg-db --ip-permissions \
                 'IpProtocol=tcp,FromPort=5432,ToPort=5432,IpRanges=[{CidrIp=<the Elastic IP>/32}]'"
            ),
            "{fix}"
        );
        assert!(fix.ends_with("--security-group-rule-ids sgr-9"), "{fix}");
        assert!(!is_private(ip));
        assert!(is_private("10.1.2.3".parse().expect("ip")));
        assert!(is_private("100.64.0.1".parse().expect("ip")));
    }

    #[test]
    fn a_group_reference_two_fixes_need_is_authorized_once() {
        let pinned = |rule: &str| Finding {
            id: format!("pinned:{rule}"),
            kind: Kind::Pinned,
            severity: Severity::Medium,
            rule_id: rule.into(),
            group_id: "sg-db".into(),
            group_name: "SG-T-DB".into(),
            direction: "ingress",
            ports: "tcp 3306".into(),
            peer: String::new(),
            instance: None,
            name: None,
            replaced_by: None,
            fix: format!(
                "reference SG-T-WEB (sg-web) instead: aws ec2 authorize-security-group-ingress \
                 --group-id sg-db --ip-permissions 'IpProtocol=tcp,FromPort=3306,ToPort=3306,\
                 UserIdGroupPairs=[{{GroupId=sg-web}}]' && aws ec2 revoke-security-group-ingress \
                 --group-id sg-db --security-group-rule-ids {rule}"
            ),
            note: None,
        };
        let mut found = vec![pinned("sgr-1"), pinned("sgr-2")];
        once_each(&mut found);
        assert!(found[0].fix.contains("authorize-security-group-ingress"));
        assert!(!found[1].fix.contains("authorize"), "{}", found[1].fix);
        assert!(
            found[1]
                .fix
                .ends_with(": aws ec2 revoke-security-group-ingress --group-id sg-db --security-group-rule-ids sgr-2"),
            "{}",
            found[1].fix
        );
    }

    /// An instance as the audit sees it: running, with these addresses and groups.
    fn instance(
        id: &str,
        private: &str,
        public: Option<&str>,
        groups: &[(&str, &str)],
    ) -> Instance {
        let groups: Vec<serde_json::Value> = groups
            .iter()
            .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": id, "state": "running", "launch_time": null, "account": null,
            "region": null, "availability_zone": null, "vpc_id": null, "subnet_id": null,
            "private_ip": private, "private_dns_name": null, "public_ip": public,
            "public_dns_name": null, "ipv6": [], "tags": {}, "security_groups": groups
        }))
        .expect("instance")
    }

    #[test]
    fn a_stale_public_address_s_group_reference_fix_says_it_matches_private_traffic_only() {
        let groups = [("sg-web1", "SG-I-WEB1")];
        let old = instance("i-old", "10.0.0.5", Some("34.240.10.11"), &groups);
        let new = instance("i-new", "10.0.0.6", Some("34.240.10.12"), &groups);
        let firewall = Firewall {
            groups: vec![Group {
                id: "sg-db".into(),
                name: "SG-T-DB".into(),
                vpc_id: None,
            }],
            rules: ["34.240.10.11/32", "10.0.0.5/32"]
                .iter()
                .enumerate()
                .map(|(i, cidr)| Rule {
                    id: format!("sgr-{i}"),
                    group_id: "sg-db".into(),
                    egress: false,
                    protocol: "tcp".into(),
                    from_port: Some(443),
                    to_port: Some(443),
                    cidr: Some(cidr.parse().expect("cidr")),
                    group_ref: None,
                    description: None,
                })
                .collect(),
            ..Default::default()
        };
        let departed = [Departed {
            instance: old,
            departed_at: "2026-12-01T10:00:00Z".parse().expect("time"),
            names: vec!["web1.internal.".to_owned()],
        }];
        let names: HashMap<String, Vec<String>> =
            [("i-new".to_owned(), vec!["web1.internal.".to_owned()])].into();
        let mut r = rules();
        r.states = [crate::inventory::InstanceState::Running].into();
        let found = audit(&[Arc::new(new)], &firewall, &r, &names, &departed);
        let stale: Vec<&Finding> = found.iter().filter(|f| f.kind == Kind::Stale).collect();
        assert_eq!(stale.len(), 2, "{found:#?}");
        let public = stale
            .iter()
            .find(|f| f.peer == "34.240.10.11/32")
            .expect("public");
        assert!(public.fix.contains("reference SG-I-WEB1"), "{}", public.fix);
        assert!(
            public
                .note
                .as_deref()
                .is_some_and(|n| n.contains("only private traffic")),
            "{public:#?}"
        );
        let private = stale
            .iter()
            .find(|f| f.peer == "10.0.0.5/32")
            .expect("private");
        assert_eq!(private.note, None);
    }

    #[test]
    fn a_rule_naming_a_group_that_is_gone_is_reported_with_its_revoke() {
        let firewall = Firewall {
            groups: vec![Group {
                id: "sg-db".into(),
                name: "SG-T-DB".into(),
                vpc_id: None,
            }],
            rules: vec![Rule {
                id: "sgr-1".into(),
                group_id: "sg-db".into(),
                egress: false,
                protocol: "tcp".into(),
                from_port: Some(3306),
                to_port: Some(3306),
                cidr: None,
                group_ref: Some("sg-gone".into()),
                description: None,
            }],
            ..Default::default()
        };
        let found = audit(&[], &firewall, &rules(), &HashMap::new(), &[]);
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        // The tier group has no members, and its rule names a group nobody has.
        assert_eq!(ids, ["convention:sg-db:members", "convention:sgr-1:gone"]);
        assert_eq!(found[1].peer, "sg-gone");
        assert!(found[1].fix.contains("--security-group-rule-ids sgr-1"));
        let text = table(&found);
        assert!(
            text.contains("low    convention       sgr-1 SG-T-DB (sg-db) ingress tcp 3306 sg-gone"),
            "{text}"
        );
    }
}
