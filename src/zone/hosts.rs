//! A snapshot's view-independent tables: every host name with the instances behind it, and
//! the fleet by instance id and by public DNS name. Names are the store's; instances are
//! indices into the fleet, so none of this copies a string per name.
//!
//! Like a view's names, in two layers: the tables a full build made, and over them what
//! changed since (see `layer`). Fleet positions do not move between the two, so a base entry
//! that no change touched still names the right instance.

use crate::inventory::Fleet;
use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};

use super::layer::Backings;
use super::store::{NameId, Store, hash_name};
use crate::naming::Backing;

/// Every host name (view-independent) and the fleet's indexes.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    base: Arc<Base>,
    top: Option<Arc<Top>>,
    /// The fleet every backing indexes (the base's positions, changed ones replaced).
    fleet: Fleet,
}

/// What changed since the base: each entry replaces the base's.
#[derive(Debug, Default)]
pub(crate) struct Top {
    /// By lower-case wire name: the instances behind the name now, or none when it is gone.
    pub(crate) names: BTreeMap<Vec<u8>, Option<Arc<[Backing]>>>,
    /// Fleet position by instance id, for every id at a changed position (none: gone).
    pub(crate) ids: FxHashMap<String, Option<u32>>,
    /// Fleet position by public DNS name (lower-case wire), the same way.
    pub(crate) public: FxHashMap<Vec<u8>, Option<u32>>,
    /// The names backed by an instance alone, for instances whose names changed.
    pub(crate) own: FxHashMap<u32, Vec<Own>>,
    /// How many host names there are.
    pub(crate) len: usize,
}

/// A name backed by one instance alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Own {
    /// 0 a rule made it, 1 a slot, 2 the instance id.
    pub(crate) rank: u8,
    /// Made by single-instance rules (or the id): the instance's own, not a tier of one.
    pub(crate) single: bool,
    /// Never shown outside.
    pub(crate) inside_only: bool,
    /// Fully qualified, A-labels.
    pub(crate) name: String,
}

/// An entry of a full build's own names: fleet index, rank, single, inside-only, name.
pub(crate) type OwnEntry = (u32, u8, bool, bool, NameId);

/// The tables of a full build.
#[derive(Debug, Default)]
struct Base {
    store: Arc<Store>,
    /// The fleet the backings index.
    fleet: Fleet,
    /// Sorted by wire name, so two snapshots compare in one merge; each with its span of
    /// `backings`.
    names: Vec<(NameId, u32)>,
    /// The instances behind the names (the build's pool, shared with the views).
    backings: Arc<Backings>,
    /// Index into the fleet, by instance id.
    by_id: HashTable<u32>,
    /// Index into the fleet, by the lower-case wire form of the public DNS name.
    by_public: HashTable<u32>,
    /// Each instance's interned public DNS name, if it has one (by fleet index).
    public: Vec<Option<NameId>>,
    /// The names each instance has alone (single-instance rules, its slots, its id), sorted
    /// by fleet index, each with its rank (0 a rule made it, 1 a slot, 2 the id): what the
    /// audit calls an instance.
    own: Vec<OwnEntry>,
}

impl Hosts {
    pub(crate) fn new(
        store: Arc<Store>,
        backings: Arc<Backings>,
        names: Vec<(NameId, u32)>,
        fleet: Fleet,
        public: Vec<Option<NameId>>,
        own: Vec<OwnEntry>,
    ) -> Self {
        let base = Base::new(store, backings, names, fleet.clone(), public, own);
        Self {
            base: Arc::new(base),
            top: None,
            fleet,
        }
    }

    /// These tables with `top` over their base (which must hold everything this one's top
    /// held, and more), for `fleet`.
    pub(crate) fn topped(&self, top: Top, fleet: Fleet) -> Self {
        Self {
            base: self.base.clone(),
            top: Some(Arc::new(top)),
            fleet,
        }
    }

    /// What is over the base now: the start of the next top.
    pub(crate) fn top(&self) -> Option<&Top> {
        self.top.as_deref()
    }

    /// The instances behind a name (lower-case wire), if it is one.
    pub(crate) fn get(&self, wire: &[u8]) -> Option<&[Backing]> {
        if let Some(top) = &self.top
            && let Some(entry) = top.names.get(wire)
        {
            return entry.as_deref();
        }
        let base = &self.base;
        (base.names)
            .binary_search_by(|(n, _)| base.store.name(*n).cmp(wire))
            .ok()
            .map(|i| base.backings.get(base.names[i].1))
    }

    /// The names the instance at fleet index `instance` has alone, fully qualified (A-labels):
    /// those a rule made first, then its slots, its id's last; shortest first within each.
    pub(crate) fn own_names(&self, instance: usize) -> Vec<String> {
        let mut names = self.own_ranked(instance);
        names.retain(|o| o.single);
        names.sort_by(|a, b| best(a).cmp(&best(b)));
        names.into_iter().map(|o| o.name).collect()
    }

    /// The name of the instance at `instance` for PTR answers: of the names it backs alone,
    /// the one a rule made, else its slot, else its id; shortest first, then alphabetically.
    pub(crate) fn primary(&self, instance: usize) -> Option<Own> {
        self.own_ranked(instance)
            .into_iter()
            .min_by(|a, b| best(a).cmp(&best(b)))
    }

    /// Every name backed by the instance at `instance` alone (tiers of one included),
    /// unsorted.
    pub(crate) fn own_ranked(&self, instance: usize) -> Vec<Own> {
        let top = self.top.as_ref().and_then(|t| {
            let at = u32::try_from(instance).ok()?;
            t.own.get(&at)
        });
        match top {
            Some(own) => own.clone(),
            None => self.base.own_ranked(instance),
        }
    }

    /// The id of the instance behind a backing.
    fn id(&self, b: &Backing) -> &str {
        &self.fleet[b.instance as usize].id
    }

    /// How many host names there are.
    pub(crate) fn len(&self) -> usize {
        self.top.as_ref().map_or(self.base.names.len(), |t| t.len)
    }

    /// The fleet index of an instance id.
    pub(crate) fn by_id(&self, id: &str) -> Option<usize> {
        if let Some(top) = &self.top
            && let Some(at) = top.ids.get(id)
        {
            return at.map(|i| i as usize);
        }
        self.base.by_id(id)
    }

    /// The fleet index of the instance whose public DNS name is `wire` (lower case).
    pub(crate) fn by_public(&self, wire: &[u8]) -> Option<usize> {
        if let Some(top) = &self.top
            && let Some(at) = top.public.get(wire)
        {
            return at.map(|i| i as usize);
        }
        self.base.by_public(wire)
    }

    /// Every name and the instances behind it, sorted by wire name: the base's that the top
    /// does not replace, merged with the top's that are not gone.
    fn entries(&self) -> impl Iterator<Item = (&[u8], &[Backing])> {
        let base = &*self.base;
        let top = self.top.as_deref();
        let kept = (base.names.iter())
            .map(move |&(n, b)| (base.store.name(n), base.backings.get(b)))
            .filter(move |(wire, _)| top.is_none_or(|t| !t.names.contains_key(*wire)));
        let over = (top.into_iter())
            .flat_map(|t| t.names.iter())
            .filter_map(|(wire, b)| Some((&wire[..], b.as_deref()?)));
        Merged {
            a: kept.peekable(),
            b: over.peekable(),
        }
    }

    /// Every name, fully qualified, with the instance ids behind it: for `check`, logs and
    /// tests, not for the query path.
    pub(crate) fn to_map(&self) -> BTreeMap<String, Vec<String>> {
        self.entries().map(|(n, b)| self.entry(n, b)).collect()
    }

    fn entry(&self, wire: &[u8], backing: &[Backing]) -> (String, Vec<String>) {
        let ids = backing.iter().map(|b| self.id(b).to_owned()).collect();
        (wire_text(wire), ids)
    }

    /// The names whose instances differ between `self` and `next` (or that only one has),
    /// each side as a map: what a publish logs.
    pub(crate) fn changes(&self, next: &Hosts) -> [BTreeMap<String, Vec<String>>; 2] {
        let mut out = [BTreeMap::new(), BTreeMap::new()];
        self.merge(next, |a, b| {
            if let (Some((_, xb)), Some((_, yb))) = (a, b)
                && xb.len() == yb.len()
                && xb.iter().zip(yb).all(|(x, y)| self.id(x) == next.id(y))
            {
                return;
            }
            if let Some((n, backing)) = a {
                let (k, v) = self.entry(n, backing);
                out[0].insert(k, v);
            }
            if let Some((n, backing)) = b {
                let (k, v) = next.entry(n, backing);
                out[1].insert(k, v);
            }
        });
        out
    }

    /// How many of `self`'s names `next` does not have.
    pub(crate) fn removed_in(&self, next: &Hosts) -> usize {
        let mut removed = 0;
        self.merge(next, |a, b| {
            if a.is_some() && b.is_none() {
                removed += 1;
            }
        });
        removed
    }

    /// A hash of every name and its instances: the same fleet of names hashes the same.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for (name, backing) in self.entries() {
            name.hash(&mut h);
            for b in backing {
                self.id(b).hash(&mut h);
            }
            0xffu8.hash(&mut h);
        }
        h.finish()
    }

    /// Walks both sorted name lists together, calling `f` once per name with each side's
    /// entry; when both share a base, only the names their tops hold (no other can differ).
    fn merge<'s>(
        &'s self,
        next: &'s Hosts,
        mut f: impl FnMut(Option<(&'s [u8], &'s [Backing])>, Option<(&'s [u8], &'s [Backing])>),
    ) {
        if Arc::ptr_eq(&self.base, &next.base) {
            let tops = [self.top.as_deref(), next.top.as_deref()];
            let names: std::collections::BTreeSet<&[u8]> = (tops.into_iter().flatten())
                .flat_map(|t| t.names.keys().map(|k| &k[..]))
                .collect();
            for name in names {
                let (a, b) = (self.get(name), next.get(name));
                if a.is_some() || b.is_some() {
                    f(a.map(|a| (name, a)), b.map(|b| (name, b)));
                }
            }
            return;
        }
        let (mut mine, mut theirs) = (self.entries().peekable(), next.entries().peekable());
        loop {
            let order = match (mine.peek(), theirs.peek()) {
                (Some((x, _)), Some((y, _))) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => return,
            };
            match order {
                std::cmp::Ordering::Less => f(mine.next(), None),
                std::cmp::Ordering::Greater => f(None, theirs.next()),
                std::cmp::Ordering::Equal => f(mine.next(), theirs.next()),
            }
        }
    }
}

/// The order names are preferred in for an instance: rank, then the shortest, then
/// alphabetically (every name ends in the apex, so this is the order of the relative names).
fn best(o: &Own) -> (u8, usize, &str) {
    (o.rank, o.name.len(), &o.name)
}

/// Two iterators sorted by name, merged (no name is in both).
struct Merged<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'s, A, B> Iterator for Merged<A, B>
where
    A: Iterator<Item = (&'s [u8], &'s [Backing])>,
    B: Iterator<Item = (&'s [u8], &'s [Backing])>,
{
    type Item = (&'s [u8], &'s [Backing]);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some((x, _)), Some((y, _))) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

/// A lower-case wire name as fully qualified text (A-labels).
pub(crate) fn wire_text(wire: &[u8]) -> String {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    hickory_proto::rr::Name::read(&mut BinDecoder::new(wire))
        .unwrap_or_default()
        .to_ascii()
}

impl Base {
    fn new(
        store: Arc<Store>,
        backings: Arc<Backings>,
        mut names: Vec<(NameId, u32)>,
        fleet: Fleet,
        public: Vec<Option<NameId>>,
        mut own: Vec<OwnEntry>,
    ) -> Self {
        own.sort_unstable();
        // Collected from a filter: up to twice the room it needs, kept for the snapshot's life.
        own.shrink_to_fit();
        // Names are distinct, so an unstable sort orders them the one way, without the stable
        // sort's scratch copy.
        names.sort_unstable_by(|(a, _), (b, _)| store.name(*a).cmp(store.name(*b)));
        let mut by_id = HashTable::with_capacity(fleet.len());
        for (i, inst) in fleet.iter().enumerate() {
            let hash = FxBuildHasher.hash_one(inst.id.as_str());
            by_id.insert_unique(hash, i as u32, |&i| {
                FxBuildHasher.hash_one(fleet[i as usize].id.as_str())
            });
        }
        let mut by_public = HashTable::new();
        for (i, name) in public.iter().enumerate() {
            if let Some(name) = name {
                by_public.insert_unique(hash_name(store.name(*name)), i as u32, |&i| {
                    public[i as usize].map_or(0, |n| hash_name(store.name(n)))
                });
            }
        }
        Self {
            store,
            fleet,
            names,
            backings,
            by_id,
            by_public,
            public,
            own,
        }
    }

    /// The names backed by the instance at fleet index `instance` alone.
    fn own_ranked(&self, instance: usize) -> Vec<Own> {
        let at = self.own.partition_point(|&(i, ..)| (i as usize) < instance);
        self.own[at..]
            .iter()
            .take_while(|&&(i, ..)| i as usize == instance)
            .map(|&(_, rank, single, inside_only, n)| Own {
                rank,
                single,
                inside_only,
                name: self.store.hickory_name(n).to_ascii(),
            })
            .collect()
    }

    /// The fleet index of an instance id.
    fn by_id(&self, id: &str) -> Option<usize> {
        let hash = FxBuildHasher.hash_one(id);
        (self.by_id)
            .find(hash, |&i| self.fleet[i as usize].id == id)
            .map(|&i| i as usize)
    }

    /// The fleet index of the instance whose public DNS name is `wire` (lower case).
    fn by_public(&self, wire: &[u8]) -> Option<usize> {
        let store = &self.store;
        (self.by_public)
            .find(hash_name(wire), |&i| {
                self.public[i as usize].is_some_and(|n| store.name(n) == wire)
            })
            .map(|&i| i as usize)
    }
}
