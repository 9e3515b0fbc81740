//! Configuration: raw TOML structs, then one validation into a rich [`Config`].
//!
//! Two steps, as in ripgrep and hickory-dns: serde reads [`raw`] structs that mirror the file
//! exactly (`deny_unknown_fields`, so a typo is an error, not a silently ignored key), then
//! [`Config::from_raw`] turns them into parsed types (names, regexes, durations, socket
//! addresses) once. Every value that is validated after parsing keeps its byte span, so an error
//! names the file, the key and the line.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::Name;
use regex::Regex;

use crate::inventory::InstanceState;
use crate::naming::{Rule, RuleKind, Rules};
use crate::view::{AddressKind, ChaseFrom, SingleMode, TierMode, ViewPolicy};
// The settings types belong to the modules that use them; the config only builds them.
pub use crate::dns::forward::ForwardConfig;
pub use crate::inventory::settings::{Ec2Config, InventoryConfig, SourceConfig};
pub use crate::zone::settings::{AWS_PRIVATE_DOMAINS, NameserverConfig, ZoneConfig};
use ipnet::IpNet;

/// What went wrong loading a config file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("failed to read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown, or a value has the wrong type.
    #[error("failed to parse config file {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// toml's message: it names the line, the column and the key.
        message: String,
    },
    /// A value parsed but does not make sense.
    #[error("{path}:{line}: invalid `{key}`: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// Dotted key, e.g. `naming.rules[2].pattern`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The serde mirror of the config file. Nothing here is validated beyond types.
pub mod raw {
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
    }

    /// `[admin]`
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Admin {
        /// IP:port of the HTTP listener.
        #[serde(default = "default_admin_listen")]
        pub listen: Spanned<String>,
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
        /// Records the resolver caches.
        #[serde(default = "default_cache_size")]
        pub cache_size: u64,
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
        /// `[zone.soa]`
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
        /// RNAME, the hostmaster's mailbox as a domain name.
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
    }

    impl Default for Naming {
        fn default() -> Self {
            Self {
                states: default_states(),
                instance_id_names: true,
                rules: Vec::new(),
                srv_tag: default_srv_tag(),
                inside_only_tag: default_inside_only_tag(),
            }
        }
    }

    fn default_srv_tag() -> Spanned<String> {
        Spanned::new(0..0, "stabledns:srv".to_owned())
    }
    fn default_inside_only_tag() -> Spanned<String> {
        Spanned::new(0..0, "stabledns:inside-only".to_owned())
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
}

/// UDP answers a second per client prefix in public views unless configured.
pub const DEFAULT_PUBLIC_RATE_LIMIT: u32 = 200;

/// A validated configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from; relative paths in it are resolved against its folder.
    pub path: PathBuf,
    /// `[server]`
    pub server: ServerConfig,
    /// `[zone]`
    pub zone: ZoneConfig,
    /// `[inventory]`
    pub inventory: InventoryConfig,
    /// `[naming]`
    pub naming: Rules,
    /// `[[views]]`, in order; one `inside` view for everyone when none is configured.
    pub views: Vec<ViewPolicy>,
    /// Upstream resolvers, when some view may recurse.
    pub forwarding: Option<ForwardConfig>,
    /// The admin HTTP listener (health, readiness, metrics, names), when configured.
    pub admin: Option<AdminConfig>,
    /// Keys for signed zone transfers.
    pub tsig_keys: Vec<TsigKeyConfig>,
    /// Things that are allowed but probably not meant (logged at start and reload).
    pub warnings: Vec<String>,
}

/// A TSIG key. The secret never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct TsigKeyConfig {
    /// Fully qualified, lower case.
    pub name: Name,
    /// The HMAC.
    pub algorithm: hickory_proto::rr::rdata::tsig::TsigAlgorithm,
    /// The decoded secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKeyConfig")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKeyConfig {
    /// A signer for this key (5 minutes of clock skew allowed, RFC 8945's recommendation).
    pub fn signer(&self) -> Result<hickory_proto::rr::TSigner, String> {
        hickory_proto::rr::TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            300,
        )
        .map_err(|e| format!("TSIG key {}: {e}", self.name))
    }
}

/// The admin HTTP endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where they listen; loopback unless the operator means otherwise.
    pub listen: SocketAddr,
}

impl Config {
    /// Replaces the upstream resolvers (the `--upstream` flag), with the same loop check the
    /// file gets.
    pub fn set_upstreams(&mut self, upstreams: Vec<SocketAddr>) -> Result<(), String> {
        let Some(forwarding) = &mut self.forwarding else {
            return Err("no view has `recursion` or `chase_cname`, so nothing forwards".into());
        };
        if let Some(own) = upstreams
            .iter()
            .find(|u| is_own_socket(&self.server.listen, u))
        {
            return Err(format!(
                "{own} is this server itself: forwarding to it would loop"
            ));
        }
        forwarding.upstreams = Some(upstreams);
        Ok(())
    }
}

/// Whether `addr` is one of the sockets we listen on (a loop if we forwarded to it). A
/// wildcard listener also owns loopback on its port; whether another address is local cannot
/// be known from the file, and the loop probe at start-up catches those.
fn is_own_socket(listen: &[SocketAddr], addr: &SocketAddr) -> bool {
    addr.ip().is_unspecified()
        || listen.iter().any(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip() || (l.ip().is_unspecified() && addr.ip().is_loopback()))
        })
}

/// Listening sockets and connection limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Each address serves UDP and TCP on the same port.
    pub listen: Vec<SocketAddr>,
    /// Idle TCP connections are closed after this long.
    pub tcp_idle_timeout: Duration,
    /// UDP A/AAAA/CNAME answers from precomputed wire bytes (off: all through hickory).
    pub fast_path: bool,
    /// TCP connections open at once, in all.
    pub max_tcp_connections: usize,
    /// TCP connections open at once from one client address.
    pub max_tcp_connections_per_client: usize,
    /// What CHAOS-class TXT queries for the server's version and identity answer.
    pub chaos: crate::dns::Chaos,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validates config text as if read from `path` (which anchors relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: raw::File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::from_raw(path, text, raw)
    }

    /// The one validation step from raw structs to rich types.
    pub fn from_raw(path: &Path, text: &str, raw: raw::File) -> Result<Self, ConfigError> {
        let v = Validator { path, text };
        let base = path.parent().unwrap_or(Path::new("."));

        let mut listen = Vec::new();
        for (i, addr) in raw.server.listen.get_ref().iter().enumerate() {
            let parsed: SocketAddr = addr.get_ref().parse().map_err(|_| {
                v.err(
                    &format!("server.listen[{i}]"),
                    addr.span(),
                    format!("`{}` is not an IP:port socket address", addr.get_ref()),
                )
            })?;
            if listen.contains(&parsed) {
                return Err(v.err(
                    &format!("server.listen[{i}]"),
                    addr.span(),
                    format!("{parsed} is listed twice"),
                ));
            }
            listen.push(parsed);
        }
        if listen.is_empty() {
            return Err(v.err(
                "server.listen",
                raw.server.listen.span(),
                "at least one address is needed".into(),
            ));
        }
        let tcp_idle_timeout =
            v.duration("server.tcp_idle_timeout", &raw.server.tcp_idle_timeout)?;
        // One TXT string holds 255 octets.
        let chaos_text = |key: &str, value: &Option<toml::Spanned<String>>| match value {
            Some(t) if t.get_ref().len() > 255 => Err(v.err(
                key,
                t.span(),
                "longer than the 255 characters a TXT string holds".into(),
            )),
            other => Ok(other.as_ref().map(|t| t.get_ref().clone())),
        };
        let chaos = crate::dns::Chaos {
            version: chaos_text("server.version", &raw.server.version)?,
            identity: chaos_text("server.identity", &raw.server.identity)?,
        };

        let zone = v.zone(&raw.zone)?;
        let mut inventory = v.inventory(base, &raw.inventory)?;
        let naming = v.naming(&raw.naming)?;
        // Only named states matter, so let the API drop the rest (terminated instances linger
        // for an hour in DescribeInstances), unless the operator filters states already.
        if let SourceConfig::Ec2(ec2) = &mut inventory.source
            && !ec2
                .filters
                .iter()
                .any(|(name, _)| name == "instance-state-name")
        {
            let states = naming
                .states
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            ec2.filters.push(("instance-state-name".to_owned(), states));
        }

        let mut warnings = Vec::new();
        if let Some(aws) = AWS_PRIVATE_DOMAINS
            .iter()
            .filter_map(|d| Name::from_ascii(d).ok())
            .find(|d| zone.apex.zone_of(d))
        {
            warnings.push(format!(
                "zone.apex {} contains AWS's own private DNS names ({aws}, \
                 <region>.compute.internal.): stabledns passes them to the upstream in views \
                 with `recursion` and refuses them in the others, so instances that use it as \
                 their resolver need `recursion = true` in their view (or an apex of your own, \
                 such as `corp.internal.`)",
                zone.apex
            ));
        }
        let tsig_keys = v.tsig_keys(base, &raw.tsig_keys, &mut warnings)?;
        let views = v.views(&raw.views, &tsig_keys, &listen, &mut warnings)?;
        // A public view's NS must have an address it may show, or its zone is broken
        // (named-checkzone and kzonecheck refuse an in-zone NS without one).
        if let Some(public) = views.iter().find(|v| v.is_outside()) {
            for (i, ns) in zone.nameservers.iter().enumerate() {
                let nothing_public = ns.public_addresses.is_empty()
                    && !ns.addresses.iter().any(|ip| crate::zone::is_public(*ip));
                if zone.apex.zone_of(&ns.name) && nothing_public {
                    let raw_ns = &raw.zone.nameservers.get_ref()[i];
                    return Err(v.err(
                        &format!("zone.nameservers[{i}].public_addresses"),
                        raw_ns.name.span(),
                        format!(
                            "view `{}` is public and {} is inside the zone with no public \
                             address: its clients would get an NS they cannot reach; list \
                             the addresses they reach it at in `public_addresses`, or name a \
                             nameserver outside the zone",
                            public.name, ns.name
                        ),
                    ));
                }
            }
        }
        let forwarding = v.forwarding(raw.forwarding.as_ref(), &views, &listen)?;
        let admin = match &raw.admin {
            Some(a) => Some(AdminConfig {
                listen: a.listen.get_ref().trim().parse().map_err(|_| {
                    v.err(
                        "admin.listen",
                        a.listen.span(),
                        format!("`{}` is not an IP:port socket address", a.listen.get_ref()),
                    )
                })?,
            }),
            None => None,
        };
        Ok(Config {
            path: path.to_owned(),
            views,
            forwarding,
            admin,
            tsig_keys,
            warnings,
            server: ServerConfig {
                listen,
                tcp_idle_timeout,
                fast_path: raw.server.fast_path,
                max_tcp_connections: raw.server.max_tcp_connections.max(1),
                max_tcp_connections_per_client: raw.server.max_tcp_connections_per_client.max(1),
                chaos,
            },
            zone,
            inventory,
            naming,
        })
    }
}

/// Carries the file name and text so each check can report a line.
struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn err(&self, key: &str, span: Range<usize>, message: String) -> ConfigError {
        // Defaults carry an empty span at 0; line 1 is as good a pointer as any for them.
        let line = self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            key: key.to_owned(),
            message,
        }
    }

    fn duration(&self, key: &str, value: &toml::Spanned<String>) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(value.get_ref()).map_err(|e| {
            self.err(
                key,
                value.span(),
                format!("`{}` is not a duration like \"30s\": {e}", value.get_ref()),
            )
        })?;
        if d.is_zero() {
            return Err(self.err(key, value.span(), "must be more than zero".into()));
        }
        Ok(d)
    }

    /// A domain name: absolute with a trailing dot, or relative to `origin` when one is given.
    fn name(
        &self,
        key: &str,
        value: &toml::Spanned<String>,
        origin: Option<&Name>,
    ) -> Result<Name, ConfigError> {
        let s = value.get_ref().trim();
        let invalid = |m: String| self.err(key, value.span(), m);
        if s.is_empty() {
            return Err(invalid("must not be empty".into()));
        }
        let name =
            Name::from_ascii(s).map_err(|e| invalid(format!("`{s}` is not a domain name: {e}")))?;
        let name = if name.is_fqdn() {
            name
        } else if let Some(origin) = origin {
            name.append_domain(origin)
                .map_err(|e| invalid(format!("`{s}` is too long inside {origin}: {e}")))?
        } else {
            return Err(invalid(format!(
                "`{s}` must be fully qualified (end with a dot)"
            )));
        };
        Ok(name.to_lowercase())
    }

    /// A name where a trailing dot is optional (TSIG key names: `xfr-key` is `xfr-key.`).
    fn fqdn(&self, key: &str, value: &toml::Spanned<String>) -> Result<Name, ConfigError> {
        self.name(key, value, Some(&Name::root()))
    }

    fn zone(&self, raw: &raw::Zone) -> Result<ZoneConfig, ConfigError> {
        let apex = self.name("zone.apex", &raw.apex, None)?;
        if apex.is_root() {
            return Err(self.err(
                "zone.apex",
                raw.apex.span(),
                "the root zone cannot be served; name a zone such as `internal.`".into(),
            ));
        }
        let mut nameservers = Vec::new();
        for (i, ns) in raw.nameservers.get_ref().iter().enumerate() {
            let key = format!("zone.nameservers[{i}]");
            let name = self.name(&format!("{key}.name"), &ns.name, Some(&apex))?;
            let ips = |field: &str, list: &[toml::Spanned<String>]| {
                list.iter()
                    .enumerate()
                    .map(|(j, a)| {
                        a.get_ref().trim().parse::<IpAddr>().map_err(|_| {
                            self.err(
                                &format!("{key}.{field}[{j}]"),
                                a.span(),
                                format!("`{}` is not an IP address", a.get_ref()),
                            )
                        })
                    })
                    .collect::<Result<Vec<IpAddr>, ConfigError>>()
            };
            let addresses = ips("addresses", &ns.addresses)?;
            let public_addresses = ips("public_addresses", &ns.public_addresses)?;
            // Never a private address to an outside client, not even by configuration.
            if let Some(j) = public_addresses
                .iter()
                .position(|ip| !crate::zone::is_public(*ip))
            {
                return Err(self.err(
                    &format!("{key}.public_addresses[{j}]"),
                    ns.public_addresses[j].span(),
                    format!(
                        "{} is not a public address: outside clients never get a private one",
                        public_addresses[j]
                    ),
                ));
            }
            let in_zone = apex.zone_of(&name);
            if in_zone && addresses.is_empty() {
                return Err(self.err(
                    &format!("{key}.addresses"),
                    ns.name.span(),
                    format!("{name} is inside {apex}, so it needs glue addresses"),
                ));
            }
            let has_addresses = !addresses.is_empty() || !public_addresses.is_empty();
            if !in_zone && has_addresses {
                return Err(self.err(
                    &format!("{key}.addresses"),
                    ns.name.span(),
                    format!("{name} is outside {apex}; its addresses are not ours to serve"),
                ));
            }
            if name == apex {
                return Err(self.err(
                    &format!("{key}.name"),
                    ns.name.span(),
                    "a nameserver cannot be the apex itself".into(),
                ));
            }
            nameservers.push(NameserverConfig {
                name,
                addresses,
                public_addresses,
            });
        }
        let Some(first) = nameservers.first() else {
            return Err(self.err(
                "zone.nameservers",
                raw.nameservers.span(),
                "at least one nameserver is needed for the apex NS record".into(),
            ));
        };
        let primary_ns = match &raw.soa.primary_ns {
            Some(p) => self.name("zone.soa.primary_ns", p, Some(&apex))?,
            None => first.name.clone(),
        };
        let hostmaster = self.name("zone.soa.hostmaster", &raw.soa.hostmaster, Some(&apex))?;
        let mut passthrough: Vec<Name> = AWS_PRIVATE_DOMAINS
            .iter()
            .filter_map(|d| Name::from_ascii(d).ok())
            .collect();
        for (i, p) in raw.passthrough.iter().enumerate() {
            let key = format!("zone.passthrough[{i}]");
            let name = self.name(&key, p, Some(&apex))?;
            if !apex.zone_of(&name) || name == apex {
                return Err(self.err(
                    &key,
                    p.span(),
                    format!("{name} is not a subtree below the apex {apex}"),
                ));
            }
            passthrough.push(name);
        }
        let cap = &raw.max_records_per_rrset;
        let max_records_per_rrset = u16::try_from(*cap.get_ref())
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                self.err(
                    "zone.max_records_per_rrset",
                    cap.span(),
                    "must be from 1 to 1000 (BIND refuses more than 100 by default)".into(),
                )
            })?;
        Ok(ZoneConfig {
            apex,
            max_records_per_rrset,
            record_ttl: raw.record_ttl,
            apex_ttl: raw.apex_ttl,
            primary_ns,
            hostmaster,
            refresh: raw.soa.refresh,
            retry: raw.soa.retry,
            expire: raw.soa.expire,
            minimum: raw.soa.minimum,
            nameservers,
            passthrough,
        })
    }

    fn inventory(&self, base: &Path, raw: &raw::Inventory) -> Result<InventoryConfig, ConfigError> {
        let kind = raw.source.get_ref().as_str();
        // Keys of one source given to another are mistakes worth catching, not ignoring.
        let reject = |key: &str, span: Option<Range<usize>>| match span {
            Some(span) => Err(self.err(
                &format!("inventory.{key}"),
                span,
                format!("`{key}` does not apply to source \"{kind}\""),
            )),
            None => Ok(()),
        };
        let source = match kind {
            "file" => {
                reject("regions", raw.regions.as_ref().map(|v| v.span()))?;
                reject("endpoint_url", raw.endpoint_url.as_ref().map(|v| v.span()))?;
                reject("assume_roles", raw.assume_roles.as_ref().map(|v| v.span()))?;
                reject("own_account", raw.own_account.as_ref().map(|v| v.span()))?;
                reject("filters", raw.filters.as_ref().map(|v| v.span()))?;
                reject("page_size", raw.page_size.as_ref().map(|v| v.span()))?;
                reject("api_timeout", raw.api_timeout.as_ref().map(|v| v.span()))?;
                let Some(p) = &raw.path else {
                    return Err(self.err(
                        "inventory.path",
                        raw.source.span(),
                        "source \"file\" needs `path`, the describe-instances JSON".into(),
                    ));
                };
                if p.get_ref().trim().is_empty() {
                    return Err(self.err("inventory.path", p.span(), "must not be empty".into()));
                }
                let region = match &raw.region {
                    Some(r) => Some(self.region("inventory.region", r)?),
                    None => None,
                };
                SourceConfig::File {
                    path: base.join(p.get_ref()),
                    region,
                }
            }
            "ec2" => {
                reject("path", raw.path.as_ref().map(|v| v.span()))?;
                reject("region", raw.region.as_ref().map(|v| v.span()))?;
                SourceConfig::Ec2(self.ec2(raw)?)
            }
            other => {
                return Err(self.err(
                    "inventory.source",
                    raw.source.span(),
                    format!("unknown source `{other}`; expected \"file\" or \"ec2\""),
                ));
            }
        };
        let fraction = *raw.max_removed_fraction.get_ref();
        if !(0.0..=1.0).contains(&fraction) {
            return Err(self.err(
                "inventory.max_removed_fraction",
                raw.max_removed_fraction.span(),
                format!("{fraction} is not a fraction from 0.0 to 1.0 (1.0 turns the check off)"),
            ));
        }
        let confirm = u32::try_from(*raw.confirm_refreshes.get_ref())
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                self.err(
                    "inventory.confirm_refreshes",
                    raw.confirm_refreshes.span(),
                    "must be from 1 to 1000".into(),
                )
            })?;
        let max_stale = match &raw.max_stale {
            Some(d) => Some(self.duration("inventory.max_stale", d)?),
            None => None,
        };
        let state_file = match &raw.state_file {
            Some(p) if p.get_ref().trim().is_empty() => {
                return Err(self.err("inventory.state_file", p.span(), "must not be empty".into()));
            }
            Some(p) => Some(base.join(p.get_ref())),
            None => None,
        };
        Ok(InventoryConfig {
            source,
            refresh_interval: self.duration("inventory.refresh_interval", &raw.refresh_interval)?,
            max_backoff: self.duration("inventory.max_backoff", &raw.max_backoff)?,
            max_removed_fraction: fraction,
            confirm_refreshes: confirm,
            allow_empty_fleet: raw.allow_empty_fleet,
            max_stale,
            state_file,
        })
    }

    fn region(&self, key: &str, value: &toml::Spanned<String>) -> Result<String, ConfigError> {
        let r = value.get_ref();
        let ok = crate::inventory::region_of_zone(&format!("{r}a")).as_deref() == Some(r.as_str());
        if !ok {
            return Err(self.err(
                key,
                value.span(),
                format!("`{r}` is not an AWS region name like \"eu-west-1\""),
            ));
        }
        Ok(r.clone())
    }

    fn ec2(&self, raw: &raw::Inventory) -> Result<Ec2Config, ConfigError> {
        let mut regions = Vec::new();
        if let Some(list) = &raw.regions {
            for (i, r) in list.get_ref().iter().enumerate() {
                let region = self.region(&format!("inventory.regions[{i}]"), r)?;
                if !regions.contains(&region) {
                    regions.push(region);
                }
            }
        }
        let endpoint_url = match &raw.endpoint_url {
            Some(u) => {
                let url = u.get_ref().trim();
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .filter(|rest| !rest.is_empty());
                if rest.is_none() {
                    return Err(self.err(
                        "inventory.endpoint_url",
                        u.span(),
                        format!("`{url}` is not an http:// or https:// URL"),
                    ));
                }
                Some(url.to_owned())
            }
            None => None,
        };
        let mut assume_roles = Vec::new();
        if let Some(list) = &raw.assume_roles {
            for (i, arn) in list.get_ref().iter().enumerate() {
                let a = arn.get_ref();
                if !(a.starts_with("arn:") && a.contains(":iam::") && a.contains(":role/")) {
                    return Err(self.err(
                        &format!("inventory.assume_roles[{i}]"),
                        arn.span(),
                        format!("`{a}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
                    ));
                }
                assume_roles.push(a.clone());
            }
        }
        let own_account = raw.own_account.as_ref().is_none_or(|b| *b.get_ref());
        if !own_account && assume_roles.is_empty() {
            return Err(self.err(
                "inventory.own_account",
                raw.own_account.as_ref().map_or(0..0, |b| b.span()),
                "with `own_account = false`, `assume_roles` must name at least one role".into(),
            ));
        }
        let mut filters = Vec::new();
        if let Some(list) = &raw.filters {
            for (i, f) in list.get_ref().iter().enumerate() {
                if f.name.get_ref().trim().is_empty() || f.values.is_empty() {
                    return Err(self.err(
                        &format!("inventory.filters[{i}]"),
                        f.name.span(),
                        "a filter needs a `name` and at least one value".into(),
                    ));
                }
                filters.push((f.name.get_ref().clone(), f.values.clone()));
            }
        }
        let page_size = match &raw.page_size {
            Some(p) => i32::try_from(*p.get_ref())
                .ok()
                .filter(|n| (5..=1000).contains(n))
                .ok_or_else(|| {
                    self.err(
                        "inventory.page_size",
                        p.span(),
                        "must be from 5 to 1000 (the API's limits)".into(),
                    )
                })?,
            None => 1000,
        };
        let api_timeout = match &raw.api_timeout {
            Some(d) => self.duration("inventory.api_timeout", d)?,
            None => Duration::from_secs(10),
        };
        Ok(Ec2Config {
            regions,
            endpoint_url,
            assume_roles,
            own_account,
            filters,
            page_size,
            api_timeout,
        })
    }

    /// TSIG keys, their secrets read from files.
    fn tsig_keys(
        &self,
        base: &Path,
        raw: &[raw::TsigKey],
        warnings: &mut Vec<String>,
    ) -> Result<Vec<TsigKeyConfig>, ConfigError> {
        use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
        let mut keys: Vec<TsigKeyConfig> = Vec::new();
        for (i, k) in raw.iter().enumerate() {
            let key = format!("tsig_keys[{i}]");
            let name = self.fqdn(&format!("{key}.name"), &k.name)?;
            if keys.iter().any(|other| other.name == name) {
                return Err(self.err(
                    &format!("{key}.name"),
                    k.name.span(),
                    format!("key {name} is defined twice"),
                ));
            }
            let algorithm = self.choice(
                &format!("{key}.algorithm"),
                &k.algorithm,
                [
                    ("hmac-sha256", TsigAlgorithm::HmacSha256),
                    ("hmac-sha384", TsigAlgorithm::HmacSha384),
                    ("hmac-sha512", TsigAlgorithm::HmacSha512),
                ],
            )?;
            let path = base.join(k.secret_file.get_ref());
            let bad =
                |why: String| self.err(&format!("{key}.secret_file"), k.secret_file.span(), why);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            let secret = data_encoding::BASE64
                .decode(text.trim().as_bytes())
                .map_err(|e| {
                    bad(format!(
                        "{} does not hold a base64 secret: {e}",
                        path.display()
                    ))
                })?;
            if secret.len() < 16 {
                return Err(bad(format!(
                    "the secret in {} is {} bytes; use at least 16 (e.g. `openssl rand -base64 32`)",
                    path.display(),
                    secret.len()
                )));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
                    warnings.push(format!(
                        "{}: the TSIG secret of {name} is world-readable; `chmod 600` it",
                        path.display()
                    ));
                }
            }
            keys.push(TsigKeyConfig {
                name,
                algorithm,
                secret,
            });
        }
        Ok(keys)
    }

    fn views(
        &self,
        raw: &[raw::View],
        tsig_keys: &[TsigKeyConfig],
        listen: &[SocketAddr],
        warnings: &mut Vec<String>,
    ) -> Result<Vec<ViewPolicy>, ConfigError> {
        if raw.is_empty() {
            return Ok(vec![ViewPolicy::inside()]);
        }
        let mut views: Vec<ViewPolicy> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let key = format!("views[{i}]");
            let name = r.name.get_ref().trim();
            if name.is_empty() || views.iter().any(|v| v.name == name) {
                return Err(self.err(
                    &format!("{key}.name"),
                    r.name.span(),
                    format!("view names must be unique and not empty (`{name}`)"),
                ));
            }
            if let Some(prev) = views.iter().find(|v| v.clients.is_empty()) {
                return Err(self.err(
                    &format!("{key}.name"),
                    r.name.span(),
                    format!(
                        "view `{}` has no `clients`, so it matches everyone and `{name}` after it \
                         could never be chosen; put the catch-all view last",
                        prev.name
                    ),
                ));
            }
            let mut clients = Vec::new();
            if let Some(list) = &r.clients {
                if list.is_empty() {
                    return Err(self.err(
                        &format!("{key}.clients"),
                        r.name.span(),
                        "an empty list matches nobody; leave `clients` out to match everyone"
                            .into(),
                    ));
                }
                for (j, c) in list.iter().enumerate() {
                    clients.push(self.cidr(&format!("{key}.clients[{j}]"), c)?);
                }
            }
            let addresses = self.choice(
                &format!("{key}.addresses"),
                &r.addresses,
                [
                    ("private", AddressKind::Private),
                    ("public", AddressKind::Public),
                ],
            )?;
            let single = self.choice(
                &format!("{key}.single"),
                &r.single,
                [
                    ("cname", SingleMode::Cname),
                    ("address", SingleMode::Address),
                ],
            )?;
            let tiers = self.choice(
                &format!("{key}.tiers"),
                &r.tiers,
                [
                    ("addresses", TierMode::Addresses),
                    ("cname", TierMode::Cname),
                ],
            )?;
            let recursion = r.recursion.as_ref().is_some_and(|b| *b.get_ref());
            if recursion && clients.is_empty() {
                return Err(self.err(
                    &format!("{key}.recursion"),
                    r.recursion.as_ref().map_or(0..0, |b| b.span()),
                    format!(
                        "view `{name}` has no `clients`, so it matches everyone: recursion there \
                         would make an open resolver; list the networks that may recurse"
                    ),
                ));
            }
            let chase_cname = r.chase_cname.as_ref().map_or(recursion, |b| *b.get_ref());
            let chase_from = self.choice(
                &format!("{key}.chase_from"),
                &r.chase_from,
                [
                    ("inventory", ChaseFrom::Inventory),
                    ("upstream", ChaseFrom::Upstream),
                ],
            )?;
            if chase_cname && clients.is_empty() {
                return Err(self.err(
                    &format!("{key}.chase_cname"),
                    r.chase_cname.as_ref().map_or(0..0, |b| b.span()),
                    format!(
                        "view `{name}` has no `clients`: chasing CNAMEs for everyone would let \
                         anyone make us query the upstreams"
                    ),
                ));
            }
            let mut reverse = Vec::new();
            for (j, c) in r.reverse.iter().enumerate() {
                let net = self.cidr(&format!("{key}.reverse[{j}]"), c)?;
                let step = if net.addr().is_ipv4() { 8 } else { 4 };
                if net.prefix_len() % step != 0 || net.prefix_len() == 0 {
                    return Err(self.err(
                        &format!("{key}.reverse[{j}]"),
                        c.span(),
                        format!(
                            "{net}: a reverse zone needs a prefix on an octet (IPv4: /8, /16, \
                             /24) or nibble (IPv6: a multiple of 4) boundary"
                        ),
                    ));
                }
                reverse.push(net);
            }
            let mut transfer = Vec::new();
            for (j, c) in r.allow_transfer.iter().enumerate() {
                transfer.push(self.cidr(&format!("{key}.allow_transfer[{j}]"), c)?);
            }
            let mut transfer_keys = Vec::new();
            for (j, k) in r.transfer_keys.iter().enumerate() {
                let jkey = format!("{key}.transfer_keys[{j}]");
                let name = self.fqdn(&jkey, k)?;
                if !tsig_keys.iter().any(|t| t.name == name) {
                    return Err(self.err(
                        &jkey,
                        k.span(),
                        format!("no [[tsig_keys]] entry is named {name}"),
                    ));
                }
                transfer_keys.push(name);
            }
            if !transfer_keys.is_empty() && transfer.is_empty() {
                return Err(self.err(
                    &format!("{key}.transfer_keys"),
                    r.transfer_keys[0].span(),
                    "keys without `allow_transfer` let nobody transfer; list the secondaries' \
                     networks"
                        .into(),
                ));
            }
            let mut notify = Vec::new();
            for (j, n) in r.notify.iter().enumerate() {
                let text = n.get_ref().trim();
                let addr = text
                    .parse::<SocketAddr>()
                    .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        self.err(
                            &format!("{key}.notify[{j}]"),
                            n.span(),
                            format!(
                                "`{text}` is not an address like \"10.0.0.7\" or \"10.0.0.7:53\""
                            ),
                        )
                    })?;
                if !transfer.iter().any(|net| net.contains(&addr.ip())) {
                    warnings.push(format!(
                        "view {name}: NOTIFY goes to {addr}, which `allow_transfer` does not \
                         list: it will be told of changes it may not fetch"
                    ));
                }
                notify.push(addr);
            }
            // BIND and Knot take NOTIFY only from the address they know as their primary.
            let notify_source = match &r.notify_source {
                Some(s) => Some(s.get_ref().trim().parse::<IpAddr>().map_err(|_| {
                    self.err(
                        &format!("{key}.notify_source"),
                        s.span(),
                        format!("`{}` is not an IP address", s.get_ref()),
                    )
                })?),
                None => match listen {
                    [one] if !one.ip().is_unspecified() => Some(one.ip()),
                    _ if notify.is_empty() => None,
                    _ => {
                        return Err(self.err(
                            &format!("{key}.notify"),
                            r.notify[0].span(),
                            format!(
                                "view `{name}` sends NOTIFY, and server.listen is not one \
                                 address, so the source address would be the kernel's choice, \
                                 which BIND and Knot ignore: set `notify_source` to the \
                                 address the secondaries know as their primary"
                            ),
                        ));
                    }
                },
            };
            views.push(ViewPolicy {
                name: name.to_owned(),
                clients,
                addresses,
                single,
                tiers,
                recursion,
                chase_cname,
                chase_from,
                explain: r.explain.unwrap_or(addresses == AddressKind::Private),
                reverse,
                transfer,
                transfer_keys,
                notify,
                notify_source,
                rate_limit: r.rate_limit.unwrap_or(if addresses == AddressKind::Public {
                    DEFAULT_PUBLIC_RATE_LIMIT
                } else {
                    0
                }),
                rate_limit_slip: r.rate_limit_slip,
            });
        }
        Ok(views)
    }

    /// One of a fixed set of words, e.g. `"private"` or `"public"`.
    fn choice<T: Clone, const N: usize>(
        &self,
        key: &str,
        value: &toml::Spanned<String>,
        options: [(&str, T); N],
    ) -> Result<T, ConfigError> {
        let word = value.get_ref().as_str();
        options
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                let expected: Vec<String> = options
                    .iter()
                    .map(|(name, _)| format!("\"{name}\""))
                    .collect();
                self.err(
                    key,
                    value.span(),
                    format!("`{word}`: expected {}", expected.join(" or ")),
                )
            })
    }

    fn cidr(&self, key: &str, value: &toml::Spanned<String>) -> Result<IpNet, ConfigError> {
        let text = value.get_ref().trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                self.err(
                    key,
                    value.span(),
                    format!("`{text}` is not a CIDR like \"10.0.0.0/16\" or an address"),
                )
            })?;
        Ok(net.trunc())
    }

    /// The upstreams, when a view needs them. An upstream that is one of our own sockets would
    /// send every forwarded query back to us until it timed out: refused here.
    fn forwarding(
        &self,
        raw: Option<&raw::Forwarding>,
        views: &[ViewPolicy],
        listen: &[SocketAddr],
    ) -> Result<Option<ForwardConfig>, ConfigError> {
        if !views.iter().any(|v| v.recursion || v.chase_cname) {
            return Ok(None);
        }
        let absent = raw::Forwarding::default();
        let raw = raw.unwrap_or(&absent);
        let list = raw.upstreams.get_ref();
        let upstreams = if list.len() == 1 && list[0].get_ref().trim() == "system" {
            None
        } else {
            let mut addrs = Vec::new();
            for (i, u) in list.iter().enumerate() {
                let key = format!("forwarding.upstreams[{i}]");
                let text = u.get_ref().trim();
                let addr = text
                    .parse::<SocketAddr>()
                    .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        self.err(
                            &key,
                            u.span(),
                            format!(
                                "`{text}` is not an address like \"169.254.169.253\" or \
                                 \"10.0.0.2:53\" (or the single word \"system\")"
                            ),
                        )
                    })?;
                if is_own_socket(listen, &addr) {
                    return Err(self.err(
                        &key,
                        u.span(),
                        format!("{addr} is this server itself: forwarding to it would loop"),
                    ));
                }
                addrs.push(addr);
            }
            // An empty list forwards nothing (the offline demo): names outside our zones are
            // refused and CNAME targets are chased from the inventory only.
            Some(addrs)
        };
        let timeout = self.duration("forwarding.timeout", &raw.timeout)?;
        let chase_timeout = self.duration("forwarding.chase_timeout", &raw.chase_timeout)?;
        if chase_timeout > timeout {
            return Err(self.err(
                "forwarding.chase_timeout",
                raw.chase_timeout.span(),
                format!(
                    "{chase_timeout:?} is longer than forwarding.timeout ({timeout:?}): our own \
                     answers must not wait longer than forwarded ones"
                ),
            ));
        }
        Ok(Some(ForwardConfig {
            upstreams,
            timeout,
            chase_timeout,
            cache_size: raw.cache_size,
            max_in_flight: raw.max_in_flight.max(1),
        }))
    }

    fn naming(&self, raw: &raw::Naming) -> Result<Rules, ConfigError> {
        let mut states = BTreeSet::new();
        for (i, s) in raw.states.get_ref().iter().enumerate() {
            let state: InstanceState = s
                .get_ref()
                .parse()
                .map_err(|e: String| self.err(&format!("naming.states[{i}]"), s.span(), e))?;
            states.insert(state);
        }
        if states.is_empty() {
            return Err(self.err(
                "naming.states",
                raw.states.span(),
                "no state is named, so no instance would get a name".into(),
            ));
        }
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let key = format!("naming.rules[{i}]");
            let only = |field: &str, present: bool, span: Range<usize>| {
                if present {
                    Err(self.err(
                        &format!("{key}.{field}"),
                        span,
                        format!("`{field}` does not apply to kind \"{}\"", r.kind.get_ref()),
                    ))
                } else {
                    Ok(())
                }
            };
            let kind = match r.kind.get_ref().as_str() {
                "tag" => {
                    only(
                        "pattern",
                        r.pattern.is_some(),
                        r.pattern.as_ref().map_or(0..0, |p| p.span()),
                    )?;
                    let tag = match &r.tag {
                        Some(t) if t.get_ref().is_empty() => {
                            return Err(self.err(
                                &format!("{key}.tag"),
                                t.span(),
                                "must not be empty".into(),
                            ));
                        }
                        Some(t) => t.get_ref().clone(),
                        None => "Name".to_owned(),
                    };
                    let separator = match &r.separator {
                        Some(s) if s.get_ref().is_empty() => {
                            return Err(self.err(
                                &format!("{key}.separator"),
                                s.span(),
                                "must not be empty".into(),
                            ));
                        }
                        s => s.as_ref().map(|s| s.get_ref().clone()),
                    };
                    RuleKind::Tag {
                        key: tag,
                        separator,
                    }
                }
                "security_group" => {
                    only(
                        "tag",
                        r.tag.is_some(),
                        r.tag.as_ref().map_or(0..0, |p| p.span()),
                    )?;
                    only(
                        "separator",
                        r.separator.is_some(),
                        r.separator.as_ref().map_or(0..0, |p| p.span()),
                    )?;
                    let Some(p) = &r.pattern else {
                        return Err(self.err(
                            &format!("{key}.pattern"),
                            r.kind.span(),
                            "kind \"security_group\" needs `pattern`, a regex with a `name` capture"
                                .into(),
                        ));
                    };
                    let re = Regex::new(p.get_ref()).map_err(|e| {
                        self.err(
                            &format!("{key}.pattern"),
                            p.span(),
                            format!("bad regex: {e}"),
                        )
                    })?;
                    if !re.capture_names().any(|n| n == Some("name")) {
                        return Err(self.err(
                            &format!("{key}.pattern"),
                            p.span(),
                            "the regex needs a `(?P<name>...)` capture: it is the name".into(),
                        ));
                    }
                    RuleKind::SecurityGroup { pattern: re }
                }
                other => {
                    return Err(self.err(
                        &format!("{key}.kind"),
                        r.kind.span(),
                        format!("unknown kind `{other}`; expected \"tag\" or \"security_group\""),
                    ));
                }
            };
            if r.single && r.slots {
                return Err(self.err(
                    &format!("{key}.slots"),
                    r.kind.span(),
                    "a `single` rule names one instance: it has no tier to number".into(),
                ));
            }
            rules.push(Rule {
                kind,
                single: r.single,
                inside_only: r.inside_only,
                slots: r.slots,
            });
        }
        for (key, tag) in [
            ("naming.srv_tag", &raw.srv_tag),
            ("naming.inside_only_tag", &raw.inside_only_tag),
        ] {
            if tag.get_ref().trim().is_empty() {
                return Err(self.err(key, tag.span(), "must not be empty".into()));
            }
        }
        Ok(Rules {
            states,
            instance_id_names: raw.instance_id_names,
            rules,
            srv_tag: raw.srv_tag.get_ref().clone(),
            inside_only_tag: raw.inside_only_tag.get_ref().clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    fn toml_files() -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(config_dir())
            .expect("config/ exists")
            .map(|e| e.expect("readable entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "config/ holds no .toml file");
        files
    }

    #[test]
    fn every_config_file_loads() {
        for file in toml_files() {
            let config = Config::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(!config.server.listen.is_empty());
        }
    }

    /// Adds `bogus_key = 1` to every table (and array-of-tables entry) of every example and
    /// expects the parse to fail naming that key, so no table silently accepts typos.
    #[test]
    fn unknown_keys_are_rejected_in_every_table() {
        for file in toml_files() {
            let text = std::fs::read_to_string(&file).expect("readable");
            let doc: toml::Table = toml::from_str(&text).expect("valid toml");
            let mut paths = Vec::new();
            collect_tables(
                &toml::Value::Table(doc.clone()),
                &mut Vec::new(),
                &mut paths,
            );
            assert!(
                paths.len() >= 4,
                "{}: expected several tables",
                file.display()
            );
            for path in paths {
                let mut doc = toml::Value::Table(doc.clone());
                insert_at(&mut doc, &path, "bogus_key");
                let text = toml::to_string(&doc).expect("serialisable");
                let err = Config::parse(&file, &text).expect_err(&format!(
                    "{}: unknown key at {path:?} was accepted",
                    file.display()
                ));
                assert!(
                    err.to_string().contains("bogus_key"),
                    "{}: error does not name the key: {err}",
                    file.display()
                );
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Key(String),
        Index(usize),
    }

    fn collect_tables(v: &toml::Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match v {
            toml::Value::Table(t) => {
                out.push(here.clone());
                for (k, v) in t {
                    here.push(Step::Key(k.clone()));
                    collect_tables(v, here, out);
                    here.pop();
                }
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    here.push(Step::Index(i));
                    collect_tables(v, here, out);
                    here.pop();
                }
            }
            _ => {}
        }
    }

    fn insert_at(v: &mut toml::Value, path: &[Step], key: &str) {
        let mut cur = v;
        for step in path {
            cur = match (step, cur) {
                (Step::Key(k), toml::Value::Table(t)) => t.get_mut(k).expect("path exists"),
                (Step::Index(i), toml::Value::Array(a)) => &mut a[*i],
                _ => panic!("path does not fit"),
            };
        }
        match cur {
            toml::Value::Table(t) => {
                t.insert(key.to_owned(), toml::Value::Integer(1));
            }
            _ => panic!("not a table"),
        }
    }

    const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:5353"]

[zone]
apex = "internal."

[zone.soa]
hostmaster = "hostmaster"

[[zone.nameservers]]
name = "ns1"
addresses = ["127.0.0.1"]
public_addresses = ["192.0.2.53"]
[inventory]
source = "file"
path = "x.json"

[[naming.rules]]
kind = "security_group"
pattern = "^SG-T-(?P<name>.+)$"
"#;

    fn invalid(text: &str) -> (usize, String, String) {
        match Config::parse(Path::new("/etc/stabledns.toml"), text) {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_minimal_config_is_valid_and_defaults_apply() {
        let c = Config::parse(Path::new("/etc/stabledns/stabledns.toml"), GOOD).expect("valid");
        assert_eq!(c.zone.apex.to_ascii(), "internal.");
        assert_eq!(c.zone.primary_ns.to_ascii(), "ns1.internal.");
        assert_eq!(c.zone.hostmaster.to_ascii(), "hostmaster.internal.");
        assert_eq!(c.zone.record_ttl, 60);
        assert_eq!(c.inventory.refresh_interval, Duration::from_secs(30));
        assert_eq!(c.server.tcp_idle_timeout, Duration::from_secs(10));
        assert!(c.naming.states.contains(&InstanceState::Running));
        let SourceConfig::File { path, .. } = &c.inventory.source else {
            panic!("file source expected");
        };
        assert_eq!(path, Path::new("/etc/stabledns/x.json"));
    }

    #[test]
    fn the_ec2_example_filters_on_tags_and_named_states() {
        let c = Config::load(&config_dir().join("stabledns.toml")).expect("loads");
        let SourceConfig::Ec2(ec2) = &c.inventory.source else {
            panic!("ec2 source expected");
        };
        assert_eq!(ec2.regions, ["eu-west-1", "eu-central-1"]);
        assert_eq!(
            ec2.filters,
            [
                ("tag:stabledns".to_owned(), vec!["on".to_owned()]),
                ("instance-state-name".to_owned(), vec!["running".to_owned()]),
            ]
        );
        assert_eq!(
            c.inventory.state_file.as_deref(),
            Some(Path::new("/var/lib/stabledns/state.json"))
        );
        assert_eq!(c.inventory.max_stale, Some(Duration::from_secs(600)));
    }

    #[test]
    fn views_are_validated() {
        let with = |views: &str| format!("{GOOD}\n{views}");
        let ok = Config::parse(
            Path::new("x.toml"),
            &with("[[views]]\nname = \"a\"\nclients = [\"10.0.0.1\", \"10.1.2.3/16\"]\n"),
        )
        .expect("valid");
        assert_eq!(ok.views[0].clients[0].to_string(), "10.0.0.1/32");
        assert_eq!(
            ok.views[0].clients[1].to_string(),
            "10.1.0.0/16",
            "host bits are dropped"
        );

        let (line, key, _) = invalid(&with(
            "[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/33\"]\n",
        ));
        assert_eq!((line, key.as_str()), (25, "views[0].clients[0]"));
        let (_, key, msg) = invalid(&with(
            "[[views]]\nname = \"all\"\n[[views]]\nname = \"b\"\nclients = [\"10.0.0.0/8\"]\n",
        ));
        assert_eq!(key, "views[1].name");
        assert!(msg.contains("last"), "{msg}");
        let (_, key, _) = invalid(&with(
            "[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/8\"]\n[[views]]\nname = \"a\"\n",
        ));
        assert_eq!(key, "views[1].name");
        let (_, key, _) = invalid(&with("[[views]]\nname = \"a\"\naddresses = \"secret\"\n"));
        assert_eq!(key, "views[0].addresses");
        let (_, key, _) = invalid(&with("[[views]]\nname = \"a\"\nsingle = \"alias\"\n"));
        assert_eq!(key, "views[0].single");
    }

    #[test]
    fn a_public_view_needs_an_address_it_may_show_for_in_zone_nameservers() {
        let public = "[[views]]\nname = \"out\"\naddresses = \"public\"\n";
        let ok = Config::parse(Path::new("x.toml"), &format!("{GOOD}\n{public}")).expect("valid");
        assert_eq!(
            ok.zone.nameservers[0].public_addresses[0].to_string(),
            "192.0.2.53"
        );
        let bare = GOOD.replace("public_addresses = [\"192.0.2.53\"]\n", "");
        let (_, key, msg) = invalid(&format!("{bare}\n{public}"));
        assert_eq!(key, "zone.nameservers[0].public_addresses");
        assert!(msg.contains("view `out` is public"), "{msg}");
        // Without a public view, private glue alone is fine.
        Config::parse(Path::new("x.toml"), &bare).expect("valid");
        // A "public" address that is private is refused: it would leak to outside clients.
        let (_, key, _) = invalid(&GOOD.replace("192.0.2.53", "10.0.0.53"));
        assert_eq!(key, "zone.nameservers[0].public_addresses[0]");
        // A nameserver outside the zone has no glue of ours, public or not.
        let outside = bare.replace(
            "name = \"ns1\"\naddresses = [\"127.0.0.1\"]",
            "name = \"ns.example.\"",
        );
        Config::parse(Path::new("x.toml"), &format!("{outside}\n{public}")).expect("valid");
    }

    #[test]
    fn aws_own_domains_are_passed_through_and_warned_about() {
        let ok = Config::parse(Path::new("x.toml"), GOOD).expect("valid");
        assert!(
            ok.warnings.iter().any(|w| w.contains("ec2.internal.")),
            "{:?}",
            ok.warnings
        );
        let names: Vec<String> = ok.zone.passthrough.iter().map(Name::to_ascii).collect();
        assert_eq!(names, ["ec2.internal.", "compute.internal."]);
        // An apex of one's own is not a parent of AWS's domains: no warning.
        let own = GOOD.replace("apex = \"internal.\"", "apex = \"corp.internal.\"");
        let ok = Config::parse(Path::new("x.toml"), &own).expect("valid");
        assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
        // Configured subtrees are relative to the apex, and must lie below it.
        let with =
            |p: &str| GOOD.replace("[zone.soa]", &format!("passthrough = [{p}]\n\n[zone.soa]"));
        let ok = Config::parse(Path::new("x.toml"), &with("\"legacy\"")).expect("valid");
        assert_eq!(ok.zone.passthrough[2].to_ascii(), "legacy.internal.");
        let (_, key, _) = invalid(&with("\"example.com.\""));
        assert_eq!(key, "zone.passthrough[0]");
    }

    #[test]
    fn recursion_is_never_open_and_never_loops() {
        let with = |views: &str| format!("{GOOD}\n{views}");
        let inside = "[[views]]\nname = \"in\"\nclients = [\"10.0.0.0/8\"]\nrecursion = true\n";
        let ok = Config::parse(Path::new("x.toml"), &with(inside)).expect("valid");
        assert!(ok.views[0].recursion && ok.views[0].chase_cname);
        assert!(ok.views[0].explain, "private views explain by default");
        let f = ok.forwarding.expect("forwarding defaults");
        assert_eq!(f.upstreams, None, "the system resolver by default");
        assert_eq!(f.timeout, Duration::from_secs(2));

        let (_, key, msg) = invalid(&with("[[views]]\nname = \"everyone\"\nrecursion = true\n"));
        assert_eq!(key, "views[0].recursion");
        assert!(msg.contains("open resolver"), "{msg}");
        let (_, key, _) = invalid(&with(
            "[[views]]\nname = \"everyone\"\nchase_cname = true\n",
        ));
        assert_eq!(key, "views[0].chase_cname");

        let upstream = |u: &str| with(&format!("{inside}[forwarding]\nupstreams = [\"{u}\"]\n"));
        let ok = Config::parse(Path::new("x.toml"), &upstream("169.254.169.253")).expect("valid");
        let f = ok.forwarding.expect("forwarding");
        assert_eq!(
            f.upstreams,
            Some(vec!["169.254.169.253:53".parse().expect("addr")]),
            "port 53 by default"
        );
        for own in ["127.0.0.1:5353", "0.0.0.0:53", "[::]:5353"] {
            let (_, key, msg) = invalid(&upstream(own));
            assert_eq!(key, "forwarding.upstreams[0]");
            assert!(msg.contains("loop"), "{msg}");
        }
        let (_, key, _) = invalid(&upstream("resolver.example"));
        assert_eq!(key, "forwarding.upstreams[0]");
        let mut ok = Config::parse(Path::new("x.toml"), &with(inside)).expect("valid");
        let own = "127.0.0.1:5353".parse().expect("addr");
        assert!(
            ok.set_upstreams(vec![own]).is_err(),
            "--upstream is checked too"
        );

        let (_, key, _) = invalid(&with(
            "[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/8\"]\nreverse = [\"10.0.0.0/12\"]\n",
        ));
        assert_eq!(key, "views[0].reverse[0]");
        let (_, key, _) = invalid(&with("[[views]]\nname = \"a\"\ntiers = \"some\"\n"));
        assert_eq!(key, "views[0].tiers");
        let public = Config::parse(
            Path::new("x.toml"),
            &with("[[views]]\nname = \"out\"\naddresses = \"public\"\n"),
        )
        .expect("valid");
        assert!(
            !public.views[0].explain,
            "public views do not explain by default"
        );
        assert!(
            public.forwarding.is_none(),
            "nothing recurses, nothing forwards"
        );
    }

    #[test]
    fn keys_of_one_source_are_rejected_for_the_other() {
        let (_, key, msg) =
            invalid(&GOOD.replace("path = \"x.json\"", "path = \"x.json\"\npage_size = 100"));
        assert_eq!(key, "inventory.page_size");
        assert!(msg.contains("does not apply to source \"file\""), "{msg}");
        let ec2 = GOOD.replace("source = \"file\"", "source = \"ec2\"");
        let (_, key, _) = invalid(&ec2);
        assert_eq!(key, "inventory.path");
        let ec2 = ec2.replace("path = \"x.json\"", "regions = [\"eu-west\"]");
        let (line, key, _) = invalid(&ec2);
        assert_eq!((line, key.as_str()), (17, "inventory.regions[0]"));
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let (line, key, msg) = invalid(&GOOD.replace("127.0.0.1:5353", "localhost"));
        assert_eq!((line, key.as_str()), (3, "server.listen[0]"));
        assert!(msg.contains("localhost"), "{msg}");

        let (line, key, msg) = invalid(&GOOD.replace("(?P<name>.+)", "(.+)"));
        assert_eq!((line, key.as_str()), (21, "naming.rules[0].pattern"));
        assert!(msg.contains("name"), "{msg}");

        let (line, key, _) = invalid(&GOOD.replace("^SG-T-(?P<name>.+)$", "(?P<name>[a-"));
        assert_eq!((line, key.as_str()), (21, "naming.rules[0].pattern"));

        let (line, key, _) = invalid(&GOOD.replace("source = \"file\"", "source = \"ftp\""));
        assert_eq!((line, key.as_str()), (16, "inventory.source"));

        let (line, key, _) = invalid(&GOOD.replace("addresses = [\"127.0.0.1\"]", ""));
        assert_eq!((line, key.as_str()), (12, "zone.nameservers[0].addresses"));

        let (line, key, _) = invalid(&GOOD.replace("apex = \"internal.\"", "apex = \"internal\""));
        assert_eq!((line, key.as_str()), (6, "zone.apex"));

        let (line, key, _) = invalid(&GOOD.replace(
            "path = \"x.json\"",
            "path = \"x.json\"\nrefresh_interval = \"soon\"",
        ));
        assert_eq!((line, key.as_str()), (18, "inventory.refresh_interval"));

        let (line, key, _) = invalid(&GOOD.replace(
            "[[naming.rules]]",
            "[naming]\nstates = [\"runing\"]\n\n[[naming.rules]]",
        ));
        assert_eq!((line, key.as_str()), (20, "naming.states[0]"));

        let (_, key, _) = invalid(&GOOD.replace("kind = \"security_group\"", "kind = \"tag\""));
        assert_eq!(key, "naming.rules[0].pattern");
    }

    /// Every TOML snippet in the README is valid where it is meant to go (its tables in place
    /// of a minimal config's), so the documentation cannot drift from the parser.
    #[test]
    fn readme_toml_snippets_load() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .expect("README.md");
        // Files the snippets name, beside the README as the parser sees it.
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("xfr.key");
        std::fs::write(&key, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==").expect("key");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let readme_path = dir.path().join("README.md");
        let mut blocks = 0;
        let mut rest = readme.as_str();
        while let Some(start) = rest.find("```toml\n") {
            let body = &rest[start + 8..];
            let end = body.find("```").expect("closed block");
            // Each top-level table of the snippet replaces the minimal config's.
            let mut doc: toml::Table = toml::from_str(GOOD).expect("GOOD parses");
            let snippet: toml::Table = toml::from_str(&body[..end])
                .unwrap_or_else(|e| panic!("README snippet is not TOML: {e}\n{}", &body[..end]));
            doc.extend(snippet);
            let text = toml::to_string(&doc).expect("serialisable");
            if let Err(e) = Config::parse(&readme_path, &text) {
                panic!("README snippet does not load: {e}\n{}", &body[..end]);
            }
            blocks += 1;
            rest = &body[end..];
        }
        assert!(blocks >= 1, "no toml block found in README.md");
    }

    #[test]
    fn parse_errors_name_the_file_key_and_line() {
        let err = Config::parse(
            Path::new("/etc/stabledns.toml"),
            &GOOD.replace("[zone]\n", "[zone]\nrecord_ttl = \"sixty\"\n"),
        )
        .expect_err("wrong type");
        let text = err.to_string();
        assert!(text.contains("/etc/stabledns.toml"), "{text}");
        assert!(text.contains("line 6"), "{text}");
        assert!(text.contains("record_ttl"), "{text}");
    }

    #[test]
    fn transfer_keys_are_read_from_files_and_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stabledns.toml");
        let key_file = dir.path().join("xfr.key");
        std::fs::write(&key_file, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==\n").expect("write");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let with = |view: &str, keys: &str| {
            format!("{GOOD}\n[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/8\"]\n{view}\n{keys}")
        };
        let key = "[[tsig_keys]]\nname = \"xfr-key\"\nsecret_file = \"xfr.key\"\n";
        let ok = Config::parse(
            &path,
            &with(
                "allow_transfer = [\"10.0.0.53\"]\ntransfer_keys = [\"xfr-key\"]\nnotify = [\"10.0.0.53\"]",
                key,
            ),
        )
        .expect("valid");
        assert_eq!(ok.tsig_keys[0].name.to_ascii(), "xfr-key.");
        assert_eq!(ok.tsig_keys[0].secret, b"secret-secret-secret-secret!");
        assert!(
            !format!("{ok:?}").contains("secret-secret"),
            "Debug hides secrets"
        );
        assert_eq!(ok.views[0].notify[0].to_string(), "10.0.0.53:53");
        assert!(
            !ok.warnings.iter().any(|w| w.contains("secret")),
            "{:?}",
            ok.warnings
        );

        let err = |view: &str, keys: &str| match Config::parse(&path, &with(view, keys)) {
            Err(ConfigError::Invalid { key, message, .. }) => (key, message),
            other => panic!("expected an error, got {other:?}"),
        };
        let (k, m) = err(
            "allow_transfer = [\"10.0.0.53\"]\ntransfer_keys = [\"nope\"]",
            key,
        );
        assert_eq!(k, "views[0].transfer_keys[0]", "{m}");
        let (k, _) = err("transfer_keys = [\"xfr-key\"]", key);
        assert_eq!(k, "views[0].transfer_keys");
        let (k, _) = err("notify = [\"not-an-address\"]", "");
        assert_eq!(k, "views[0].notify[0]");
        std::fs::write(&key_file, "not base64!").expect("write");
        let (k, m) = err("", key);
        assert_eq!(k, "tsig_keys[0].secret_file");
        assert!(m.contains("base64"), "{m}");

        // A world-readable secret and a NOTIFY target that may not transfer are warnings.
        std::fs::write(&key_file, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==").expect("write");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let warned =
            Config::parse(&path, &with("notify = [\"10.0.0.9:5300\"]", key)).expect("valid");
        // (The third is the apex `internal.` holding AWS's own domains.)
        assert_eq!(warned.warnings.len(), 3, "{:?}", warned.warnings);
        assert!(warned.warnings.iter().any(|w| w.contains("world-readable")));
    }
}
