//! SRV records from the service tag (`http:tcp:80, metrics:tcp:9100`), under every tier an
//! instance is in.

use super::HostName;
use crate::inventory::Instance;
use std::sync::Arc;

/// A service an instance offers (from the SRV tag), published under each of its tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Relative owner, e.g. `_http._tcp.web`.
    pub owner: String,
    /// The tier it is published under, e.g. `web`.
    pub tier: String,
    /// The instance offering it (fleet index).
    pub instance: u32,
    /// Port.
    pub port: u16,
}

/// SRV records from the SRV tag (`http:tcp:80, metrics:tcp:9100`) under every tier the
/// instance is in.
pub(super) fn services(
    names: &[HostName],
    named: &[(u32, &Instance)],
    fleet: &[Arc<Instance>],
    tag: &str,
    warnings: &mut Vec<String>,
) -> Vec<Service> {
    let mut out = Vec::new();
    // By fleet index, in id order (so are the warnings): every named instance's tag, parsed
    // once however many tiers it is in.
    let mut ids: Vec<u32> = named.iter().map(|(i, _)| *i).collect();
    ids.sort_by(|a, b| fleet[*a as usize].id.cmp(&fleet[*b as usize].id));
    let mut parsed: rustc_hash::FxHashMap<u32, Vec<(String, String, u16)>> = Default::default();
    for i in ids {
        let inst = &fleet[i as usize];
        let Some(value) = inst.tags.get(tag) else {
            continue;
        };
        let mut list = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match parse_service(item) {
                Some(s) => list.push(s),
                None => warnings.push(format!(
                    "{}: tag {tag}={item:?} is not service:protocol:port (e.g. http:tcp:80); skipped",
                    inst.id
                )),
            }
        }
        parsed.insert(i, list);
    }
    for host in names.iter().filter(|h| !h.single) {
        for b in host.backing.iter() {
            for (service, proto, port) in parsed.get(&b.instance).into_iter().flatten() {
                out.push(Service {
                    owner: format!("_{service}._{proto}.{}", host.name),
                    tier: host.name.clone(),
                    instance: b.instance,
                    port: *port,
                });
            }
        }
    }
    let id = |i: u32| fleet[i as usize].id.as_str();
    out.sort_by(|a, b| (&a.owner, id(a.instance)).cmp(&(&b.owner, id(b.instance))));
    out
}

/// `http:tcp:80` → ("http", "tcp", 80). Service names per RFC 6335: letters, digits, hyphens.
pub(super) fn parse_service(item: &str) -> Option<(String, String, u16)> {
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
