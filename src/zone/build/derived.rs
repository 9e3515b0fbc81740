//! Records derived from the names and the fleet rather than named by a rule: SRV records under
//! tiers, and PTR records in each view's reverse zones.

use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::IpNet;
use rustc_hash::FxHashMap;

use super::{NewSet, Pool, ViewBuilder, fqdn, under, view_addresses};
use crate::inventory::Instance;
use crate::naming::{Backing, Naming, Via};
use crate::view::SingleMode;
use crate::zone::Pick;
use crate::zone::store::{NameId, StoreBuilder, push_rr, wire_name};
use std::sync::Arc;

impl ViewBuilder<'_> {
    /// SRV records under each tier for the instances whose SRV tag names a service. The target
    /// must have addresses of its own (RFC 2782: not a CNAME): the public DNS name where this
    /// view answers single instances by CNAME (AWS's resolver gives the right address), else
    /// the instance's slot or id name, when this view has it as addresses.
    pub(super) fn add_services(
        &mut self,
        store: &mut StoreBuilder,
        pool: &mut Pool,
        naming: &Naming,
        fleet: &[Arc<Instance>],
        warnings: &mut Vec<String>,
    ) {
        let z = self.zone;
        let apex = wire_name(&z.apex);
        let mut sets: Vec<(Name, Vec<Record>, Vec<Backing>)> = Vec::new();
        for svc in &naming.services {
            let (Ok(owner), Ok(tier)) = (under(&svc.owner, &z.apex), under(&svc.tier, &z.apex))
            else {
                continue;
            };
            if self.node(store, &wire_name(&tier)).is_none() {
                continue; // the tier is not shown in this view
            }
            let Some(inst) = fleet.get(svc.instance as usize) else {
                continue;
            };
            if self.hides(naming, svc.instance) {
                continue;
            }
            let slot = naming.slots.get(&svc.tier).and_then(|m| m.get(&inst.id));
            let target = srv_target(self.policy, z, inst, &svc.tier, slot, &|w| {
                self.has_addresses(store, w)
            });
            let Some(target) = target else {
                warnings.push(format!(
                    "{}: no name with addresses to be the target of {} in view {}; skipped",
                    inst.id, svc.owner, self.policy.name
                ));
                continue;
            };
            let record = Record::from_rdata(
                owner.clone(),
                z.record_ttl,
                RData::SRV(SRV::new(0, 0, svc.port, target)),
            );
            let backing = Backing {
                instance: svc.instance,
                via: crate::naming::Vias::one(Via::Service { port: svc.port }),
            };
            match sets.last_mut() {
                Some((last, records, b)) if *last == owner => {
                    records.push(record);
                    b.push(backing);
                }
                _ => sets.push((owner, vec![record], vec![backing])),
            }
        }
        for (owner, records, backing) in sets {
            let pick = if records.len() > 1 {
                Pick::Rotate
            } else {
                Pick::All
            };
            let set = NewSet::of(RecordType::SRV, pick, &records);
            let id = store.intern(&wire_name(&owner));
            let span = pool.backings.push(backing);
            self.insert(store, &apex, id, smallvec::smallvec![set], span);
        }
    }

    fn has_addresses(&self, store: &StoreBuilder, name: &[u8]) -> bool {
        self.node(store, name).is_some_and(|n| {
            let refs = &self.set_refs[n.first as usize..][..usize::from(n.sets)];
            refs.iter()
                .any(|&id| super::sets::is_address(store.store().set(id).rtype()))
        })
    }

    /// PTR records for every address this view shows inside its reverse networks, pointing at
    /// each instance's primary name, and a reverse zone (SOA, NS) per network.
    pub(super) fn add_reverse(
        &mut self,
        store: &mut StoreBuilder,
        pool: &mut Pool,
        naming: &Naming,
        primary: &FxHashMap<u32, (NameId, bool)>,
        fleet: &[Arc<Instance>],
        warnings: &mut Vec<String>,
    ) {
        let policy = self.policy;
        let mut apexes = Vec::new();
        for net in &policy.reverse {
            match reverse_zone(net) {
                Some(origin) => {
                    self.add_zone(store, &origin);
                    apexes.push((*net, wire_name(&origin)));
                }
                None => warnings.push(format!(
                    "view {}: reverse network {net} is not on an octet (IPv4) or nibble (IPv6) \
                     boundary; skipped",
                    policy.name
                )),
            }
        }
        if apexes.is_empty() {
            return;
        }
        // In id order: of two instances with one address (a stale record), the first wins.
        let mut ids: Vec<u32> = primary.keys().copied().collect();
        ids.sort_by(|a, b| fleet[*a as usize].id.cmp(&fleet[*b as usize].id));
        for id in ids {
            let (target, inside_only) = primary[&id];
            if (policy.is_outside() && inside_only) || self.hides(naming, id) {
                continue;
            }
            let target = store.store().name(target).to_vec();
            if self.node(store, &target).is_none() {
                continue; // the name is not shown in this view
            }
            let Some(inst) = fleet.get(id as usize) else {
                continue;
            };
            for ip in view_addresses(inst, policy.addresses) {
                let Some((_, apex)) = apexes.iter().find(|(net, _)| net.contains(&ip)) else {
                    continue;
                };
                let owner = wire_name(&Name::from(ip));
                // Two instances with one address (a stale record): the first, by id.
                if self.node(store, &owner).is_some_and(|n| n.sets > 0) {
                    continue;
                }
                let mut wire = super::Wire::new();
                push_rr(&mut wire, RecordType::PTR, self.zone.record_ttl, &target);
                let set = NewSet {
                    rtype: RecordType::PTR,
                    pick: Pick::All,
                    count: 1,
                    wire,
                };
                let span = pool.address(id);
                let name = store.intern(&owner);
                let apex = apex.clone();
                self.insert(store, &apex, name, smallvec::smallvec![set], span);
            }
        }
    }
}

/// The target of an instance's SRV record under `tier` in one view: must have addresses of its
/// own (RFC 2782: not a CNAME): the public DNS name where the view answers single instances by
/// CNAME (AWS's resolver gives the right address), else the instance's slot name (`slot`) or
/// id name, the first that `has_addresses` in the view.
pub(super) fn srv_target(
    policy: &crate::view::ViewPolicy,
    zone: &crate::zone::settings::ZoneConfig,
    inst: &Instance,
    tier: &str,
    slot: Option<&u32>,
    has_addresses: &dyn Fn(&[u8]) -> bool,
) -> Option<Name> {
    let public_name = inst.public_dns_name.as_deref().and_then(fqdn);
    match (policy.single, public_name) {
        (SingleMode::Cname, Some(name)) => Some(name),
        _ => {
            let slot = slot.and_then(|n| under(&format!("{n}.{tier}"), &zone.apex).ok());
            let id = under(&inst.id, &zone.apex).ok();
            [slot, id]
                .into_iter()
                .flatten()
                .find(|n| has_addresses(&wire_name(n)))
        }
    }
}

/// The reverse zone of a network on an octet (IPv4) or nibble (IPv6) boundary.
pub(super) fn reverse_zone(net: &IpNet) -> Option<Name> {
    let text = match net {
        IpNet::V4(v4) => {
            if v4.prefix_len() % 8 != 0 {
                return None;
            }
            let n = usize::from(v4.prefix_len() / 8);
            let mut labels: Vec<String> =
                v4.addr().octets()[..n].iter().map(u8::to_string).collect();
            labels.reverse();
            labels.push("in-addr.arpa.".into());
            labels.join(".")
        }
        IpNet::V6(v6) => {
            if v6.prefix_len() % 4 != 0 {
                return None;
            }
            let n = usize::from(v6.prefix_len() / 4);
            let mut labels: Vec<String> = v6
                .addr()
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .take(n)
                .map(|nibble| format!("{nibble:x}"))
                .collect();
            labels.reverse();
            labels.push("ip6.arpa.".into());
            labels.join(".")
        }
    };
    Name::from_ascii(text.trim_start_matches('.')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_zones_follow_octet_and_nibble_boundaries() {
        let zone = |s: &str| reverse_zone(&s.parse().expect("cidr")).map(|n| n.to_ascii());
        assert_eq!(zone("10.0.0.0/8").as_deref(), Some("10.in-addr.arpa."));
        assert_eq!(zone("10.1.0.0/16").as_deref(), Some("1.10.in-addr.arpa."));
        assert_eq!(
            zone("192.168.7.0/24").as_deref(),
            Some("7.168.192.in-addr.arpa.")
        );
        assert_eq!(zone("10.0.0.0/12"), None);
        assert_eq!(
            zone("2a05:d018::/32").as_deref(),
            Some("8.1.0.d.5.0.a.2.ip6.arpa.")
        );
        assert_eq!(zone("2a05:d018::/30"), None);
    }
}
