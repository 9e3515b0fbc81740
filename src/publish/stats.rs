//! Publishing's counters, one set per hosted zone: kept by [`run`](super::run), read by
//! `/metrics` ([`Report`]) and `/readyz` ([`PublishStats::ready_lines`]).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Report as SyncReport;
use crate::telemetry::{Families, Kind, Report};

/// One hosted zone's publishing counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishCounts {
    /// Syncs that finished.
    pub syncs: u64,
    /// Syncs that failed (Route 53, or refused).
    pub failures: u64,
    /// Record sets created, updated and deleted (ownership records included).
    pub creates: u64,
    /// See `creates`.
    pub updates: u64,
    /// See `creates`.
    pub deletes: u64,
    /// ChangeResourceRecordSets calls accepted.
    pub batches: u64,
    /// Calls retried.
    pub retries: u64,
    /// Calls throttled.
    pub throttles: u64,
    /// Calls spent reading the zone (listings at reconciles).
    pub listing_calls: u64,
    /// Calls spent on changes (and their retries).
    pub change_calls: u64,
    /// Syncs that listed the zone.
    pub listings: u64,
    /// Changes refused alone and left out.
    pub quarantined: u64,
    /// Conflicts at the last sync.
    pub conflicts: u64,
    /// Record sets owned at the last sync.
    pub owned: u64,
    /// Record sets in the zone (everyone's) after the last sync.
    pub record_sets: u64,
    /// The zone's quota of record sets.
    pub record_limit: u64,
    /// Unix time of the last successful sync (0: never).
    pub last_success_unix: u64,
    /// Why the last sync failed, if it did.
    pub last_error: Option<String>,
}

impl PublishCounts {
    /// Adds a finished sync's report.
    pub(super) fn add(&mut self, report: &SyncReport) {
        let (creates, updates, deletes) = report.accepted;
        self.creates += creates as u64;
        self.updates += updates as u64;
        self.deletes += deletes as u64;
        self.syncs += 1;
        self.batches += report.batches as u64;
        self.retries += report.retries;
        self.throttles += report.throttles;
        self.listing_calls += report.listing_calls;
        self.change_calls += report.calls.saturating_sub(report.listing_calls);
        self.listings += u64::from(report.listed);
        self.quarantined += report.quarantined.len() as u64;
        self.conflicts = report.plan.conflicts.len() as u64;
        self.owned = report.owned_after();
        self.record_sets = report.record_sets;
        self.record_limit = report.record_limit;
        self.last_success_unix = now_unix();
        self.last_error = None;
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every published zone's counts, by hosted zone id. Updated once per sync, so a lock is fine.
#[derive(Debug, Default)]
pub struct PublishStats(pub(super) Mutex<BTreeMap<String, PublishCounts>>);

impl PublishStats {
    /// Counts one sync of `zone` that finished, or failed.
    pub fn record(&self, zone: &str, result: &Result<SyncReport, super::PublishError>) {
        let Ok(mut zones) = self.0.lock() else {
            return;
        };
        let c = zones.entry(zone.to_owned()).or_default();
        match result {
            Ok(report) => c.add(report),
            Err(e) => {
                c.failures += 1;
                c.last_error = Some(e.to_string());
            }
        }
    }

    /// A copy of every zone's counts.
    pub fn zones(&self) -> BTreeMap<String, PublishCounts> {
        self.0.lock().map(|z| z.clone()).unwrap_or_default()
    }

    /// One line per zone for `/readyz`: reported, not judged (DNS answers whatever
    /// publishing does).
    pub fn ready_lines(&self) -> String {
        let now = now_unix();
        let mut text = String::new();
        for (zone, c) in self.zones() {
            let last = match c.last_success_unix {
                0 => "never synced".to_owned(),
                t => format!("synced {}s ago", now.saturating_sub(t)),
            };
            text.push_str(&format!(
                "publish {zone}: {last}, {} record sets owned, {} of the zone's quota of {} in use, \
                 {} conflicts, {} calls listing and {} changing",
                c.owned, c.record_sets, c.record_limit, c.conflicts, c.listing_calls, c.change_calls
            ));
            if let Some(error) = &c.last_error {
                text.push_str(&format!("; last sync failed: {error}"));
            }
            text.push('\n');
        }
        text
    }
}

/// One count of a zone's, read.
type Field = fn(&PublishCounts) -> u64;

impl Report for PublishStats {
    fn report(&self, out: &mut Families) {
        let zones = self.zones();
        if zones.is_empty() {
            return;
        }
        let zone = |z: &str| ("zone", z.to_owned());
        let per_zone = |f: Field| {
            (zones.iter())
                .map(|(z, c)| (vec![zone(z)], f(c)))
                .collect::<Vec<_>>()
        };
        let with = |key: &'static str, pairs: &[(&'static str, Field)]| {
            let mut rows = Vec::new();
            for (z, c) in &zones {
                for (value, f) in pairs {
                    rows.push((vec![zone(z), (key, (*value).to_owned())], f(c)));
                }
            }
            rows
        };
        let (counter, gauge) = (Kind::Counter, Kind::Gauge);
        out.values(
            "stabledns_publish_syncs",
            "Route 53 syncs by result",
            counter,
            with("result", &[("ok", |c| c.syncs), ("failed", |c| c.failures)]),
        );
        out.values(
            "stabledns_publish_changes",
            "Changes Route 53 accepted, by action (ownership records included)",
            counter,
            with(
                "action",
                &[
                    ("create", |c| c.creates),
                    ("update", |c| c.updates),
                    ("delete", |c| c.deletes),
                ],
            ),
        );
        out.values(
            "stabledns_publish_batches",
            "ChangeResourceRecordSets calls Route 53 accepted",
            counter,
            per_zone(|c| c.batches),
        );
        out.values(
            "stabledns_publish_calls",
            "Route 53 calls by what they were for: reading the zone (listing) or changing it",
            counter,
            with(
                "purpose",
                &[
                    ("listing", |c| c.listing_calls),
                    ("changes", |c| c.change_calls),
                ],
            ),
        );
        out.values(
            "stabledns_publish_listings",
            "Syncs that listed the whole zone (start, reconcile_interval, a refused change)",
            counter,
            per_zone(|c| c.listings),
        );
        out.values(
            "stabledns_publish_retries",
            "Route 53 calls retried (throttled, busy with a prior change, 5xx)",
            counter,
            per_zone(|c| c.retries),
        );
        out.values(
            "stabledns_publish_throttles",
            "Route 53 calls throttled",
            counter,
            per_zone(|c| c.throttles),
        );
        out.values(
            "stabledns_publish_quarantined",
            "Changes Route 53 refused alone, left out (the rest went through)",
            counter,
            per_zone(|c| c.quarantined),
        );
        out.values(
            "stabledns_publish_conflicts",
            "Names wanted that records stabledns does not own hold, at the last sync",
            gauge,
            per_zone(|c| c.conflicts),
        );
        out.values(
            "stabledns_publish_owned_record_sets",
            "Record sets stabledns owned in the zone at the last sync",
            gauge,
            per_zone(|c| c.owned),
        );
        out.values(
            "stabledns_publish_zone_record_sets",
            "Record sets in the zone after the last sync, everyone's, ownership records included",
            gauge,
            per_zone(|c| c.record_sets),
        );
        out.values(
            "stabledns_publish_zone_record_limit",
            "The zone's quota of record sets (GetHostedZoneLimit; Route 53's default 10,000 \
             when it cannot be read)",
            gauge,
            per_zone(|c| c.record_limit),
        );
        out.values(
            "stabledns_publish_last_success_timestamp_seconds",
            "Unix time of the last successful Route 53 sync (0: never)",
            gauge,
            per_zone(|c| c.last_success_unix),
        );
    }
}
