//! The audit while serving (`inventory.audit_interval`): every interval, the firewall read
//! again and audited against the published fleet, its finding counts kept for `/metrics`.
//! The fleet is the snapshot's, so an audit costs the firewall's calls, not another
//! DescribeInstances walk.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Kind, Severity};
use crate::config::Config;
use crate::inventory::{Source, settings::SourceConfig};
use crate::telemetry::{AuditCounts, Metrics};
use crate::zone::SnapshotCell;

/// Every kind with the severity it is reported at, for counts that list each one.
const KINDS: [(Kind, Severity); 5] = [
    (Kind::Pinned, Severity::Medium),
    (Kind::Stale, Severity::High),
    (Kind::EphemeralPublic, Severity::High),
    (Kind::OpenAdmin, Severity::High),
    (Kind::Convention, Severity::Low),
];

/// Audits every `inventory.audit_interval` of the live config (`config()`, so a reload
/// changes it), from the first published snapshot on, until `shutdown`.
pub async fn run(
    config: impl Fn() -> Arc<Config>,
    cell: SnapshotCell,
    departed: crate::refresh::Departures,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let config = config();
        let SourceConfig::Ec2(ec2) = &config.inventory.source else {
            continue;
        };
        let Some(interval) = ec2.audit_interval else {
            continue;
        };
        if last.is_some_and(|at| at.elapsed() < interval) {
            continue;
        }
        let Some(snapshot) = cell.load() else {
            continue; // no fleet yet
        };
        last = Some(Instant::now());
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = audit(&config, &snapshot.fleet, &departed) => r,
        };
        let Ok(mut counts) = metrics.audit.lock() else {
            continue;
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
                info!(findings = findings.len(), "security-group audit finished");
            }
            Err(e) => {
                c.failures += 1;
                warn!("security-group audit failed: {e}; trying again in {interval:?}");
            }
        }
    }
}

/// One audit of the firewall against `fleet`, with the departures the refresh loop keeps.
async fn audit(
    config: &Config,
    fleet: &[crate::inventory::Instance],
    departed: &crate::refresh::Departures,
) -> Result<Vec<super::Finding>, String> {
    let Source::Ec2(source) = Source::from_config(&config.inventory).await else {
        return Err("the inventory source is not ec2".into());
    };
    let firewall = source.firewall().await.map_err(|e| e.to_string())?;
    // Stopped instances too: their addresses are still theirs (the served fleet has only the
    // named states). Should that read fail, the served fleet is what there is.
    let every = source.fetch_every_state().await;
    let fleet = every.as_ref().map_or(fleet, |f| f.instances.as_slice());
    let departed = departed.lock().map(|d| d.clone()).unwrap_or_default();
    Ok(super::findings(
        fleet,
        &firewall,
        &config.naming,
        &config.zone,
        &departed,
    ))
}
