//! The serde mirror of the config file. Nothing here is validated beyond types.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// `[server]`
    pub server: Server,
    /// `[zone]`
    pub zone: Zone,
    /// `[inventory]`
    pub inventory: Inventory,
    /// `[naming]`
    #[serde(default)]
    pub naming: Naming,
    /// `[[views]]`, in order.
    #[serde(default)]
    pub views: Vec<View>,
    /// `[forwarding]`: the upstreams for views that may recurse.
    pub forwarding: Option<Forwarding>,
    /// `[admin]`: the HTTP endpoints for health checks and metrics.
    pub admin: Option<Admin>,
    /// `[[tsig_keys]]`: keys for signed zone transfers.
    #[serde(default)]
    pub tsig_keys: Vec<TsigKey>,
    /// `[[publish]]`: Route 53 hosted zones kept in sync with a view.
    #[serde(default)]
    pub publish: Vec<Publish>,
    /// `[log]`: the query log and dnstap.
    #[serde(default)]
    pub log: Log,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `off` (default), `all` or `errors`.
    pub queries: Option<Spanned<String>>,
    /// One line for every N answers selected.
    pub sample: Option<Spanned<i64>>,
    /// A dnstap collector's Frame Streams unix socket.
    pub dnstap_socket: Option<Spanned<String>>,
    /// The dnstap `identity` (default: the host name).
    pub dnstap_identity: Option<Spanned<String>>,
    /// The dnstap `version` (default: `stabledns <version>`).
    pub dnstap_version: Option<Spanned<String>>,
}

/// `[[publish]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// `route53`, the only kind.
    pub kind: Spanned<String>,
    /// The view whose answers are published.
    pub view: Spanned<String>,
    /// The hosted zone's id (`Z0123…`, or `/hostedzone/Z0123…`).
    pub hosted_zone_id: Spanned<String>,
    /// A reverse hosted zone's id, for the view's PTR records.
    pub reverse_hosted_zone_id: Option<Spanned<String>>,
    /// Owner in the ownership records (default `stabledns`).
    pub owner_id: Option<Spanned<String>>,
    /// `sync` (default), `upsert-only` or `create-only`.
    pub policy: Option<Spanned<String>>,
    /// Resource records per change batch (default 500, at most 1,000).
    pub max_changes_per_batch: Option<Spanned<i64>>,
    /// Route 53 calls a second (default 4).
    pub requests_per_second: Option<Spanned<f64>>,
    /// Fraction of owned record sets a plan may delete (default 0.5).
    pub max_delete_fraction: Option<Spanned<f64>>,
    /// How often a full listing of the zone repairs drift between incremental syncs.
    pub reconcile_interval: Option<Spanned<String>>,
    /// Role ARN to assume.
    pub assume_role: Option<Spanned<String>>,
    /// Endpoint override.
    pub endpoint_url: Option<Spanned<String>>,
}

/// `[admin]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// IP:port of the HTTP listener.
    #[serde(default = "default_admin_listen")]
    pub listen: Spanned<String>,
    /// Who may read /metrics, /healthz and /readyz (CIDRs; loopback by default).
    pub metrics_clients: Option<Vec<Spanned<String>>>,
    /// Who may read the pages that show names (CIDRs; loopback by default).
    pub names_clients: Option<Vec<Spanned<String>>>,
}

fn default_admin_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8053".to_owned())
}

/// `[forwarding]`; its `Default` is what an absent table means.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forwarding {
    /// `"system"` (resolv.conf) or `IP` / `IP:port` resolvers.
    #[serde(default = "default_upstreams")]
    pub upstreams: Spanned<Vec<Spanned<String>>>,
    /// Longest wait for an upstream answer before SERVFAIL.
    #[serde(default = "default_forward_timeout")]
    pub timeout: Spanned<String>,
    /// Longest wait for a CNAME target's addresses before our answer goes without them.
    #[serde(default = "default_chase_timeout")]
    pub chase_timeout: Spanned<String>,
    /// Forwarded answers cached.
    #[serde(default = "default_cache_size")]
    pub cache_size: u64,
    /// How long past its TTL a forwarded answer is kept to serve stale ("0s": never).
    #[serde(default = "default_serve_stale")]
    pub serve_stale: Spanned<String>,
    /// Forwarded lookups waiting for the upstreams at once; past it, SERVFAIL at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            upstreams: default_upstreams(),
            timeout: default_forward_timeout(),
            chase_timeout: default_chase_timeout(),
            cache_size: default_cache_size(),
            serve_stale: default_serve_stale(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_max_in_flight() -> usize {
    512
}

fn default_upstreams() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, vec![Spanned::new(0..0, "system".to_owned())])
}
fn default_chase_from() -> Spanned<String> {
    Spanned::new(0..0, "inventory".to_owned())
}
fn default_chase_timeout() -> Spanned<String> {
    Spanned::new(0..0, "100ms".to_owned())
}
fn default_forward_timeout() -> Spanned<String> {
    Spanned::new(0..0, "2s".to_owned())
}
fn default_serve_stale() -> Spanned<String> {
    Spanned::new(0..0, "1d".to_owned())
}
fn default_cache_size() -> u64 {
    10_000
}

/// `[[views]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// Unique name.
    pub name: Spanned<String>,
    /// Client CIDRs (or addresses); absent matches every client.
    pub clients: Option<Vec<Spanned<String>>>,
    /// `private` or `public`.
    #[serde(default = "default_addresses")]
    pub addresses: Spanned<String>,
    /// `cname` or `address`.
    #[serde(default = "default_single")]
    pub single: Spanned<String>,
    /// `addresses` or `cname`.
    #[serde(default = "default_tiers")]
    pub tiers: Spanned<String>,
    /// Forward names outside our zones (default false).
    pub recursion: Option<Spanned<bool>>,
    /// Add the CNAME target's addresses (default: `recursion`).
    pub chase_cname: Option<Spanned<bool>>,
    /// Where chased addresses come from: `inventory` (default) or `upstream`.
    #[serde(default = "default_chase_from")]
    pub chase_from: Spanned<String>,
    /// Answer `_explain.<name>` TXT (default: private views).
    pub explain: Option<bool>,
    /// Networks whose PTR records this view serves.
    #[serde(default)]
    pub reverse: Vec<Spanned<String>>,
    /// Networks allowed to transfer this view's zones (AXFR, IXFR).
    #[serde(default)]
    pub allow_transfer: Vec<Spanned<String>>,
    /// TSIG keys (names from `[[tsig_keys]]`) of which a transfer must be signed with one.
    #[serde(default)]
    pub transfer_keys: Vec<Spanned<String>>,
    /// Secondaries to send NOTIFY to when the serial changes (`IP` or `IP:port`).
    #[serde(default)]
    pub notify: Vec<Spanned<String>>,
    /// The address NOTIFY is sent from: the one the secondaries know as their primary.
    pub notify_source: Option<Spanned<String>>,
    /// UDP answers a second per client prefix (0: no limit; default 200 for public views,
    /// 0 for private ones).
    pub rate_limit: Option<u32>,
    /// Past the rate, every n-th answer goes out truncated, the rest are dropped (0: drop
    /// all).
    #[serde(default = "default_slip")]
    pub rate_limit_slip: u32,
}

fn default_slip() -> u32 {
    2
}

/// `[[tsig_keys]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigKey {
    /// The key's name, as the secondary knows it.
    pub name: Spanned<String>,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_tsig_algorithm")]
    pub algorithm: Spanned<String>,
    /// A file holding the base64 secret, relative to the config file.
    pub secret_file: Spanned<String>,
}

fn default_tsig_algorithm() -> Spanned<String> {
    Spanned::new(0..0, "hmac-sha256".to_owned())
}

fn default_tiers() -> Spanned<String> {
    Spanned::new(0..0, "addresses".to_owned())
}

fn default_addresses() -> Spanned<String> {
    Spanned::new(0..0, "private".to_owned())
}
fn default_single() -> Spanned<String> {
    Spanned::new(0..0, "cname".to_owned())
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Socket addresses; each serves UDP and TCP.
    pub listen: Spanned<Vec<Spanned<String>>>,
    /// How long an idle TCP connection is kept open.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout: Spanned<String>,
    /// Answer the hot UDP case from precomputed bytes.
    #[serde(default = "default_true")]
    pub fast_path: bool,
    /// TCP connections open at once, in all.
    #[serde(default = "default_max_tcp")]
    pub max_tcp_connections: usize,
    /// TCP connections open at once from one client address.
    #[serde(default = "default_max_tcp_per_client")]
    pub max_tcp_connections_per_client: usize,
    /// The answer to `version.bind`/`version.server` CH TXT (absent: REFUSED).
    pub version: Option<Spanned<String>>,
    /// The answer to `id.server`/`hostname.bind` CH TXT (absent: REFUSED).
    pub identity: Option<Spanned<String>>,
}

fn default_max_tcp() -> usize {
    1024
}
fn default_max_tcp_per_client() -> usize {
    32
}

fn default_tcp_idle_timeout() -> Spanned<String> {
    Spanned::new(0..0, "10s".to_owned())
}

/// `[zone]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The zone apex, e.g. `internal.`.
    pub apex: Spanned<String>,
    /// TTL of the host records (A, AAAA, CNAME).
    #[serde(default = "default_record_ttl")]
    pub record_ttl: u32,
    /// TTL of the SOA and NS records at the apex.
    #[serde(default = "default_apex_ttl")]
    pub apex_ttl: u32,
    /// `[zone.soa]`; without one, the defaults (`hostmaster.<apex>`, the first nameserver).
    #[serde(default)]
    pub soa: Soa,
    /// `[[zone.nameservers]]`
    pub nameservers: Spanned<Vec<Nameserver>>,
    /// Subtrees under the apex that are not ours (another server's names).
    #[serde(default)]
    pub passthrough: Vec<Spanned<String>>,
    /// The most records one RRset has in an answer or a transfer.
    #[serde(default = "default_max_records_per_rrset")]
    pub max_records_per_rrset: Spanned<i64>,
}

fn default_max_records_per_rrset() -> Spanned<i64> {
    Spanned::new(0..0, 100)
}

fn default_record_ttl() -> u32 {
    60
}
fn default_apex_ttl() -> u32 {
    3600
}

/// `[zone.soa]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Soa {
    /// MNAME; defaults to the first nameserver.
    pub primary_ns: Option<Spanned<String>>,
    /// RNAME, the hostmaster's mailbox as a domain name (relative to the apex).
    #[serde(default = "default_hostmaster")]
    pub hostmaster: Spanned<String>,
    /// Seconds between secondaries' refresh checks.
    #[serde(default = "default_refresh")]
    pub refresh: u32,
    /// Seconds between retries of a failed refresh.
    #[serde(default = "default_retry")]
    pub retry: u32,
    /// Seconds after which a secondary stops answering without a refresh.
    #[serde(default = "default_expire")]
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    #[serde(default = "default_minimum")]
    pub minimum: u32,
}

impl Default for Soa {
    fn default() -> Self {
        Self {
            primary_ns: None,
            hostmaster: default_hostmaster(),
            refresh: default_refresh(),
            retry: default_retry(),
            expire: default_expire(),
            minimum: default_minimum(),
        }
    }
}

/// RFC 2142's mailbox for a zone's administrator.
fn default_hostmaster() -> Spanned<String> {
    Spanned::new(0..0, "hostmaster".to_owned())
}

fn default_refresh() -> u32 {
    3600
}
fn default_retry() -> u32 {
    600
}
fn default_expire() -> u32 {
    604_800
}
fn default_minimum() -> u32 {
    60
}

/// `[[zone.nameservers]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nameserver {
    /// Relative to the apex, or absolute with a trailing dot.
    pub name: Spanned<String>,
    /// Glue; required when the name is inside the zone.
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    /// Glue for public views: the addresses outside clients reach it at.
    #[serde(default)]
    pub public_addresses: Vec<Spanned<String>>,
}

/// `[inventory.events]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// Region → the SQS queue URL an EventBridge rule in that region fills.
    pub queues: Spanned<std::collections::BTreeMap<String, Spanned<String>>>,
    /// The SQS endpoint, when not AWS's (a VPC endpoint, or a test's moto).
    pub endpoint_url: Option<Spanned<String>>,
    /// SQS long poll, 1 to 20 seconds.
    pub wait: Option<Spanned<String>>,
    /// Events within this of the last applied batch are applied with the next (0 to 10 s).
    pub coalesce: Option<Spanned<String>>,
}

/// `[inventory]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// `file` or `ec2`.
    pub source: Spanned<String>,
    /// For `file`: the describe-instances JSON, relative to the config file.
    pub path: Option<Spanned<String>>,
    /// For `file`: the region, when the dump does not say (derived from the AZ otherwise).
    pub region: Option<Spanned<String>>,
    /// For `ec2`: regions to walk (default: the SDK's region from env or profile).
    pub regions: Option<Spanned<Vec<Spanned<String>>>>,
    /// For `ec2`: the EC2 endpoint (a VPC endpoint; moto in tests).
    pub endpoint_url: Option<Spanned<String>>,
    /// For `ec2`: roles to assume, one walk per role and region (other accounts).
    pub assume_roles: Option<Spanned<Vec<Spanned<String>>>>,
    /// For `ec2`: also walk the credentials' own account (default true).
    pub own_account: Option<Spanned<bool>>,
    /// For `ec2`: DescribeInstances filters, e.g. `tag:stabledns` = `["on"]`.
    pub filters: Option<Spanned<Vec<Filter>>>,
    /// For `ec2`: instances per page (5 to 1000).
    pub page_size: Option<Spanned<i64>>,
    /// For `ec2`: timeout of one API call attempt.
    pub api_timeout: Option<Spanned<String>>,
    /// For `ec2`: run the security-group audit this often while serving, as metrics.
    pub audit_interval: Option<Spanned<String>>,
    /// For `ec2`: read DescribeInstanceStatus and leave impaired instances out of tiers.
    pub instance_status: Option<Spanned<bool>>,
    /// For `ec2`: `[inventory.events]`, EC2 state-change events from SQS.
    pub events: Option<Spanned<Events>>,
    /// How often the inventory is read again.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: Spanned<String>,
    /// Longest wait between retries after failures.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Spanned<String>,
    /// A refresh removing more than this fraction of the names waits for confirmation.
    #[serde(default = "default_max_removed_fraction")]
    pub max_removed_fraction: Spanned<f64>,
    /// How many refreshes in a row must see such a shrunken fleet before it is published.
    #[serde(default = "default_confirm_refreshes")]
    pub confirm_refreshes: Spanned<i64>,
    /// Whether a refresh that finds no instances at all may replace a non-empty fleet.
    #[serde(default)]
    pub allow_empty_fleet: bool,
    /// Past this age the data is logged as stale at every refresh.
    pub max_stale: Option<Spanned<String>>,
    /// Where the last published inventory is kept across restarts.
    pub state_file: Option<Spanned<String>>,
}

/// `[[inventory.filters]]`, as the EC2 API's `Filter`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// e.g. `tag:stabledns`, `vpc-id`.
    pub name: Spanned<String>,
    /// Any of these values matches.
    pub values: Vec<String>,
}

fn default_max_backoff() -> Spanned<String> {
    Spanned::new(0..0, "5m".to_owned())
}
fn default_max_removed_fraction() -> Spanned<f64> {
    Spanned::new(0..0, 0.5)
}
fn default_confirm_refreshes() -> Spanned<i64> {
    Spanned::new(0..0, 3)
}

fn default_refresh_interval() -> Spanned<String> {
    Spanned::new(0..0, "30s".to_owned())
}

/// `[naming]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Naming {
    /// Instance states that get names.
    #[serde(default = "default_states")]
    pub states: Spanned<Vec<Spanned<String>>>,
    /// Whether every instance is also named by its id.
    #[serde(default = "default_true")]
    pub instance_id_names: bool,
    /// `[[naming.rules]]`, in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Tag whose value (`http:tcp:80`, comma-separated) makes SRV records under the tiers.
    #[serde(default = "default_srv_tag")]
    pub srv_tag: Spanned<String>,
    /// Tag that, set to true, keeps all of an instance's names from outside views.
    #[serde(default = "default_inside_only_tag")]
    pub inside_only_tag: Spanned<String>,
    /// Tag that, set to true, takes an instance out of its tiers' answers (draining).
    #[serde(default = "default_drain_tag")]
    pub drain_tag: Spanned<String>,
    /// Where tier slot numbers are kept: "tags" (on the instances) or "state-file".
    #[serde(default = "default_slot_numbers")]
    pub slot_numbers: Spanned<String>,
}

impl Default for Naming {
    fn default() -> Self {
        Self {
            states: default_states(),
            instance_id_names: true,
            rules: Vec::new(),
            srv_tag: default_srv_tag(),
            inside_only_tag: default_inside_only_tag(),
            drain_tag: default_drain_tag(),
            slot_numbers: default_slot_numbers(),
        }
    }
}

fn default_slot_numbers() -> Spanned<String> {
    Spanned::new(0..0, "tags".to_owned())
}

fn default_srv_tag() -> Spanned<String> {
    Spanned::new(0..0, "stabledns:srv".to_owned())
}
fn default_inside_only_tag() -> Spanned<String> {
    Spanned::new(0..0, "stabledns:inside-only".to_owned())
}
fn default_drain_tag() -> Spanned<String> {
    Spanned::new(0..0, "stabledns:drain".to_owned())
}

fn default_states() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, vec![Spanned::new(0..0, "running".to_owned())])
}
fn default_true() -> bool {
    true
}

/// `[[naming.rules]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `tag` or `security_group`.
    pub kind: Spanned<String>,
    /// For `tag`: the tag key (default `Name`).
    pub tag: Option<Spanned<String>>,
    /// For `tag`: split the value on this string to get several names.
    pub separator: Option<Spanned<String>>,
    /// For `security_group`: a regex over the group name with a `name` capture.
    pub pattern: Option<Spanned<String>>,
    /// The name names one instance: when several claim it, the newest launch wins.
    #[serde(default)]
    pub single: bool,
    /// Names this rule makes are never shown to outside views.
    #[serde(default)]
    pub inside_only: bool,
    /// Tiers this rule makes number their instances: `1.web`, `2.web`.
    #[serde(default)]
    pub slots: bool,
}
