//! The publisher's settings, as the config file's `[[publish]]` tables give them.

pub use super::plan::Policy;

/// The default `reconcile_interval`. Every sync between listings starts from the state the
/// last one left, so a listing is needed only for drift: a hand edit to a record we own (one
/// that touches a record we change is found at once, when Route 53 refuses our DELETE). At
/// 100,000 instances a listing is about 1,400 calls; once an hour that is 0.4 calls a second of
/// the account's 5, where every 10 minutes it was half of them.
pub const RECONCILE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Which service keeps the zone: each is a [`Provider`](super::provider::Provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Amazon Route 53 hosted zones.
    Route53,
}

/// One hosted zone to keep in sync with one view's answers.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    /// The service.
    pub kind: Kind,
    /// The view whose answers are published (normally an inside view in `cname` mode: a
    /// CNAME to the public EC2 name still resolves to the private address inside the VPC).
    pub view: String,
    /// The hosted zone. Never chosen by name: a public and a private zone can share one.
    pub hosted_zone_id: String,
    /// A reverse zone (e.g. `10.in-addr.arpa.`, one of the view's `reverse` zones) for the
    /// view's PTR records.
    pub reverse_hosted_zone_id: Option<String>,
    /// Whose records these are, in the ownership TXT records.
    pub owner_id: String,
    /// What a sync may do to the records it owns.
    pub policy: Policy,
    /// Resource records per ChangeResourceRecordSets call (Route 53 allows 1,000; an UPSERT
    /// counts twice).
    pub max_changes_per_batch: usize,
    /// Route 53 calls a second, at most (its limit is per account).
    pub requests_per_second: f64,
    /// A plan that deletes more than this fraction of the record sets we own is held back.
    pub max_delete_fraction: f64,
    /// Between listings, syncs send only what changed since the last known state; a full
    /// listing repairs drift this often.
    pub reconcile_interval: std::time::Duration,
    /// A role to assume for Route 53 (another account's zone).
    pub assume_role: Option<String>,
    /// Endpoint override (moto in tests).
    pub endpoint_url: Option<String>,
}

/// One hosted zone a `[[publish]]` entry keeps in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The zone.
    pub zone_id: String,
    /// The reverse zone (PTR records), not the forward one.
    pub reverse: bool,
}

impl PublishConfig {
    /// The forward zone, and the reverse one when configured.
    pub fn targets(&self) -> Vec<Target> {
        let forward = Target {
            zone_id: self.hosted_zone_id.clone(),
            reverse: false,
        };
        let reverse = self.reverse_hosted_zone_id.iter().map(|id| Target {
            zone_id: id.clone(),
            reverse: true,
        });
        std::iter::once(forward).chain(reverse).collect()
    }
}
