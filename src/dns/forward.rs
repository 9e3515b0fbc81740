//! Forwarding: names outside our zones, for views that may recurse.
//!
//! Answers come from the cache ([`super::cache`]) when it has them, fresh, or stale when the
//! upstreams fail. A miss starts one lookup per question: clients asking the same name and type
//! meanwhile wait for it. A lookup asks one upstream at a time (hickory-resolver, a resolver per
//! upstream, without its own cache), healthy ones first, each for its share of the timeout, so a
//! dead upstream costs nothing once found and a silent one gives SERVFAIL, never a hang. Answers
//! asked for in the last tenth of their TTL are fetched again on the side (prefetch).
//!
//! Loops: the config refuses an upstream that is one of our own sockets. An upstream that
//! forwards back to us (a resolver whose own forwarder is this server) is found at start by a
//! probe: a query for a random name under `stabledns-loop-probe.` goes out through the
//! resolver, and if that name ever arrives at our own handler, forwarding is switched off with
//! an error in the log rather than letting every forwarded query circle until it times out.

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_resolver::Resolver;
use hickory_resolver::net::{DnsError, NetError};
use tracing::{error, info, warn};

use super::QueryLog;
use super::cache::{self, Age, Cache, Entry};
use super::upstream::{self, Tapped, Upstream, Upstreams};
use crate::zone::fast::Question;
use std::collections::HashMap;

/// Where and how names outside our zones are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardConfig {
    /// Upstream resolvers; `None` reads the system's resolv.conf at start.
    pub upstreams: Option<Vec<SocketAddr>>,
    /// Longest wait for an upstream answer; past it the client gets SERVFAIL.
    pub timeout: Duration,
    /// Longest wait of one of our own answers for its CNAME target's addresses.
    pub chase_timeout: Duration,
    /// Answers cached.
    pub cache_size: u64,
    /// How long past its TTL an answer is kept to serve stale when the upstreams fail.
    pub serve_stale: Duration,
    /// Forwarded lookups in flight at once.
    pub max_in_flight: usize,
}

impl ForwardConfig {
    /// Whether anything is forwarded: `upstreams = []` configures none.
    pub fn forwards(&self) -> bool {
        self.upstreams.as_ref().is_none_or(|u| !u.is_empty())
    }
}

/// Why forwarding could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// `upstreams = ["system"]` and resolv.conf could not be read or names no server.
    #[error("failed to read the system resolver configuration (/etc/resolv.conf): {0}")]
    SystemConf(String),
    /// The resolver rejected its configuration.
    #[error("failed to build the forwarding resolver: {0}")]
    Build(String),
}

/// What an upstream said about a forwarded question.
#[derive(Debug)]
pub enum Forwarded {
    /// Records for the answer section (with any CNAME chain).
    Answer(Vec<Record>),
    /// NXDOMAIN or NODATA, with the upstream's SOA when it gave one.
    Negative {
        /// NXDomain or NoError.
        rcode: ResponseCode,
        /// For the authority section.
        soa: Option<Box<Record>>,
    },
    /// No usable answer in time: the client gets SERVFAIL.
    Failed,
}

/// A repeated failure is logged at most once per this interval, with a count.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why a lookup failed, as counted in [`Forwarder::failures`] and the metrics' `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The upstream answered with an error (SERVFAIL, REFUSED, a broken reply).
    Error = 0,
    /// No answer within `timeout`.
    Timeout = 1,
    /// Refused because the upstreams loop back to us.
    Loop = 2,
    /// Over `max_in_flight`.
    Limit = 3,
    /// A chase for one of our own answers took longer than `chase_timeout`: the answer went
    /// without the target's addresses (the lookup goes on and fills the cache).
    ChaseBudget = 4,
}

impl Failure {
    /// Every reason, in counter order, with its metric label.
    pub const ALL: [(Failure, &'static str); 5] = [
        (Failure::Error, "error"),
        (Failure::Timeout, "timeout"),
        (Failure::Loop, "loop"),
        (Failure::Limit, "limit"),
        (Failure::ChaseBudget, "chase_budget"),
    ];
}

/// The forwarder in service (reloads replace it), when forwarding is configured.
impl crate::telemetry::Report for arc_swap::ArcSwapOption<Forwarder> {
    fn report(&self, out: &mut crate::telemetry::Families) {
        let Some(f) = self.load_full() else {
            return;
        };
        out.by(
            crate::telemetry::Kind::Counter,
            "stabledns_forward_errors",
            "Forwarded lookups that failed, by reason",
            "reason",
            Failure::ALL.map(|(why, reason)| (reason, f.failures(why))),
        );
        out.gauge(
            "stabledns_forward_in_flight",
            "Forwarded lookups waiting for the upstreams now",
            f.in_flight(),
        );
        let by_upstream = |value: &dyn Fn(&Upstream) -> u64| {
            (f.upstreams().iter())
                .map(|u| (u.addr.to_string(), value(u)))
                .collect::<Vec<_>>()
        };
        out.by(
            crate::telemetry::Kind::Counter,
            "stabledns_forward_upstream_queries",
            "UDP queries sent to each upstream (the VPC resolver takes 1,024 packets/s per interface)",
            "upstream",
            by_upstream(&Upstream::sent),
        );
        out.by(
            crate::telemetry::Kind::Counter,
            "stabledns_forward_upstream_answers",
            "UDP answers from each upstream",
            "upstream",
            by_upstream(&Upstream::answered),
        );
        out.by(
            crate::telemetry::Kind::Gauge,
            "stabledns_forward_upstream_up",
            "1 when the upstream answered its last query in time, 0 when it has not",
            "upstream",
            by_upstream(&|u| u64::from(u.healthy(f.attempt()))),
        );
        let counts = f.cache_counts();
        out.by(
            crate::telemetry::Kind::Counter,
            "stabledns_forward_cache_lookups",
            "Forwarded questions by how the cache met them: hit, stale (the upstreams failed), miss",
            "result",
            [
                ("hit", counts.hits.load(Ordering::Relaxed)),
                ("stale", counts.stale.load(Ordering::Relaxed)),
                ("miss", counts.misses.load(Ordering::Relaxed)),
            ],
        );
        out.counter(
            "stabledns_forward_coalesced",
            "Forwarded questions that joined the same question already sent upstream",
            f.coalesced(),
        );
        out.counter(
            "stabledns_forward_prefetches",
            "Cached answers refreshed before they expired",
            f.prefetches(),
        );
        out.gauge(
            "stabledns_forward_cache_entries",
            "Forwarded answers in the cache now",
            f.cached(),
        );
    }
}

/// Logs a failure that repeats (a dead upstream fails every query) once per [`LOG_INTERVAL`]
/// with how many happened, instead of once per query.
#[derive(Debug, Default)]
struct Throttle {
    /// Unix ms before which nothing is logged.
    quiet_until: AtomicU64,
    /// Failures since the last line.
    count: AtomicU64,
}

impl Throttle {
    /// `Some(n)` when a line is due: `n` failures since the last one, this one included.
    fn due(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = upstream::unix_ms();
        let until = self.quiet_until.load(Ordering::Relaxed);
        let next = now.saturating_add(upstream::millis(LOG_INTERVAL));
        (now >= until
            && (self.quiet_until)
                .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
        .then(|| self.count.swap(0, Ordering::Relaxed))
    }
}

/// The upstream resolvers and the cache of their answers.
pub struct Forwarder {
    inner: Arc<Inner>,
    /// Keys of answers to fetch again on the side, for the prefetch task: `true` before they
    /// expire (a prefetch), `false` while they are served stale.
    prefetch: Option<tokio::sync::mpsc::UnboundedSender<(Box<[u8]>, bool)>>,
}

/// What a lookup's waiters get: the answer, or why there is none.
type Outcome = Result<Arc<Entry>, Failure>;

/// A lookup in flight, as its waiters see it: `None` until it ends.
type Waiting = watch::Receiver<Option<Outcome>>;

struct Inner {
    /// One per upstream, in the order of `upstreams`.
    resolvers: Vec<Resolver<Tapped>>,
    /// How long one upstream is given before the next is asked.
    attempt: Duration,
    timeout: Duration,
    /// The longest an authoritative answer waits for its CNAME target's addresses.
    chase_timeout: Duration,
    /// Repeated upstream failures, logged with a count.
    throttle: Throttle,
    upstreams: Arc<Upstreams>,
    probe: LowerName,
    looped: AtomicBool,
    /// Failed lookups, by [`Failure`].
    failures: [AtomicU64; 5],
    /// Lookups that may wait for the upstreams at once: a flood of names outside our zones
    /// must not pile up tasks and sockets without bound.
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    cache: Cache,
    /// Lookups in flight by cache key: a question asked again while one is out waits for
    /// it rather than sending another (only misses take this lock; hits never do).
    pending: std::sync::Mutex<HashMap<Box<[u8]>, Waiting>>,
    /// Questions that joined a lookup already out.
    coalesced: AtomicU64,
    /// Answers refreshed before they expired.
    prefetches: AtomicU64,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstreams", &self.inner.upstreams)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder for `config`; reads resolv.conf when the upstreams are the system's. With
    /// `log`, its exchanges with the upstreams go to dnstap. Within a tokio runtime it starts
    /// the task that refreshes popular answers before they expire.
    pub fn new(config: &ForwardConfig, log: Option<Arc<QueryLog>>) -> Result<Self, ForwardError> {
        let addrs = match &config.upstreams {
            Some(list) => list.clone(),
            None => {
                let (system, _) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| ForwardError::SystemConf(e.to_string()))?;
                let list: Vec<SocketAddr> = system
                    .name_servers()
                    .iter()
                    .map(|ns| SocketAddr::new(ns.ip, 53))
                    .collect();
                if list.is_empty() {
                    return Err(ForwardError::SystemConf("no nameserver line".into()));
                }
                list
            }
        };
        // Each upstream gets its share of the deadline, so a dead first upstream leaves time to
        // ask the next one.
        let share = u32::try_from(addrs.len()).unwrap_or(u32::MAX).max(1);
        let attempt = (config.timeout / share).max(Duration::from_millis(100));
        let upstreams = Arc::new(Upstreams::new(&addrs));
        let resolvers = upstream::resolvers(&addrs, attempt, log, &upstreams)?;
        let probe = Name::from_ascii(format!("{:016x}.stabledns-loop-probe.", fastrand::u64(..)))
            .map_err(|e| ForwardError::Build(e.to_string()))?;
        info!(upstreams = ?addrs, timeout = ?config.timeout, "forwarding through upstream resolvers");
        let inner = Arc::new(Inner {
            resolvers,
            attempt,
            timeout: config.timeout,
            chase_timeout: config.chase_timeout,
            throttle: Throttle::default(),
            upstreams,
            probe: LowerName::from(&probe),
            looped: AtomicBool::new(false),
            failures: Default::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
            max_in_flight: config.max_in_flight,
            cache: Cache::new(config.cache_size, config.serve_stale),
            pending: std::sync::Mutex::default(),
            coalesced: AtomicU64::new(0),
            prefetches: AtomicU64::new(0),
        });
        let prefetch = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(inner.clone().prefetcher(rx));
            tx
        });
        Ok(Self { inner, prefetch })
    }

    /// Lookups that failed so far for this reason.
    pub fn failures(&self, why: Failure) -> u64 {
        self.inner.failures[why as usize].load(Ordering::Relaxed)
    }

    /// Lookups waiting for the upstreams now.
    pub fn in_flight(&self) -> u64 {
        (self.inner.max_in_flight - self.inner.in_flight.available_permits()) as u64
    }

    /// Each upstream's counters.
    pub fn upstreams(&self) -> &[Upstream] {
        &self.inner.upstreams.0
    }

    /// A line per upstream for `/readyz`: up or not, and what it was sent and answered.
    pub fn ready_lines(&self) -> String {
        let timeout = self.inner.attempt;
        (self.upstreams().iter())
            .map(|u| {
                let state = if u.healthy(timeout) {
                    "up"
                } else {
                    "DOWN (a query unanswered past the timeout; asked last until it answers)"
                };
                format!(
                    "upstream {}: {state}, {} UDP queries, {} answers\n",
                    u.addr,
                    u.sent(),
                    u.answered()
                )
            })
            .collect()
    }

    /// The time an upstream's health is judged by: its share of the forwarding timeout.
    pub fn attempt(&self) -> Duration {
        self.inner.attempt
    }

    /// Whether a forwarding loop was found (forwarding is then off).
    pub fn looped(&self) -> bool {
        self.inner.looped.load(Ordering::Relaxed)
    }

    /// Called for every question we would forward: our own probe arriving here means the
    /// upstreams send our queries back to us.
    pub fn is_own_probe(&self, name: &LowerName) -> bool {
        let inner = &self.inner;
        if *name == inner.probe {
            if !inner.looped.swap(true, Ordering::Relaxed) {
                error!(
                    upstreams = ?inner.upstreams,
                    "forwarding loop: our own probe query came back from the upstreams; \
                     forwarded queries get SERVFAIL until the upstreams are fixed and the \
                     server restarted"
                );
            }
            return true;
        }
        false
    }

    /// Sends the loop probe once; call after the sockets are bound.
    pub async fn probe(&self) {
        let inner = &self.inner;
        let name = Name::from(&inner.probe);
        let _ = inner.lookup(&name, RecordType::A).await;
        if !self.looped() {
            info!("forwarding loop probe: no loop");
        }
    }

    /// Answers a forwarded UDP query from the cache into `out`, as the handler would from the
    /// same entry; `None` leaves it to the handler (a miss, an expired answer, one too big).
    pub(crate) fn answer_cached(
        &self,
        q: &Question<'_>,
        query: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<u16> {
        let inner = &self.inner;
        if self.looped() {
            return None;
        }
        let entry = inner.cache.get(q.key())?;
        let now = inner.cache.now();
        let stale = match entry.age(now) {
            Age::Fresh => false,
            Age::Stale => true,
            Age::Expired if self.stale_at_once(&entry, q.key(), now) => true,
            Age::Expired => return None,
        };
        let rcode = entry.answer(q, query, out, (now, stale))?;
        self.count_hit(&entry, q.key(), now, stale);
        Some(rcode)
    }

    /// Whether an expired answer is given stale at once: when every upstream is down, a
    /// client waiting out the timeout for each name would see a hang, not an answer. The
    /// entry is then served stale for [`cache::STALE_TTL`] and refreshed on the side.
    fn stale_at_once(&self, entry: &Entry, key: &[u8], now: u32) -> bool {
        let inner = &self.inner;
        let down = |u: &Upstream| !u.healthy(inner.attempt);
        if inner.cache.serve_stale == 0 || !inner.upstreams.0.iter().all(down) {
            return false;
        }
        entry.go_stale(now);
        if let Some(tx) = &self.prefetch {
            let _ = tx.send((key.into(), false));
        }
        true
    }

    fn count_hit(&self, entry: &Entry, key: &[u8], now: u32, stale: bool) {
        let counts = self.inner.cache.counts();
        if stale {
            counts.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        counts.hits.fetch_add(1, Ordering::Relaxed);
        if entry.wants_prefetch(now) {
            let prefetch = self.prefetch.as_ref();
            let sent = prefetch.is_some_and(|tx| tx.send((key.into(), true)).is_ok());
            if !sent {
                entry.prefetch_failed();
            }
        }
    }

    /// Resolves a question through the cache and the upstreams, within the timeout.
    pub async fn resolve(&self, name: &LowerName, rtype: RecordType) -> Forwarded {
        self.resolve_within(name, rtype, self.inner.timeout, false)
            .await
            .unwrap_or(Forwarded::Failed)
    }

    /// The addresses of a CNAME target, for chasing, within `chase_timeout`: empty when the
    /// upstream has none, fails or is slow (the CNAME alone is still a correct answer, and an
    /// authoritative answer must not wait out a dead upstream).
    pub async fn chase(&self, target: &Name, rtype: RecordType) -> Vec<Record> {
        let target = LowerName::from(target);
        match self
            .resolve_within(&target, rtype, self.inner.chase_timeout, true)
            .await
        {
            Some(Forwarded::Answer(records)) => records,
            None => {
                // Past the budget the lookup runs on and fills the cache.
                self.inner.failures[Failure::ChaseBudget as usize].fetch_add(1, Ordering::Relaxed);
                Vec::new()
            }
            Some(_) => Vec::new(),
        }
    }

    /// The answer from the cache, or from a lookup (one for every question alike in flight)
    /// waited for at most `wait`: `None` past it. A stale answer stands in for a failure.
    async fn resolve_within(
        &self,
        name: &LowerName,
        rtype: RecordType,
        wait: Duration,
        chasing: bool,
    ) -> Option<Forwarded> {
        let inner = &self.inner;
        let key = cache::key(name, rtype);
        let cached = inner.cache.get(&key);
        let now = inner.cache.now();
        if let Some(entry) = &cached {
            let stale = match entry.age(now) {
                Age::Fresh => Some(false),
                Age::Stale => Some(true),
                Age::Expired if self.stale_at_once(entry, &key, now) => Some(true),
                Age::Expired => None,
            };
            if let Some(stale) = stale {
                self.count_hit(entry, &key, now, stale);
                return Some(forwarded(entry, now, stale));
            }
        }
        inner.cache.counts().misses.fetch_add(1, Ordering::Relaxed);
        let outcome = match inner.join(key, name, rtype) {
            Ok(mut rx) => {
                let done = rx.wait_for(Option::is_some);
                match tokio::time::timeout(wait, done).await {
                    Ok(Ok(outcome)) => outcome.clone().unwrap_or(Err(Failure::Error)),
                    Ok(Err(_)) => Err(Failure::Error),
                    Err(_) if chasing => return None,
                    Err(_) => Err(Failure::Timeout),
                }
            }
            Err(why) => Err(why),
        };
        let now = inner.cache.now();
        Some(match (outcome, cached) {
            (Ok(entry), _) => forwarded(&entry, now, false),
            // RFC 8767: the upstreams failed, and a stale answer is better than none.
            (Err(_), Some(stale)) if inner.cache.serve_stale > 0 => {
                stale.go_stale(now);
                inner.cache.counts().stale.fetch_add(1, Ordering::Relaxed);
                forwarded(&stale, now, true)
            }
            (Err(_), _) => Forwarded::Failed,
        })
    }

    /// Answers fetched again before they expired.
    pub(crate) fn prefetches(&self) -> u64 {
        self.inner.prefetches.load(Ordering::Relaxed)
    }

    /// Questions that joined a lookup already out.
    pub(crate) fn coalesced(&self) -> u64 {
        self.inner.coalesced.load(Ordering::Relaxed)
    }

    /// How cached answers were used.
    pub(crate) fn cache_counts(&self) -> &cache::Counts {
        self.inner.cache.counts()
    }

    /// Answers cached now.
    pub(crate) fn cached(&self) -> u64 {
        self.inner.cache.len()
    }
}

/// An entry as the handler's answer.
fn forwarded(entry: &Entry, now: u32, stale: bool) -> Forwarded {
    let Some(mut message) = entry.message(now, stale) else {
        return Forwarded::Failed;
    };
    match message.metadata.response_code {
        ResponseCode::NoError if !message.answers.is_empty() => {
            Forwarded::Answer(std::mem::take(&mut message.answers))
        }
        rcode @ (ResponseCode::NoError | ResponseCode::NXDomain) => Forwarded::Negative {
            rcode,
            soa: message.authorities.pop().map(Box::new),
        },
        _ => Forwarded::Failed,
    }
}

impl Inner {
    /// Asks the upstreams, healthy ones first in the configured order, each for its share of
    /// the timeout, until one answers. A down upstream is asked last, and once per
    /// [`PROBE_INTERVAL`] gets the question on the side, so that it comes back when it answers.
    async fn lookup(self: &Arc<Self>, name: &Name, rtype: RecordType) -> Looked {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let ups = &self.upstreams.0;
        let mut order: Vec<usize> = (0..ups.len()).collect();
        order.sort_by_key(|&i| !ups[i].healthy(self.attempt));
        for &i in order.iter().skip(1) {
            if !ups[i].healthy(self.attempt) && ups[i].probe_due() {
                let (inner, name) = (self.clone(), name.clone());
                tokio::spawn(async move {
                    let ask = inner.resolvers[i].lookup(name, rtype);
                    let _ = tokio::time::timeout(inner.attempt, ask).await;
                });
            }
        }
        let mut failed = None;
        for (k, &i) in order.iter().enumerate() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let share = left / u32::try_from(order.len() - k).unwrap_or(1);
            let ask = self.resolvers[i].lookup(name.clone(), rtype);
            match tokio::time::timeout(share.max(self.attempt.min(left)), ask).await {
                Ok(Ok(lookup)) => return Ok(lookup),
                Ok(Err(e)) if is_negative(&e) => return Err(Some(e)),
                Ok(Err(e)) => failed = Some(e),
                Err(_) => {}
            }
        }
        Err(failed)
    }

    /// A receiver for the lookup of `key`: the one in flight, or a new one. `Err` when the
    /// upstreams loop back to us or too many lookups are out.
    fn join(
        self: &Arc<Self>,
        key: Box<[u8]>,
        name: &LowerName,
        rtype: RecordType,
    ) -> Result<Waiting, Failure> {
        if self.looped.load(Ordering::Relaxed) {
            return Err(self.fail(Failure::Loop));
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = pending.get(&key) {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
            return Ok(rx.clone());
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Err(self.fail(Failure::Limit));
        };
        let (tx, rx) = watch::channel(None);
        pending.insert(key.clone(), rx.clone());
        drop(pending);
        let inner = self.clone();
        let name = Name::from(name);
        // A task of its own: a client that stops waiting (a chase past its budget) does not
        // cancel the lookup, whose answer still fills the cache.
        tokio::spawn(async move {
            let looked = inner.lookup(&name, rtype).await;
            drop(permit);
            let outcome = inner.finish(&name, rtype, looked);
            if let Ok(entry) = &outcome {
                inner.cache.insert(key.clone(), entry.clone());
            }
            inner
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            tx.send_replace(Some(outcome));
        });
        Ok(rx)
    }

    fn fail(&self, why: Failure) -> Failure {
        self.failures[why as usize].fetch_add(1, Ordering::Relaxed);
        why
    }

    /// Counts a failure and logs it, at most once per [`LOG_INTERVAL`] with the count.
    fn fail_logged(&self, why: Failure, name: &Name, rtype: RecordType, error: &str) -> Failure {
        if let Some(n) = self.throttle.due() {
            warn!(
                %name,
                %rtype,
                error,
                failures = n,
                upstreams = ?self.upstreams,
                "upstream lookups failing ({n} since the last report; the latest shown)"
            );
        }
        self.fail(why)
    }

    /// The entry a finished lookup gives.
    fn finish(&self, name: &Name, rtype: RecordType, looked: Looked) -> Outcome {
        let lower = LowerName::from(name);
        let now = self.cache.now();
        let stale = self.cache.serve_stale;
        let entry = match looked {
            Ok(lookup) => Entry::new(
                &lower,
                rtype,
                (ResponseCode::NoError, lookup.answers(), None),
                now,
                stale,
            ),
            Err(Some(NetError::Dns(DnsError::NoRecordsFound(nr))))
                if matches!(
                    nr.response_code,
                    ResponseCode::NXDomain | ResponseCode::NoError
                ) =>
            {
                let soa = nr.soa.map(|soa| soa.into_record_of_rdata());
                Entry::new(
                    &lower,
                    rtype,
                    (nr.response_code, &[], soa.as_ref()),
                    now,
                    stale,
                )
            }
            Err(Some(e)) => {
                return Err(self.fail_logged(Failure::Error, name, rtype, &e.to_string()));
            }
            Err(None) => {
                let why = format!("no answer within {:?}", self.timeout);
                return Err(self.fail_logged(Failure::Timeout, name, rtype, &why));
            }
        };
        match entry {
            Some(entry) => Ok(Arc::new(entry)),
            None => Err(self.fail_logged(Failure::Error, name, rtype, "an answer too odd to keep")),
        }
    }

    /// Refreshes the answers hits ask for (see [`Entry::wants_prefetch`]), until the
    /// forwarder is dropped.
    async fn prefetcher(
        self: Arc<Self>,
        mut keys: tokio::sync::mpsc::UnboundedReceiver<(Box<[u8]>, bool)>,
    ) {
        while let Some((key, prefetch)) = keys.recv().await {
            let Some((name, rtype)) = question_of(&key) else {
                continue;
            };
            match self.join(key.clone(), &name, rtype) {
                Ok(_) if prefetch => {
                    self.prefetches.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => {
                    if let Some(entry) = self.cache.get(&key) {
                        entry.prefetch_failed();
                    }
                }
            }
        }
    }
}

/// The name and type a cache key stands for.
fn question_of(key: &[u8]) -> Option<(LowerName, RecordType)> {
    let (name, rtype) = key.split_at_checked(key.len().checked_sub(2)?)?;
    let name = Name::read(&mut BinDecoder::new(name)).ok()?;
    Some((
        LowerName::from(name),
        RecordType::from(u16::from_be_bytes([rtype[0], rtype[1]])),
    ))
}

/// What the upstreams said: an answer, an error, or (`Err(None)`) nothing in time.
type Looked = Result<hickory_resolver::lookup::Lookup, Option<NetError>>;

/// Whether an error is an upstream's answer that there is nothing (NXDOMAIN, NODATA): final,
/// not a reason to ask another upstream.
fn is_negative(e: &NetError) -> bool {
    matches!(e, NetError::Dns(DnsError::NoRecordsFound(nr))
        if matches!(nr.response_code, ResponseCode::NXDomain | ResponseCode::NoError))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_failure_is_logged_once_per_interval_with_its_count() {
        let throttle = Throttle::default();
        assert_eq!(throttle.due(), Some(1), "the first failure is reported");
        let later: Vec<Option<u64>> = (0..1000).map(|_| throttle.due()).collect();
        assert!(later.iter().all(Option::is_none), "then quiet");
        // Once the interval has passed, the next report carries everything since.
        throttle.quiet_until.store(0, Ordering::Relaxed);
        assert_eq!(throttle.due(), Some(1001));
    }
}
