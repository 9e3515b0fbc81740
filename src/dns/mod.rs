//! DNS answering: the only module that knows hickory-server.
//!
//! [`Handler`] is a hickory `RequestHandler` over the current [`Snapshot`](crate::zone::Snapshot):
//! it checks the request, looks the question up in the view's table and writes the answer.
//! Every refusal or failure goes through [`error_response`], one place that maps what went wrong
//! to an RCODE. hickory's `Server` owns the sockets: it drops datagrams too short to hold a
//! header and answers undecodable ones with FORMERR before they reach us.

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use crate::zone::{Lookup, SnapshotCell};

mod server;

pub use server::{DnsServer, bind};

/// The largest UDP payload we send, whatever the client offers: the DNS Flag Day 2020 value,
/// which avoids IP fragmentation on every common path.
const MAX_UDP_PAYLOAD: u16 = 1232;

/// Answers queries from the published snapshot.
#[derive(Debug, Clone)]
pub struct Handler {
    snapshot: SnapshotCell,
}

impl Handler {
    /// A handler that answers from whatever `snapshot` holds at the time of each query.
    pub fn new(snapshot: SnapshotCell) -> Self {
        Self { snapshot }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let response_edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            edns
        });
        let edns = response_edns.as_ref();

        if request.metadata.message_type != MessageType::Query {
            return error_response(request, edns, ResponseCode::FormErr, response_handle).await;
        }
        if request.metadata.op_code != OpCode::Query {
            return error_response(request, edns, ResponseCode::NotImp, response_handle).await;
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return error_response(request, edns, ResponseCode::BADVERS, response_handle).await;
        }
        let [query] = request.queries.queries() else {
            // RFC 9619: exactly one question.
            return error_response(request, edns, ResponseCode::FormErr, response_handle).await;
        };
        if query.query_class() != DNSClass::IN {
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        }
        if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers are for allowed peers only, and none is configured.
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        }
        let Some(snapshot) = self.snapshot.load() else {
            // Nothing published yet: say so, rather than deny names that may exist.
            return error_response(request, edns, ResponseCode::ServFail, response_handle).await;
        };
        let Some(view) = snapshot.view_for(request.src().ip()) else {
            // No view takes this client: it is not ours to answer.
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        };

        let (rcode, answers, soa, additionals): (_, &[Record], Option<&Record>, &[Record]) =
            match view.lookup(&snapshot.apex, query.name(), query.query_type()) {
                Lookup::NotOurs => {
                    return error_response(request, edns, ResponseCode::Refused, response_handle)
                        .await;
                }
                Lookup::Answer {
                    answers,
                    additionals,
                } => (ResponseCode::NoError, answers, None, additionals),
                Lookup::NoData(soa) => (ResponseCode::NoError, &[], Some(soa), &[]),
                Lookup::NxDomain(soa) => (ResponseCode::NXDomain, &[], Some(soa), &[]),
            };

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.response_code = rcode;
        let response = MessageResponseBuilder::new(&request.queries, edns).build(
            metadata,
            answers.iter(),
            None::<&Record>,
            soa,
            additionals.iter(),
        );
        send(request, response_handle.send_response(response).await)
    }
}

/// The one place a refusal or failure becomes a response: no records, the RCODE, EDNS echoed.
async fn error_response<R: ResponseHandler>(
    request: &Request,
    edns: Option<&Edns>,
    rcode: ResponseCode,
    mut response_handle: R,
) -> ResponseInfo {
    debug!(id = request.metadata.id, src = %request.src(), %rcode, "refusing request");
    let response =
        MessageResponseBuilder::new(&request.queries, edns).error_msg(&request.metadata, rcode);
    send(request, response_handle.send_response(response).await)
}

fn send(
    request: &Request,
    sent: Result<ResponseInfo, hickory_server::net::NetError>,
) -> ResponseInfo {
    sent.unwrap_or_else(|error| {
        warn!(src = %request.src(), %error, "failed to send response");
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = ResponseCode::ServFail;
        ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        })
    })
}
