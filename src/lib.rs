//! stabledns: an authoritative DNS server that gives EC2 fleets names that survive instance
//! replacement.
//!
//! Data flows one way, and the modules are listed in that order:
//!
//! - [`config`]: the TOML file, validated once into rich types.
//! - [`inventory`]: the fleet as a list of [`inventory::Instance`] (the EC2 API or a file).
//! - [`naming`]: a pure function from instances and rules to host names.
//! - [`view`]: which answers a client gets, by its source address (split horizon).
//! - [`zone`]: an immutable [`zone::Snapshot`] of every answer, published by atomic swap.
//! - [`dns`]: the hickory-server request handler and sockets that answer from the snapshot,
//!   and the forwarder for names outside our zones.
//! - [`refresh`]: the loop that ties them together: fetch → name → build → swap.
//! - [`state`]: the last published fleet on disk, so a restart answers before the API does.
//!
//! Goals: answers are lookups in a precomputed snapshot (never a scan, never a lock); a failed
//! refresh never loses a name already served; bad input gets a clear error or a clean RCODE.

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub mod config;
pub mod dns;
pub mod inventory;
pub mod naming;
pub mod refresh;
pub mod state;
pub mod view;
pub mod zone;

pub use config::Config;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The first inventory load failed, so there is nothing to serve.
    #[error("failed to load the inventory from {source_name}: {error}")]
    FirstLoad {
        /// Where the fleet was to come from.
        source_name: String,
        /// Why it failed.
        error: inventory::InventoryError,
    },
    /// A listen address could not be bound.
    #[error("failed to listen")]
    Bind(#[from] std::io::Error),
    /// The upstream resolvers could not be set up.
    #[error(transparent)]
    Forward(#[from] dns::forward::ForwardError),
}

/// A started server: sockets bound, refresh loop running.
pub struct Running {
    dns: dns::DnsServer,
    forwarder: Option<Arc<dns::Forwarder>>,
    refresh: JoinHandle<()>,
    shutdown: CancellationToken,
    /// The published snapshot, shared with the handler.
    pub snapshot: zone::SnapshotCell,
    /// The refresh loop's counters.
    pub stats: Arc<refresh::RefreshStats>,
}

impl Running {
    /// The addresses bound (ports resolved when the config said 0).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.dns.addrs
    }

    /// UDP queries answered by the fast path and by the hickory handler so far.
    pub fn udp_counts(&self) -> (u64, u64) {
        let s = &self.dns.udp_stats;
        (
            s.fast.load(std::sync::atomic::Ordering::Relaxed),
            s.slow.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Whether the loop probe found that the upstreams send our queries back to us.
    pub fn forwarding_looped(&self) -> bool {
        self.forwarder.as_ref().is_some_and(|f| f.looped())
    }

    /// Stops the refresh loop and the sockets, letting in-flight answers finish.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        // The loop only ends by cancellation; a panic in it has been logged already.
        let _ = self.refresh.await;
        self.dns.shutdown().await
    }
}

/// Starts serving: the state file's fleet at once if there is one, then the inventory.
///
/// Start-up never waits on the EC2 API: an API outage at boot must not take DNS down. Until a
/// first snapshot exists, queries get SERVFAIL. A `file` inventory is read before binding, and
/// failing to read it with nothing else to serve is an error (a broken file is a config mistake).
pub async fn start(config: Config) -> Result<Running, Error> {
    let config = Arc::new(config);
    let source = inventory::Source::from_config(&config.inventory).await;
    let is_file = matches!(source, inventory::Source::File(_));
    let cell = zone::SnapshotCell::default();
    let mut refresher = refresh::Refresher::new(config.clone(), source, cell.clone());
    let from_state = refresher.load_state().await;
    // Whether the source itself was just read; the state file is only a stand-in for that.
    let mut fresh = false;
    if is_file {
        match refresher.refresh_once().await {
            Ok(_) => fresh = true,
            Err(error) if !from_state => {
                return Err(Error::FirstLoad {
                    source_name: refresher.source_name(),
                    error,
                });
            }
            Err(error) => tracing::warn!(%error, "serving the state file's fleet meanwhile"),
        }
    }
    let forwarder = match &config.forwarding {
        Some(f) => Some(Arc::new(dns::Forwarder::new(f)?)),
        None => None,
    };
    let stats = refresher.stats();
    let handler = dns::Handler::new(cell.clone())
        .with_forwarder(forwarder.clone())
        .with_stats(stats.clone());
    let dns = dns::bind(
        &config.server.listen,
        handler,
        config.server.tcp_idle_timeout,
        config.server.fast_path,
    )
    .await?;
    if let Some(forwarder) = forwarder.clone() {
        // After binding, so a loop through the upstreams can reach us.
        tokio::spawn(async move { forwarder.probe().await });
    }
    let shutdown = CancellationToken::new();
    info!(source = %refresher.source_name(), "refreshing the inventory every {:?}", config.inventory.refresh_interval);
    let refresh = tokio::spawn(refresher.run(fresh, shutdown.clone()));
    Ok(Running {
        dns,
        forwarder,
        refresh,
        shutdown,
        snapshot: cell,
        stats,
    })
}

/// Serves `config` until `shutdown` fires.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let running = start(config).await?;
    shutdown.cancelled().await;
    info!("shutting down");
    running.stop().await?;
    Ok(())
}
