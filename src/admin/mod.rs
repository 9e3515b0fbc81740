//! The admin HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, and the pages that show
//! names: `/` (the status page), `/names`, `/zone`, `/zones`.
//!
//! On their own listener (loopback by default), never on the DNS port. The pages that show
//! names (inside-only ones included) and the metrics and health endpoints each have a client
//! allowlist (see `access`), so Prometheus can scrape from a monitoring host while the names
//! stay with the operators.

mod access;
mod page;
mod why;

#[cfg(test)]
pub(crate) use access::AccessStats;
pub use why::{NotAName, why};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::Config;
use crate::config::AdminConfig;
use crate::metrics::CONTENT_TYPE;
use crate::refresh::RefreshStats;
use crate::telemetry::Report;
use crate::zone::SnapshotCell;

/// What the endpoints read.
#[derive(Clone)]
pub(crate) struct AdminState {
    /// The published snapshot.
    pub snapshot: SnapshotCell,
    /// The live config (replaced on reload).
    pub config: Arc<ArcSwap<Config>>,
    /// The refresh loop's counters, for `/readyz`.
    pub refresh: Arc<RefreshStats>,
    /// Publishing's counts, for `/readyz`.
    pub publish: Arc<crate::publish::PublishStats>,
    /// Every part that reports metrics, for `/metrics`.
    pub reports: Arc<[Arc<dyn Report>]>,
    /// The forwarder in service, for `/readyz`'s lines on the upstreams.
    pub forwarder: Arc<arc_swap::ArcSwapOption<crate::dns::Forwarder>>,
}

/// A running admin listener.
pub(crate) struct Admin {
    /// The address bound (port resolved when the config said 0).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Admin {
    /// Waits for the listener to finish after `shutdown` fired.
    pub(crate) async fn join(self) {
        let _ = self.task.await;
    }
}

/// Binds `[admin]`'s address and serves the endpoints until `shutdown`.
pub(crate) async fn start(
    settings: &AdminConfig,
    mut state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<Admin> {
    let addr = settings.listen;
    if settings.names_leave_host() {
        warn!(%addr, clients = ?settings.names_clients, "the admin pages that show names (inside-only ones too) may be read beyond this host");
    }
    let stats = Arc::new(access::AccessStats::default());
    let mut reports = state.reports.to_vec();
    reports.push(stats.clone());
    state.reports = reports.into();
    let list = |nets: &[ipnet::IpNet], group| access::Allowed {
        nets: nets.into(),
        group,
        stats: stats.clone(),
    };
    let health = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(from_fn_with_state(
            list(&settings.metrics_clients, access::Group::Metrics),
            access::guard,
        ));
    let pages = Router::new()
        .route("/", get(page::page))
        .route("/names", get(names))
        .route("/zone", get(zone))
        .route("/zones", get(zones))
        .layer(from_fn_with_state(
            list(&settings.names_clients, access::Group::Names),
            access::guard,
        ));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("failed to bind the admin listener {addr}: {e}"),
        )
    })?;
    let addr = listener.local_addr()?;
    let app = health.merge(pages).with_state(state);
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            warn!(%error, "the admin listener failed");
        }
    });
    tracing::info!(%addr, "admin endpoints on http://{addr}/ (status page, healthz, readyz, metrics, names, zone)");
    Ok(Admin { addr, task })
}

/// Alive: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: a snapshot is published and the inventory confirmed it within `max_stale`.
/// The served snapshot's content hash, worked out off the runtime the first time it is asked
/// for: a render of every zone (a few hundred milliseconds at 100,000 instances), paid once per
/// scrape that finds a new snapshot rather than by every publish, however many come between.
async fn hash_served(cell: &SnapshotCell) -> Option<Arc<crate::zone::Snapshot>> {
    let snapshot = cell.load()?;
    if snapshot.content_hash_known() {
        return Some(snapshot);
    }
    let hashed = snapshot.clone();
    let _ = tokio::task::spawn_blocking(move || hashed.content_hash()).await;
    Some(snapshot)
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let Some(snapshot) = hash_served(&s.snapshot).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no snapshot yet (the inventory has not answered)\n",
        )
            .into_response();
    };
    if s.refresh
        .empty_fleet
        .load(std::sync::atomic::Ordering::Relaxed)
        && !s.config.load().inventory.allow_empty_fleet
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the inventory returned no instances at the last refresh (serving \
                 serial {} with {} instances); check the filters, or set \
                 inventory.allow_empty_fleet\n",
                snapshot.serial, snapshot.instance_count
            ),
        )
            .into_response();
    }
    let age = s.refresh.age(SystemTime::now());
    let max_stale = s.config.load().inventory.max_stale;
    if let (Some(age), Some(max)) = (age, max_stale)
        && age > max
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the data is {}s old, past max_stale ({}s)\n",
                age.as_secs(),
                max.as_secs()
            ),
        )
            .into_response();
    }
    let age = age.map_or_else(
        || "not yet confirmed by the inventory".to_owned(),
        |a| format!("confirmed {}s ago", a.as_secs()),
    );
    // Route 53 zones are reported, not judged: DNS answers whatever publishing does.
    let mut text = format!(
        "ready: serial {}, content {:016x}, data {age}\n",
        snapshot.serial,
        snapshot.content_hash()
    );
    text.push_str(&s.publish.ready_lines());
    // Upstreams are reported, not judged either: our own names answer without them.
    if let Some(forwarder) = s.forwarder.load().as_deref() {
        text.push_str(&forwarder.ready_lines());
    }
    (StatusCode::OK, text).into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    hash_served(&s.snapshot).await;
    let reports: Vec<&dyn Report> = s.reports.iter().map(|r| &**r).collect();
    let text = crate::metrics::encode(crate::metrics::gather(&reports));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

#[derive(Deserialize)]
struct NamesQuery {
    view: Option<String>,
}

/// The published snapshot's view `view` (the first by default), or a response saying why not.
fn pick_view(
    snapshot: &Option<Arc<crate::zone::Snapshot>>,
    view: Option<&str>,
) -> Result<(Arc<crate::zone::Snapshot>, usize), (StatusCode, String)> {
    let Some(snapshot) = snapshot.clone() else {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n".into()));
    };
    let index = match view {
        Some(name) => snapshot.views.iter().position(|v| v.name == name),
        None => (!snapshot.views.is_empty()).then_some(0),
    };
    index.map(|i| (snapshot.clone(), i)).ok_or_else(|| {
        let known: Vec<&str> = snapshot.views.iter().map(|v| v.name.as_str()).collect();
        (
            StatusCode::NOT_FOUND,
            format!("no such view; the views are: {}\n", known.join(", ")),
        )
    })
}

#[derive(Deserialize)]
struct ZoneQuery {
    view: Option<String>,
    zone: Option<String>,
}

/// One zone of a view (the forward zone by default) as the master file a transfer carries:
/// what `stabledns zone --server` prints, so it can be diffed with what the inventory gives.
async fn zone(State(s): State<AdminState>, Query(q): Query<ZoneQuery>) -> Response {
    let (snapshot, i) = match pick_view(&s.snapshot.load(), q.view.as_deref()) {
        Ok(found) => found,
        Err(response) => return response.into_response(),
    };
    let view = &snapshot.views[i];
    let apex = match q.zone.as_deref().map(hickory_proto::rr::Name::from_ascii) {
        None => None,
        Some(Ok(name)) => Some(hickory_proto::rr::LowerName::from(name)),
        Some(Err(e)) => {
            return (StatusCode::BAD_REQUEST, format!("not a domain name: {e}\n")).into_response();
        }
    };
    match view.zone_file(apex.as_ref()) {
        Some(text) => ([(header::CONTENT_TYPE, "text/dns")], text).into_response(),
        None => {
            let apexes: Vec<String> = view.zone_apexes().map(ToString::to_string).collect();
            (
                StatusCode::NOT_FOUND,
                format!(
                    "view {} serves no such zone; it serves {}\n",
                    view.name,
                    apexes.join(", ")
                ),
            )
                .into_response()
        }
    }
}

/// Every view and the zones it serves, one `VIEW APEX` line each: what `stabledns diff`
/// walks.
async fn zones(State(s): State<AdminState>) -> Response {
    let Some(snapshot) = s.snapshot.load() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n").into_response();
    };
    let mut text = String::new();
    for view in &snapshot.views {
        for apex in view.zone_apexes() {
            text.push_str(&format!("{} {apex}\n", view.name));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

/// The current table of one view (the first by default), like `stabledns names`.
async fn names(State(s): State<AdminState>, Query(q): Query<NamesQuery>) -> Response {
    let (snapshot, i) = match pick_view(&s.snapshot.load(), q.view.as_deref()) {
        Ok(found) => found,
        Err(response) => return response.into_response(),
    };
    let view = &snapshot.views[i];
    let rows: Vec<serde_json::Value> = view
        .rows()
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "type": r.rtype.to_string(),
                "targets": r.targets,
                "instances": r.instances,
            })
        })
        .collect();
    axum::Json(serde_json::json!({
        "view": view.name,
        "serial": snapshot.serial,
        "instances": snapshot.instance_count,
        "names": rows,
    }))
    .into_response()
}
