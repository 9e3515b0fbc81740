//! stabledns: an authoritative DNS server that gives EC2 fleets names that survive instance
//! replacement.
//!
//! Data flows one way, and the modules are listed in that order:
//!
//! - [`telemetry`]: a leaf: counter primitives and metric names every part may use.
//! - [`inventory`]: the fleet as a list of [`inventory::Instance`] (the EC2 API or a file).
//! - [`naming`]: a pure function from instances and rules to host names.
//! - [`view`]: which answers a client gets, by its source address (split horizon).
//! - [`zone`]: an immutable [`zone::Snapshot`] of every answer, published by atomic swap.
//! - [`dns`]: the hickory-server request handler and sockets that answer from the snapshot,
//!   and the forwarder for names outside our zones.
//! - [`refresh`]: the loop that ties them together: fetch → name → build → swap.
//! - [`state`]: the last published fleet on disk, so a restart answers before the API does.
//! - [`publish`]: a view's answers kept in sync in a Route 53 private hosted zone.
//! - [`audit`]: security-group rules that break when an instance is replaced.
//! - `metrics`: the Prometheus exposition, read from every part's counters; `admin`
//!   serves it with the health endpoints.
//! - [`config`]: the TOML file, validated once into the settings types the modules above own.
//! - `aws` (private): what the EC2 inventory and Route 53 publishing share about AWS.
//! - This file: [`Running`] (start, reload and stop). The `stabledns` binary (`main.rs`, with
//!   its own modules in `src/cli/`) parses arguments and prints; it holds no logic of its own.
//!
//! Goals: answers are lookups in a precomputed snapshot (never a scan, never a lock); a failed
//! refresh never loses a name already served; bad input gets a clear error or a clean RCODE.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub(crate) mod admin;
pub mod audit;
#[cfg(any(feature = "ec2", feature = "route53"))]
pub(crate) mod aws;
pub mod config;
pub mod dns;
pub mod inventory;
pub(crate) mod metrics;
pub mod naming;
pub mod publish;
pub mod refresh;
pub mod state;
pub mod telemetry;
pub mod view;
pub mod zone;

pub use admin::{NotAName, why};
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
    /// A TSIG key could not be used.
    #[error("{0}")]
    Key(String),
    /// The query log's writer thread could not start.
    #[error("failed to start the query log writer: {0}")]
    QueryLog(std::io::Error),
}

/// Why a reload was not applied (the old config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new upstreams could not be set up.
    #[error(transparent)]
    Forward(#[from] dns::forward::ForwardError),
    /// A TSIG key could not be used.
    #[error("{0}")]
    Key(String),
    /// The refresh loop has stopped (the server is shutting down).
    #[error("the server is shutting down")]
    Stopped,
}

/// How long a shutdown waits for in-flight TCP answers.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A started server: sockets bound, refresh loop running.
pub struct Running {
    dns: dns::DnsServer,
    forwarder: Arc<ArcSwapOption<dns::Forwarder>>,
    keys: Arc<ArcSwap<Vec<hickory_proto::rr::TSigner>>>,
    refresh: JoinHandle<()>,
    publisher: JoinHandle<()>,
    reloads: mpsc::Sender<Arc<Config>>,
    config: Arc<ArcSwap<Config>>,
    admin: Option<admin::Admin>,
    shutdown: CancellationToken,
    query_log: Arc<dns::QueryLog>,
    /// The published snapshot, shared with the handler.
    pub snapshot: zone::SnapshotCell,
    /// The refresh loop's counters.
    pub stats: Arc<refresh::RefreshStats>,
    /// Query, latency, transfer and NOTIFY counters.
    pub metrics: Arc<dns::Metrics>,
    /// Config reloads applied and rejected.
    pub reload_stats: Arc<ReloadStats>,
    /// What became of the EC2 events read from SQS.
    pub event_stats: Arc<refresh::events::EventStats>,
    /// Publishing's counts per hosted zone.
    pub publish_stats: Arc<publish::PublishStats>,
}

/// Config reloads (SIGHUP), for the metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Applied.
    pub applied: std::sync::atomic::AtomicU64,
    /// Rejected: the old config keeps serving.
    pub rejected: std::sync::atomic::AtomicU64,
}

impl telemetry::Report for ReloadStats {
    fn report(&self, out: &mut telemetry::Families) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        out.by(
            telemetry::Kind::Counter,
            "stabledns_config_reloads",
            "Config reloads (SIGHUP) by result",
            "result",
            [
                ("applied", load(&self.applied)),
                ("rejected", load(&self.rejected)),
            ],
        );
    }
}

impl Running {
    /// The addresses bound (ports resolved when the config said 0).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.dns.addrs
    }

    /// The admin listener's address, when one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// UDP queries answered by the fast path and by the hickory handler so far.
    pub fn udp_counts(&self) -> (u64, u64) {
        let s = &self.dns.udp_stats;
        (
            s.fast.load(std::sync::atomic::Ordering::Relaxed),
            s.slow.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The TCP listener's counters.
    pub fn tcp_stats(&self) -> &dns::tcp::TcpStats {
        &self.dns.tcp_stats
    }

    /// Forwarding failures so far for this reason.
    pub fn forward_failures(&self, why: dns::forward::Failure) -> u64 {
        self.forwarder
            .load()
            .as_ref()
            .map_or(0, |f| f.failures(why))
    }

    /// Whether the loop probe found that the upstreams send our queries back to us.
    pub fn forwarding_looped(&self) -> bool {
        self.forwarder.load().as_ref().is_some_and(|f| f.looped())
    }

    /// Applies a new config without dropping a query: views, rules, TTLs, SOA, upstreams,
    /// inventory and state file take effect at once (the snapshot is rebuilt from the fleet
    /// already fetched); the listeners and `server` settings need a restart and keep their
    /// old values (with a warning).
    pub async fn reload(&self, mut new: Config) -> Result<(), ReloadError> {
        let old = self.config.load_full();
        for section in old.restart_needed(&new) {
            warn!("reload: {section} changes need a restart; keeping the old values");
        }
        self.query_log.set(&new.log);
        new.server = old.server.clone();
        new.admin = old.admin.clone();
        new.log.dnstap = old.log.dnstap.clone();
        let keys = signers(&new.tsig_keys).map_err(ReloadError::Key)?;
        for w in &new.warnings {
            warn!("{w}");
        }
        if new.forwarding != old.forwarding {
            let forwarder = match &new.forwarding {
                Some(f) if f.forwards() => Some(Arc::new(dns::Forwarder::new(
                    f,
                    Some(self.query_log.clone()),
                )?)),
                _ => None,
            };
            if let Some(f) = forwarder.clone() {
                tokio::spawn(async move { f.probe().await });
            }
            self.forwarder.store(forwarder);
        }
        self.keys.store(Arc::new(keys));
        let new = Arc::new(new);
        self.reloads
            .send(new.clone())
            .await
            .map_err(|_| ReloadError::Stopped)?;
        self.config.store(new);
        Ok(())
    }

    /// Tells every loop to stop, without waiting for them: for a server dropped without
    /// [`Running::stop`] (a test that failed half-way), so its threads and sockets go.
    pub fn cancel(&self) {
        self.shutdown.cancel();
    }

    /// Stops accepting queries, lets in-flight TCP answers finish (for at most a few seconds),
    /// stops the refresh loop (which writes the state file) and the admin listener.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        let dns = tokio::time::timeout(SHUTDOWN_GRACE, self.dns.shutdown()).await;
        // The loops only end by cancellation; a panic in one has been logged already. A sync
        // cut short converges at the next start.
        let _ = self.refresh.await;
        let _ = self.publisher.await;
        // Every answer has been sent: what the log holds is complete.
        let log = self.query_log;
        let _ = tokio::task::spawn_blocking(move || log.close()).await;
        if let Some(admin) = self.admin {
            admin.join().await;
        }
        match dns {
            Ok(result) => result,
            Err(_) => {
                warn!("in-flight TCP answers did not finish within {SHUTDOWN_GRACE:?}");
                Ok(())
            }
        }
    }
}

/// Starts serving: the state file's fleet at once if there is one, then the inventory.
///
/// Start-up never waits on the EC2 API: an API outage at boot must not take DNS down. Until a
/// first snapshot exists, queries get SERVFAIL. A `file` inventory is read before binding, and
/// failing to read it with nothing else to serve is an error (a broken file is a config mistake).
pub async fn start(config: Config) -> Result<Running, Error> {
    let views: Vec<&str> = config.views.iter().map(|v| v.name.as_str()).collect();
    let listen: Vec<String> = config
        .server
        .listen
        .iter()
        .map(ToString::to_string)
        .collect();
    info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config.path.display(),
        zone = %config.zone.apex,
        views = %views.join(","),
        listen = %listen.join(","),
        "starting stabledns {}",
        env!("CARGO_PKG_VERSION")
    );
    for w in &config.warnings {
        warn!("{w}");
    }
    match refresh::slot_mode(&config) {
        (text, true) => warn!("{text}"),
        (text, false) => info!("{text}"),
    }
    let keys = Arc::new(ArcSwap::from_pointee(
        signers(&config.tsig_keys).map_err(Error::Key)?,
    ));
    let config = Arc::new(config);
    let metrics = Arc::new(dns::Metrics::default());
    let source = inventory::Source::from_config(&config.inventory).await;
    let is_file = matches!(source, inventory::Source::File(_));
    let cell = zone::SnapshotCell::default();
    let mut refresher =
        refresh::Refresher::new(config.clone(), source, cell.clone()).with_metrics(metrics.clone());
    let from_state = refresher.load_state().await;
    // Whether the source itself was just read; the state file is only a stand-in for that.
    let mut fresh = false;
    // Secondaries hear of the serial once they can transfer it: after binding.
    refresher.set_notify(false);
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
    let query_log = Arc::new(dns::QueryLog::start(&config.log).map_err(Error::QueryLog)?);
    let forwarder = match &config.forwarding {
        Some(f) if f.forwards() => Some(Arc::new(dns::Forwarder::new(f, Some(query_log.clone()))?)),
        _ => None,
    };
    let forwarder = Arc::new(ArcSwapOption::new(forwarder));
    let stats = refresher.stats();
    let handler = dns::Handler::new(cell.clone())
        .with_query_log(query_log.clone())
        .with_forwarder(forwarder.clone())
        .with_stats(stats.clone())
        .with_metrics(metrics.clone())
        .with_keys(keys.clone())
        .with_chaos(config.server.chaos.clone());
    let dns = dns::bind(
        &config.server.listen,
        handler,
        dns::tcp::Limits {
            max_connections: config.server.max_tcp_connections,
            max_per_client: config.server.max_tcp_connections_per_client,
            idle_timeout: config.server.tcp_idle_timeout,
        },
        config.server.fast_path,
    )
    .await?;
    if let Some(forwarder) = forwarder.load_full() {
        // After binding, so a loop through the upstreams can reach us.
        tokio::spawn(async move { forwarder.probe().await });
    }
    refresher.set_notify(true);
    refresher.announce_served();
    let shutdown = CancellationToken::new();
    let live = Arc::new(ArcSwap::new(config.clone()));
    let publish_stats = Arc::new(publish::PublishStats::default());
    let audit_stats = Arc::new(audit::stats::AuditStats::default());
    let reload_stats = Arc::new(ReloadStats::default());
    let admin = match &config.admin {
        Some(a) => {
            let reports: Vec<Arc<dyn telemetry::Report>> = vec![
                metrics.clone(),
                dns.udp_stats.clone(),
                dns.tcp_stats.clone(),
                forwarder.clone(),
                query_log.stats.clone(),
                stats.clone(),
                refresher.event_stats(),
                Arc::new(cell.clone()),
                publish_stats.clone(),
                audit_stats.clone(),
                reload_stats.clone(),
            ];
            let state = admin::AdminState {
                snapshot: cell.clone(),
                config: live.clone(),
                refresh: stats.clone(),
                publish: publish_stats.clone(),
                reports: reports.into(),
                forwarder: forwarder.clone(),
            };
            Some(admin::start(a, state, shutdown.clone()).await?)
        }
        None => None,
    };
    info!(source = %refresher.source_name(), "refreshing the inventory every {:?}", config.inventory.refresh_interval);
    let (reloads, reload_rx) = mpsc::channel(4);
    #[cfg(feature = "ec2")]
    let departures = refresher.departures();
    let event_stats = refresher.event_stats();
    let refresh = tokio::spawn(refresher.run(fresh, reload_rx, shutdown.clone()));
    let publisher = spawn_publisher(&live, &stats, &cell, &publish_stats, &shutdown);
    #[cfg(feature = "ec2")]
    {
        let live = live.clone();
        tokio::spawn(audit::watch::run(
            move || live.load_full(),
            cell.clone(),
            departures,
            audit_stats,
            shutdown.clone(),
        ));
    }
    Ok(Running {
        dns,
        forwarder,
        keys,
        refresh,
        publisher,
        reloads,
        config: live,
        admin,
        shutdown,
        query_log,
        snapshot: cell,
        stats,
        metrics,
        reload_stats,
        event_stats,
        publish_stats,
    })
}

/// The publisher: it reads the live config each round, so a reload adds, changes or drops
/// zones, and it waits for the inventory's first answer (`stats`).
fn spawn_publisher(
    live: &Arc<ArcSwap<Config>>,
    stats: &Arc<refresh::RefreshStats>,
    cell: &zone::SnapshotCell,
    publish_stats: &Arc<publish::PublishStats>,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let (live, confirmed) = (live.clone(), stats.clone());
    tokio::spawn(publish::run(
        move || live.load().publish.clone(),
        move || {
            confirmed
                .successes
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        },
        cell.clone(),
        publish_stats.clone(),
        shutdown.clone(),
    ))
}

/// Keeps the `[[publish]]` Route 53 zones in sync with the inventory, serving no DNS: the
/// refresh loop and the publisher, nothing else (no listeners, no NOTIFY). Each message on
/// `reloads` is a new config (an `Err` is one that failed to load, logged, the old kept).
pub async fn run_publisher(
    config: Config,
    mut reloads: mpsc::Receiver<Result<Config, String>>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    for w in &config.warnings {
        warn!("{w}");
    }
    let config = Arc::new(config);
    let source = inventory::Source::from_config(&config.inventory).await;
    let cell = zone::SnapshotCell::default();
    let refresher = refresh::Refresher::new(config.clone(), source, cell.clone()).without_notify();
    let stats = refresher.stats();
    let live = Arc::new(ArcSwap::new(config.clone()));
    let (to_refresh, reload_rx) = mpsc::channel(4);
    info!(
        zones = config.publish.len(),
        "publishing to Route 53 only; no DNS listeners"
    );
    let refresh = tokio::spawn(refresher.run(false, reload_rx, shutdown.clone()));
    let publish_stats = Arc::default();
    let publisher = spawn_publisher(&live, &stats, &cell, &publish_stats, &shutdown);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            next = reloads.recv() => match next {
                Some(Ok(config)) => {
                    let config = Arc::new(config);
                    live.store(config.clone());
                    if to_refresh.send(config).await.is_err() {
                        break;
                    }
                    info!("reloaded the config");
                }
                Some(Err(error)) => {
                    tracing::error!("reload rejected; still using the old config: {error}");
                }
                None => shutdown.cancelled().await,
            },
        }
    }
    info!("shutting down");
    let _ = refresh.await;
    let _ = publisher.await;
    info!("stopped; the Route 53 zones keep what was last synced");
    Ok(())
}

/// The TSIG signers of the configured keys.
fn signers(keys: &[config::TsigKeyConfig]) -> Result<Vec<hickory_proto::rr::TSigner>, String> {
    keys.iter().map(config::TsigKeyConfig::signer).collect()
}

/// Serves `config` until `shutdown` fires; each message on `reloads` is a new config to apply
/// (an `Err` is a config that failed to load, counted and logged, the old one kept).
pub async fn run(
    config: Config,
    mut reloads: mpsc::Receiver<Result<Config, String>>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let running = start(config).await?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            next = reloads.recv() => match next {
                Some(Ok(config)) => match running.reload(config).await {
                    Ok(()) => {
                        running.reload_stats.applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        info!("reloaded the config");
                    }
                    Err(error) => {
                        running.reload_stats.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(%error, "reload rejected; still serving the old config");
                    }
                },
                Some(Err(error)) => {
                    running.reload_stats.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!("reload rejected; still serving the old config: {error}");
                }
                None => shutdown.cancelled().await,
            },
        }
    }
    info!("shutting down");
    running.stop().await?;
    info!("stopped");
    Ok(())
}
