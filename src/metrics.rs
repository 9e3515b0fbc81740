//! The Prometheus exposition: reads, at scrape time, the counters every part keeps (refresh
//! loop, forwarder, UDP and TCP paths, snapshot, [`crate::telemetry`]) and encodes them with
//! `prometheus-client`. Late in the data flow on purpose: it imports what it measures, and
//! nothing it measures imports it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::{Metrics, names};

/// Everything `/metrics` reads, gathered at scrape time.
pub(crate) struct Exposition<'a> {
    /// Long-lived counters.
    pub metrics: &'a Metrics,
    /// The refresh loop's counters.
    pub refresh: &'a crate::refresh::RefreshStats,
    /// UDP answers (fast, handler).
    pub udp: (u64, u64),
    /// TCP: open, accepted, refused (all), refused (per client), closed idle.
    pub tcp: [u64; 5],
    /// Forwarding failures by reason ([`crate::dns::forward::Failure::ALL`]), when forwarding is
    /// configured.
    pub forward: Option<[u64; 5]>,
    /// Forwarded lookups in flight now.
    pub forward_in_flight: u64,
    /// The published snapshot.
    pub snapshot: Option<&'a crate::zone::Snapshot>,
    /// The query log's counters.
    pub query_log: &'a crate::dns::querylog::QueryLogStats,
}

/// The text format's content type (OpenMetrics 1.0, which Prometheus reads).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Exposition<'_> {
    /// The exposition text.
    pub(crate) fn encode(&self) -> String {
        let m = self.metrics;
        let r = self.refresh;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let views = m.views.read().map(|v| v.clone()).unwrap_or_default();
        let limited = views
            .iter()
            .map(|(n, c)| (n.clone(), c.limited()))
            .filter(|(_, (d, s))| d + s > 0)
            .collect();
        let mut queries = Vec::new();
        for (view, c) in views
            .iter()
            .map(|(n, c)| (n.as_str(), c))
            .chain([("", &m.unmatched)])
        {
            for (qtype, rcode, n) in c.totals() {
                queries.push((view.to_owned(), qtype, rcode, n));
            }
        }
        let sample = Sample {
            queries,
            limited,
            fast_latency: m.fast_latency.read(),
            handler_latency: m.handler_latency.read(),
            refresh_duration: m.refresh_duration.read(),
            udp: self.udp,
            tcp: self.tcp,
            forward_in_flight: self.forward_in_flight,
            query_log: {
                let q = self.query_log;
                [
                    load(&q.lines),
                    load(&q.lines_dropped),
                    load(&q.dnstap_sent),
                    load(&q.dnstap_dropped),
                    u64::from(q.dnstap_connected.load(Ordering::Relaxed)),
                ]
            },
            successes: load(&r.successes),
            failures: load(&r.failures),
            last_success: load(&r.last_success_unix_ms) / 1000,
            valve_trips: load(&r.valve_trips),
            empty_fleets: load(&r.empty_fleet_refusals),
            skipped: load(&r.skipped_instances),
            publishes: load(&r.publishes),
            builds: load(&r.builds),
            reloads: (load(&m.reloads_applied), load(&m.reloads_rejected)),
            forward: self.forward,
            names: self.snapshot.map_or_else(Vec::new, |s| {
                s.views
                    .iter()
                    .map(|v| (v.name.clone(), v.name_count() as u64, v.over_cap as u64))
                    .collect()
            }),
            published: self.snapshot.map(|s| (s.instance_count as u64, s.serial)),
            content: self.snapshot.map(|s| format!("{:016x}", s.content_hash())),
            rotation: self.snapshot.map(|s| s.rotation),
            slot_fixes: self.snapshot.map(|s| s.slot_fixes),
            slot_tags: [load(&r.slot_tags_written), load(&r.slot_tag_failures)],
            age: r.age(std::time::SystemTime::now()).map(|a| a.as_secs()),
            transfers: m
                .transfers
                .lock()
                .map(|t| {
                    t.iter()
                        .map(|((v, k, o), n)| (v.clone(), *k, *o, n.0, n.1))
                        .collect()
                })
                .unwrap_or_default(),
            notifies: m
                .notifies
                .lock()
                .map(|t| t.iter().map(|((v, o), n)| (v.clone(), *o, *n)).collect())
                .unwrap_or_default(),
            publish: m
                .publish
                .lock()
                .map(|p| p.iter().map(|(z, c)| (z.clone(), c.clone())).collect())
                .unwrap_or_default(),
            audit: m.audit.lock().ok().and_then(|a| a.clone()),
            events: {
                let e = &m.events;
                [
                    load(&e.applied),
                    load(&e.duplicate),
                    load(&e.stale),
                    load(&e.malformed),
                    load(&e.ignored),
                    load(&e.failed),
                    load(&e.receive_errors),
                    load(&e.delete_errors),
                ]
            },
        };
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(sample));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

type HistogramRead = (f64, u64, Vec<(f64, u64)>);

/// The numbers of one scrape, owned (the exporter's collectors must be `'static`).
#[derive(Debug)]
struct Sample {
    queries: Vec<(String, &'static str, &'static str, u64)>,
    limited: Vec<(String, (u64, u64))>,
    fast_latency: HistogramRead,
    handler_latency: HistogramRead,
    refresh_duration: HistogramRead,
    udp: (u64, u64),
    tcp: [u64; 5],
    forward_in_flight: u64,
    /// Lines written, dropped; dnstap messages sent, dropped; a collector connected.
    query_log: [u64; 5],
    successes: u64,
    failures: u64,
    last_success: u64,
    valve_trips: u64,
    empty_fleets: u64,
    skipped: u64,
    publishes: u64,
    builds: u64,
    reloads: (u64, u64),
    forward: Option<[u64; 5]>,
    names: Vec<(String, u64, u64)>,
    published: Option<(u64, u32)>,
    /// The published snapshot's content hash, in hex.
    content: Option<String>,
    rotation: Option<crate::naming::Rotation>,
    slot_fixes: Option<crate::naming::SlotFixes>,
    /// Slot tags written, CreateTags calls failed.
    slot_tags: [u64; 2],
    age: Option<u64>,
    transfers: Vec<(String, &'static str, &'static str, u64, u64)>,
    notifies: Vec<(String, &'static str, u64)>,
    publish: Vec<(String, crate::telemetry::PublishCounts)>,
    audit: Option<crate::telemetry::AuditCounts>,
    /// Events applied, duplicate, stale, malformed, ignored, failed; receive and delete
    /// errors.
    events: [u64; 8],
}

mod encode {
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    use super::{HistogramRead, Sample, names};

    type Result = std::result::Result<(), std::fmt::Error>;

    fn gauge_value(v: u64) -> i64 {
        i64::try_from(v).unwrap_or(i64::MAX)
    }

    fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> Result {
        ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
    }

    fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> Result {
        ConstGauge::new(gauge_value(v)).encode(e.encode_descriptor(
            name,
            help,
            None,
            MetricType::Gauge,
        )?)
    }

    /// A metric with labels: one row per label set.
    fn family(
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        kind: MetricType,
        rows: &[(Vec<(&str, &str)>, u64)],
    ) -> Result {
        debug_assert!(
            rows.iter().all(|(labels, _)| !labels.is_empty()),
            "{name}: a row without labels prints `{{}}`: use gauge() or counter()"
        );
        let mut m = e.encode_descriptor(name, help, None, kind)?;
        for (labels, v) in rows {
            let f = m.encode_family(labels)?;
            if matches!(kind, MetricType::Counter) {
                ConstCounter::new(*v).encode(f)?;
            } else {
                ConstGauge::new(gauge_value(*v)).encode(f)?;
            }
        }
        Ok(())
    }

    fn histogram(
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        rows: &[(Vec<(&str, &str)>, &HistogramRead)],
    ) -> Result {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, (sum, count, buckets)) in rows {
            // An empty label set would be written as `{}`.
            if labels.is_empty() {
                m.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
            } else {
                m.encode_family(labels)?
                    .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
            }
        }
        Ok(())
    }

    impl prometheus_client::collector::Collector for Sample {
        fn encode<'a>(&'a self, mut e: DescriptorEncoder<'_>) -> Result {
            let e = &mut e;
            let queries: Vec<_> = self
                .queries
                .iter()
                .map(|(view, qtype, rcode, n)| {
                    (
                        vec![
                            ("view", view.as_str()),
                            ("qtype", *qtype),
                            ("rcode", *rcode),
                        ],
                        *n,
                    )
                })
                .collect();
            family(
                e,
                names::QUERIES,
                "Queries answered, by view (empty: no view), query type and response code",
                MetricType::Counter,
                &queries,
            )?;
            let limited: Vec<_> = (self.limited.iter())
                .flat_map(|(view, (dropped, slipped))| {
                    [
                        (vec![("view", view.as_str()), ("action", "drop")], *dropped),
                        (vec![("view", view.as_str()), ("action", "slip")], *slipped),
                    ]
                })
                .collect();
            let help = "UDP answers over the view's rate limit: dropped, or sent truncated";
            family(e, names::RATE_LIMITED, help, MetricType::Counter, &limited)?;
            histogram(
                e,
                names::ANSWER_DURATION,
                "Time from receiving a query to sending its answer, by path",
                &[
                    (vec![("path", "fast")], &self.fast_latency),
                    (vec![("path", "handler")], &self.handler_latency),
                ],
            )?;
            family(
                e,
                names::UDP_QUERIES,
                "UDP queries by how they were answered",
                MetricType::Counter,
                &[
                    (vec![("path", "fast")], self.udp.0),
                    (vec![("path", "handler")], self.udp.1),
                ],
            )?;
            histogram(
                e,
                names::REFRESH_DURATION,
                "Time one refresh took: fetch, name, build, publish",
                &[(Vec::new(), &self.refresh_duration)],
            )?;
            let successes = "Refreshes whose inventory fetch succeeded";
            counter(e, names::REFRESH_SUCCESSES, successes, self.successes)?;
            let failures = "Refreshes whose inventory fetch failed";
            counter(e, names::REFRESH_FAILURES, failures, self.failures)?;
            let last = "Unix time of the last successful inventory fetch (0: never)";
            gauge(e, names::REFRESH_LAST_SUCCESS, last, self.last_success)?;
            let trips = "Refreshes held back by the safety valve";
            counter(e, names::VALVE_TRIPS, trips, self.valve_trips)?;
            let empty = "Refreshes that found no instances and were not published";
            counter(e, names::EMPTY_FLEETS, empty, self.empty_fleets)?;
            counter(e, names::PUBLISHES, "Snapshots published", self.publishes)?;
            let builds = "Snapshots built (a refresh that finds the served fleet builds none)";
            counter(e, names::BUILDS, builds, self.builds)?;
            let skipped = "Instances the last inventory read skipped as unusable";
            gauge(e, names::SKIPPED_INSTANCES, skipped, self.skipped)?;
            family(
                e,
                names::RELOADS,
                "Config reloads (SIGHUP) by result",
                MetricType::Counter,
                &[
                    (vec![("result", "applied")], self.reloads.0),
                    (vec![("result", "rejected")], self.reloads.1),
                ],
            )?;
            if let Some(failures) = self.forward {
                let rows: Vec<_> = crate::dns::forward::Failure::ALL
                    .iter()
                    .zip(failures)
                    .map(|((_, reason), n)| (vec![("reason", *reason)], n))
                    .collect();
                let help = "Forwarded lookups that failed, by reason";
                family(e, names::FORWARD_ERRORS, help, MetricType::Counter, &rows)?;
                let help = "Forwarded lookups waiting for the upstreams now";
                gauge(e, names::FORWARD_IN_FLIGHT, help, self.forward_in_flight)?;
            }
            let [lines, lines_dropped, sent, dropped, connected] = self.query_log;
            family(
                e,
                names::QUERY_LOG_LINES,
                "Query log lines, by outcome (dropped: the writer's queue was full)",
                MetricType::Counter,
                &[
                    (vec![("outcome", "written")], lines),
                    (vec![("outcome", "dropped")], lines_dropped),
                ],
            )?;
            family(
                e,
                names::DNSTAP_MESSAGES,
                "dnstap messages, by outcome (dropped: a full queue or no collector)",
                MetricType::Counter,
                &[
                    (vec![("outcome", "sent")], sent),
                    (vec![("outcome", "dropped")], dropped),
                ],
            )?;
            let help = "1 while a dnstap collector is connected";
            gauge(e, names::DNSTAP_CONNECTED, help, connected)?;
            let [open, accepted, refused, refused_client, idle] = self.tcp;
            gauge(e, names::TCP_OPEN, "TCP connections open now", open)?;
            counter(e, names::TCP_ACCEPTED, "TCP connections accepted", accepted)?;
            family(
                e,
                names::TCP_CLOSED,
                "TCP connections closed by a limit, by reason",
                MetricType::Counter,
                &[
                    (vec![("reason", "max_connections")], refused),
                    (vec![("reason", "per_client")], refused_client),
                    (vec![("reason", "idle")], idle),
                ],
            )?;
            let per_view = |value: fn(&(String, u64, u64)) -> u64| -> Vec<_> {
                self.names
                    .iter()
                    .map(|row| (vec![("view", row.0.as_str())], value(row)))
                    .collect()
            };
            let help = "Names with data, per view";
            family(e, names::NAMES, help, MetricType::Gauge, &per_view(|r| r.1))?;
            let help = "Records past max_records_per_rrset, left out of transfers, per view";
            family(
                e,
                names::OVER_CAP,
                help,
                MetricType::Gauge,
                &per_view(|r| r.2),
            )?;
            if let Some((instances, serial)) = self.published {
                let help = "Instances in the published snapshot's inventory";
                gauge(e, names::INSTANCES, help, instances)?;
                gauge(
                    e,
                    names::SERIAL,
                    "The published SOA serial",
                    u64::from(serial),
                )?;
            }
            if let Some(hash) = &self.content {
                family(
                    e,
                    names::ZONE_CONTENT,
                    "1, labelled with a hash of every view's zones without their serials: \
                     replicas serving the same data show the same hash",
                    MetricType::Gauge,
                    &[(vec![("hash", hash.as_str())], 1)],
                )?;
            }
            let [
                applied,
                duplicate,
                stale,
                malformed,
                ignored,
                failed,
                receive,
                delete,
            ] = self.events;
            family(
                e,
                names::EVENTS,
                "EC2 events read from SQS, by what became of them",
                MetricType::Counter,
                &[
                    (vec![("outcome", "applied")], applied),
                    (vec![("outcome", "duplicate")], duplicate),
                    (vec![("outcome", "stale")], stale),
                    (vec![("outcome", "malformed")], malformed),
                    (vec![("outcome", "ignored")], ignored),
                    (vec![("outcome", "failed")], failed),
                ],
            )?;
            family(
                e,
                names::EVENT_QUEUE_ERRORS,
                "SQS calls that failed",
                MetricType::Counter,
                &[
                    (vec![("op", "receive")], receive),
                    (vec![("op", "delete")], delete),
                ],
            )?;
            if let Some(r) = self.rotation {
                family(
                    e,
                    names::OUT_OF_ROTATION,
                    "Named instances out of their tiers' answers, by reason",
                    MetricType::Gauge,
                    &[
                        (vec![("reason", "drained")], u64::from(r.drained)),
                        (vec![("reason", "impaired")], u64::from(r.impaired)),
                    ],
                )?;
                let help = "Tiers whose every member is drained or impaired, answered in full";
                gauge(e, names::FAILING_OPEN, help, u64::from(r.failing_open))?;
            }
            if let Some(f) = self.slot_fixes {
                family(
                    e,
                    names::SLOTS_RENUMBERED,
                    "Tier members the last build renumbered, by why their number could not stay",
                    MetricType::Gauge,
                    &[
                        (vec![("reason", "duplicate")], u64::from(f.duplicate)),
                        (vec![("reason", "invalid")], u64::from(f.invalid)),
                        (vec![("reason", "above_size")], u64::from(f.above_size)),
                    ],
                )?;
            }
            let [written, failed] = self.slot_tags;
            family(
                e,
                names::SLOT_TAG_WRITES,
                "Slot tags written to the fleet (ok) and CreateTags calls that failed",
                MetricType::Counter,
                &[
                    (vec![("result", "ok")], written),
                    (vec![("result", "failed")], failed),
                ],
            )?;
            if let Some(age) = self.age {
                let help = "Seconds since the inventory last confirmed the published data";
                gauge(e, names::DATA_AGE, help, age)?;
            }
            let labels = |view: &'a str, kind, outcome| {
                vec![("view", view), ("kind", kind), ("outcome", outcome)]
            };
            let transfers: Vec<_> = (self.transfers.iter())
                .map(|(v, k, o, n, _)| (labels(v.as_str(), *k, *o), *n))
                .collect();
            let help = "Zone transfers by view, kind (axfr, ixfr) and outcome";
            family(e, names::TRANSFERS, help, MetricType::Counter, &transfers)?;
            let records: Vec<_> = (self.transfers.iter())
                .map(|(v, k, o, _, r)| (labels(v.as_str(), *k, *o), *r))
                .collect();
            let help = "Records sent in zone transfers, by view, kind and outcome";
            family(
                e,
                names::TRANSFER_RECORDS,
                help,
                MetricType::Counter,
                &records,
            )?;
            let notifies: Vec<_> = self
                .notifies
                .iter()
                .map(|(view, outcome, n)| {
                    (vec![("view", view.as_str()), ("outcome", *outcome)], *n)
                })
                .collect();
            let help = "NOTIFY exchanges with secondaries by view and outcome (acked, failed)";
            family(e, names::NOTIFIES, help, MetricType::Counter, &notifies)?;
            publish(e, &self.publish)?;
            audit(e, self.audit.as_ref())
        }
    }

    /// The security-group audit's families, once one has run.
    fn audit(e: &mut DescriptorEncoder<'_>, c: Option<&crate::telemetry::AuditCounts>) -> Result {
        let Some(c) = c else {
            return Ok(());
        };
        let runs = [
            (vec![("result", "ok")], c.runs),
            (vec![("result", "failed")], c.failures),
        ];
        let help = "Security-group audits run while serving, by result";
        family(e, names::AUDIT_RUNS, help, MetricType::Counter, &runs)?;
        let findings: Vec<_> = c
            .findings
            .iter()
            .map(|(kind, severity, n)| (vec![("kind", *kind), ("severity", *severity)], *n))
            .collect();
        let help = "Findings of the last security-group audit that finished, by kind";
        family(e, names::AUDIT_FINDINGS, help, MetricType::Gauge, &findings)?;
        let help = "Unix time of the last security-group audit that finished (0: never)";
        gauge(e, names::AUDIT_LAST_SUCCESS, help, c.last_success_unix)
    }

    /// The Route 53 families, one row per hosted zone.
    fn publish(
        e: &mut DescriptorEncoder<'_>,
        rows: &[(String, crate::telemetry::PublishCounts)],
    ) -> Result {
        if rows.is_empty() {
            return Ok(());
        }
        let per_zone = |f: fn(&crate::telemetry::PublishCounts) -> u64| -> Vec<_> {
            rows.iter()
                .map(|(z, c)| (vec![("zone", z.as_str())], f(c)))
                .collect()
        };
        let mut syncs = Vec::new();
        let mut changes = Vec::new();
        for (zone, c) in rows {
            let z = zone.as_str();
            syncs.push((vec![("zone", z), ("result", "ok")], c.syncs));
            syncs.push((vec![("zone", z), ("result", "failed")], c.failures));
            changes.push((vec![("zone", z), ("action", "create")], c.creates));
            changes.push((vec![("zone", z), ("action", "update")], c.updates));
            changes.push((vec![("zone", z), ("action", "delete")], c.deletes));
        }
        let counter = MetricType::Counter;
        let gauge = MetricType::Gauge;
        family(
            e,
            names::PUBLISH_SYNCS,
            "Route 53 syncs by result",
            counter,
            &syncs,
        )?;
        let help = "Changes Route 53 accepted, by action (ownership records included)";
        family(e, names::PUBLISH_CHANGES, help, counter, &changes)?;
        let help = "ChangeResourceRecordSets calls Route 53 accepted";
        family(
            e,
            names::PUBLISH_BATCHES,
            help,
            counter,
            &per_zone(|c| c.batches),
        )?;
        let help = "Route 53 calls retried (throttled, busy with a prior change, 5xx)";
        family(
            e,
            names::PUBLISH_RETRIES,
            help,
            counter,
            &per_zone(|c| c.retries),
        )?;
        let help = "Route 53 calls throttled";
        family(
            e,
            names::PUBLISH_THROTTLES,
            help,
            counter,
            &per_zone(|c| c.throttles),
        )?;
        let help = "Changes Route 53 refused alone, left out (the rest went through)";
        let rows = per_zone(|c| c.quarantined);
        family(e, names::PUBLISH_QUARANTINED, help, counter, &rows)?;
        let help = "Names wanted that records stabledns does not own hold, at the last sync";
        family(
            e,
            names::PUBLISH_CONFLICTS,
            help,
            gauge,
            &per_zone(|c| c.conflicts),
        )?;
        let help = "Record sets stabledns owned in the zone at the last sync";
        family(e, names::PUBLISH_OWNED, help, gauge, &per_zone(|c| c.owned))?;
        let help = "Unix time of the last successful Route 53 sync (0: never)";
        let rows = per_zone(|c| c.last_success_unix);
        family(e, names::PUBLISH_LAST_SUCCESS, help, gauge, &rows)?;
        Ok(())
    }
}
