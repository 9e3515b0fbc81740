//! Which fleet positions hold an address: what a patch finds every instance sharing a PTR
//! owner's address through (two instances in two VPCs may have one private address), without
//! a pass over the fleet.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::inventory::Instance;

/// Address hash → fleet position, one entry per address an instance holds (private and public
/// IPv4, IPv6). Kept beside the claim index by the events path; positions do not move.
#[derive(Debug, Default, Clone)]
pub struct AddressIndex {
    table: HashTable<(u64, u32)>,
}

fn hash(ip: &IpAddr) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(ip)
}

/// Every address an instance holds, each once.
fn held(inst: &Instance) -> BTreeSet<IpAddr> {
    let v4 = [inst.private_ip, inst.public_ip].into_iter().flatten();
    v4.map(IpAddr::V4)
        .chain(inst.ipv6.iter().copied().map(IpAddr::V6))
        .collect()
}

impl AddressIndex {
    /// The index of a whole fleet.
    pub fn new(fleet: &[Arc<Instance>]) -> Self {
        let mut index = Self {
            table: HashTable::with_capacity(fleet.len() * 2),
        };
        for (at, inst) in (0u32..).zip(fleet) {
            index.add(inst, at);
        }
        index
    }

    fn add(&mut self, inst: &Instance, at: u32) {
        for ip in held(inst) {
            let h = hash(&ip);
            self.table.insert_unique(h, (h, at), |e| e.0);
        }
    }

    /// From the index of `old` to that of `new`, which differ at the positions `changed`.
    pub fn update(
        &mut self,
        old: &[Arc<Instance>],
        new: &[Arc<Instance>],
        changed: &BTreeSet<u32>,
    ) {
        for &at in changed {
            if let Some(inst) = old.get(at as usize) {
                for ip in held(inst) {
                    let h = hash(&ip);
                    if let Ok(entry) = self.table.find_entry(h, |e| *e == (h, at)) {
                        entry.remove();
                    }
                }
            }
            if let Some(inst) = new.get(at as usize) {
                self.add(inst, at);
            }
        }
    }

    /// The positions that may hold `ip` (a hash collision adds one that does not: check).
    pub(crate) fn positions(&self, ip: &IpAddr) -> impl Iterator<Item = u32> + '_ {
        let h = hash(ip);
        self.table
            .iter_hash(h)
            .filter(move |e| e.0 == h)
            .map(|e| e.1)
    }

    /// Every entry, sorted: two indexes of one fleet hold the same.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<(u64, u32)> {
        let mut all: Vec<(u64, u32)> = self.table.iter().copied().collect();
        all.sort_unstable();
        all
    }
}
