//! What the server counts, and its Prometheus exposition.
//!
//! The query path only adds to atomics it already holds (a view's [`QueryCounters`], spread over
//! cache-line shards so the UDP threads do not fight over one line, and the latency
//! [`Histogram`]); nothing there takes a lock or looks up a label set. Everything else is read
//! from the counters the parts keep anyway (refresh loop, forwarder, UDP path, snapshot) when
//! `/metrics` is scraped, and encoded with `prometheus-client`. Metric names live in [`names`]
//! and nowhere else; the README lists them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Every exported metric's name, as given to the encoder (which appends `_total` to counters).
pub mod names {
    /// Counter {view, qtype, rcode}: queries answered.
    pub const QUERIES: &str = "stabledns_queries";
    /// Histogram {path}: time from receiving a query to sending its answer.
    pub const ANSWER_DURATION: &str = "stabledns_answer_duration_seconds";
    /// Counter {path}: UDP queries answered from precomputed bytes (`fast`) or by the handler.
    pub const UDP_QUERIES: &str = "stabledns_udp_queries";
    /// Histogram: how long one refresh (fetch, name, build, publish) took.
    pub const REFRESH_DURATION: &str = "stabledns_refresh_duration_seconds";
    /// Counter: refreshes whose fetch succeeded.
    pub const REFRESH_SUCCESSES: &str = "stabledns_refresh_successes";
    /// Counter: refreshes whose fetch failed.
    pub const REFRESH_FAILURES: &str = "stabledns_refresh_failures";
    /// Gauge: Unix time of the last successful fetch (0 = never).
    pub const REFRESH_LAST_SUCCESS: &str = "stabledns_refresh_last_success_timestamp_seconds";
    /// Gauge: instances the last inventory read skipped as unusable.
    pub const SKIPPED_INSTANCES: &str = "stabledns_inventory_skipped_instances";
    /// Counter: refreshes held back by the safety valve.
    pub const VALVE_TRIPS: &str = "stabledns_safety_valve_trips";
    /// Counter: refreshes that found no instances and were not published.
    pub const EMPTY_FLEETS: &str = "stabledns_empty_fleet_refusals";
    /// Counter: snapshots published.
    pub const PUBLISHES: &str = "stabledns_snapshots_published";
    /// Gauge {view}: names with data in each view.
    pub const NAMES: &str = "stabledns_names";
    /// Gauge {view}: records past `max_records_per_rrset`, left out of transfers (answers
    /// rotate them in).
    pub const OVER_CAP: &str = "stabledns_rrset_records_over_cap";
    /// Gauge: instances in the inventory of the published snapshot.
    pub const INSTANCES: &str = "stabledns_instances";
    /// Gauge: the published SOA serial.
    pub const SERIAL: &str = "stabledns_serial";
    /// Gauge: seconds since the inventory last confirmed the published data.
    pub const DATA_AGE: &str = "stabledns_data_age_seconds";
    /// Counter {view, action}: UDP answers over the view's rate limit (`drop`, `slip`).
    pub const RATE_LIMITED: &str = "stabledns_rate_limited";
    /// Gauge: TCP connections open now.
    pub const TCP_OPEN: &str = "stabledns_tcp_connections";
    /// Counter: TCP connections accepted.
    pub const TCP_ACCEPTED: &str = "stabledns_tcp_connections_accepted";
    /// Counter {reason}: TCP connections closed by a limit (`max_connections`, `per_client`,
    /// `idle`).
    pub const TCP_CLOSED: &str = "stabledns_tcp_connections_limited";
    /// Gauge: forwarded lookups waiting for the upstreams now.
    pub const FORWARD_IN_FLIGHT: &str = "stabledns_forward_in_flight";
    /// Counter {reason}: forwarded lookups that failed (`error`, `timeout`, `loop`, `limit`,
    /// `chase_budget`).
    pub const FORWARD_ERRORS: &str = "stabledns_forward_errors";
    /// Counter: config reloads applied, and rejected (`result`).
    pub const RELOADS: &str = "stabledns_config_reloads";
    /// Counter {view, kind, outcome}: zone transfers served or refused.
    pub const TRANSFERS: &str = "stabledns_zone_transfers";
    /// Counter {view, kind, outcome}: records sent in zone transfers.
    pub const TRANSFER_RECORDS: &str = "stabledns_zone_transfer_records";
    /// Counter {view, outcome}: NOTIFY exchanges with secondaries (acked or failed).
    pub const NOTIFIES: &str = "stabledns_notifies";
}

/// Query types counted by name; the rest are `other`.
const QTYPES: [(RecordType, &str); 12] = [
    (RecordType::A, "A"),
    (RecordType::AAAA, "AAAA"),
    (RecordType::CNAME, "CNAME"),
    (RecordType::NS, "NS"),
    (RecordType::SOA, "SOA"),
    (RecordType::PTR, "PTR"),
    (RecordType::MX, "MX"),
    (RecordType::TXT, "TXT"),
    (RecordType::SRV, "SRV"),
    (RecordType::ANY, "ANY"),
    (RecordType::AXFR, "AXFR"),
    (RecordType::IXFR, "IXFR"),
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;

/// Response codes counted by name; the rest are `other`.
const RCODES: [(u16, &str); 7] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (9, "NOTAUTH"),
];
const RCODE_SLOTS: usize = RCODES.len() + 1;

/// Shards per counter set: enough that the UDP threads of a small machine each get their own.
const SHARDS: usize = 8;

/// A counter slot for a query type.
pub fn qtype_slot(rtype: RecordType) -> usize {
    QTYPES
        .iter()
        .position(|(t, _)| *t == rtype)
        .unwrap_or(QTYPES.len())
}

/// A counter slot for a response code.
pub fn rcode_slot(rcode: ResponseCode) -> usize {
    rcode_code_slot(u16::from(rcode))
}

/// A counter slot for a response code's number.
pub fn rcode_code_slot(code: u16) -> usize {
    RCODES
        .iter()
        .position(|(c, _)| *c == code)
        .unwrap_or(RCODES.len())
}

/// One cache line (two, for adjacent-line prefetch) of counters per shard.
#[repr(align(128))]
#[derive(Debug)]
struct Shard([AtomicU64; QTYPE_SLOTS * RCODE_SLOTS]);

impl Default for Shard {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

thread_local! {
    /// This thread's shard, handed out round-robin.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

/// Queries by type and response code, for one view.
#[derive(Debug)]
pub struct QueryCounters {
    shards: Box<[Shard]>,
    /// UDP answers over the rate limit: (dropped, sent truncated).
    limited: [AtomicU64; 2],
}

impl Default for QueryCounters {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            limited: Default::default(),
        }
    }
}

impl QueryCounters {
    /// Counts a rate-limit verdict (answers within the rate are not counted here).
    pub fn count_limited(&self, verdict: crate::dns::rrl::Verdict) {
        let i = match verdict {
            crate::dns::rrl::Verdict::Allow => return,
            crate::dns::rrl::Verdict::Drop => 0,
            crate::dns::rrl::Verdict::Slip => 1,
        };
        self.limited[i].fetch_add(1, Ordering::Relaxed);
    }

    /// (dropped, truncated) answers over the rate limit so far.
    pub fn limited(&self) -> (u64, u64) {
        let [d, s] = &self.limited;
        (d.load(Ordering::Relaxed), s.load(Ordering::Relaxed))
    }

    /// Counts one answer; `qtype` and `rcode` from [`qtype_slot`] and [`rcode_slot`].
    pub fn count(&self, qtype: usize, rcode: usize) {
        let shard = SHARD.with(|s| *s);
        if let Some(c) = self
            .shards
            .get(shard)
            .and_then(|s| s.0.get(qtype * RCODE_SLOTS + rcode))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one answer by type and code.
    pub fn count_answer(&self, rtype: RecordType, rcode: ResponseCode) {
        self.count(qtype_slot(rtype), rcode_slot(rcode));
    }

    /// The totals over all shards, with their label values; zero rows left out.
    fn totals(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut rows = Vec::new();
        for q in 0..QTYPE_SLOTS {
            for r in 0..RCODE_SLOTS {
                let n: u64 = self
                    .shards
                    .iter()
                    .map(|s| s.0[q * RCODE_SLOTS + r].load(Ordering::Relaxed))
                    .sum();
                if n > 0 {
                    let qtype = QTYPES.get(q).map_or("other", |(_, name)| name);
                    let rcode = RCODES.get(r).map_or("other", |(_, name)| name);
                    rows.push((qtype, rcode, n));
                }
            }
        }
        rows
    }
}

/// A view's counters as the snapshot carries them: shared across snapshots by view name, and
/// never part of a snapshot's equality (a rebuild with new counts is still the same zone).
#[derive(Debug, Clone, Default)]
pub struct ViewCounters(pub Arc<QueryCounters>);

impl PartialEq for ViewCounters {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 15] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// A latency histogram of atomics.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records `n` observations of `d` each (a batch of datagrams answered together).
    pub fn observe_n(&self, d: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(n, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns
            .fetch_add(ns.saturating_mul(n), Ordering::Relaxed);
    }

    /// One observation.
    pub fn observe(&self, d: Duration) {
        self.observe_n(d, 1);
    }

    /// (sum in seconds, count, per-bucket counts with upper bounds).
    fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(counts.iter().copied()).collect();
        #[allow(clippy::cast_precision_loss)] // nanosecond sums stay far below 2^52 for years
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, counts.iter().sum(), buckets)
    }
}

type TransferCounts = std::collections::BTreeMap<(String, &'static str, &'static str), (u64, u64)>;

/// The counters that live as long as the server (across snapshots and reloads).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per view name; looked up when a snapshot is published, never per query.
    views: RwLock<Vec<(String, Arc<QueryCounters>)>>,
    /// Queries no view took (refused), or that came before any snapshot or were malformed.
    pub unmatched: Arc<QueryCounters>,
    /// Answers from precomputed bytes.
    pub fast_latency: Histogram,
    /// Answers through the hickory handler (UDP and TCP).
    pub handler_latency: Histogram,
    /// Refresh durations.
    pub refresh_duration: Histogram,
    /// Config reloads applied.
    pub reloads_applied: AtomicU64,
    /// Config reloads rejected (the old config keeps serving).
    pub reloads_rejected: AtomicU64,
    /// Zone transfers by (view, kind, outcome): (transfers, records sent); rare, so a lock
    /// is fine.
    transfers: std::sync::Mutex<TransferCounts>,
    /// NOTIFYs by (view, outcome).
    notifies: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    /// Counts one zone transfer (`kind` axfr/ixfr; `outcome` full, incremental, current,
    /// refused).
    pub fn count_transfer(
        &self,
        view: &str,
        kind: &'static str,
        outcome: &'static str,
        records: usize,
    ) {
        if let Ok(mut t) = self.transfers.lock() {
            let entry = t.entry((view.to_owned(), kind, outcome)).or_default();
            entry.0 += 1;
            entry.1 += records as u64;
        }
    }

    /// Counts one NOTIFY exchange (`outcome` acked or failed).
    pub fn count_notify(&self, view: &str, outcome: &'static str) {
        if let Ok(mut n) = self.notifies.lock() {
            *n.entry((view.to_owned(), outcome)).or_default() += 1;
        }
    }

    /// NOTIFY exchanges so far for a view with this outcome.
    pub fn notifies(&self, view: &str, outcome: &str) -> u64 {
        self.notifies.lock().map_or(0, |n| {
            n.iter()
                .filter(|((v, o), _)| v == view && *o == outcome)
                .map(|(_, c)| *c)
                .sum()
        })
    }

    /// (transfers, records sent) so far with these labels.
    pub fn transfers(&self, view: &str, kind: &str, outcome: &str) -> (u64, u64) {
        self.transfers.lock().map_or((0, 0), |t| {
            t.iter()
                .filter(|((v, k, o), _)| v == view && *k == kind && *o == outcome)
                .fold((0, 0), |acc, (_, n)| (acc.0 + n.0, acc.1 + n.1))
        })
    }
    /// The counters of the view called `name`, created on first use.
    pub fn view(&self, name: &str) -> ViewCounters {
        if let Ok(views) = self.views.read()
            && let Some((_, c)) = views.iter().find(|(n, _)| n == name)
        {
            return ViewCounters(c.clone());
        }
        let Ok(mut views) = self.views.write() else {
            return ViewCounters::default();
        };
        if let Some((_, c)) = views.iter().find(|(n, _)| n == name) {
            return ViewCounters(c.clone());
        }
        let c = Arc::new(QueryCounters::default());
        views.push((name.to_owned(), c.clone()));
        ViewCounters(c)
    }
}

/// Everything `/metrics` reads, gathered at scrape time.
pub struct Exposition<'a> {
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
}

/// The text format's content type (OpenMetrics 1.0, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Exposition<'_> {
    /// The exposition text.
    pub fn encode(&self) -> String {
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
            successes: load(&r.successes),
            failures: load(&r.failures),
            last_success: load(&r.last_success_unix_ms) / 1000,
            valve_trips: load(&r.valve_trips),
            empty_fleets: load(&r.empty_fleet_refusals),
            skipped: load(&r.skipped_instances),
            publishes: load(&r.publishes),
            reloads: (load(&m.reloads_applied), load(&m.reloads_rejected)),
            forward: self.forward,
            names: self.snapshot.map_or_else(Vec::new, |s| {
                s.views
                    .iter()
                    .map(|v| (v.name.clone(), v.name_count() as u64, v.over_cap as u64))
                    .collect()
            }),
            published: self.snapshot.map(|s| (s.instance_count as u64, s.serial)),
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
    successes: u64,
    failures: u64,
    last_success: u64,
    valve_trips: u64,
    empty_fleets: u64,
    skipped: u64,
    publishes: u64,
    reloads: (u64, u64),
    forward: Option<[u64; 5]>,
    names: Vec<(String, u64, u64)>,
    published: Option<(u64, u32)>,
    age: Option<u64>,
    transfers: Vec<(String, &'static str, &'static str, u64, u64)>,
    notifies: Vec<(String, &'static str, u64)>,
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
            m.encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
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
            Ok(())
        }
    }
}
