//! The UDP fast path: the hot case answered from wire bytes the snapshot precomputed.
//!
//! Most queries a fleet sends are A, AAAA or CNAME questions for names we serve. For those, the
//! snapshot's record store holds each RRset's answer section already encoded (built once per
//! snapshot, shared by the views), with the owner name written as a pointer to the question at
//! offset 12. A
//! query is answered by checking its header, lower-casing its name into a stack buffer, one
//! hash lookup, and copying: header (ID, RD and CD from the query), the question exactly as
//! asked (0x20 casing kept), the answer bytes, and an OPT record when the query had one. No
//! allocation (the output buffer is the caller's), no lock (the snapshot is read through
//! arc-swap). Names under the apex that do not exist, and types a name lacks, get NXDOMAIN or
//! NODATA with the SOA the same way.
//!
//! Whatever this does not recognise returns `false` and goes to the hickory handler unchanged:
//! other types and classes, other opcodes, odd header bits, EDNS versions or extended RCODEs,
//! compressed or malformed question names, names outside the forward zone (forwarding, reverse
//! zones, refusals), answers that need the upstream (chased CNAMEs), and answers that would
//! not fit the client's UDP size (hickory truncates them). An equivalence test checks that for
//! every name, type and view the bytes decode to the message the hickory handler gives.

use std::net::IpAddr;

use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::store::wire_name;
use super::{NodeRef, Pick, Snapshot, ViewZone};

/// The largest UDP payload we send, whatever the client offers: the DNS Flag Day 2020 value,
/// which avoids IP fragmentation on every common path.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// Query types the fast path answers.
const TYPES: [RecordType; 3] = [RecordType::A, RecordType::AAAA, RecordType::CNAME];
const A: u16 = 1;
const AAAA: u16 = 28;
const CNAME: u16 = 5;
/// [`TYPES`] as their codes.
const TYPE_CODES: [u16; 3] = [A, AAAA, CNAME];

/// What one view's fast path needs besides the nodes: the zone's shape and the negative
/// answer's SOA in wire form. The answers themselves are the store's sets, already in
/// answer-section form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FastZone {
    /// Off when the zone's shape does not allow it (a reverse zone under the forward apex).
    enabled: bool,
    /// The apex in lower-case wire form.
    apex: Vec<u8>,
    /// Subtrees under the apex that are not ours, in lower-case wire form: a miss there is
    /// the handler's (it forwards or refuses), not an NXDOMAIN.
    passthrough: Vec<Vec<u8>>,
    /// The view's other zones (reverse zones) in lower-case wire form: not forwardable.
    others: Vec<Vec<u8>>,
    /// The negative-answer SOA record in wire form (owner written out in full).
    negative: Vec<u8>,
    /// Where the serial sits in `negative`, so a re-stamped snapshot can patch it.
    serial_at: usize,
    /// CNAME answers to A/AAAA questions need the upstream (the view chases them).
    chase: bool,
    /// RA in every response of this view.
    recursion_available: bool,
    /// The view answers `_explain.<name>`: a miss whose first label is `_explain` is the
    /// handler's.
    explain: bool,
}

impl FastZone {
    /// The fast path's view of a forward zone. `chase` marks CNAME answers to A/AAAA as
    /// needing the upstream; `enabled` is false when another zone of the view lies under the
    /// apex.
    pub(crate) fn build(
        apex: &LowerName,
        negative_soa: &Record,
        (passthrough, others): (&[LowerName], &[&LowerName]),
        (chase, recursion_available, enabled, explain): (bool, bool, bool, bool),
    ) -> Self {
        let mut negative = wire_name(apex);
        let rr_start = negative.len();
        let mut rdata = Vec::new();
        let mut serial_at = 0;
        // The serial is the first of the five 32-bit fields that end the RDATA.
        let encoded = negative_soa.data.emit(&mut standalone(&mut rdata));
        if encoded.is_ok() && matches!(negative_soa.data, RData::SOA(_)) && rdata.len() >= 20 {
            serial_at = rr_start + 10 + rdata.len() - 20;
        }
        let enabled = enabled && serial_at > 0 && rdata.len() <= usize::from(u16::MAX);
        negative.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
        negative.extend_from_slice(&1u16.to_be_bytes()); // IN
        negative.extend_from_slice(&negative_soa.ttl.to_be_bytes());
        negative.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        negative.extend_from_slice(&rdata);
        Self {
            enabled,
            apex: wire_name(apex),
            passthrough: passthrough.iter().map(|p| wire_name(p)).collect(),
            others: others.iter().map(|z| wire_name(z)).collect(),
            negative,
            serial_at,
            chase,
            recursion_available,
            explain,
        }
    }

    /// Patches the serial of the negative-answer SOA (see [`Snapshot::set_serial`]).
    pub(crate) fn set_serial(&mut self, serial: u32) {
        if let Some(bytes) = self.negative.get_mut(self.serial_at..self.serial_at + 4) {
            bytes.copy_from_slice(&serial.to_be_bytes());
        }
    }
}

/// An encoder whose output can be copied anywhere: no name in it points elsewhere.
fn standalone(buf: &mut Vec<u8>) -> BinEncoder<'_> {
    let mut encoder = BinEncoder::new(buf);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    encoder
}

/// The answer section for one question at a node: `(count, tail, head)`, copied in that order
/// (a rotation's tail from a random start, then its head); `None` when it is the handler's.
fn pick_answer<'v>(view: &ViewZone, node: NodeRef<'v>, slot: usize) -> Option<Answer<'v>> {
    // Types compared as their codes: `RecordType::from(u16)` is a long match.
    let qtype = TYPE_CODES[slot];
    let mut sets = view.node_sets(node);
    let Some(first) = sets.next() else {
        return Some(Answer::NoData); // an empty non-terminal
    };
    // RFC 1034 3.6.2: a CNAME owner answers every type with its CNAME.
    let set = if first.code() == CNAME && node.sets == 1 {
        if qtype != CNAME && view.fast.chase {
            return None;
        }
        first
    } else {
        match std::iter::once(first)
            .chain(sets)
            .find(|s| s.code() == qtype)
        {
            Some(set) => set,
            None => return Some(Answer::NoData),
        }
    };
    let bytes = view.wire(set);
    let count = u16::try_from(set.count()).ok()?;
    let empty: &[u8] = &[];
    match set.pick() {
        Pick::All => Some(Answer::Records(count, bytes, empty)),
        // Addresses are all one length: a rotation is two slices of the same bytes.
        pick @ (Pick::Rotate | Pick::Window(_)) if matches!(set.code(), A | AAAA) && count > 0 => {
            let shown = match pick {
                Pick::Window(n) => n.min(count),
                _ => count,
            };
            let rr_len = bytes.len() / usize::from(count);
            let start = fastrand::usize(..usize::from(count)) * rr_len;
            let want = usize::from(shown) * rr_len;
            let tail = &bytes[start..(start + want).min(bytes.len())];
            let head = &bytes[..want - tail.len()];
            Some(Answer::Records(shown, tail, head))
        }
        Pick::One if count > 0 => {
            // Records differ in length: walk to the one picked.
            let mut rest = bytes;
            for _ in 0..fastrand::usize(..usize::from(count)) {
                rest = rest.get(rr_len_at(rest)..)?;
            }
            Some(Answer::Records(1, rest.get(..rr_len_at(rest))?, empty))
        }
        _ => None,
    }
}

/// The length of the record that starts `rr` (2-byte owner pointer, 10 fixed bytes, RDATA).
fn rr_len_at(rr: &[u8]) -> usize {
    match rr.get(10..12) {
        Some(len) => 12 + usize::from(u16::from_be_bytes([len[0], len[1]])),
        None => rr.len(),
    }
}

enum Answer<'v> {
    NoData,
    Records(u16, &'v [u8], &'v [u8]),
}

/// Answers `query` from `src` into `out` if it is the hot case, and says what to count it as;
/// `None` leaves it to the hickory handler. `out` is cleared first and holds the whole
/// response on `Some`. `forwarding` says whether the server forwards at all (RA is set only
/// then).
pub fn answer(
    snapshot: &Snapshot,
    src: IpAddr,
    query: &[u8],
    out: &mut Vec<u8>,
    forwarding: bool,
) -> Option<Counted> {
    answer_in(snapshot.view_for(src)?, query, out, forwarding)
}

/// [`answer`] for a client whose view is known already.
pub fn answer_in(
    view: &ViewZone,
    query: &[u8],
    out: &mut Vec<u8>,
    forwarding: bool,
) -> Option<Counted> {
    let mut lower = [0u8; 257];
    answer_question(
        view,
        &Question::parse(query, &mut lower)?,
        query,
        out,
        forwarding,
    )
}

/// Whether the question is outside every zone of the view (or in a subtree it passes
/// through): what the handler would forward or refuse, never one of our own names.
pub(crate) fn forwardable(view: &ViewZone, q: &Question<'_>) -> bool {
    let fast = &view.fast;
    fast.passthrough.iter().any(|p| q.under(p))
        || !(q.under(&fast.apex) || fast.others.iter().any(|z| q.under(z)))
}

/// [`answer_in`] for a query already parsed.
pub(crate) fn answer_question(
    view: &ViewZone,
    q: &Question<'_>,
    query: &[u8],
    out: &mut Vec<u8>,
    forwarding: bool,
) -> Option<Counted> {
    let fast = &view.fast;
    let slot = q.slot?;
    if !fast.enabled {
        return None;
    }
    let name = &q.lower[..q.name_len];
    let empty: &[u8] = &[];
    let (rcode, count, records, authority) = match view.node(name) {
        Some(node) if !node.forward => return None,
        Some(node) => match pick_answer(view, node, slot) {
            Some(Answer::Records(count, tail, head)) => (0u8, count, (tail, head), false),
            Some(Answer::NoData) => (0, 0, (empty, empty), true),
            None => return None,
        },
        None if q.under(&fast.apex)
            && !fast.passthrough.iter().any(|p| q.under(p))
            && !(fast.explain
                && (q.lower.get(..9)).is_some_and(|l| l.eq_ignore_ascii_case(b"\x08_explain"))) =>
        {
            (3, 0, (empty, empty), true)
        }
        None => return None,
    };
    let (limit, opt_len) = q.udp_room();
    let authority_len = if authority { fast.negative.len() } else { 0 };
    let total = 12 + q.question.len() + records.0.len() + records.1.len() + authority_len + opt_len;
    if total > limit {
        return None; // hickory truncates and sets TC
    }
    out.clear();
    out.extend_from_slice(&query[..2]);
    out.push(0x80 | 0x04 | (query[2] & 0x01)); // QR, AA, RD as asked
    let ra = if fast.recursion_available && forwarding {
        0x80
    } else {
        0
    };
    out.push(ra | (query[3] & 0x10) | rcode); // RA, CD as asked, RCODE
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&u16::from(authority).to_be_bytes());
    out.extend_from_slice(&u16::from(q.edns_payload.is_some()).to_be_bytes());
    out.extend_from_slice(q.question);
    out.extend_from_slice(records.0);
    out.extend_from_slice(records.1);
    if authority {
        out.extend_from_slice(&fast.negative);
    }
    if let Some(opt) = q.opt_answer() {
        out.extend_from_slice(&opt);
    }
    Some(Counted {
        qtype: crate::telemetry::qtype_slot(TYPES[slot]),
        rcode: crate::telemetry::rcode_code_slot(u16::from(rcode)),
    })
}

/// What an answer counts as, for the serving side's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// [`crate::telemetry::qtype_slot`] of the query type.
    pub qtype: usize,
    /// [`crate::telemetry::rcode_code_slot`] of the response code.
    pub rcode: usize,
}

/// The parts of a query the fast paths need, or `None` for anything unusual.
pub(crate) struct Question<'q> {
    /// The question section as sent (name with the client's casing, type, class).
    pub question: &'q [u8],
    /// The name in lower case, wire form, then the type: the cache's key. In the caller's
    /// buffer: the question is moved around, the 257 bytes are not.
    lower: &'q [u8],
    name_len: usize,
    /// The query type.
    pub qtype: u16,
    /// Index into [`TYPES`], for the types our zones' fast path answers.
    slot: Option<usize>,
    /// The client's UDP payload size, when it sent OPT.
    edns_payload: Option<u16>,
    /// The DO bit of its OPT, copied into ours (RFC 3225 3).
    dnssec_ok: bool,
}

/// A query's OPT record, as far as an answer copies it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opt {
    pub payload: u16,
    pub dnssec_ok: bool,
    pub version: u8,
    pub rcode_high: u8,
}

/// Not malformed, but not for the fast path either (several records, another type).
pub(crate) struct Unusual;

impl Opt {
    /// The OPT record that ends a query whose question ends at `at`, with `arcount` records
    /// after it: `Some(Ok(None))` without one, `None` when it is malformed (an option that
    /// runs past the RDATA, bytes after it), `Some(Err(Unusual))` for what only the handler
    /// answers.
    pub(crate) fn parse(
        query: &[u8],
        at: usize,
        arcount: u16,
    ) -> Option<Result<Option<Self>, Unusual>> {
        match arcount {
            0 if query.len() == at => return Some(Ok(None)),
            0 => return None,
            1 => {}
            _ => return Some(Err(Unusual)),
        }
        let opt = query.get(at..at + 11)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != 41 {
            return Some(Err(Unusual));
        }
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        let rdata = query.get(at + 11..at + 11 + rdlen)?;
        if query.len() != at + 11 + rdlen {
            return None;
        }
        // Options are code, length, data: a length past the RDATA is a malformed record.
        let mut rest = rdata;
        while !rest.is_empty() {
            let len = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
            rest = rest.get(4 + len..)?;
        }
        Some(Ok(Some(Self {
            payload: u16::from_be_bytes([opt[3], opt[4]]),
            rcode_high: opt[5],
            version: opt[6],
            dnssec_ok: opt[7] & 0x80 != 0,
        })))
    }

    /// Our OPT record for an answer to it: at most [`MAX_UDP_PAYLOAD`], version 0, DO copied.
    pub(crate) fn answer(&self) -> [u8; 11] {
        let [p1, p2] = self.payload.clamp(512, MAX_UDP_PAYLOAD).to_be_bytes();
        let flags = if self.dnssec_ok { 0x80 } else { 0 };
        // Root owner, type OPT, payload, ext RCODE, version 0, flags, RDLEN 0.
        [0, 0, 41, p1, p2, 0, 0, flags, 0, 0, 0]
    }
}

impl<'q> Question<'q> {
    /// The question of a plain IN-class query for a data type (no meta type, no ANY), with
    /// at most an OPT record after it; `None` for anything else.
    pub(crate) fn parse(query: &'q [u8], lower: &'q mut [u8; 257]) -> Option<Self> {
        let header = query.get(..12)?;
        // A query (QR 0), opcode QUERY, not truncated; Z clear.
        if header[2] & 0xfa != 0 || header[3] & 0x40 != 0 {
            return None;
        }
        let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
        if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
            return None;
        }
        let (mut at, mut len) = (12usize, 0usize);
        loop {
            let l = usize::from(*query.get(at)?);
            if l == 0 {
                break;
            }
            // Compression pointers and the reserved label types are the handler's business.
            if l > 63 || len + l + 2 > 255 {
                return None;
            }
            lower[len] = l as u8;
            let label = query.get(at + 1..at + 1 + l)?;
            for (dst, src) in lower[len + 1..len + 1 + l].iter_mut().zip(label) {
                *dst = src.to_ascii_lowercase();
            }
            len += l + 1;
            at += l + 1;
        }
        lower[len] = 0;
        let name_len = len + 1;
        let fixed = query.get(at + 1..at + 5)?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        let slot = TYPE_CODES.iter().position(|&t| t == qtype);
        // Type 0, OPT, and the meta types (TKEY, TSIG, IXFR, AXFR, MAILB, MAILA, ANY).
        if qclass != 1 || qtype == 0 || qtype == 41 || (249..=255).contains(&qtype) {
            return None;
        }
        lower[name_len..name_len + 2].copy_from_slice(&qtype.to_be_bytes());
        let lower: &'q [u8] = &lower[..name_len + 2];
        let question_end = at + 5;
        // Exactly one well-formed OPT record at the root, version 0, nothing after it; anything
        // else (a malformed one gets FORMERR) is the handler's.
        let opt = match Opt::parse(query, question_end, count(10))? {
            Ok(opt) => opt,
            Err(Unusual) => return None,
        };
        if opt.is_some_and(|o| o.version != 0 || o.rcode_high != 0) {
            return None;
        }
        Some(Self {
            question: &query[12..question_end],
            lower,
            name_len,
            qtype,
            slot,
            edns_payload: opt.map(|o| o.payload),
            dnssec_ok: opt.is_some_and(|o| o.dnssec_ok),
        })
    }

    /// The most an answer may take over UDP, and the part of it our OPT record takes.
    pub(crate) fn udp_room(&self) -> (usize, usize) {
        match self.edns_payload {
            Some(p) => (usize::from(p.clamp(512, MAX_UDP_PAYLOAD)), 11),
            None => (512, 0),
        }
    }

    /// The OPT record that ends an answer to it, when it had one.
    pub(crate) fn opt_answer(&self) -> Option<[u8; 11]> {
        let opt = Opt {
            payload: self.edns_payload?,
            dnssec_ok: self.dnssec_ok,
            version: 0,
            rcode_high: 0,
        };
        Some(opt.answer())
    }

    /// The lower-case name in wire form followed by the type.
    pub(crate) fn key(&self) -> &[u8] {
        self.lower
    }

    /// Where the question's type and class end in the query.
    pub(crate) fn end(&self) -> usize {
        12 + self.question.len()
    }

    /// Whether the name is `apex` or below it, on a label boundary.
    fn under(&self, apex: &[u8]) -> bool {
        let name = &self.lower[..self.name_len];
        if apex.len() > name.len() {
            return false;
        }
        // Walk the labels: a suffix of the right length is a candidate only at a label start.
        let mut at = 0;
        loop {
            let rest = &name[at..];
            if rest.len() == apex.len() {
                return rest == apex;
            }
            match rest.first() {
                Some(&l) if l > 0 && rest.len() > apex.len() => at += 1 + usize::from(l),
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str) -> Vec<u8> {
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.trim_end_matches('.').split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn a_name_is_under_an_apex_only_on_a_label_boundary() {
        let apex = b"\x08internal\x00";
        let cases = [
            ("internal.", true),
            ("web.Internal.", true),
            ("a.b.internal.", true),
            ("xinternal.", false),
            ("internal.example.", false),
            ("nal.", false),
        ];
        for (name, want) in cases {
            let (bytes, mut lower) = (query(name), [0u8; 257]);
            let q = Question::parse(&bytes, &mut lower).expect("a plain question");
            assert_eq!(q.under(apex), want, "{name}");
            assert_eq!(
                q.key().len(),
                bytes.len() - 12 - 4 + 2,
                "{name}: name and type"
            );
        }
        let root = query("internal.")
            .into_iter()
            .take(12)
            .chain([0, 0, 1, 0, 1])
            .collect::<Vec<_>>();
        let mut lower = [0u8; 257];
        let q = Question::parse(&root, &mut lower).expect("the root");
        assert!(!q.under(apex) && q.under(b"\x00"));
    }
}
