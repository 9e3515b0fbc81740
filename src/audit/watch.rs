//! The audit while serving (`inventory.audit_interval`): every interval, the firewall read
//! again and audited against the published fleet, its finding counts kept for `/metrics`.
//! Instances are called by the names the served snapshot answers for them; [`audit`] is also
//! what `stabledns audit` runs.

use crate::inventory::Fleet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::stats::AuditStats;
use crate::config::Config;
use crate::inventory::{Source, settings::SourceConfig};
use crate::state::Departed;
use crate::zone::{Snapshot, SnapshotCell};

/// Audits every `inventory.audit_interval` of the live config (`config()`, so a reload
/// changes it), from the first published snapshot on, until `shutdown`.
pub async fn run(
    config: impl Fn() -> Arc<Config>,
    cell: SnapshotCell,
    departed: crate::refresh::Departures,
    stats: Arc<AuditStats>,
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
        let departed = departed.lock().map(|d| d.clone()).unwrap_or_default();
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = audit(&config, Names::Served(&snapshot), &departed) => r,
        };
        stats.record(&result);
        match result {
            Ok(findings) => info!(findings = findings.len(), "security-group audit finished"),
            Err(e) => warn!("security-group audit failed: {e}; trying again in {interval:?}"),
        }
    }
}

/// Which snapshot names the instances in an audit.
#[derive(Debug, Clone, Copy)]
pub enum Names<'a> {
    /// The one being served (`inventory.audit_interval`).
    Served(&'a Snapshot),
    /// The one the server would build from the fleet read now, after `previous` (the state
    /// file's): `stabledns audit`.
    Built(Option<&'a Snapshot>),
}

/// Why an audit did not run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit reads security groups, which only the EC2 API has.
    #[error("the audit reads security groups from the EC2 API; inventory.source is not \"ec2\"")]
    NotEc2,
    /// Reading the fleet or the firewall failed.
    #[error("failed to read {what} from {source_name}: {cause}")]
    Read {
        /// The fleet, or the security groups.
        what: &'static str,
        /// The source, as [`Source::describe`] gives it.
        source_name: String,
        /// What went wrong.
        cause: crate::inventory::InventoryError,
    },
}

/// One audit, as `serve` and `stabledns audit` both run it: the firewall read, the fleet in
/// every state (stopped instances keep their addresses; the served fleet has only the named
/// states), every instance called as `names` serves it, with `departed`.
pub async fn audit(
    config: &Config,
    names: Names<'_>,
    departed: &[Departed],
) -> Result<Vec<super::Finding>, AuditError> {
    let Source::Ec2(source) = Source::from_config(&config.inventory).await else {
        return Err(AuditError::NotEc2);
    };
    let read = |what| {
        let source_name = source.describe();
        move |cause| AuditError::Read {
            what,
            source_name,
            cause,
        }
    };
    let firewall = source
        .firewall()
        .await
        .map_err(read("the security groups"))?;
    let every = source.fetch_every_state().await;
    let fleet: Fleet = match (every, names) {
        (Ok(f), _) => crate::inventory::fleet(f.instances),
        // Serving, a failed read leaves the served fleet: the audit still runs.
        (Err(e), Names::Served(s)) => {
            warn!("the audit reads the served fleet: listing every state failed: {e}");
            s.fleet.clone()
        }
        (Err(e), Names::Built(_)) => return Err(read("the inventory")(e)),
    };
    let built;
    let snapshot = match names {
        Names::Served(s) => s,
        Names::Built(previous) => {
            built = crate::refresh::build_next(config, &fleet, previous).0;
            &built
        }
    };
    Ok(super::findings(
        &fleet,
        &firewall,
        &config.naming,
        snapshot,
        departed,
    ))
}
