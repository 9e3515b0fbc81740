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
use crate::naming::{Rule, RuleKind, Rules, SlotStore};
use crate::view::{AddressKind, ChaseFrom, SingleMode, TierMode, ViewPolicy};
// The settings types belong to the modules that use them; the config only builds them.
pub use crate::dns::forward::ForwardConfig;
pub use crate::inventory::settings::{Ec2Config, EventsConfig, InventoryConfig, SourceConfig};
pub use crate::publish::settings::PublishConfig;
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
    /// `[[publish]]`: Route 53 hosted zones kept in sync with a view.
    pub publish: Vec<PublishConfig>,
    /// `[log]`: the query log and dnstap.
    pub log: crate::dns::querylog::QueryLogConfig,
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

/// `[admin]`: where the listener is and who may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens; loopback unless the operator means otherwise.
    pub listen: SocketAddr,
    /// Who may read `/metrics`, `/healthz` and `/readyz` (`admin.metrics_clients`).
    pub metrics_clients: Vec<IpNet>,
    /// Who may read the pages that show names (`admin.names_clients`): `/`, `/names`,
    /// `/zone`, `/zones`.
    pub names_clients: Vec<IpNet>,
}

impl AdminConfig {
    /// A listener at `listen` that only loopback clients may read.
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            metrics_clients: loopback(),
            names_clients: loopback(),
        }
    }

    /// Whether a client beyond this host may read the names.
    pub fn names_leave_host(&self) -> bool {
        self.names_clients
            .iter()
            .any(|n| !n.network().is_loopback())
    }
}

/// The default of both lists: this host only.
fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// toml's message, with the key's whole path (`inventory.refresh_intervall`, not only its
/// last part) and, for a misspelt key, the one it most likely meant; then toml's own text,
/// which shows the line.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let shown = e.to_string().trim_end().to_owned();
    let table = e
        .span()
        .map(|span| table_at(text, span.start))
        .unwrap_or_default();
    let message = e.message();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return shown;
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return shown;
    };
    let key = if table.is_empty() {
        field.to_owned()
    } else {
        format!("{table}.{field}")
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let guess = known
        .iter()
        .map(|k| (edit_distance(field, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min();
    match guess {
        Some((_, k)) => format!("unknown key `{key}`: did you mean `{k}`?\n{shown}"),
        None => format!("unknown key `{key}`\n{shown}"),
    }
}

/// The table whose body holds byte `at`: the last `[table]` or `[[table]]` header before it.
fn table_at(text: &str, at: usize) -> String {
    let before = text.get(..at).unwrap_or(text);
    before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Levenshtein distance, for suggesting the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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
#[derive(Debug, Clone, PartialEq)]
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
    /// What differs from `self` in `new` that only a restart applies: the sockets and
    /// settings bound at start (`[server]`, `[admin]`, the dnstap collector). A reload keeps
    /// their old values. Whole sections compare, so a key added to one cannot be forgotten.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.server != new.server {
            out.push("[server]");
        }
        if self.admin != new.admin {
            out.push("[admin]");
        }
        if self.log.dnstap != new.log.dnstap {
            out.push("[log] dnstap");
        }
        out
    }

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
            message: toml_message(text, &e),
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
        // Only named states get names, but the others are read too, unless the operator
        // filters states already: a stopped or terminated instance (listed for about an hour)
        // carries the time of its change, which the serial is made from (refresh::serial).
        if let SourceConfig::Ec2(ec2) = &mut inventory.source
            && !ec2
                .filters
                .iter()
                .any(|(name, _)| name == "instance-state-name")
        {
            ec2.keep_states = Some(naming.states.clone());
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
        let publish = v.publish(&raw.publish, &views)?;
        let log = v.log(&raw.log, base)?;
        let admin = match &raw.admin {
            Some(a) => {
                let listen = a.listen.get_ref().trim().parse().map_err(|_| {
                    v.err(
                        "admin.listen",
                        a.listen.span(),
                        format!("`{}` is not an IP:port socket address", a.listen.get_ref()),
                    )
                })?;
                let mut admin = AdminConfig::on(listen);
                if let Some(list) = &a.metrics_clients {
                    admin.metrics_clients = v.cidrs("admin.metrics_clients", list)?;
                }
                if let Some(list) = &a.names_clients {
                    admin.names_clients = v.cidrs("admin.names_clients", list)?;
                }
                Some(admin)
            }
            None => None,
        };
        Ok(Config {
            path: path.to_owned(),
            views,
            publish,
            log,
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

// One file per section, each turning its raw table into the settings type of the module that
// owns it; `raw` is the serde mirror of the file.
mod forwarding;
mod inventory;
mod log;
mod naming;
mod publish;
pub mod raw;
#[cfg(test)]
mod reload_tests;
#[cfg(test)]
mod tests;
mod views;
mod zone;

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

    /// A list of CIDRs, each error naming its place (`admin.names_clients[1]`).
    fn cidrs(&self, key: &str, list: &[toml::Spanned<String>]) -> Result<Vec<IpNet>, ConfigError> {
        (list.iter().enumerate())
            .map(|(i, value)| self.cidr(&format!("{key}[{i}]"), value))
            .collect()
    }
}
