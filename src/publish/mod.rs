//! Publishing: one view's answers kept in a Route 53 private hosted zone, the way external-dns
//! does for Kubernetes, but reconciling: a sync plans the difference between the snapshot and
//! what the zone holds through ownership records ([`plan`]) and sends only that. What the zone
//! holds comes from a listing at start and every `reconcile_interval`, and in between from
//! the state the last sync left ([`Known`]); a change Route 53 refuses because someone else
//! changed those records has just them read back. Every zone of one account draws on one
//! request budget ([`budget`]).
//!
//! It reads the snapshot DNS answering reads and never names on its own. Route 53 is the only
//! AWS service here; [`route53`] is the only code that talks to it.

use std::time::Duration;

use hickory_proto::rr::{LowerName, Name, RecordType};

use crate::zone::{Snapshot, SnapshotCell, rdata_text};
use plan::RecordSet;
use provider::Provider;

pub mod budget;
pub mod plan;
pub mod provider;
#[cfg(feature = "route53")]
pub mod route53;
pub mod settings;
mod stats;
pub use stats::{PublishCounts, PublishStats};

/// Why a sync did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Nothing safe to publish, or a zone that must not get these names.
    #[error("{0}")]
    Refused(String),
    /// Route 53 failed (after retries).
    #[error("Route 53, zone {zone}: {message}")]
    Api {
        /// The hosted zone.
        zone: String,
        /// The SDK's error with its causes.
        message: String,
    },
}

/// The record sets of zone `apex` in `view`, as Route 53 holds them: exactly what a transfer
/// carries and `stabledns zone` prints ([`ViewZone::zone_sets`](crate::zone::ViewZone::zone_sets)),
/// less the apex's SOA and NS, which a hosted zone has its own of. A set a transfer carries
/// only part of (a tier answered by CNAME, one over `zone.max_records_per_rrset`) is
/// published as that part, with a warning.
pub fn desired(
    snapshot: &Snapshot,
    view: &str,
    apex: &LowerName,
) -> Result<(Vec<RecordSet>, Vec<String>), PublishError> {
    let zone = snapshot
        .view(view)
        .ok_or_else(|| PublishError::Refused(format!("no view `{view}` in the snapshot")))?;
    let sets = zone
        .zone_sets(Some(apex))
        .ok_or_else(|| PublishError::Refused(format!("view `{view}` serves no zone {apex}")))?;
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    for set in sets {
        let own = matches!(set.rtype, RecordType::SOA | RecordType::NS);
        if own && LowerName::from(&set.name) == *apex {
            continue;
        }
        if set.served > set.rdata.len() {
            warnings.push(format!(
                "{} {}: {} records in answers, and Route 53, like a secondary, gets the {} a \
                 transfer carries{}",
                set.text,
                set.rtype,
                set.served,
                set.rdata.len(),
                if set.rtype == RecordType::CNAME {
                    " (a name holds one CNAME: answer tiers with addresses in this view to \
                     publish every member)"
                } else {
                    " (zone.max_records_per_rrset)"
                }
            ));
        }
        let mut values: Vec<String> = set.rdata.iter().map(rdata_text).collect();
        values.sort();
        out.push(RecordSet {
            name: set.text.to_ascii_lowercase(),
            rtype: set.rtype,
            ttl: set.ttl,
            values,
        });
    }
    out.sort();
    Ok((out, warnings))
}

/// What one sync planned and did.
#[derive(Debug, Default)]
pub struct Report {
    /// The hosted zone.
    pub zone: String,
    /// Its name and whether it is private.
    pub zone_name: String,
    /// Private zone.
    pub private: bool,
    /// The view published.
    pub view: String,
    /// The plan.
    pub plan: plan::Plan,
    /// Sets left out of the plan, and why.
    pub warnings: Vec<String>,
    /// Nothing was sent.
    pub dry_run: bool,
    /// Batches in the plan.
    pub planned_batches: usize,
    /// ChangeResourceRecordSets calls that Route 53 accepted.
    pub batches: usize,
    /// Changes Route 53 accepted: (creates, updates, deletes).
    pub accepted: (usize, usize, usize),
    /// Changes Route 53 refused alone, with its message: left out, every other sent.
    pub quarantined: Vec<String>,
    /// Route 53 calls made.
    pub calls: u64,
    /// Calls retried after throttling, a busy zone or a 5xx.
    pub retries: u64,
    /// Calls Route 53 throttled.
    pub throttles: u64,
    /// Record sets (not ownership records) created less those deleted by the accepted
    /// changes: with the plan's count before, what stabledns owns after the sync.
    pub owned_change: i64,
    /// The zone was listed (a reconcile), not planned from the last known state.
    pub listed: bool,
    /// Calls spent reading the zone (GetHostedZone and the listing).
    pub listing_calls: u64,
    /// A change planned from the last known state was refused: someone else changed those
    /// records. They were read back (`reread`) and the zone is synced again from there, or,
    /// when too many were refused, the next sync lists the whole zone.
    pub reconcile: bool,
    /// Record sets read back one by one after Route 53 refused changes to them.
    pub reread: usize,
    /// The record sets of the changes refused alone.
    refused: Vec<(String, hickory_proto::rr::RecordType)>,
    /// Record sets in the zone after the sync (everyone's, ownership records included), as
    /// far as stabledns knows: its last listing and every change accepted since.
    pub record_sets: u64,
    /// The zone's quota of record sets (Route 53's default when it could not be read).
    pub record_limit: u64,
    /// The zone is, or this sync's plan takes it, within a tenth of its quota.
    pub near_quota: Option<String>,
}

/// Past this share of its quota, a zone is warned about: Route 53 refuses a batch that would
/// go over, and a quota increase is a support case that takes days.
const QUOTA_WARNING: f64 = 0.9;

/// What a zone was last known to hold: its listing at the last reconcile, with every change
/// it accepted since. A sync planned from it sends only what changed, without listing.
#[derive(Debug, Clone)]
pub struct Known {
    info: provider::ZoneInfo,
    sets: Vec<plan::RecordSet>,
    /// Changes refused alone since the last listing: left for the reconcile, so that one
    /// refused change does not send every later sync back to listing.
    refused: std::collections::BTreeSet<(String, hickory_proto::rr::RecordType)>,
    /// Record sets read back after a refusal since the last listing: refused again, they are
    /// left for the listing rather than read and refused for ever.
    reread: std::collections::BTreeSet<(String, hickory_proto::rr::RecordType)>,
}

/// Past this many record sets refused in one sync, the zone is listed rather than read back
/// set by set (two calls each, with the ownership record, against a page of 300 per call).
const MAX_REREAD: usize = 100;

impl Known {
    /// The zone after `changes` were accepted.
    fn apply(sets: &mut Vec<plan::RecordSet>, changes: &[plan::Change]) {
        for change in changes {
            let set = change.set();
            sets.retain(|s| (&s.name, s.rtype) != (&set.name, set.rtype));
            if !matches!(change, plan::Change::Delete(_)) {
                sets.push(set.clone());
            }
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (c, u, d) = self.plan.counts();
        let kind = if self.private { "private" } else { "public" };
        writeln!(
            f,
            "zone {} ({}, {kind}) from view {}: {c} to create, {u} to update, {d} to delete \
             (ownership records included); stabledns owns {} record sets there",
            self.zone, self.zone_name, self.view, self.plan.owned
        )?;
        for change in self.plan.units.iter().flatten() {
            let set = change.set();
            writeln!(
                f,
                "  {} {} {} {} {}",
                change.action(),
                set.name,
                set.rtype,
                set.ttl,
                set.values.join(" ")
            )?;
        }
        for conflict in &self.plan.conflicts {
            writeln!(f, "conflict: {conflict}")?;
        }
        if let Some(held) = &self.plan.held {
            writeln!(f, "held: {held}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        if self.dry_run {
            return writeln!(
                f,
                "dry run: nothing sent ({} batches planned)",
                self.planned_batches
            );
        }
        for q in &self.quarantined {
            writeln!(f, "quarantined: {q}")?;
        }
        writeln!(
            f,
            "sent {} changes in {} batches ({} Route 53 calls, {} retries, {} quarantined)",
            self.sent(),
            self.batches,
            self.calls,
            self.retries,
            self.quarantined.len()
        )
    }
}

/// Plans (and unless `dry_run`, sends) one zone's full sync from `snapshot`. Refuses an empty
/// fleet, a zone whose name is not the snapshot's apex, and private addresses bound for a
/// public zone.
pub async fn sync(
    config: &settings::PublishConfig,
    target: &settings::Target,
    snapshot: &Snapshot,
    dry_run: bool,
    budgets: &budget::Budgets,
) -> Result<Report, PublishError> {
    let (report, _) = sync_from(config, target, snapshot, None, dry_run, budgets).await?;
    Ok(report)
}

/// One full sync through `zone`, whichever provider keeps it: the zone listed, then
/// [`sync_known`].
pub async fn sync_with(
    zone: &mut impl Provider,
    config: &settings::PublishConfig,
    target: &settings::Target,
    snapshot: &Snapshot,
    dry_run: bool,
) -> Result<Report, PublishError> {
    let (report, _) = sync_known(zone, config, target, snapshot, None, dry_run).await?;
    Ok(report)
}

/// One sync through `zone`: the checks, the plan (against `known`, or a listing without
/// it), the batches within the provider's limits, each sent (a refused one bisected) unless
/// `dry_run`. Returns what the zone holds after it, unless a change planned from `known` was
/// refused: those records were changed by someone else, and the next sync must list.
///
/// From `known`, an update is sent as the DELETE of the old records and the CREATE of the new
/// ones in one batch, not an UPSERT: Route 53 refuses a DELETE that does not match what the
/// zone holds exactly, and a CREATE of a name that exists, so a hand edit stops the batch
/// rather than being overwritten unseen.
pub async fn sync_known(
    zone: &mut impl Provider,
    config: &settings::PublishConfig,
    target: &settings::Target,
    snapshot: &Snapshot,
    known: Option<Known>,
    dry_run: bool,
) -> Result<(Report, Option<Known>), PublishError> {
    if snapshot.instance_count == 0 {
        return Err(PublishError::Refused(
            "the fleet is empty: nothing is published, and nothing deleted".into(),
        ));
    }
    let view = snapshot
        .view(&config.view)
        .ok_or_else(|| PublishError::Refused(format!("no view `{}`", config.view)))?;
    let id = &target.zone_id;
    let (info, known) = match known {
        Some(k) => (k.info.clone(), Some(k)),
        None => (zone.info().await?, None),
    };
    let ascii = |n: &hickory_proto::rr::LowerName| Name::from(n).to_ascii().to_ascii_lowercase();
    let forward = ascii(&snapshot.apex);
    if !target.reverse && info.name != forward {
        return Err(PublishError::Refused(format!(
            "hosted zone {id} is `{}`, and stabledns serves `{forward}`: check \
             publish.hosted_zone_id",
            info.name
        )));
    }
    let apex = if target.reverse {
        view.zone_apexes().skip(1).find(|a| ascii(a) == info.name)
    } else {
        Some(&snapshot.apex)
    };
    let Some(apex) = apex else {
        let reverse: Vec<String> = view.zone_apexes().skip(1).map(ascii).collect();
        return Err(PublishError::Refused(format!(
            "hosted zone {id} is `{}`, not one of view `{}`'s reverse zones ({}): check \
             publish.reverse_hosted_zone_id and the view's `reverse`",
            info.name,
            config.view,
            reverse.join(", ")
        )));
    };
    if !info.private && view.policy.addresses == crate::view::AddressKind::Private {
        return Err(PublishError::Refused(format!(
            "hosted zone {id} is public and view `{}` answers private addresses: publish it to \
             a private zone, or publish a view with `addresses = \"public\"`",
            config.view
        )));
    }
    let (want, warnings) = desired(snapshot, &config.view, apex)?;
    let incremental = known.is_some();
    let (mut have, mut refused, mut reread) = match known {
        Some(k) => (k.sets, k.refused, k.reread),
        None => (zone.list().await?, Default::default(), Default::default()),
    };
    // The provider is made for this sync, so its calls so far are the reading.
    let listing_calls = if incremental { 0 } else { zone.calls().made };
    let mut plan = plan::plan(
        &want,
        &have,
        &config.owner_id,
        config.policy,
        config.max_delete_fraction,
    );
    if incremental {
        let touches_refused = |unit: &plan::Unit| {
            (unit.iter()).any(|c| refused.contains(&(c.set().name.clone(), c.set().rtype)))
        };
        plan.units.retain(|u| !touches_refused(u));
        for unit in &mut plan.units {
            *unit = std::mem::take(unit)
                .into_iter()
                .flat_map(|change| match change {
                    plan::Change::Upsert { old, new } => {
                        vec![plan::Change::Delete(old), plan::Change::Create(new)]
                    }
                    other => vec![other],
                })
                .collect();
        }
    }
    let record_limit = info.record_limit.unwrap_or(provider::DEFAULT_RECORD_LIMIT);
    let near_quota = near_quota(&plan, have.len(), record_limit);
    let batches = plan.batches(zone.limits());
    let mut report = Report {
        record_limit,
        near_quota,
        zone: id.clone(),
        zone_name: info.name.clone(),
        private: info.private,
        view: config.view.clone(),
        warnings,
        dry_run,
        planned_batches: batches.len(),
        listed: !incremental,
        listing_calls,
        ..Report::default()
    };
    if !dry_run {
        for batch in batches {
            send_bisecting(zone, batch, &mut report, &mut have).await?;
        }
    }
    report.plan = plan;
    let mut must_list = false;
    if incremental && !report.refused.is_empty() && !dry_run {
        // Someone else changed records we were changing. Those already read back once since
        // the last listing are refused for a reason of their own: left for the listing. The
        // others are read back (a page of one each, with their ownership records) and
        // planned again from what the zone really holds; too many of them, and the whole
        // zone is listed instead.
        let keys: std::collections::BTreeSet<_> = report.refused.iter().cloned().collect();
        let (again, fresh): (Vec<_>, Vec<_>) =
            keys.into_iter().partition(|key| reread.contains(key));
        refused.extend(again);
        if fresh.len() > MAX_REREAD {
            report.reconcile = true;
            must_list = true;
        } else if !fresh.is_empty() {
            // Each set with its ownership record (an ownership record's own is no such thing).
            let mut keys: std::collections::BTreeSet<_> = fresh.iter().cloned().collect();
            keys.extend(
                (fresh.iter())
                    .filter(|(name, _)| !name.starts_with(plan::OWNERSHIP_PREFIX))
                    .map(|(name, rtype)| {
                        (
                            plan::ownership_name(name, *rtype),
                            hickory_proto::rr::RecordType::TXT,
                        )
                    }),
            );
            let keys: Vec<_> = keys.into_iter().collect();
            let before = zone.calls().made;
            let now = zone.read(&keys).await?;
            report.listing_calls += zone.calls().made - before;
            let gone: std::collections::HashSet<(&str, hickory_proto::rr::RecordType)> =
                keys.iter().map(|(n, t)| (n.as_str(), *t)).collect();
            have.retain(|s| !gone.contains(&(s.name.as_str(), s.rtype)));
            have.extend(now);
            report.reread = fresh.len();
            report.reconcile = true;
            reread.extend(fresh);
        }
    } else {
        refused.extend(report.refused.iter().cloned());
    }
    report.record_sets = have.len() as u64;
    let calls = zone.calls();
    (report.calls, report.retries, report.throttles) = (calls.made, calls.retried, calls.throttled);
    let after = (!dry_run && !must_list).then_some(Known {
        info,
        sets: have,
        refused,
        reread,
    });
    Ok((report, after))
}

/// A warning when the zone, with `plan` applied to the `holding` record sets it has, is
/// within [`QUOTA_WARNING`] of `limit` record sets. Ownership records count: Route 53 counts
/// every record set.
fn near_quota(plan: &plan::Plan, holding: usize, limit: u64) -> Option<String> {
    let (creates, _, deletes) = plan.counts();
    let after = (holding + creates).saturating_sub(deletes) as u64;
    #[allow(clippy::cast_precision_loss)] // record set counts are far below 2^52
    let share = after as f64 / limit.max(1) as f64;
    (share >= QUOTA_WARNING).then(|| {
        format!(
            "the zone holds {after} record sets after this sync (ownership records included), \
             {:.0}% of its quota of {limit}: Route 53 refuses changes past it; ask for more \
             (Service Quotas, \"Records per hosted zone\") or publish fewer names \
             (naming.instance_id_names = false)",
            share * 100.0
        )
    })
}

/// [`sync_known`] through the configured service: from `known` when given, else listing.
#[cfg(feature = "route53")]
pub async fn sync_from(
    config: &settings::PublishConfig,
    target: &settings::Target,
    snapshot: &Snapshot,
    known: Option<Known>,
    dry_run: bool,
    budgets: &budget::Budgets,
) -> Result<(Report, Option<Known>), PublishError> {
    match config.kind {
        settings::Kind::Route53 => {
            let mut zone = route53::Zone::new(config, &target.zone_id, budgets.of(config)).await;
            sync_known(&mut zone, config, target, snapshot, known, dry_run).await
        }
    }
}

/// Without Route 53 support in the build, every sync is refused.
#[cfg(not(feature = "route53"))]
pub async fn sync_from(
    _config: &settings::PublishConfig,
    _target: &settings::Target,
    _snapshot: &Snapshot,
    _known: Option<Known>,
    _dry_run: bool,
    _budgets: &budget::Budgets,
) -> Result<(Report, Option<Known>), PublishError> {
    Err(PublishError::Refused(
        "this build has no Route 53 support (the `route53` feature is off)".into(),
    ))
}

/// Sends a batch; one the provider refuses is split in halves until the refused unit is
/// alone, which is quarantined while the rest go through.
async fn send_bisecting(
    zone: &mut impl Provider,
    batch: Vec<plan::Unit>,
    report: &mut Report,
    have: &mut Vec<plan::RecordSet>,
) -> Result<(), PublishError> {
    let mut todo = vec![batch];
    while let Some(mut units) = todo.pop() {
        let changes: Vec<plan::Change> = units.iter().flatten().cloned().collect();
        match zone.apply(&changes).await? {
            Ok(()) => {
                Known::apply(have, &changes);
                report.batches += 1;
                let (c, u, d) = plan::counts(&changes);
                let a = &mut report.accepted;
                (a.0, a.1, a.2) = (a.0 + c, a.1 + u, a.2 + d);
                for change in changes.iter().filter(|c| !plan::is_ownership(c.set())) {
                    match change {
                        plan::Change::Create(_) => report.owned_change += 1,
                        plan::Change::Delete(_) => report.owned_change -= 1,
                        plan::Change::Upsert { .. } => {}
                    }
                }
            }
            Err(message) if units.len() <= 1 => {
                let what: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{} {} {}", c.action(), c.set().name, c.set().rtype))
                    .collect();
                tracing::warn!(zone = %report.zone, changes = %what.join(", "), %message,
                    "the zone refused a change; quarantined");
                report
                    .quarantined
                    .push(format!("{}: {message}", what.join(", ")));
                (report.refused).extend(
                    changes
                        .iter()
                        .map(|c| (c.set().name.clone(), c.set().rtype)),
                );
            }
            Err(_) => {
                let second = units.split_off(units.len() / 2);
                todo.push(second);
                todo.push(units);
            }
        }
    }
    Ok(())
}

/// The longest a failed sync waits before it is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Syncs every zone `zones()` names (read again each round: reloads apply) from the published
/// snapshot: after each new one, from the state the last sync left (no listing, only what
/// changed), and with a full listing at start, every `reconcile_interval`, after a failure,
/// and when Route 53 refused a change planned from that state. An unchanged fleet between
/// reconciles costs no call. Nothing is published before `confirmed()` says the inventory has
/// answered (a state file's fleet is not confirmed). A failed sync is logged, counted and tried
/// again after a backoff (5 s doubling to 10 minutes); serving and the refresh loop never wait
/// on this.
pub async fn run(
    zones: impl Fn() -> Vec<settings::PublishConfig>,
    confirmed: impl Fn() -> bool,
    cell: SnapshotCell,
    stats: std::sync::Arc<PublishStats>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use tokio::time::Instant;
    // zone id → the serial last synced and when the zone was last listed; what it holds; and,
    // after failures, when to try again.
    let mut done: std::collections::BTreeMap<String, (u32, Instant)> = Default::default();
    let mut known: std::collections::BTreeMap<String, Known> = Default::default();
    let mut backoff: std::collections::BTreeMap<String, (Duration, Instant)> = Default::default();
    let budgets = budget::Budgets::default();
    // Zones last seen near their quota: warned about again at each listing, not each change.
    let mut near: std::collections::BTreeSet<String> = Default::default();
    // Zones whose refused record sets were read back: synced again next round, unlisted.
    let mut again: std::collections::BTreeSet<String> = Default::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let configs = zones();
        // A zone a reload removed leaves /readyz and /metrics with it (an alert on its
        // conflicts must not fire for a zone no longer published).
        let wanted: std::collections::BTreeSet<String> = configs
            .iter()
            .flat_map(|c| c.targets().into_iter().map(|t| t.zone_id))
            .collect();
        done.retain(|id, _| wanted.contains(id));
        known.retain(|id, _| wanted.contains(id));
        again.retain(|id| wanted.contains(id));
        backoff.retain(|id, _| wanted.contains(id));
        if let Ok(mut counts) = stats.0.lock() {
            counts.retain(|id, _| wanted.contains(id));
        }
        if configs.is_empty() || !confirmed() {
            continue;
        }
        let Some(snapshot) = cell.load() else {
            continue;
        };
        for (config, target) in configs
            .iter()
            .flat_map(|c| c.targets().into_iter().map(move |t| (c, t)))
        {
            let id = &target.zone_id;
            let reconcile = done
                .get(id)
                .is_none_or(|(_, listed)| listed.elapsed() >= config.reconcile_interval);
            let due = reconcile
                || again.contains(id)
                || done
                    .get(id)
                    .is_some_and(|(serial, _)| *serial != snapshot.serial);
            let waiting = backoff.get(id).is_some_and(|(_, at)| Instant::now() < *at);
            if !due || waiting {
                continue;
            }
            let start = if reconcile { None } else { known.remove(id) };
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                r = sync_from(config, &target, &snapshot, start, false, &budgets) => r,
            };
            let (result, after) = match result {
                Ok((report, after)) => (Ok(report), after),
                Err(e) => (Err(e), None),
            };
            stats.record(id, &result);
            match result {
                Ok(report) => {
                    report.log(snapshot.serial);
                    match &report.near_quota {
                        Some(why) if report.listed || !near.contains(id) => {
                            tracing::warn!(zone = %id, "{why}");
                            near.insert(id.clone());
                        }
                        Some(_) => {}
                        None => {
                            near.remove(id);
                        }
                    }
                    again.remove(id);
                    if report.reconcile && after.is_none() {
                        // Someone changed many records we were changing: list the zone now.
                        tracing::warn!(zone = %id, "Route 53 refused changes planned from the \
                            zone's last known state; listing the zone to reconcile");
                        done.remove(id);
                    } else {
                        if report.reconcile {
                            // Only those record sets were read back; the next round plans them
                            // again from what the zone holds.
                            tracing::warn!(zone = %id, record_sets = report.reread,
                                "Route 53 refused changes planned from the zone's last known \
                                state (someone else changed those records); read them back to \
                                sync them again");
                            again.insert(id.clone());
                        }
                        let listed = match done.get(id) {
                            Some((_, at)) if !report.listed => *at,
                            _ => Instant::now(),
                        };
                        done.insert(id.clone(), (snapshot.serial, listed));
                    }
                    if let Some(after) = after {
                        known.insert(id.clone(), after);
                    }
                    backoff.remove(id);
                }
                Err(e) => {
                    // What the zone holds is no longer known: the next sync lists it.
                    done.remove(id);
                    let wait = backoff
                        .get(id)
                        .map_or(Duration::from_secs(5), |(w, _)| (*w * 2).min(MAX_BACKOFF));
                    tracing::error!(zone = %id, "publishing failed: {e}; DNS serving continues; \
                        trying again in {wait:?}");
                    backoff.insert(id.clone(), (wait, Instant::now() + wait));
                }
            }
        }
    }
}

impl Report {
    /// Record sets stabledns owns in the zone after the sync (before it, for a dry run).
    pub fn owned_after(&self) -> u64 {
        let before = i64::try_from(self.plan.owned).unwrap_or(i64::MAX);
        u64::try_from(before.saturating_add(self.owned_change)).unwrap_or(0)
    }

    /// Changes Route 53 accepted.
    pub fn sent(&self) -> usize {
        let (c, u, d) = self.accepted;
        c + u + d
    }

    /// Logs what a sync in `serve` did: changes at info, conflicts and held deletions at warn.
    fn log(&self, serial: u32) {
        let zone = &self.zone;
        let (creates, updates, deletes) = self.accepted;
        if self.sent() > 0 || !self.quarantined.is_empty() {
            tracing::info!(%zone, serial, creates, updates, deletes,
                quarantined = self.quarantined.len(), "published to Route 53");
        }
        for conflict in &self.plan.conflicts {
            tracing::warn!(%zone, "{conflict}");
        }
        if let Some(held) = &self.plan.held {
            tracing::warn!(%zone, "{held}");
        }
    }
}
