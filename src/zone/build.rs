//! Building a [`Snapshot`] from the fleet and its names. Pure: the caller passes the serial.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use ipnet::IpNet;

use super::fast::{FastZone, NodeView};
use super::settings::ZoneConfig;
use super::{Node, Pick, RrSet, Snapshot, ViewZone, ZoneCut};
use crate::inventory::Instance;
use crate::naming::{Backing, HostName, Naming, Via};
use crate::view::{AddressKind, Selector, SingleMode, TierMode, ViewPolicy};

/// Builds every view's answers for one fleet.
pub fn build(
    zone: &ZoneConfig,
    views_in: &[ViewPolicy],
    fleet: &Arc<[Instance]>,
    naming: &Naming,
    serial: u32,
) -> Snapshot {
    let instances: &[Instance] = fleet;
    let apex = LowerName::from(&zone.apex);
    let by_id: HashMap<&str, &Instance> = instances.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut warnings = naming.warnings.clone();

    let passthrough: Arc<[LowerName]> = zone
        .passthrough
        .iter()
        .filter(|p| zone.apex.zone_of(p))
        .map(LowerName::from)
        .collect();
    // Owner names are built once and shared by every view.
    let mut owners = Vec::with_capacity(naming.names.len());
    for host in &naming.names {
        match under(&host.name, &zone.apex) {
            Ok(owner)
                if passthrough
                    .iter()
                    .any(|p| p.zone_of(&LowerName::from(&owner))) =>
            {
                warnings.push(format!(
                    "{owner}: lies in a subtree that is not ours (zone.passthrough or AWS's own \
                     domains); skipped"
                ));
            }
            Ok(owner) => owners.push((owner, host)),
            Err(e) => warnings.push(format!(
                "{}: cannot be a name in {}: {e}",
                host.name, zone.apex
            )),
        }
    }
    let primary = primary_names(&owners);

    // Each instance's public DNS name parsed once, not once per name and view.
    let public: HashMap<&str, Name> = instances
        .iter()
        .filter_map(|i| Some((i.id.as_str(), fqdn(i.public_dns_name.as_deref()?)?)))
        .collect();
    // The instances behind each name, shared by every view that shows them all.
    let shared: Vec<Arc<[Backing]>> = owners
        .iter()
        .map(|(_, host)| Arc::from(host.backing.as_slice()))
        .collect();
    let ctx = Context {
        zone,
        naming,
        by_id: &by_id,
        public: &public,
        primary: &primary,
        owners: &owners,
        shared: &shared,
        passthrough,
        serial,
    };
    // Views are independent: build them on all cores at once.
    let built: Vec<(ViewZone, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = views_in
            .iter()
            .map(|policy| scope.spawn(|| build_view(&ctx, policy)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut views = Vec::with_capacity(built.len());
    for (view, w) in built {
        views.push(view);
        warnings.extend(w);
    }

    let names = owners
        .iter()
        .map(|(owner, host)| {
            let ids = host.backing.iter().map(|b| b.instance.clone()).collect();
            (owner.to_ascii(), ids)
        })
        .collect();
    let contested = owners
        .iter()
        .filter(|(_, host)| !host.contested.is_empty())
        .map(|(owner, host)| (LowerName::from(owner), host.contested.clone()))
        .collect();
    Snapshot {
        serial,
        names,
        contested,
        fleet: fleet.clone(),
        fleet_index: instances
            .iter()
            .enumerate()
            .map(|(i, inst)| (inst.id.as_str().into(), i))
            .collect(),
        public_names: instances
            .iter()
            .enumerate()
            .filter_map(|(i, inst)| Some((LowerName::from(public.get(inst.id.as_str())?), i)))
            .collect(),
        slots: naming.slots.clone(),
        selector: Selector::new(views_in),
        built_at: SystemTime::now(),
        apex,
        instance_count: instances.len(),
        views,
        warnings,
    }
}

/// What every view's build reads.
struct Context<'a> {
    zone: &'a ZoneConfig,
    naming: &'a Naming,
    by_id: &'a HashMap<&'a str, &'a Instance>,
    public: &'a HashMap<&'a str, Name>,
    primary: &'a HashMap<&'a str, (&'a Name, bool)>,
    owners: &'a [(Name, &'a HostName)],
    shared: &'a [Arc<[Backing]>],
    passthrough: Arc<[LowerName]>,
    serial: u32,
}

/// One view's zone, and the warnings building it gave.
fn build_view(ctx: &Context<'_>, policy: &ViewPolicy) -> (ViewZone, Vec<String>) {
    let zone = ctx.zone;
    let apex = LowerName::from(&zone.apex);
    let mut warnings = Vec::new();
    let mut view = ViewBuilder {
        zone,
        policy,
        serial: ctx.serial,
        nodes: HashMap::with_capacity(ctx.owners.len() + 16),
        zones: Vec::new(),
        passthrough: ctx.passthrough.clone(),
        capped: Vec::new(),
        over_cap: 0,
    };
    view.add_zone(&zone.apex);
    view.add_glue();
    for ((owner, host), shared) in ctx.owners.iter().zip(ctx.shared) {
        if policy.is_outside() && host.inside_only {
            // Inside-only: the name does not exist outside (NXDOMAIN, not a leak).
            continue;
        }
        // Instances tagged inside-only are not behind any name outside.
        let backing = if host
            .backing
            .iter()
            .any(|b| view.hides(ctx.naming, &b.instance))
        {
            host.backing
                .iter()
                .filter(|b| !view.hides(ctx.naming, &b.instance))
                .cloned()
                .collect()
        } else {
            shared.clone()
        };
        let rrsets = host_rrsets(owner, &backing, ctx, policy);
        if rrsets.is_empty() {
            // Nothing this view may show (e.g. no public address for an outside view): the
            // name does not exist here rather than leaking another view's answer.
            continue;
        }
        view.insert(&apex, LowerName::from(owner), rrsets, backing);
    }
    view.add_services(ctx.naming, ctx.by_id, &mut warnings);
    view.add_reverse(ctx.naming, ctx.primary, ctx.by_id, &mut warnings);
    let name = &policy.name;
    warnings.extend(view.capped.drain(..).map(|c| format!("view {name}: {c}")));
    (view.finish(), warnings)
}

/// A relative name under `apex`.
fn under(relative: &str, apex: &Name) -> Result<Name, hickory_proto::ProtoError> {
    Name::from_ascii(relative).and_then(|n| n.append_domain(apex))
}

/// Each instance's name for PTR answers: the shortest name a rule made for it alone (`db1`),
/// else its slot name, else its instance id; ties go to the alphabetically first.
fn primary_names<'a>(owners: &'a [(Name, &'a HostName)]) -> HashMap<&'a str, (&'a Name, bool)> {
    /// (rule-made 0 / slot 1 / id 2, length, name): smaller is better.
    type Rank<'a> = (u8, usize, &'a str);
    let mut best: HashMap<&str, (Rank<'_>, &Name, bool)> = HashMap::new();
    for (owner, host) in owners {
        let [only] = host.backing.as_slice() else {
            continue;
        };
        let class = if only.via.iter().all(|v| *v == Via::InstanceId) {
            2
        } else if only.via.iter().all(|v| matches!(v, Via::Slot { .. })) {
            1
        } else {
            0
        };
        let key = (class, host.name.len(), host.name.as_str());
        let entry = best
            .entry(only.instance.as_str())
            .or_insert((key, owner, host.inside_only));
        if key < entry.0 {
            *entry = (key, owner, host.inside_only);
        }
    }
    best.into_iter()
        .map(|(id, (_, owner, inside_only))| (id, (owner, inside_only)))
        .collect()
}

/// One view's nodes while they are being built.
struct ViewBuilder<'a> {
    zone: &'a ZoneConfig,
    policy: &'a ViewPolicy,
    serial: u32,
    nodes: HashMap<LowerName, Node>,
    zones: Vec<ZoneCut>,
    passthrough: Arc<[LowerName]>,
    /// Sets larger than `max_records_per_rrset`, for the warnings.
    capped: Vec<String>,
    /// Records past the cap, which transfers leave out (answers rotate them in).
    over_cap: usize,
}

impl ViewBuilder<'_> {
    /// Whether this view leaves an instance out (tagged inside-only, and the view is outside).
    fn hides(&self, naming: &Naming, instance: &str) -> bool {
        self.policy.is_outside() && naming.inside_only_instances.contains(instance)
    }

    fn finish(self) -> ViewZone {
        let fast = match self.zones.first() {
            Some(forward) => {
                // A reverse zone under the forward apex would make "not in the table" mean
                // something other than NXDOMAIN there.
                let alone = !self.zones[1..]
                    .iter()
                    .any(|z| forward.apex.zone_of(&z.apex));
                let nodes = self.nodes.iter().map(|(name, node)| NodeView {
                    name,
                    sets: node
                        .rrsets
                        .iter()
                        .map(|s| (s.rtype, s.records.as_slice(), s.pick))
                        .collect(),
                });
                FastZone::build(
                    &forward.apex,
                    &forward.negative_soa,
                    nodes,
                    &self.passthrough,
                    (
                        self.policy.chase_cname,
                        self.policy.recursion,
                        alone,
                        self.policy.explain,
                    ),
                )
            }
            None => FastZone::default(),
        };
        ViewZone {
            name: self.policy.name.clone(),
            policy: self.policy.clone(),
            nodes: self.nodes,
            zones: self.zones,
            passthrough: self.passthrough,
            over_cap: self.over_cap,
            fast,
            counters: crate::telemetry::ViewCounters::default(),
            history: super::History::default(),
        }
    }

    /// A zone's apex: SOA and the configured NS records, and its negative-answer SOA.
    fn add_zone(&mut self, origin: &Name) {
        let z = self.zone;
        let soa = Record::from_rdata(
            origin.clone(),
            z.apex_ttl,
            RData::SOA(SOA::new(
                z.primary_ns.clone(),
                z.hostmaster.clone(),
                self.serial,
                clamp(z.refresh),
                clamp(z.retry),
                clamp(z.expire),
                z.minimum,
            )),
        );
        let mut negative_soa = soa.clone();
        negative_soa.ttl = z.apex_ttl.min(z.minimum);
        let ns = z
            .nameservers
            .iter()
            .map(|ns| {
                Record::from_rdata(origin.clone(), z.apex_ttl, RData::NS(NS(ns.name.clone())))
            })
            .collect();
        let apex = LowerName::from(origin);
        self.nodes.insert(
            apex.clone(),
            Node {
                rrsets: vec![
                    RrSet {
                        rtype: RecordType::NS,
                        records: ns,
                        additionals: Vec::new(),
                        pick: Pick::All,
                    },
                    RrSet {
                        rtype: RecordType::SOA,
                        records: vec![soa],
                        additionals: Vec::new(),
                        pick: Pick::All,
                    },
                ],
                backing: Arc::from([]),
            },
        );
        self.zones.push(ZoneCut { apex, negative_soa });
    }

    /// In-zone nameservers' addresses, and the same as glue beside the apex NS set.
    fn add_glue(&mut self) {
        let z = self.zone;
        let apex = LowerName::from(&z.apex);
        let mut glue = Vec::new();
        for ns in &z.nameservers {
            // Nameservers' private addresses are glue for the VPC, not for the world: a public
            // view shows `public_addresses`, and those of `addresses` that are public.
            let shown: Vec<&IpAddr> = if self.policy.is_outside() {
                ns.public_addresses
                    .iter()
                    .chain(ns.addresses.iter().filter(|ip| is_public(**ip)))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            } else {
                ns.addresses.iter().collect()
            };
            let records: Vec<Record> = shown
                .into_iter()
                .map(|ip| address_record(&ns.name, z.apex_ttl, *ip))
                .collect();
            if records.is_empty() {
                continue;
            }
            glue.extend(records.iter().cloned());
            self.insert(
                &apex,
                LowerName::from(&ns.name),
                address_sets(records),
                Arc::from([]),
            );
        }
        if let Some(ns) = self
            .nodes
            .get_mut(&apex)
            .and_then(|n| n.rrsets.iter_mut().find(|s| s.rtype == RecordType::NS))
        {
            ns.additionals = glue;
        }
    }

    fn insert(
        &mut self,
        apex: &LowerName,
        key: LowerName,
        mut rrsets: Vec<RrSet>,
        backing: Arc<[Backing]>,
    ) {
        // Vectors grown by push keep room for four 272-byte records; with hundreds of
        // thousands of one-record sets that slack was most of the snapshot.
        rrsets.shrink_to_fit();
        let cap = self.zone.max_records_per_rrset;
        for set in &mut rrsets {
            set.records.shrink_to_fit();
            set.additionals.shrink_to_fit();
            // One CNAME picked per answer is one record however many members there are.
            if set.records.len() > usize::from(cap) && set.pick != Pick::One {
                self.over_cap += set.records.len() - usize::from(cap);
                self.capped.push(format!(
                    "{key} {}: {} records, more than zone.max_records_per_rrset ({cap}): each \
                     answer carries {cap}, rotated per query, and transfers the first {cap}; \
                     every member keeps its own names (slots, instance ids)",
                    set.rtype,
                    set.records.len()
                ));
                set.pick = Pick::Window(cap);
            }
        }
        add_ancestors(apex, &key, &mut self.nodes);
        self.nodes.insert(key, Node { rrsets, backing });
    }

    /// SRV records under each tier for the instances whose SRV tag names a service. The target
    /// must have addresses of its own (RFC 2782: not a CNAME): the public DNS name where this
    /// view answers single instances by CNAME (AWS's resolver gives the right address), else
    /// the instance's slot or id name, when this view has it as addresses.
    fn add_services(
        &mut self,
        naming: &Naming,
        by_id: &HashMap<&str, &Instance>,
        warnings: &mut Vec<String>,
    ) {
        let z = self.zone;
        let apex = LowerName::from(&z.apex);
        let mut sets: Vec<(Name, Vec<Record>, Vec<Backing>)> = Vec::new();
        for svc in &naming.services {
            let (Ok(owner), Ok(tier)) = (under(&svc.owner, &z.apex), under(&svc.tier, &z.apex))
            else {
                continue;
            };
            if !self.nodes.contains_key(&LowerName::from(&tier)) {
                continue; // the tier is not shown in this view
            }
            let Some(inst) = by_id.get(svc.instance.as_str()) else {
                continue;
            };
            if self.hides(naming, &svc.instance) {
                continue;
            }
            let public_name = inst.public_dns_name.as_deref().and_then(fqdn);
            let target = match (self.policy.single, public_name) {
                (SingleMode::Cname, Some(name)) => Some(name),
                _ => {
                    let slot = naming
                        .slots
                        .get(&svc.tier)
                        .and_then(|m| m.get(&svc.instance))
                        .and_then(|n| under(&format!("{n}.{}", svc.tier), &z.apex).ok());
                    let id = under(&svc.instance, &z.apex).ok();
                    [slot, id]
                        .into_iter()
                        .flatten()
                        .find(|n| self.has_addresses(&LowerName::from(n)))
                }
            };
            let Some(target) = target else {
                warnings.push(format!(
                    "{}: no name with addresses to be the target of {} in view {}; skipped",
                    svc.instance, svc.owner, self.policy.name
                ));
                continue;
            };
            let record = Record::from_rdata(
                owner.clone(),
                z.record_ttl,
                RData::SRV(SRV::new(0, 0, svc.port, target)),
            );
            let backing = Backing {
                instance: svc.instance.clone(),
                via: vec![Via::Service {
                    owner: svc.owner.clone(),
                    port: svc.port,
                }],
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
            let set = RrSet {
                rtype: RecordType::SRV,
                records,
                additionals: Vec::new(),
                pick,
            };
            self.insert(&apex, LowerName::from(&owner), vec![set], backing.into());
        }
    }

    fn has_addresses(&self, name: &LowerName) -> bool {
        self.nodes.get(name).is_some_and(|n| {
            n.rrsets
                .iter()
                .any(|s| matches!(s.rtype, RecordType::A | RecordType::AAAA))
        })
    }

    /// PTR records for every address this view shows inside its reverse networks, pointing at
    /// each instance's primary name, and a reverse zone (SOA, NS) per network.
    fn add_reverse(
        &mut self,
        naming: &Naming,
        primary: &HashMap<&str, (&Name, bool)>,
        by_id: &HashMap<&str, &Instance>,
        warnings: &mut Vec<String>,
    ) {
        let policy = self.policy;
        let mut apexes = Vec::new();
        for net in &policy.reverse {
            match reverse_zone(net) {
                Some(origin) => {
                    self.add_zone(&origin);
                    apexes.push((*net, LowerName::from(&origin)));
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
        let mut ids: Vec<&&str> = primary.keys().collect();
        ids.sort();
        for id in ids {
            let (target, inside_only) = primary[*id];
            if (policy.is_outside() && inside_only) || self.hides(naming, id) {
                continue;
            }
            if !self.nodes.contains_key(&LowerName::from(target)) {
                continue; // the name is not shown in this view
            }
            let Some(inst) = by_id.get(*id) else {
                continue;
            };
            for ip in view_addresses(inst, policy.addresses) {
                let Some((_, apex)) = apexes.iter().find(|(net, _)| net.contains(&ip)) else {
                    continue;
                };
                let apex = apex.clone();
                let owner = Name::from(ip);
                let key = LowerName::from(&owner);
                let record = Record::from_rdata(
                    owner,
                    self.zone.record_ttl,
                    RData::PTR(PTR(target.clone())),
                );
                match self.nodes.get_mut(&key) {
                    // Two instances with one address (a stale record): the first, by id.
                    Some(node) if !node.rrsets.is_empty() => {}
                    _ => {
                        let set = RrSet {
                            rtype: RecordType::PTR,
                            records: vec![record],
                            additionals: Vec::new(),
                            pick: Pick::All,
                        };
                        let backing = Arc::from([Backing {
                            instance: (*id).to_owned(),
                            via: vec![Via::Address {
                                instance: id.to_string(),
                            }],
                        }]);
                        self.insert(&apex, key, vec![set], backing);
                    }
                }
            }
        }
    }
}

/// The reverse zone of a network on an octet (IPv4) or nibble (IPv6) boundary.
fn reverse_zone(net: &IpNet) -> Option<Name> {
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

/// SOA timers are unsigned 32-bit on the wire; hickory models them as i32.
fn clamp(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
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

/// Splits address records into an A set and an AAAA set, in that (type) order; a set of
/// several is rotated per query.
fn address_sets(records: Vec<Record>) -> Vec<RrSet> {
    let (a, aaaa): (Vec<Record>, Vec<Record>) = records
        .into_iter()
        .partition(|r| r.record_type() == RecordType::A);
    [(RecordType::A, a), (RecordType::AAAA, aaaa)]
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(rtype, records)| RrSet {
            rtype,
            pick: if records.len() > 1 {
                Pick::Rotate
            } else {
                Pick::All
            },
            records,
            additionals: Vec::new(),
        })
        .collect()
}

/// The addresses of one instance that a view may show, sorted.
fn view_addresses(inst: &Instance, kind: AddressKind) -> BTreeSet<IpAddr> {
    let mut ips = BTreeSet::new();
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
    ips
}

fn host_rrsets(
    owner: &Name,
    backing: &[Backing],
    ctx: &Context<'_>,
    policy: &ViewPolicy,
) -> Vec<RrSet> {
    let ttl = ctx.zone.record_ttl;
    let backing: Vec<&Instance> = backing
        .iter()
        .filter_map(|b| ctx.by_id.get(b.instance.as_str()).copied())
        .collect();
    let tier = backing.len() > 1;
    let cname = |target: Name| Record::from_rdata(owner.clone(), ttl, RData::CNAME(CNAME(target)));
    let public_name = |inst: &Instance| ctx.public.get(inst.id.as_str()).cloned();
    if let ([only], SingleMode::Cname, false) = (backing.as_slice(), policy.single, tier)
        && let Some(target) = public_name(only)
    {
        return vec![RrSet {
            rtype: RecordType::CNAME,
            records: vec![cname(target)],
            additionals: Vec::new(),
            pick: Pick::All,
        }];
    }
    if tier && policy.tiers == TierMode::Cname {
        // Only members this view may show: an outside view needs a public address behind it.
        let targets: Vec<Record> = backing
            .iter()
            .filter(|i| !policy.is_outside() || i.public_ip.is_some())
            .filter_map(|i| public_name(i))
            .map(cname)
            .collect();
        if !targets.is_empty() {
            return vec![RrSet {
                rtype: RecordType::CNAME,
                pick: if targets.len() > 1 {
                    Pick::One
                } else {
                    Pick::All
                },
                records: targets,
                additionals: Vec::new(),
            }];
        }
    }
    // Sorted and deduplicated: the same set in the same order every build, so a rebuild of an
    // unchanged fleet gives identical answers.
    let ips: BTreeSet<IpAddr> = backing
        .into_iter()
        .flat_map(|inst| view_addresses(inst, policy.addresses))
        .collect();
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
