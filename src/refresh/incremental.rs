//! The events path's incremental snapshots: the claim index of the served fleet, kept from
//! one event to the next, and the served snapshot patched with an event's change (see
//! [`crate::naming::delta`] and [`zone::patch`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Refresher;
use super::slots::remembers_slots;
use crate::inventory::Fleet;
use crate::naming;
use crate::zone::{self, Snapshot};

/// The served fleet's indexes: which positions claim each name, and hold each address.
#[derive(Debug)]
pub(super) struct Indexes {
    claims: naming::delta::ClaimIndex,
    addresses: zone::AddressIndex,
}

impl Indexes {
    fn new(fleet: &Fleet, config: &crate::config::Config) -> Self {
        let limits = zone::naming_limits(&config.zone);
        Self {
            claims: naming::delta::ClaimIndex::new(fleet, &config.naming, &limits),
            addresses: zone::AddressIndex::new(fleet),
        }
    }
}

impl Refresher {
    /// The served snapshot patched with the change at positions `moved` of `fleet` (see
    /// [`zone::patch`]), on a blocking thread; `None` when a full build has to make it. The
    /// claim index of the served fleet is kept from one event to the next (made again after
    /// a full build, at the first event that needs it).
    pub(super) async fn patch_next(
        &mut self,
        fleet: &Fleet,
        previous: Option<Arc<Snapshot>>,
        moved: &BTreeSet<u32>,
    ) -> Option<(Snapshot, bool)> {
        let prev = previous?;
        if let Some(indexing) = self.indexing.take() {
            match indexing.await {
                Ok(made) => self.claims = Some(made),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        let index = (self.claims.take())
            .filter(|(of, _)| Arc::ptr_eq(of, &prev.fleet))
            .map(|(_, index)| index);
        let (config, fleet, moved) = (self.config.clone(), fleet.clone(), moved.clone());
        let made = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let limits = zone::naming_limits(&config.zone);
            let rules = &config.naming;
            let mut index = index.unwrap_or_else(|| Indexes::new(&prev.fleet, &config));
            let empty = naming::Slots::new();
            let slots = if remembers_slots(&config) {
                &prev.slots
            } else {
                &empty
            };
            let delta = naming::delta::rename(
                &mut index.claims,
                &prev.fleet,
                &fleet,
                &moved,
                rules,
                &limits,
                slots,
            );
            index.addresses.update(&prev.fleet, &fleet, &moved);
            let patched = zone::patch(
                &prev,
                &config.zone,
                &config.views,
                rules,
                &fleet,
                &delta,
                &moved,
                &index.addresses,
            );
            (fleet, index, patched, started.elapsed())
        })
        .await;
        let (fleet, index, patched, took) = match made {
            Ok(made) => made,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return None,
        };
        self.building += took;
        self.claims = Some((fleet, index));
        if patched.is_some() {
            self.stats.patches.fetch_add(1, Ordering::Relaxed);
            self.stats.build_patch.observe(took);
        }
        patched
    }

    /// Starts making the claim index of a served fleet that has none, when EC2 events will
    /// change it: off the loop, so the first event need not wait for all of it.
    pub(super) fn index_soon(&mut self, fleet: &Fleet) {
        let indexed = (self.claims.as_ref()).is_some_and(|(of, _)| Arc::ptr_eq(of, fleet));
        if self.config.inventory.source.events().is_none() || indexed {
            return;
        }
        let (config, fleet) = (self.config.clone(), fleet.clone());
        self.claims = None;
        self.indexing = Some(tokio::task::spawn_blocking(move || {
            let index = Indexes::new(&fleet, &config);
            (fleet, index)
        }));
    }
}
