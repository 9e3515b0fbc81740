//! Building a [`Snapshot`] from the fleet and its names. Pure: the caller passes the serial.

use crate::inventory::Fleet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use rustc_hash::FxHashMap;

use super::fast::FastZone;
use super::layer::{Backings, Layer};
use super::settings::ZoneConfig;
use super::store::{NameId, SetId, Store, StoreBuilder, push_plain_labels, wire_name};
use super::{Node, Pick, Snapshot, ViewZone, ZoneCut};

mod derived;
mod patch;
mod sets;
use crate::inventory::Instance;
use crate::naming::{Backing, HostName, Naming, Via};
use crate::view::{Selector, ViewPolicy};
pub use patch::patch;
pub use sets::is_public;
use sets::{
    NewSet, NewSets, Wire, address_record, address_sets, fqdn, host_rrsets, view_addresses,
};

/// Builds every view's answers for one fleet.
pub fn build(
    zone: &ZoneConfig,
    views_in: &[ViewPolicy],
    fleet: &Fleet,
    mut naming: Naming,
    serial: u32,
) -> Snapshot {
    let instances: &[Arc<Instance>] = fleet;
    let apex = LowerName::from(&zone.apex);
    // Moved, not copied: the naming pass is the build's, and its slots live on in the
    // snapshot.
    let mut warnings = std::mem::take(&mut naming.warnings);

    let passthrough: Arc<[LowerName]> = zone
        .passthrough
        .iter()
        .filter(|p| zone.apex.zone_of(p))
        .map(LowerName::from)
        .collect();
    // Every name once, for every view; owner names are built once and shared by every view.
    let mut store = StoreBuilder::default();
    let apex_wire = wire_name(&zone.apex);
    let passthrough_wire: Vec<Vec<u8>> = passthrough.iter().map(|p| wire_name(p)).collect();
    let mut owners: Vec<(NameId, &HostName)> = Vec::with_capacity(naming.names.len());
    let mut wire = Vec::with_capacity(256);
    for host in &naming.names {
        match owner_wire(&host.name, zone, &apex_wire, &passthrough_wire, &mut wire) {
            Ok(()) => owners.push((store.intern(&wire), host)),
            Err(why) => warnings.push(why),
        }
    }
    let primary = primary_names(&owners);

    // Each instance's public DNS name parsed and encoded once, not once per name and view;
    // by fleet index, as backings refer to instances.
    let public_wire: Vec<Option<Vec<u8>>> = instances.iter().map(|i| public_wire(i)).collect();
    // The instances behind each name, once for every view that shows them all.
    let mut pool = Pool::default();
    let shared: Vec<u32> = owners
        .iter()
        .map(|(_, host)| pool.backings.push(host.backing.iter().cloned()))
        .collect();
    let owner_ids: Vec<NameId> = owners.iter().map(|(id, _)| *id).collect();
    let ctx = Context {
        zone,
        naming: &naming,
        fleet: instances,
        public_wire: &public_wire,
        primary: &primary,
        owners: &owners,
        owner_ids: &owner_ids,
        shared: &shared,
        passthrough,
        serial,
    };
    let mut builders = Vec::with_capacity(views_in.len());
    for policy in views_in {
        let (view, w) = build_view(&ctx, policy, &mut store, &mut pool);
        builders.push(view);
        warnings.extend(w);
    }
    let public_ids: Vec<Option<NameId>> = public_wire
        .iter()
        .map(|w| w.as_ref().map(|w| store.intern(w)))
        .collect();
    let store = Arc::new(store.finish());
    let backings = pool.backings.finish();
    let views: Vec<ViewZone> = builders
        .into_iter()
        .map(|b| b.finish(&store, &backings, fleet))
        .collect();
    let names = owner_ids.iter().copied().zip(shared).collect();
    let own = owners
        .iter()
        .filter_map(|(owner, host)| match &host.backing[..] {
            [only] => Some((
                only.instance,
                rank(only),
                host.single,
                host.inside_only,
                *owner,
            )),
            _ => None,
        })
        .collect();
    let contested = owners
        .iter()
        .filter(|(_, host)| !host.contested.is_empty())
        .map(|(owner, host)| {
            let name = store.hickory_name(*owner);
            (LowerName::from(name), host.contested.clone())
        })
        .collect();
    Snapshot {
        serial,
        hosts: super::hosts::Hosts::new(store, backings, names, fleet.clone(), public_ids, own),
        rule_tags: std::mem::take(&mut naming.rule_tags),
        contested,
        fleet: fleet.clone(),
        slots: std::mem::take(&mut naming.slots),
        selector: Selector::new(views_in),
        built_at: SystemTime::now(),
        apex,
        instance_count: instances.len(),
        rotation: naming.rotation,
        slot_fixes: naming.slot_fixes,
        content_hash: std::sync::OnceLock::new(),
        max_records_per_rrset: zone.max_records_per_rrset,
        views_key: super::hash::views_key(&views),
        views,
        warnings,
    }
}

/// The owner name of a host name in lower-case wire form, into `wire`; why it cannot be one
/// (the name does not fit, or lies in a subtree that is not ours).
fn owner_wire(
    name: &str,
    zone: &ZoneConfig,
    apex_wire: &[u8],
    passthrough_wire: &[Vec<u8>],
    wire: &mut Vec<u8>,
) -> Result<(), String> {
    wire.clear();
    match push_plain_labels(name, wire) {
        Some(()) => {
            wire.extend_from_slice(apex_wire);
            if wire.len() > 255 {
                return Err(format!(
                    "{name}: cannot be a name in {}: longer than 255 bytes",
                    zone.apex
                ));
            }
        }
        // Not a name naming makes; hickory says what is wrong with it.
        None => match under(name, &zone.apex) {
            Ok(full) => *wire = wire_name(&full),
            Err(e) => return Err(format!("{name}: cannot be a name in {}: {e}", zone.apex)),
        },
    }
    if passthrough_wire.iter().any(|p| wire_under(wire, p)) {
        return Err(format!(
            "{name}.{}: lies in a subtree that is not ours (zone.passthrough or AWS's own \
             domains); skipped",
            zone.apex
        ));
    }
    Ok(())
}

/// An instance's public DNS name in lower-case wire form: a CNAME target.
fn public_wire(inst: &Instance) -> Option<Vec<u8>> {
    let text = inst.public_dns_name.as_deref()?.trim_end_matches('.');
    let mut wire = Vec::with_capacity(text.len() + 2);
    match push_plain_labels(text, &mut wire) {
        Some(()) if wire.len() < 255 => {
            wire.push(0);
            Some(wire)
        }
        _ => Some(wire_name(&fqdn(text)?)),
    }
}

/// What every view's build reads.
struct Context<'a> {
    zone: &'a ZoneConfig,
    naming: &'a Naming,
    fleet: &'a [Arc<Instance>],
    /// Each instance's public DNS name in wire form (by fleet index): CNAME targets.
    public_wire: &'a [Option<Vec<u8>>],
    primary: &'a FxHashMap<u32, (NameId, bool)>,
    owners: &'a [(NameId, &'a HostName)],
    owner_ids: &'a [NameId],
    /// Each owner's span in the pool.
    shared: &'a [u32],
    passthrough: Arc<[LowerName]>,
    serial: u32,
}

/// The instances behind a build's names, and the span of each instance's PTR names: made
/// once, for every view.
#[derive(Default)]
struct Pool {
    backings: Backings,
    address: FxHashMap<u32, u32>,
}

impl Pool {
    /// The span of a PTR name: the instance whose address it is.
    fn address(&mut self, instance: u32) -> u32 {
        *self.address.entry(instance).or_insert_with(|| {
            let via = crate::naming::Vias::one(Via::Address);
            self.backings.push([Backing { instance, via }])
        })
    }
}

/// One view's nodes, and the warnings building it gave.
fn build_view<'a>(
    ctx: &Context<'a>,
    policy: &'a ViewPolicy,
    store: &mut StoreBuilder,
    pool: &mut Pool,
) -> (ViewBuilder<'a>, Vec<String>) {
    let zone = ctx.zone;
    let mut warnings = Vec::new();
    let mut view = ViewBuilder {
        zone,
        policy,
        serial: ctx.serial,
        nodes: Vec::with_capacity(ctx.owners.len() + 16),
        set_refs: Vec::with_capacity(ctx.owners.len() + 16),
        by_name: NodeIndex(Vec::with_capacity(ctx.owners.len() + 16)),
        zones: Vec::new(),
        passthrough: ctx.passthrough.clone(),
        capped: Vec::new(),
        over_cap: 0,
    };
    view.add_zone(store, &zone.apex);
    view.add_glue(store);
    let apex = wire_name(&zone.apex);
    for (((_, host), shared), &id) in ctx.owners.iter().zip(ctx.shared).zip(ctx.owner_ids) {
        if policy.is_outside() && host.inside_only {
            // Inside-only: the name does not exist outside (NXDOMAIN, not a leak).
            continue;
        }
        // Instances tagged inside-only are not behind any name outside.
        let hidden = host
            .backing
            .iter()
            .any(|b| view.hides(ctx.naming, b.instance));
        let shown: Vec<Backing>;
        let backing: &[Backing] = if hidden {
            shown = (host.backing.iter())
                .filter(|b| !view.hides(ctx.naming, b.instance))
                .cloned()
                .collect();
            &shown
        } else {
            &host.backing
        };
        let public = |i: usize| ctx.public_wire[i].as_ref();
        let rrsets = host_rrsets(backing, ctx.fleet, zone.record_ttl, &public, policy);
        if rrsets.is_empty() {
            // Nothing this view may show (e.g. no public address for an outside view): the
            // name does not exist here rather than leaking another view's answer.
            continue;
        }
        let span = if hidden {
            pool.backings.push(backing.iter().cloned())
        } else {
            *shared
        };
        view.insert(store, &apex, id, rrsets, span);
    }
    view.add_services(store, pool, ctx.naming, ctx.fleet, &mut warnings);
    view.add_reverse(
        store,
        pool,
        ctx.naming,
        ctx.primary,
        ctx.fleet,
        &mut warnings,
    );
    let name = &policy.name;
    warnings.extend(view.capped.drain(..).map(|c| format!("view {name}: {c}")));
    (view, warnings)
}

/// Whether the wire name `name` is `zone` or below it: a suffix on a label boundary.
fn wire_under(name: &[u8], zone: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        if name[at..] == *zone {
            return true;
        }
        at += 1 + usize::from(name[at]);
    }
    false
}

/// A relative name under `apex`.
fn under(relative: &str, apex: &Name) -> Result<Name, hickory_proto::ProtoError> {
    Name::from_ascii(relative).and_then(|n| n.append_domain(apex))
}

/// How an instance's own name ranks among its others (smaller first): 0 a rule made it, 1 its
/// slot, 2 its id.
fn rank(only: &Backing) -> u8 {
    if only.via.iter().all(|v| *v == Via::InstanceId) {
        2
    } else if only.via.iter().all(|v| matches!(v, Via::Slot { .. })) {
        1
    } else {
        0
    }
}

/// Each instance's name for PTR answers: the shortest name a rule made for it alone (`db1`),
/// else its slot name, else its instance id; ties go to the alphabetically first.
fn primary_names(owners: &[(NameId, &HostName)]) -> FxHashMap<u32, (NameId, bool)> {
    /// (rule-made 0 / slot 1 / id 2, length, name): smaller is better.
    type Rank<'a> = (u8, usize, &'a str);
    let mut best: FxHashMap<u32, (Rank<'_>, NameId, bool)> = FxHashMap::default();
    for (owner, host) in owners {
        let [only] = &host.backing[..] else {
            continue;
        };
        let key = (rank(only), host.name.len(), host.name.as_str());
        let entry = best
            .entry(only.instance)
            .or_insert((key, *owner, host.inside_only));
        if key < entry.0 {
            *entry = (key, *owner, host.inside_only);
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
    nodes: Vec<Node>,
    set_refs: Vec<SetId>,
    /// Name → index into `nodes`, by name id (ids are dense): no hashing per node.
    by_name: NodeIndex,
    zones: Vec<ZoneCut>,
    passthrough: Arc<[LowerName]>,
    /// Sets larger than `max_records_per_rrset`, for the warnings.
    capped: Vec<String>,
    /// Records past the cap, which transfers leave out (answers rotate them in).
    over_cap: usize,
}

impl ViewBuilder<'_> {
    /// Whether this view leaves an instance out (tagged inside-only, and the view is outside).
    fn hides(&self, naming: &Naming, instance: u32) -> bool {
        self.policy.is_outside() && naming.inside_only_instances.contains(&instance)
    }

    fn finish(self, store: &Arc<Store>, backings: &Arc<Backings>, fleet: &Fleet) -> ViewZone {
        let fast = match self.zones.first() {
            Some(forward) => {
                // A reverse zone under the forward apex would make "not in the table" mean
                // something other than NXDOMAIN there.
                let alone = !self.zones[1..]
                    .iter()
                    .any(|z| forward.apex.zone_of(&z.apex));
                let others: Vec<&LowerName> = self.zones[1..].iter().map(|z| &z.apex).collect();
                FastZone::build(
                    &forward.apex,
                    &forward.negative_soa,
                    (&self.passthrough, &others),
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
        let apexes: Vec<&[u8]> = self.zones.iter().map(|z| store.name(z.apex_id)).collect();
        let mut base = Layer::new(store.clone(), backings.clone(), self.nodes, self.set_refs);
        base.children = super::layer::child_counts(&base, &apexes);
        ViewZone {
            name: self.policy.name.clone(),
            policy: self.policy.clone(),
            fleet: fleet.clone(),
            base: Arc::new(base),
            top: None,
            zones: self.zones,
            passthrough: self.passthrough,
            over_cap: self.over_cap,
            fast,
            history: std::sync::OnceLock::new(),
        }
    }

    /// A zone's apex: SOA and the configured NS records, and its negative-answer SOA.
    fn add_zone(&mut self, store: &mut StoreBuilder, origin: &Name) {
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
        let ns: Vec<Record> = z
            .nameservers
            .iter()
            .map(|ns| {
                Record::from_rdata(origin.clone(), z.apex_ttl, RData::NS(NS(ns.name.clone())))
            })
            .collect();
        let apex_id = store.intern(&wire_name(origin));
        let sets = if ns.is_empty() {
            NewSets::new()
        } else {
            smallvec::smallvec![NewSet::of(RecordType::NS, Pick::All, &ns)]
        };
        // The apex has no parent in the zone: no ancestors to add.
        self.put(store, apex_id, sets, Backings::NONE);
        self.zones.push(ZoneCut {
            apex: LowerName::from(origin),
            apex_id,
            soa,
            negative_soa,
            glue: Vec::new(),
        });
    }

    /// In-zone nameservers' addresses, and the same as glue beside the apex NS set.
    fn add_glue(&mut self, store: &mut StoreBuilder) {
        let z = self.zone;
        let apex = wire_name(&z.apex);
        let mut glue = Vec::new();
        for ns in &z.nameservers {
            // Nameservers' private addresses are glue for the VPC, not for the world: a public
            // view shows `public_addresses`, and those of `addresses` that are public.
            let shown: BTreeSet<IpAddr> = if self.policy.is_outside() {
                ns.public_addresses
                    .iter()
                    .chain(ns.addresses.iter().filter(|ip| is_public(**ip)))
                    .copied()
                    .collect()
            } else {
                ns.addresses.iter().copied().collect()
            };
            if shown.is_empty() {
                continue;
            }
            glue.extend(
                shown
                    .iter()
                    .map(|ip| address_record(&ns.name, z.apex_ttl, *ip)),
            );
            let id = store.intern(&wire_name(&ns.name));
            let shown: Vec<IpAddr> = shown.into_iter().collect();
            let sets = address_sets(&shown, z.apex_ttl);
            self.insert(store, &apex, id, sets, Backings::NONE);
        }
        if let Some(forward) = self.zones.first_mut() {
            forward.glue = glue;
        }
    }

    /// Adds a name with data, and its ancestors as empty non-terminals.
    fn insert(
        &mut self,
        store: &mut StoreBuilder,
        apex: &[u8],
        name: NameId,
        sets: NewSets,
        backing: u32,
    ) {
        self.add_ancestors(store, apex, name);
        self.put(store, name, sets, backing);
    }

    /// Sets a node's data (replacing an empty non-terminal's), sets stored once per store.
    fn put(&mut self, store: &mut StoreBuilder, name: NameId, mut sets: NewSets, backing: u32) {
        let cap = self.zone.max_records_per_rrset;
        let (over, capped) = (&mut self.over_cap, &mut self.capped);
        let first = push_sets(
            store,
            &mut self.set_refs,
            &mut sets,
            cap,
            name,
            over,
            capped,
        );
        let node = Node {
            name,
            first,
            sets: sets.len() as u16,
            forward: self.in_forward(store, name),
            backing,
            gone: false,
        };
        match self.by_name.get(name) {
            Some(i) => self.nodes[i as usize] = node,
            None => {
                self.by_name.insert(name, self.nodes.len() as u32);
                self.nodes.push(node);
            }
        }
    }

    /// Every name between the apex and `name` exists (RFC 8020): `web.internal` answers
    /// NODATA, not NXDOMAIN, when only `1.web.internal` has data.
    fn add_ancestors(&mut self, store: &mut StoreBuilder, apex: &[u8], name: NameId) {
        let wire = store.store().name(name);
        if wire.len() <= apex.len() + 1 + usize::from(wire[0]) {
            return; // a child of the apex, as most names are
        }
        let wire = wire.to_vec();
        let mut at = 0;
        loop {
            at += 1 + usize::from(wire[at]);
            let parent = &wire[at..];
            if parent.len() <= apex.len() {
                break;
            }
            let id = store.intern(parent);
            if self.by_name.get(id).is_some() {
                break; // its ancestors are there already
            }
            self.by_name.insert(id, self.nodes.len() as u32);
            let forward = self.in_forward(store, id);
            self.nodes.push(Node {
                name: id,
                first: 0,
                sets: 0,
                forward,
                backing: Backings::NONE,
                gone: false,
            });
        }
    }

    /// Whether a name lies in the forward zone (the first zone added).
    fn in_forward(&self, store: &StoreBuilder, name: NameId) -> bool {
        let name = store.store().name(name);
        match self.zones.first() {
            Some(forward) => {
                let apex = store.store().name(forward.apex_id);
                name.ends_with(apex)
                    && (name.len() == apex.len() || is_label_start(name, name.len() - apex.len()))
            }
            // The forward apex itself, before its zone cut is pushed.
            None => true,
        }
    }

    /// The node at a wire name, if this view has it.
    fn node(&self, store: &StoreBuilder, wire: &[u8]) -> Option<&Node> {
        let id = store.find(wire)?;
        self.by_name.get(id).map(|i| &self.nodes[i as usize])
    }
}

/// Stores a name's sets (sorted by type) and appends their ids to `set_refs`; where they
/// start there. A set over `cap` records is handed out `cap` at a time and counted in
/// `over_cap`, and `capped` says so.
fn push_sets(
    store: &mut StoreBuilder,
    set_refs: &mut Vec<SetId>,
    sets: &mut NewSets,
    cap: u16,
    name: NameId,
    over_cap: &mut usize,
    capped: &mut Vec<String>,
) -> u32 {
    sets.sort_by_key(|s| u16::from(s.rtype));
    let first = set_refs.len() as u32;
    for set in sets.iter_mut() {
        // One CNAME picked per answer is one record however many members there are.
        if set.count > usize::from(cap) && set.pick != Pick::One {
            *over_cap += set.count - usize::from(cap);
            capped.push(format!(
                "{} {}: {} records, more than zone.max_records_per_rrset ({cap}): each \
                 answer carries {cap}, rotated per query, and transfers the first {cap}; \
                 every member keeps its own names (slots, instance ids)",
                store.store().hickory_name(name),
                set.rtype,
                set.count
            ));
            set.pick = Pick::Window(cap);
        }
        let count = u32::try_from(set.count).unwrap_or(u32::MAX);
        set_refs.push(store.set(set.rtype, set.pick, count, &set.wire));
    }
    first
}

/// A view's node index by name id while it is built.
struct NodeIndex(Vec<u32>);

impl NodeIndex {
    const NONE: u32 = u32::MAX;

    fn get(&self, name: NameId) -> Option<u32> {
        self.0
            .get(name as usize)
            .copied()
            .filter(|&i| i != Self::NONE)
    }

    fn insert(&mut self, name: NameId, node: u32) {
        let at = name as usize;
        if self.0.len() <= at {
            self.0.resize(at + 1, Self::NONE);
        }
        self.0[at] = node;
    }
}

/// Whether a label starts at `at` in a wire name.
fn is_label_start(wire: &[u8], at: usize) -> bool {
    let mut i = 0;
    while i < at {
        i += 1 + usize::from(wire[i]);
    }
    i == at
}

/// SOA timers are unsigned 32-bit on the wire; hickory models them as i32.
fn clamp(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
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
    fn wire_under_goes_by_labels() {
        let w = |s: &str| wire_name(&Name::from_ascii(s).expect("name"));
        let zone = w("compute.internal.");
        assert!(wire_under(&w("compute.internal."), &zone));
        assert!(wire_under(&w("ip-10-0-0-1.compute.internal."), &zone));
        assert!(!wire_under(&w("xcompute.internal."), &zone));
        assert!(!wire_under(&w("internal."), &zone));
        assert!(wire_under(&w("a.b."), &[0]));
    }
}
