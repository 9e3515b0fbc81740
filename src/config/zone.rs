//! `[zone]` of the config file: validated into the settings the `zone` part of the server uses.

use super::*;

impl Validator<'_> {
    pub(super) fn zone(&self, raw: &raw::Zone) -> Result<ZoneConfig, ConfigError> {
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
}
