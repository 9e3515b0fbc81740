//! Socket wiring: every listen address serves UDP and TCP on the same port. UDP is ours (the
//! fast path, [`super::udp`]); TCP is hickory's `Server`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Handler;
use super::udp::{self, UdpStats};

/// Outgoing responses queued per TCP connection before the writer applies back-pressure.
const TCP_RESPONSE_BUFFER: usize = 32;

/// How many times to look for a port free on both UDP and TCP when asked for port 0.
const EPHEMERAL_ATTEMPTS: usize = 20;

/// Receive buffer per UDP socket: room for bursts while a core is busy.
const UDP_RECV_BUFFER: usize = 4 << 20;

/// A bound, running DNS server.
pub struct DnsServer {
    server: Server<Handler>,
    udp: JoinSet<()>,
    udp_shutdown: CancellationToken,
    /// The addresses actually bound (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
    /// UDP counters.
    pub udp_stats: Arc<UdpStats>,
}

impl DnsServer {
    /// Stops accepting, lets in-flight answers finish, and waits for the socket tasks.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.udp_shutdown.cancel();
        while self.udp.join_next().await.is_some() {}
        self.server
            .shutdown_gracefully()
            .await
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Binds UDP and TCP on each address and starts answering with `handler`; `fast_path` off
/// sends every UDP query through the hickory handler.
pub async fn bind(
    listen: &[SocketAddr],
    handler: Handler,
    tcp_idle_timeout: Duration,
    fast_path: bool,
) -> io::Result<DnsServer> {
    let mut server = Server::new(handler.clone());
    let mut addrs = Vec::with_capacity(listen.len());
    let mut udp = JoinSet::new();
    let udp_shutdown = CancellationToken::new();
    let udp_stats = Arc::new(UdpStats::default());
    // One receiving task per core.
    let per_address = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    for &addr in listen {
        let (first, tcp) = bind_pair(addr).await?;
        let local = first.local_addr()?;
        // Copies of one socket rather than SO_REUSEPORT siblings: the kernel hashes each client
        // to one sibling, so a few busy clients could pin one core; a shared socket hands the
        // next datagram to whichever task asks first.
        let std_socket = first.into_std()?;
        let mut sockets = Vec::with_capacity(per_address);
        for _ in 1..per_address {
            sockets.push(UdpSocket::from_std(std_socket.try_clone()?)?);
        }
        sockets.push(UdpSocket::from_std(std_socket)?);
        info!(udp_sockets = sockets.len(), %local, "listening on UDP and TCP");
        for socket in sockets {
            udp.spawn(udp::serve(
                Arc::new(socket),
                handler.clone(),
                fast_path,
                udp_stats.clone(),
                udp_shutdown.clone(),
            ));
        }
        server.register_listener(tcp, tcp_idle_timeout, TCP_RESPONSE_BUFFER);
        addrs.push(local);
    }
    Ok(DnsServer {
        server,
        udp,
        udp_shutdown,
        addrs,
        udp_stats,
    })
}

/// A non-blocking UDP socket with a large receive buffer.
fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer only drops more under overload.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("failed to bind UDP {addr}: {e}")))?;
    UdpSocket::from_std(socket.into())
}

/// UDP and TCP on one port. For port 0 the kernel picks a UDP port that may be taken on TCP,
/// so try a few.
async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 {
        EPHEMERAL_ATTEMPTS
    } else {
        1
    };
    let mut last = None;
    for _ in 0..attempts {
        let udp = udp_socket(addr)?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => {
                last = Some(io::Error::new(
                    e.kind(),
                    format!("failed to bind TCP {local}: {e}"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other(format!("failed to bind {addr}"))))
}
