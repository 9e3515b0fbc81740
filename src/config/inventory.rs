//! `[inventory]` of the config file: validated into the settings the `inventory` part of the server uses.

use super::*;

impl Validator<'_> {
    pub(super) fn inventory(
        &self,
        base: &Path,
        raw: &raw::Inventory,
    ) -> Result<InventoryConfig, ConfigError> {
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
                reject(
                    "audit_interval",
                    raw.audit_interval.as_ref().map(|v| v.span()),
                )?;
                reject(
                    "instance_status",
                    raw.instance_status.as_ref().map(|v| v.span()),
                )?;
                reject("events", raw.events.as_ref().map(|v| v.span()))?;
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

    pub(super) fn region(
        &self,
        key: &str,
        value: &toml::Spanned<String>,
    ) -> Result<String, ConfigError> {
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

    pub(super) fn ec2(&self, raw: &raw::Inventory) -> Result<Ec2Config, ConfigError> {
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
            Some(u) => Some(self.url("inventory.endpoint_url", u)?),
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
        let audit_interval = match &raw.audit_interval {
            Some(d) => Some(self.duration("inventory.audit_interval", d)?),
            None => None,
        };
        let events = match &raw.events {
            Some(e) => Some(self.events(e, &regions)?),
            None => None,
        };
        Ok(Ec2Config {
            regions,
            endpoint_url,
            assume_roles,
            own_account,
            filters,
            page_size,
            api_timeout,
            audit_interval,
            instance_status: raw.instance_status.as_ref().is_some_and(|v| *v.get_ref()),
            events,
            keep_states: None,
        })
    }

    /// An http:// or https:// URL.
    fn url(&self, key: &str, u: &toml::Spanned<String>) -> Result<String, ConfigError> {
        let url = u.get_ref().trim();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .filter(|rest| !rest.is_empty());
        if rest.is_none() {
            return Err(self.err(
                key,
                u.span(),
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        Ok(url.to_owned())
    }

    /// `[inventory.events]`: every queue in a region the inventory walks.
    fn events(
        &self,
        raw: &toml::Spanned<raw::Events>,
        regions: &[String],
    ) -> Result<EventsConfig, ConfigError> {
        let e = raw.get_ref();
        if e.queues.get_ref().is_empty() {
            return Err(self.err(
                "inventory.events.queues",
                e.queues.span(),
                "name at least one queue: region = \"https://sqs.REGION.amazonaws.com/ACCOUNT/NAME\""
                    .into(),
            ));
        }
        let mut queues = Vec::new();
        for (region, url) in e.queues.get_ref() {
            let key = format!("inventory.events.queues.{region}");
            let r = self.region(&key, &toml::Spanned::new(url.span(), region.clone()))?;
            if !regions.is_empty() && !regions.contains(&r) {
                return Err(self.err(
                    &key,
                    url.span(),
                    format!(
                        "the inventory does not walk {r} (inventory.regions: {}); its events \
                         would name instances it never reads",
                        regions.join(", ")
                    ),
                ));
            }
            queues.push((r, self.url(&key, url)?));
        }
        let wait = match &e.wait {
            Some(w) => {
                let d = self.duration("inventory.events.wait", w)?;
                if !(Duration::from_secs(1)..=Duration::from_secs(20)).contains(&d) {
                    return Err(self.err(
                        "inventory.events.wait",
                        w.span(),
                        "SQS long-polls from 1 to 20 seconds".into(),
                    ));
                }
                d
            }
            None => Duration::from_secs(20),
        };
        let coalesce = match &e.coalesce {
            Some(c) => {
                // "0s" applies every receive on its own.
                let d = match c.get_ref().trim() {
                    "0" | "0s" => Duration::ZERO,
                    _ => self.duration("inventory.events.coalesce", c)?,
                };
                if d > Duration::from_secs(10) {
                    return Err(self.err(
                        "inventory.events.coalesce",
                        c.span(),
                        "at most 10 seconds: every event in a burst waits up to this long".into(),
                    ));
                }
                d
            }
            None => crate::inventory::settings::EVENTS_COALESCE,
        };
        Ok(EventsConfig {
            coalesce,
            queues,
            endpoint_url: match &e.endpoint_url {
                Some(u) => Some(self.url("inventory.events.endpoint_url", u)?),
                None => None,
            },
            wait,
        })
    }
}
