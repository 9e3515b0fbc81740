//! Socket wiring: every listen address serves UDP and TCP on the same port, both ours: UDP
//! for the fast path ([`super::udp`]), TCP for its limits and streaming ([`super::tcp`]). Both
//! hand what they do not answer themselves to the same [`Handler`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tokio::net::TcpListener;
use tracing::info;

use super::Handler;
use super::tcp::{self, TcpStats};
use super::udp::{self, UdpStats};

/// How many times to look for a port free on both UDP and TCP when asked for port 0.
const EPHEMERAL_ATTEMPTS: usize = 20;

/// Receive buffer per UDP socket: room for bursts while a core is busy.
const UDP_RECV_BUFFER: usize = 4 << 20;

/// A bound, running DNS server.
pub struct DnsServer {
    tcp_shutdown: CancellationToken,
    tcp_tasks: TaskTracker,
    udp: Vec<std::thread::JoinHandle<()>>,
    udp_shutdown: Arc<AtomicBool>,
    /// The addresses actually bound (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
    /// UDP counters.
    pub udp_stats: Arc<UdpStats>,
    /// TCP counters.
    pub tcp_stats: Arc<TcpStats>,
}

impl DnsServer {
    /// Stops accepting, lets in-flight answers finish, and waits for the socket tasks.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.udp_shutdown.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut self.udp);
        // The threads notice within one receive timeout; wait for them off the runtime.
        tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await
        .map_err(io::Error::other)?;
        // Listeners stop accepting; connections finish the query they are answering.
        self.tcp_shutdown.cancel();
        self.tcp_tasks.close();
        self.tcp_tasks.wait().await;
        Ok(())
    }
}

/// Binds UDP and TCP on each address and starts answering with `handler`; `fast_path` off
/// sends every UDP query through the hickory handler.
pub async fn bind(
    listen: &[SocketAddr],
    handler: Handler,
    tcp_limits: tcp::Limits,
    fast_path: bool,
) -> io::Result<DnsServer> {
    let tcp_shutdown = CancellationToken::new();
    let tcp_tasks = TaskTracker::new();
    let tcp_stats = Arc::new(TcpStats::default());
    let mut addrs = Vec::with_capacity(listen.len());
    let mut udp = Vec::new();
    let udp_shutdown = Arc::new(AtomicBool::new(false));
    let udp_stats = Arc::new(UdpStats::default());
    let runtime = tokio::runtime::Handle::current();
    // One receiving thread per core.
    let per_address = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    for &addr in listen {
        // `[::]:P` serves both families unless `0.0.0.0:P` is listed too (it would collide).
        let v6_only = addr.is_ipv6()
            && listen
                .iter()
                .any(|a| a.is_ipv4() && a.ip().is_unspecified() && a.port() == addr.port());
        let (first, tcp) = bind_pair(addr, v6_only).await?;
        // A wildcard socket must answer from the address each query arrived on.
        let pktinfo = cfg!(target_os = "linux") && addr.ip().is_unspecified();
        #[cfg(target_os = "linux")]
        if pktinfo {
            udp::enable_pktinfo(&first, addr.is_ipv6())?;
        }
        let local = first.local_addr()?;
        // One socket read by every thread rather than SO_REUSEPORT siblings: the kernel hashes
        // each client to one sibling, so a few busy clients could pin one core; a shared socket
        // hands the next datagram to whichever thread asks first.
        let socket = Arc::new(first);
        info!(udp_threads = per_address, %local, "listening on UDP and TCP");
        for n in 0..per_address {
            let worker = udp::Worker {
                socket: socket.clone(),
                handler: handler.clone(),
                fast_path,
                stats: udp_stats.clone(),
                shutdown: udp_shutdown.clone(),
                runtime: runtime.clone(),
                pktinfo,
                addr: local,
            };
            let thread = std::thread::Builder::new()
                .name(format!("udp-{local}-{n}"))
                .spawn(move || udp::serve(worker))?;
            udp.push(thread);
        }
        tcp_tasks.spawn(tcp::serve(
            tcp,
            handler.clone(),
            tcp_limits,
            tcp_stats.clone(),
            tcp_shutdown.clone(),
            tcp_tasks.clone(),
        ));
        addrs.push(local);
    }
    Ok(DnsServer {
        tcp_shutdown,
        tcp_tasks,
        udp,
        udp_shutdown,
        addrs,
        udp_stats,
        tcp_stats,
    })
}

/// A blocking UDP socket with a large receive buffer and a receive timeout, so its threads
/// notice shutdown.
fn udp_socket(addr: SocketAddr, v6_only: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Said either way: the system default (bindv6only) must not decide.
        socket.set_only_v6(v6_only)?;
    }
    // Best effort: a smaller buffer only drops more under overload.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.set_read_timeout(Some(udp::SHUTDOWN_POLL))?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("failed to bind UDP {addr}: {e}")))?;
    Ok(socket.into())
}

/// UDP and TCP on one port. For port 0 the kernel picks a UDP port that may be taken on TCP,
/// so try a few.
async fn bind_pair(
    addr: SocketAddr,
    v6_only: bool,
) -> io::Result<(std::net::UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 {
        EPHEMERAL_ATTEMPTS
    } else {
        1
    };
    let mut last = None;
    for _ in 0..attempts {
        let udp = udp_socket(addr, v6_only)?;
        let local = udp.local_addr()?;
        match tcp_listener(local, v6_only) {
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

/// A TCP listener on `addr`, dual-stack for `[::]` unless `v6_only`.
fn tcp_listener(addr: SocketAddr, v6_only: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    // As std and tokio do: a restart must not wait for TIME_WAIT connections to clear.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}
