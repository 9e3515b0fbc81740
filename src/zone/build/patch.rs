//! The next snapshot from the served one and a naming delta, without a full build: the
//! names the change touched are built again, each view gets them as a top layer over the base
//! it shares with the served snapshot, and the view-independent tables the same way. What the
//! change did not touch is neither read nor copied: the cost follows the change, not the fleet.
//!
//! Not every change is covered yet; those that are not get a full build, which is always
//! right (the caller's choice, `None` here):
//! - a view with reverse zones: PTR records follow each instance's best name, across names;
//! - SRV records under a touched tier: their targets are other names' addresses;
//! - a touched name with a dot in it, or one other names lie below: empty non-terminals.
//!
//! A top layer grows with every patch over the same base (a change copies the last top, not
//! the base); past [`MAX_TOP`] nodes or a sixteenth of the base the next change is a full
//! build, which starts a new base.

use std::collections::BTreeSet;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use rustc_hash::FxHashSet;

use super::{owner_wire, public_wire, push_sets, rank};
use crate::inventory::{Fleet, Instance};
use crate::naming::delta::Delta;
use crate::naming::{Backing, HostName, Rules};
use crate::view::ViewPolicy;
use crate::zone::hosts::Top as HostsTop;
use crate::zone::layer::{Layer, NodeRef};
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
pub fn patch(
    prev: &Snapshot,
    zone: &ZoneConfig,
    views: &[ViewPolicy],
    rules: &Rules,
    fleet: &Fleet,
    delta: &Delta,
    changed: &BTreeSet<u32>,
) -> Option<(Snapshot, bool)> {
    if views.len() != prev.views.len()
        || views.iter().any(|v| !v.reverse.is_empty())
        || !delta.part.services.is_empty()
        || !delta.was.services.is_empty()
    {
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
        if name.contains('.') {
            return None;
        }
        let host = (delta.part.names)
            .binary_search_by(|h| h.name.as_str().cmp(name))
            .ok()
            .map(|i| &delta.part.names[i]);
        match owner_wire(name, zone, &apex_wire, &passthrough, &mut wire) {
            Ok(()) => {
                if prev.views.iter().any(|v| v.base.parents.contains(&wire)) {
                    return None;
                }
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
    let mut any_change = false;
    let mut out_views = Vec::with_capacity(views.len());
    for (policy, before) in views.iter().zip(&prev.views) {
        if policy.name != before.name {
            return None;
        }
        let (view, changed_here) =
            patch_view(before, policy, zone, rules, fleet, &touched, &mut warnings)?;
        any_change |= changed_here;
        out_views.push(view);
    }
    let hosts = prev.hosts.topped(
        hosts_top(prev, fleet, delta, changed, &touched),
        fleet.clone(),
    );
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

/// One view with the touched names built again over its base, and whether any of them
/// answers differently now; `None` when its top would outgrow what a top is for.
fn patch_view(
    before: &ViewZone,
    policy: &ViewPolicy,
    zone: &ZoneConfig,
    rules: &Rules,
    fleet: &Fleet,
    touched: &[Touched<'_>],
    warnings: &mut Vec<String>,
) -> Option<(ViewZone, bool)> {
    let cap = zone.max_records_per_rrset;
    let mut store = StoreBuilder::default();
    let (mut nodes, mut set_refs) = (Vec::new(), Vec::new());
    let mut over_cap = before.over_cap;
    let mut capped = Vec::new();
    let mut changed = false;
    let empty: Arc<[Backing]> = Arc::from([]);
    for t in touched {
        let was = before.node(&t.wire);
        if let Some(was) = was {
            over_cap = over_cap.saturating_sub(over(was, cap));
        }
        let base = before.base.find(&t.wire).map(|n| before.base.at(n));
        match t
            .host
            .and_then(|h| host_sets(h, policy, zone, rules, fleet))
        {
            Some((mut sets, backing)) => {
                let name = store.intern(&t.wire);
                let first = push_sets(
                    &mut store,
                    &mut set_refs,
                    &mut sets,
                    cap,
                    name,
                    &mut over_cap,
                    &mut capped,
                );
                let node = Node {
                    name,
                    first,
                    sets: sets.len() as u16,
                    forward: true,
                    backing,
                    gone: false,
                };
                let sets_now: Vec<_> = set_refs[first as usize..].to_vec();
                // Answers compare instances by id (the one at a position may have moved
                // there); a base node stands for this one only with the same positions.
                let same_instances = |o: &NodeRef<'_>| {
                    o.backing.len() == node.backing.len()
                        && o.backing.iter().zip(node.backing.iter()).all(|(x, y)| {
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
                                o.backing == node.backing
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
                if same_as(base, false) {
                    set_refs.truncate(first as usize); // the base answers it
                } else {
                    nodes.push(node);
                }
            }
            None => {
                changed |= was.is_some();
                if base.is_some() {
                    nodes.push(Node {
                        name: store.intern(&t.wire),
                        first: set_refs.len() as u32,
                        sets: 0,
                        forward: true,
                        backing: empty.clone(),
                        gone: true,
                    });
                }
            }
        }
    }
    // The last top's other names carry over, copied: a top is small.
    if let Some(top) = &before.top {
        let redone: FxHashSet<&[u8]> = touched.iter().map(|t| &t.wire[..]).collect();
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
                backing: node.backing.clone(),
                gone: node.gone,
            });
        }
    }
    if nodes.len() > MAX_TOP.min(before.base.nodes.len() / 16).max(64) {
        return None;
    }
    let name = &policy.name;
    warnings.extend(capped.into_iter().map(|c| format!("view {name}: {c}")));
    let top = (!nodes.is_empty())
        .then(|| Arc::new(Layer::new(Arc::new(store.finish()), nodes, set_refs)));
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
    delta: &Delta,
    changed: &BTreeSet<u32>,
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
    // Own names: the instances a touched name was or is single-backed by, and the changed.
    let text: FxHashSet<String> = touched
        .iter()
        .map(|t| decoded(&t.wire).to_ascii())
        .collect();
    let single = |h: &HostName| match &h.backing[..] {
        [only] if h.single => Some(only.instance),
        _ => None,
    };
    let mut affected: BTreeSet<u32> = changed.clone();
    affected.extend(delta.was.names.iter().filter_map(single));
    affected.extend(delta.part.names.iter().filter_map(single));
    for &at in &affected {
        let mut own = if changed.contains(&at) {
            Vec::new()
        } else {
            prev.hosts.own_ranked(at as usize)
        };
        own.retain(|(_, name)| !text.contains(name));
        top.own.insert(at, own);
    }
    for t in touched {
        let Some(host) = t.host else { continue };
        if let ([only], true) = (&host.backing[..], host.single) {
            let name = decoded(&t.wire).to_ascii();
            top.own
                .entry(only.instance)
                .or_default()
                .push((rank(only), name));
        }
    }
    top
}

/// A wire name the store wrote, as a hickory name.
fn decoded(wire: &[u8]) -> Name {
    Name::read(&mut BinDecoder::new(wire)).unwrap_or_default()
}
