//! The zone snapshot: every answer the server can give, precomputed, immutable.
//!
//! A [`Snapshot`] is built off to the side ([`build`]) and published by one atomic swap
//! ([`SnapshotCell`]); the DNS handler only reads it. Answering is a hash lookup of the
//! lower-cased query name in one view's node table followed by a pick of the record set for the
//! query type: no scan, no lock, and cost does not grow with the fleet.
//!
//! Why our own table rather than hickory's `InMemoryZoneHandler`: every view gets its own
//! answers from one naming pass, stored once for all views (see `store`: every name and
//! every distinct RRset once, RRsets as the wire bytes the UDP fast path copies); a node also
//! carries the instances behind a name and the rules that made it (for `stabledns names` and
//! `_explain` queries). The RFC semantics we need
//! (NXDOMAIN/NODATA with the SOA, CNAME exclusivity, empty non-terminals, minimal ANY) are a
//! few lines in [`ViewZone::lookup`]. A view serves the forward zone and any reverse zones it
//! is configured with; finding the zone is a walk over those few apexes, not over names.

use crate::inventory::Fleet;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::inventory::Instance;
use crate::naming::{Backing, Slots};
use crate::view::ViewPolicy;

mod addresses;
mod build;
pub mod fast;
mod hash;
mod history;
mod hosts;
mod layer;
mod render;
pub mod settings;
mod store;

use layer::{Layer, NodeRef, SetRef};
use store::NameId;

pub use addresses::AddressIndex;
pub use build::{build, is_public, naming_limits, patch};
pub use history::{Diff, History};
pub use render::{Row, ZoneSet, rdata_text};

/// Everything served at one moment: answers only (the serving side keeps the counters).
/// Never mutated once published; before that, the refresh gives it its serial and IXFR history.
#[derive(Debug)]
pub struct Snapshot {
    /// SOA serial of this snapshot.
    pub serial: u32,
    /// When it was built.
    pub built_at: SystemTime,
    /// The zone apex.
    pub apex: LowerName,
    /// How many instances the inventory held.
    pub instance_count: usize,
    /// Every host name and the instances behind it, view-independent; the fleet's indexes.
    hosts: hosts::Hosts,
    /// Names with claims that lost (single-instance names contested during a replacement,
    /// overruled tier claims), for `_explain` answers.
    pub contested: HashMap<LowerName, Vec<String>>,
    /// The fleet this snapshot was built from (shared, not copied), for `_explain` answers
    /// and the state file.
    pub fleet: Fleet,
    /// Tier slot numbers, kept by the next refresh and in the state file.
    pub slots: Slots,
    /// The tag each naming rule reads, by rule index: what tag vias are read back with.
    pub rule_tags: Vec<Option<String>>,
    /// Client address → index into `views`.
    pub selector: crate::view::Selector,
    /// Per view, in the order the views were configured.
    pub views: Vec<ViewZone>,
    /// Warnings from naming and building, for whoever publishes it to log.
    pub warnings: Vec<String>,
    /// Drained and impaired instances and the tiers failing open, for the metrics.
    pub rotation: crate::naming::Rotation,
    /// Tier members renumbered in this build, for the metrics.
    pub slot_fixes: crate::naming::SlotFixes,
    /// `zone.max_records_per_rrset`: also what an `_explain` TXT set is capped at.
    pub max_records_per_rrset: u16,
    /// A hash of the views' names in order: the serving side keeps counters by view index,
    /// and this says when the index changed meaning.
    pub views_key: u64,
    /// [`Snapshot::content_hash`], once someone asked.
    pub(crate) content_hash: std::sync::OnceLock<u64>,
}

impl Snapshot {
    /// The view a client falls in, if any.
    pub fn view_for(&self, client: std::net::IpAddr) -> Option<&ViewZone> {
        self.selector.select(client).and_then(|i| self.views.get(i))
    }

    /// Gives an unpublished snapshot another serial: every SOA it holds (apex answers and
    /// negative-answer authorities) changes, nothing else.
    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
        for view in &mut self.views {
            view.fast.set_serial(serial);
            for zone in &mut view.zones {
                for record in [&mut zone.soa, &mut zone.negative_soa] {
                    if let RData::SOA(soa) = &mut record.data {
                        soa.serial = serial;
                    }
                }
            }
        }
    }

    /// The index in `views` of the view a client falls in, if any.
    pub fn view_index_for(&self, client: std::net::IpAddr) -> Option<usize> {
        self.selector
            .select(client)
            .filter(|&i| i < self.views.len())
    }

    /// The views' names, in order (what [`Snapshot::views_key`] hashes).
    pub fn view_names(&self) -> Vec<String> {
        self.views.iter().map(|v| v.name.clone()).collect()
    }

    /// An instance of the fleet by id.
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.hosts.by_id(id).map(|i| &*self.fleet[i])
    }

    /// The instance whose public DNS name this is: CNAME targets chased from the inventory.
    pub fn by_public_name(&self, name: &Name) -> Option<&Instance> {
        let mut buf = [0u8; 256];
        let wire = store::wire_into(name, &mut buf);
        self.hosts.by_public(wire).map(|i| &*self.fleet[i])
    }

    /// The names instance `id` has alone, as served (fully qualified, A-labels): those its
    /// single-instance rules give it first, then its slots, its id's last (the PTR answer's
    /// order); shortest first within each.
    /// Tier names are not an instance's own. Empty for an instance not in the fleet.
    pub fn own_names(&self, id: &str) -> Vec<String> {
        self.hosts
            .by_id(id)
            .map_or_else(Vec::new, |i| self.hosts.own_names(i))
    }

    /// [`Snapshot::own_names`] of every instance that has any, by instance id: what the audit
    /// calls each instance. Made on demand, not for the query path.
    pub fn own_names_by_id(&self) -> HashMap<String, Vec<String>> {
        (0..self.fleet.len())
            .filter_map(|i| {
                let names = self.hosts.own_names(i);
                (!names.is_empty()).then(|| (self.fleet[i].id.clone(), names))
            })
            .collect()
    }

    /// Every host name (fully qualified) → the instance ids behind it; view-independent.
    /// Made on demand: for `check`, tests and logs, not for the query path.
    pub fn names(&self) -> BTreeMap<String, Vec<String>> {
        self.hosts.to_map()
    }

    /// How many host names there are.
    pub fn name_total(&self) -> usize {
        self.hosts.len()
    }

    /// The names whose instances differ from `next`'s (or that only one has): this
    /// snapshot's side and `next`'s, for the publish log.
    pub fn name_changes(&self, next: &Snapshot) -> [BTreeMap<String, Vec<String>>; 2] {
        self.hosts.changes(&next.hosts)
    }

    /// How many of this snapshot's names `next` does not have: the safety valve's measure.
    pub fn names_removed_in(&self, next: &Snapshot) -> usize {
        self.hosts.removed_in(&next.hosts)
    }

    /// A hash of every name and the instances behind it.
    pub fn names_fingerprint(&self) -> u64 {
        self.hosts.fingerprint()
    }

    /// A view by name.
    pub fn view(&self, name: &str) -> Option<&ViewZone> {
        self.views.iter().find(|v| v.name == name)
    }
}

/// One view's answers: an index from each name to its RRsets in the shared `Store`, plus the
/// view's zone cuts. Two views are compared with [`ViewZone::same_answers`], which leaves out
/// what is not an answer (counters, IXFR history).
#[derive(Debug)]
pub struct ViewZone {
    /// The view's name.
    pub name: String,
    /// How it answers (recursion, CNAME chasing, explain).
    pub policy: ViewPolicy,
    /// The fleet the backings index (the snapshot's, shared).
    fleet: Fleet,
    /// The names a full build made (the store's, shared by every view).
    base: Arc<Layer>,
    /// The names changed since, over the base: a lookup tries it first (see [`layer`]).
    top: Option<Arc<Layer>>,
    /// The forward zone first, then the reverse zones.
    zones: Vec<ZoneCut>,
    /// Subtrees under the apex that are not ours (`zone.passthrough`, AWS's own domains).
    passthrough: Arc<[LowerName]>,
    /// Records past `max_records_per_rrset`, left out of transfers (answers rotate them in).
    pub over_cap: usize,
    /// What the UDP fast path needs beyond the nodes.
    pub(crate) fast: fast::FastZone,
    /// The changes that led to this snapshot, for IXFR (see [`Snapshot::link_history`]): set
    /// once, after the snapshot is served.
    history: std::sync::OnceLock<History>,
}

/// What a transfer of one zone sends.
#[derive(Debug)]
pub struct ZoneContents {
    /// The zone's SOA (first and last record of an AXFR).
    pub soa: Record,
    /// Every other record of the zone, sorted by owner and type.
    pub records: Vec<Record>,
}

/// A zone the view is authoritative for. Its SOA lives here rather than in the store, so a
/// new serial changes a few records per view and never the shared store.
#[derive(Debug, Clone)]
struct ZoneCut {
    apex: LowerName,
    /// The apex in the store.
    apex_id: NameId,
    soa: Record,
    /// The SOA for the authority section of negative answers: its TTL is the negative-caching
    /// TTL, min(SOA TTL, MINIMUM) (RFC 2308 section 3).
    negative_soa: Record,
    /// Addresses of in-zone nameservers, for the additional section of the apex NS answer.
    glue: Vec<Record>,
}

/// Everything at one owner name: 16 bytes, and hundreds of thousands of them per view.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    name: NameId,
    /// Where its sets start in `set_refs`.
    first: u32,
    /// How many; none for an empty non-terminal (`web` when only `1.web` exists).
    sets: u16,
    /// In the forward zone (not a reverse zone): the fast path answers only those.
    forward: bool,
    /// The instances behind the name and the rules that made it (none for the zone's own
    /// names): a span of its layer's [`Backings`](layer::Backings).
    backing: u32,
    /// In a top layer: the name is gone (the base's node for it is not served).
    gone: bool,
}

/// Whether two nodes' backings name the same instances for the same reasons. Backings index
/// their own snapshot's fleet, so instances compare by id: a fleet listed in another order
/// backs the same names.
fn same_backing(fa: &[Arc<Instance>], a: &[Backing], fb: &[Arc<Instance>], b: &[Backing]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.via == y.via && fa[x.instance as usize].id == fb[y.instance as usize].id
        })
}

// hickory's `Record` equality leaves the TTL out (RFC 2136's rule for updates); a snapshot
// that only changes TTLs is still a new zone to publish, and to transfer.
impl PartialEq for ZoneCut {
    fn eq(&self, other: &Self) -> bool {
        self.apex == other.apex
            && same_records(
                &[&self.soa, &self.negative_soa],
                &[&other.soa, &other.negative_soa],
            )
            && same_records(&self.glue, &other.glue)
    }
}

/// Equal records with equal TTLs, in the same order.
fn same_records<R: std::borrow::Borrow<Record>>(a: &[R], b: &[R]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (x, y) = (x.borrow(), y.borrow());
            x == y && x.ttl == y.ttl
        })
}

/// How the records of a set are handed out per query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pick {
    /// All, in order.
    All,
    /// All, starting at a random one: clients that use the first address spread over a tier.
    Rotate,
    /// One at random (a tier answered by a CNAME to one member).
    One,
    /// A set larger than `zone.max_records_per_rrset`: this many per answer, starting at a
    /// random one, so every record is handed out over the queries; transfers carry the first
    /// this many (BIND refuses larger sets, as a secondary and as a resolver).
    Window(u16),
}

/// The outcome of looking a question up in a view.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    /// The name is in none of the view's zones: forwarded or refused.
    NotOurs,
    /// Authoritative data.
    Answer {
        /// Answer section.
        answers: Vec<Record>,
        /// Additional section.
        additionals: &'a [Record],
        /// How to hand the answers out.
        pick: Pick,
    },
    /// The name exists, not with that type: NOERROR, empty answer, SOA in authority.
    NoData(&'a Record),
    /// The name does not exist: NXDOMAIN, SOA in authority.
    NxDomain(&'a Record),
}

/// A set at a node: stored, or the zone's SOA (which lives in its [`ZoneCut`]).
enum SetAt<'a> {
    Stored(SetRef<'a>),
    Soa(&'a ZoneCut),
}

impl SetAt<'_> {
    fn rtype(&self) -> RecordType {
        match self {
            Self::Stored(set) => set.rtype(),
            Self::Soa(_) => RecordType::SOA,
        }
    }

    /// The type's code: comparing codes avoids `RecordType::from(u16)`, a long match.
    fn code(&self) -> u16 {
        match self {
            Self::Stored(set) => set.code(),
            Self::Soa(_) => u16::from(RecordType::SOA),
        }
    }
}

impl ViewZone {
    /// Answers one question. `name` must be lower-cased (a [`LowerName`] is).
    pub fn lookup(&self, name: &LowerName, rtype: RecordType) -> Lookup<'_> {
        let Some(zone) = self.zones.iter().find(|z| z.apex.zone_of(name)) else {
            return Lookup::NotOurs;
        };
        if self.is_passthrough(name) {
            return Lookup::NotOurs;
        }
        let negative_soa = &zone.negative_soa;
        let Some(node) = self.node_of(name) else {
            return Lookup::NxDomain(negative_soa);
        };
        // RFC 1034 3.6.2: a CNAME owner has no other data, and answers every type with it.
        if let Some(only) = node.sets().next()
            && node.sets == 1
            && only.code() == u16::from(RecordType::CNAME)
        {
            return self.answer(name, &SetAt::Stored(only));
        }
        let mut sets = self.sets_at(node);
        let set = match rtype {
            // RFC 8482: one RRset is a complete answer to ANY, and it keeps replies small: the
            // first by type.
            RecordType::ANY => sets.next(),
            _ => {
                let code = u16::from(rtype);
                sets.find(|s| s.code() == code)
            }
        };
        match set {
            Some(set) => self.answer(name, &set),
            None => Lookup::NoData(negative_soa),
        }
    }

    fn answer(&self, name: &LowerName, set: &SetAt<'_>) -> Lookup<'_> {
        match set {
            SetAt::Soa(zone) => Lookup::Answer {
                answers: vec![zone.soa.clone()],
                additionals: &[],
                pick: Pick::All,
            },
            SetAt::Stored(set) => {
                let owner = Name::from(name.clone());
                let additionals = match self.zones.iter().find(|z| z.apex == *name) {
                    Some(zone) if set.rtype() == RecordType::NS => &zone.glue[..],
                    _ => &[],
                };
                Lookup::Answer {
                    answers: set.records(&owner, usize::MAX),
                    additionals,
                    pick: set.pick(),
                }
            }
        }
    }

    /// The node at a lower-case wire name: the query path's hash lookup (two while a top
    /// layer is over the base).
    #[inline]
    pub(crate) fn node(&self, wire: &[u8]) -> Option<NodeRef<'_>> {
        if let Some(top) = &self.top
            && let Some(node) = top.find(wire)
        {
            return (!node.gone).then(|| top.at(node));
        }
        self.base.find(wire).map(|node| self.base.at(node))
    }

    fn node_of(&self, name: &LowerName) -> Option<NodeRef<'_>> {
        let mut buf = [0u8; 256];
        self.node(store::wire_into(name, &mut buf))
    }

    /// A node's stored sets, in type order.
    #[inline]
    pub(crate) fn node_sets<'a>(&self, node: NodeRef<'a>) -> impl Iterator<Item = SetRef<'a>> {
        node.sets()
    }

    /// A set's records in answer-section wire form.
    #[inline]
    pub(crate) fn wire<'a>(&self, set: SetRef<'a>) -> &'a [u8] {
        set.wire()
    }

    /// Every node served: the base's that the top does not replace, then the top's that are
    /// not tombstones. A scan, for the slow paths (transfers, comparisons, listings).
    fn live(&self) -> impl Iterator<Item = NodeRef<'_>> {
        let top = self.top.as_deref();
        let base = &*self.base;
        let kept = base
            .nodes
            .iter()
            .map(move |n| base.at(n))
            .filter(move |n| top.is_none_or(|t| t.find(n.wire_name()).is_none()));
        let over = top
            .into_iter()
            .flat_map(|t| t.nodes.iter().filter(|n| !n.gone).map(move |n| t.at(n)));
        kept.chain(over)
    }

    /// A node's sets in type order, its zone's SOA (which lives in the zone cut) included at
    /// an apex. Allocates nothing: the handler's lookups go through here.
    fn sets_at<'a>(&'a self, node: NodeRef<'a>) -> impl Iterator<Item = SetAt<'a>> {
        let soa = u16::from(RecordType::SOA);
        let below = node.sets().take_while(move |s| s.code() < soa);
        let above = node.sets().skip_while(move |s| s.code() < soa);
        // Zone apexes are the base's: a top never holds one.
        let apex = (self.zones.iter()).find(|z| node.is_in(&self.base) && z.apex_id == node.name);
        (below.map(SetAt::Stored))
            .chain(apex.map(SetAt::Soa))
            .chain(above.map(SetAt::Stored))
    }

    /// The records of the zone whose apex is `apex`, for AXFR; `None` if this view does not
    /// serve that zone.
    pub fn zone_contents(&self, apex: &LowerName) -> Option<ZoneContents> {
        let zone = self.zones.iter().find(|z| z.apex == *apex)?;
        let mut records = self.zone_records(zone);
        // Sorted, so two transfers of one serial are identical.
        records.sort_by(|a, b| (&a.name, a.record_type()).cmp(&(&b.name, b.record_type())));
        Some(ZoneContents {
            soa: zone.soa.clone(),
            records,
        })
    }

    /// The nodes with data whose home is `zone` (not a zone cut below it), with their
    /// owner names: what a transfer of `zone` walks.
    fn zone_nodes<'z>(&'z self, zone: &'z ZoneCut) -> impl Iterator<Item = (NodeRef<'z>, Name)> {
        self.live().filter(|n| n.sets > 0).filter_map(move |node| {
            let owner = node.owner();
            let home = self.zone_for(&LowerName::from(&owner));
            home.is_some_and(|z| z.apex == zone.apex)
                .then_some((node, owner))
        })
    }

    /// Every record a transfer of `zone` carries, its SOA left out, unsorted.
    fn zone_records(&self, zone: &ZoneCut) -> Vec<Record> {
        let mut records = Vec::new();
        for (node, owner) in self.zone_nodes(zone) {
            for set in node.sets() {
                records.extend(set.records(&owner, set.transferred()));
            }
        }
        records
    }

    /// The SOA record of the zone at `apex`.
    pub fn soa(&self, apex: &LowerName) -> Option<&Record> {
        self.zones.iter().find(|z| z.apex == *apex).map(|z| &z.soa)
    }

    /// Whether `self` and `other` give every client the same answers and transfers: the
    /// publish-if-changed test. Counters and history are not answers. Full builds are
    /// deterministic (names in naming's order), so two without a top layer have equal nodes
    /// in the same order and one pass over both compares them; otherwise each node served is
    /// looked up in the other.
    pub fn same_answers(&self, other: &ViewZone) -> bool {
        let same_node = |a: NodeRef<'_>, b: NodeRef<'_>| {
            a.wire_name() == b.wire_name()
                && a.sets == b.sets
                && same_backing(&self.fleet, a.backing(), &other.fleet, b.backing())
                && a.sets().zip(b.sets()).all(|(x, y)| x.same(&y))
        };
        let nodes = || match (&self.top, &other.top) {
            (None, None) => {
                let (x, y) = (&*self.base, &*other.base);
                x.nodes.len() == y.nodes.len()
                    && (x.nodes.iter().zip(&y.nodes)).all(|(a, b)| same_node(x.at(a), y.at(b)))
            }
            _ => {
                self.live().count() == other.live().count()
                    && self
                        .live()
                        .all(|a| other.node(a.wire_name()).is_some_and(|b| same_node(a, b)))
            }
        };
        self.name == other.name
            && self.policy == other.policy
            && self.zones == other.zones
            && self.passthrough == other.passthrough
            && self.fast == other.fast
            && nodes()
    }

    /// Whether the view has `name` (with records, or as a parent of names that have some).
    pub fn exists(&self, name: &LowerName) -> bool {
        self.node_of(name).is_some()
    }

    /// The SOA for a negative answer about `name`, if one of this view's zones holds it.
    pub fn negative_soa(&self, name: &LowerName) -> Option<&Record> {
        self.zone_for(name).map(|z| &z.negative_soa)
    }

    /// Whether `name` lies in a subtree under the apex that another server answers.
    pub fn is_passthrough(&self, name: &LowerName) -> bool {
        self.passthrough.iter().any(|p| p.zone_of(name))
    }

    /// Whether `apex` is the apex of one of this view's zones.
    pub fn has_zone(&self, apex: &LowerName) -> bool {
        self.zones.iter().any(|z| z.apex == *apex)
    }

    /// The apexes of this view's zones (forward first).
    pub fn zone_apexes(&self) -> impl Iterator<Item = &LowerName> {
        self.zones.iter().map(|z| &z.apex)
    }

    /// The most specific zone of this view holding `name`.
    fn zone_for(&self, name: &LowerName) -> Option<&ZoneCut> {
        self.zones
            .iter()
            .filter(|z| z.apex.zone_of(name))
            .max_by_key(|z| z.apex.num_labels())
    }

    /// Whether `record` belongs to the zone at `apex` in this view.
    pub fn in_zone(&self, apex: &LowerName, record: &Record) -> bool {
        self.zone_for(&LowerName::from(&record.name))
            .is_some_and(|z| z.apex == *apex)
    }

    /// The instances behind a name and why, if the view has the name.
    pub fn backing(&self, name: &LowerName) -> Option<&[Backing]> {
        self.node_of(name).map(|n| n.backing())
    }

    /// How many names have data (not counting empty non-terminals).
    pub fn name_count(&self) -> usize {
        self.live()
            .filter(|n| {
                n.sets > 0
                    || (n.is_in(&self.base) && self.zones.iter().any(|z| z.apex_id == n.name))
            })
            .count()
    }
}

/// Where the current snapshot lives. Readers `load` without a lock; the refresh loop `store`s
/// a whole new snapshot at once, so a reader sees the old one or the new one, never a mix.
#[derive(Debug, Default, Clone)]
pub struct SnapshotCell(Arc<ArcSwapOption<Snapshot>>);

impl SnapshotCell {
    /// The current snapshot, if one was ever published.
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.0.load_full()
    }

    /// The current snapshot without touching its reference count: for the query path, where
    /// every core would otherwise bounce the count's cache line.
    pub fn guard(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.0.load()
    }

    /// Publishes a snapshot.
    pub fn store(&self, snapshot: Snapshot) {
        self.0.store(Some(Arc::new(snapshot)));
    }
}

impl crate::telemetry::Report for SnapshotCell {
    /// The published snapshot's gauges: what it holds, not what was done with it.
    fn report(&self, out: &mut crate::telemetry::Families) {
        use crate::telemetry::Kind;
        let Some(s) = self.load() else {
            return;
        };
        let per_view = |f: fn(&ViewZone) -> usize| -> Vec<(String, u64)> {
            (s.views.iter())
                .map(|v| (v.name.clone(), f(v) as u64))
                .collect()
        };
        let help = "Names with data, per view";
        out.by(
            Kind::Gauge,
            "stabledns_names",
            help,
            "view",
            per_view(ViewZone::name_count),
        );
        out.by(
            Kind::Gauge,
            "stabledns_rrset_records_over_cap",
            "Records past max_records_per_rrset, left out of transfers, per view",
            "view",
            per_view(|v| v.over_cap),
        );
        out.gauge(
            "stabledns_instances",
            "Instances in the published snapshot's inventory",
            s.instance_count as u64,
        );
        out.gauge(
            "stabledns_serial",
            "The published SOA serial",
            u64::from(s.serial),
        );
        out.by(
            Kind::Gauge,
            "stabledns_zone_content",
            "1, labelled with a hash of every view's zones without their serials: replicas \
             serving the same data show the same hash",
            "hash",
            [(format!("{:016x}", s.content_hash()), 1)],
        );
        let r = s.rotation;
        out.by(
            Kind::Gauge,
            "stabledns_instances_out_of_rotation",
            "Named instances out of their tiers' answers, by reason",
            "reason",
            [
                ("drained", u64::from(r.drained)),
                ("impaired", u64::from(r.impaired)),
            ],
        );
        out.gauge(
            "stabledns_tiers_failing_open",
            "Tiers whose every member is drained or impaired, answered in full",
            u64::from(r.failing_open),
        );
        let f = s.slot_fixes;
        out.by(
            Kind::Gauge,
            "stabledns_slots_renumbered",
            "Tier members the last build renumbered, by why their number could not stay",
            "reason",
            [
                ("duplicate", u64::from(f.duplicate)),
                ("invalid", u64::from(f.invalid)),
                ("above_size", u64::from(f.above_size)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;

    #[test]
    fn a_ttl_change_makes_a_different_zone() {
        let cut = |ttl| ZoneCut {
            apex: LowerName::from(Name::from_ascii("internal.").expect("name")),
            apex_id: 0,
            soa: Record::from_rdata(Name::root(), 60, RData::A(A::new(10, 0, 1, 20))),
            negative_soa: Record::from_rdata(Name::root(), ttl, RData::A(A::new(10, 0, 1, 20))),
            glue: Vec::new(),
        };
        assert!(cut(60) == cut(60));
        assert!(
            cut(60) != cut(17),
            "hickory's Record equality ignores TTLs; ours must not"
        );
    }
}
