//! How an answer leaves: counted, encoded for its transport, copied to the query log, sent.
//!
//! hickory's handler hands each response to a `ResponseHandler` as records; [`Answer`] is ours,
//! one for every transport, and the transports differ only in their [`Sink`]: how large an
//! answer may be and where its bytes go.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hickory_proto::op::{Edns, Header, HeaderCounts, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::server::{ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tracing::warn;

use super::Metrics;
use super::querylog::{Answered, Path, QueryLog};
use crate::telemetry::QueryCounters;

/// Where a transport's answers go.
#[async_trait::async_trait]
pub(crate) trait Sink: Clone + Send + Sync + Unpin + 'static {
    /// The largest answer for a query with `edns`: the client's UDP size (512 without EDNS,
    /// RFC 1035 4.2.1), or 65,535 on a stream.
    fn max_size(&self, edns: Option<&Edns>) -> u16 {
        edns.map_or(512, Edns::max_payload)
    }

    /// Sends one encoded answer.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), NetError>;
}

/// What the query log needs of a query besides its answer, when the log is on.
#[derive(Clone)]
pub(crate) struct Tap {
    pub log: Arc<QueryLog>,
    pub query: Arc<[u8]>,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub tcp: bool,
    pub received: SystemTime,
}

/// A query's answers: counted as they are sent (not after: a client may ask for the counts as
/// soon as it has its answer), encoded, logged, sent.
#[derive(Clone)]
pub(crate) struct Answer<S> {
    sink: S,
    started: Instant,
    qtype: RecordType,
    /// The client's view's counters (none for a query that never reached the handler).
    counters: Option<(Arc<QueryCounters>, Arc<Metrics>)>,
    tap: Option<Tap>,
    view: Option<String>,
    /// How the answer was made, for the log: the handler says when it forwarded.
    pub path: Path,
}

impl<S: Sink> Answer<S> {
    /// Answers for a query the handler takes.
    pub(crate) fn new(
        sink: S,
        qtype: RecordType,
        counters: Option<(Arc<QueryCounters>, Arc<Metrics>)>,
        tap: Option<Tap>,
        view: Option<String>,
    ) -> Self {
        Self {
            sink,
            started: Instant::now(),
            qtype,
            counters,
            tap,
            view,
            path: Path::Handler,
        }
    }
}

#[async_trait::async_trait]
impl<S: Sink> ResponseHandler for Answer<S> {
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
        let rcode = response.metadata().response_code;
        if let Some((counters, metrics)) = &self.counters {
            counters.count_answer(self.qtype, rcode);
            metrics.handler_latency.observe(self.started.elapsed());
        }
        let max = self.sink.max_size(response.edns());
        let (bytes, info) = encode(response, max)?;
        if let Some(tap) = &self.tap {
            tap.log.offer(rcode.into(), || Answered {
                received: tap.received,
                latency: self.started.elapsed(),
                client: tap.client,
                server: tap.server,
                tcp: tap.tcp,
                path: self.path,
                view: self.view.clone(),
                query: tap.query.to_vec(),
                response: bytes.clone(),
            });
        }
        self.sink.send(&bytes).await?;
        Ok(info)
    }
}

/// A response encoded in at most `max_size` bytes (for UDP the client's EDNS size, 512
/// without EDNS: RFC 1035 4.2.1), truncated with TC past it; a bare SERVFAIL if it cannot be
/// encoded at all, as hickory's server does.
pub(crate) fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    max_size: u16,
) -> Result<(Vec<u8>, ResponseInfo), NetError> {
    let mut bytes = Vec::with_capacity(512);
    let metadata = *response.metadata();
    let edns = response.edns().cloned();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max_size);
    let info = match response.destructive_emit(&mut encoder) {
        Ok(info) if info.truncation => {
            let header = Header {
                metadata: *info,
                counts: info.counts(),
            };
            truncated(&mut bytes, &header, edns.as_ref())?
        }
        Ok(info) => info,
        Err(error) => {
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
    Ok((bytes, info))
}

/// Cuts an answer that did not fit down to its header and question, with TC, and the OPT
/// record when the query had one (RFC 6891 7): whatever hickory wrote past the question may
/// hold a record cut in half, which its counts do not describe (RFC 1035 4.1, RFC 2181 9). The
/// client asks again over TCP, as it does for NSD's empty truncated answers.
fn truncated(
    bytes: &mut Vec<u8>,
    header: &Header,
    edns: Option<&hickory_proto::op::Edns>,
) -> Result<ResponseInfo, NetError> {
    let mut at = 12;
    for _ in 0..header.counts.queries {
        at = skip_name(bytes, at)
            .ok_or_else(|| NetError::from("a truncated answer lost its question"))?
            + 4;
    }
    if at > bytes.len() {
        return Err(NetError::from("a truncated answer lost its question"));
    }
    bytes.truncate(at);
    let mut additionals = 0;
    if let Some(edns) = edns {
        let mut edns = edns.clone();
        edns.set_rcode_high(header.metadata.response_code.high());
        let mut opt = Vec::with_capacity(11);
        Record::from(&edns).emit(&mut BinEncoder::new(&mut opt))?;
        bytes.extend_from_slice(&opt);
        additionals = 1;
    }
    let mut metadata = header.metadata;
    metadata.truncation = true;
    let header = Header {
        metadata,
        counts: HeaderCounts {
            queries: header.counts.queries,
            answers: 0,
            authorities: 0,
            additionals,
        },
    };
    let mut head = Vec::with_capacity(12);
    header.emit(&mut BinEncoder::new(&mut head))?;
    bytes[..12].copy_from_slice(&head);
    Ok(ResponseInfo::from(header))
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *bytes.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}
