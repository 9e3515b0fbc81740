//! EC2 events between refreshes: one task per queue long-polls SQS and hands the refresh loop
//! batches of events; the loop reads just the instances they name back from the API, puts them
//! into the served fleet, and publishes through the same build and safety valve as a refresh.
//! Messages are deleted only once their batch is applied: a batch that could not be read back
//! stays on the queue and comes again after its visibility timeout, and the periodic refresh
//! repairs anything an event never brought.

// Without the `ec2` feature nothing reads events; the types stay so the loop's shape does not
// change with the build.
#![cfg_attr(not(feature = "ec2"), allow(dead_code))]

#[cfg(feature = "ec2")]
use std::collections::{BTreeMap, BTreeSet};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
#[cfg(feature = "ec2")]
use tracing::{debug, info, warn};

use super::Refresher;
use crate::config::Config;
#[cfg(feature = "ec2")]
use crate::inventory::Instance;
use crate::inventory::Source;
use crate::inventory::events::Event;
use crate::telemetry::{Families, Kind, Report};

/// Event ids remembered, to drop redeliveries: SQS delivers at least once.
const REMEMBERED_IDS: usize = 10_000;
/// Instances whose last applied change is remembered; past this, the oldest are forgotten.
const REMEMBERED_INSTANCES: usize = 200_000;

/// Events from one receive, and where the loop says whether they were applied.
#[derive(Debug)]
pub struct Batch {
    events: Vec<Event>,
    done: oneshot::Sender<bool>,
    /// The receive brought as many messages as it may: more are waiting (a burst).
    full: bool,
}

/// What the loop has applied: event ids (duplicates) and each instance's latest change (late
/// events).
#[derive(Debug, Default)]
pub struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
    last_change: HashMap<String, Timestamp>,
}

/// Whether an event is news.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    New,
    Duplicate,
    Stale,
}

impl Seen {
    fn verdict(&self, e: &Event) -> Verdict {
        if self.ids.contains(&e.id) {
            Verdict::Duplicate
        } else if self
            .last_change
            .get(&e.instance)
            .is_some_and(|t| *t > e.time)
        {
            // A later change was applied already: the instance was read back after this one.
            Verdict::Stale
        } else {
            Verdict::New
        }
    }

    fn remember(&mut self, e: &Event) {
        if self.ids.insert(e.id.clone()) {
            self.order.push_back(e.id.clone());
            while self.order.len() > REMEMBERED_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
        let last = self.last_change.entry(e.instance.clone()).or_insert(e.time);
        *last = (*last).max(e.time);
        if self.last_change.len() > REMEMBERED_INSTANCES {
            // Keep the newer half: a late event for an instance forgotten here costs one
            // needless read, never a wrong answer.
            let mut times: Vec<Timestamp> = self.last_change.values().copied().collect();
            let (_, median, _) = times.select_nth_unstable(REMEMBERED_INSTANCES / 2);
            let cut = *median;
            self.last_change.retain(|_, t| *t >= cut);
        }
    }
}

/// What became of the EC2 events read from SQS.
#[derive(Debug, Default)]
pub struct EventStats {
    /// Applied: the instance was read back and the fleet updated (published if it changed).
    pub applied: AtomicU64,
    /// Seen before (the same event id).
    pub duplicate: AtomicU64,
    /// Older than a change already applied to the instance.
    pub stale: AtomicU64,
    /// Not an event: logged and deleted.
    pub malformed: AtomicU64,
    /// Well-formed, but of a kind or region stabledns does not act on.
    pub ignored: AtomicU64,
    /// Left on the queue because the instances could not be read back.
    pub failed: AtomicU64,
    /// ReceiveMessage calls that failed (an unreachable or deleted queue).
    pub receive_errors: AtomicU64,
    /// DeleteMessageBatch calls or entries that failed.
    pub delete_errors: AtomicU64,
    /// Groups of batches applied together (each one read-back and at most one build).
    pub groups: AtomicU64,
    /// From each applied event's time (EC2's, to the second) until its change was served.
    pub lag: crate::telemetry::Histogram,
}

impl Report for EventStats {
    fn report(&self, out: &mut Families) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.by(
            Kind::Counter,
            "stabledns_events",
            "EC2 events read from SQS, by what became of them",
            "outcome",
            [
                ("applied", load(&self.applied)),
                ("duplicate", load(&self.duplicate)),
                ("stale", load(&self.stale)),
                ("malformed", load(&self.malformed)),
                ("ignored", load(&self.ignored)),
                ("failed", load(&self.failed)),
            ],
        );
        out.histograms(
            "stabledns_event_lag_seconds",
            "From an applied EC2 event's time (to the second) until its change was served",
            vec![(Vec::new(), &self.lag)],
        );
        out.counter(
            "stabledns_event_groups",
            "Groups of EC2 event batches applied together: each is one read-back and at most \
             one snapshot build (inventory.events.coalesce)",
            load(&self.groups),
        );
        out.by(
            Kind::Counter,
            "stabledns_event_queue_errors",
            "SQS calls that failed",
            "op",
            [
                ("receive", load(&self.receive_errors)),
                ("delete", load(&self.delete_errors)),
            ],
        );
    }
}

/// Starts one listener per configured queue (EC2 sources with `[inventory.events]` only).
pub(super) async fn start(
    source: &Source,
    config: &Config,
    to_refresh: &mpsc::Sender<Batch>,
    stats: &Arc<EventStats>,
    shutdown: &CancellationToken,
) {
    #[cfg(feature = "ec2")]
    if let (Source::Ec2(_), crate::config::SourceConfig::Ec2(ec2)) =
        (source, &config.inventory.source)
        && let Some(events) = &ec2.events
    {
        for (region, url) in &events.queues {
            let queue = crate::inventory::events::Queue::new(
                region,
                url,
                events.endpoint_url.as_deref(),
                events.wait,
                ec2.api_timeout,
            )
            .await;
            info!(queue = %url, %region, "reading EC2 events");
            tokio::spawn(listen(
                queue,
                to_refresh.clone(),
                stats.clone(),
                shutdown.clone(),
            ));
        }
    }
    #[cfg(not(feature = "ec2"))]
    let _ = (source, config, to_refresh, stats, shutdown);
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Reads `queue` until shutdown. An unreachable or deleted queue is logged and retried with
/// backoff; the periodic refresh goes on meanwhile.
#[cfg(feature = "ec2")]
async fn listen(
    queue: crate::inventory::events::Queue,
    to_refresh: mpsc::Sender<Batch>,
    counts: Arc<EventStats>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u64;
    loop {
        let received = tokio::select! {
            r = queue.receive() => r,
            () = shutdown.cancelled() => return,
        };
        let received = match received {
            Ok(r) => {
                if failures > 0 {
                    info!(queue = %queue.url, failures, "the event queue answers again");
                    failures = 0;
                }
                r
            }
            Err(e) => {
                failures += 1;
                add(&counts.receive_errors, 1);
                let wait = super::backoff(failures, std::time::Duration::from_secs(60));
                warn!(error = %e, retry_in = ?wait, "cannot read EC2 events; the periodic refresh goes on");
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        let full = received.len() >= crate::inventory::events::RECEIVE_MAX;
        let mut delete_now = Vec::new();
        let (mut events, mut handles) = (Vec::new(), Vec::new());
        for r in received {
            match r.event {
                Ok(Some(e)) => {
                    events.push(e);
                    handles.push(r.handle);
                }
                Ok(None) => {
                    add(&counts.ignored, 1);
                    delete_now.push(r.handle);
                }
                Err(why) => {
                    // Deleted, or it would come back for ever; the log keeps what it said.
                    add(&counts.malformed, 1);
                    warn!(queue = %queue.url, "not an EC2 event ({why}); deleting the message");
                    delete_now.push(r.handle);
                }
            }
        }
        if !events.is_empty() {
            let (done, applied) = oneshot::channel();
            if to_refresh.send(Batch { events, done, full }).await.is_err() {
                return; // the loop has stopped
            }
            // Not awaited here: the next receive starts while this batch is applied, so the
            // events of a burst reach the loop together and share one build. The channel's
            // bound is the backpressure.
            let (queue, counts) = (queue.clone(), counts.clone());
            tokio::spawn(async move {
                if applied.await.unwrap_or(false) {
                    delete(&queue, &handles, &counts).await;
                }
            });
        }
        delete(&queue, &delete_now, &counts).await;
    }
}

/// Deletes messages, counting and logging what SQS would not delete.
#[cfg(feature = "ec2")]
async fn delete(queue: &crate::inventory::events::Queue, handles: &[String], counts: &EventStats) {
    if handles.is_empty() {
        return;
    }
    match queue.delete(handles).await {
        Ok(0) => {}
        Ok(failed) => {
            add(&counts.delete_errors, failed);
            warn!(queue = %queue.url, failed, "SQS did not delete every message; they will be read again");
        }
        Err(e) => {
            add(&counts.delete_errors, 1);
            warn!(error = %e, "cannot delete EC2 events; they will be read again");
        }
    }
}

impl Refresher {
    /// Applies batches together: reads the instances they name back (in their regions,
    /// under the inventory's filters), replaces them in the served fleet, and publishes if the
    /// answers change: one build for all of them. Tells each batch whether its messages can go.
    pub(super) async fn apply_events(&mut self, batches: Vec<Batch>) {
        let (events, done): (Vec<Vec<Event>>, Vec<_>) =
            batches.into_iter().map(|b| (b.events, b.done)).unzip();
        let applied = self
            .apply_batch(events.into_iter().flatten().collect())
            .await;
        for done in done {
            let _ = done.send(applied);
        }
    }

    /// The batch `first` and those to apply with it ([`gather`]), under the configured window.
    pub(super) async fn gather(
        &self,
        first: Batch,
        batches: &mut mpsc::Receiver<Batch>,
    ) -> Vec<Batch> {
        let window = self
            .config
            .inventory
            .source
            .events()
            .map_or(std::time::Duration::ZERO, |e| e.coalesce);
        gather(first, batches, window).await
    }

    #[cfg(not(feature = "ec2"))]
    async fn apply_batch(&mut self, _: Vec<Event>) -> bool {
        true
    }

    #[cfg(feature = "ec2")]
    async fn apply_batch(&mut self, events: Vec<Event>) -> bool {
        let counts = self.events.clone();
        let Source::Ec2(ec2) = &self.source else {
            return true;
        };
        let mut news: Vec<Event> = Vec::new();
        let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in events {
            let verdict = if news.iter().any(|n| n.id == e.id) {
                Verdict::Duplicate
            } else {
                self.seen.verdict(&e)
            };
            match verdict {
                Verdict::Duplicate => add(&counts.duplicate, 1),
                Verdict::Stale => add(&counts.stale, 1),
                Verdict::New if !ec2.walks_region(&e.region) => {
                    add(&counts.ignored, 1);
                    warn!(region = %e.region, instance = %e.instance, "an event for a region the inventory does not walk; ignored");
                }
                Verdict::New => {
                    debug!(instance = %e.instance, what = %e.what, time = %e.time, "EC2 event");
                    wanted
                        .entry(e.region.clone())
                        .or_default()
                        .insert(e.instance.clone());
                    news.push(e);
                }
            }
        }
        if news.is_empty() {
            return true;
        }
        let Some(previous) = self.cell.load() else {
            // Nothing served yet: the first refresh reads every instance anyway.
            return true;
        };
        let started = std::time::Instant::now();
        let mut fleet: Vec<Arc<Instance>> = previous.fleet.to_vec();
        let mut changed_at = None;
        let mut moved = BTreeSet::new();
        for (region, ids) in &wanted {
            let list: Vec<String> = ids.iter().cloned().collect();
            let fetched = match ec2.describe_ids(region, &list).await {
                Ok(f) => f,
                Err(e) => {
                    add(&counts.failed, news.len());
                    warn!(error = %e, events = news.len(), "cannot read the instances EC2 events name; they stay on the queue");
                    return false;
                }
            };
            for why in &fetched.skipped {
                warn!("{why}");
            }
            changed_at = changed_at.max(fetched.changed_at);
            moved.append(&mut read_back(&mut fleet, region, ids, fetched.instances));
        }
        let read_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.building = std::time::Duration::ZERO;
        let outcome = self
            .consider(fleet.into(), false, changed_at, Some(&moved))
            .await;
        let build_ms = std::mem::take(&mut self.building).as_secs_f64() * 1000.0;
        add(&counts.applied, news.len());
        let now = jiff::Timestamp::now();
        for e in &news {
            self.seen.remember(e);
            // An event stamped ahead of this clock (skew) counts as no lag, not a negative one.
            let lag = std::time::Duration::try_from(now.duration_since(e.time));
            counts.lag.observe(lag.unwrap_or_default());
        }
        info!(
            events = news.len(),
            ?outcome,
            read_ms = format!("{read_ms:.1}"),
            build_ms = format!("{build_ms:.1}"),
            took_ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
            "applied EC2 events"
        );
        true
    }
}

/// The batch `first` and those to apply with it: every batch already waiting (they came while
/// the last group was applied), and, in a burst (a full receive, or batches waiting), every
/// batch that follows within `window` of the one before, for at most ten windows. An event on
/// its own is applied at once.
async fn gather(
    first: Batch,
    batches: &mut mpsc::Receiver<Batch>,
    window: std::time::Duration,
) -> Vec<Batch> {
    let mut group = vec![first];
    while let Ok(batch) = batches.try_recv() {
        group.push(batch);
    }
    let burst = group.len() > 1 || group.iter().any(|b| b.full);
    if burst && !window.is_zero() {
        let cap = tokio::time::Instant::now() + window * 10;
        loop {
            let until = (tokio::time::Instant::now() + window).min(cap);
            match tokio::time::timeout_at(until, batches.recv()).await {
                Ok(Some(batch)) => group.push(batch),
                _ => break,
            }
        }
    }
    group
}

/// Puts what an event read back into the served fleet: the instances of `region` named in
/// `ids` are replaced in place by their `found` state (keeping their health, which is the full
/// refresh's to read) or dropped when not found (gone, stopped, filtered out), the last
/// instance taking the dropped one's place; the rest of `found` are launches, appended by id.
/// No other instance moves, so names can be made again for the changed positions alone
/// ([`crate::naming::delta`]); it returns them. The next full read, in whatever order, finds
/// the fleet unchanged.
pub fn read_back(
    fleet: &mut Vec<Arc<crate::inventory::Instance>>,
    region: &str,
    ids: &std::collections::BTreeSet<String>,
    found: Vec<crate::inventory::Instance>,
) -> std::collections::BTreeSet<u32> {
    let mut found: HashMap<String, crate::inventory::Instance> =
        found.into_iter().map(|i| (i.id.clone(), i)).collect();
    let position = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
    let mut changed = std::collections::BTreeSet::new();
    let mut at = 0;
    while let Some(inst) = fleet.get_mut(at) {
        if inst.region() != Some(region) || !ids.contains(&inst.id) {
            at += 1;
            continue;
        }
        changed.insert(position(at));
        match found.remove(&inst.id) {
            Some(mut now) => {
                now.impaired = inst.impaired;
                *inst = Arc::new(now);
                at += 1;
            }
            None => {
                // The last instance fills the hole, so no other one moves; it is looked at
                // next, as it may be one of `ids` too.
                changed.insert(position(fleet.len() - 1));
                fleet.swap_remove(at);
            }
        }
    }
    let mut launched: Vec<crate::inventory::Instance> = found.into_values().collect();
    launched.sort_by(|a, b| a.id.cmp(&b.id));
    for inst in launched {
        changed.insert(position(fleet.len()));
        fleet.push(Arc::new(inst));
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, instance: &str, time: &str) -> Event {
        Event {
            id: id.into(),
            time: time.parse().expect("time"),
            account: Some("123456789012".into()),
            region: "eu-west-1".into(),
            instance: instance.into(),
            what: "running".into(),
        }
    }

    #[test]
    fn redeliveries_and_late_events_are_told_from_news() {
        let mut seen = Seen::default();
        let first = event("e1", "i-1", "2026-12-01T18:00:10Z");
        assert_eq!(seen.verdict(&first), Verdict::New);
        seen.remember(&first);
        assert_eq!(seen.verdict(&first), Verdict::Duplicate);
        // pending, then running in the same second: both read back.
        assert_eq!(
            seen.verdict(&event("e2", "i-1", "2026-12-01T18:00:10Z")),
            Verdict::New
        );
        assert_eq!(
            seen.verdict(&event("e0", "i-1", "2026-12-01T18:00:09Z")),
            Verdict::Stale,
            "older than a change applied"
        );
        assert_eq!(
            seen.verdict(&event("e3", "i-2", "2026-12-01T18:00:09Z")),
            Verdict::New,
            "another instance"
        );
    }

    fn batch(full: bool) -> Batch {
        let (done, _) = oneshot::channel();
        Batch {
            events: vec![event("e", "i-1", "2026-12-01T18:00:00Z")],
            done,
            full,
        }
    }

    /// A lone event is not held for the window, however long; a burst (a full receive) takes
    /// in what follows within it.
    #[tokio::test]
    async fn a_lone_event_goes_at_once_and_a_burst_waits_for_its_tail() {
        let window = std::time::Duration::from_secs(30);
        let (tx, mut rx) = mpsc::channel(16);
        let lone = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            gather(batch(false), &mut rx, window),
        )
        .await
        .expect("a lone event waited for the window");
        assert_eq!(lone.len(), 1);

        // Three more receives come while the first full one waits; then the queue falls
        // quiet, and the channel closing ends the wait as a quiet window would.
        let sender = tokio::spawn(async move {
            for full in [true, true, false] {
                tx.send(batch(full)).await.expect("send");
            }
        });
        let burst = gather(batch(true), &mut rx, window).await;
        sender.await.expect("sender");
        assert_eq!(burst.len(), 4);
    }

    #[test]
    fn memory_is_bounded() {
        let mut seen = Seen::default();
        for n in 0..(REMEMBERED_IDS + 10) {
            seen.remember(&event(&format!("e{n}"), "i-1", "2026-12-01T18:00:00Z"));
        }
        assert_eq!(seen.ids.len(), REMEMBERED_IDS);
        assert_eq!(
            seen.verdict(&event("e0", "i-9", "2026-12-01T18:00:00Z")),
            Verdict::New
        );
    }
}
