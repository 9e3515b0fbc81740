//! What the server counts with, and how each part says what it counted: a leaf module every
//! part may use, which uses none of them.
//!
//! The query path only adds to atomics it already holds (a view's [`QueryCounters`], spread over
//! cache-line shards so the UDP threads do not fight over one line, and the latency
//! [`Histogram`]); nothing there takes a lock or looks up a label set. Each part keeps its own
//! counters beside its code and implements [`Report`]: at scrape time it writes its metric
//! families (name, help, rows) into [`Families`], which the Prometheus exposition encodes. A
//! new metric is a field, a line in its part's `report`, and a row in the README.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

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
const LATENCY_BOUNDS: [f64; 19] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
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

/// How a family's values add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (the encoder appends `_total` to the name).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// The label pairs of one row.
pub type Labels = Vec<(&'static str, String)>;

/// A histogram as read at scrape time: (sum in seconds, count, per-bucket counts with upper
/// bounds).
pub type HistogramRead = (f64, u64, Vec<(f64, u64)>);

/// The rows of one family.
#[derive(Debug)]
pub(crate) enum Rows {
    /// Counter or gauge values.
    Values(Kind, Vec<(Labels, u64)>),
    /// Histograms.
    Histograms(Vec<(Labels, HistogramRead)>),
}

/// One metric: its name (as given to the encoder), help text and rows.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) rows: Rows,
}

/// Every metric family of one scrape, in the order the parts reported them.
#[derive(Debug, Default)]
pub struct Families(pub(crate) Vec<Family>);

impl Families {
    /// A counter without labels.
    pub fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.values(name, help, Kind::Counter, vec![(Vec::new(), value)]);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.values(name, help, Kind::Gauge, vec![(Vec::new(), value)]);
    }

    /// A family with one label: one row per value of `label`.
    pub fn by<V: Into<String>>(
        &mut self,
        kind: Kind,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        rows: impl IntoIterator<Item = (V, u64)>,
    ) {
        let rows = rows
            .into_iter()
            .map(|(v, n)| (vec![(label, v.into())], n))
            .collect();
        self.values(name, help, kind, rows);
    }

    /// A family with any labels (rows may be empty: the family is still described).
    pub fn values(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        rows: Vec<(Labels, u64)>,
    ) {
        self.0.push(Family {
            name,
            help,
            rows: Rows::Values(kind, rows),
        });
    }

    /// Histograms, one row per label set (an empty set for one without labels).
    pub fn histograms(
        &mut self,
        name: &'static str,
        help: &'static str,
        rows: Vec<(Labels, &Histogram)>,
    ) {
        let rows = rows.into_iter().map(|(l, h)| (l, h.read())).collect();
        self.0.push(Family {
            name,
            help,
            rows: Rows::Histograms(rows),
        });
    }

    /// The names as exposed (counters with the `_total` the encoder appends), for the
    /// README check.
    pub fn exposed_names(&self) -> Vec<String> {
        (self.0.iter())
            .map(|f| match f.rows {
                Rows::Values(Kind::Counter, _) => format!("{}_total", f.name),
                _ => f.name.to_owned(),
            })
            .collect()
    }
}

/// A part of the server that reports its counters at scrape time.
pub trait Report: Send + Sync {
    /// Writes this part's metric families into `out`.
    fn report(&self, out: &mut Families);
}

/// The per-view query counters, kept by the serving side across snapshots and reloads by
/// view name (snapshots hold answers only).
#[derive(Debug, Default)]
pub struct ViewTable {
    /// Per view name; looked up when the views change, never per query.
    views: RwLock<Vec<(String, Arc<QueryCounters>)>>,
    /// The counters of the last snapshot's views, by view index: the query path's.
    current: arc_swap::ArcSwap<CounterSet>,
    /// Queries no view took (refused), or that came before any snapshot or were malformed.
    pub unmatched: Arc<QueryCounters>,
}

/// Counters by view index, for one list of view names.
#[derive(Debug, Default)]
pub struct CounterSet {
    /// Which list of views (see [`ViewTable::counters`]).
    key: u64,
    views: Box<[Arc<QueryCounters>]>,
}

impl CounterSet {
    /// The counters of view `index`.
    #[inline]
    pub fn view(&self, index: usize) -> Option<&QueryCounters> {
        self.views.get(index).map(|c| &**c)
    }

    /// The counters of view `index`, to keep beyond this set's guard (an answer that awaits).
    pub fn shared(&self, index: usize) -> Option<Arc<QueryCounters>> {
        self.views.get(index).cloned()
    }
}

impl ViewTable {
    /// The counters by view index for views `key` (a hash of their names in order; `names`
    /// lists them). Lock-free while the views are those of the last call: a load, no
    /// reference count touched, so the UDP threads share nothing but their counter shards.
    #[inline]
    pub fn counters(
        &self,
        key: u64,
        names: impl FnOnce() -> Vec<String>,
    ) -> arc_swap::Guard<Arc<CounterSet>> {
        let set = self.current.load();
        if set.key == key {
            return set;
        }
        let views = names().iter().map(|n| self.view(n).0).collect();
        self.current.store(Arc::new(CounterSet { key, views }));
        self.current.load()
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

impl Report for ViewTable {
    fn report(&self, out: &mut Families) {
        let views = self.views.read().map(|v| v.clone()).unwrap_or_default();
        let mut queries = Vec::new();
        for (view, c) in (views.iter().map(|(n, c)| (n.as_str(), c))).chain([("", &self.unmatched)])
        {
            for (qtype, rcode, n) in c.totals() {
                let labels = vec![
                    ("view", view.to_owned()),
                    ("qtype", qtype.to_owned()),
                    ("rcode", rcode.to_owned()),
                ];
                queries.push((labels, n));
            }
        }
        out.values(
            "stabledns_queries",
            "Queries answered, by view (empty: no view), query type and response code",
            Kind::Counter,
            queries,
        );
        // Every view, at zero until it limits: a series that appears only with its first
        // increment hides that increment from `rate()` and from the alert on it.
        let limited = views
            .iter()
            .flat_map(|(view, c)| {
                let (dropped, slipped) = c.limited();
                [
                    (
                        vec![("view", view.clone()), ("action", "drop".into())],
                        dropped,
                    ),
                    (
                        vec![("view", view.clone()), ("action", "slip".into())],
                        slipped,
                    ),
                ]
            })
            .collect();
        out.values(
            "stabledns_rate_limited",
            "UDP answers over the view's rate limit: dropped, or sent truncated",
            Kind::Counter,
            limited,
        );
    }
}

/// Counters and gauges of the refresh loop, for logs, tests, `_explain` and metrics. Here
/// rather than in `refresh` because `dns` (earlier in the flow) reads the data's age for
/// `_explain`.
#[derive(Debug, Default)]
pub struct RefreshStats {
    /// How long each refresh took: fetch, name, build, publish.
    pub duration: Histogram,
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
    /// Snapshots made by patching the served one with a change that EC2 events brought.
    pub patches: AtomicU64,
    /// How long each full build took (naming and building, off the runtime).
    pub build_full: Histogram,
    /// How long each patch took.
    pub build_patch: Histogram,
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

impl Report for RefreshStats {
    fn report(&self, out: &mut Families) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.histograms(
            "stabledns_refresh_duration_seconds",
            "Time one refresh took: fetch, name, build, publish",
            vec![(Vec::new(), &self.duration)],
        );
        out.histograms(
            "stabledns_snapshot_build_duration_seconds",
            "Time one snapshot took to make: a full build (naming and building) or a patch",
            vec![
                (vec![("kind", "full".to_owned())], &self.build_full),
                (vec![("kind", "patch".to_owned())], &self.build_patch),
            ],
        );
        let help = "Refreshes whose inventory fetch succeeded";
        out.counter("stabledns_refresh_successes", help, load(&self.successes));
        let help = "Refreshes whose inventory fetch failed";
        out.counter("stabledns_refresh_failures", help, load(&self.failures));
        out.gauge(
            "stabledns_refresh_last_success_timestamp_seconds",
            "Unix time of the last successful inventory fetch (0: never)",
            load(&self.last_success_unix_ms) / 1000,
        );
        let help = "Refreshes held back by the safety valve";
        out.counter(
            "stabledns_safety_valve_trips",
            help,
            load(&self.valve_trips),
        );
        out.counter(
            "stabledns_empty_fleet_refusals",
            "Refreshes that found no instances and were not published",
            load(&self.empty_fleet_refusals),
        );
        let help = "Snapshots published";
        out.counter("stabledns_snapshots_published", help, load(&self.publishes));
        out.counter(
            "stabledns_snapshots_built",
            "Snapshots built (a refresh that finds the served fleet builds none)",
            load(&self.builds),
        );
        out.counter(
            "stabledns_snapshots_patched",
            "Snapshots made from the served one and an EC2 event's change, not built in full",
            load(&self.patches),
        );
        out.gauge(
            "stabledns_inventory_skipped_instances",
            "Instances the last inventory read skipped as unusable",
            load(&self.skipped_instances),
        );
        out.by(
            Kind::Counter,
            "stabledns_slot_tag_writes",
            "Slot tags written to the fleet (ok) and CreateTags calls that failed",
            "result",
            [
                ("ok", load(&self.slot_tags_written)),
                ("failed", load(&self.slot_tag_failures)),
            ],
        );
        if let Some(age) = self.age(SystemTime::now()) {
            out.gauge(
                "stabledns_data_age_seconds",
                "Seconds since the inventory last confirmed the published data",
                age.as_secs(),
            );
        }
    }
}
