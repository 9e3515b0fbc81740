//! IXFR history: how each serial's zone became the next, kept per view so secondaries catch
//! up by incremental transfer (RFC 1995). An RRset diff: sets whose bytes are equal cost a
//! comparison, and only changed sets become records.

use std::sync::Arc;

use hickory_proto::rr::{Name, Record};

use super::{Snapshot, ViewZone};

/// How one serial's zone became the next: the records removed and added (SOAs left out).
#[derive(Debug)]
pub struct Diff {
    /// The serial before.
    pub from: u32,
    /// The serial after.
    pub to: u32,
    /// Records gone (or with another TTL) in `to`.
    pub removed: Vec<Record>,
    /// Records new (or with another TTL) in `to`.
    pub added: Vec<Record>,
}

/// The recent diffs of a view, oldest first; not part of what a view answers. Each diff is
/// shared by the histories of the snapshots after it, not copied into each.
#[derive(Debug, Clone, Default)]
pub struct History(pub Arc<[Arc<Diff>]>);

/// Diffs kept per view for IXFR; a secondary further behind gets a full transfer.
const HISTORY_DIFFS: usize = 16;
/// A diff larger than this many records is not kept (a full transfer is as cheap).
const HISTORY_MAX_RECORDS: usize = 200_000;

impl Snapshot {
    /// Gives each view `previous`'s history unchanged: for a snapshot that answers exactly as
    /// `previous` does, under its serial (built from a fleet that differs only where no answer
    /// shows it, such as a tag no rule reads).
    pub fn keep_history(&self, previous: &Snapshot) {
        for view in &self.views {
            if let Some(before) = previous.view(&view.name) {
                let _ = view.history.set(before.history().clone());
            }
        }
    }

    /// Gives each view the history of `previous`'s view of the same name plus the diff from
    /// it to this one, so secondaries can catch up by IXFR. Call after [`Snapshot::set_serial`];
    /// a view's history is set once, so a second call changes nothing.
    ///
    /// The refresh calls it after the swap: the diff reads every name of both snapshots (40 ms
    /// at 100,000 instances), and answers need not wait for it. Until then an IXFR gets the
    /// whole zone (RFC 1995 4), and NOTIFY goes out after it.
    pub fn link_history(&self, previous: &Snapshot) {
        for view in &self.views {
            let Some(before) = previous.view(&view.name) else {
                continue;
            };
            let (removed, added) = before.diff(view);
            let mut kept: Vec<Arc<Diff>> = Vec::new();
            if removed.len() + added.len() <= HISTORY_MAX_RECORDS {
                let history = before.history();
                let skip = history.0.len().saturating_sub(HISTORY_DIFFS - 1);
                kept.extend(history.0.iter().skip(skip).cloned());
                kept.push(Arc::new(Diff {
                    from: previous.serial,
                    to: self.serial,
                    removed,
                    added,
                }));
            }
            let _ = view.history.set(History(kept.into()));
        }
    }
}

impl ViewZone {
    /// The changes that led to this snapshot, oldest first; none until
    /// [`Snapshot::link_history`] ran.
    pub fn history(&self) -> &History {
        static NONE: std::sync::LazyLock<History> = std::sync::LazyLock::new(History::default);
        self.history.get().unwrap_or(&NONE)
    }

    /// Records (SOAs left out) in `self` and not in `next`, and in `next` and not in `self`;
    /// a record whose TTL changed is in both. An RRset diff: names whose sets are the same
    /// bytes cost a hash lookup and a comparison, and only changed sets become records.
    fn diff(&self, next: &ViewZone) -> (Vec<Record>, Vec<Record>) {
        let mut removed = missing_from(self, next);
        let mut added = missing_from(next, self);
        for records in [&mut removed, &mut added] {
            records.sort_by(|a, b| (&a.name, a.record_type()).cmp(&(&b.name, b.record_type())));
        }
        (removed, added)
    }
}

/// The records `a` transfers that `b` does not (a TTL change counts), SOAs left out.
fn missing_from(a: &ViewZone, b: &ViewZone) -> Vec<Record> {
    let mut out = Vec::new();
    for node in a.differing(b) {
        let other = b.node(node.wire_name());
        let mut owner: Option<Name> = None;
        for set in node.sets() {
            let theirs = other.and_then(|o| o.sets().find(|s| s.code() == set.code()));
            if theirs.is_some_and(|t| t.transferred() == set.transferred() && set.same(&t)) {
                continue;
            }
            let owner = owner.get_or_insert_with(|| node.owner());
            let ours = set.records(owner, set.transferred());
            let theirs = theirs.map_or_else(Vec::new, |t| t.records(owner, t.transferred()));
            out.extend(
                ours.into_iter()
                    .filter(|r| !theirs.iter().any(|t| t == r && t.ttl == r.ttl)),
            );
        }
    }
    out
}
