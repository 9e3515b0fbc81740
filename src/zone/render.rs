//! The zone in forms people and tools read: record sets as a transfer carries them (what
//! `stabledns zone` prints and publishing sends), master files, `stabledns names` rows and
//! `_explain` texts. Cold paths: none of this is on the query path.

use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::{NodeRef, Pick, SetAt, ViewZone};

/// One record set of a zone, as a transfer carries it ([`ViewZone::zone_sets`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSet {
    /// The owner.
    pub name: Name,
    /// The owner in presentation form with A-labels (`xn--ber-goa.internal.`).
    pub text: String,
    /// The type.
    pub rtype: RecordType,
    /// The TTL its records carry.
    pub ttl: u32,
    /// The records' data, in the order a transfer sends them.
    pub rdata: Vec<RData>,
    /// How many records the set holds in answers: more than `rdata` holds when a transfer
    /// carries only some (a set over `zone.max_records_per_rrset`, a tier answered by CNAME).
    pub served: usize,
}

/// RDATA in presentation form with every name as ASCII (`xn--ber-cache-p9a`): hickory's
/// `Display` writes IDNA names in Unicode, which no zone file parser takes as a host name.
pub fn rdata_text(data: &RData) -> String {
    match data {
        RData::CNAME(n) => n.0.to_ascii(),
        RData::NS(n) => n.0.to_ascii(),
        RData::PTR(n) => n.0.to_ascii(),
        RData::SRV(s) => format!(
            "{} {} {} {}",
            s.priority,
            s.weight,
            s.port,
            s.target.to_ascii()
        ),
        RData::SOA(s) => format!(
            "{} {} {} {} {} {} {}",
            s.mname.to_ascii(),
            s.rname.to_ascii(),
            s.serial,
            s.refresh,
            s.retry,
            s.expire,
            s.minimum
        ),
        other => other.to_string(),
    }
}

/// One line of `stabledns names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Owner name, fully qualified.
    pub name: String,
    /// Record type.
    pub rtype: RecordType,
    /// Each record's data in presentation form.
    pub targets: Vec<String>,
    /// Instance ids behind the name.
    pub instances: Vec<String>,
}

impl ViewZone {
    /// For `_explain`: how a set at `name` larger than `max_records_per_rrset` is handed out.
    pub fn capped(&self, name: &LowerName) -> Vec<String> {
        let Some(node) = self.node_of(name) else {
            return Vec::new();
        };
        node.sets()
            .filter_map(|s| match s.pick() {
                Pick::Window(n) => Some(format!(
                    "{name} {}: {} records, more than max_records_per_rrset ({n}): each answer \
                     carries {n}, rotated per query; transfers carry the first {n}",
                    s.rtype(),
                    s.count()
                )),
                _ => None,
            })
            .collect()
    }

    /// The record sets at a node in presentation form (type, data).
    fn texts(&self, node: NodeRef<'_>) -> Vec<(RecordType, Vec<String>)> {
        let owner = node.owner();
        self.sets_at(node)
            .map(|set| {
                let records = match set {
                    SetAt::Stored(s) => s.records(&owner, usize::MAX),
                    SetAt::Soa(zone) => vec![zone.soa.clone()],
                };
                let texts = records.iter().map(|r| rdata_text(&r.data)).collect();
                (set.rtype(), texts)
            })
            .collect()
    }

    /// The record sets at a name in presentation form (type, data), for `_explain` answers.
    pub fn describe(&self, name: &LowerName) -> Vec<(RecordType, Vec<String>)> {
        self.node_of(name)
            .map_or_else(Vec::new, |node| self.texts(node))
    }

    /// Every name with data, sorted, for `stabledns names`: not for the query path.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::new();
        for node in self.live() {
            let name = node.owner().to_string();
            for (rtype, targets) in self.texts(node) {
                rows.push(Row {
                    name: name.clone(),
                    rtype,
                    targets,
                    instances: node
                        .backing()
                        .iter()
                        .map(|b| self.fleet[b.instance as usize].id.clone())
                        .collect(),
                });
            }
        }
        rows.sort_by(|a, b| {
            (a.name.as_str(), u16::from(a.rtype)).cmp(&(b.name.as_str(), u16::from(b.rtype)))
        });
        rows
    }

    /// The record sets of the zone at `apex` (default: the forward zone) as a transfer carries
    /// them: the SOA first, then every set sorted by owner (A-labels) and type. What `stabledns
    /// zone` prints and what publishing sends, so the two cannot drift. Not for the query
    /// path. `None` when the view serves no such zone.
    pub fn zone_sets(&self, apex: Option<&LowerName>) -> Option<Vec<ZoneSet>> {
        let zone = match apex {
            Some(apex) => self.zones.iter().find(|z| z.apex == *apex)?,
            None => self.zones.first()?,
        };
        let mut sets = Vec::new();
        for (node, owner) in self.zone_nodes(zone) {
            let text = owner.to_ascii();
            for set in node.sets() {
                let records = set.records(&owner, set.transferred());
                sets.push(ZoneSet {
                    ttl: records.first().map_or(0, |r| r.ttl),
                    rdata: records.into_iter().map(|r| r.data).collect(),
                    name: owner.clone(),
                    text: text.clone(),
                    rtype: set.rtype(),
                    served: set.count() as usize,
                });
            }
        }
        sets.sort_by(|a, b| (&a.text, u16::from(a.rtype)).cmp(&(&b.text, u16::from(b.rtype))));
        let soa = ZoneSet {
            name: zone.soa.name.clone(),
            text: zone.soa.name.to_ascii(),
            rtype: RecordType::SOA,
            ttl: zone.soa.ttl,
            rdata: vec![zone.soa.data.clone()],
            served: 1,
        };
        sets.insert(0, soa);
        Some(sets)
    }

    /// The zone at `apex` (default: the forward zone) in RFC 1035 master-file form, its
    /// [`ViewZone::zone_sets`] one record a line: for loading into NSD or Knot, or checking
    /// with named-checkzone. `None` when the view serves no such zone.
    pub fn zone_file(&self, apex: Option<&LowerName>) -> Option<String> {
        let mut out = String::new();
        for set in self.zone_sets(apex)? {
            for data in &set.rdata {
                out.push_str(&format!(
                    "{} {} IN {} {}\n",
                    set.text,
                    set.ttl,
                    set.rtype,
                    rdata_text(data)
                ));
            }
        }
        Some(out)
    }
}
