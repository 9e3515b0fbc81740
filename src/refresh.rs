//! The refresh loop: fetch → name → build → swap, on a timer.
//!
//! The only code that calls inventory, naming and zone together. A failed fetch keeps the last
//! good snapshot serving; an unchanged fleet keeps its serial (secondaries and caches see no
//! churn); a changed one gets a serial that is both larger than the last and at least the
//! current Unix time, so it also moves forward across restarts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::inventory::{Instance, InventoryError, Source};
use crate::naming;
use crate::zone::{self, Snapshot, SnapshotCell, ViewPolicy};

/// Builds the snapshot a config and a fleet give, with `serial`.
pub fn build_snapshot(config: &Config, instances: &[Instance], serial: u32) -> Snapshot {
    let limits = zone::naming_limits(&config.zone);
    let names = naming::assign(instances, &config.naming, &limits);
    zone::build(&config.zone, &views(config), instances, &names, serial)
}

/// The views a config defines (one inside view until split horizon lands).
fn views(_config: &Config) -> Vec<ViewPolicy> {
    vec![ViewPolicy::inside()]
}

/// The next serial after `previous`: larger than it, and at least the Unix time.
pub fn next_serial(previous: Option<u32>, now: SystemTime) -> u32 {
    let clock = now
        .duration_since(UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0);
    match previous {
        Some(p) => clock.max(p.wrapping_add(1)),
        None => clock,
    }
}

/// Reads the fleet once and publishes it if the answers changed. Returns whether it published.
pub async fn refresh_once(
    config: &Config,
    source: &Source,
    cell: &SnapshotCell,
) -> Result<bool, InventoryError> {
    let instances = source.fetch().await?;
    let previous = cell.load();
    if let Some(prev) = &previous {
        let candidate = build_snapshot(config, &instances, prev.serial);
        if candidate.views == prev.views {
            return Ok(false);
        }
    }
    let serial = next_serial(previous.as_ref().map(|p| p.serial), SystemTime::now());
    let snapshot = build_snapshot(config, &instances, serial);
    publish(cell, snapshot, previous);
    Ok(true)
}

fn publish(cell: &SnapshotCell, snapshot: Snapshot, previous: Option<Arc<Snapshot>>) {
    for w in &snapshot.warnings {
        warn!("{w}");
    }
    info!(
        serial = snapshot.serial,
        previous_serial = previous.map(|p| p.serial),
        instances = snapshot.instance_count,
        names = snapshot.views.first().map_or(0, |v| v.name_count()),
        "published zone snapshot"
    );
    cell.store(snapshot);
}

/// Refreshes every `interval` until `shutdown`; failures are logged and the old snapshot stays.
pub async fn run(
    config: Arc<Config>,
    source: Source,
    cell: SnapshotCell,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = refresh_once(&config, &source, &cell).await {
            warn!(error = %e, "refresh failed; still serving the last good snapshot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_move_forward() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(next_serial(None, t), 1_800_000_000);
        assert_eq!(next_serial(Some(5), t), 1_800_000_000);
        // Two changes within a second, or a clock that went back: still forward.
        assert_eq!(next_serial(Some(1_800_000_000), t), 1_800_000_001);
        assert_eq!(next_serial(Some(1_900_000_000), t), 1_900_000_001);
    }
}
