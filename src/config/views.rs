//! `[[views]]` and `[[tsig_keys]]` of the config file: validated into the views' policies and
//! the TSIG keys.

use super::*;

impl Validator<'_> {
    /// TSIG keys, their secrets read from files.
    pub(super) fn tsig_keys(
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

    pub(super) fn views(
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
}
