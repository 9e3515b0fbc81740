//! What the server counts: a leaf module every part may use, which uses none of them.
//!
//! The query path only adds to atomics it already holds (a view's [`QueryCounters`], spread over
//! cache-line shards so the UDP threads do not fight over one line, and the latency
//! [`Histogram`]); nothing there takes a lock or looks up a label set. The parts keep their
//! counters; the Prometheus exposition reads them all when `/metrics` is scraped. Metric names live in
//! [`names`] and nowhere else; the README lists them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Counter: snapshots built (a refresh that finds the served fleet builds none).
    pub const BUILDS: &str = "stabledns_snapshots_built";
    /// Counter {zone, result}: Route 53 syncs.
    pub const PUBLISH_SYNCS: &str = "stabledns_publish_syncs";
    /// Counter {zone, action}: changes Route 53 accepted (ownership records included).
    pub const PUBLISH_CHANGES: &str = "stabledns_publish_changes";
    /// Counter {zone}: ChangeResourceRecordSets calls accepted.
    pub const PUBLISH_BATCHES: &str = "stabledns_publish_batches";
    /// Counter {zone}: calls retried (throttled, busy, 5xx).
    pub const PUBLISH_RETRIES: &str = "stabledns_publish_retries";
    /// Counter {zone}: calls Route 53 throttled.
    pub const PUBLISH_THROTTLES: &str = "stabledns_publish_throttles";
    /// Counter {zone}: changes Route 53 refused alone, left out.
    pub const PUBLISH_QUARANTINED: &str = "stabledns_publish_quarantined";
    /// Gauge {zone}: names wanted that someone else holds, at the last sync.
    pub const PUBLISH_CONFLICTS: &str = "stabledns_publish_conflicts";
    /// Gauge {zone}: record sets stabledns owned at the last sync.
    pub const PUBLISH_OWNED: &str = "stabledns_publish_owned_record_sets";
    /// Gauge {zone}: Unix time of the last successful sync (0: never).
    pub const PUBLISH_LAST_SUCCESS: &str = "stabledns_publish_last_success_timestamp_seconds";
    /// Gauge {view}: names with data in each view.
    pub const NAMES: &str = "stabledns_names";
    /// Gauge {view}: records past `max_records_per_rrset`, left out of transfers (answers
    /// rotate them in).
    pub const OVER_CAP: &str = "stabledns_rrset_records_over_cap";
    /// Gauge: instances in the inventory of the published snapshot.
    pub const INSTANCES: &str = "stabledns_instances";
    /// Gauge {reason}: named instances out of their tiers' answers (`drained`, `impaired`).
    pub const OUT_OF_ROTATION: &str = "stabledns_instances_out_of_rotation";
    /// Gauge: tiers whose every member is drained or impaired, answered in full (fail open).
    pub const FAILING_OPEN: &str = "stabledns_tiers_failing_open";
    /// Gauge {reason}: tier members renumbered by the last build (`duplicate`, `invalid`,
    /// `above_size`).
    pub const SLOTS_RENUMBERED: &str = "stabledns_slots_renumbered";
    /// Counter {result}: slot tags written to the fleet (`ok`), and CreateTags calls that
    /// failed (`failed`).
    pub const SLOT_TAG_WRITES: &str = "stabledns_slot_tag_writes";
    /// Counter {outcome}: EC2 events read from SQS, by what became of them.
    pub const EVENTS: &str = "stabledns_events";
    /// Counter {op}: SQS calls that failed (`receive`, `delete`).
    pub const EVENT_QUEUE_ERRORS: &str = "stabledns_event_queue_errors";
    /// Gauge: the published SOA serial.
    pub const SERIAL: &str = "stabledns_serial";
    /// Gauge {hash}: 1, labelled with the published snapshot's content hash.
    pub const ZONE_CONTENT: &str = "stabledns_zone_content";
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
    /// Counter: query log lines, by outcome (written, dropped).
    pub const QUERY_LOG_LINES: &str = "stabledns_query_log_lines";
    /// Counter: dnstap messages, by outcome (sent, dropped).
    pub const DNSTAP_MESSAGES: &str = "stabledns_dnstap_messages";
    /// Gauge: 1 while a dnstap collector is connected.
    pub const DNSTAP_CONNECTED: &str = "stabledns_dnstap_connected";
    /// Counter {result}: security-group audits run while serving (`ok`, `failed`).
    pub const AUDIT_RUNS: &str = "stabledns_audit_runs";
    /// Gauge {kind, severity}: findings of the last audit that succeeded.
    pub const AUDIT_FINDINGS: &str = "stabledns_audit_findings";
    /// Gauge: Unix time of the last audit that succeeded (0: never).
    pub const AUDIT_LAST_SUCCESS: &str = "stabledns_audit_last_success_timestamp_seconds";
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
    /// Counts an answer over the rate limit: dropped, or sent truncated (`slipped`).
    pub fn count_limited(&self, slipped: bool) {
        self.limited[usize::from(slipped)].fetch_add(1, Ordering::Relaxed);
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
    pub(crate) fn totals(&self) -> Vec<(&'static str, &'static str, u64)> {
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

/// A view's counters as the snapshot carries them: shared across snapshots by view name.
#[derive(Debug, Clone, Default)]
pub struct ViewCounters(pub Arc<QueryCounters>);

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
    pub(crate) fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
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

pub(crate) type TransferCounts =
    std::collections::BTreeMap<(String, &'static str, &'static str), (u64, u64)>;

/// The counters that live as long as the server (across snapshots and reloads).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per view name; looked up when a snapshot is published, never per query.
    pub(crate) views: RwLock<Vec<(String, Arc<QueryCounters>)>>,
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
    pub(crate) transfers: std::sync::Mutex<TransferCounts>,
    /// NOTIFYs by (view, outcome).
    pub(crate) notifies: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    /// Route 53 syncs by hosted zone; updated once per sync, so a lock is fine.
    pub publish: std::sync::Mutex<std::collections::BTreeMap<String, PublishCounts>>,
    /// The security-group audit's counts, once `inventory.audit_interval` has run one;
    /// updated once per audit.
    pub audit: std::sync::Mutex<Option<AuditCounts>>,
    /// EC2 events from SQS (`[inventory.events]`).
    pub events: EventCounts,
}

/// What became of the EC2 events read from SQS.
#[derive(Debug, Default)]
pub struct EventCounts {
    /// Applied: the instance was read back and the fleet updated (published if it changed).
    pub applied: AtomicU64,
    /// Seen before (the same event id).
    pub duplicate: AtomicU64,
    /// Older than a change already applied to the instance.
    pub stale: AtomicU64,
    /// Not an event: logged and deleted.
    pub malformed: AtomicU64,
    /// Well-formed, but of a kind or region stabledns does not act on.
    pub ignored: AtomicU64,
    /// Left on the queue because the instances could not be read back.
    pub failed: AtomicU64,
    /// ReceiveMessage calls that failed (an unreachable or deleted queue).
    pub receive_errors: AtomicU64,
    /// DeleteMessageBatch calls or entries that failed.
    pub delete_errors: AtomicU64,
}

/// The audit's counts while serving.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuditCounts {
    /// Audits that finished.
    pub runs: u64,
    /// Audits that failed (the API, mostly).
    pub failures: u64,
    /// Unix time of the last audit that finished (0: never).
    pub last_success_unix: u64,
    /// The last finished audit's findings by (kind, severity), every kind listed (0 when it
    /// found none), so an alert on one resolves when the finding is fixed.
    pub findings: Vec<(&'static str, &'static str, u64)>,
}

/// One hosted zone's publishing counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishCounts {
    /// Syncs that finished.
    pub syncs: u64,
    /// Syncs that failed (Route 53, or refused).
    pub failures: u64,
    /// Record sets created, updated and deleted (ownership records included).
    pub creates: u64,
    /// See `creates`.
    pub updates: u64,
    /// See `creates`.
    pub deletes: u64,
    /// ChangeResourceRecordSets calls accepted.
    pub batches: u64,
    /// Calls retried.
    pub retries: u64,
    /// Calls throttled.
    pub throttles: u64,
    /// Changes refused alone and left out.
    pub quarantined: u64,
    /// Conflicts at the last sync.
    pub conflicts: u64,
    /// Record sets owned at the last sync.
    pub owned: u64,
    /// Unix time of the last successful sync (0: never).
    pub last_success_unix: u64,
    /// Why the last sync failed, if it did.
    pub last_error: Option<String>,
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

/// Counters and gauges of the refresh loop, for logs, tests, `_explain` and metrics.
#[derive(Debug, Default)]
pub struct RefreshStats {
    /// Fetches that succeeded.
    pub successes: AtomicU64,
    /// Fetches that failed.
    pub failures: AtomicU64,
    /// Failures since the last success.
    pub consecutive_failures: AtomicU64,
    /// The delay before the next attempt, in milliseconds.
    pub next_delay_ms: AtomicU64,
    /// Refreshes held back by the safety valve.
    pub valve_trips: AtomicU64,
    /// Refreshes that found no instances and were not published (`allow_empty_fleet`).
    pub empty_fleet_refusals: AtomicU64,
    /// Whether the last fetch found no instances at all: readiness fails while it does.
    pub empty_fleet: std::sync::atomic::AtomicBool,
    /// Snapshots published.
    pub publishes: AtomicU64,
    /// Snapshots built: a refresh that finds the served fleet again builds none.
    pub builds: AtomicU64,
    /// Instances the last fetch skipped as unusable.
    pub skipped_instances: AtomicU64,
    /// When the API last confirmed the published data (Unix ms; 0 = never).
    pub last_success_unix_ms: AtomicU64,
    /// Slot tags written to the fleet.
    pub slot_tags_written: AtomicU64,
    /// CreateTags calls for slot tags that failed.
    pub slot_tag_failures: AtomicU64,
    /// The last failure's count of consecutive failures and the backoff it chose, together.
    pub(crate) last_backoff: std::sync::Mutex<(u64, Duration)>,
}

impl RefreshStats {
    /// How old the published data is: time since the source last confirmed it.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        let ms = self.last_success_unix_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| {
            now.duration_since(UNIX_EPOCH + Duration::from_millis(ms))
                .unwrap_or_default()
        })
    }

    /// (consecutive failures, backoff chosen) at the last failure.
    pub fn last_backoff(&self) -> (u64, Duration) {
        self.last_backoff.lock().map_or((0, Duration::ZERO), |g| *g)
    }

    /// Records a fetch that succeeded; returns how many failed in a row before it.
    pub(crate) fn mark_success(&self) -> u64 {
        self.successes.fetch_add(1, Ordering::Relaxed);
        let failed = self.consecutive_failures.swap(0, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_success_unix_ms.store(now, Ordering::Relaxed);
        failed
    }
}
