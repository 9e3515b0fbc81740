//! UDP serving: the fast path inline, everything else through the hickory handler.
//!
//! hickory's `Server` reads its UDP sockets itself, which leaves no place for a fast path, so
//! UDP is served here (as TCP is, in [`super::tcp`]). Each address gets one blocking socket read by
//! one OS thread per core (with `recvmmsg`/`sendmmsg` on Linux, 32 datagrams per system call):
//! a thread blocked in the kernel takes the next datagram as soon as it arrives, where an async
//! task would first wait for the reactor to wake it. A thread answers the hot case from the
//! snapshot's precomputed bytes without leaving its loop; any other datagram is decoded into a
//! hickory `Request` and handled in a task on the async runtime, with the same rules as
//! hickory's server: datagrams too short for a header and responses are dropped, undecodable
//! queries get FORMERR, answers are encoded (and truncated) for the client's UDP size.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hickory_proto::op::{Header, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_server::net::NetError;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use tracing::{debug, warn};

use super::Handler;
use super::respond::{Answer, Sink, Tap};
use crate::zone::fast;

/// The largest datagram we read: anything longer is not a DNS query we answer.
#[cfg(not(target_os = "linux"))]
const MAX_DATAGRAM: usize = 65_535;

/// Counters of the UDP path.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Queries answered by the fast path.
    pub fast: AtomicU64,
    /// Queries handed to the hickory handler.
    pub slow: AtomicU64,
}

impl crate::telemetry::Report for UdpStats {
    fn report(&self, out: &mut crate::telemetry::Families) {
        out.by(
            crate::telemetry::Kind::Counter,
            "stabledns_udp_queries",
            "UDP queries by how they were answered",
            "path",
            [
                ("fast", self.fast.load(Ordering::Relaxed)),
                ("handler", self.slow.load(Ordering::Relaxed)),
            ],
        );
    }
}

/// How often a blocked thread looks at the shutdown flag.
pub const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What a serving thread needs.
pub struct Worker {
    /// A blocking socket with a receive timeout of [`SHUTDOWN_POLL`].
    pub socket: Arc<UdpSocket>,
    /// Answers what the fast path does not.
    pub handler: Handler,
    /// Whether the fast path is on.
    pub fast_path: bool,
    /// Counters.
    pub stats: Arc<UdpStats>,
    /// Set to stop.
    pub shutdown: Arc<AtomicBool>,
    /// Where slow-path tasks run.
    pub runtime: tokio::runtime::Handle,
    /// The socket is bound to a wildcard address: each answer must leave from the address its
    /// query arrived on (IP_PKTINFO / IPV6_PKTINFO), or the client drops it.
    pub pktinfo: bool,
    /// The socket's address (for the query log).
    pub addr: SocketAddr,
}

/// The local address a datagram arrived on, as the kernel reported it, to answer from.
#[cfg(target_os = "linux")]
pub(super) use batch::{Local, enable_pktinfo};
/// No such thing without `recvmmsg`: sockets there answer from the address they are bound to.
#[cfg(not(target_os = "linux"))]
#[derive(Debug, Clone, Copy)]
pub(super) enum Local {}

/// Serves one socket on this (blocking) thread until `shutdown` is set.
pub fn serve(worker: Worker) {
    #[cfg(target_os = "linux")]
    batch::serve(worker);
    #[cfg(not(target_os = "linux"))]
    serve_one_by_one(worker);
}

/// What to do with one received datagram: answer it into `out` (true) or hand it to the
/// hickory handler in a task of its own (false). `local` is where it arrived, on wildcard
/// sockets.
fn dispatch(
    query: &[u8],
    src: SocketAddr,
    local: Option<Local>,
    out: &mut Vec<u8>,
    w: &Worker,
) -> bool {
    if src.port() == 0 || src.ip().is_unspecified() {
        return false;
    }
    let server = match local {
        #[cfg(target_os = "linux")]
        Some(l) => SocketAddr::new(l.ip(), w.addr.port()),
        #[cfg(not(target_os = "linux"))]
        Some(never) => match never {},
        None => w.addr,
    };
    match w.handler.udp(src, server, query, out, w.fast_path) {
        super::Udp::Fast | super::Udp::Cached => {
            w.stats.fast.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        super::Udp::Send => return true,
        super::Udp::Drop => return false,
        super::Udp::Handler => {}
    }
    w.stats.slow.fetch_add(1, Ordering::Relaxed);
    let sink = UdpSink {
        socket: w.socket.clone(),
        dst: src,
        local,
    };
    let (handler, raw) = (w.handler.clone(), query.to_vec());
    w.runtime.spawn(async move {
        handle_raw(raw, src, server, Protocol::Udp, &handler, sink).await;
    });
    false
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One `recv_from` and one `send_to` per query: for systems without `recvmmsg`.
#[cfg(not(target_os = "linux"))]
fn serve_one_by_one(w: Worker) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(usize::from(fast::MAX_UDP_PAYLOAD));
    while !w.shutdown.load(Ordering::Relaxed) {
        let (len, src) = match w.socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if is_timeout(&e) => continue,
            Err(error) => {
                debug!(%error, "UDP receive error");
                continue;
            }
        };
        let received = std::time::Instant::now();
        if dispatch(&buf[..len], src, None, &mut out, &w) {
            if let Err(error) = w.socket.send_to(&out, src) {
                debug!(%src, %error, "failed to send a UDP response");
            }
            w.handler.metrics().fast_latency.observe(received.elapsed());
        }
    }
}

/// `recvmmsg`/`sendmmsg`: up to [`batch::SIZE`] datagrams per system call each way, which is
/// most of what a query costs once the answer is a copy.
#[cfg(target_os = "linux")]
mod batch {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering;

    use tracing::debug;

    use super::{Worker, dispatch, fast, is_timeout};

    /// Datagrams per system call.
    pub(super) const SIZE: usize = 32;
    /// Room per received datagram; a longer one arrives cut (MSG_TRUNC) and is left to the
    /// handler, which answers FORMERR or nothing, as for any garbage.
    const SLOT: usize = 4096;

    /// Room for one control message: an `in6_pktinfo` (20 bytes) or an `in_pktinfo` (12)
    /// with its header, aligned as the kernel writes it.
    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    struct Control([u8; 64]);

    /// Where a datagram arrived (its destination address and interface), to answer from.
    #[derive(Clone, Copy)]
    pub(crate) enum Local {
        V4(libc::in_pktinfo),
        V6(libc::in6_pktinfo),
    }

    impl Local {
        /// The address the datagram was sent to.
        pub(crate) fn ip(&self) -> std::net::IpAddr {
            match self {
                Local::V4(i) => Ipv4Addr::from(u32::from_be(i.ipi_addr.s_addr)).into(),
                Local::V6(i) => Ipv6Addr::from(i.ipi6_addr.s6_addr).into(),
            }
        }
    }

    impl std::fmt::Debug for Local {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.ip())
        }
    }

    /// Asks the kernel to report each datagram's destination address (both families on a
    /// dual-stack socket).
    pub(crate) fn enable_pktinfo(socket: &std::net::UdpSocket, v6: bool) -> io::Result<()> {
        let on: libc::c_int = 1;
        let set = |level, name| {
            // SAFETY: a valid socket and a c_int option value of the right size.
            let r = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    level,
                    name,
                    (&raw const on).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        if v6 {
            set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
            // v4 datagrams on a dual-stack socket report IP_PKTINFO; a v6-only socket has none.
            let _ = set(libc::IPPROTO_IP, libc::IP_PKTINFO);
            Ok(())
        } else {
            set(libc::IPPROTO_IP, libc::IP_PKTINFO)
        }
    }

    /// The destination the kernel reported in a received message's control data.
    fn local_of(hdr: &libc::msghdr) -> Option<Local> {
        // SAFETY: the kernel filled `msg_control` up to `msg_controllen`; the CMSG macros stay
        // within it, and each payload is read unaligned at its reported type.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let c = &*cmsg;
                let data = libc::CMSG_DATA(cmsg);
                if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
                    let mut info: libc::in_pktinfo =
                        data.cast::<libc::in_pktinfo>().read_unaligned();
                    // Answer from the address asked; let routing pick the interface.
                    info.ipi_spec_dst = info.ipi_addr;
                    info.ipi_ifindex = 0;
                    return Some(Local::V4(info));
                }
                if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
                    // The interface stays: a link-local address means nothing without it.
                    return Some(Local::V6(data.cast::<libc::in6_pktinfo>().read_unaligned()));
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
            None
        }
    }

    /// Writes `local` as the one control message of `hdr`, in `buf`.
    ///
    /// # Safety
    /// `hdr` must be a message header that is not in use; `buf` must outlive its use.
    unsafe fn set_local(hdr: &mut libc::msghdr, buf: &mut Control, local: &Local) {
        let (level, kind, len) = match local {
            Local::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            Local::V6(_) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
        };
        // SAFETY: `buf` holds CMSG_SPACE of either payload (at most 40 of its 64 bytes) and is
        // aligned for cmsghdr; the caller owns `hdr`.
        unsafe {
            hdr.msg_control = buf.0.as_mut_ptr().cast();
            hdr.msg_controllen = libc::CMSG_SPACE(len as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(hdr);
            (*cmsg).cmsg_level = level;
            (*cmsg).cmsg_type = kind;
            (*cmsg).cmsg_len = libc::CMSG_LEN(len as u32) as _;
            let data = libc::CMSG_DATA(cmsg);
            match local {
                Local::V4(info) => data.cast::<libc::in_pktinfo>().write_unaligned(*info),
                Local::V6(info) => data.cast::<libc::in6_pktinfo>().write_unaligned(*info),
            }
        }
    }

    /// One datagram to `dst` from the address `local` names (the slow path's answers).
    pub(super) fn send_from(
        socket: &std::net::UdpSocket,
        bytes: &[u8],
        dst: SocketAddr,
        local: &Local,
    ) -> io::Result<()> {
        let dst = socket2::SockAddr::from(dst);
        let mut control = Control([0; 64]);
        // SAFETY: every pointer points at a local that outlives the call; the kernel only
        // reads the buffer, the address and the control data.
        unsafe {
            let mut iov = libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            };
            let mut hdr: libc::msghdr = zeroed();
            hdr.msg_name = dst.as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = dst.len();
            hdr.msg_iov = &raw mut iov;
            hdr.msg_iovlen = 1;
            set_local(&mut hdr, &mut control, local);
            if libc::sendmsg(socket.as_raw_fd(), &hdr, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    pub(super) fn serve(w: Worker) {
        let fd = w.socket.as_raw_fd();
        let mut bufs = vec![[0u8; SLOT]; SIZE];
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; SIZE];
        let mut outs: Vec<Vec<u8>> = (0..SIZE)
            .map(|_| Vec::with_capacity(usize::from(fast::MAX_UDP_PAYLOAD)))
            .collect();
        let mut lens = [0usize; SIZE];
        // Control data in and out: only wildcard sockets ask for it, so bound ones pay nothing.
        let mut controls = vec![Control([0; 64]); if w.pktinfo { SIZE } else { 0 }];
        let mut locals: [Option<Local>; SIZE] = [None; SIZE];
        while !w.shutdown.load(Ordering::Relaxed) {
            let n = match recv_batch(
                fd,
                &mut bufs,
                &mut addrs,
                &mut controls,
                &mut lens,
                &mut locals,
            ) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => continue,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on Linux; keep serving.
                    debug!(%error, "UDP receive error");
                    continue;
                }
            };
            // Every answer of the batch leaves with the last sendmmsg: that is its latency.
            let received = std::time::Instant::now();
            let mut order = [0usize; SIZE];
            let mut count = 0;
            for i in 0..n {
                let answered = socket_addr(&addrs[i]).is_some_and(|src| {
                    dispatch(&bufs[i][..lens[i]], src, locals[i], &mut outs[i], &w)
                });
                if answered {
                    order[count] = i;
                    count += 1;
                }
            }
            let mut done = 0;
            while done < count {
                done += match send_batch(
                    fd,
                    &order[done..count],
                    &outs,
                    &addrs,
                    &locals,
                    &mut controls,
                ) {
                    Ok(k) => k.max(1),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(error) => {
                        // The first datagram failed (e.g. an unreachable client): skip it.
                        debug!(%error, "UDP send error");
                        1
                    }
                };
            }
            if count > 0 {
                let latency = received.elapsed();
                (w.handler.metrics().fast_latency).observe_n(latency, count as u64);
            }
        }
    }

    /// One blocking `recvmmsg` that returns once at least one datagram is in
    /// (MSG_WAITFORONE), or after the socket's receive timeout. With `controls` (one per
    /// slot), each datagram's destination address lands in `locals`.
    fn recv_batch(
        fd: i32,
        bufs: &mut [[u8; SLOT]],
        addrs: &mut [libc::sockaddr_storage],
        controls: &mut [Control],
        lens: &mut [usize; SIZE],
        locals: &mut [Option<Local>; SIZE],
    ) -> io::Result<usize> {
        // SAFETY: every pointer below points into `bufs`, `addrs`, `controls` or the local
        // arrays, which outlive the call; lengths match the buffers.
        unsafe {
            let mut iovs: [libc::iovec; SIZE] = zeroed();
            let mut hdrs: [libc::mmsghdr; SIZE] = zeroed();
            for i in 0..SIZE {
                iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
                iovs[i].iov_len = SLOT;
                hdrs[i].msg_hdr.msg_name = (&raw mut addrs[i]).cast();
                hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
                hdrs[i].msg_hdr.msg_iov = &raw mut iovs[i];
                hdrs[i].msg_hdr.msg_iovlen = 1;
            }
            // Sockets bound to one address have no control buffers and skip this.
            for (hdr, c) in hdrs.iter_mut().zip(controls.iter_mut()) {
                hdr.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
                hdr.msg_hdr.msg_controllen = c.0.len() as _;
            }
            let n = libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                SIZE as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            );
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for i in 0..n {
                lens[i] = (hdrs[i].msg_len as usize).min(SLOT);
            }
            if !controls.is_empty() {
                for i in 0..n {
                    locals[i] = local_of(&hdrs[i].msg_hdr);
                }
            }
            Ok(n)
        }
    }

    /// One `sendmmsg` of the answers at `which`, each from its `locals` address when there is
    /// one; `Ok(k)` for how many went.
    fn send_batch(
        fd: i32,
        which: &[usize],
        outs: &[Vec<u8>],
        addrs: &[libc::sockaddr_storage],
        locals: &[Option<Local>; SIZE],
        controls: &mut [Control],
    ) -> io::Result<usize> {
        let count = which.len().min(SIZE);
        // SAFETY: as in `recv_batch`; the kernel only reads the buffers, addresses and
        // control data. A slot's control buffer is reused for its answer: the received data
        // was parsed already.
        unsafe {
            let mut iovs: [libc::iovec; SIZE] = zeroed();
            let mut hdrs: [libc::mmsghdr; SIZE] = zeroed();
            for (slot, &i) in which.iter().take(count).enumerate() {
                iovs[slot].iov_base = outs[i].as_ptr() as *mut libc::c_void;
                iovs[slot].iov_len = outs[i].len();
                hdrs[slot].msg_hdr.msg_name = (&raw const addrs[i]) as *mut libc::c_void;
                hdrs[slot].msg_hdr.msg_namelen = addr_len(&addrs[i]);
                hdrs[slot].msg_hdr.msg_iov = &raw mut iovs[slot];
                hdrs[slot].msg_hdr.msg_iovlen = 1;
                if controls.is_empty() {
                    continue;
                }
                if let (Some(local), Some(c)) = (&locals[i], controls.get_mut(i)) {
                    set_local(&mut hdrs[slot].msg_hdr, c, local);
                }
            }
            let n = libc::sendmmsg(fd, hdrs.as_mut_ptr(), count as u32, 0);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(n as usize)
        }
    }

    fn addr_len(addr: &libc::sockaddr_storage) -> u32 {
        match i32::from(addr.ss_family) {
            libc::AF_INET => size_of::<libc::sockaddr_in>() as u32,
            _ => size_of::<libc::sockaddr_in6>() as u32,
        }
    }

    fn socket_addr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(addr.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says this storage holds a sockaddr_in.
                let v4 = unsafe {
                    &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                    u16::from_be(v4.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this storage holds a sockaddr_in6.
                let v6 = unsafe {
                    &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(v6.sin6_addr.s6_addr),
                    u16::from_be(v6.sin6_port),
                    v6.sin6_flowinfo,
                    v6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Decodes one query and answers it through the handler; FORMERR for an undecodable one.
/// `false` when the bytes are not a query at all (shorter than a header, or a response, which
/// is never answered: that is how reflection loops start).
pub(super) async fn handle_raw<S: Sink>(
    raw: Vec<u8>,
    src: SocketAddr,
    server: SocketAddr,
    protocol: Protocol,
    handler: &Handler,
    sink: S,
) -> bool {
    let header = {
        let mut decoder = BinDecoder::new(&raw);
        match Header::read(&mut decoder) {
            Ok(h) => h,
            Err(_) => return false,
        }
    };
    if header.metadata.message_type == MessageType::Response {
        return false;
    }
    // Views, ACLs and logs see a v4 client on a dual-stack socket as v4.
    let src = SocketAddr::new(src.ip().to_canonical(), src.port());
    let tap = handler.query_log().map(|log| Tap {
        log: log.clone(),
        query: Arc::from(raw.as_slice()),
        client: src,
        server,
        tcp: protocol == Protocol::Tcp,
        received: std::time::SystemTime::now(),
    });
    // A compression pointer in the question section: FORMERR, without echoing the question
    // (see `a_question_is_compressed`).
    let parsed = if a_question_is_compressed(&raw) {
        Err("a compression pointer in the question".to_owned())
    } else {
        Request::from_bytes(raw, src, protocol).map_err(|e| e.to_string())
    };
    match parsed {
        Ok(request) => {
            handler.handle(&request, sink, tap).await;
        }
        Err(error) => {
            debug!(%src, %error, "undecodable query");
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                return true;
            };
            let response = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            let mut answer = Answer::new(sink, RecordType::Unknown(0), None, tap, None);
            if let Err(error) = answer.send_response(response).await {
                warn!(%src, %error, "failed to send FORMERR");
            }
        }
    }
    true
}

/// Answers one datagram through the hickory handler as the UDP path would, collecting the
/// encoded responses instead of sending them: for the fuzz targets and tests, which have no
/// socket.
#[doc(hidden)]
pub async fn answer_datagram(handler: &Handler, raw: Vec<u8>, src: SocketAddr) -> Vec<Vec<u8>> {
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Collect { sent: sent.clone() };
    let server = SocketAddr::from(([127, 0, 0, 1], 53));
    handle_raw(raw, src, server, Protocol::Udp, handler, sink).await;
    let mut sent = sent
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    sent.shrink_to_fit();
    sent
}

/// Keeps what hickory would send, encoded as for UDP.
#[derive(Clone)]
struct Collect {
    sent: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

#[async_trait::async_trait]
impl Sink for Collect {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(bytes.to_vec());
        }
        Ok(())
    }
}

/// Whether a name in a query's question section uses a compression pointer. The first name
/// can only point back into the header; a later one could point at an earlier question, but a
/// query has one question (RFC 9619), and one with more is refused. hickory decodes such names
/// and echoes the raw question bytes in its answer, where a pointer into the header lands in
/// our own header instead: an answer no client can parse.
fn a_question_is_compressed(raw: &[u8]) -> bool {
    let count = raw
        .get(4..6)
        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    let mut at = 12;
    for _ in 0..count {
        loop {
            match raw.get(at) {
                None => return false, // cut short: hickory refuses it as undecodable
                Some(0) => break,
                Some(l) if l & 0xc0 != 0 => return true,
                Some(&l) => at += 1 + usize::from(l),
            }
        }
        at += 1 + 4; // the root label, then type and class
    }
    false
}

/// Sends hickory's responses on our socket.
#[derive(Clone)]
struct UdpSink {
    socket: Arc<UdpSocket>,
    /// As received (a v4 client on a dual-stack socket stays ::ffff:a.b.c.d).
    dst: SocketAddr,
    local: Option<Local>,
}

#[async_trait::async_trait]
impl Sink for UdpSink {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        // A blocking send on UDP waits only while the socket's send buffer is full.
        let sent = match self.local {
            #[cfg(target_os = "linux")]
            Some(local) => batch::send_from(&self.socket, bytes, self.dst, &local),
            #[cfg(not(target_os = "linux"))]
            Some(never) => match never {},
            None => self.socket.send_to(bytes, self.dst).map(drop),
        };
        sent.map_err(|e| NetError::from(std::io::Error::new(e.kind(), e.to_string())))
    }
}
