//! The findings as a SARIF 2.1.0 log, for code-scanning dashboards (GitHub's among them).
//!
//! One reporting descriptor per kind of finding, one result per finding. A firewall rule has
//! no file and line, and GitHub's code scanning takes only repository-relative paths, so each
//! result's physical location is a stable path naming the security group
//! (`aws/ec2/security-groups/sg-…`, or `aws/ec2/instances/i-…` for an instance's own
//! convention findings); the logical location names the rule or group as AWS does. The
//! finding's id is its partial fingerprint, so a dashboard follows one finding across runs.

use serde_json::{Value, json};

use super::{Finding, Kind, Severity};

/// The SARIF spec's schema URI for 2.1.0.
const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Every kind, in the order of the log's `rules` array (a result's `ruleIndex`).
const KINDS: [Kind; 5] = [
    Kind::Pinned,
    Kind::Stale,
    Kind::EphemeralPublic,
    Kind::OpenAdmin,
    Kind::Convention,
];

/// A kind's descriptor: name, short and full description, default severity.
fn describe(kind: Kind) -> (&'static str, &'static str, &'static str, Severity) {
    match kind {
        Kind::Pinned => (
            "RulePinnedToInstanceAddress",
            "A security-group rule pinned to an instance's address",
            "The rule allows a /32 or /128 that an instance holds. It stops matching when the \
             instance is replaced; a rule that references the instance's own group (or its \
             tier's) never does.",
            Severity::Medium,
        ),
        Kind::Stale => (
            "RuleToReleasedAddress",
            "A security-group rule to an address nothing holds",
            "The rule allows a /32 or /128 inside the VPCs that no interface holds now: \
             whoever is given the address next is let in.",
            Severity::High,
        ),
        Kind::EphemeralPublic => (
            "RuleToAutoAssignedPublicAddress",
            "A security-group rule to an auto-assigned public address",
            "The rule allows a public address that is not an Elastic IP. It changes at every \
             stop and start, and AWS then gives it to another customer.",
            Severity::High,
        ),
        Kind::OpenAdmin => (
            "AdminPortOpenToTheInternet",
            "An administration or database port open to the internet",
            "SSH, RDP or a database port is allowed from 0.0.0.0/0 or ::/0.",
            Severity::High,
        ),
        Kind::Convention => (
            "GroupConventionBroken",
            "The security-group convention is broken",
            "Every instance belongs to its tier group, the admin group and a group of its \
             own; each instance group has one member, each tier group some, and every rule \
             names a group that exists.",
            Severity::Low,
        ),
    }
}

/// SARIF's level for a severity.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// The `security-severity` score code-scanning dashboards rank by (CVSS-like, 0 to 10).
fn score(severity: Severity) -> &'static str {
    match severity {
        Severity::High => "8.0",
        Severity::Medium => "5.0",
        Severity::Low => "2.0",
    }
}

/// The findings as a SARIF 2.1.0 log from stabledns `version`.
pub fn sarif(findings: &[Finding], version: &str) -> Value {
    let rules: Vec<Value> = KINDS
        .iter()
        .map(|&kind| {
            let (name, short, full, severity) = describe(kind);
            json!({
                "id": kind.as_str(),
                "name": name,
                "shortDescription": { "text": short },
                "fullDescription": { "text": full },
                "help": { "text": format!("{full} Each result says how to fix it.") },
                "defaultConfiguration": { "level": level(severity) },
                "properties": {
                    "tags": ["security", "aws", "security-group"],
                    "security-severity": score(severity),
                },
            })
        })
        .collect();
    let results: Vec<Value> = findings.iter().map(result).collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "stabledns",
                    "version": version,
                    "semanticVersion": version,
                    "rules": rules,
                }
            },
            "results": results,
        }]
    })
}

fn result(f: &Finding) -> Value {
    let index = KINDS.iter().position(|k| *k == f.kind).unwrap_or_default();
    // The resource the finding is about: the rule's group, else the instance.
    let (path, logical) = if !f.group_id.is_empty() {
        let logical = if f.rule_id.is_empty() {
            json!({ "name": f.group_id, "fullyQualifiedName": f.group_name, "kind": "resource" })
        } else {
            json!({
                "name": f.rule_id,
                "fullyQualifiedName": format!("{}/{}", f.group_id, f.rule_id),
                "kind": "resource",
            })
        };
        (format!("aws/ec2/security-groups/{}", f.group_id), logical)
    } else {
        let id = f.instance.as_deref().unwrap_or("unknown");
        (
            format!("aws/ec2/instances/{id}"),
            json!({ "name": id, "kind": "resource" }),
        )
    };
    let mut message = format!("{}: {}", f.subject(), f.fix);
    if let Some(note) = &f.note {
        message.push_str(&format!(" ({note})"));
    }
    json!({
        "ruleId": f.kind.as_str(),
        "ruleIndex": index,
        "level": level(f.severity),
        "message": { "text": message },
        "locations": [{
            "physicalLocation": { "artifactLocation": { "uri": path } },
            "logicalLocations": [logical],
        }],
        "partialFingerprints": { "stablednsFinding/v1": f.id },
        "properties": serde_json::to_value(f).unwrap_or(Value::Null),
    })
}
