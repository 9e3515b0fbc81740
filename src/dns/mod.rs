//! DNS answering: the only module that knows hickory-server.
//!
//! [`Handler`] answers a decoded hickory `Request` from the current
//! [`Snapshot`], as a hickory `RequestHandler` would: it checks the
//! request, picks the client's view, looks the question up in that view's table and writes the
//! answer. Names outside our zones go to the [`forward::Forwarder`] for views that may recurse
//! and are refused for the rest. Every refusal or failure goes through `error_response`, one
//! place that maps what went wrong to an RCODE. The sockets are ours ([`udp`], [`tcp`]): they
//! drop datagrams too short to hold a header, answer undecodable ones with FORMERR, and hand
//! the rest to the handler with a `respond::Sink` for the answers, which counts, encodes and
//! logs each ([`querylog`]) on its way out. It is not hickory's trait because the answer's
//! bytes must reach the query log, and hickory's responders only see records.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use crate::telemetry::{QueryCounters, RefreshStats};
use crate::zone::{Lookup, Pick, Snapshot, SnapshotCell, ViewZone};

mod cache;
mod dnstap;
mod explain;
pub mod forward;
pub(crate) mod notify;
pub mod querylog;
mod respond;
pub(crate) mod rrl;
mod server;
mod stats;
pub mod tcp;
pub(crate) mod transfer;
pub mod udp;
pub mod upstream;

pub use forward::Forwarder;
pub use querylog::QueryLog;
use respond::{Answer, Sink, Tap};
pub use server::{DnsServer, bind};
pub use stats::Metrics;

use crate::zone::fast::MAX_UDP_PAYLOAD;

/// Answers queries from the published snapshot.
#[derive(Clone)]
pub struct Handler {
    snapshot: SnapshotCell,
    /// Swapped whole when a reload changes the upstreams.
    forwarder: Arc<ArcSwapOption<Forwarder>>,
    stats: Option<Arc<RefreshStats>>,
    metrics: Arc<Metrics>,
    /// TSIG keys for zone transfers; swapped whole on reload.
    keys: Arc<arc_swap::ArcSwap<Vec<hickory_proto::rr::TSigner>>>,
    /// Answers to `version.bind` and `id.server`.
    chaos: Arc<Chaos>,
    /// Response rate limiting, per view: runtime state, outside the snapshot.
    rrl: Arc<rrl::Tables>,
    /// The query log and dnstap, when the server has one.
    log: Option<Arc<QueryLog>>,
}

/// What the server says of itself in CHAOS-class TXT answers, as NSD's `version` and
/// `identity` options: nothing (REFUSED) unless the operator configures it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chaos {
    /// For `version.bind.` and `version.server.`.
    pub version: Option<String>,
    /// For `id.server.` and `hostname.bind.`.
    pub identity: Option<String>,
}

impl Chaos {
    /// The configured text for a CH TXT question, if any.
    fn text(&self, name: &LowerName) -> Option<&str> {
        match name.to_string().to_ascii_lowercase().as_str() {
            "version.bind." | "version.server." => self.version.as_deref(),
            "id.server." | "hostname.bind." => self.identity.as_deref(),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TSIG keys stay out of logs.
        f.debug_struct("Handler")
            .field("forwarder", &self.forwarder.load())
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// A handler that answers from whatever `snapshot` holds at the time of each query.
    pub fn new(snapshot: SnapshotCell) -> Self {
        Self {
            snapshot,
            forwarder: Arc::default(),
            stats: None,
            metrics: Arc::default(),
            keys: Arc::default(),
            chaos: Arc::default(),
            rrl: Arc::default(),
            log: None,
        }
    }

    /// Copies answers to `log` (as its settings say).
    pub fn with_query_log(mut self, log: Arc<QueryLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// The query log, when it is on: what a transport checks before copying a query.
    pub(crate) fn query_log(&self) -> Option<&Arc<QueryLog>> {
        self.log.as_ref().filter(|l| l.on())
    }

    /// Answers CHAOS-class version and identity questions with `chaos`.
    pub fn with_chaos(mut self, chaos: Chaos) -> Self {
        self.chaos = Arc::new(chaos);
        self
    }

    /// Verifies and signs zone transfers with the keys `keys` holds.
    pub fn with_keys(
        mut self,
        keys: Arc<arc_swap::ArcSwap<Vec<hickory_proto::rr::TSigner>>>,
    ) -> Self {
        self.keys = keys;
        self
    }

    /// Counts answers and their latency in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Where answers are counted.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Forwards names outside our zones (for views that may recurse) through `forwarder`.
    pub fn with_forwarder(mut self, forwarder: Arc<ArcSwapOption<Forwarder>>) -> Self {
        self.forwarder = forwarder;
        self
    }

    /// Reads the data's age for `_explain` answers from the refresh loop's counters.
    pub fn with_stats(mut self, stats: Arc<RefreshStats>) -> Self {
        self.stats = Some(stats);
        self
    }
}

impl Handler {
    /// The first step for a UDP datagram from `client` to `server`, with one snapshot load
    /// and one view lookup: the view's rate limit, then (when `fast_path`) the answer from
    /// precomputed bytes into `out`; what is answered here is copied to the query log.
    pub fn udp(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        query: &[u8],
        out: &mut Vec<u8>,
        fast_path: bool,
    ) -> Udp {
        // A v4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = client.ip().to_canonical();
        let guard = self.snapshot.guard();
        let Some(snapshot) = guard.as_deref() else {
            return Udp::Handler;
        };
        let Some(index) = snapshot.view_index_for(ip) else {
            return Udp::Handler;
        };
        let view = &snapshot.views[index];
        let set = (self.metrics.views).counters(snapshot.views_key, || snapshot.view_names());
        let counters = set.view(index).unwrap_or(&self.metrics.views.unmatched);
        let Some(log) = self.query_log() else {
            return self.udp_answer(view, counters, ip, query, out, fast_path);
        };
        let (received, started) = (SystemTime::now(), Instant::now());
        let decided = self.udp_answer(view, counters, ip, query, out, fast_path);
        let path = match decided {
            Udp::Fast => querylog::Path::Fast,
            Udp::Cached => querylog::Path::Cached,
            Udp::Send => querylog::Path::Slip,
            Udp::Drop | Udp::Handler => return decided,
        };
        let rcode = u16::from(out.get(3).map_or(0, |b| b & 0x0f));
        log.offer(rcode, || querylog::Answered {
            received,
            latency: started.elapsed(),
            client: SocketAddr::new(ip, client.port()),
            server,
            tcp: false,
            path,
            view: Some(view.name.clone()),
            query: query.to_vec(),
            response: out.clone(),
        });
        decided
    }

    fn udp_answer(
        &self,
        view: &ViewZone,
        counters: &QueryCounters,
        client: IpAddr,
        query: &[u8],
        out: &mut Vec<u8>,
        fast_path: bool,
    ) -> Udp {
        if view.policy.rate_limit > 0 {
            let policy = &view.policy;
            let verdict = (self.rrl).check(
                &view.name,
                policy.rate_limit,
                policy.rate_limit_slip,
                client,
            );
            if verdict != rrl::Verdict::Allow {
                counters.count_limited(verdict == rrl::Verdict::Slip);
            }
            match verdict {
                rrl::Verdict::Allow => {}
                rrl::Verdict::Drop => return Udp::Drop,
                rrl::Verdict::Slip if rrl::truncated(query, out) => return Udp::Send,
                rrl::Verdict::Slip => return Udp::Drop,
            }
        }
        if !fast_path {
            return Udp::Handler;
        }
        let mut lower = [0u8; 257];
        let Some(q) = crate::zone::fast::Question::parse(query, &mut lower) else {
            return Udp::Handler;
        };
        let forwarder = self.forwarder.load();
        let forwarding = forwarder.is_some();
        if let Some(counted) = crate::zone::fast::answer_question(view, &q, query, out, forwarding)
        {
            counters.count(counted.qtype, counted.rcode);
            return Udp::Fast;
        }
        // A forwarded name the cache holds: only for a view that may recurse, asked to (RD).
        let Some(forwarder) = forwarder.as_deref() else {
            return Udp::Handler;
        };
        if !view.policy.recursion
            || query[2] & 0x01 == 0
            || !crate::zone::fast::forwardable(view, &q)
        {
            return Udp::Handler;
        }
        match forwarder.answer_cached(&q, query, out) {
            Some(rcode) => {
                let qtype = crate::telemetry::qtype_slot(RecordType::from(q.qtype));
                counters.count(qtype, crate::telemetry::rcode_code_slot(rcode));
                Udp::Cached
            }
            None => Udp::Handler,
        }
    }
}

/// What [`Handler::udp`] decided for a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp {
    /// Answered from precomputed bytes in `out`.
    Fast,
    /// A forwarded answer from the cache's bytes in `out`.
    Cached,
    /// Over the rate limit, answered truncated in `out`.
    Send,
    /// Over the rate limit: no answer.
    Drop,
    /// For the hickory handler.
    Handler,
}

/// What goes into a response besides the question.
struct Reply<'a> {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    /// Records from outside the snapshot (forwarded, chased or explained), after `answers`.
    owned: Vec<Record>,
    soa: Option<&'a Record>,
    /// A forwarded negative answer's SOA.
    owned_soa: Option<Box<Record>>,
    additionals: &'a [Record],
}

impl Handler {
    /// Answers one decoded query through `sink`; `tap` carries what the query log needs.
    pub(crate) async fn handle<S: Sink>(
        &self,
        request: &Request,
        sink: S,
        tap: Option<Tap>,
    ) -> ResponseInfo {
        let qtype = request
            .queries
            .queries()
            .first()
            .map_or(RecordType::Unknown(0), |q| q.query_type());
        let (counters, view) = {
            let snapshot = self.snapshot.guard();
            let ip = request.src().ip();
            let found = snapshot
                .as_deref()
                .and_then(|s| s.view_index_for(ip).map(|i| (s, i)));
            let name = found
                .filter(|_| tap.is_some())
                .map(|(s, i)| s.views[i].name.clone());
            let counters = found
                .and_then(|(s, i)| {
                    let set = self.metrics.views.counters(s.views_key, || s.view_names());
                    set.shared(i)
                })
                .unwrap_or_else(|| self.metrics.views.unmatched.clone());
            (counters, name)
        };
        let counted = Answer::new(
            sink,
            qtype,
            Some((counters, self.metrics.clone())),
            tap,
            view,
        );
        self.answer(request, counted).await
    }
}

impl Handler {
    async fn answer<S: Sink>(
        &self,
        request: &Request,
        mut response_handle: Answer<S>,
    ) -> ResponseInfo {
        let response_edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            // RFC 3225 3: DO is copied into the response (we sign nothing, so it changes no
            // answer).
            edns.set_dnssec_ok(req.flags().dnssec_ok);
            edns
        });
        let edns = response_edns.as_ref();

        if request.metadata.message_type != MessageType::Query {
            return error_response(request, edns, ResponseCode::FormErr, response_handle).await;
        }
        if request.metadata.op_code != OpCode::Query {
            // As BIND: RD and CD are about a query, and this is none.
            let mut metadata = request.metadata;
            metadata.recursion_desired = false;
            metadata.checking_disabled = false;
            let response = MessageResponseBuilder::new(&request.queries, edns)
                .error_msg(&metadata, ResponseCode::NotImp);
            return send(request, response_handle.send_response(response).await);
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return error_response(request, edns, ResponseCode::BADVERS, response_handle).await;
        }
        let [query] = request.queries.queries() else {
            // RFC 9619: exactly one question.
            return error_response(request, edns, ResponseCode::FormErr, response_handle).await;
        };
        if query.query_class() == DNSClass::CH
            && query.query_type() == RecordType::TXT
            && let Some(text) = self.chaos.text(query.name())
        {
            let mut record = Record::from_rdata(
                Name::from(query.name()),
                0,
                RData::TXT(TXT::new(vec![text.to_owned()])),
            );
            record.dns_class = DNSClass::CH;
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.authoritative = true;
            let response = MessageResponseBuilder::new(&request.queries, edns).build(
                metadata,
                std::iter::once(&record),
                None::<&Record>,
                None::<&Record>,
                None::<&Record>,
            );
            return send(request, response_handle.send_response(response).await);
        }
        if query.query_class() != DNSClass::IN {
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        }
        if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
            return self.transfer(request, edns, response_handle).await;
        }
        // A signed question (a secondary's SOA check, say) gets a signed answer, or NOTAUTH.
        let signing = match self.verify_tsig(request) {
            Ok(signing) => signing,
            Err((why, context)) => {
                debug!(src = %request.src(), "refusing a signed query: {why}");
                return self.notauth(request, edns, context, response_handle).await;
            }
        };
        let Some(snapshot) = self.snapshot.load() else {
            // Nothing published yet: say so, rather than deny names that may exist.
            return error_response(request, edns, ResponseCode::ServFail, response_handle).await;
        };
        let client = request.src().ip();
        let Some(view) = snapshot.view_for(client) else {
            // No view takes this client: it is not ours to answer.
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        };
        let (name, rtype) = (query.name(), query.query_type());
        let recursion = view.policy.recursion && self.forwarder.load().is_some();

        let mut reply = if let Some(target) = explain::target(view, &snapshot, name) {
            // `_explain.<name>` exists exactly when `<name>` does (RFC 8020: an NXDOMAIN name
            // has nothing below it), holds one TXT set, and is in no transfer.
            match (view.negative_soa(name), view.exists(&target)) {
                (_, true) if matches!(rtype, RecordType::TXT | RecordType::ANY) => Reply {
                    owned: self.explain(&snapshot, view, client, name, &target),
                    ..Reply::empty(ResponseCode::NoError, true)
                },
                (Some(soa), true) => Reply::negative(ResponseCode::NoError, soa),
                (Some(soa), false) => Reply::negative(ResponseCode::NXDomain, soa),
                (None, _) => Reply::empty(ResponseCode::Refused, false),
            }
        } else {
            match view.lookup(name, rtype) {
                Lookup::NotOurs => {
                    let forwarded = self.forward(request, name, rtype, recursion).await;
                    if !matches!(forwarded, Err(ResponseCode::Refused)) {
                        response_handle.path = querylog::Path::Forwarded;
                    }
                    match forwarded {
                        Ok(reply) => reply,
                        Err(rcode) => {
                            return error_response(request, edns, rcode, response_handle).await;
                        }
                    }
                }
                Lookup::Answer {
                    answers,
                    additionals,
                    pick,
                } => {
                    let answers = pick_answers(answers, pick);
                    Reply {
                        owned: self.chase(&snapshot, view, request, &answers).await,
                        answers,
                        additionals,
                        ..Reply::empty(ResponseCode::NoError, true)
                    }
                }
                Lookup::NoData(soa) => Reply::negative(ResponseCode::NoError, soa),
                Lookup::NxDomain(soa) => Reply::negative(ResponseCode::NXDomain, soa),
            }
        };

        // Answers keep the question's case (0x20 and RFC 4343), as the fast path does: our
        // records are stored in lower case.
        if let Some(asked) = request
            .queries
            .queries()
            .first()
            .map(|q| q.original().name())
        {
            for record in reply.answers.iter_mut().chain(reply.owned.iter_mut()) {
                // Name equality ignores case: this is the owner the question asked for.
                if record.name == *asked {
                    record.name = asked.clone();
                }
            }
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = recursion;
        metadata.response_code = reply.rcode;
        let build = || {
            let answers = reply.answers.iter().chain(reply.owned.iter());
            MessageResponseBuilder::new(&request.queries, edns).build(
                metadata,
                answers,
                None::<&Record>,
                reply.soa.or(reply.owned_soa.as_deref()),
                reply.additionals.iter(),
            )
        };
        let mut response = build();
        if let Some(signing) = &signing {
            let mut tbs = Vec::with_capacity(512);
            let signed = build()
                .destructive_emit(&mut hickory_proto::serialize::binary::BinEncoder::new(
                    &mut tbs,
                ))
                .map_err(|e| e.to_string())
                .and_then(|_| signing.sign_first(request.metadata.id, &tbs));
            match signed {
                Ok(tsig) => response.set_signature(tsig),
                Err(error) => warn!(%error, "cannot sign an answer"),
            }
        }
        send(request, response_handle.send_response(response).await)
    }
}

impl<'a> Reply<'a> {
    fn empty(rcode: ResponseCode, authoritative: bool) -> Self {
        Self {
            rcode,
            authoritative,
            answers: Vec::new(),
            owned: Vec::new(),
            soa: None,
            owned_soa: None,
            additionals: &[],
        }
    }

    /// NXDOMAIN or NODATA from our own zone, with its SOA.
    fn negative(rcode: ResponseCode, soa: &'a Record) -> Self {
        Self {
            soa: Some(soa),
            ..Self::empty(rcode, true)
        }
    }
}

impl Handler {
    /// The reply for a name outside our zones, or the RCODE to refuse or fail with.
    async fn forward(
        &self,
        request: &Request,
        name: &LowerName,
        rtype: RecordType,
        recursion: bool,
    ) -> Result<Reply<'static>, ResponseCode> {
        let forwarder = self.forwarder.load_full();
        let Some(forwarder) = forwarder.as_deref() else {
            return Err(ResponseCode::Refused);
        };
        if forwarder.is_own_probe(name) {
            return Err(ResponseCode::ServFail);
        }
        if !recursion || !request.metadata.recursion_desired {
            // Never an open resolver: only views that may recurse, and only when asked.
            return Err(ResponseCode::Refused);
        }
        match forwarder.resolve(name, rtype).await {
            forward::Forwarded::Answer(records) => Ok(Reply {
                owned: records,
                ..Reply::empty(ResponseCode::NoError, false)
            }),
            forward::Forwarded::Negative { rcode, soa } => Ok(Reply {
                owned_soa: soa,
                ..Reply::empty(rcode, false)
            }),
            forward::Forwarded::Failed => Err(ResponseCode::ServFail),
        }
    }

    /// For an A/AAAA question answered by a CNAME in a view that chases: the target's
    /// addresses. A target that is one of our instances' public DNS names is answered from the
    /// inventory at once, with the address this view shows (what AWS's resolver gives a client
    /// in the instance's VPC); any other target is asked of the upstreams within the chase
    /// budget. Nothing when the client did not ask for recursion (RD=0: a resolver iterating
    /// wants our data only) or when the upstreams fail: the CNAME alone is still right.
    async fn chase(
        &self,
        snapshot: &Snapshot,
        view: &ViewZone,
        request: &Request,
        answers: &[Record],
    ) -> Vec<Record> {
        let Some(query) = request.queries.queries().first() else {
            return Vec::new();
        };
        let rtype = query.query_type();
        if !view.policy.chase_cname
            || !request.metadata.recursion_desired
            || !matches!(rtype, RecordType::A | RecordType::AAAA)
        {
            return Vec::new();
        }
        let Some(first) = answers.first() else {
            return Vec::new();
        };
        let RData::CNAME(target) = &first.data else {
            return Vec::new();
        };
        let from_inventory = view.policy.chase_from == crate::view::ChaseFrom::Inventory;
        if let Some(instance) = snapshot
            .by_public_name(&target.0)
            .filter(|_| from_inventory)
        {
            // AWS's public DNS names have A records only.
            let ip = match view.policy.addresses {
                crate::view::AddressKind::Private => instance.private_ip,
                crate::view::AddressKind::Public => instance.public_ip,
            };
            return match (rtype, ip) {
                (RecordType::A, Some(ip)) => vec![Record::from_rdata(
                    target.0.clone(),
                    first.ttl,
                    RData::A(ip.into()),
                )],
                _ => Vec::new(),
            };
        }
        match self.forwarder.load_full() {
            Some(forwarder) => forwarder.chase(&target.0, rtype).await,
            None => Vec::new(),
        }
    }
}

/// A set's records in the order this query gets them.
fn pick_answers(mut answers: Vec<Record>, pick: Pick) -> Vec<Record> {
    if answers.is_empty() {
        return answers;
    }
    let start = fastrand::usize(..answers.len());
    match pick {
        Pick::All => {}
        Pick::Rotate => answers.rotate_left(start),
        Pick::One => {
            answers.swap(0, start);
            answers.truncate(1);
        }
        Pick::Window(n) => {
            // `n` records from a random start, wrapping around the end.
            answers.rotate_left(start);
            answers.truncate(usize::from(n));
        }
    }
    answers
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
