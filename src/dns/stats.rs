//! What answering counts besides each view's queries (those are in
//! [`ViewTable`](crate::telemetry::ViewTable), which snapshots carry): latency by path, zone
//! transfers and NOTIFYs. Lives as long as the server, across snapshots and reloads.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::telemetry::{Families, Histogram, Kind, Report, ViewTable};

/// Transfers by (view, kind, outcome): (transfers, records sent).
type TransferCounts = BTreeMap<(String, &'static str, &'static str), (u64, u64)>;

/// The DNS side's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Queries by view, type and response code.
    pub views: ViewTable,
    /// Answers from precomputed bytes.
    pub fast_latency: Histogram,
    /// Answers through the hickory handler (UDP and TCP).
    pub handler_latency: Histogram,
    /// Rare, so a lock is fine.
    transfers: Mutex<TransferCounts>,
    /// NOTIFYs by (view, outcome).
    notifies: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    /// Counts one zone transfer (`kind` axfr/ixfr; `outcome` full, incremental, current,
    /// refused).
    pub fn count_transfer(
        &self,
        view: &str,
        kind: &'static str,
        outcome: &'static str,
        records: usize,
    ) {
        if let Ok(mut t) = self.transfers.lock() {
            let entry = t.entry((view.to_owned(), kind, outcome)).or_default();
            entry.0 += 1;
            entry.1 += records as u64;
        }
    }

    /// Counts one NOTIFY exchange (`outcome` acked or failed).
    pub fn count_notify(&self, view: &str, outcome: &'static str) {
        if let Ok(mut n) = self.notifies.lock() {
            *n.entry((view.to_owned(), outcome)).or_default() += 1;
        }
    }

    /// NOTIFY exchanges so far for a view with this outcome.
    pub fn notifies(&self, view: &str, outcome: &str) -> u64 {
        self.notifies.lock().map_or(0, |n| {
            (n.iter())
                .filter(|((v, o), _)| v == view && *o == outcome)
                .map(|(_, c)| *c)
                .sum()
        })
    }

    /// (transfers, records sent) so far with these labels.
    pub fn transfers(&self, view: &str, kind: &str, outcome: &str) -> (u64, u64) {
        self.transfers.lock().map_or((0, 0), |t| {
            (t.iter())
                .filter(|((v, k, o), _)| v == view && *k == kind && *o == outcome)
                .fold((0, 0), |acc, (_, n)| (acc.0 + n.0, acc.1 + n.1))
        })
    }
}

impl Report for Metrics {
    fn report(&self, out: &mut Families) {
        self.views.report(out);
        out.histograms(
            "stabledns_answer_duration_seconds",
            "Time from receiving a query to sending its answer, by path",
            vec![
                (vec![("path", "fast".into())], &self.fast_latency),
                (vec![("path", "handler".into())], &self.handler_latency),
            ],
        );
        let transfers = self.transfers.lock().map(|t| t.clone()).unwrap_or_default();
        let labels = |(view, kind, outcome): &(String, &'static str, &'static str)| {
            vec![
                ("view", view.clone()),
                ("kind", (*kind).to_owned()),
                ("outcome", (*outcome).to_owned()),
            ]
        };
        out.values(
            "stabledns_zone_transfers",
            "Zone transfers by view, kind (axfr, ixfr) and outcome",
            Kind::Counter,
            transfers.iter().map(|(k, n)| (labels(k), n.0)).collect(),
        );
        out.values(
            "stabledns_zone_transfer_records",
            "Records sent in zone transfers, by view, kind and outcome",
            Kind::Counter,
            transfers.iter().map(|(k, n)| (labels(k), n.1)).collect(),
        );
        let notifies = self.notifies.lock().map(|n| n.clone()).unwrap_or_default();
        out.values(
            "stabledns_notifies",
            "NOTIFY exchanges with secondaries by view and outcome (acked, failed)",
            Kind::Counter,
            (notifies.iter())
                .map(|((view, outcome), n)| {
                    (
                        vec![("view", view.clone()), ("outcome", (*outcome).to_owned())],
                        *n,
                    )
                })
                .collect(),
        );
    }
}
