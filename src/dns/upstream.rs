//! The upstreams: hickory-resolver per upstream, over sockets that count and copy what passes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_server::net::runtime::{DnsUdpSocket, RuntimeProvider, TokioRuntimeProvider};

use super::QueryLog;
use super::forward::ForwardError;

/// A resolver for each of `addrs`, each giving an upstream `attempt` before it fails, with
/// their UDP counted in `upstreams` and copied to `log`.
pub(crate) fn resolvers(
    addrs: &[SocketAddr],
    attempt: Duration,
    log: Option<Arc<QueryLog>>,
    upstreams: &Arc<Upstreams>,
) -> Result<Vec<Resolver<Tapped>>, ForwardError> {
    let mut opts = ResolverOpts::default();
    opts.timeout = attempt;
    opts.attempts = 1;
    opts.num_concurrent_reqs = 1;
    // The cache is ours (in wire form, for the fast path); the resolver's would answer our
    // prefetches from itself and hand back TTLs already counted down.
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    // A forwarder passes the CNAME chain on (RFC 1034 4.3.2).
    opts.preserve_intermediates = true;
    opts.try_tcp_on_error = true;
    // A resolver per upstream: which one is asked, and in what order, is ours to decide
    // (hickory's pool keeps asking a dead first upstream, and by default asks two at once).
    addrs
        .iter()
        .map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            let mut builder = Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                Tapped {
                    inner: TokioRuntimeProvider::default(),
                    log: log.clone(),
                    upstreams: upstreams.clone(),
                },
            );
            *builder.options_mut() = opts.clone();
            builder
                .build()
                .map_err(|e| ForwardError::Build(e.to_string()))
        })
        .collect()
}

/// hickory-resolver's tokio runtime, with every UDP message to and from the upstreams copied
/// to dnstap (FORWARDER_QUERY and FORWARDER_RESPONSE): the resolver builds and parses them
/// inside, and its sockets are the one place their bytes pass. TCP (after a truncated answer)
/// is not copied.
#[derive(Clone)]
pub(crate) struct Tapped {
    inner: TokioRuntimeProvider,
    log: Option<Arc<QueryLog>>,
    upstreams: Arc<Upstreams>,
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
        let upstreams = self.upstreams.clone();
        Box::pin(async move {
            let socket = socket.await?;
            let local = socket.local_addr()?;
            Ok(TappedUdp {
                socket,
                local,
                log,
                upstreams,
            })
        })
    }
}

/// A resolver's UDP socket that copies what it sends and receives to the query log.
pub(crate) struct TappedUdp {
    socket: <TokioRuntimeProvider as RuntimeProvider>::Udp,
    local: SocketAddr,
    log: Option<Arc<QueryLog>>,
    upstreams: Arc<Upstreams>,
}

impl DnsUdpSocket for TappedUdp {
    type Time = <<TokioRuntimeProvider as RuntimeProvider>::Udp as DnsUdpSocket>::Time;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<(usize, SocketAddr)>> {
        let received = DnsUdpSocket::poll_recv_from(&self.socket, cx, buf);
        if let Poll::Ready(Ok((n, from))) = &received {
            self.upstreams.answered(from);
            if let Some(log) = &self.log {
                log.upstream(false, self.local, *from, buf.get(..*n).unwrap_or_default());
            }
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
        if let Poll::Ready(Ok(_)) = &sent {
            self.upstreams.sent(&target);
            if let Some(log) = &self.log {
                log.upstream(true, self.local, target, buf);
            }
        }
        sent
    }
}

/// What one upstream was sent and answered, counted at the sockets.
#[derive(Debug)]
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    sent: AtomicU64,
    answered: AtomicU64,
    /// Unix ms of the oldest query sent since its last answer (0: none waiting).
    unanswered_since: AtomicU64,
    /// Unix ms of the last probe while it was down.
    last_probe: AtomicU64,
}

impl Upstream {
    /// UDP queries sent to it.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// UDP answers it gave.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Whether it answered lately: a query unanswered for longer than `timeout` (its share of
    /// the forwarding timeout) means it is not, and it is asked last until it answers again.
    pub fn healthy(&self, timeout: Duration) -> bool {
        let since = self.unanswered_since.load(Ordering::Relaxed);
        since == 0 || unix_ms().saturating_sub(since) <= millis(timeout)
    }
}

/// How often a down upstream is sent a question to see whether it is back.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

impl Upstream {
    /// Whether a probe is due now (and, if so, that it is sent).
    pub(crate) fn probe_due(&self) -> bool {
        let now = unix_ms();
        let last = self.last_probe.load(Ordering::Relaxed);
        now.saturating_sub(last) >= millis(PROBE_INTERVAL)
            && (self.last_probe)
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The upstreams' counters, shared by every socket the resolvers open.
#[derive(Debug, Default)]
pub(crate) struct Upstreams(pub(crate) Vec<Upstream>);

impl Upstreams {
    pub(crate) fn new(addrs: &[SocketAddr]) -> Self {
        Self(
            addrs
                .iter()
                .map(|&addr| Upstream {
                    addr,
                    sent: AtomicU64::new(0),
                    answered: AtomicU64::new(0),
                    unanswered_since: AtomicU64::new(0),
                    last_probe: AtomicU64::new(0),
                })
                .collect(),
        )
    }

    fn of(&self, addr: &SocketAddr) -> Option<&Upstream> {
        self.0.iter().find(|u| u.addr == *addr)
    }

    fn sent(&self, to: &SocketAddr) {
        if let Some(u) = self.of(to) {
            u.sent.fetch_add(1, Ordering::Relaxed);
            let _ = (u.unanswered_since).compare_exchange(
                0,
                unix_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn answered(&self, from: &SocketAddr) {
        if let Some(u) = self.of(from) {
            u.answered.fetch_add(1, Ordering::Relaxed);
            u.unanswered_since.store(0, Ordering::Relaxed);
        }
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
