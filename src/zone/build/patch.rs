//! The next snapshot from the served one and a naming delta, without a full build: the
//! names the change touched are built again, each view gets them as a top layer over the base
//! it shares with the served snapshot, and the view-independent tables the same way. What the
//! change did not touch is neither read nor copied: the cost follows the change, not the fleet.
//!
//! PTR records follow the instances whose names or place changed (every instance holding one
//! of their addresses is found through an [`AddressIndex`](crate::zone::AddressIndex)); SRV
//! records the touched tiers; empty non-terminals the touched names (see `patch_view`).
//!
//! A few changes get a full build instead, which is always right (`None` here): SRV records
//! under a tier with no records of its own in a view, and a name for PTR records whose
//! existence in a view hangs on empty non-terminals alone.
//!
//! A top layer grows with every patch over the same base (a change copies the last top, not
//! the base); past [`MAX_TOP`] nodes or a sixteenth of the base the next change is a full
//! build, which starts a new base.

use std::collections::BTreeSet;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use rustc_hash::{FxHashMap, FxHashSet};

use super::sets::is_address;
use super::{owner_wire, public_wire, push_sets, rank};
use crate::inventory::{Fleet, Instance};
use crate::naming::delta::Delta;
use crate::naming::{Backing, HostName, Rules};
use crate::view::ViewPolicy;
use crate::zone::hosts::{Own, Top as HostsTop};
use crate::zone::layer::{Backings, Layer, NodeRef, parent};
use crate::zone::settings::ZoneConfig;
use crate::zone::store::{StoreBuilder, wire_name};
use crate::zone::{Node, Pick, Snapshot, ViewZone};

/// The most nodes a top layer holds, however large its base.
const MAX_TOP: usize = 4096;

/// A name the change touched, in the zone: its owner name and what naming makes of it now.
struct Touched<'a> {
    wire: Vec<u8>,
    host: Option<&'a HostName>,
}

/// The snapshot `prev` becomes with `delta` (from [`crate::naming::delta::rename`] of prev's
/// fleet into `fleet`, which differs from it at the positions `changed`), under prev's serial,
/// and whether any answer changed; `None` when a full build has to make it (see the module
/// comment). `zone` and `views` must be the ones `prev` was built with.
#[allow(clippy::too_many_arguments)] // the change, and what it is named and answered by
pub fn patch(
    prev: &Snapshot,
    zone: &ZoneConfig,
    views: &[ViewPolicy],
    rules: &Rules,
    fleet: &Fleet,
    delta: &Delta,
    changed: &BTreeSet<u32>,
    addresses: &crate::zone::AddressIndex,
) -> Option<(Snapshot, bool)> {
    if views.len() != prev.views.len() {
        return None;
    }
    let mut warnings = delta.part.warnings.clone();
    let apex_wire = wire_name(&zone.apex);
    let passthrough: Vec<Vec<u8>> = (zone.passthrough.iter())
        .filter(|p| zone.apex.zone_of(p))
        .map(wire_name)
        .collect();
    // The names that were or are something: the rest of `touched` names nothing either way.
    let mut named: Vec<&str> = (delta.was.names.iter())
        .chain(&delta.part.names)
        .map(|h| h.name.as_str())
        .collect();
    named.sort_unstable();
    named.dedup();
    let mut touched: Vec<Touched<'_>> = Vec::with_capacity(named.len());
    let mut wire = Vec::with_capacity(256);
    for name in named {
        let host = (delta.part.names)
            .binary_search_by(|h| h.name.as_str().cmp(name))
            .ok()
            .map(|i| &delta.part.names[i]);
        match owner_wire(name, zone, &apex_wire, &passthrough, &mut wire) {
            Ok(()) => {
                touched.push(Touched {
                    wire: wire.clone(),
                    host,
                });
            }
            Err(why) => {
                if host.is_some() {
                    warnings.push(why);
                }
            }
        }
    }
    // The SRV owners under the touched tiers, before and after.
    let srv_owners: Vec<(Vec<u8>, &str)> = (delta.was.services.iter())
        .chain(&delta.part.services)
        .map(|s| s.owner.as_str())
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .filter_map(|owner| Some((wire_name(&super::under(owner, &zone.apex).ok()?), owner)))
        .collect();
    let mut affected: BTreeSet<u32> = changed.clone();
    affected.extend(alone(&delta.was).chain(alone(&delta.part)));
    let hosts = prev.hosts.topped(
        hosts_top(prev, fleet, changed, &affected, &touched),
        fleet.clone(),
    );
    let mut any_change = false;
    let mut out_views = Vec::with_capacity(views.len());
    for (policy, before) in views.iter().zip(&prev.views) {
        if policy.name != before.name {
            return None;
        }
        let inputs = Inputs {
            zone,
            rules,
            fleet,
            apex: &apex_wire,
            part: &delta.part,
            srv_owners: &srv_owners,
            hosts: &hosts,
            addresses,
            affected: &affected,
        };
        let (view, changed_here) = patch_view(before, policy, &inputs, &touched, &mut warnings)?;
        any_change |= changed_here;
        out_views.push(view);
    }
    let mut contested = prev.contested.clone();
    for t in &touched {
        let name = LowerName::from(decoded(&t.wire));
        contested.remove(&name);
        if let Some(host) = t.host.filter(|h| !h.contested.is_empty()) {
            contested.insert(name, host.contested.clone());
        }
    }
    let slots = delta.slots(&prev.slots);
    let (rotation, slot_fixes) = delta.counts(prev.rotation, prev.slot_fixes);
    any_change |= slots != prev.slots || rotation != prev.rotation;
    let snapshot = Snapshot {
        serial: prev.serial,
        built_at: std::time::SystemTime::now(),
        apex: prev.apex.clone(),
        instance_count: fleet.len(),
        hosts,
        contested,
        fleet: fleet.clone(),
        slots,
        rule_tags: prev.rule_tags.clone(),
        selector: prev.selector.clone(),
        views: out_views,
        warnings,
        rotation,
        slot_fixes,
        max_records_per_rrset: prev.max_records_per_rrset,
        views_key: prev.views_key,
        content_hash: std::sync::OnceLock::new(),
    };
    Some((snapshot, any_change))
}

/// What every view's patch reads.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    zone: &'a ZoneConfig,
    rules: &'a Rules,
    fleet: &'a Fleet,
    /// The forward zone's apex in wire form.
    apex: &'a [u8],
    /// The touched names as named now: their SRV records and slot numbers.
    part: &'a crate::naming::Naming,
    /// The SRV owners under the touched tiers (wire form, and as naming spells them).
    srv_owners: &'a [(Vec<u8>, &'a str)],
    /// The view-independent tables after the change: each instance's name for PTR records.
    hosts: &'a crate::zone::hosts::Hosts,
    /// Which positions of the changed fleet hold an address.
    addresses: &'a crate::zone::AddressIndex,
    /// The positions whose instance changed, or whose names did.
    affected: &'a BTreeSet<u32>,
}

/// What a name is after the change, in one view.
enum Now {
    /// Records (its sets, stored at `first` in the top's set list) and its instances.
    Data(Node),
    /// No records, names below it: an empty non-terminal.
    Empty,
    /// Nothing.
    Gone,
}

/// One view with the touched names built again over its base, and whether any answer in it
/// changed; `None` when its top would outgrow what a top is for.
///
/// A name exists when it has records or names below it (RFC 8020); each layer counts the
/// names directly below a name, so the touched names and their ancestors, deepest first,
/// settle which empty non-terminals appear and go.
fn patch_view(
    before: &ViewZone,
    policy: &ViewPolicy,
    at: &Inputs<'_>,
    touched: &[Touched<'_>],
    warnings: &mut Vec<String>,
) -> Option<(ViewZone, bool)> {
    let Inputs {
        zone,
        rules,
        fleet,
        apex,
        ..
    } = *at;
    let mut top = TopBuilder {
        store: StoreBuilder::default(),
        set_refs: Vec::new(),
        backings: Backings::default(),
        cap: zone.max_records_per_rrset,
        over_cap: before.over_cap,
        capped: Vec::new(),
    };
    let mut nodes = Vec::new();
    let mut changed = false;
    let base = &*before.base;
    // Declared before `now`, which borrows their names.
    let ptrs: Vec<(Vec<u8>, usize)>;
    // The touched names' records now, and the ancestors whose existence may follow them;
    // each name with its zone's apex length and whether that is the forward zone.
    let mut now: FxHashMap<&[u8], Now> = FxHashMap::default();
    let mut candidates: Vec<(&[u8], usize, bool)> = Vec::with_capacity(touched.len());
    for t in touched {
        let sets = t
            .host
            .and_then(|h| host_sets(h, policy, zone, rules, fleet));
        now.insert(&t.wire, top.data(before, &t.wire, sets, true));
        candidates.push((&t.wire, apex.len(), true));
    }
    // SRV records after the names: their targets are names with addresses, as now.
    let srv = srv_sets(before, policy, at, &now, &top, warnings)?;
    for (wire, sets) in srv {
        now.insert(wire, top.data(before, wire, sets, true));
        candidates.push((wire, apex.len(), true));
    }
    // PTR records last: they point at names as they are now.
    let made: Vec<Option<Sets>>;
    (ptrs, made) = ptr_sets(before, policy, at, &now)?
        .into_iter()
        .map(|(wire, apex_len, sets)| ((wire, apex_len), sets))
        .unzip();
    for ((wire, apex_len), sets) in ptrs.iter().zip(made) {
        now.insert(wire, top.data(before, wire, sets, false));
        candidates.push((wire, *apex_len, false));
    }
    for i in 0..candidates.len() {
        let (mut name, apex_len, forward) = candidates[i];
        while let Some(up) = parent(name).filter(|up| up.len() > apex_len) {
            candidates.push((up, apex_len, forward));
            name = up;
        }
    }
    candidates.sort_unstable_by(|a, b| labels(b.0).cmp(&labels(a.0)).then(a.0.cmp(b.0)));
    candidates.dedup_by(|a, b| a.0 == b.0);
    let mut below: FxHashMap<Vec<u8>, i32> = before
        .top
        .as_ref()
        .map_or_else(Default::default, |t| t.children.clone());
    let under = |below: &FxHashMap<Vec<u8>, i32>, w: &[u8]| {
        base.children.get(w).copied().unwrap_or(0) + below.get(w).copied().unwrap_or(0)
    };
    let mut settled: Vec<(&[u8], bool, Now)> = Vec::new();
    for (c, apex_len, forward) in candidates {
        let was = before.node(c);
        let state = match now.remove(c) {
            Some(Now::Data(node)) => Now::Data(node),
            // An ancestor not touched: its records stay.
            None if was.is_some_and(|w| w.sets > 0) => continue,
            _ if under(&below, c) > 0 => Now::Empty,
            _ => Now::Gone,
        };
        let exists = !matches!(state, Now::Gone);
        if was.is_some() != exists {
            // A name that is some instance's name for PTR records, with no records here but
            // names below it: its PTR records follow it, which the PTR pass did not see.
            if !policy.reverse.is_empty()
                && !matches!(state, Now::Data(_))
                && was.is_none_or(|w| w.sets == 0)
                && at.hosts.get(c).is_some()
            {
                return None;
            }
            if let Some(up) = parent(c).filter(|up| up.len() > apex_len) {
                *below.entry(up.to_vec()).or_default() += if exists { 1 } else { -1 };
            }
        }
        settled.push((c, forward, state));
    }
    let TopBuilder {
        mut store,
        mut set_refs,
        mut backings,
        over_cap,
        capped,
        ..
    } = top;
    for (wire, forward, state) in &settled {
        let was = before.node(wire);
        let on_base = base.find(wire).map(|n| base.at(n));
        match state {
            Now::Data(node) => {
                let sets_now: Vec<_> =
                    set_refs[node.first as usize..][..usize::from(node.sets)].to_vec();
                // Answers compare instances by id (the one at a position may have moved
                // there); a base node stands for this one only with the same positions.
                let backing = backings.get(node.backing);
                let same_instances = |o: &NodeRef<'_>| {
                    o.backing().len() == backing.len()
                        && o.backing().iter().zip(backing).all(|(x, y)| {
                            x.via == y.via
                                && before.fleet.get(x.instance as usize).map(|i| &i.id)
                                    == fleet.get(y.instance as usize).map(|i| &i.id)
                        })
                };
                let same_as = |other: Option<NodeRef<'_>>, by_id: bool| {
                    other.is_some_and(|o| {
                        o.sets == node.sets
                            && (if by_id {
                                same_instances(&o)
                            } else {
                                o.backing() == backing
                            })
                            && o.sets().zip(&sets_now).all(|(x, &y)| {
                                let y = store.store().set(y);
                                x.code() == y.code()
                                    && x.pick() == y.pick()
                                    && x.wire() == store.store().wire(y)
                            })
                    })
                };
                changed |= !same_as(was, true);
                if !same_as(on_base, false) {
                    nodes.push(*node);
                }
            }
            Now::Empty | Now::Gone => {
                // An empty non-terminal, or a tombstone over the base's node.
                let gone = matches!(state, Now::Gone);
                // Whether the name was that already, and whether the base says so.
                let (as_was, as_base) = if gone {
                    (was.is_none(), on_base.is_none())
                } else {
                    let empty = |n: NodeRef<'_>| n.sets == 0;
                    (was.is_some_and(empty), on_base.is_some_and(empty))
                };
                changed |= !as_was;
                if !as_base {
                    nodes.push(Node {
                        name: store.intern(wire),
                        first: set_refs.len() as u32,
                        sets: 0,
                        forward: *forward,
                        backing: Backings::NONE,
                        gone,
                    });
                }
            }
        }
    }
    // The last top's other names carry over, copied: a top is small.
    if let Some(top) = &before.top {
        let redone: FxHashSet<&[u8]> = settled.iter().map(|(w, ..)| *w).collect();
        for node in &top.nodes {
            let n = top.at(node);
            if redone.contains(n.wire_name()) {
                continue;
            }
            let first = set_refs.len() as u32;
            for set in n.sets() {
                set_refs.push(store.set(set.rtype(), set.pick(), set.count(), set.wire()));
            }
            nodes.push(Node {
                name: store.intern(n.wire_name()),
                first,
                sets: node.sets,
                forward: node.forward,
                backing: backings.push(n.backing().iter().cloned()),
                gone: node.gone,
            });
        }
    }
    if nodes.len() > MAX_TOP.min(before.base.nodes.len() / 16).max(64) {
        return None;
    }
    let name = &policy.name;
    warnings.extend(capped.into_iter().map(|c| format!("view {name}: {c}")));
    below.retain(|_, n| *n != 0);
    let top = (!nodes.is_empty() || !below.is_empty()).then(|| {
        let mut top = Layer::new(Arc::new(store.finish()), backings.finish(), nodes, set_refs);
        top.children = below;
        Arc::new(top)
    });
    let view = ViewZone {
        name: before.name.clone(),
        policy: before.policy.clone(),
        fleet: fleet.clone(),
        base: before.base.clone(),
        top,
        zones: before.zones.clone(),
        passthrough: before.passthrough.clone(),
        over_cap,
        fast: before.fast.clone(),
        history: std::sync::OnceLock::new(),
    };
    Some((view, changed))
}

/// A name's sets in one view and the instances behind it.
type Sets = (super::NewSets, Arc<[Backing]>);

/// A PTR owner (wire form), its reverse zone's apex length, and its set if it has one.
type PtrOwner = (Vec<u8>, usize, Option<Sets>);

/// The PTR sets of the addresses whose owner may have changed in one view (those of the
/// instances whose place or names changed, before and after), from the names' new state:
/// of the instances holding the address, the first by id whose name for PTR records the view
/// shows. Each owner (wire form) with its reverse zone's apex length. `None` (a full build)
/// when whether such a name exists hangs on empty non-terminals this patch settles later.
fn ptr_sets(
    before: &ViewZone,
    policy: &ViewPolicy,
    at: &Inputs<'_>,
    now: &FxHashMap<&[u8], Now>,
) -> Option<Vec<PtrOwner>> {
    use hickory_proto::rr::RecordType;
    if policy.reverse.is_empty() {
        return Some(Vec::new());
    }
    let nets: Vec<(ipnet::IpNet, usize)> = (policy.reverse.iter())
        .filter_map(|n| Some((*n, wire_name(&super::derived::reverse_zone(n)?).len())))
        .collect();
    let mut ancestors: FxHashSet<&[u8]> = FxHashSet::default();
    for mut name in now.keys().copied() {
        while let Some(up) = parent(name) {
            ancestors.insert(up);
            name = up;
        }
    }
    let exists = |w: &[u8]| match now.get(w) {
        Some(Now::Data(_)) => Some(true),
        Some(_) => None,
        None => match before.node(w) {
            Some(n) if n.sets > 0 => Some(true),
            Some(_) => None,
            None if ancestors.contains(w) => None,
            None => Some(false),
        },
    };
    let kind = policy.addresses;
    let mut ips = BTreeSet::new();
    for &p in at.affected {
        for inst in [before.fleet.get(p as usize), at.fleet.get(p as usize)]
            .into_iter()
            .flatten()
        {
            let shown = super::view_addresses(inst, kind);
            ips.extend(
                shown
                    .into_iter()
                    .filter(|ip| nets.iter().any(|(n, _)| n.contains(ip))),
            );
        }
    }
    let mut out = Vec::with_capacity(ips.len());
    for ip in ips {
        let apex_len = nets.iter().find(|(n, _)| n.contains(&ip))?.1;
        let mut holders: Vec<u32> = (at.addresses.positions(&ip))
            .filter(|&p| {
                (at.fleet.get(p as usize))
                    .is_some_and(|i| super::view_addresses(i, kind).contains(&ip))
            })
            .collect();
        holders.sort_by(|a, b| at.fleet[*a as usize].id.cmp(&at.fleet[*b as usize].id));
        holders.dedup();
        let mut sets = None;
        for p in holders {
            let Some(primary) = at.hosts.primary(p as usize) else {
                continue;
            };
            let hidden = primary.inside_only || inside_only(&at.fleet[p as usize], at.rules);
            if policy.is_outside() && hidden {
                continue;
            }
            let target = wire_name(&Name::from_ascii(&primary.name).ok()?);
            if !exists(&target)? {
                continue;
            }
            let mut wire = super::Wire::new();
            crate::zone::store::push_rr(&mut wire, RecordType::PTR, at.zone.record_ttl, &target);
            let set = super::NewSet {
                rtype: RecordType::PTR,
                pick: Pick::All,
                count: 1,
                wire,
            };
            let backing = Arc::from([Backing {
                instance: p,
                via: crate::naming::Vias::one(crate::naming::Via::Address),
            }]);
            sets = Some((smallvec::smallvec![set], backing));
            break;
        }
        out.push((wire_name(&Name::from(ip)), apex_len, sets));
    }
    Some(out)
}

/// An SRV owner (wire form), and its set if it has one.
type OwnerSets<'w> = (&'w [u8], Option<Sets>);

/// The top layer of one view while a patch makes it: the names' sets, stored.
struct TopBuilder {
    store: StoreBuilder,
    set_refs: Vec<crate::zone::store::SetId>,
    backings: Backings,
    cap: u16,
    over_cap: usize,
    capped: Vec<String>,
}

impl TopBuilder {
    /// The name at `wire` with `sets` (or none), stored: what it is now. Its records past the
    /// cap before are taken out of the count, its records past the cap now put in.
    fn data(&mut self, before: &ViewZone, wire: &[u8], sets: Option<Sets>, forward: bool) -> Now {
        if let Some(was) = before.node(wire) {
            self.over_cap = self.over_cap.saturating_sub(over(was, self.cap));
        }
        let Some((mut sets, backing)) = sets else {
            return Now::Gone;
        };
        let name = self.store.intern(wire);
        let first = push_sets(
            &mut self.store,
            &mut self.set_refs,
            &mut sets,
            self.cap,
            name,
            &mut self.over_cap,
            &mut self.capped,
        );
        Now::Data(Node {
            name,
            first,
            sets: sets.len() as u16,
            forward,
            backing: self.backings.push(backing.iter().cloned()),
            gone: false,
        })
    }

    /// Whether a name stored here has addresses.
    fn has_addresses(&self, node: &Node) -> bool {
        self.set_refs[node.first as usize..][..usize::from(node.sets)]
            .iter()
            .any(|&id| is_address(self.store.store().set(id).rtype()))
    }
}

/// The SRV sets of the owners under the touched tiers in one view, from the names' new
/// state (`now`, then the view before): each owner's set and backing, or no set when none
/// of its records has a target here. `None` (a full build) when a tier with SRV records has
/// no records of its own in the view: whether it exists through other names alone is not
/// worked out here.
fn srv_sets<'w>(
    before: &ViewZone,
    policy: &ViewPolicy,
    at: &Inputs<'w>,
    now: &FxHashMap<&[u8], Now>,
    top: &TopBuilder,
    warnings: &mut Vec<String>,
) -> Option<Vec<OwnerSets<'w>>> {
    use hickory_proto::rr::rdata::SRV;
    use hickory_proto::rr::{RData, Record, RecordType};
    let has_addresses = |w: &[u8]| match now.get(w) {
        Some(Now::Data(node)) => top.has_addresses(node),
        Some(_) => false,
        None => before
            .node(w)
            .is_some_and(|n| n.sets().any(|s| is_address(s.rtype()))),
    };
    let mut out = Vec::with_capacity(at.srv_owners.len());
    for (wire, owner) in at.srv_owners {
        let mut records = Vec::new();
        let mut backing = Vec::new();
        for svc in at.part.services.iter().filter(|s| s.owner == *owner) {
            let tier = wire_name(&super::under(&svc.tier, &at.zone.apex).ok()?);
            if !matches!(now.get(&tier[..]), Some(Now::Data(_))) {
                return None;
            }
            let Some(inst) = at.fleet.get(svc.instance as usize) else {
                continue;
            };
            if policy.is_outside() && inside_only(inst, at.rules) {
                continue;
            }
            let slot = at.part.slots.get(&svc.tier).and_then(|m| m.get(&inst.id));
            let target =
                super::derived::srv_target(policy, at.zone, inst, &svc.tier, slot, &has_addresses);
            let Some(target) = target else {
                warnings.push(format!(
                    "{}: no name with addresses to be the target of {} in view {}; skipped",
                    inst.id, svc.owner, policy.name
                ));
                continue;
            };
            let name = decoded(wire);
            let rdata = RData::SRV(SRV::new(0, 0, svc.port, target));
            records.push(Record::from_rdata(name, at.zone.record_ttl, rdata));
            backing.push(Backing {
                instance: svc.instance,
                via: crate::naming::Vias::one(crate::naming::Via::Service { port: svc.port }),
            });
        }
        let pick = if records.len() > 1 {
            Pick::Rotate
        } else {
            Pick::All
        };
        let sets = (!records.is_empty()).then(|| {
            let set = super::NewSet::of(RecordType::SRV, pick, &records);
            (smallvec::smallvec![set], backing.into())
        });
        out.push((&wire[..], sets));
    }
    Some(out)
}

/// How many labels a wire name has.
fn labels(wire: &[u8]) -> usize {
    let (mut n, mut at) = (0, 0);
    while let Some(&len) = wire.get(at).filter(|&&l| l > 0) {
        n += 1;
        at += 1 + usize::from(len);
    }
    n
}

/// Records past the cap at a node (what `over_cap` counts).
fn over(node: NodeRef<'_>, cap: u16) -> usize {
    node.sets()
        .filter(|s| matches!(s.pick(), Pick::Window(_)))
        .map(|s| (s.count() as usize).saturating_sub(usize::from(cap)))
        .sum()
}

/// A name's sets and backing in one view, as a full build makes them; `None` when the view
/// does not show it.
fn host_sets(
    host: &HostName,
    policy: &ViewPolicy,
    zone: &ZoneConfig,
    rules: &Rules,
    fleet: &Fleet,
) -> Option<(super::NewSets, Arc<[Backing]>)> {
    if policy.is_outside() && host.inside_only {
        return None;
    }
    let hidden = |b: &Backing| {
        policy.is_outside()
            && fleet
                .get(b.instance as usize)
                .is_some_and(|i| inside_only(i, rules))
    };
    let backing: Arc<[Backing]> = if host.backing.iter().any(hidden) {
        host.backing
            .iter()
            .filter(|b| !hidden(b))
            .cloned()
            .collect()
    } else {
        host.backing.clone()
    };
    let public: Vec<(usize, Option<Vec<u8>>)> = (backing.iter())
        .filter_map(|b| {
            let i = b.instance as usize;
            Some((i, public_wire(fleet.get(i)?)))
        })
        .collect();
    let lookup = |i: usize| public.iter().find(|(at, _)| *at == i)?.1.as_ref();
    let sets = super::host_rrsets(&backing, fleet, zone.record_ttl, &lookup, policy);
    (!sets.is_empty()).then_some((sets, backing))
}

/// Whether naming keeps an instance out of outside views (`Naming::inside_only_instances`).
fn inside_only(inst: &Instance, rules: &Rules) -> bool {
    rules.unnamed_because(inst).is_none() && rules.tagged_inside_only(inst)
}

/// The view-independent tables' top after the change: the last top's entries, the touched
/// names, the ids and public names at the changed positions, and the own names of every
/// instance a touched name was or is single-backed by.
fn hosts_top(
    prev: &Snapshot,
    fleet: &Fleet,
    changed: &BTreeSet<u32>,
    affected: &BTreeSet<u32>,
    touched: &[Touched<'_>],
) -> HostsTop {
    let mut top = HostsTop {
        len: prev.hosts.len(),
        ..HostsTop::default()
    };
    if let Some(last) = prev.hosts.top() {
        top.names = last.names.clone();
        top.ids = last.ids.clone();
        top.public = last.public.clone();
        top.own = last.own.clone();
    }
    for t in touched {
        let was = prev.hosts.get(&t.wire).is_some();
        let now = t.host.map(|h| h.backing.clone());
        match (was, now.is_some()) {
            (true, false) => top.len -= 1,
            (false, true) => top.len += 1,
            _ => {}
        }
        top.names.insert(t.wire.clone(), now);
    }
    for &at in changed {
        if let Some(old) = prev.fleet.get(at as usize) {
            top.ids.insert(old.id.clone(), None);
            if let Some(w) = public_wire(old) {
                top.public.insert(w, None);
            }
        }
    }
    for &at in changed {
        if let Some(new) = fleet.get(at as usize) {
            top.ids.insert(new.id.clone(), Some(at));
            if let Some(w) = public_wire(new) {
                top.public.insert(w, Some(at));
            }
        }
    }
    // Own names: the instances a touched name was or is backed by alone, and the changed.
    let text: FxHashSet<String> = touched
        .iter()
        .map(|t| decoded(&t.wire).to_ascii())
        .collect();
    for &at in affected {
        let mut own = if changed.contains(&at) {
            Vec::new()
        } else {
            prev.hosts.own_ranked(at as usize)
        };
        own.retain(|o| !text.contains(&o.name));
        top.own.insert(at, own);
    }
    for t in touched {
        let Some(host) = t.host else { continue };
        if let [only] = &host.backing[..] {
            top.own.entry(only.instance).or_default().push(Own {
                rank: rank(only),
                single: host.single,
                inside_only: host.inside_only,
                name: decoded(&t.wire).to_ascii(),
            });
        }
    }
    top
}

/// The instances that names of `naming` are backed by alone.
fn alone(naming: &crate::naming::Naming) -> impl Iterator<Item = u32> + '_ {
    naming.names.iter().filter_map(|h| match &h.backing[..] {
        [only] => Some(only.instance),
        _ => None,
    })
}

/// A wire name the store wrote, as a hickory name.
fn decoded(wire: &[u8]) -> Name {
    Name::read(&mut BinDecoder::new(wire)).unwrap_or_default()
}
