//! The refresh loop: fetch → name → build → swap, on a timer. Never loses a name.
//!
//! The only code that calls inventory, naming and zone together (CoreDNS route53's model):
//! - a fetch is all or nothing, and a failed one keeps the last good snapshot serving while the
//!   next attempt backs off exponentially (with jitter, up to `max_backoff`);
//! - an unchanged fleet keeps its serial; a changed one gets a serial larger than the last and
//!   at least the Unix time, so it moves forward across restarts too;
//! - the safety valve holds back a refresh that would remove more than `max_removed_fraction`
//!   of the names until `confirm_refreshes` refreshes in a row agree (an API glitch that
//!   returns an empty fleet must not wipe DNS);
//! - every publish is logged as a diff and written to the state file, which the next start
//!   serves from before the API answers;
//! - between refreshes, EC2 events ([`events`]) read just the instances they name back and
//!   publish through the same build and valve; the refresh stays, and repairs what an event
//!   missed.

use crate::inventory::Fleet;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::inventory::{Instance, InventoryError, Source};
use crate::naming;
use crate::state;
use crate::zone::{self, Snapshot, SnapshotCell};

pub mod events;
mod incremental;
mod log;
mod publishing;
mod saver;
mod slots;

pub use log::diff;
use slots::remembers_slots;
pub use slots::{Tagged, slot_mode, tag_slots};

/// First retry delay after a failure; doubles per consecutive failure up to `max_backoff`.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// Builds the snapshot a config and a fleet give, with `serial`; `slots` are the tier slot
/// numbers to keep (the previous snapshot's).
pub fn build_snapshot(
    config: &Config,
    instances: &Fleet,
    serial: u32,
    slots: &naming::Slots,
) -> Snapshot {
    let limits = zone::naming_limits(&config.zone);
    let names = naming::assign(instances, &config.naming, &limits, slots);
    zone::build(&config.zone, &config.views, instances, names, serial)
}

// The pipeline: `serve` (through [`Refresher`]) and the `check`, `names` and `zone` commands
// all go fetch → [`from_state`] / [`build_next`] → [`stamp`], so what the commands print is what
// the server serves, serial included.

/// The state file's fleet as the snapshot it was published as: its serial and slot numbers.
pub fn from_state(config: &Config, saved: state::Saved) -> Snapshot {
    let fleet: Fleet = crate::inventory::fleet(saved.instances);
    let slots = if remembers_slots(config) {
        saved.slots
    } else {
        naming::Slots::new()
    };
    build_snapshot(config, &fleet, saved.serial, &slots)
}

/// The snapshot a fetched fleet gives after `previous`, with `previous`'s serial and slots
/// kept, and whether any answer changed (then [`stamp`] gives it the next serial).
pub fn build_next(config: &Config, fleet: &Fleet, previous: Option<&Snapshot>) -> (Snapshot, bool) {
    // Built once, with the old serial so an unchanged fleet compares equal; a changed one is
    // re-stamped instead of built again.
    let empty = naming::Slots::new();
    let remembered = remembers_slots(config);
    let snapshot = build_snapshot(
        config,
        fleet,
        previous.map_or(0, |p| p.serial),
        previous.filter(|_| remembered).map_or(&empty, |p| &p.slots),
    );
    let changed = previous.is_none_or(|p| !same_answers(&snapshot, p));
    (snapshot, changed)
}

/// Whether two snapshots answer alike in every view and keep the same slot numbers and
/// rotation: a tier failing open answers as before, but `_explain` and the metrics must say
/// why, so that is a change too.
fn same_answers(a: &Snapshot, b: &Snapshot) -> bool {
    a.slots == b.slots
        && a.rotation == b.rotation
        && a.views.len() == b.views.len()
        && a.views.iter().zip(&b.views).all(|(x, y)| x.same_answers(y))
}

/// Hands memory freed since the last refresh back to the system. glibc keeps freed heap
/// pages (below the top of the heap, and up to the top pad above it) for reuse; after a
/// publish that is the fetch, the naming pass and the old snapshot, and RSS would keep that
/// peak for ever.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes the arena locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives a changed snapshot its serial: see [`next_serial`]. `newest` is the newest change
/// the fleet read carries ([`newest_change`]).
pub fn stamp(
    snapshot: &mut Snapshot,
    previous: Option<&Snapshot>,
    newest: Option<jiff::Timestamp>,
) {
    snapshot.set_serial(next_serial(
        previous.map(|p| p.serial),
        newest,
        SystemTime::now(),
    ));
}

/// The newest change time in a fleet as read: every instance's launch (or last start), and
/// `read`, what the source saw beyond the kept instances (stops and terminations, from their
/// state transition reasons).
pub fn newest_change(
    fleet: &[Arc<Instance>],
    read: Option<jiff::Timestamp>,
) -> Option<jiff::Timestamp> {
    fleet.iter().filter_map(|i| i.launch_time).max().max(read)
}

/// The serial of a changed zone: the newest change the fleet carries, as Unix seconds, so two
/// replicas that read the same fleet give the same serial whatever each saw before; but
/// always after `previous`, so one replica's serial never goes backwards (a change the fleet
/// has no time for, such as a tag edit, or two in one second, is `previous + 1`). A fleet
/// with no time at all (a dump without launch times) falls back to the clock.
pub fn next_serial(previous: Option<u32>, newest: Option<jiff::Timestamp>, now: SystemTime) -> u32 {
    let secs = |s: i64| u32::try_from(s.max(0)).unwrap_or(u32::MAX);
    let base = match newest {
        Some(t) => secs(t.as_second()),
        None => now
            .duration_since(UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0),
    };
    match previous {
        Some(p) => base.max(p.wrapping_add(1)),
        None => base,
    }
}

/// The loop's counters are a telemetry type, so that the DNS handler can read the data's age
/// without depending on the loop.
pub use crate::telemetry::RefreshStats;

/// What one refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answers changed and the new snapshot is live.
    Published,
    /// The fleet gives the same answers; nothing changed.
    Unchanged,
    /// The safety valve held the refresh back.
    Held,
    /// The inventory found no instances, and a non-empty fleet keeps serving.
    Empty,
}

/// The departures the loop records, shared with the audit's timer; a lock taken once per
/// publish and once per audit.
pub type Departures = Arc<std::sync::Mutex<Vec<state::Departed>>>;

/// The loop's state between refreshes.
pub struct Refresher {
    config: Arc<Config>,
    source: Source,
    cell: SnapshotCell,
    stats: Arc<RefreshStats>,
    metrics: Arc<crate::dns::Metrics>,
    /// What became of the EC2 events read from SQS.
    events: Arc<events::EventStats>,
    /// A held-back shrink: its fingerprint and how many refreshes in a row saw it.
    held: Option<(u64, u32)>,
    /// NOTIFY the views' secondaries after a publish.
    notify: bool,
    /// Instances that left the fleet, for the state file (and from there the audit).
    departed: Departures,
    /// Events already applied, to tell a duplicate or a late one from news.
    #[cfg_attr(not(feature = "ec2"), allow(dead_code))]
    seen: events::Seen,
    /// The skipped-instance warnings of the last fetch: each is logged when it first
    /// appears, not at every refresh (the metric counts them all the while).
    skipped_said: std::collections::HashSet<String>,
    /// The state file's writer, started with the first write.
    saver: Option<saver::Saver>,
    /// Time spent building snapshots since the caller last took it: what an event's log line
    /// reports (the figure incremental snapshots are measured by).
    building: Duration,
    /// What the last publish does after its swap (IXFR diff, log, departures, NOTIFY), off
    /// the loop: the next publish waits for it, as its history extends this one's.
    after: Option<tokio::task::JoinHandle<()>>,
    /// Which fleet positions claim which names, for the fleet it was made from: what an
    /// EC2 event's change is named from (see [`naming::delta`]).
    claims: Option<(Fleet, incremental::Indexes)>,
    /// The claim index of a fully built fleet being made, after its publish: the next event
    /// would otherwise wait for it (45 ms at 100,000 instances).
    indexing: Option<tokio::task::JoinHandle<(Fleet, incremental::Indexes)>>,
}

impl Refresher {
    /// A refresher publishing into `cell`.
    pub fn new(config: Arc<Config>, source: Source, cell: SnapshotCell) -> Self {
        Self {
            config,
            source,
            cell,
            stats: Arc::default(),
            metrics: Arc::default(),
            events: Arc::default(),
            held: None,
            notify: true,
            departed: Departures::default(),
            seen: events::Seen::default(),
            skipped_said: Default::default(),
            saver: None,
            building: Duration::ZERO,
            after: None,
            claims: None,
            indexing: None,
        }
    }

    /// Sends no NOTIFY after a publish: for a process that serves no DNS (publishing to
    /// Route 53 only), whose secondaries would find nothing to transfer from.
    pub fn without_notify(mut self) -> Self {
        self.notify = false;
        self
    }

    /// Sends NOTIFY after a publish or not: off while the listeners are not up yet (the file
    /// source is read before binding), since a secondary that is told of a serial it then
    /// cannot transfer backs off for its whole retry interval.
    pub fn set_notify(&mut self, on: bool) {
        self.notify = on;
    }

    /// NOTIFY the secondaries of the snapshot served now, if there is one: once the
    /// listeners are up, for what was published (or loaded from the state file) before.
    pub fn announce_served(&self) {
        if let Some(served) = self.cell.load().filter(|_| self.notify) {
            crate::dns::notify::announce(&served, &self.metrics, &self.cell);
        }
    }

    /// Counts published views' queries (and NOTIFYs) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::dns::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The instances that left the fleet, as the state file keeps them: what the audit
    /// names a stale address's last holder from, without reading the file again.
    pub fn departures(&self) -> Departures {
        self.departed.clone()
    }

    /// The loop's counters.
    pub fn stats(&self) -> Arc<RefreshStats> {
        self.stats.clone()
    }

    /// What became of the EC2 events read from SQS, for the metrics.
    pub fn event_stats(&self) -> Arc<events::EventStats> {
        self.events.clone()
    }

    /// Where the fleet comes from, for logs.
    pub fn source_name(&self) -> String {
        self.source.describe()
    }

    /// Publishes the state file's fleet, if there is a readable one. A missing file is normal;
    /// an unreadable one is logged and ignored.
    pub async fn load_state(&mut self) -> bool {
        let Some(path) = self.config.inventory.state_file.clone() else {
            return false;
        };
        let loaded = tokio::task::spawn_blocking(move || {
            state::remove_stale_temporaries(&path);
            state::load(&path)
        })
        .await;
        match loaded {
            Ok(Ok(Some(mut saved))) => {
                if let Ok(mut departed) = self.departed.lock() {
                    *departed = std::mem::take(&mut saved.departed);
                }
                let count = saved.instances.len();
                let (serial, saved_at) = (saved.serial, saved.saved_at);
                let snapshot = from_state(&self.config, saved);
                info!(
                    serial,
                    instances = count,
                    %saved_at,
                    "serving the state file's fleet until the inventory answers"
                );
                let fleet = snapshot.fleet.clone();
                self.cell.store(snapshot);
                self.index_soon(&fleet);
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                warn!("{e}; starting without it");
                false
            }
            Err(e) => {
                warn!("failed to read the state file: {e}");
                false
            }
        }
    }

    /// One refresh: fetch, and publish if the answers changed and the valve allows.
    pub async fn refresh_once(&mut self) -> Result<Outcome, InventoryError> {
        let started = std::time::Instant::now();
        let outcome = self.fetch_and_publish().await;
        self.stats.duration.observe(started.elapsed());
        if outcome.is_ok() {
            // The fetch, any build and the snapshot a publish replaced are freed by now. Not
            // only after a publish: the heap grows in 64 MB steps (main.rs), and glibc's own
            // trimming keeps that much at its top.
            let _ = tokio::task::spawn_blocking(release_freed_memory).await;
        }
        outcome
    }

    async fn fetch_and_publish(&mut self) -> Result<Outcome, InventoryError> {
        let (instances, changed_at): (Fleet, _) = match self.source.fetch().await {
            Ok(fetched) => {
                for why in newly_said(&mut self.skipped_said, &fetched.skipped) {
                    warn!("{why}");
                }
                (self.stats.skipped_instances)
                    .store(fetched.skipped.len() as u64, Ordering::Relaxed);
                (
                    crate::inventory::fleet(fetched.instances),
                    fetched.changed_at,
                )
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        (self.stats.empty_fleet).store(instances.is_empty(), Ordering::Relaxed);
        Ok(self.consider(instances, true, changed_at, None).await)
    }

    /// [`tag_slots`], counted.
    async fn write_slot_tags(&self, fleet: &Fleet, built: &Snapshot) -> Option<Fleet> {
        let tagged = tag_slots(&self.config, &self.source, fleet, built).await;
        let stats = &self.stats;
        (stats.slot_tags_written).fetch_add(tagged.written as u64, Ordering::Relaxed);
        (stats.slot_tag_failures).fetch_add(tagged.failed as u64, Ordering::Relaxed);
        tagged.fleet
    }

    /// Publishes `instances` if their answers differ from the served ones and the valve lets
    /// them. `full`: they are the whole fleet as the inventory just read it, which confirms the
    /// data served (an event's partial read does not).
    async fn consider(
        &mut self,
        instances: Fleet,
        full: bool,
        changed_at: Option<jiff::Timestamp>,
        moved: Option<&BTreeSet<u32>>,
    ) -> Outcome {
        let previous = self.cell.load();
        if instances.is_empty()
            && !self.config.inventory.allow_empty_fleet
            && let Some(prev) = previous.as_ref().filter(|p| p.instance_count > 0)
        {
            // Not a success: the data served is not confirmed, so it ages toward max_stale.
            (self.stats.empty_fleet_refusals).fetch_add(1, Ordering::Relaxed);
            if full {
                error!(
                    source = %self.source.describe(),
                    serving_instances = prev.instance_count,
                    "the inventory returned no instances; still serving the previous fleet \
                     (check the filters, regions and account; set inventory.allow_empty_fleet \
                     = true if the fleet really is empty)"
                );
            } else {
                warn!(
                    serving_instances = prev.instance_count,
                    "EC2 events would leave no instance; still serving the previous fleet \
                     until a full refresh agrees (inventory.allow_empty_fleet = true allows it)"
                );
            }
            return Outcome::Empty;
        }
        let mut instances = instances;
        let same = |prev: &Snapshot| match moved {
            // Positions do not move on the events path: only the changed ones can differ.
            Some(moved) => {
                prev.fleet.len() == instances.len()
                    && (moved.iter())
                        .all(|&at| prev.fleet.get(at as usize) == instances.get(at as usize))
            }
            None => same_fleet(&prev.fleet, &instances),
        };
        if let Some(prev) = &previous
            && same(prev)
        {
            // The served snapshot's own fleet, built under this config (a reload rebuilds at
            // once): it would build the same answers. Comparing costs milliseconds at 100k
            // instances; building cost most of a second and a second zone beside the served
            // one. Only slot tags that an earlier write failed to set are worth a call.
            match self.write_slot_tags(&prev.fleet, prev).await {
                Some(patched) => instances = patched,
                None => {
                    self.held = None;
                    self.confirmed(full);
                    return Outcome::Unchanged;
                }
            }
        }
        let next = match moved {
            Some(moved) => self.patch_next(&instances, previous.clone(), moved).await,
            None => None,
        };
        let next = match next {
            Some(patched) => Some(patched),
            None => self.build_next(&instances, previous.clone()).await,
        };
        let Some((mut snapshot, mut changed)) = next else {
            return Outcome::Unchanged; // shutting down: nothing to publish to
        };
        // The valve first: a fleet it holds back (half a fleet from an API glitch) must not
        // renumber and retag the members it still lists.
        if let Some(prev) = &previous
            && changed
            && self.hold_back(prev, &snapshot)
        {
            self.stats.valve_trips.fetch_add(1, Ordering::Relaxed);
            return Outcome::Held;
        }
        if let Some(patched) = self.write_slot_tags(&instances, &snapshot).await {
            instances = patched;
            match self.build_next(&instances, previous.clone()).await {
                Some(rebuilt) => (snapshot, changed) = rebuilt,
                None => return Outcome::Unchanged,
            }
        }
        if let Some(prev) = &previous
            && !changed
        {
            // The same answers from another fleet (a tag no rule reads, a slot tag just
            // written): served from now on, so the next read of this fleet costs no build and
            // the fleet that `_explain` and the state file show is the one read.
            self.settle().await; // `prev`'s history, linked after its swap
            snapshot.keep_history(prev);
            let hash = prev.content_hash.get().copied();
            if let Some(hash) = hash {
                let _ = snapshot.content_hash.set(hash); // the same answers, the same zones
            }
            self.cell.store(snapshot);
            self.held = None;
            self.confirmed(full);
            return Outcome::Unchanged;
        }
        self.held = None;
        let newest = newest_change(&instances, changed_at);
        self.publish(previous, snapshot, instances, newest).await;
        self.confirmed(full);
        Outcome::Published
    }

    /// Records a fetch of the whole fleet that succeeded, and says so when it ends a run of
    /// failures.
    fn confirmed(&self, full: bool) {
        if !full {
            return;
        }
        let failed = self.stats.mark_success();
        if failed > 0 {
            info!(
                failed,
                source = %self.source.describe(),
                "the inventory answers again after {failed} failed refreshes"
            );
        }
    }

    /// [`build_next`] on a blocking thread: seconds of CPU at 100k instances, kept off the
    /// runtime's workers, which answer queries. `None` when the runtime is shutting down.
    async fn build_next(
        &mut self,
        fleet: &Fleet,
        previous: Option<Arc<Snapshot>>,
    ) -> Option<(Snapshot, bool)> {
        let (config, fleet) = (self.config.clone(), fleet.clone());
        self.stats.builds.fetch_add(1, Ordering::Relaxed);
        let built = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let built = build_next(&config, &fleet, previous.as_deref());
            (built, started.elapsed())
        })
        .await
        .map(|(built, took)| {
            self.building += took;
            self.stats.build_full.observe(took);
            built
        });
        match built {
            Ok(built) => Some(built),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }

    /// Hands the state to the state file's writer, if one is configured (failures are logged,
    /// not fatal), and says which write that is.
    fn save_state(&mut self, serial: u32, instances: Fleet, slots: naming::Slots) -> u64 {
        let Some(path) = self.config.inventory.state_file.clone() else {
            return 0;
        };
        let departed = self.departed.lock().map(|d| d.clone()).unwrap_or_default();
        let saver = self.saver.get_or_insert_with(saver::Saver::start);
        saver.save(saver::Pending {
            seq: 0,
            path,
            serial,
            instances,
            slots,
            departed,
        })
    }

    /// Applies a reloaded config: a new inventory source if it changed, and the published
    /// fleet rebuilt under the new rules, views and TTLs at once (without waiting for the
    /// next fetch, and without the safety valve: the operator asked for the change).
    pub async fn apply(&mut self, config: Arc<Config>) {
        if config
            .inventory
            .source
            .reads_differently(&self.config.inventory.source)
        {
            self.source = Source::from_config(&config.inventory).await;
            info!(source = %self.source.describe(), "reload: new inventory source");
        } else if config.inventory.source.events() != self.config.inventory.source.events() {
            warn!("reload: [inventory.events] changes take effect at the next start");
        }
        self.config = config;
        self.held = None;
        let Some(previous) = self.cell.load() else {
            return; // nothing fetched yet; the next refresh builds with the new config
        };
        let fleet = previous.fleet.clone();
        let Some((snapshot, changed)) = self.build_next(&fleet, Some(previous.clone())).await
        else {
            return; // shutting down
        };
        if !changed {
            info!("reload: the answers do not change");
            return;
        }
        let newest = newest_change(&fleet, None);
        self.publish(Some(previous), snapshot, fleet, newest).await;
    }

    /// Writes the published snapshot's fleet to the state file (at shutdown), so the next
    /// start serves exactly what this process served last.
    pub async fn save_published(&mut self) {
        // Its departures go into the file too.
        self.settle().await;
        if let Some(current) = self.cell.load() {
            let seq = self.save_state(current.serial, current.fleet.clone(), current.slots.clone());
            if let Some(saver) = &mut self.saver {
                saver.flush(seq).await;
            }
        }
    }

    /// The safety valve: whether `candidate` removes too much of `prev` to publish yet.
    fn hold_back(&mut self, prev: &Snapshot, candidate: &Snapshot) -> bool {
        let inv = &self.config.inventory;
        let before = prev.name_total();
        let removed = prev.names_removed_in(candidate);
        #[allow(clippy::cast_precision_loss)] // name counts are far below 2^52
        let fraction = if before == 0 {
            0.0
        } else {
            removed as f64 / before as f64
        };
        if fraction <= inv.max_removed_fraction {
            return false;
        }
        let fingerprint = candidate.names_fingerprint();
        let seen = match self.held {
            Some((fp, n)) if fp == fingerprint => n + 1,
            _ => 1,
        };
        if seen >= inv.confirm_refreshes {
            warn!(
                removed,
                of = before,
                refreshes = seen,
                "publishing a fleet that lost {:.0}% of its names: seen {seen} refreshes in a row",
                fraction * 100.0
            );
            return false;
        }
        self.held = Some((fingerprint, seen));
        error!(
            removed,
            of = before,
            seen,
            needed = inv.confirm_refreshes,
            "safety valve: this refresh would remove {:.0}% of the names (limit {:.0}%); \
             still serving the previous fleet until {} refreshes in a row agree",
            fraction * 100.0,
            inv.max_removed_fraction * 100.0,
            inv.confirm_refreshes
        );
        true
    }

    /// Refreshes until `shutdown`: first at once (or after one interval when `loaded`), then
    /// every interval with jitter, backing off after failures.
    pub async fn run(
        mut self,
        loaded: bool,
        mut reloads: tokio::sync::mpsc::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
    ) {
        let (to_refresh, mut batches) = tokio::sync::mpsc::channel(16);
        events::start(
            &self.source,
            &self.config,
            &to_refresh,
            &self.events,
            &shutdown,
        )
        .await;
        drop(to_refresh);
        let mut delay = if loaded {
            jitter(self.config.inventory.refresh_interval)
        } else {
            Duration::ZERO
        };
        loop {
            self.stats.next_delay_ms.store(
                u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let wake = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => break,
                    Some(config) = reloads.recv() => self.apply(config).await,
                    Some(batch) = batches.recv() => {
                        let group = self.gather(batch, &mut batches).await;
                        self.events.groups.fetch_add(1, Ordering::Relaxed);
                        self.apply_events(group).await;
                    }
                    () = shutdown.cancelled() => return self.save_published().await,
                }
            }
            let inv = self.config.inventory.clone();
            let result = tokio::select! {
                r = self.refresh_once() => r,
                () = shutdown.cancelled() => return self.save_published().await,
            };
            delay = match result {
                Ok(_) => jitter(inv.refresh_interval),
                Err(e) => {
                    let failures = self.stats.consecutive_failures.load(Ordering::Relaxed);
                    let backoff = backoff(failures, inv.max_backoff);
                    if let Ok(mut last) = self.stats.last_backoff.lock() {
                        *last = (failures, backoff);
                    }
                    warn!(
                        error = %e,
                        consecutive_failures = failures,
                        retry_in = ?backoff,
                        "refresh failed; still serving the last good snapshot"
                    );
                    backoff
                }
            };
            if let (Some(max), Some(age)) = (inv.max_stale, self.stats.age(SystemTime::now()))
                && age > max
            {
                error!(age = ?age, max_stale = ?max, "serving stale data: the inventory has not confirmed it for too long");
            }
        }
    }
}

/// Whether two fleets hold the same instances, in any order: events update the served fleet
/// in place and append launches, so the next full read lists the same fleet in the API's
/// order, which must not cost a build.
fn same_fleet(served: &[Arc<Instance>], fetched: &[Arc<Instance>]) -> bool {
    if served.len() != fetched.len() {
        return false;
    }
    if served == fetched {
        return true;
    }
    let by_id: rustc_hash::FxHashMap<&str, &Instance> =
        served.iter().map(|i| (i.id.as_str(), &**i)).collect();
    let distinct: rustc_hash::FxHashSet<&str> = fetched.iter().map(|i| i.id.as_str()).collect();
    by_id.len() == served.len()
        && distinct.len() == fetched.len()
        && fetched
            .iter()
            .all(|i| by_id.get(i.id.as_str()) == Some(&&**i))
}

/// The lines of `now` that `said` does not hold yet; `said` becomes `now`, so a line that goes
/// away and comes back is said again.
fn newly_said<'a>(
    said: &mut std::collections::HashSet<String>,
    now: &'a [String],
) -> Vec<&'a String> {
    let fresh = now.iter().filter(|l| !said.contains(*l)).collect();
    *said = now.iter().cloned().collect();
    fresh
}

/// Delay before retry number `failures` (1-based): 1 s, 2 s, 4 s, … up to `max`, jittered.
pub fn backoff(failures: u64, max: Duration) -> Duration {
    let exp = u32::try_from(failures.saturating_sub(1).min(30)).unwrap_or(30);
    let base = INITIAL_BACKOFF.saturating_mul(1u32 << exp).min(max);
    jitter(base).min(max)
}

/// ±10 %, so a fleet of servers does not poll the API in lockstep.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.9 + fastrand::f64() * 0.2)
}

#[cfg(test)]
mod agree;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn serials_come_from_the_fleet_and_move_forward() {
        let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let t = Some(jiff::Timestamp::from_second(1_800_000_000).expect("time"));
        // From the fleet, not the clock: a replica starting now gives what one running all
        // along gave for the same change.
        assert_eq!(next_serial(None, t, now), 1_800_000_000);
        assert_eq!(next_serial(Some(5), t, now), 1_800_000_000);
        // A change the fleet has no newer time for, or two in one second: still forward.
        assert_eq!(next_serial(Some(1_800_000_000), t, now), 1_800_000_001);
        assert_eq!(next_serial(Some(1_900_000_000), t, now), 1_900_000_001);
        // No time in the fleet at all: the clock.
        assert_eq!(next_serial(None, None, now), 1_900_000_000);
        assert_eq!(next_serial(Some(1_950_000_000), None, now), 1_950_000_001);
    }

    #[test]
    fn diffs_name_what_changed() {
        let table = |rows: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            rows.iter()
                .map(|(n, ids)| {
                    (
                        (*n).to_owned(),
                        ids.iter().map(|s| (*s).to_owned()).collect(),
                    )
                })
                .collect()
        };
        let before = table(&[
            ("db1.internal.", &["i-aaa"]),
            ("old.internal.", &["i-old"]),
            ("web.internal.", &["i-1"]),
        ]);
        let after = table(&[
            ("db1.internal.", &["i-bbb"]),
            ("new.internal.", &["i-new"]),
            ("web.internal.", &["i-1"]),
        ]);
        assert_eq!(
            diff(&before, &after),
            [
                "db1.internal.: i-aaa -> i-bbb",
                "added new.internal. -> i-new",
                "removed old.internal. (was i-old)"
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }

    /// The demo's config and fleet.
    fn demo() -> (Config, Vec<Instance>) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = Config::load(&root.join("config/demo.toml")).expect("demo config");
        let path = root.join("config/demo-instances.json");
        let bytes = std::fs::read(&path).expect("demo fleet");
        let fleet = crate::inventory::file::parse(&path, &bytes, None)
            .expect("parses")
            .instances;
        (config, fleet)
    }

    #[test]
    fn restamping_a_serial_equals_building_with_it() {
        let (config, fleet) = demo();
        let slots = naming::Slots::new();
        let fleet: Fleet = crate::inventory::fleet(fleet);
        let mut restamped = build_snapshot(&config, &fleet, 5, &slots);
        restamped.set_serial(9);
        let built = build_snapshot(&config, &fleet, 9, &slots);
        assert_eq!(restamped.serial, 9);
        assert!(same_answers(&restamped, &built), "set_serial missed an SOA");
        assert!(!same_answers(
            &build_snapshot(&config, &fleet, 5, &slots),
            &built
        ));
    }

    #[test]
    fn a_fleet_listed_in_another_order_is_unchanged() {
        // Backings index their snapshot's fleet: the comparison must go by instance id, or an
        // API that pages in another order would publish a new serial with nothing changed.
        let (config, mut fleet) = demo();
        let first: Fleet = crate::inventory::fleet(fleet.clone());
        fleet.reverse();
        let reversed: Fleet = crate::inventory::fleet(fleet);
        let (before, _) = build_next(&config, &first, None);
        let (after, changed) = build_next(&config, &reversed, Some(&before));
        assert!(
            !changed,
            "the same fleet in another order changed the answers"
        );
        assert_eq!(before.names(), after.names());
        // And a real change is still one: the same order, one instance less.
        let fewer: Fleet = first[1..].to_vec().into();
        assert!(build_next(&config, &fewer, Some(&before)).1);
    }

    #[test]
    fn a_skipped_instance_is_said_once_per_change() {
        let mut said = std::collections::HashSet::new();
        let a = vec!["i-1 skipped".to_owned()];
        let ab = vec!["i-1 skipped".to_owned(), "i-2 skipped".to_owned()];
        assert_eq!(newly_said(&mut said, &a), [&a[0]]);
        assert!(
            newly_said(&mut said, &a).is_empty(),
            "not again at the next refresh"
        );
        assert_eq!(newly_said(&mut said, &ab), [&ab[1]]);
        assert!(newly_said(&mut said, &[]).is_empty());
        assert_eq!(
            newly_said(&mut said, &a),
            [&a[0]],
            "gone, then back: said again"
        );
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let cap = Duration::from_secs(60);
        let approx = |n: u64| backoff(n, cap).as_secs_f64();
        assert!((0.9..=1.1).contains(&approx(1)));
        assert!((1.8..=2.2).contains(&approx(2)));
        assert!((7.2..=8.8).contains(&approx(4)));
        assert!(approx(7) <= 60.0 && approx(7) >= 54.0);
        assert!(approx(1000) <= 60.0);
    }
}
