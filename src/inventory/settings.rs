//! The inventory's settings, as the config file's `[inventory]` table gives them.

use std::path::PathBuf;
use std::time::Duration;

/// Where the fleet comes from and how it is refreshed.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    /// The source and its settings.
    pub source: SourceConfig,
    /// How often the source is read again (a little jitter is added).
    pub refresh_interval: Duration,
    /// Longest wait between retries after failures.
    pub max_backoff: Duration,
    /// A refresh that removes more than this fraction of the names is held back.
    pub max_removed_fraction: f64,
    /// Refreshes in a row that must agree before a held-back shrink is published.
    pub confirm_refreshes: u32,
    /// A refresh that finds no instances replaces a non-empty fleet only when this is set: an
    /// empty answer is far more often a mistyped filter or a wrong account than a real fleet.
    pub allow_empty_fleet: bool,
    /// Data older than this is logged as stale at every refresh.
    pub max_stale: Option<Duration>,
    /// The state file, if any.
    pub state_file: Option<PathBuf>,
}

/// Inventory sources.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// A describe-instances JSON dump.
    File {
        /// Resolved against the config file's folder.
        path: PathBuf,
        /// Region for instances, when the dump does not say.
        region: Option<String>,
    },
    /// The EC2 API.
    Ec2(Ec2Config),
}

impl SourceConfig {
    /// Whether `other` reads the fleet differently: another file, region, account, filter or
    /// endpoint. Settings only the serving side reads (the audit's interval, the events
    /// queues) do not count, so changing them keeps the source and its connections.
    pub fn reads_differently(&self, other: &SourceConfig) -> bool {
        match (self, other) {
            (SourceConfig::Ec2(a), SourceConfig::Ec2(b)) => {
                let reads = |c: &Ec2Config| Ec2Config {
                    audit_interval: None,
                    events: None,
                    ..c.clone()
                };
                reads(a) != reads(b)
            }
            _ => self != other,
        }
    }

    /// The events queues, for the `ec2` source that has them.
    pub fn events(&self) -> Option<&EventsConfig> {
        match self {
            SourceConfig::Ec2(e) => e.events.as_ref(),
            SourceConfig::File { .. } => None,
        }
    }
}

/// The `ec2` source.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Config {
    /// Regions to walk; empty means the SDK's own region.
    pub regions: Vec<String>,
    /// Endpoint override.
    pub endpoint_url: Option<String>,
    /// Role ARNs to assume, each another account's walk.
    pub assume_roles: Vec<String>,
    /// Whether the credentials' own account is walked too.
    pub own_account: bool,
    /// DescribeInstances filters (name, values).
    pub filters: Vec<(String, Vec<String>)>,
    /// Instances per page.
    pub page_size: i32,
    /// Timeout of one API call attempt.
    pub api_timeout: Duration,
    /// While serving, run the security-group audit this often and export its finding counts.
    pub audit_interval: Option<Duration>,
    /// Read DescribeInstanceStatus with every refresh: impaired instances leave their tiers.
    pub instance_status: bool,
    /// EC2 state-change events from SQS, applied between refreshes.
    pub events: Option<EventsConfig>,
    /// The states whose instances are kept (`naming.states`), when the operator set no
    /// `instance-state-name` filter: the others are listed too, for the time of their last
    /// change (a termination is a change to the zone), and then dropped.
    pub keep_states: Option<std::collections::BTreeSet<super::InstanceState>>,
}

/// `[inventory.events]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// (region, queue URL).
    pub queues: Vec<(String, String)>,
    /// The SQS endpoint, when not AWS's.
    pub endpoint_url: Option<String>,
    /// Long poll of one receive.
    pub wait: Duration,
    /// In a burst, receives that follow each other within this are applied together: one
    /// build for a burst, while a lone event is applied at once.
    pub coalesce: Duration,
}

/// The default `inventory.events.coalesce`. A burst (an Auto Scaling group replacing 100
/// instances is 200 events over a few hundred milliseconds) shows itself by full receives
/// (ten messages): each receive that follows within this of the one before joins the group,
/// so twenty receives that arrive some milliseconds apart are one build, not twenty. Events
/// that come one at a time never wait for it.
pub const EVENTS_COALESCE: Duration = Duration::from_millis(50);
