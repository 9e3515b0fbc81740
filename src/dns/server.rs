//! Socket wiring: every listen address serves UDP and TCP on the same port.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

use super::Handler;

/// Outgoing responses queued per TCP connection before the writer applies back-pressure.
const TCP_RESPONSE_BUFFER: usize = 32;

/// How many times to look for a port free on both UDP and TCP when asked for port 0.
const EPHEMERAL_ATTEMPTS: usize = 20;

/// A bound, running DNS server.
pub struct DnsServer {
    server: Server<Handler>,
    /// The addresses actually bound (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
}

impl DnsServer {
    /// Stops accepting, lets in-flight answers finish, and waits for the socket tasks.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.server
            .shutdown_gracefully()
            .await
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Binds UDP and TCP on each address and starts answering with `handler`.
pub async fn bind(
    listen: &[SocketAddr],
    handler: Handler,
    tcp_idle_timeout: Duration,
) -> io::Result<DnsServer> {
    let mut server = Server::new(handler);
    let mut addrs = Vec::with_capacity(listen.len());
    for &addr in listen {
        let (udp, tcp) = bind_pair(addr).await?;
        let local = udp.local_addr()?;
        info!(%local, "listening on UDP and TCP");
        server.register_socket(udp);
        server.register_listener(tcp, tcp_idle_timeout, TCP_RESPONSE_BUFFER);
        addrs.push(local);
    }
    Ok(DnsServer { server, addrs })
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
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("failed to bind UDP {addr}: {e}")))?;
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
