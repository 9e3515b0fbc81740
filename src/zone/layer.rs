//! A view's names in layers: the base a full build makes, and over it at most one small top
//! layer holding the names that changed since (a node per changed name, or a tombstone for a
//! name gone). A lookup probes the top, then the base: two hash probes at most, and one while
//! there is no top. Each layer has its own store, so a top is made without copying the base.

use std::sync::Arc;

use hashbrown::HashTable;
use hickory_proto::rr::{Name, Record};

use super::Node;
use super::store::{SetId, SetInfo, Store, hash_name};
use crate::naming::Backing;

/// The instances behind the names of one build, back to back. A node holds the index of its
/// span (4 bytes) rather than a shared slice (16 bytes and an allocation a name); the views'
/// bases and the host table of one full build share one pool.
#[derive(Debug)]
pub(crate) struct Backings {
    items: Vec<Backing>,
    /// Where each span ends in `items`; span 0 is the empty one.
    ends: Vec<u32>,
}

impl Default for Backings {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            ends: vec![0],
        }
    }
}

impl Backings {
    /// The span of no instance: the zone's own names, empty non-terminals, tombstones.
    pub(crate) const NONE: u32 = 0;

    /// Adds a span; its index.
    pub(crate) fn push(&mut self, backing: impl IntoIterator<Item = Backing>) -> u32 {
        self.items.extend(backing);
        self.ends.push(self.items.len() as u32);
        (self.ends.len() - 1) as u32
    }

    /// A span's instances (none for an index this pool never gave).
    #[inline]
    pub(crate) fn get(&self, span: u32) -> &[Backing] {
        let i = span as usize;
        match (
            i.checked_sub(1).and_then(|p| self.ends.get(p)),
            self.ends.get(i),
        ) {
            (Some(&start), Some(&end)) => &self.items[start as usize..end as usize],
            _ => &[],
        }
    }

    /// Sized to what it holds, for the snapshot's life.
    pub(crate) fn finish(mut self) -> Arc<Self> {
        self.items.shrink_to_fit();
        self.ends.shrink_to_fit();
        Arc::new(self)
    }
}

/// Nodes, their sets and the index from wire name to node, over one store.
#[derive(Debug)]
pub(crate) struct Layer {
    pub(super) store: Arc<Store>,
    /// The instances behind its nodes.
    pub(super) backings: Arc<Backings>,
    /// By the node's lower-case wire name: where that name starts in the store (compared in
    /// place while probing) and the node's index in `nodes`.
    index: HashTable<(u32, u32)>,
    pub(super) nodes: Vec<Node>,
    /// Each node's sets, sorted by type, back to back.
    set_refs: Vec<SetId>,
    /// How many nodes lie directly below a name that is not a zone's apex (wire form): a
    /// base's counts, a top's changes to them. A name with none and no data does not exist;
    /// one with some and no data is an empty non-terminal.
    pub(super) children: rustc_hash::FxHashMap<Vec<u8>, i32>,
}

impl Layer {
    /// A layer of `nodes`, indexed.
    pub(super) fn new(
        store: Arc<Store>,
        backings: Arc<Backings>,
        mut nodes: Vec<Node>,
        mut set_refs: Vec<SetId>,
    ) -> Self {
        let mut index = HashTable::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let entry = (store.name_start(node.name), i as u32);
            index.insert_unique(hash_name(store.name(node.name)), entry, |&(_, i)| {
                hash_name(store.name(nodes[i as usize].name))
            });
        }
        nodes.shrink_to_fit();
        set_refs.shrink_to_fit();
        Self {
            store,
            backings,
            index,
            nodes,
            set_refs,
            children: Default::default(),
        }
    }

    /// The node at a lower-case wire name, a tombstone included.
    #[inline]
    pub(super) fn find(&self, wire: &[u8]) -> Option<&Node> {
        let store = &self.store;
        (self.index)
            .find(hash_name(wire), |&(start, _)| store.name_is(start, wire))
            .map(|&(_, i)| &self.nodes[i as usize])
    }

    /// A node of this layer.
    pub(super) fn at<'a>(&'a self, node: &'a Node) -> NodeRef<'a> {
        NodeRef { layer: self, node }
    }
}

/// The parent of a wire name (its first label off).
pub(super) fn parent(wire: &[u8]) -> Option<&[u8]> {
    let skip = 1 + usize::from(*wire.first()?);
    (wire.len() > skip).then(|| &wire[skip..])
}

/// How many nodes of `layer` lie directly below each name that is not one of `apexes`.
pub(super) fn child_counts(layer: &Layer, apexes: &[&[u8]]) -> rustc_hash::FxHashMap<Vec<u8>, i32> {
    let mut counts: rustc_hash::FxHashMap<Vec<u8>, i32> = Default::default();
    for node in &layer.nodes {
        let wire = layer.store.name(node.name);
        if apexes.contains(&wire) {
            continue;
        }
        if let Some(up) = parent(wire).filter(|up| !apexes.contains(up)) {
            *counts.entry(up.to_vec()).or_default() += 1;
        }
    }
    counts
}

/// A node and the layer it lives in, whose store its name and sets are in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    pub(super) layer: &'a Layer,
    pub(super) node: &'a Node,
}

impl std::ops::Deref for NodeRef<'_> {
    type Target = Node;

    fn deref(&self) -> &Node {
        self.node
    }
}

impl<'a> NodeRef<'a> {
    /// Its lower-case wire name.
    pub(crate) fn wire_name(&self) -> &'a [u8] {
        self.layer.store.name(self.node.name)
    }

    /// Its name, for the slow paths.
    pub(crate) fn owner(&self) -> Name {
        self.layer.store.hickory_name(self.node.name)
    }

    /// Its stored sets, in type order.
    #[inline]
    pub(crate) fn sets(&self) -> impl Iterator<Item = SetRef<'a>> + use<'a> {
        let layer = self.layer;
        let refs = &layer.set_refs[self.node.first as usize..][..usize::from(self.node.sets)];
        refs.iter().map(move |&id| SetRef {
            info: layer.store.set(id),
            store: &layer.store,
        })
    }

    /// The instances behind it and why.
    pub(crate) fn backing(&self) -> &'a [Backing] {
        self.layer.backings.get(self.node.backing)
    }

    /// Whether it lives in `layer`.
    pub(super) fn is_in(&self, layer: &Layer) -> bool {
        std::ptr::eq(self.layer, layer)
    }
}

/// A stored set and the store its records are in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetRef<'a> {
    info: &'a SetInfo,
    store: &'a Store,
}

impl std::ops::Deref for SetRef<'_> {
    type Target = SetInfo;

    fn deref(&self) -> &SetInfo {
        self.info
    }
}

impl<'a> SetRef<'a> {
    /// Its records in answer-section wire form.
    #[inline]
    pub(crate) fn wire(&self) -> &'a [u8] {
        self.store.wire(self.info)
    }

    /// Its first `n` records as hickory records owned by `owner`.
    pub(crate) fn records(&self, owner: &Name, n: usize) -> Vec<Record> {
        self.store.records(self.info, owner, n)
    }

    /// Whether two sets hand out the same records.
    pub(crate) fn same(&self, other: &SetRef<'_>) -> bool {
        self.code() == other.code() && self.pick() == other.pick() && self.wire() == other.wire()
    }
}

impl super::ViewZone {
    /// The nodes of `self` that may differ from `other`'s: every node served, or, when both
    /// share a base, those at the names either top holds (no other can differ).
    pub(super) fn differing<'a>(
        &'a self,
        other: &'a super::ViewZone,
    ) -> Box<dyn Iterator<Item = NodeRef<'a>> + 'a> {
        if !Arc::ptr_eq(&self.base, &other.base) {
            return Box::new(self.live());
        }
        let tops = [self.top.as_deref(), other.top.as_deref()];
        let names: std::collections::BTreeSet<&[u8]> = (tops.into_iter().flatten())
            .flat_map(|t| t.nodes.iter().map(|n| t.at(n).wire_name()))
            .collect();
        Box::new(names.into_iter().filter_map(|name| self.node(name)))
    }
}

/// A top layer made from two full builds, for tests of the layered reads: `base` answering
/// as `next` does.
#[cfg(test)]
impl super::ViewZone {
    pub(crate) fn topped_as(&self, next: &super::ViewZone) -> super::ViewZone {
        use super::store::StoreBuilder;
        let mut store = StoreBuilder::default();
        let mut backings = Backings::default();
        let (mut nodes, mut set_refs) = (Vec::new(), Vec::new());
        let mut put = |n: NodeRef<'_>, gone: bool| {
            let first = set_refs.len() as u32;
            for set in n.sets().filter(|_| !gone) {
                set_refs.push(store.set(set.rtype(), set.pick(), set.count(), set.wire()));
            }
            nodes.push(Node {
                name: store.intern(n.wire_name()),
                first,
                sets: if gone { 0 } else { n.sets },
                forward: n.forward,
                backing: if gone {
                    Backings::NONE
                } else {
                    backings.push(n.backing().iter().cloned())
                },
                gone,
            });
        };
        let base = &*self.base;
        for n in next.live() {
            let same = base
                .find(n.wire_name())
                .map(|b| base.at(b))
                .is_some_and(|b| {
                    b.sets == n.sets
                        && b.backing() == n.backing()
                        && b.sets().zip(n.sets()).all(|(x, y)| x.same(&y))
                });
            if !same {
                put(n, false);
            }
        }
        for n in base.nodes.iter().map(|n| base.at(n)) {
            if next.node(n.wire_name()).is_none() {
                put(n, true);
            }
        }
        let top = Layer::new(Arc::new(store.finish()), backings.finish(), nodes, set_refs);
        let mut zones = next.zones.clone();
        for zone in &mut zones {
            if let Some(ours) = self.zones.iter().find(|z| z.apex == zone.apex) {
                zone.apex_id = ours.apex_id;
            }
        }
        super::ViewZone {
            name: next.name.clone(),
            policy: next.policy.clone(),
            fleet: next.fleet.clone(),
            base: self.base.clone(),
            top: Some(Arc::new(top)),
            zones,
            passthrough: next.passthrough.clone(),
            over_cap: next.over_cap,
            fast: next.fast.clone(),
            history: std::sync::OnceLock::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{Via, Vias};

    fn at(instance: u32) -> Backing {
        Backing {
            instance,
            via: Vias::one(Via::InstanceId),
        }
    }

    #[test]
    fn spans_hand_back_what_was_pushed_and_none_is_empty() {
        let mut pool = Backings::default();
        let a = pool.push([at(1), at(2)]);
        let none = pool.push([]);
        let b = pool.push([at(3)]);
        let pool = pool.finish();
        assert_eq!(pool.get(Backings::NONE), &[] as &[Backing]);
        assert_eq!(pool.get(a), &[at(1), at(2)]);
        assert_eq!(pool.get(none), &[] as &[Backing]);
        assert_eq!(pool.get(b), &[at(3)]);
        // An index from another pool (a top's, say) reads as nothing, not as a panic.
        assert_eq!(pool.get(99), &[] as &[Backing]);
    }

    #[test]
    fn a_node_stays_sixteen_bytes() {
        // Hundreds of thousands per view: a wider node is megabytes at 100,000 instances.
        assert_eq!(std::mem::size_of::<Node>(), 16);
    }
}
