//! Who may read what. The admin listener can leave loopback (Prometheus scrapes from a
//! monitoring host), but `/names`, `/zone` and the status page show every name, inside-only
//! ones included: they get an allowlist of their own, apart from the metrics and health
//! endpoints'. A client on neither list gets 403, never a partial page.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use crate::telemetry::{Families, Kind as MetricKind, Report};

/// Which allowlist guards a request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Group {
    /// `/metrics`, `/healthz`, `/readyz`.
    Metrics,
    /// Every page that shows names.
    Names,
}

/// Requests refused, by group.
#[derive(Debug, Default)]
pub(crate) struct AccessStats {
    refused: [AtomicU64; 2],
}

impl Report for AccessStats {
    fn report(&self, out: &mut Families) {
        out.by(
            MetricKind::Counter,
            "stabledns_admin_refused",
            "Admin requests refused (403) to a client off the allowlist, by endpoint group",
            "endpoints",
            [
                ("metrics", self.refused[0].load(Ordering::Relaxed)),
                ("names", self.refused[1].load(Ordering::Relaxed)),
            ],
        );
    }
}

/// One allowlist, shared by the requests it guards.
#[derive(Debug, Clone)]
pub(super) struct Allowed {
    pub(super) nets: Arc<[IpNet]>,
    pub(super) group: Group,
    pub(super) stats: Arc<AccessStats>,
}

impl Allowed {
    fn admits(&self, ip: IpAddr) -> bool {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

/// The guard in front of a group of routes: 403 for a client not on its list.
pub(super) async fn guard(
    State(allowed): State<Allowed>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if allowed.admits(peer.ip()) {
        next.run(request).await
    } else {
        allowed.stats.refused[allowed.group as usize].fetch_add(1, Ordering::Relaxed);
        (
            StatusCode::FORBIDDEN,
            format!(
                "{} may not read {}: see admin.metrics_clients and admin.names_clients\n",
                peer.ip().to_canonical(),
                request.uri().path()
            ),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdminConfig;

    #[test]
    fn a_list_admits_its_ranges_and_mapped_ipv4() {
        let list = |nets: Vec<IpNet>| Allowed {
            nets: nets.into(),
            group: Group::Names,
            stats: Default::default(),
        };
        let allowed = list(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(allowed.admits("10.1.2.3".parse().unwrap()));
        assert!(allowed.admits("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allowed.admits("192.0.2.1".parse().unwrap()));
        assert!(!list(Vec::new()).admits("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn only_a_range_beyond_loopback_lets_names_leave_the_host() {
        let mut config = AdminConfig::on("0.0.0.0:8053".parse().unwrap());
        assert!(!config.names_leave_host());
        config.names_clients = vec!["0.0.0.0/0".parse().unwrap()];
        assert!(config.names_leave_host());
        config.names_clients = vec!["10.0.0.0/16".parse().unwrap()];
        assert!(config.names_leave_host());
    }
}
