//! What a sync needs of a DNS service that keeps zones: a zone's name, its record sets, and
//! batches of changes applied within the service's limits (after external-dns's `Provider`).
//! Route 53 ([`super::route53`]) is the first; another service is one file implementing
//! [`Provider`] and one `kind` in the config. Planning, ownership, bisecting a refused batch
//! and the counts are the sync's, the same for every provider.

use std::future::Future;

use super::PublishError;
use hickory_proto::rr::RecordType;

use super::plan::{Change, RecordSet};

/// What the zone is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneInfo {
    /// Its name, absolute and lower case (`internal.`).
    pub name: String,
    /// Answered only inside its networks (a Route 53 private zone).
    pub private: bool,
    /// How many record sets the zone may hold, when the service says (Route 53's
    /// GetHostedZoneLimit); else [`DEFAULT_RECORD_LIMIT`] is assumed.
    pub record_limit: Option<u64>,
}

/// Route 53's default quota of record sets per hosted zone.
pub const DEFAULT_RECORD_LIMIT: u64 = 10_000;

/// How much one batch may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Resource records (an update counts its old and new records).
    pub records: usize,
    /// Characters of record data.
    pub chars: usize,
}

/// Calls made to the provider, for the report and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// Every call.
    pub made: u64,
    /// Calls tried again (throttled, busy, a server error).
    pub retried: u64,
    /// Calls the provider throttled.
    pub throttled: u64,
}

/// One zone of a DNS service, as a sync uses it.
pub trait Provider {
    /// The zone's name and whether it is private.
    fn info(&mut self) -> impl Future<Output = Result<ZoneInfo, PublishError>> + Send;

    /// Every record set the zone holds, its own (SOA, NS) included.
    fn list(&mut self) -> impl Future<Output = Result<Vec<RecordSet>, PublishError>> + Send;

    /// Just these record sets, by (name, type), those the zone holds: what a sync reads back
    /// after a refused change rather than listing the zone.
    fn read(
        &mut self,
        keys: &[(String, RecordType)],
    ) -> impl Future<Output = Result<Vec<RecordSet>, PublishError>> + Send;

    /// Applies one batch, all of it or none: `Ok(Err(why))` when the provider refuses it as
    /// invalid (the sync then splits it until the refused change is alone).
    fn apply(
        &mut self,
        batch: &[Change],
    ) -> impl Future<Output = Result<Result<(), String>, PublishError>> + Send;

    /// How much one batch may hold.
    fn limits(&self) -> Limits;

    /// Calls made so far.
    fn calls(&self) -> Calls;
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::publish::plan::is_ownership;
    use crate::publish::{settings, sync_with};

    /// A zone kept in memory, the smallest provider: it refuses any batch that holds a change
    /// to `refused`, as Route 53 refuses an invalid change batch whole.
    struct Memory {
        sets: Vec<RecordSet>,
        refused: String,
        calls: Calls,
        batches: Vec<usize>,
        limit: Option<u64>,
    }

    impl Memory {
        fn new(refused: &str) -> Self {
            Self {
                sets: Vec::new(),
                refused: refused.into(),
                calls: Calls::default(),
                batches: Vec::new(),
                limit: None,
            }
        }
    }

    impl Provider for Memory {
        async fn info(&mut self) -> Result<ZoneInfo, PublishError> {
            self.calls.made += 1;
            Ok(ZoneInfo {
                name: "internal.".into(),
                private: true,
                record_limit: self.limit,
            })
        }

        async fn list(&mut self) -> Result<Vec<RecordSet>, PublishError> {
            self.calls.made += 1;
            Ok(self.sets.clone())
        }

        async fn read(
            &mut self,
            keys: &[(String, RecordType)],
        ) -> Result<Vec<RecordSet>, PublishError> {
            self.calls.made += keys.len() as u64;
            Ok((self.sets.iter())
                .filter(|s| keys.contains(&(s.name.clone(), s.rtype)))
                .cloned()
                .collect())
        }

        async fn apply(&mut self, batch: &[Change]) -> Result<Result<(), String>, PublishError> {
            self.calls.made += 1;
            if batch.iter().any(|c| c.set().name == self.refused) {
                return Ok(Err(format!("{} is refused", self.refused)));
            }
            for change in batch {
                let set = change.set();
                self.sets
                    .retain(|s| (&s.name, s.rtype) != (&set.name, set.rtype));
                if !matches!(change, Change::Delete(_)) {
                    self.sets.push(set.clone());
                }
            }
            self.batches.push(batch.len());
            Ok(Ok(()))
        }

        fn limits(&self) -> Limits {
            Limits {
                records: 10,
                chars: 32_000,
            }
        }

        fn calls(&self) -> Calls {
            self.calls
        }
    }

    /// The demo publishing its inside view to zone `Z1`, and its fleet.
    async fn demo_publishing() -> (crate::Config, Vec<crate::inventory::Instance>) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("config/demo.toml")).expect("demo");
        let text = format!(
            "{text}\n[[publish]]\nkind = \"route53\"\nview = \"inside\"\nhosted_zone_id = \"Z1\"\n"
        );
        let config =
            crate::Config::parse(&root.join("config/demo.toml"), &text).expect("valid config");
        let source = crate::inventory::Source::from_config(&config.inventory).await;
        let fleet = source.fetch().await.expect("demo fleet").instances;
        (config, fleet)
    }

    /// The sync is the provider's caller, whichever provider it is: the demo's inside view
    /// goes in within the provider's limits, the one change it refuses is quarantined, and
    /// a second sync has nothing to do.
    #[tokio::test]
    async fn any_provider_gets_the_plan_in_batches_within_its_limits() {
        let (config, fleet) = demo_publishing().await;
        let snapshot = crate::refresh::build_next(&config, &crate::inventory::fleet(fleet), None).0;
        let publish = &config.publish[0];
        let target = settings::Target {
            zone_id: "Z1".into(),
            reverse: false,
        };
        let mut zone = Memory::new("db1.internal.");
        let report = sync_with(&mut zone, publish, &target, &snapshot, false)
            .await
            .expect("sync");
        assert!(zone.batches.len() > 3, "{:?}", zone.batches);
        assert!(zone.batches.iter().all(|n| *n <= 10), "{:?}", zone.batches);
        assert_eq!(report.quarantined.len(), 1, "{:?}", report.quarantined);
        assert!(report.quarantined[0].contains("db1.internal."));
        assert_eq!(report.calls, zone.calls.made);
        let owned = zone.sets.iter().filter(|s| !is_ownership(s)).count();
        assert!(owned > 20, "{owned} record sets");
        let again = sync_with(&mut zone, publish, &target, &snapshot, false)
            .await
            .expect("sync");
        assert_eq!(again.sent(), 0, "only the refused change is left to send");
    }

    /// After a full sync, the next one starts from what it left: no listing, an update sent as
    /// DELETE and CREATE in one batch, and a refused change asks for a listing.
    #[tokio::test]
    async fn a_sync_from_the_last_known_state_lists_nothing() {
        use crate::publish::sync_known;
        let (config, fleet) = demo_publishing().await;
        let snapshot =
            crate::refresh::build_next(&config, &crate::inventory::fleet(fleet.clone()), None).0;
        let readdressed = |ip: [u8; 4]| {
            let mut changed = fleet.clone();
            let web2 = (changed.iter_mut())
                .find(|i| i.private_ip == Some(std::net::Ipv4Addr::new(10, 0, 2, 10)))
                .expect("the instance at 10.0.2.10");
            web2.private_ip = Some(ip.into());
            crate::refresh::build_next(&config, &crate::inventory::fleet(changed), None).0
        };
        let (publish, target) = (
            &config.publish[0],
            settings::Target {
                zone_id: "Z1".into(),
                reverse: false,
            },
        );
        let mut zone = Memory::new("nothing.");
        let (full, known) = sync_known(&mut zone, publish, &target, &snapshot, None, false)
            .await
            .expect("sync");
        assert!(full.listed && full.listing_calls == 2, "{full:?}");
        let known = known.expect("a full sync knows the zone");

        let calls = zone.calls.made;
        let next = readdressed([10, 0, 2, 99]);
        let (report, known) = sync_known(&mut zone, publish, &target, &next, Some(known), false)
            .await
            .expect("sync");
        assert_eq!(zone.calls.made - calls, 1, "one change call, no listing");
        assert!(!report.listed && !report.reconcile);
        let (c, u, d) = report.accepted;
        assert_eq!((c, u, d), (1, 0, 1), "the update as a DELETE and a CREATE");
        let web = zone
            .sets
            .iter()
            .find(|s| s.name == "web.internal." && s.values.len() == 2);
        assert_eq!(
            web.map(|s| s.values.clone()),
            Some(vec!["10.0.1.10".into(), "10.0.2.99".into()])
        );

        // A refused change: that record set and its ownership record are read back (two
        // calls, no listing), and the next sync plans it again from there; refused again, it
        // is left for the listing rather than read back for ever.
        zone.refused = "web.internal.".into();
        let moved = readdressed([10, 0, 2, 77]);
        let calls = zone.calls.made;
        let (refused, after) = sync_known(&mut zone, publish, &target, &moved, known, false)
            .await
            .expect("sync");
        assert!(refused.reconcile && refused.reread == 1, "{refused:?}");
        assert!(!refused.listed);
        assert_eq!(refused.listing_calls, 2, "the set and its ownership record");
        assert!(zone.calls.made - calls >= 3, "changes, then two reads");
        let again = after.expect("still known: only that set was read back");
        let (twice, after) = sync_known(&mut zone, publish, &target, &moved, Some(again), false)
            .await
            .expect("sync");
        assert!(!twice.reconcile && twice.reread == 0, "{twice:?}");
        assert_eq!(twice.quarantined.len(), 1);
        let calls = zone.calls.made;
        let (third, _) = sync_known(&mut zone, publish, &target, &moved, after, false)
            .await
            .expect("sync");
        assert_eq!(zone.calls.made, calls, "left for the listing: {third:?}");
    }

    /// A plan that takes the zone within a tenth of its quota is warned about before it is
    /// sent, ownership records counted; the zone's holding is counted after it.
    #[tokio::test]
    async fn a_zone_near_its_record_quota_is_warned_about() {
        let (config, fleet) = demo_publishing().await;
        let snapshot = crate::refresh::build_next(&config, &crate::inventory::fleet(fleet), None).0;
        let target = settings::Target {
            zone_id: "Z1".into(),
            reverse: false,
        };
        let mut roomy = Memory::new("nothing.");
        let report = sync_with(&mut roomy, &config.publish[0], &target, &snapshot, true)
            .await
            .expect("dry run");
        assert_eq!(report.record_limit, DEFAULT_RECORD_LIMIT);
        assert!(report.near_quota.is_none(), "{:?}", report.near_quota);
        let sets = report.plan.counts().0 as u64;
        for (limit, near) in [(sets, true), (sets * 10 / 9 + 1, false)] {
            let mut zone = Memory::new("nothing.");
            zone.limit = Some(limit);
            let report = sync_with(&mut zone, &config.publish[0], &target, &snapshot, false)
                .await
                .expect("sync");
            assert_eq!(report.near_quota.is_some(), near, "{limit}: {report:?}");
            assert_eq!(report.record_sets, zone.sets.len() as u64);
            assert_eq!(report.record_sets, sets, "every set created is held");
        }
    }
}
