//! The cache of forwarded answers, kept as the response's wire bytes.
//!
//! A client that uses us from `resolv.conf` asks for everyone's names, and most of its questions
//! repeat. An answer the upstreams gave is stored once as a whole response (ID 0, the question
//! in lower case, no OPT) with where each TTL sits, so a hit is answered on the UDP thread the
//! way our own names are: copy, patch the ID, the flags and the question's case, count the TTLs
//! down, add an OPT if the query had one. The handler path decodes the same bytes, so both
//! paths give the same answer.
//!
//! What is kept and for how long (RFC 2308, RFC 8767):
//! - an answer, for its least TTL (at most [`MAX_TTL`]);
//! - a negative answer (NXDOMAIN, NODATA) that came with a SOA, for the lesser of the SOA's
//!   TTL and its MINIMUM, at most [`MAX_NEGATIVE_TTL`]; one without a SOA is not kept;
//! - past its TTL, for `serve_stale` more, so that when every upstream fails the client gets
//!   the last answer with a TTL of [`STALE_TTL`] rather than SERVFAIL. Only forwarded names
//!   are ever here: our own names are never served stale (a stale answer there would point at
//!   a replaced instance).
//!
//! The map is moka's: bounded by `cache_size` answers, evicting the least used, with reads that
//! take no lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};

use crate::zone::fast::Question;

/// The longest an answer is kept fresh, whatever its TTL says (unbound's `cache-max-ttl`).
pub(crate) const MAX_TTL: u32 = 86_400;
/// The longest a negative answer is kept (RFC 2308 5 suggests one to three hours; unbound's
/// `cache-max-negative-ttl` is one).
pub(crate) const MAX_NEGATIVE_TTL: u32 = 3_600;
/// The TTL of a stale answer, and how long one is served before the upstreams are asked again
/// (RFC 8767 4: 30 seconds).
pub(crate) const STALE_TTL: u32 = 30;
/// An answer is refreshed before it expires when a client asks for it in the last tenth of its
/// TTL (unbound's and CoreDNS's rule), if it lives at least this long.
const PREFETCH_MIN_TTL: u32 = 10;

/// The cache key of a question: its name in lower-case wire form, then its type.
pub(crate) fn key(name: &LowerName, rtype: RecordType) -> Box<[u8]> {
    let mut key = Vec::with_capacity(name.len() + 4);
    for label in name.iter() {
        key.push(label.len() as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    key.push(0);
    key.extend_from_slice(&u16::from(rtype).to_be_bytes());
    key.into_boxed_slice()
}

/// One forwarded answer.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The whole response: ID 0, QR RD RA and the RCODE, the question in lower case, the
    /// answer and authority sections, no additional section.
    wire: Box<[u8]>,
    /// Where each record's TTL sits in `wire`.
    ttl_at: Box<[u16]>,
    /// When it was stored, on the cache's clock.
    stored: u32,
    /// How long it is fresh: its least TTL, capped.
    fresh: u32,
    /// How long it is kept: `fresh` and the serve-stale window.
    keep: u32,
    /// Until when (cache clock) it is served stale without asking again: set when the
    /// upstreams failed to refresh it.
    stale_until: AtomicU32,
    /// A refresh before expiry was asked for.
    prefetching: AtomicBool,
}

/// How an entry may be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Age {
    /// Within its TTL: answer with the TTLs counted down.
    Fresh,
    /// Past its TTL, but the upstreams failed lately: answer stale.
    Stale,
    /// Past its TTL: ask the upstreams (and answer stale only if they fail).
    Expired,
}

impl Entry {
    /// The response for `name`/`rtype` with `answers` (NOERROR) or a negative `rcode` with the
    /// upstream's `soa`; kept for `serve_stale` seconds past its TTL.
    pub(crate) fn new(
        name: &LowerName,
        rtype: RecordType,
        (rcode, answers, soa): (ResponseCode, &[Record], Option<&Record>),
        now: u32,
        serve_stale: u32,
    ) -> Option<Self> {
        let mut message = Message::new(0, MessageType::Response, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.metadata.recursion_available = true;
        message.metadata.response_code = rcode;
        message.add_query(Query::query(name.into(), rtype));
        let fresh = match soa {
            None if answers.is_empty() => 0,
            None => answers
                .iter()
                .map(|r| r.ttl)
                .min()
                .unwrap_or(0)
                .min(MAX_TTL),
            Some(soa) => {
                // RFC 2308 5: a negative answer lives for the SOA's TTL or MINIMUM, the lesser.
                let minimum = match &soa.data {
                    RData::SOA(s) => s.minimum,
                    _ => 0,
                };
                let ttl = soa.ttl.min(minimum).min(MAX_NEGATIVE_TTL);
                let mut soa = soa.clone();
                soa.ttl = ttl;
                message.add_authority(soa);
                ttl
            }
        };
        message.add_answers(answers.iter().cloned());
        let wire = message.to_vec().ok()?;
        let ttl_at = ttl_offsets(&wire)?;
        Some(Self {
            wire: wire.into_boxed_slice(),
            ttl_at,
            stored: now,
            fresh,
            keep: fresh.saturating_add(serve_stale),
            stale_until: AtomicU32::new(0),
            prefetching: AtomicBool::new(false),
        })
    }

    /// Whether it is worth keeping at all (a TTL of 0 is for this answer only).
    pub(crate) fn cacheable(&self) -> bool {
        self.fresh > 0
    }

    /// How it may be used at `now`.
    pub(crate) fn age(&self, now: u32) -> Age {
        if now.saturating_sub(self.stored) < self.fresh {
            Age::Fresh
        } else if now < self.stale_until.load(Ordering::Relaxed) {
            Age::Stale
        } else {
            Age::Expired
        }
    }

    /// Serves it stale, without asking the upstreams, for the next [`STALE_TTL`] seconds.
    pub(crate) fn go_stale(&self, now: u32) {
        self.stale_until.store(now + STALE_TTL, Ordering::Relaxed);
    }

    /// Whether a hit at `now` should refresh it before it expires (once).
    pub(crate) fn wants_prefetch(&self, now: u32) -> bool {
        let left = (self.stored + self.fresh).saturating_sub(now);
        self.fresh >= PREFETCH_MIN_TTL
            && left > 0
            && left <= self.fresh / 10
            && !self.prefetching.swap(true, Ordering::Relaxed)
    }

    /// A prefetch that could not start may be asked for again.
    pub(crate) fn prefetch_failed(&self) {
        self.prefetching.store(false, Ordering::Relaxed);
    }

    fn rcode(&self) -> u8 {
        self.wire[3] & 0x0f
    }

    /// The TTL each record has at `now`: counted down, or [`STALE_TTL`] when stale.
    fn ttl(&self, stored_ttl: u32, now: u32, stale: bool) -> u32 {
        if stale {
            STALE_TTL
        } else {
            stored_ttl.saturating_sub(now.saturating_sub(self.stored))
        }
    }

    fn patch_ttls(&self, out: &mut [u8], now: u32, stale: bool) {
        for &at in &self.ttl_at {
            let at = usize::from(at);
            if let Some(field) = out.get_mut(at..at + 4) {
                let stored = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                field.copy_from_slice(&self.ttl(stored, now, stale).to_be_bytes());
            }
        }
    }

    /// Answers `query` (whose question is `q`) from these bytes into `out` on the UDP path:
    /// `None` when it does not fit the client's UDP size (the handler truncates).
    pub(crate) fn answer(
        &self,
        q: &Question<'_>,
        query: &[u8],
        out: &mut Vec<u8>,
        (now, stale): (u32, bool),
    ) -> Option<u16> {
        let (limit, opt_len) = q.udp_room();
        let end = q.end();
        if self.wire.len() + opt_len > limit || self.wire.len() < end {
            return None;
        }
        out.clear();
        out.extend_from_slice(&self.wire);
        out[..2].copy_from_slice(&query[..2]);
        out[2] = 0x80 | (query[2] & 0x01); // QR, RD as asked
        out[3] = 0x80 | (query[3] & 0x10) | self.rcode(); // RA, CD as asked, RCODE
        // The question exactly as asked (0x20): the stored one is the same name in lower case.
        out[12..end].copy_from_slice(&query[12..end]);
        self.patch_ttls(out, now, stale);
        if let Some(opt) = q.opt_answer() {
            out[10..12].copy_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&opt);
        }
        Some(u16::from(self.rcode()))
    }

    /// The response decoded, with the TTLs at `now`: for the handler path.
    pub(crate) fn message(&self, now: u32, stale: bool) -> Option<Message> {
        let mut wire = self.wire.to_vec();
        self.patch_ttls(&mut wire, now, stale);
        Message::from_vec(&wire).ok()
    }
}

/// Where the TTL of every record in a response sits, or `None` when it does not parse.
fn ttl_offsets(wire: &[u8]) -> Option<Box<[u16]>> {
    let header = wire.get(..12)?;
    let count = |i: usize| usize::from(u16::from_be_bytes([header[i], header[i + 1]]));
    let (questions, records) = (count(4), count(6) + count(8) + count(10));
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(wire, at)? + 4;
    }
    let mut ttl_at = Vec::with_capacity(records);
    for _ in 0..records {
        at = skip_name(wire, at)?;
        let fixed = wire.get(at..at + 10)?;
        ttl_at.push(u16::try_from(at + 4).ok()?);
        at += 10 + usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    }
    (at == wire.len()).then(|| ttl_at.into_boxed_slice())
}

/// The offset just past the name at `at` (labels, ending in the root or a pointer).
fn skip_name(wire: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *wire.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l < 64 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// The forwarded answers, by [`key`].
pub(crate) struct Cache {
    map: moka::sync::Cache<Box<[u8]>, Arc<Entry>>,
    /// The cache's clock starts here; entries hold whole seconds since.
    epoch: Instant,
    /// Seconds an answer is kept past its TTL for serving stale.
    pub(crate) serve_stale: u32,
    counts: Counts,
}

/// How cached answers were used, for the metrics.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Answered from the cache, fresh.
    pub hits: AtomicU64,
    /// Not in the cache (or expired): asked of the upstreams.
    pub misses: AtomicU64,
    /// Answered stale because the upstreams failed.
    pub stale: AtomicU64,
}

/// moka's expiry: each entry lives as long as [`Entry::keep`] says.
struct Keep;

impl moka::Expiry<Box<[u8]>, Arc<Entry>> for Keep {
    fn expire_after_create(
        &self,
        _key: &Box<[u8]>,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(entry.keep)))
    }

    fn expire_after_update(
        &self,
        _key: &Box<[u8]>,
        entry: &Arc<Entry>,
        _updated_at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(entry.keep)))
    }
}

impl Cache {
    /// A cache of at most `size` answers, each kept `serve_stale` past its TTL.
    pub(crate) fn new(size: u64, serve_stale: Duration) -> Self {
        Self {
            map: moka::sync::Cache::builder()
                .max_capacity(size)
                .expire_after(Keep)
                .build(),
            epoch: Instant::now(),
            serve_stale: u32::try_from(serve_stale.as_secs()).unwrap_or(u32::MAX),
            counts: Counts::default(),
        }
    }

    /// The cache's clock: whole seconds since it was made.
    pub(crate) fn now(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Arc<Entry>> {
        self.map.get(key)
    }

    pub(crate) fn insert(&self, key: Box<[u8]>, entry: Arc<Entry>) {
        if entry.cacheable() {
            self.map.insert(key, entry);
        }
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Answers kept now (moka counts lazily: close, not exact).
    pub(crate) fn len(&self) -> u64 {
        self.map.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("a name")
    }

    #[test]
    fn an_answer_counts_down_from_its_least_ttl_and_then_expires() {
        let n = LowerName::from(name("www.example.test."));
        let records = [
            Record::from_rdata(
                name("www.example.test."),
                300,
                RData::A(A::new(192, 0, 2, 1)),
            ),
            Record::from_rdata(
                name("www.example.test."),
                60,
                RData::A(A::new(192, 0, 2, 2)),
            ),
        ];
        let e = Entry::new(
            &n,
            RecordType::A,
            (ResponseCode::NoError, &records, None),
            100,
            0,
        )
        .expect("encodes");
        assert_eq!(e.age(159), Age::Fresh);
        assert_eq!(e.age(160), Age::Expired);
        let m = e.message(130, false).expect("decodes");
        let ttls: Vec<u32> = m.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, [270, 30]);
        let m = e.message(130, true).expect("decodes");
        assert!(m.answers.iter().all(|r| r.ttl == STALE_TTL));
    }

    #[test]
    fn a_negative_answer_lives_for_the_soa_minimum_capped() {
        let n = LowerName::from(name("nope.example.test."));
        let soa = |ttl, minimum| {
            Record::from_rdata(
                name("example.test."),
                ttl,
                RData::SOA(SOA::new(
                    name("ns.example.test."),
                    name("host.example.test."),
                    1,
                    3600,
                    600,
                    86400,
                    minimum,
                )),
            )
        };
        let fresh = |ttl, minimum| {
            let soa = soa(ttl, minimum);
            let e = Entry::new(
                &n,
                RecordType::A,
                (ResponseCode::NXDomain, &[], Some(&soa)),
                0,
                0,
            )
            .expect("encodes");
            (
                e.fresh,
                e.message(0, false).expect("decodes").authorities[0].ttl,
            )
        };
        assert_eq!(fresh(3600, 60), (60, 60), "the minimum, when lower");
        assert_eq!(fresh(30, 600), (30, 30), "the SOA's TTL, when lower");
        assert_eq!(fresh(86400, 86400), (MAX_NEGATIVE_TTL, MAX_NEGATIVE_TTL));
        let none = Entry::new(&n, RecordType::A, (ResponseCode::NXDomain, &[], None), 0, 0)
            .expect("encodes");
        assert!(!none.cacheable(), "RFC 2308 5: no SOA, no negative caching");
    }

    #[test]
    fn a_prefetch_is_asked_for_once_in_the_last_tenth_of_the_ttl() {
        let n = LowerName::from(name("www.example.test."));
        let records = [Record::from_rdata(
            name("www.example.test."),
            100,
            RData::A(A::new(192, 0, 2, 1)),
        )];
        let e = Entry::new(
            &n,
            RecordType::A,
            (ResponseCode::NoError, &records, None),
            0,
            0,
        )
        .expect("encodes");
        assert!(!e.wants_prefetch(89));
        assert!(e.wants_prefetch(91));
        assert!(!e.wants_prefetch(92), "once");
        e.prefetch_failed();
        assert!(
            e.wants_prefetch(95),
            "again after a prefetch that could not start"
        );
    }
}
