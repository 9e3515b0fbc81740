//! Slot numbers and the fleet: which mode is in force, whose numbers count, and writing the
//! slot tags a build needs (naming decides the numbers; this is the I/O around it).

use crate::inventory::Fleet;
use std::sync::Arc;

use tracing::{info, warn};

use crate::config::Config;
use crate::inventory::Source;
use crate::naming;
use crate::zone::Snapshot;

/// Where slot numbers are kept under `config`, as `check` and the start-up log say it, and
/// whether that is the mode in which replicas may disagree (then it is a warning).
pub fn slot_mode(config: &Config) -> (String, bool) {
    use crate::inventory::settings::SourceConfig;
    let slotted = config.naming.rules.iter().any(|r| r.slots);
    let text = match (config.naming.slot_store, &config.inventory.source) {
        _ if !slotted => {
            return ("slot numbers: no rule has `slots = true`".to_owned(), false);
        }
        (naming::SlotStore::StateFile, _) => {
            return (
                "slot numbers: naming.slot_numbers = \"state-file\": slot tags are read but \
                 never written, and untagged members keep the numbers this process gave them; \
                 replicas may disagree on slots after a replacement (\"tags\" keeps them in \
                 the fleet, where every replica reads them)"
                    .to_owned(),
                true,
            );
        }
        (naming::SlotStore::Tags, SourceConfig::File { .. }) => {
            "slot numbers: from the dump's stabledns:slot:<tier> tags; untagged members are \
             numbered from the fleet alone, alike on every replica (a file cannot be tagged)"
        }
        (naming::SlotStore::Tags, SourceConfig::Ec2(_)) => {
            "slot numbers: kept in the fleet as stabledns:slot:<tier> tags, which this server \
             writes (ec2:CreateTags); every replica numbers alike"
        }
    };
    (text.to_owned(), false)
}

/// What [`tag_slots`] did.
#[derive(Debug, Default)]
pub struct Tagged {
    /// The fleet with the tags that were written, when any were.
    pub fleet: Option<Fleet>,
    /// Tags written.
    pub written: usize,
    /// CreateTags calls that failed.
    pub failed: usize,
}

/// Writes the slot tags that `fleet` (as just read) lacks for the numbers in `built`, in the
/// tags mode and from a source that can, and gives back the fleet with the tags that were
/// written: the caller builds from that, so what it serves is what every replica builds
/// once it reads the tags (no `renumbered` line that one replica saw and another did not).
/// A write that fails is tried again at the next refresh; meanwhile every replica still
/// computes the same number from the fleet.
pub async fn tag_slots(
    config: &Config,
    source: &Source,
    fleet: &Fleet,
    built: &Snapshot,
) -> Tagged {
    if config.naming.slot_store != naming::SlotStore::Tags || !source.writes_tags() {
        return Tagged::default();
    }
    let todo = naming::slot_tag_writes(&built.slots, fleet);
    if todo.is_empty() {
        return Tagged::default();
    }
    // Said once here: the build that serves them will no longer carry them.
    for w in built
        .warnings
        .iter()
        .filter(|w| w.contains("; renumbered "))
    {
        warn!("{w}");
    }
    // Boxed: the SDK's call is a deep future, and every caller's (start, the refresh loop,
    // events) would otherwise carry its whole layout.
    let (done, failed) = Box::pin(source.write_tags(&todo)).await;
    for why in &failed {
        warn!(
            "failed to write a slot tag: {why}; every replica still numbers alike from the \
             fleet until it is written (check that the policy allows ec2:CreateTags on \
             stabledns:slot:* keys)"
        );
    }
    let mut tagged = Tagged {
        fleet: None,
        written: done.len(),
        failed: failed.len(),
    };
    if done.is_empty() {
        return tagged;
    }
    let mut patched = fleet.to_vec();
    let index: rustc_hash::FxHashMap<&str, usize> = fleet
        .iter()
        .enumerate()
        .map(|(i, inst)| (inst.id.as_str(), i))
        .collect();
    for w in &done {
        info!(instance = %w.instance, "slot tag written: {}={}", w.key, w.value);
        if let Some(&i) = index.get(w.instance.as_str()) {
            Arc::make_mut(&mut patched[i])
                .tags
                .insert(w.key.clone(), w.value.clone());
        }
    }
    tagged.fleet = Some(patched.into());
    tagged
}

/// Whether the numbers this process gave last count: in the state-file mode, and in the tags
/// mode for a tier without tags yet, whose tags are then written (the upgrade from the state
/// file). A dump cannot be tagged: there they would stay this replica's own, so the fleet
/// alone decides.
pub(super) fn remembers_slots(config: &Config) -> bool {
    config.naming.slot_store == naming::SlotStore::StateFile
        || matches!(
            config.inventory.source,
            crate::inventory::settings::SourceConfig::Ec2(_)
        )
}
