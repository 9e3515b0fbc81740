//! The security-group audit: firewall rules that break when an instance is replaced.
//!
//! A rule that allows `10.0.1.20/32` (an instance's address) stops matching when the instance
//! is replaced; a rule that names a group never does. This reads the rules, every interface's
//! addresses and the fleet (from `inventory`), and the stable names (from the snapshot the
//! server would serve), and reports:
//! - **pinned**: a /32 or /128 of a live instance's address, with the group-reference rule
//!   that replaces it (the instance's own group by the naming rules' `single` group pattern,
//!   else its tier group) as ready `aws ec2` commands;
//! - **stale**: a /32 or /128 that no interface holds any more: whoever gets it next is let in;
//! - **open-admin**: SSH, RDP or a database port open to the whole internet.
//!
//! Pure: it never calls AWS, and it changes nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::Instance;
use crate::inventory::security::{Firewall, Rule};
use crate::naming::{RuleKind, Rules};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fragile, not yet wrong.
    Low,
    /// Breaks at the next replacement.
    Medium,
    /// Wrong now: open to anyone, or to whoever gets a released address.
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
    /// An administration or database port open to the internet.
    OpenAdmin,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Pinned => "pinned",
            Kind::Stale => "stale",
            Kind::OpenAdmin => "open-admin",
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
    pub rule_id: String,
    /// Its group.
    pub group_id: String,
    /// Its group's name.
    pub group_name: String,
    /// `ingress` or `egress`.
    pub direction: &'static str,
    /// `tcp 3306`, `all`.
    pub ports: String,
    /// The CIDR the rule names.
    pub peer: String,
    /// The instance the address belongs to.
    pub instance: Option<String>,
    /// The instance's stable name.
    pub name: Option<String>,
    /// What to do, with commands where there are some.
    pub fix: String,
    /// Anything else worth knowing.
    pub note: Option<String>,
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

/// Each instance's stable names, fully qualified: the names single-instance rules (and its id)
/// give it, its id's name last. Tier names are left out: they are not the instance's own.
pub fn stable_names(
    fleet: &[Instance],
    rules: &Rules,
    zone: &crate::zone::settings::ZoneConfig,
) -> HashMap<String, Vec<String>> {
    let naming = crate::naming::assign(
        fleet,
        rules,
        &crate::zone::naming_limits(zone),
        &Default::default(),
    );
    let apex = zone.apex.to_ascii();
    let mut names: HashMap<String, Vec<String>> = HashMap::new();
    for host in naming.names.iter().filter(|h| h.single) {
        if let [b] = &host.backing[..]
            && let Some(inst) = fleet.get(b.instance as usize)
        {
            names
                .entry(inst.id.clone())
                .or_default()
                .push(format!("{}.{apex}", host.name));
        }
    }
    for (id, list) in &mut names {
        list.sort_by_key(|n| (n.starts_with(id.as_str()), n.len(), n.clone()));
    }
    names
}

/// The audit's findings, most severe first. `names` maps an instance id to its stable names
/// (the first is the one reported).
pub fn audit(
    fleet: &[Instance],
    firewall: &Firewall,
    rules: &Rules,
    names: &HashMap<String, Vec<String>>,
) -> Vec<Finding> {
    let group_names: HashMap<&str, &str> = firewall
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.name.as_str()))
        .collect();
    // Who holds each address now: an instance of the fleet (by index) or any interface.
    let mut instances: HashMap<IpAddr, (usize, bool)> = HashMap::new();
    for (i, inst) in fleet.iter().enumerate() {
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
    let held: std::collections::HashSet<IpAddr> = firewall
        .interfaces
        .iter()
        .flat_map(|n| {
            n.private
                .iter()
                .copied()
                .chain(n.public.iter().map(|p| p.0))
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
                let mut f = finding(
                    Kind::Pinned,
                    Severity::Medium,
                    replacement(rule, inst, rules),
                );
                f.instance = Some(inst.id.clone());
                f.name = names.get(&inst.id).and_then(|n| n.first()).cloned();
                if public {
                    f.note = Some(
                        "a public address: a group reference matches only private traffic \
                         from the same or a peered VPC, so traffic over the internet needs \
                         another way in (a load balancer, or an Elastic IP kept on replacement)"
                            .into(),
                    );
                }
                out.push(f);
            } else if !held.contains(&ip) {
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
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
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

/// The findings as a table for people.
pub fn table(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "no findings\n".into();
    }
    let mut out = String::new();
    for f in findings {
        let who = match (&f.instance, &f.name) {
            (Some(i), Some(n)) => format!(" {i} ({n})"),
            (Some(i), None) => format!(" {i}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<6} {:<10} {} {} ({}) {} {} {}{who}\n    fix: {}\n",
            f.severity.as_str(),
            f.kind.as_str(),
            f.rule_id,
            f.group_name,
            f.group_id,
            f.direction,
            f.ports,
            f.peer,
            f.fix
        ));
        if let Some(note) = &f.note {
            out.push_str(&format!("    note: {note}\n"));
        }
    }
    out
}
