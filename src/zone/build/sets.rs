//! A name's record sets as one view shows them, from the instances behind it: addresses,
//! CNAMEs to public DNS names, and the wire bytes they are stored as.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::inventory::Instance;
use crate::naming::Backing;
use crate::view::{AddressKind, SingleMode, TierMode, ViewPolicy};
use crate::zone::Pick;
use crate::zone::store::{push_record, push_rr};

/// Whether records of this type are addresses (what an SRV target must have).
pub(super) fn is_address(t: RecordType) -> bool {
    matches!(t, RecordType::A | RecordType::AAAA)
}

/// An RRset on its way into the store: its records in answer-section wire form, inline for
/// the common one-record set (an A record is 16 bytes, a CNAME to an EC2 name about 60).
pub(super) struct NewSet {
    pub(super) rtype: RecordType,
    pub(super) pick: Pick,
    pub(super) count: usize,
    pub(super) wire: Wire,
}

/// A set's wire bytes while building.
pub(super) type Wire = smallvec::SmallVec<[u8; 64]>;

/// The sets of one name: most have one, and none needs a heap allocation for it.
pub(super) type NewSets = smallvec::SmallVec<[NewSet; 2]>;

impl NewSet {
    /// A set of records hickory encodes (the zone's own, SRV): the rare types.
    pub(super) fn of(rtype: RecordType, pick: Pick, records: &[Record]) -> Self {
        let mut wire = Vec::new();
        let count = records.iter().filter(|r| push_record(&mut wire, r)).count();
        Self {
            rtype,
            pick,
            count,
            wire: Wire::from_vec(wire),
        }
    }
}

/// Whether an address may be shown to outside clients.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            !(v6.is_unique_local()
                || v6.is_loopback()
                || v6.is_unicast_link_local()
                || v6.is_unspecified())
        }
    }
}

pub(super) fn address_record(owner: &Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), ttl, rdata)
}

/// An A set and an AAAA set, in that (type) order, from sorted addresses; a set of several
/// is rotated per query.
pub(super) fn address_sets(ips: &[IpAddr], ttl: u32) -> NewSets {
    let mut a = Wire::new();
    let mut aaaa = Wire::new();
    for ip in ips {
        match ip {
            IpAddr::V4(v4) => push_rr(&mut a, RecordType::A, ttl, &v4.octets()),
            IpAddr::V6(v6) => push_rr(&mut aaaa, RecordType::AAAA, ttl, &v6.octets()),
        }
    }
    [(RecordType::A, a, 16), (RecordType::AAAA, aaaa, 28)]
        .into_iter()
        .filter(|(_, wire, _)| !wire.is_empty())
        .map(|(rtype, wire, rr_len)| {
            let count = wire.len() / rr_len;
            NewSet {
                rtype,
                pick: if count > 1 { Pick::Rotate } else { Pick::All },
                count,
                wire,
            }
        })
        .collect()
}

/// The addresses of one instance that a view may show, sorted.
pub(super) fn view_addresses(inst: &Instance, kind: AddressKind) -> Addresses {
    let mut ips = Addresses::new();
    let v4 = match kind {
        AddressKind::Private => inst.private_ip,
        AddressKind::Public => inst.public_ip,
    };
    ips.extend(v4.map(IpAddr::V4));
    // EC2's IPv6 addresses are global, but an instance without a public IPv4 lives on a
    // private subnet: showing its address outside tells the world it exists. Outside views
    // answer IPv6 only for publicly addressed instances, and never a unique-local address.
    let public = kind == AddressKind::Public;
    let v6 = inst
        .ipv6
        .iter()
        .filter(|ip| !public || (inst.public_ip.is_some() && !ip.is_unique_local()));
    ips.extend(v6.copied().map(IpAddr::V6));
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// Addresses of a name while building: inline for a handful.
pub(super) type Addresses = smallvec::SmallVec<[IpAddr; 4]>;

/// A name's sets in one view, from the instances behind it; `public_wire` gives an instance's
/// public DNS name in wire form by fleet index.
pub(super) fn host_rrsets<'p>(
    backing: &[Backing],
    fleet: &[Arc<Instance>],
    ttl: u32,
    public_wire: &impl Fn(usize) -> Option<&'p Vec<u8>>,
    policy: &ViewPolicy,
) -> NewSets {
    let backing: smallvec::SmallVec<[(usize, &Instance); 4]> = backing
        .iter()
        .filter_map(|b| {
            let i = b.instance as usize;
            Some((i, &**fleet.get(i)?))
        })
        .collect();
    let tier = backing.len() > 1;
    let public_name = |&(i, _): &(usize, &Instance)| public_wire(i);
    let cnames = |targets: &[&Vec<u8>], pick| {
        let mut wire = Wire::with_capacity(targets.iter().map(|t| 12 + t.len()).sum());
        for target in targets {
            push_rr(&mut wire, RecordType::CNAME, ttl, target);
        }
        smallvec::smallvec![NewSet {
            rtype: RecordType::CNAME,
            pick,
            count: targets.len(),
            wire,
        }]
    };
    if let ([only], SingleMode::Cname, false) = (backing.as_slice(), policy.single, tier)
        && let Some(target) = public_name(only)
    {
        return cnames(&[target], Pick::All);
    }
    if tier && policy.tiers == TierMode::Cname {
        // Only members this view may show: an outside view needs a public address behind it.
        let targets: Vec<&Vec<u8>> = backing
            .iter()
            .filter(|(_, i)| !policy.is_outside() || i.public_ip.is_some())
            .filter_map(public_name)
            .collect();
        if !targets.is_empty() {
            let pick = if targets.len() > 1 {
                Pick::One
            } else {
                Pick::All
            };
            return cnames(&targets, pick);
        }
    }
    // Sorted and deduplicated: the same set in the same order every build, so a rebuild of an
    // unchanged fleet gives identical answers.
    let mut ips: Addresses = match backing.as_slice() {
        [(_, only)] => view_addresses(only, policy.addresses),
        _ => backing
            .iter()
            .flat_map(|(_, inst)| view_addresses(inst, policy.addresses))
            .collect(),
    };
    ips.sort_unstable();
    ips.dedup();
    address_sets(&ips, ttl)
}

/// An AWS DNS name as an absolute name; `None` if it is not a valid name.
pub(super) fn fqdn(s: &str) -> Option<Name> {
    let mut name = Name::from_ascii(s.trim_end_matches('.')).ok()?;
    name.set_fqdn(true);
    Some(name.to_lowercase())
}
