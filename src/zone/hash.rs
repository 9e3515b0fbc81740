//! The snapshot's hashes: its content hash, what replicas compare to see they serve the same
//! zones, and the key of its list of views.

use super::Snapshot;

impl Snapshot {
    /// A hash of every view's zones as transfers carry them, SOA serials left out: two
    /// replicas serving the same data give the same hash, whatever their serials, so a
    /// dashboard sees replicas that disagree. FNV-1a over the master files, an algorithm
    /// fixed here so that two builds of stabledns agree too. Rendering every zone is not for
    /// the query path: it is computed once per snapshot, on first use (a scrape or `/readyz`,
    /// off the runtime), not at every publish.
    pub fn content_hash(&self) -> u64 {
        *self.content_hash.get_or_init(|| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            let mut feed = |bytes: &[u8]| {
                for &b in bytes {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            };
            for view in &self.views {
                feed(view.name.as_bytes());
                feed(b"\n");
                for apex in view.zone_apexes() {
                    let Some(text) = view.zone_file(Some(apex)) else {
                        continue;
                    };
                    // The first line is the SOA, serial and all.
                    for line in text.lines().skip(1) {
                        feed(line.as_bytes());
                        feed(b"\n");
                    }
                }
            }
            hash
        })
    }
}

impl Snapshot {
    /// Whether [`Snapshot::content_hash`] is worked out already (then it costs nothing).
    pub fn content_hash_known(&self) -> bool {
        self.content_hash.get().is_some()
    }
}

/// A hash of the views' names in order: [`Snapshot::views_key`].
pub(super) fn views_key(views: &[super::ViewZone]) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    for v in views {
        v.name.hash(&mut h);
    }
    h.finish()
}
