//! `[log]` of the config file: validated into the query log's settings.

use super::*;
use crate::dns::querylog::{DnstapConfig, Identity, Queries, QueryLogConfig};

/// The longest unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

impl Validator<'_> {
    pub(super) fn log(&self, raw: &raw::Log, base: &Path) -> Result<QueryLogConfig, ConfigError> {
        let queries = match &raw.queries {
            Some(q) => self.choice(
                "log.queries",
                q,
                [
                    ("off", Queries::Off),
                    ("all", Queries::All),
                    ("errors", Queries::Errors),
                ],
            )?,
            None => Queries::Off,
        };
        let sample = match &raw.sample {
            Some(n) => u32::try_from(*n.get_ref())
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    self.err(
                        "log.sample",
                        n.span(),
                        format!(
                            "{}: expected a whole number from 1 (every answer) up",
                            n.get_ref()
                        ),
                    )
                })?,
            None => 1,
        };
        let dnstap = match &raw.dnstap_socket {
            Some(p) => {
                let socket = base.join(p.get_ref().trim());
                if p.get_ref().trim().is_empty() || socket.as_os_str().len() > MAX_SOCKET_PATH {
                    return Err(self.err(
                        "log.dnstap_socket",
                        p.span(),
                        format!(
                            "`{}` is not a unix socket path of 1 to {MAX_SOCKET_PATH} bytes",
                            socket.display()
                        ),
                    ));
                }
                let text = |v: &Option<toml::Spanned<String>>, default: fn() -> String| {
                    v.as_ref().map_or_else(default, |s| s.get_ref().clone())
                };
                Some(DnstapConfig {
                    socket,
                    identity: Identity {
                        identity: text(&raw.dnstap_identity, host_name),
                        version: text(&raw.dnstap_version, || {
                            format!("stabledns {}", env!("CARGO_PKG_VERSION"))
                        }),
                    },
                })
            }
            None => {
                for (key, v) in [
                    ("log.dnstap_identity", &raw.dnstap_identity),
                    ("log.dnstap_version", &raw.dnstap_version),
                ] {
                    if let Some(v) = v {
                        return Err(self.err(
                            key,
                            v.span(),
                            "set without `log.dnstap_socket`: nothing would carry it".into(),
                        ));
                    }
                }
                None
            }
        };
        Ok(QueryLogConfig {
            queries,
            sample,
            dnstap,
        })
    }
}

/// The kernel's host name, as NSD and Knot default their dnstap identity.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "stabledns".to_owned())
}
