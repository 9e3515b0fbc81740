//! `[[publish]]` of the config file: validated into the publisher's settings.

use super::*;
use crate::publish::settings::{Kind, Policy};

impl Validator<'_> {
    /// A hosted zone id, `/hostedzone/` stripped.
    fn zone_id(&self, key: &str, value: &toml::Spanned<String>) -> Result<String, ConfigError> {
        let id = value.get_ref().trim();
        let id = id.strip_prefix("/hostedzone/").unwrap_or(id);
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(self.err(
                key,
                value.span(),
                format!("`{id}` is not a hosted zone id (such as Z0123456789ABCDEFGHIJ)"),
            ));
        }
        Ok(id.to_owned())
    }

    /// Route 53 zones to keep in sync, each checked against the views.
    pub(super) fn publish(
        &self,
        raw: &[raw::Publish],
        views: &[ViewPolicy],
    ) -> Result<Vec<PublishConfig>, ConfigError> {
        let mut out: Vec<PublishConfig> = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let key = |k: &str| format!("publish[{i}].{k}");
            let kind = self.choice(&key("kind"), &p.kind, [("route53", Kind::Route53)])?;
            let view = p.view.get_ref().clone();
            if !views.iter().any(|v| v.name == view) {
                let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
                return Err(self.err(
                    &key("view"),
                    p.view.span(),
                    format!("no view `{view}`; the views are {}", names.join(", ")),
                ));
            }
            let id = self.zone_id(&key("hosted_zone_id"), &p.hosted_zone_id)?;
            let reverse = match &p.reverse_hosted_zone_id {
                Some(r) => Some(self.zone_id(&key("reverse_hosted_zone_id"), r)?),
                None => None,
            };
            let taken = |z: &str| {
                out.iter().any(|o| {
                    o.hosted_zone_id == z || o.reverse_hosted_zone_id.as_deref() == Some(z)
                })
            };
            if taken(&id) || reverse.as_deref() == Some(id.as_str()) {
                return Err(self.err(
                    &key("hosted_zone_id"),
                    p.hosted_zone_id.span(),
                    format!("zone {id} is published twice: one view per zone"),
                ));
            }
            if let (Some(r), Some(raw)) = (&reverse, &p.reverse_hosted_zone_id)
                && taken(r)
            {
                return Err(self.err(
                    &key("reverse_hosted_zone_id"),
                    raw.span(),
                    format!("zone {r} is published twice: one view per zone"),
                ));
            }
            let owner_id = match &p.owner_id {
                // It goes inside a TXT value, between a `=` and the closing quote.
                Some(o) => {
                    let text = o.get_ref();
                    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
                    if text.is_empty() || text.len() > 64 || !text.bytes().all(ok) {
                        return Err(self.err(
                            &key("owner_id"),
                            o.span(),
                            "1 to 64 letters, digits, `-`, `_` or `.`".into(),
                        ));
                    }
                    text.clone()
                }
                None => "stabledns".to_owned(),
            };
            let policy = match &p.policy {
                Some(word) => self.choice(
                    &key("policy"),
                    word,
                    [
                        ("sync", Policy::Sync),
                        ("upsert-only", Policy::UpsertOnly),
                        ("create-only", Policy::CreateOnly),
                    ],
                )?,
                None => Policy::Sync,
            };
            let max_changes_per_batch = match &p.max_changes_per_batch {
                Some(n) if !(2..=1000).contains(n.get_ref()) => {
                    return Err(self.err(
                        &key("max_changes_per_batch"),
                        n.span(),
                        "from 2 (a record and its ownership TXT) to 1000 (Route 53's limit)".into(),
                    ));
                }
                Some(n) => *n.get_ref() as usize,
                None => 500,
            };
            let requests_per_second = match &p.requests_per_second {
                Some(r)
                    if !(r.get_ref().is_finite() && *r.get_ref() > 0.0 && *r.get_ref() <= 50.0) =>
                {
                    return Err(self.err(
                        &key("requests_per_second"),
                        r.span(),
                        "more than 0 and at most 50".into(),
                    ));
                }
                Some(r) => *r.get_ref(),
                None => 4.0,
            };
            let max_delete_fraction = match &p.max_delete_fraction {
                Some(f) if !(0.0..=1.0).contains(f.get_ref()) => {
                    return Err(self.err(
                        &key("max_delete_fraction"),
                        f.span(),
                        "from 0 to 1".into(),
                    ));
                }
                Some(f) => *f.get_ref(),
                None => 0.5,
            };
            let reconcile_interval = match &p.reconcile_interval {
                Some(d) => self.duration(&key("reconcile_interval"), d)?,
                None => super::super::publish::settings::RECONCILE_INTERVAL,
            };
            out.push(PublishConfig {
                kind,
                view,
                hosted_zone_id: id,
                reverse_hosted_zone_id: reverse,
                owner_id,
                policy,
                max_changes_per_batch,
                requests_per_second,
                max_delete_fraction,
                reconcile_interval,
                assume_role: p.assume_role.as_ref().map(|r| r.get_ref().clone()),
                endpoint_url: p.endpoint_url.as_ref().map(|u| u.get_ref().clone()),
            });
        }
        Ok(out)
    }
}
