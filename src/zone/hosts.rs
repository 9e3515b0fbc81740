//! A snapshot's view-independent tables: every host name with the instances behind it, and
//! the fleet by instance id and by public DNS name. Names are the store's; instances are
//! indices into the fleet, so none of this copies a string per name.

use crate::inventory::Fleet;
use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use super::store::{NameId, Store, hash_name};
use crate::naming::Backing;

/// Every host name (view-independent) and the fleet's indexes.
#[derive(Debug, Default)]
pub(crate) struct Hosts {
    store: Arc<Store>,
    /// The fleet the backings index.
    fleet: Fleet,
    /// Sorted by wire name, so two snapshots compare in one merge.
    names: Vec<(NameId, Arc<[Backing]>)>,
    /// Index into the fleet, by instance id.
    by_id: HashTable<u32>,
    /// Index into the fleet, by the lower-case wire form of the public DNS name.
    by_public: HashTable<u32>,
    /// Each instance's interned public DNS name, if it has one (by fleet index).
    public: Vec<Option<NameId>>,
    /// The names each instance has alone (single-instance rules, its slots, its id), sorted
    /// by fleet index, each with its rank (0 a rule made it, 1 a slot, 2 the id): what the
    /// audit calls an instance.
    own: Vec<(u32, u8, NameId)>,
}

impl Hosts {
    pub(crate) fn new(
        store: Arc<Store>,
        mut names: Vec<(NameId, Arc<[Backing]>)>,
        fleet: Fleet,
        public: Vec<Option<NameId>>,
        mut own: Vec<(u32, u8, NameId)>,
    ) -> Self {
        own.sort_unstable();
        names.sort_by(|(a, _), (b, _)| store.name(*a).cmp(store.name(*b)));
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
            by_id,
            by_public,
            public,
            own,
        }
    }

    /// The names the instance at fleet index `instance` has alone, fully qualified (A-labels):
    /// those a rule made first, then its slots, its id's last; shortest first within each.
    pub(crate) fn own_names(&self, instance: usize) -> Vec<String> {
        let at = self
            .own
            .partition_point(|&(i, _, _)| (i as usize) < instance);
        let mut names: Vec<(u8, String)> = self.own[at..]
            .iter()
            .take_while(|&&(i, _, _)| i as usize == instance)
            .map(|&(_, rank, n)| (rank, self.store.hickory_name(n).to_ascii()))
            .collect();
        names.sort_by(|(ra, a), (rb, b)| (ra, a.len(), a).cmp(&(rb, b.len(), b)));
        names.into_iter().map(|(_, n)| n).collect()
    }

    /// The id of the instance behind a backing.
    fn id(&self, b: &Backing) -> &str {
        &self.fleet[b.instance as usize].id
    }

    /// How many host names there are.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The fleet index of an instance id.
    pub(crate) fn by_id(&self, id: &str) -> Option<usize> {
        let hash = FxBuildHasher.hash_one(id);
        (self.by_id)
            .find(hash, |&i| self.fleet[i as usize].id == id)
            .map(|&i| i as usize)
    }

    /// The fleet index of the instance whose public DNS name is `wire` (lower case).
    pub(crate) fn by_public(&self, wire: &[u8]) -> Option<usize> {
        let store = &self.store;
        (self.by_public)
            .find(hash_name(wire), |&i| {
                self.public[i as usize].is_some_and(|n| store.name(n) == wire)
            })
            .map(|&i| i as usize)
    }

    /// Every name, fully qualified, with the instance ids behind it: for `check`, logs and
    /// tests, not for the query path.
    pub(crate) fn to_map(&self) -> BTreeMap<String, Vec<String>> {
        self.names.iter().map(|(n, b)| self.entry(*n, b)).collect()
    }

    fn entry(&self, name: NameId, backing: &[Backing]) -> (String, Vec<String>) {
        let ids = backing.iter().map(|b| self.id(b).to_owned()).collect();
        (self.store.hickory_name(name).to_ascii(), ids)
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
        for (name, backing) in &self.names {
            self.store.name(*name).hash(&mut h);
            for b in backing.iter() {
                self.id(b).hash(&mut h);
            }
            0xffu8.hash(&mut h);
        }
        h.finish()
    }

    /// Walks both sorted name lists together, calling `f` once per name with each side's
    /// entry.
    fn merge<'s>(
        &'s self,
        next: &'s Hosts,
        mut f: impl FnMut(Option<(NameId, &'s [Backing])>, Option<(NameId, &'s [Backing])>),
    ) {
        let (mut i, mut j) = (0, 0);
        while i < self.names.len() || j < next.names.len() {
            let a = self.names.get(i).map(|(n, b)| (*n, &b[..]));
            let b = next.names.get(j).map(|(n, b)| (*n, &b[..]));
            let order = match (a, b) {
                (Some((x, _)), Some((y, _))) => self.store.name(x).cmp(next.store.name(y)),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    f(a, None);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    f(None, b);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    f(a, b);
                    i += 1;
                    j += 1;
                }
            }
        }
    }
}
