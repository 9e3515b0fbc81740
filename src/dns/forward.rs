//! Forwarding: names outside our zones, for views that may recurse, through hickory-resolver.
//!
//! The resolver brings the cache, the upstream pool and retries; this module bounds every
//! lookup by the configured timeout (an upstream that does not answer gives SERVFAIL, never a
//! hang) and turns the resolver's result back into an answer, an NXDOMAIN/NODATA with the
//! upstream's SOA, or a failure.
//!
//! Loops: the config refuses an upstream that is one of our own sockets. An upstream that
//! forwards back to us (a resolver whose own forwarder is this server) is found at start by a
//! probe: a query for a random name under `stabledns-loop-probe.` goes out through the
//! resolver, and if that name ever arrives at our own handler, forwarding is switched off with
//! an error in the log rather than letting every forwarded query circle until it times out.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::{DnsError, NetError};
use hickory_server::net::runtime::{DnsUdpSocket, RuntimeProvider, TokioRuntimeProvider};
use tracing::{error, info, warn};

use super::QueryLog;

/// Where and how names outside our zones are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardConfig {
    /// Upstream resolvers; `None` reads the system's resolv.conf at start.
    pub upstreams: Option<Vec<SocketAddr>>,
    /// Longest wait for an upstream answer; past it the client gets SERVFAIL.
    pub timeout: Duration,
    /// Longest wait of one of our own answers for its CNAME target's addresses.
    pub chase_timeout: Duration,
    /// Records the resolver caches.
    pub cache_size: u64,
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let until = self.quiet_until.load(Ordering::Relaxed);
        let next = now + u64::try_from(LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        (now >= until
            && (self.quiet_until)
                .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
        .then(|| self.count.swap(0, Ordering::Relaxed))
    }
}

/// hickory-resolver's tokio runtime, with every UDP message to and from the upstreams copied
/// to dnstap (FORWARDER_QUERY and FORWARDER_RESPONSE): the resolver builds and parses them
/// inside, and its sockets are the one place their bytes pass. TCP (after a truncated answer)
/// is not copied.
#[derive(Clone, Default)]
pub(crate) struct Tapped {
    inner: TokioRuntimeProvider,
    log: Option<Arc<QueryLog>>,
}

impl RuntimeProvider for Tapped {
    type Handle = <TokioRuntimeProvider as RuntimeProvider>::Handle;
    type Timer = <TokioRuntimeProvider as RuntimeProvider>::Timer;
    type Udp = TappedUdp;
    type Tcp = <TokioRuntimeProvider as RuntimeProvider>::Tcp;

    fn create_handle(&self) -> Self::Handle {
        self.inner.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = std::io::Result<Self::Tcp>>>> {
        self.inner.connect_tcp(server_addr, bind_addr, timeout)
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = std::io::Result<Self::Udp>>>> {
        let socket = self.inner.bind_udp(local_addr, server_addr);
        let log = self.log.clone().filter(|l| l.on());
        Box::pin(async move {
            let socket = socket.await?;
            let local = socket.local_addr()?;
            Ok(TappedUdp { socket, local, log })
        })
    }
}

/// A resolver's UDP socket that copies what it sends and receives to the query log.
pub(crate) struct TappedUdp {
    socket: <TokioRuntimeProvider as RuntimeProvider>::Udp,
    local: SocketAddr,
    log: Option<Arc<QueryLog>>,
}

impl DnsUdpSocket for TappedUdp {
    type Time = <<TokioRuntimeProvider as RuntimeProvider>::Udp as DnsUdpSocket>::Time;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<(usize, SocketAddr)>> {
        let received = DnsUdpSocket::poll_recv_from(&self.socket, cx, buf);
        if let (Poll::Ready(Ok((n, from))), Some(log)) = (&received, &self.log) {
            log.upstream(false, self.local, *from, buf.get(..*n).unwrap_or_default());
        }
        received
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<std::io::Result<usize>> {
        let sent = DnsUdpSocket::poll_send_to(&self.socket, cx, buf, target);
        if let (Poll::Ready(Ok(_)), Some(log)) = (&sent, &self.log) {
            log.upstream(true, self.local, target, buf);
        }
        sent
    }
}

/// The upstream resolvers and their cache.
pub struct Forwarder {
    resolver: Resolver<Tapped>,
    timeout: Duration,
    /// The longest an authoritative answer waits for its CNAME target's addresses.
    chase_timeout: Duration,
    /// Repeated upstream failures, logged with a count.
    throttle: Throttle,
    upstreams: Vec<SocketAddr>,
    probe: LowerName,
    looped: AtomicBool,
    /// Failed lookups, by [`Failure`].
    failures: [AtomicU64; 5],
    /// Lookups that may wait for the upstreams at once: a flood of names outside our zones
    /// must not pile up tasks and sockets without bound.
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstreams", &self.upstreams)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder for `config`; reads resolv.conf when the upstreams are the system's. With
    /// `log`, its exchanges with the upstreams go to dnstap.
    pub fn new(config: &ForwardConfig, log: Option<Arc<QueryLog>>) -> Result<Self, ForwardError> {
        let upstreams = match &config.upstreams {
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
        let servers = upstreams
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut opts = ResolverOpts::default();
        // Each server gets its share of the deadline, so a dead first upstream leaves time to
        // ask the next one.
        let share = u32::try_from(upstreams.len()).unwrap_or(u32::MAX).max(1);
        opts.timeout = (config.timeout / share).max(Duration::from_millis(100));
        opts.attempts = 1;
        opts.cache_size = config.cache_size;
        opts.use_hosts_file = ResolveHosts::Never;
        // A forwarder passes the CNAME chain on (RFC 1034 4.3.2).
        opts.preserve_intermediates = true;
        opts.try_tcp_on_error = true;
        let mut builder = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            Tapped {
                inner: TokioRuntimeProvider::default(),
                log,
            },
        );
        *builder.options_mut() = opts;
        let resolver = builder
            .build()
            .map_err(|e| ForwardError::Build(e.to_string()))?;
        let probe = Name::from_ascii(format!("{:016x}.stabledns-loop-probe.", fastrand::u64(..)))
            .map_err(|e| ForwardError::Build(e.to_string()))?;
        info!(?upstreams, timeout = ?config.timeout, "forwarding through upstream resolvers");
        Ok(Self {
            resolver,
            timeout: config.timeout,
            chase_timeout: config.chase_timeout,
            throttle: Throttle::default(),
            upstreams,
            probe: LowerName::from(&probe),
            looped: AtomicBool::new(false),
            failures: Default::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
            max_in_flight: config.max_in_flight,
        })
    }

    /// Lookups that failed so far for this reason.
    pub fn failures(&self, why: Failure) -> u64 {
        self.failures[why as usize].load(Ordering::Relaxed)
    }

    /// Lookups waiting for the upstreams now.
    pub fn in_flight(&self) -> u64 {
        (self.max_in_flight - self.in_flight.available_permits()) as u64
    }

    fn fail(&self, why: Failure) -> Forwarded {
        self.failures[why as usize].fetch_add(1, Ordering::Relaxed);
        Forwarded::Failed
    }

    /// Counts a failure and logs it, at most once per [`LOG_INTERVAL`] with the count.
    fn fail_logged(&self, why: Failure, name: &Name, rtype: RecordType, error: &str) -> Forwarded {
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

    /// Whether a forwarding loop was found (forwarding is then off).
    pub fn looped(&self) -> bool {
        self.looped.load(Ordering::Relaxed)
    }

    /// Called for every question we would forward: our own probe arriving here means the
    /// upstreams send our queries back to us.
    pub fn is_own_probe(&self, name: &LowerName) -> bool {
        if *name == self.probe {
            if !self.looped.swap(true, Ordering::Relaxed) {
                error!(
                    upstreams = ?self.upstreams,
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
        let name = Name::from(&self.probe);
        let _ = tokio::time::timeout(self.timeout, self.resolver.lookup(name, RecordType::A)).await;
        if !self.looped() {
            info!("forwarding loop probe: no loop");
        }
    }

    /// Resolves a question through the upstreams, within the timeout.
    pub async fn resolve(&self, name: &LowerName, rtype: RecordType) -> Forwarded {
        let name = Name::from(name);
        match self.start(&name, rtype) {
            Ok(task) => self.finish(&name, task.await.ok(), rtype),
            Err(failed) => failed,
        }
    }

    /// Starts a lookup in a task of its own, so that a caller that stops waiting (a chase past
    /// its budget) does not cancel it: its answer still fills the cache for the next query.
    fn start(&self, name: &Name, rtype: RecordType) -> Result<JoinHandle<Looked>, Forwarded> {
        if self.looped() {
            return Err(self.fail(Failure::Loop));
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Err(self.fail(Failure::Limit));
        };
        let (resolver, timeout) = (self.resolver.clone(), self.timeout);
        let name = name.clone();
        Ok(tokio::spawn(async move {
            let _permit = permit;
            tokio::time::timeout(timeout, resolver.lookup(name, rtype)).await
        }))
    }

    /// The answer a finished lookup gives (`None`: its task panicked).
    fn finish(&self, name: &Name, looked: Option<Looked>, rtype: RecordType) -> Forwarded {
        match looked {
            Some(Ok(Ok(lookup))) => Forwarded::Answer(lookup.answers().to_vec()),
            Some(Ok(Err(NetError::Dns(DnsError::NoRecordsFound(nr)))))
                if matches!(
                    nr.response_code,
                    ResponseCode::NXDomain | ResponseCode::NoError
                ) =>
            {
                Forwarded::Negative {
                    rcode: nr.response_code,
                    soa: nr.soa.map(|soa| Box::new(soa.into_record_of_rdata())),
                }
            }
            Some(Ok(Err(e))) => self.fail_logged(Failure::Error, name, rtype, &e.to_string()),
            Some(Err(_)) => {
                let why = format!("no answer within {:?}", self.timeout);
                self.fail_logged(Failure::Timeout, name, rtype, &why)
            }
            None => self.fail_logged(Failure::Error, name, rtype, "the lookup task failed"),
        }
    }

    /// The addresses of a CNAME target, for chasing, within `chase_timeout`: empty when the
    /// upstream has none, fails or is slow (the CNAME alone is still a correct answer, and an
    /// authoritative answer must not wait out a dead upstream).
    pub async fn chase(&self, target: &Name, rtype: RecordType) -> Vec<Record> {
        let Ok(task) = self.start(target, rtype) else {
            return Vec::new();
        };
        // Past the budget the task is dropped unawaited: it runs on and fills the cache.
        let Ok(joined) = tokio::time::timeout(self.chase_timeout, task).await else {
            self.failures[Failure::ChaseBudget as usize].fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        };
        match self.finish(target, joined.ok(), rtype) {
            Forwarded::Answer(records) => records,
            Forwarded::Negative { .. } | Forwarded::Failed => Vec::new(),
        }
    }
}

type Looked =
    Result<Result<hickory_resolver::lookup::Lookup, NetError>, tokio::time::error::Elapsed>;

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
