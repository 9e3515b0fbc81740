//! TCP serving: our own accept loop, so connections are limited (in all and per client), idle
//! ones are closed, and answers are written as they are produced.
//!
//! hickory's `Server` accepts without limit and writes a request's answers only after its
//! handler returns (a zone transfer's messages all wait in memory). Here each connection is a
//! task reading length-prefixed queries and answering up to [`MAX_PIPELINED`] of them at once
//! (RFC 7766 6.2.1.1: a slow forwarded query must not hold back the in-zone answers behind
//! it), each through the same [`Handler`] as UDP's slow path; answers go out as they are
//! ready, each message whole, so a transfer streams with the client's pace.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::net::xfer::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Handler;
use super::respond::Sink;

/// Limits of the TCP listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_client: usize,
    /// A connection with no complete query for this long is closed.
    pub idle_timeout: Duration,
}

/// How long one answer message may take to write before the connection is dropped (a client
/// that stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Queries of one connection answered at once; the next is read when one of them is done.
/// Bounded so that one client cannot pile up unlimited work behind one socket.
pub const MAX_PIPELINED: usize = 32;

/// Counters of the TCP listener.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused_total: AtomicU64,
    /// Connections closed at once because their client had `max_per_client` open.
    pub refused_client: AtomicU64,
    /// Connections closed for idling.
    pub idle_closed: AtomicU64,
}

impl crate::telemetry::Report for TcpStats {
    fn report(&self, out: &mut crate::telemetry::Families) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.gauge(
            "stabledns_tcp_connections",
            "TCP connections open now",
            load(&self.open),
        );
        let help = "TCP connections accepted";
        out.counter(
            "stabledns_tcp_connections_accepted",
            help,
            load(&self.accepted),
        );
        out.by(
            crate::telemetry::Kind::Counter,
            "stabledns_tcp_connections_limited",
            "TCP connections closed by a limit, by reason",
            "reason",
            [
                ("max_connections", load(&self.refused_total)),
                ("per_client", load(&self.refused_client)),
                ("idle", load(&self.idle_closed)),
            ],
        );
    }
}

/// Accepts on `listener` until `shutdown`; the connections are tracked by `tasks`.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    limits: Limits,
    stats: Arc<TcpStats>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let per_client: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        let (stream, src) = match accepted {
            Ok(a) => a,
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                warn!(%error, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if usize::try_from(stats.open.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
            >= limits.max_connections
        {
            stats.refused_total.fetch_add(1, Ordering::Relaxed);
            debug!(%src, "TCP connection refused: max_tcp_connections open");
            continue; // dropping the stream closes it
        }
        let Some(slot) = ClientSlot::take(&per_client, src.ip(), limits.max_per_client) else {
            stats.refused_client.fetch_add(1, Ordering::Relaxed);
            debug!(%src, "TCP connection refused: the client has max_tcp_connections_per_client open");
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (handler, stats, shutdown) = (handler.clone(), stats.clone(), shutdown.clone());
        tasks.spawn(async move {
            connection(stream, src, &handler, limits, &stats, &shutdown).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

/// One client's share of the connections; given back on drop.
struct ClientSlot {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(table: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut t = table.lock().ok()?;
        let n = t.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.lock()
            && let Some(n) = t.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// Reads queries until the client closes, idles past the limit, sends garbage, or the server
/// shuts down; the queries being answered are finished first.
async fn connection(
    stream: tokio::net::TcpStream,
    src: SocketAddr,
    handler: &Handler,
    limits: Limits,
    stats: &TcpStats,
    shutdown: &CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let server = stream.local_addr().unwrap_or(src);
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(writer));
    // Messages are read whole by a task of their own and handed over by channel: a read cut
    // short in a `select!` would lose bytes and garble the stream.
    let (messages, mut next) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let idle = limits.idle_timeout;
    let mut reading = tokio::spawn(async move {
        loop {
            let mut len = [0u8; 2];
            if reader.read_exact(&mut len).await.is_err() {
                return false; // closed
            }
            let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
            match tokio::time::timeout(idle, reader.read_exact(&mut raw)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return false,
                Err(_) => return true, // half a message, then nothing: idle
            }
            if messages.send(raw).await.is_err() {
                return false;
            }
        }
    });
    let mut answering: tokio::task::JoinSet<bool> = tokio::task::JoinSet::new();
    loop {
        let room = answering.len() < MAX_PIPELINED;
        tokio::select! {
            message = next.recv(), if room => {
                let Some(raw) = message else {
                    if matches!((&mut reading).await, Ok(true)) {
                        stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                };
                let sink = TcpSink { writer: writer.clone() };
                let handler = handler.clone();
                answering.spawn(async move {
                    super::udp::handle_raw(raw, src, server, Protocol::Tcp, &handler, sink).await
                });
            }
            Some(done) = answering.join_next(), if !answering.is_empty() => {
                if !done.unwrap_or(false) {
                    break; // not a DNS query: nothing more will make sense on this stream
                }
            }
            // Idle: nothing asked and nothing being answered for that long.
            () = tokio::time::sleep(idle), if answering.is_empty() => {
                stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
            () = shutdown.cancelled() => break,
        }
    }
    reading.abort();
    // The answers already being worked on go out before the connection closes.
    while answering.join_next().await.is_some() {}
}

/// Writes answers to the connection, each as soon as it is sent.
#[derive(Clone)]
struct TcpSink {
    writer: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
}

#[async_trait::async_trait]
impl Sink for TcpSink {
    fn max_size(&self, _: Option<&hickory_proto::op::Edns>) -> u16 {
        u16::MAX
    }

    async fn send(&mut self, message: &[u8]) -> Result<(), NetError> {
        let len = u16::try_from(message.len())
            .map_err(|_| NetError::from("a TCP response longer than 65535 bytes"))?;
        let mut framed = Vec::with_capacity(message.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(message);
        let mut w = self.writer.lock().await;
        match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&framed)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NetError::from(std::io::Error::new(e.kind(), e.to_string()))),
            Err(_) => Err(NetError::from("the client stopped reading")),
        }
    }
}
