//! The compact record store every view of a snapshot shares (after NSD's `namedb`).
//!
//! A 100k-instance fleet makes hundreds of thousands of names in each view. Held as hickory
//! `Record`s (272 bytes each, owner names on the heap) in a map per view, every name and record
//! was stored once per view, and the fast path's wire answers once more. Here:
//! - every owner name is stored once, in lower-case wire form, in one arena, and referred to
//!   by a [`NameId`];
//! - every distinct RRset is stored once, as the answer-section bytes the fast path copies (each
//!   record's owner a pointer to the question at offset 12, then type, class, TTL and RDATA), and
//!   referred to by a [`SetId`]. A set does not know its owner, so `db1`, `1.db` and the
//!   instance id that answer with the same CNAME share one set, and so do two views that give
//!   the same answer.
//!
//! hickory `Record`s are made from these bytes only where a slow path needs them (handler
//! answers, transfers, the `zone` command, `_explain`).

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, Restrict};
use rustc_hash::FxBuildHasher;

use super::Pick;

/// An interned owner name.
pub(crate) type NameId = u32;
/// An interned RRset.
pub(crate) type SetId = u32;

/// Names and RRsets, shared by every view of one snapshot. Never changed after it is built.
#[derive(Debug, Default)]
pub(super) struct Store {
    /// Lower-case wire names, back to back.
    names: Vec<u8>,
    /// Where each name ends in `names` (it starts where the previous one ends).
    name_ends: Vec<u32>,
    sets: Vec<SetInfo>,
    /// Every set's records in answer-section wire form, back to back.
    wire: Vec<u8>,
}

/// One RRset: its type, how it is handed out and where its records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SetInfo {
    rtype: u16,
    pick: Pick,
    count: u32,
    start: u32,
    len: u32,
}

impl SetInfo {
    #[inline]
    pub(crate) fn rtype(&self) -> RecordType {
        RecordType::from(self.rtype)
    }

    /// The type's code, for comparisons on the query path.
    #[inline]
    pub(crate) fn code(&self) -> u16 {
        self.rtype
    }

    #[inline]
    pub(crate) fn pick(&self) -> Pick {
        self.pick
    }

    #[inline]
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// How many records a transfer (and the master file) carries: all, or the first
    /// `max_records_per_rrset` of a capped set, or the one CNAME of a tier answered by one.
    pub(crate) fn transferred(&self) -> usize {
        let count = self.count as usize;
        match self.pick {
            Pick::Window(n) => usize::from(n).min(count),
            // A CNAME set holds one record (RFC 2181 10.1): the first member's, in a zone.
            Pick::One => count.min(1),
            Pick::All | Pick::Rotate => count,
        }
    }
}

impl Store {
    /// A name's lower-case wire form.
    pub(crate) fn name(&self, id: NameId) -> &[u8] {
        &self.names[self.name_start(id) as usize..self.name_ends[id as usize] as usize]
    }

    /// Where a name starts in the arena: with it, a lookup compares the bytes in place.
    pub(crate) fn name_start(&self, id: NameId) -> u32 {
        match id {
            0 => 0,
            _ => self.name_ends[id as usize - 1],
        }
    }

    /// Whether the name starting at `start` is `wire`. Comparing `wire.len()` bytes is enough:
    /// a wire name ends at its root label, so no name is a prefix of another.
    #[inline]
    pub(crate) fn name_is(&self, start: u32, wire: &[u8]) -> bool {
        let start = start as usize;
        self.names.get(start..start + wire.len()) == Some(wire)
    }

    /// A name as a hickory `Name`, for the slow paths.
    pub(crate) fn hickory_name(&self, id: NameId) -> Name {
        // Our own bytes, written by `wire_name`: they always decode.
        Name::read(&mut BinDecoder::new(self.name(id))).unwrap_or_default()
    }

    #[inline]
    pub(crate) fn set(&self, id: SetId) -> &SetInfo {
        &self.sets[id as usize]
    }

    /// A set's records in answer-section wire form.
    #[inline]
    pub(crate) fn wire(&self, set: &SetInfo) -> &[u8] {
        &self.wire[set.start as usize..(set.start + set.len) as usize]
    }

    /// The first `n` records of a set as hickory records owned by `owner`.
    pub(crate) fn records(&self, set: &SetInfo, owner: &Name, n: usize) -> Vec<Record> {
        let mut out = Vec::with_capacity(n.min(set.count as usize));
        let mut rest = self.wire(set);
        while out.len() < n && rest.len() >= 12 {
            let ttl = u32::from_be_bytes([rest[6], rest[7], rest[8], rest[9]]);
            let rdlen = u16::from_be_bytes([rest[10], rest[11]]);
            let Some(rdata) = rest.get(12..12 + usize::from(rdlen)) else {
                break;
            };
            let mut decoder = BinDecoder::new(rdata);
            if let Ok(data) = RData::read(&mut decoder, set.rtype(), Restrict::new(rdlen)) {
                out.push(Record::from_rdata(owner.clone(), ttl, data));
            }
            rest = &rest[12 + usize::from(rdlen)..];
        }
        out
    }
}

/// Fills a [`Store`], interning names and sets as they come.
#[derive(Default)]
pub(crate) struct StoreBuilder {
    store: Store,
    names: HashTable<NameId>,
    sets: HashTable<SetId>,
}

/// The hash every name table uses: the same for building and for lookups. FxHash: the keys are
/// our names; clients only look up, so they cannot grow a collision chain.
#[inline]
pub(crate) fn hash_name(wire: &[u8]) -> u64 {
    FxBuildHasher.hash_one(wire)
}

impl StoreBuilder {
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The id of a lower-case wire name, if it is stored.
    pub(crate) fn find(&self, wire: &[u8]) -> Option<NameId> {
        let store = &self.store;
        (self.names)
            .find(hash_name(wire), |&id| store.name(id) == wire)
            .copied()
    }

    /// The id of a lower-case wire name, stored on first sight.
    pub(crate) fn intern(&mut self, wire: &[u8]) -> NameId {
        let store = &mut self.store;
        let hash = hash_name(wire);
        if let Some(&id) = self.names.find(hash, |&id| store.name(id) == wire) {
            return id;
        }
        let id = store.name_ends.len() as NameId;
        store.names.extend_from_slice(wire);
        store.name_ends.push(store.names.len() as u32);
        self.names
            .insert_unique(hash, id, |&id| hash_name(store.name(id)));
        id
    }

    /// The id of an RRset whose records are `wire` (answer-section form), stored on first
    /// sight.
    pub(crate) fn set(&mut self, rtype: RecordType, pick: Pick, count: u32, wire: &[u8]) -> SetId {
        let store = &mut self.store;
        let key = (u16::from(rtype), pick, wire);
        let hash = FxBuildHasher.hash_one(key);
        let same = |id: &SetId| {
            let s = &store.sets[*id as usize];
            (s.rtype, s.pick, store.wire(s)) == key
        };
        if let Some(&id) = self.sets.find(hash, same) {
            return id;
        }
        let id = store.sets.len() as SetId;
        let start = store.wire.len() as u32;
        store.wire.extend_from_slice(wire);
        store.sets.push(SetInfo {
            rtype: u16::from(rtype),
            count,
            pick,
            start,
            len: wire.len() as u32,
        });
        let rehash = |id: &SetId| {
            let s = &store.sets[*id as usize];
            FxBuildHasher.hash_one((s.rtype, s.pick, store.wire(s)))
        };
        self.sets.insert_unique(hash, id, rehash);
        id
    }

    /// The store, its spare capacity returned.
    pub(crate) fn finish(mut self) -> Store {
        self.store.names.shrink_to_fit();
        self.store.name_ends.shrink_to_fit();
        self.store.sets.shrink_to_fit();
        self.store.wire.shrink_to_fit();
        self.store
    }
}

/// The lower-case wire form of a name.
pub(crate) fn wire_name(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// Appends the lower-case wire form of a dotted name made of plain labels (letters, digits,
/// `-`, `_`; no root label): what naming makes and AWS's DNS names are. `None` (with `out`
/// partly written) for anything else, escapes, empty or long labels, which callers hand to
/// hickory's parser; a build skips 300,000 of those parses at 100k instances.
pub(crate) fn push_plain_labels(text: &str, out: &mut Vec<u8>) -> Option<()> {
    for label in text.split('.') {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if label.is_empty() || label.len() > 63 || !label.bytes().all(plain) {
            return None;
        }
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    Some(())
}

/// The lower-case wire form of a name, written into `buf` (a name is at most 255 bytes):
/// the handler's lookups allocate nothing for it.
pub(crate) fn wire_into<'b>(name: &Name, buf: &'b mut [u8; 256]) -> &'b [u8] {
    let mut at = 0;
    for label in name.iter() {
        if at + 1 + label.len() >= buf.len() {
            break; // cannot happen for a valid name; the lookup then simply misses
        }
        buf[at] = label.len() as u8;
        for (dst, src) in buf[at + 1..].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        at += 1 + label.len();
    }
    buf[at] = 0;
    &buf[..=at]
}

/// Appends one answer-section record: owner pointing at the question, class IN.
pub(crate) fn push_rr(out: &mut impl Extend<u8>, rtype: RecordType, ttl: u32, rdata: &[u8]) {
    let [t0, t1] = u16::from(rtype).to_be_bytes();
    let [l0, l1] = (rdata.len() as u16).to_be_bytes();
    let [s0, s1, s2, s3] = ttl.to_be_bytes();
    out.extend([0xc0, 12, t0, t1, 0, 1, s0, s1, s2, s3, l0, l1]);
    out.extend(rdata.iter().copied());
}

/// Appends a record hickory encodes (NS, SRV, glue: the rare types), names uncompressed so the
/// bytes can be copied into any message. `false` if it cannot be encoded.
pub(crate) fn push_record(out: &mut Vec<u8>, record: &Record) -> bool {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
    let mut rdata = Vec::new();
    let mut encoder = BinEncoder::new(&mut rdata);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    if record.data.emit(&mut encoder).is_err() || rdata.len() > usize::from(u16::MAX) {
        return false;
    }
    push_rr(out, record.record_type(), record.ttl, &rdata);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};

    #[test]
    fn equal_sets_are_stored_once_and_decode_to_their_records() {
        let mut b = StoreBuilder::default();
        let target =
            Name::from_ascii("ec2-52-1-2-3.eu-west-1.compute.amazonaws.com.").expect("name");
        let mut wire = Vec::new();
        push_rr(&mut wire, RecordType::CNAME, 60, &wire_name(&target));
        let one = b.set(RecordType::CNAME, Pick::All, 1, &wire);
        let again = b.set(RecordType::CNAME, Pick::All, 1, &wire);
        let other_pick = b.set(RecordType::CNAME, Pick::One, 1, &wire);
        assert_eq!(one, again);
        assert_ne!(one, other_pick);
        let mut a = Vec::new();
        push_rr(&mut a, RecordType::A, 17, &[10, 0, 1, 20]);
        let a_set = b.set(RecordType::A, Pick::All, 1, &a);
        let db1 = b.intern(&wire_name(
            &Name::from_ascii("db1.internal.").expect("name"),
        ));
        assert_eq!(db1, b.intern(b"\x03db1\x08internal\x00"));
        let store = b.finish();
        let owner = store.hickory_name(db1);
        assert_eq!(owner.to_ascii(), "db1.internal.");
        let records = store.records(store.set(one), &owner, usize::MAX);
        assert_eq!(
            records,
            vec![Record::from_rdata(
                owner.clone(),
                60,
                RData::CNAME(CNAME(target))
            )]
        );
        let records = store.records(store.set(a_set), &owner, 1);
        assert_eq!(records[0].ttl, 17);
        assert_eq!(records[0].data, RData::A(A::new(10, 0, 1, 20)));
    }

    #[test]
    fn plain_labels_encode_as_hickory_does() {
        for text in [
            "host-1",
            "ec2-52-16-0-0.eu-west-1.compute.amazonaws.com",
            "Web_1.EU",
            &"x".repeat(63),
        ] {
            let mut wire = Vec::new();
            assert_eq!(push_plain_labels(text, &mut wire), Some(()), "{text}");
            wire.push(0);
            let name = Name::from_ascii(text).expect("name");
            assert_eq!(wire, wire_name(&name), "{text}");
        }
        for text in [
            "",
            "a..b",
            ".a",
            "a.",
            "a b",
            "a\\.b",
            "café",
            &"x".repeat(64),
        ] {
            assert_eq!(push_plain_labels(text, &mut Vec::new()), None, "{text}");
        }
    }
}
