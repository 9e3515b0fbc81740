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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{Resolver, TokioResolver};
use hickory_server::net::runtime::TokioRuntimeProvider;
use tracing::{error, info, warn};

use crate::config::ForwardConfig;

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

/// The upstream resolvers and their cache.
pub struct Forwarder {
    resolver: TokioResolver,
    timeout: Duration,
    upstreams: Vec<SocketAddr>,
    probe: LowerName,
    looped: AtomicBool,
    /// Failed lookups: (upstream error, timeout, refused for a loop, over the in-flight limit).
    failures: [AtomicU64; 4],
    /// Lookups that may wait for the upstreams at once: a flood of names outside our zones
    /// must not pile up tasks and sockets without bound.
    in_flight: tokio::sync::Semaphore,
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
    /// A forwarder for `config`; reads resolv.conf when the upstreams are the system's.
    pub fn new(config: &ForwardConfig) -> Result<Self, ForwardError> {
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
            TokioRuntimeProvider::default(),
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
            upstreams,
            probe: LowerName::from(&probe),
            looped: AtomicBool::new(false),
            failures: Default::default(),
            in_flight: tokio::sync::Semaphore::new(config.max_in_flight),
            max_in_flight: config.max_in_flight,
        })
    }

    /// Lookups that failed so far: (upstream error, timeout, refused because of a loop).
    pub fn failures(&self) -> (u64, u64, u64, u64) {
        let [e, t, l, m] = &self.failures;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (load(e), load(t), load(l), load(m))
    }

    /// Lookups waiting for the upstreams now.
    pub fn in_flight(&self) -> u64 {
        (self.max_in_flight - self.in_flight.available_permits()) as u64
    }

    fn fail(&self, which: usize) -> Forwarded {
        if let Some(c) = self.failures.get(which) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Forwarded::Failed
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
        if self.looped() {
            return self.fail(2);
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return self.fail(3);
        };
        let name = Name::from(name);
        let looked = tokio::time::timeout(self.timeout, self.resolver.lookup(name.clone(), rtype));
        match looked.await {
            Ok(Ok(lookup)) => Forwarded::Answer(lookup.answers().to_vec()),
            Ok(Err(NetError::Dns(DnsError::NoRecordsFound(nr))))
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
            Ok(Err(e)) => {
                warn!(%name, %rtype, error = %e, "upstream lookup failed");
                self.fail(0)
            }
            Err(_) => {
                warn!(%name, %rtype, timeout = ?self.timeout, "upstream lookup timed out");
                self.fail(1)
            }
        }
    }

    /// The addresses of a CNAME target, for chasing; empty when the upstream has none or fails
    /// (the CNAME alone is still a correct answer).
    pub async fn chase(&self, target: &Name, rtype: RecordType) -> Vec<Record> {
        match self.resolve(&LowerName::from(target), rtype).await {
            Forwarded::Answer(records) => records,
            Forwarded::Negative { .. } | Forwarded::Failed => Vec::new(),
        }
    }
}
