//! Building a [`Snapshot`] from the fleet and its names. Pure: the caller passes the serial.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::SystemTime;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::{Node, RrSet, Snapshot, ViewZone};
use crate::config::ZoneConfig;
use crate::inventory::Instance;
use crate::naming::{HostName, Naming};
use crate::view::{AddressKind, Selector, SingleMode, ViewPolicy};

/// Builds every view's answers for one fleet.
pub fn build(
    zone: &ZoneConfig,
    views_in: &[ViewPolicy],
    instances: &[Instance],
    naming: &Naming,
    serial: u32,
) -> Snapshot {
    let apex = LowerName::from(&zone.apex);
    let by_id: HashMap<&str, &Instance> = instances.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut warnings = naming.warnings.clone();

    // Owner names are built once and shared by every view.
    let mut owners = Vec::with_capacity(naming.names.len());
    for host in &naming.names {
        match Name::from_ascii(&host.name).and_then(|n| n.append_domain(&zone.apex)) {
            Ok(owner) => owners.push((owner, host)),
            Err(e) => warnings.push(format!(
                "{}: cannot be a name in {}: {e}",
                host.name, zone.apex
            )),
        }
    }

    let soa = Record::from_rdata(
        zone.apex.clone(),
        zone.apex_ttl,
        RData::SOA(SOA::new(
            zone.primary_ns.clone(),
            zone.hostmaster.clone(),
            serial,
            clamp(zone.refresh),
            clamp(zone.retry),
            clamp(zone.expire),
            zone.minimum,
        )),
    );
    let mut negative_soa = soa.clone();
    negative_soa.ttl = zone.apex_ttl.min(zone.minimum);

    let views = views_in
        .iter()
        .map(|policy| {
            let mut nodes: HashMap<LowerName, Node> = HashMap::new();
            apex_nodes(zone, policy, &soa, &mut nodes);
            for (owner, host) in &owners {
                let rrsets = host_rrsets(owner, host, &by_id, policy, zone.record_ttl);
                if rrsets.is_empty() {
                    // Nothing this view may show (e.g. no public address for an outside view):
                    // the name does not exist here rather than leaking another view's answer.
                    continue;
                }
                let key = LowerName::from(owner);
                add_ancestors(&apex, &key, &mut nodes);
                nodes.insert(
                    key,
                    Node {
                        rrsets,
                        backing: host.backing.iter().map(|b| b.instance.clone()).collect(),
                    },
                );
            }
            ViewZone {
                name: policy.name.clone(),
                nodes,
                negative_soa: negative_soa.clone(),
            }
        })
        .collect();

    let names = owners
        .iter()
        .map(|(owner, host)| {
            let ids = host.backing.iter().map(|b| b.instance.clone()).collect();
            (owner.to_ascii(), ids)
        })
        .collect();
    Snapshot {
        serial,
        names,
        selector: Selector::new(views_in),
        built_at: SystemTime::now(),
        apex,
        instance_count: instances.len(),
        views,
        warnings,
    }
}

/// SOA timers are unsigned 32-bit on the wire; hickory models them as i32.
fn clamp(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Whether an address may be shown to outside clients.
fn is_public(ip: IpAddr) -> bool {
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

fn apex_nodes(
    zone: &ZoneConfig,
    policy: &ViewPolicy,
    soa: &Record,
    nodes: &mut HashMap<LowerName, Node>,
) {
    let apex = LowerName::from(&zone.apex);
    let mut glue = Vec::new();
    let ns: Vec<Record> = zone
        .nameservers
        .iter()
        .map(|ns| {
            Record::from_rdata(
                zone.apex.clone(),
                zone.apex_ttl,
                RData::NS(NS(ns.name.clone())),
            )
        })
        .collect();
    for ns in &zone.nameservers {
        // Nameservers' private addresses are glue for the VPC, not for the world.
        let records: Vec<Record> = ns
            .addresses
            .iter()
            .filter(|ip| policy.addresses == AddressKind::Private || is_public(**ip))
            .map(|ip| address_record(&ns.name, zone.apex_ttl, *ip))
            .collect();
        if records.is_empty() {
            continue;
        }
        glue.extend(records.iter().cloned());
        let key = LowerName::from(&ns.name);
        add_ancestors(&apex, &key, nodes);
        nodes.insert(
            key,
            Node {
                rrsets: address_sets(records),
                backing: Vec::new(),
            },
        );
    }
    nodes.insert(
        apex,
        Node {
            rrsets: vec![
                RrSet {
                    rtype: RecordType::NS,
                    records: ns,
                    additionals: glue,
                },
                RrSet {
                    rtype: RecordType::SOA,
                    records: vec![soa.clone()],
                    additionals: Vec::new(),
                },
            ],
            backing: Vec::new(),
        },
    );
}

/// Every name between the apex and `name` exists (RFC 8020): `web.internal` answers NODATA,
/// not NXDOMAIN, when only `1.web.internal` has data.
fn add_ancestors(apex: &LowerName, name: &LowerName, nodes: &mut HashMap<LowerName, Node>) {
    let mut cur = name.base_name();
    while cur.num_labels() > apex.num_labels() {
        nodes.entry(cur.clone()).or_default();
        cur = cur.base_name();
    }
}

fn address_record(owner: &Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), ttl, rdata)
}

/// Splits address records into an A set and an AAAA set, in that (type) order.
fn address_sets(records: Vec<Record>) -> Vec<RrSet> {
    let (a, aaaa): (Vec<Record>, Vec<Record>) = records
        .into_iter()
        .partition(|r| r.record_type() == RecordType::A);
    [(RecordType::A, a), (RecordType::AAAA, aaaa)]
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(rtype, records)| RrSet {
            rtype,
            records,
            additionals: Vec::new(),
        })
        .collect()
}

fn host_rrsets(
    owner: &Name,
    host: &HostName,
    by_id: &HashMap<&str, &Instance>,
    policy: &ViewPolicy,
    ttl: u32,
) -> Vec<RrSet> {
    let backing: Vec<&Instance> = host
        .backing
        .iter()
        .filter_map(|b| by_id.get(b.instance.as_str()).copied())
        .collect();
    if let ([only], SingleMode::Cname) = (backing.as_slice(), policy.single)
        && let Some(target) = only.public_dns_name.as_deref().and_then(fqdn)
    {
        return vec![RrSet {
            rtype: RecordType::CNAME,
            records: vec![Record::from_rdata(
                owner.clone(),
                ttl,
                RData::CNAME(CNAME(target)),
            )],
            additionals: Vec::new(),
        }];
    }
    // Sorted and deduplicated: the same set in the same order every build, so a rebuild of an
    // unchanged fleet gives identical answers.
    let mut ips = BTreeSet::new();
    for inst in backing {
        let v4 = match policy.addresses {
            AddressKind::Private => inst.private_ip,
            AddressKind::Public => inst.public_ip,
        };
        ips.extend(v4.map(IpAddr::V4));
        // EC2's IPv6 addresses are global, but an instance without a public IPv4 lives on a
        // private subnet: showing its address outside tells the world it exists. Outside views
        // answer IPv6 only for publicly addressed instances, and never a unique-local address.
        let public = policy.addresses == AddressKind::Public;
        let v6 = inst
            .ipv6
            .iter()
            .filter(|ip| !public || (inst.public_ip.is_some() && !ip.is_unique_local()));
        ips.extend(v6.copied().map(IpAddr::V6));
    }
    address_sets(
        ips.into_iter()
            .map(|ip| address_record(owner, ttl, ip))
            .collect(),
    )
}

/// An AWS DNS name as an absolute name; `None` if it is not a valid name.
fn fqdn(s: &str) -> Option<Name> {
    let mut name = Name::from_ascii(s.trim_end_matches('.')).ok()?;
    name.set_fqdn(true);
    Some(name.to_lowercase())
}

/// What the zone's shape allows naming rules to produce.
pub fn naming_limits(zone: &ZoneConfig) -> crate::naming::Limits {
    let apex = LowerName::from(&zone.apex);
    crate::naming::Limits {
        // 253 presentation characters at most (RFC 1035's 255 octets on the wire), of which the
        // apex and the dot before it take `apex.len()`.
        max_name_len: 253usize.saturating_sub(zone.apex.len()),
        reserved: zone
            .nameservers
            .iter()
            .filter(|ns| apex.zone_of(&LowerName::from(&ns.name)))
            .filter_map(|ns| {
                let full = ns.name.to_lowercase().to_ascii();
                let suffix = format!(".{}", zone.apex.to_lowercase().to_ascii());
                full.strip_suffix(&suffix).map(str::to_owned)
            })
            .collect(),
    }
}
