//! UDP serving: the fast path inline, everything else through the hickory handler.
//!
//! hickory's `Server` reads its UDP sockets itself, which leaves no place for a fast path, so
//! UDP is served here (TCP stays with hickory). Each address gets one socket per core, bound
//! with SO_REUSEPORT so the kernel spreads clients over them, and one task per socket. A task
//! answers the hot case from the snapshot's precomputed bytes without leaving its loop; any
//! other datagram is decoded into a hickory `Request` and handled in a task of its own, with
//! the same rules as hickory's server: datagrams too short for a header and responses are
//! dropped, undecodable queries get FORMERR, answers are encoded (and truncated) for the
//! client's UDP size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Header, HeaderCounts, MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Handler;
use crate::zone::fast;

/// The largest datagram we read: anything longer is not a DNS query we answer.
const MAX_DATAGRAM: usize = 65_535;

/// Counters of the UDP path.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Queries answered by the fast path.
    pub fast: AtomicU64,
    /// Queries handed to the hickory handler.
    pub slow: AtomicU64,
}

/// Serves one socket until `shutdown`.
pub async fn serve(
    socket: Arc<UdpSocket>,
    handler: Handler,
    fast_path: bool,
    stats: Arc<UdpStats>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(usize::from(fast::MAX_UDP_PAYLOAD));
    loop {
        let (len, src) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on Linux; keep serving.
                    debug!(%error, "UDP receive error");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        if src.port() == 0 || src.ip().is_unspecified() {
            continue;
        }
        let query = &buf[..len];
        if fast_path && handler.answer_fast(src.ip(), query, &mut out) {
            stats.fast.fetch_add(1, Ordering::Relaxed);
            if let Err(error) = socket.send_to(&out, src).await {
                debug!(%src, %error, "failed to send a UDP response");
            }
            continue;
        }
        stats.slow.fetch_add(1, Ordering::Relaxed);
        let (socket, handler, raw) = (socket.clone(), handler.clone(), query.to_vec());
        tokio::spawn(async move { slow(raw, src, socket, handler).await });
    }
}

/// One datagram through the hickory handler, as hickory's own server would.
async fn slow(raw: Vec<u8>, src: SocketAddr, socket: Arc<UdpSocket>, handler: Handler) {
    let responder = UdpResponder { socket, dst: src };
    let header = {
        let mut decoder = BinDecoder::new(&raw);
        match Header::read(&mut decoder) {
            Ok(h) => h,
            Err(_) => return, // shorter than a header: not a DNS message
        }
    };
    if header.metadata.message_type == MessageType::Response {
        return; // never answer a response: that is how reflection loops start
    }
    match Request::from_bytes(raw, src, Protocol::Udp) {
        Ok(request) => {
            handler
                .handle_request::<_, TokioTime>(&request, responder)
                .await;
        }
        Err(error) => {
            debug!(%src, %error, "undecodable query");
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                return;
            };
            let response = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            let mut responder = responder;
            if let Err(error) = responder.send_response(response).await {
                warn!(%src, %error, "failed to send FORMERR");
            }
        }
    }
}

/// Sends hickory's responses on our socket.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let metadata = *response.metadata();
        let mut encoder = BinEncoder::new(&mut bytes);
        // RFC 1035 4.2.1: 512 bytes without EDNS; the encoder truncates and sets TC past it.
        encoder.set_max_size(response.edns().map_or(512, |e| e.max_payload()));
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                // As hickory's server does: a bare SERVFAIL rather than silence.
                warn!(%error, "failed to encode a response");
                bytes.clear();
                let mut metadata = metadata;
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                header.emit(&mut BinEncoder::new(&mut bytes))?;
                ResponseInfo::from(header)
            }
        };
        self.socket
            .send_to(&bytes, self.dst)
            .await
            .map_err(|e| NetError::from(std::io::Error::new(e.kind(), e.to_string())))?;
        Ok(info)
    }
}
