//! The Prometheus exposition: at scrape time every part of the server writes its families
//! ([`crate::telemetry::Report`]), and this encodes them with `prometheus-client`. Late in the
//! data flow on purpose: it reads what the parts report, and none of them imports it.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::telemetry::{Families, Kind, Report, Rows};

/// The text format's content type (OpenMetrics 1.0, which Prometheus reads).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every family `reports` give, gathered in their order.
pub(crate) fn gather(reports: &[&dyn Report]) -> Families {
    let mut families = Families::default();
    for r in reports {
        r.report(&mut families);
    }
    families
}

/// The exposition text of `families`.
pub(crate) fn encode(families: Families) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Collected(families)));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// One scrape's families, owned (the exporter's collectors must be `'static`).
#[derive(Debug)]
struct Collected(Families);

type Result = std::result::Result<(), std::fmt::Error>;

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl prometheus_client::collector::Collector for Collected {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result {
        for family in &self.0.0 {
            match &family.rows {
                Rows::Values(kind, rows) => {
                    let t = match kind {
                        Kind::Counter => MetricType::Counter,
                        Kind::Gauge => MetricType::Gauge,
                    };
                    let mut m = e.encode_descriptor(family.name, family.help, None, t)?;
                    // A family's one value without labels: `{}` is never written.
                    if let [(labels, v)] = &rows[..]
                        && labels.is_empty()
                    {
                        match kind {
                            Kind::Counter => ConstCounter::new(*v).encode(m)?,
                            Kind::Gauge => ConstGauge::new(gauge_value(*v)).encode(m)?,
                        }
                        continue;
                    }
                    for (labels, v) in rows {
                        let f = m.encode_family(labels)?;
                        match kind {
                            Kind::Counter => ConstCounter::new(*v).encode(f)?,
                            Kind::Gauge => ConstGauge::new(gauge_value(*v)).encode(f)?,
                        }
                    }
                }
                Rows::Histograms(rows) => {
                    let t = MetricType::Histogram;
                    let mut m = e.encode_descriptor(family.name, family.help, None, t)?;
                    for (labels, (sum, count, buckets)) in rows {
                        if labels.is_empty() {
                            m.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                        } else {
                            m.encode_family(labels)?
                                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::Config;

    /// Every metric any part reports has a row in the README's metrics table, and every row
    /// there is a metric some part reports: a new metric is a field, a `report` line and one
    /// README row, and none of the three can be forgotten.
    #[tokio::test]
    async fn every_metric_is_the_readme_s_and_the_readme_s_are_every_metric() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = Config::load(&root.join("config/demo.toml")).expect("demo");
        let source = crate::inventory::Source::from_config(&config.inventory).await;
        let fetched = source.fetch().await.expect("demo fleet");
        let cell = crate::zone::SnapshotCell::default();
        let fleet = crate::inventory::fleet(fetched.instances);
        cell.store(crate::refresh::build_next(&config, &fleet, None).0);
        let forwarding = config.forwarding.as_ref().expect("the demo forwards");
        let forwarder = arc_swap::ArcSwapOption::from_pointee(
            crate::dns::Forwarder::new(forwarding, None).expect("forwarder"),
        );
        let publish = crate::publish::PublishStats::default();
        publish.record(
            "Z1",
            &Err(crate::publish::PublishError::Refused("test".into())),
        );
        let audit = crate::audit::stats::AuditStats::default();
        audit.record::<()>(&Ok(Vec::new()));
        let families = gather(&[
            &crate::dns::Metrics::default(),
            &crate::dns::udp::UdpStats::default(),
            &crate::dns::tcp::TcpStats::default(),
            &forwarder,
            &crate::dns::querylog::QueryLogStats::default(),
            &crate::telemetry::RefreshStats::default(),
            &crate::refresh::events::EventStats::default(),
            &cell,
            &publish,
            &audit,
            &crate::ReloadStats::default(),
            &crate::admin::AccessStats::default(),
        ]);
        let mut reported = families.exposed_names();
        // The data age is reported once the inventory has answered.
        reported.push("stabledns_data_age_seconds".into());
        reported.sort();
        reported.dedup();
        let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
        let mut listed: Vec<String> = readme
            .lines()
            .filter(|l| l.starts_with("| `stabledns_"))
            .flat_map(|l| {
                let first = l.split(" | ").next().unwrap_or_default();
                first
                    .split('`')
                    .filter(|w| w.starts_with("stabledns_"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        listed.sort();
        listed.dedup();
        assert!(listed.len() > 40, "the README's table: {listed:?}");
        assert_eq!(
            reported, listed,
            "reported (left) against the README's table (right)"
        );
    }
}
