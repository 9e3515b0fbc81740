//! The audit's counts while serving (`inventory.audit_interval`), for `/metrics`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Kind, Severity};
use crate::telemetry::{Families, Kind as MetricKind, Report};

/// Every kind with the severity it is reported at, for counts that list each one.
const KINDS: [(Kind, Severity); 5] = [
    (Kind::Pinned, Severity::Medium),
    (Kind::Stale, Severity::High),
    (Kind::EphemeralPublic, Severity::High),
    (Kind::OpenAdmin, Severity::High),
    (Kind::Convention, Severity::Low),
];

/// The audit's counts while serving.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditCounts {
    /// Audits that finished.
    pub runs: u64,
    /// Audits that failed (the API, mostly).
    pub failures: u64,
    /// Unix time of the last audit that finished (0: never).
    pub last_success_unix: u64,
    /// The last finished audit's findings by (kind, severity), every kind listed (0 when it
    /// found none), so an alert on one resolves when the finding is fixed.
    pub findings: Vec<(&'static str, &'static str, u64)>,
}

/// The counts, once `inventory.audit_interval` has run an audit; updated once per audit.
#[derive(Debug, Default)]
pub struct AuditStats(std::sync::Mutex<Option<AuditCounts>>);

impl AuditStats {
    /// Counts one audit that finished, or failed.
    pub fn record<E>(&self, result: &Result<Vec<super::Finding>, E>) {
        let Ok(mut counts) = self.0.lock() else {
            return;
        };
        let c = counts.get_or_insert_with(AuditCounts::default);
        match result {
            Ok(findings) => {
                c.runs += 1;
                c.last_success_unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                c.findings = KINDS
                    .iter()
                    .map(|(kind, severity)| {
                        let n = findings.iter().filter(|f| f.kind == *kind).count() as u64;
                        (kind.as_str(), severity.as_str(), n)
                    })
                    .collect();
            }
            Err(_) => c.failures += 1,
        }
    }
}

impl Report for AuditStats {
    fn report(&self, out: &mut Families) {
        let Some(c) = self.0.lock().ok().and_then(|c| c.clone()) else {
            return;
        };
        out.by(
            MetricKind::Counter,
            "stabledns_audit_runs",
            "Security-group audits run while serving, by result",
            "result",
            [("ok", c.runs), ("failed", c.failures)],
        );
        out.values(
            "stabledns_audit_findings",
            "Findings of the last security-group audit that finished, by kind",
            MetricKind::Gauge,
            (c.findings.iter())
                .map(|(kind, severity, n)| {
                    let labels = vec![
                        ("kind", (*kind).to_owned()),
                        ("severity", (*severity).to_owned()),
                    ];
                    (labels, *n)
                })
                .collect(),
        );
        out.gauge(
            "stabledns_audit_last_success_timestamp_seconds",
            "Unix time of the last security-group audit that finished (0: never)",
            c.last_success_unix,
        );
    }
}
