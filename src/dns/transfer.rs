//! Zone transfers to secondaries: AXFR (RFC 5936) and IXFR (RFC 1995) of a view's zones, to
//! the networks the view allows, signed with TSIG (RFC 8945) when the view names keys.
//!
//! A secondary gets the zones of the view its address falls in, as any client does. Refusals:
//! REFUSED for an address the view does not allow (or AXFR over UDP), NOTAUTH for a zone the
//! view does not serve and for a missing, unknown or bad signature (with the TSIG error RFC
//! 8945 asks for). The records come from the published snapshot, so a transfer is consistent
//! with itself even if a refresh publishes meanwhile.

use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Metadata, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TSIG, make_tsig_record};
use hickory_proto::rr::{LowerName, RData, Record, RecordType, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{info, warn};

use super::{Handler, error_response, send};
use crate::zone::{Snapshot, ViewZone};

/// Bytes of records per message (uncompressed, so the message stays under TCP's 64 KiB).
const MESSAGE_BYTES: usize = 60_000;

/// Which transfer a secondary asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XfrKind {
    /// The whole zone (RFC 5936).
    Axfr,
    /// The changes since a serial (RFC 1995).
    Ixfr,
}

impl XfrKind {
    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Axfr => "axfr",
            Self::Ixfr => "ixfr",
        }
    }
}

/// What was sent, for the transfer counter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// A full transfer (AXFR, or IXFR answered in full).
    Full,
    /// An IXFR answered with diffs.
    Incremental,
    /// An IXFR from a secondary already at the current serial (or asked over UDP).
    Current,
    /// Refused: address not allowed, zone not served, bad signature.
    Refused,
}

impl Outcome {
    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Current => "current",
            Self::Refused => "refused",
        }
    }
}

impl Handler {
    /// Answers an AXFR or IXFR question.
    pub(super) async fn transfer<R: ResponseHandler>(
        &self,
        request: &Request,
        edns: Option<&Edns>,
        response_handle: R,
    ) -> ResponseInfo {
        let Some(query) = request.queries.queries().first() else {
            return error_response(request, edns, ResponseCode::FormErr, response_handle).await;
        };
        let kind = if query.query_type() == RecordType::AXFR {
            XfrKind::Axfr
        } else {
            XfrKind::Ixfr
        };
        let Some(snapshot) = self.snapshot.load() else {
            return error_response(request, edns, ResponseCode::ServFail, response_handle).await;
        };
        let src = request.src();
        let view = snapshot.view_for(src.ip());
        let view_name = view.map_or("", |v| v.name.as_str());
        let refuse = |rcode: ResponseCode, why: &str| {
            let kind = kind.label();
            info!(%src, view = view_name, zone = %query.name(), kind, %rcode, "transfer refused: {why}");
            (self.metrics).count_transfer(view_name, kind, Outcome::Refused.label(), 0);
        };
        let Some(view) = view else {
            refuse(ResponseCode::Refused, "no view takes this client");
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        };
        if !view.policy.transfer.iter().any(|n| n.contains(&src.ip())) {
            refuse(
                ResponseCode::Refused,
                "the view's allow_transfer does not list it",
            );
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        }
        let apex = query.name();
        if !view.has_zone(apex) {
            refuse(ResponseCode::NotAuth, "not a zone of this view");
            return error_response(request, edns, ResponseCode::NotAuth, response_handle).await;
        }
        let signing = match self.authorize(request, view) {
            Ok(signing) => signing,
            Err((why, context)) => {
                refuse(ResponseCode::NotAuth, why);
                return self.notauth(request, edns, context, response_handle).await;
            }
        };
        if request.protocol() == Protocol::Udp && kind == XfrKind::Axfr {
            // RFC 5936 4.2: AXFR runs over TCP only.
            refuse(ResponseCode::Refused, "AXFR over UDP");
            return error_response(request, edns, ResponseCode::Refused, response_handle).await;
        }
        let records = match kind {
            XfrKind::Ixfr => ixfr_records(request, &snapshot, view, apex),
            XfrKind::Axfr => view.zone_contents(apex).map(|z| (whole(z), Outcome::Full)),
        };
        let Some((records, outcome)) = records else {
            return error_response(request, edns, ResponseCode::ServFail, response_handle).await;
        };
        let kind = kind.label();
        info!(
            %src, view = %view.name, zone = %apex, kind, serial = snapshot.serial,
            records = records.len(), outcome = outcome.label(), "zone transfer"
        );
        (self.metrics).count_transfer(&view.name, kind, outcome.label(), records.len());
        self.send_transfer(request, edns, &records, signing, response_handle)
            .await
    }

    /// Checks the request's TSIG against the view's keys: `Ok(Some(..))` to sign the answer,
    /// `Ok(None)` for unsigned (the view asks for no key and none was sent).
    fn authorize(&self, request: &Request, view: &ViewZone) -> Result<Option<Signing>, Refusal> {
        let keys = &view.policy.transfer_keys;
        match request.signature.as_deref() {
            None if keys.is_empty() => Ok(None),
            None => Err((
                "the view requires a TSIG key and the request is unsigned",
                None,
            )),
            Some(tsig) if !keys.is_empty() && !keys.contains(&tsig.name) => Err((
                "a TSIG key this view does not accept",
                TsigReply::bad_key(request, unix_now()),
            )),
            Some(_) => self.verify_tsig(request),
        }
    }

    /// Verifies a request's TSIG, if it has one, against every configured key.
    pub(super) fn verify_tsig(&self, request: &Request) -> Result<Option<Signing>, Refusal> {
        let Some(tsig) = request.signature.as_deref() else {
            return Ok(None);
        };
        let now = unix_now();
        let id = request.metadata.id;
        let keys = self.keys.load();
        // A key is its name and its algorithm (RFC 8945 5.2.1): a known name with another
        // algorithm is an unknown key, BADKEY, never a signature checked with the wrong one.
        let Some(signer) = keys
            .iter()
            .find(|k| *k.signer_name() == tsig.name && *k.algorithm() == tsig.data.algorithm)
        else {
            return Err(("unknown TSIG key", TsigReply::bad_key(request, now)));
        };
        let Ok((_, _, window)) = signer.verify_message_byte(request.as_slice(), None, true) else {
            return Err((
                "bad TSIG signature",
                Some(Box::new(TsigReply::Context(
                    TSigResponseContext::bad_signature(id, now, signer.clone()),
                ))),
            ));
        };
        if !window.contains(&now) {
            let context = TSigResponseContext::new(
                id,
                now,
                signer.clone(),
                tsig.data.mac.clone(),
                Some(hickory_proto::rr::rdata::tsig::TsigError::BadTime),
            );
            return Err((
                "TSIG time outside the allowed skew",
                Some(Box::new(TsigReply::Context(context))),
            ));
        }
        Ok(Some(Signing {
            signer: signer.clone(),
            request_mac: tsig.data.mac.clone(),
            now,
        }))
    }

    /// NOTAUTH, with the (unsigned, or for BADTIME signed) TSIG record RFC 8945 asks for.
    pub(super) async fn notauth<R: ResponseHandler>(
        &self,
        request: &Request,
        edns: Option<&Edns>,
        context: Option<Box<TsigReply>>,
        mut response_handle: R,
    ) -> ResponseInfo {
        let Some(context) = context else {
            return error_response(request, edns, ResponseCode::NotAuth, response_handle).await;
        };
        let build = || {
            MessageResponseBuilder::new(&request.queries, edns)
                .error_msg(&request.metadata, ResponseCode::NotAuth)
        };
        let mut tbs = Vec::with_capacity(512);
        if build()
            .destructive_emit(&mut BinEncoder::new(&mut tbs))
            .is_err()
        {
            return error_response(request, edns, ResponseCode::NotAuth, response_handle).await;
        }
        let mut response = build();
        let record = match *context {
            TsigReply::Context(context) => context.sign(&tbs),
            TsigReply::BadKey {
                name,
                algorithm,
                id,
                time,
            } => Ok(Box::new(make_tsig_record(
                name,
                TSIG::new(
                    algorithm,
                    time,
                    300,
                    Vec::new(),
                    id,
                    Some(hickory_proto::rr::rdata::tsig::TsigError::BadKey),
                    Vec::new(),
                ),
            ))),
        };
        match record {
            Ok(tsig) => response.set_signature(tsig),
            Err(error) => warn!(%error, "cannot build the TSIG error record"),
        }
        send(request, response_handle.send_response(response).await)
    }

    /// Sends `records` in as many messages as they need, each signed when `signing` says so
    /// (the first with the request's MAC, each next one with the previous message's MAC and
    /// only the timers, RFC 8945 5.3.1).
    async fn send_transfer<R: ResponseHandler>(
        &self,
        request: &Request,
        edns: Option<&Edns>,
        records: &[Record],
        signing: Option<Signing>,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.response_code = ResponseCode::NoError;
        let mut previous_mac: Option<Vec<u8>> = None;
        let mut last = None;
        // Each message is written before the next is encoded (our TCP responder), so a large
        // zone streams at the secondary's pace.
        for chunk in pack(records) {
            let build = || {
                MessageResponseBuilder::new(&request.queries, edns).build(
                    metadata,
                    chunk.iter(),
                    None::<&Record>,
                    None::<&Record>,
                    None::<&Record>,
                )
            };
            let mut tsig = None;
            if let Some(signing) = &signing {
                let mut tbs = Vec::with_capacity(4096);
                let mut encoder = BinEncoder::new(&mut tbs);
                encoder.set_max_size(u16::MAX);
                if let Err(error) = build().destructive_emit(&mut encoder) {
                    warn!(%error, "cannot encode a transfer message");
                    return error_response(request, edns, ResponseCode::ServFail, response_handle)
                        .await;
                }
                let id = request.metadata.id;
                let signed = match &previous_mac {
                    None => signing.sign_first(id, &tbs),
                    Some(prev) => sign_next(&signing.signer, prev, &tbs, signing.now, id),
                };
                match signed {
                    Ok(t) => {
                        previous_mac = Some(t.data.mac.clone());
                        tsig = Some(t);
                    }
                    Err(error) => {
                        warn!(%error, "cannot sign a transfer message");
                        return error_response(
                            request,
                            edns,
                            ResponseCode::ServFail,
                            response_handle,
                        )
                        .await;
                    }
                }
            }
            let mut response = build();
            if let Some(t) = tsig {
                response.set_signature(t);
            }
            match response_handle.send_response(response).await {
                Ok(info) => last = Some(info),
                Err(error) => {
                    warn!(src = %request.src(), %error, "transfer aborted");
                    return send(request, Err(error));
                }
            }
        }
        match last {
            Some(info) => info,
            None => error_response(request, edns, ResponseCode::ServFail, response_handle).await,
        }
    }
}

/// Splits `records` into messages of at most [`MESSAGE_BYTES`] (counting each record
/// uncompressed, an upper bound of what it takes in the message).
fn pack(records: &[Record]) -> Vec<&[Record]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        // Owner, type, class, TTL, length, data; names uncompressed.
        let size = r.name.len() + 11 + r.data.to_bytes().map_or(512, |b| b.len());
        if i > start && bytes + size > MESSAGE_BYTES {
            chunks.push(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        chunks.push(&records[start..]);
    }
    chunks
}

/// Why a request is not authorized, and the TSIG context of the NOTAUTH answer (none when
/// the request was unsigned).
pub(super) type Refusal = (&'static str, Option<Box<TsigReply>>);

/// The TSIG record of a NOTAUTH answer.
pub(super) enum TsigReply {
    /// hickory's: BADSIG (unsigned) and BADTIME (signed).
    Context(TSigResponseContext),
    /// BADKEY, unsigned, with the request's key name and algorithm. hickory's context puts
    /// hmac-sha256 there whatever the request used, and dig then reports a verify failure
    /// instead of the BADKEY (Knot echoes the request's algorithm, as RFC 8945 5.3.2 reads).
    BadKey {
        name: hickory_proto::rr::Name,
        algorithm: hickory_proto::rr::rdata::tsig::TsigAlgorithm,
        id: u16,
        time: u64,
    },
}

impl TsigReply {
    /// BADKEY for the key the request names.
    fn bad_key(request: &Request, time: u64) -> Option<Box<Self>> {
        let tsig = request.signature.as_deref()?;
        Some(Box::new(TsigReply::BadKey {
            name: tsig.name.clone(),
            algorithm: tsig.data.algorithm.clone(),
            id: request.metadata.id,
            time,
        }))
    }
}

/// How to sign the answer to a verified request.
pub(super) struct Signing {
    signer: TSigner,
    request_mac: Vec<u8>,
    now: u64,
}

impl Signing {
    /// The TSIG of the (first) answer message, `message` being its unsigned bytes.
    pub(super) fn sign_first(&self, id: u16, message: &[u8]) -> Result<Box<Record<TSIG>>, String> {
        TSigResponseContext::new(
            id,
            self.now,
            self.signer.clone(),
            self.request_mac.clone(),
            None,
        )
        .sign(message)
        .map_err(|e| e.to_string())
    }
}

/// The TSIG of a message after the first of a signed multi-message answer: its MAC covers the
/// previous MAC, this message and the timers only (RFC 8945 5.3.1).
fn sign_next(
    signer: &TSigner,
    previous_mac: &[u8],
    message: &[u8],
    now: u64,
    id: u16,
) -> Result<Box<Record<TSIG>>, String> {
    let mut tbs = Vec::with_capacity(previous_mac.len() + message.len() + 10);
    let mac_len = u16::try_from(previous_mac.len()).map_err(|e| e.to_string())?;
    tbs.extend_from_slice(&mac_len.to_be_bytes());
    tbs.extend_from_slice(previous_mac);
    tbs.extend_from_slice(message);
    tbs.extend_from_slice(&now.to_be_bytes()[2..]); // 48-bit time signed
    tbs.extend_from_slice(&signer.fudge().to_be_bytes());
    let mac = signer.sign(&tbs).map_err(|e| e.to_string())?;
    let tsig = TSIG::new(
        signer.algorithm().clone(),
        now,
        signer.fudge(),
        mac,
        id,
        None,
        Vec::new(),
    );
    Ok(Box::new(make_tsig_record(
        signer.signer_name().clone(),
        tsig,
    )))
}

/// The answer records of an IXFR: the current SOA alone when the secondary is current (or
/// asked over UDP, which tells it to use TCP, RFC 1995 2), the diffs from its serial when the
/// history reaches back to it, else the whole zone.
fn ixfr_records(
    request: &Request,
    snapshot: &Snapshot,
    view: &ViewZone,
    apex: &LowerName,
) -> Option<(Vec<Record>, Outcome)> {
    let soa = view.soa(apex)?;
    let theirs = request.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    });
    // A secondary ahead of us (RFC 1982 serial arithmetic; say we restarted with an older
    // state file) gets our SOA alone, as for a current one (RFC 1995 2), not the whole zone.
    let ahead = theirs
        .is_some_and(|t| t != snapshot.serial && (t.wrapping_sub(snapshot.serial) as i32) > 0);
    if theirs == Some(snapshot.serial) || ahead || request.protocol() == Protocol::Udp {
        return Some((vec![soa.clone()], Outcome::Current));
    }
    let diffs = &view.history().0;
    let start = theirs.and_then(|serial| diffs.iter().position(|d| d.from == serial));
    let chained = start.is_some_and(|i| {
        diffs[i..].windows(2).all(|w| w[0].to == w[1].from)
            && diffs.last().is_some_and(|d| d.to == snapshot.serial)
    });
    match start {
        Some(i) if chained => {
            let at = |serial: u32| {
                let mut r = soa.clone();
                if let RData::SOA(s) = &mut r.data {
                    s.serial = serial;
                }
                r
            };
            // One condensed difference from their serial to ours: a secondary never sees an
            // intermediate version (one it might reject, or that never was published whole).
            let (removed, added) = condense(&diffs[i..]);
            let mut out = vec![soa.clone(), at(diffs[i].from)];
            out.extend(
                removed
                    .into_iter()
                    .filter(|r| view.in_zone(apex, r))
                    .cloned(),
            );
            out.push(soa.clone());
            out.extend(added.into_iter().filter(|r| view.in_zone(apex, r)).cloned());
            out.push(soa.clone());
            Some((out, Outcome::Incremental))
        }
        _ => view.zone_contents(apex).map(|z| (whole(z), Outcome::Full)),
    }
}

/// A whole zone as a transfer sends it: SOA, every record, SOA.
fn whole(zone: crate::zone::ZoneContents) -> Vec<Record> {
    let mut all = Vec::with_capacity(zone.records.len() + 2);
    all.push(zone.soa.clone());
    all.extend(zone.records);
    all.push(zone.soa);
    all
}

/// The net change of a chain of diffs: a record removed and added back (or added and removed
/// again) on the way cancels out. Records compare with their TTLs (a TTL change is a change).
fn condense(diffs: &[std::sync::Arc<crate::zone::Diff>]) -> (Vec<&Record>, Vec<&Record>) {
    let key = |r: &Record| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data);
    let mut net: std::collections::BTreeMap<String, (i32, &Record)> = Default::default();
    for d in diffs {
        for r in &d.removed {
            net.entry(key(r)).or_insert((0, r)).0 -= 1;
        }
        for r in &d.added {
            net.entry(key(r)).or_insert((0, r)).0 += 1;
        }
    }
    let pick = |want: i32| {
        net.values()
            .filter(|(n, _)| *n == want)
            .map(|(_, r)| *r)
            .collect()
    };
    (pick(-1), pick(1))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn a(name: &str, ip: &str) -> Record {
        let ip: std::net::Ipv4Addr = ip.parse().expect("ip");
        Record::from_rdata(Name::from_str(name).expect("name"), 60, RData::A(ip.into()))
    }

    #[test]
    fn a_chain_of_diffs_condenses_to_the_net_change() {
        let diff = |from, to, removed: Vec<Record>, added: Vec<Record>| {
            std::sync::Arc::new(crate::zone::Diff {
                from,
                to,
                removed,
                added,
            })
        };
        // web moves 10.0.0.1 -> .2 -> .3; db is added then removed again; x changes its TTL.
        let mut x_long = a("x.internal.", "10.9.9.9");
        x_long.ttl = 300;
        let chain = [
            diff(
                1,
                2,
                vec![a("web.internal.", "10.0.0.1")],
                vec![
                    a("web.internal.", "10.0.0.2"),
                    a("db.internal.", "10.0.0.5"),
                ],
            ),
            diff(
                2,
                3,
                vec![a("web.internal.", "10.0.0.2"), a("x.internal.", "10.9.9.9")],
                vec![a("web.internal.", "10.0.0.3"), x_long],
            ),
            diff(3, 4, vec![a("db.internal.", "10.0.0.5")], vec![]),
        ];
        let (removed, added) = condense(&chain);
        let show = |v: Vec<&Record>| {
            v.iter()
                .map(|r| format!("{} {} {}", r.name, r.ttl, r.data))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            show(removed),
            ["web.internal. 60 10.0.0.1", "x.internal. 60 10.9.9.9"]
        );
        assert_eq!(
            show(added),
            ["web.internal. 60 10.0.0.3", "x.internal. 300 10.9.9.9"]
        );
    }
}
