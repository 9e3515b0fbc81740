//! What a name answers and why, or why it does not exist, from a snapshot and the claims on
//! the name (naming's own checks say why a claim made no name): `stabledns why` and the
//! status page's search print the same report.

use crate::Config;

/// A name asked about that is not a domain name.
#[derive(Debug, thiserror::Error)]
#[error("`{name}` is not a domain name: {why}")]
pub struct NotAName {
    name: String,
    why: String,
}

/// The report for `name` in view `v` of `snapshot`.
pub fn why(
    config: &Config,
    snapshot: &crate::zone::Snapshot,
    v: &crate::zone::ViewZone,
    name: &str,
) -> Result<String, NotAName> {
    use std::fmt::Write;
    let apex = config.zone.apex.to_ascii().to_ascii_lowercase();
    let asked = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let suffix = format!(".{}", apex.trim_end_matches('.'));
    let relative = asked.strip_suffix(&suffix).unwrap_or(&asked).to_owned();
    let fqdn = format!("{relative}.{apex}");
    let lower = hickory_proto::rr::LowerName::from(
        hickory_proto::rr::Name::from_ascii(&fqdn).map_err(|e| NotAName {
            name: name.to_owned(),
            why: e.to_string(),
        })?,
    );
    let mut out = String::new();
    let exists = v.exists(&lower);
    // The instances behind the name in this view, by id.
    let backing: Vec<&str> = (v.backing(&lower).unwrap_or_default().iter())
        .filter_map(|b| snapshot.fleet.get(b.instance as usize))
        .map(|i| i.id.as_str())
        .collect();
    if exists {
        let _ = writeln!(out, "{fqdn} exists in view {}:", v.name);
        for (rtype, data) in v.describe(&lower) {
            let _ = writeln!(
                out,
                "  {rtype} {} (instances: {})",
                data.join(" "),
                backing.join(", ")
            );
        }
    } else {
        let _ = writeln!(out, "{fqdn} does not exist in view {}.", v.name);
    }
    let limits = crate::zone::naming_limits(&config.zone);
    let claimants = crate::naming::claimants(&relative, &snapshot.fleet, &config.naming, &limits);
    let derived = v.backing(&lower).unwrap_or_default();
    if claimants.is_empty() && !derived.is_empty() {
        // A name made from other names (a slot of a tier, a service, an address): the snapshot
        // says which.
        for b in derived {
            if let Some(inst) = snapshot.fleet.get(b.instance as usize) {
                let via = crate::naming::vias_text(&b.via, inst, &relative, &snapshot.rule_tags);
                let _ = writeln!(out, "  {}: {via}", inst.id);
            }
        }
    } else if claimants.is_empty() {
        let _ = writeln!(
            out,
            "No instance in the inventory has a tag, security group or id that the naming rules \
             make `{relative}` of. Instances the inventory's own filters (inventory.filters) \
             leave out are not seen here."
        );
    }
    for c in &claimants {
        let inst = &snapshot.fleet[c.instance as usize];
        let backs = backing.contains(&inst.id.as_str());
        let what = match &c.dropped {
            Some(why) => format!("makes no name: {why}"),
            None if backs => "answers for it".to_owned(),
            None if exists && (config.naming.tagged_drain(inst) || inst.impaired) => {
                "claims it, but is out of the tier's answers (below)".to_owned()
            }
            None if exists => "claims it, but another instance holds it (below)".to_owned(),
            None => {
                let tagged = config.naming.tagged_inside_only(inst);
                let hidden = if !v.policy.is_outside() {
                    "it has no address this view shows".to_owned()
                } else if tagged {
                    format!("the instance is tagged {}", config.naming.inside_only_tag)
                } else if inst.public_ip.is_none() {
                    "it has no public address".to_owned()
                } else {
                    "an inside-only rule made it".to_owned()
                };
                format!("claims it, but view {} does not show it: {hidden}", v.name)
            }
        };
        let _ = writeln!(out, "  {} ({}) via {}: {what}", inst.id, inst.state, c.via);
    }
    for line in snapshot.contested.get(&lower).into_iter().flatten() {
        let _ = writeln!(out, "  {line}");
    }
    Ok(out)
}
