//! The state file: the last published inventory and its serial, so a restart answers at once.
//!
//! Written atomically (temporary file in the same folder, fsync, rename, fsync of the folder):
//! a crash at any moment leaves the old file or the new one, never half of one. Reading
//! tolerates nothing: a file that does not parse is reported and ignored as a whole.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::inventory::Instance;
use crate::naming::Slots;

/// Bumped when the format changes incompatibly; other versions are ignored with a warning.
const VERSION: u32 = 1;

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    /// Format version.
    pub version: u32,
    /// The serial the fleet was published with.
    pub serial: u32,
    /// When it was written.
    pub saved_at: jiff::Timestamp,
    /// The fleet.
    pub instances: Vec<Instance>,
    /// Tier slot numbers, so instances keep them across restarts (absent in older files).
    #[serde(default)]
    pub slots: Slots,
    /// Instances that left the fleet, newest last (absent in older files).
    #[serde(default)]
    pub departed: Vec<Departed>,
}

/// An instance that left the fleet, as last seen holding its addresses: `stabledns audit`
/// names it, and whoever took over its names, when a rule still lets its address in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Departed {
    /// The instance, addresses and tags as they were.
    pub instance: Instance,
    /// When a publish first saw it gone.
    pub departed_at: jiff::Timestamp,
    /// The names it had alone in the last snapshot that served it ([`Snapshot::own_names`]),
    /// first the one reported: who has them now is who replaced it. Empty in state files
    /// written before names were kept.
    ///
    /// [`Snapshot::own_names`]: crate::zone::Snapshot::own_names
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// How long a departure is remembered: long after any rule to its address should be gone.
const DEPARTED_FOR: jiff::SignedDuration = jiff::SignedDuration::from_hours(90 * 24);

/// At most this many departures are remembered (the oldest go first): a few MB of state file.
const DEPARTED_MAX: usize = 10_000;

/// Adds to `history` the instances of `before` that held addresses and no longer do in
/// `after` (gone, or terminated), each with the names `names` says it had, then forgets what
/// is older than 90 days or beyond the newest 10,000. `find` is `after`'s instance by id.
///
/// Only the instances not at the same place in both fleets are looked up: an event replaces
/// a few in place, so its departures cost what it changed, not a pass over the fleet.
pub fn record_departures<'f>(
    history: &mut Vec<Departed>,
    before: &[Arc<Instance>],
    names: &dyn Fn(&Instance) -> Vec<String>,
    after: &[Arc<Instance>],
    find: &dyn Fn(&str) -> Option<&'f Instance>,
    now: jiff::Timestamp,
) {
    let holding = |i: &Instance| {
        i.state.holds_addresses()
            && (i.private_ip.is_some() || i.public_ip.is_some() || !i.ipv6.is_empty())
    };
    let gone: Vec<Departed> = (before.iter().enumerate())
        .filter(|(at, i)| after.get(*at).is_none_or(|a| !Arc::ptr_eq(a, i)))
        .map(|(_, i)| i)
        .filter(|i| holding(i))
        .filter(|i| !find(&i.id).is_some_and(holding))
        .map(|i| Departed {
            instance: Instance::clone(i),
            departed_at: now,
            names: names(i),
        })
        .collect();
    if !gone.is_empty() {
        // An instance that came back (a restored state file) and left again is listed once.
        let ids: std::collections::HashSet<&str> =
            gone.iter().map(|d| d.instance.id.as_str()).collect();
        history.retain(|d| !ids.contains(d.instance.id.as_str()));
        history.extend(gone);
    }
    let horizon = now - DEPARTED_FOR;
    history.retain(|d| d.departed_at >= horizon);
    if history.len() > DEPARTED_MAX {
        history.drain(..history.len() - DEPARTED_MAX);
    }
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("failed to {action} state file {path}: {source}")]
    Io {
        /// read, write, …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not a state file this version understands.
    #[error("ignoring unreadable state file {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Removes temporary files a killed process left beside the state file (best effort).
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    let own = format!("{prefix}{}", std::process::id());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file != own {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Reads the state file; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Saved>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut saved: Saved = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if saved.version != VERSION {
        return Err(StateError::Corrupt {
            path: path.to_owned(),
            message: format!(
                "format version {} (this build reads {VERSION})",
                saved.version
            ),
        });
    }
    let mut strings = crate::inventory::Interner::default();
    saved.instances = (saved.instances.into_iter())
        .map(|inst| strings.share(inst))
        .collect();
    Ok(Some(saved))
}

/// Writes the state file atomically.
pub fn save(
    path: &Path,
    serial: u32,
    instances: &[Arc<Instance>],
    slots: &Slots,
    departed: &[Departed],
) -> Result<(), StateError> {
    let io_err = |action, source| StateError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let saved = SavedRef {
        version: VERSION,
        serial,
        saved_at: jiff::Timestamp::now(),
        instances,
        slots,
        departed,
    };
    let bytes = serde_json::to_vec(&saved).map_err(|e| io_err("encode", io::Error::other(e)))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> io::Result<()> {
        // The fleet's addresses and tags are nobody else's business.
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable only once the folder is.
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write", e)
    })
}

#[derive(Serialize)]
struct SavedRef<'a> {
    version: u32,
    serial: u32,
    saved_at: jiff::Timestamp,
    #[serde(serialize_with = "shared_instances")]
    instances: &'a [Arc<Instance>],
    slots: &'a Slots,
    departed: &'a [Departed],
}

/// The instances of a fleet, written as the owned ones they are read back as.
fn shared_instances<S: serde::Serializer>(
    instances: &&[Arc<Instance>],
    out: S,
) -> Result<S::Ok, S::Error> {
    out.collect_seq(instances.iter().map(|i| &**i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance of `fleet` by id.
    fn find<'f>(fleet: &'f [Instance]) -> impl Fn(&str) -> Option<&'f Instance> {
        move |id| fleet.iter().find(|i| i.id == id)
    }

    fn shared(fleet: &[Instance]) -> Vec<Arc<Instance>> {
        fleet.iter().cloned().map(Arc::new).collect()
    }

    fn demo() -> Vec<Instance> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-instances.json");
        let bytes = fs::read(&path).expect("demo");
        crate::inventory::file::parse(&path, &bytes, None)
            .expect("parses")
            .instances
    }

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert!(load(&path).expect("missing is fine").is_none());

        let fleet = demo();
        let slots: Slots = [("web".to_owned(), [("i-1".to_owned(), 2)].into())].into();
        let departed = vec![Departed {
            instance: fleet[0].clone(),
            departed_at: jiff::Timestamp::UNIX_EPOCH,
            names: vec!["db1.internal.".into()],
        }];
        save(&path, 42, &shared(&fleet), &slots, &departed).expect("saves");
        let saved = load(&path).expect("loads").expect("present");
        assert_eq!(saved.serial, 42);
        assert_eq!(saved.instances, fleet);
        assert_eq!(saved.slots, slots);
        assert_eq!(saved.departed, departed);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1);

        fs::write(&path, b"{\"version\":1,\"serial\":").expect("write");
        assert!(matches!(load(&path), Err(StateError::Corrupt { .. })));
        fs::write(
            &path,
            b"{\"version\":99,\"serial\":1,\"saved_at\":\"2026-01-01T00:00:00Z\",\"instances\":[]}",
        )
        .expect("write");
        let e = load(&path).expect_err("other version");
        assert!(e.to_string().contains("version 99"), "{e}");
    }

    #[test]
    fn departures_are_the_instances_that_gave_their_addresses_back() {
        let fleet = demo();
        let now = jiff::Timestamp::now();
        let mut history = Vec::new();
        let none = |_: &Instance| Vec::new();
        record_departures(
            &mut history,
            &shared(&fleet),
            &none,
            &shared(&fleet),
            &find(&fleet),
            now,
        );
        assert!(history.is_empty(), "nothing left");

        // One instance gone, one terminated: both departed, each once.
        let mut after = fleet[2..].to_vec();
        after[0].state = crate::inventory::InstanceState::Terminated;
        let depart = |history: &mut Vec<Departed>| {
            let (before, later) = (shared(&fleet), shared(&after));
            record_departures(history, &before, &none, &later, &find(&after), now);
        };
        depart(&mut history);
        let ids: Vec<&str> = history.iter().map(|d| d.instance.id.as_str()).collect();
        assert_eq!(ids, [&fleet[0].id, &fleet[1].id, &fleet[2].id]);
        depart(&mut history);
        assert_eq!(history.len(), 3, "a departure seen again is listed once");

        // Departures older than the horizon are forgotten.
        let later = now + DEPARTED_FOR + jiff::SignedDuration::from_secs(1);
        record_departures(
            &mut history,
            &shared(&after),
            &none,
            &shared(&after),
            &find(&after),
            later,
        );
        assert!(history.is_empty(), "{history:?}");
    }
}
