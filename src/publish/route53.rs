//! Route 53: list a hosted zone, send change batches. Paced to `requests_per_second`, one
//! change in flight per zone; Throttling and PriorRequestNotComplete back off and retry; an
//! InvalidChangeBatch is bisected until the change Route 53 refuses is alone, and that one is
//! quarantined (reported) while every other change goes through.

use std::time::Duration;

use aws_config::Region;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_route53::config::http::HttpResponse;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    Change as R53Change, ChangeAction, ChangeBatch, HostedZoneLimitType, ResourceRecord,
    ResourceRecordSet, RrType,
};
use hickory_proto::rr::RecordType;
use tracing::warn;

use super::PublishError;
use super::budget::Budget;
use super::plan::{Change, RecordSet};
use super::provider::{Calls, Limits, Provider, ZoneInfo};
use super::settings::PublishConfig;

/// Route 53 answers at most this many record sets a page.
const PAGE: i32 = 300;
/// Tries of one call that Route 53 throttles or finds busy.
const TRIES: u32 = 6;

/// One hosted zone's client.
#[derive(Debug)]
pub struct Zone {
    client: aws_sdk_route53::Client,
    id: String,
    /// The account's pace, shared with every other zone there.
    budget: std::sync::Arc<Budget>,
    /// Calls made, retried and throttled.
    calls: Calls,
    /// `max_changes_per_batch`.
    max_records: usize,
}

impl Zone {
    /// A client for zone `id` with `config`'s account, drawing on `budget`; no network
    /// traffic yet.
    pub async fn new(config: &PublishConfig, id: &str, budget: std::sync::Arc<Budget>) -> Self {
        // Route 53 is global; its API lives in us-east-1. Retries are ours (`send`), paced and
        // counted, not the SDK's on top of them.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .build();
        let mut loader = crate::aws::defaults()
            .region(Region::new("us-east-1"))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled());
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let mut sdk = loader.load().await;
        if let Some(role) = &config.assume_role {
            sdk = crate::aws::assume_role(&sdk, role, "stabledns-publish").await;
        }
        Self {
            client: aws_sdk_route53::Client::new(&sdk),
            id: id.to_owned(),
            budget,
            calls: Calls::default(),
            max_records: config.max_changes_per_batch,
        }
    }

    /// Waits for the next call's turn.
    async fn pace(&mut self) {
        self.budget.take().await;
        self.calls.made += 1;
    }

    fn api_error(&self, message: String) -> PublishError {
        PublishError::Api {
            zone: self.id.clone(),
            message,
        }
    }

    /// The zone's name and privacy.
    async fn zone_info(&mut self) -> Result<ZoneInfo, PublishError> {
        let (client, id) = (self.client.clone(), self.id.clone());
        let out = self
            .call(|| client.get_hosted_zone().id(&id).send())
            .await?
            .map_err(|message| self.api_error(message))?;
        let zone = out
            .hosted_zone()
            .ok_or_else(|| self.api_error("GetHostedZone answered no zone".into()))?;
        let mut name = zone.name().to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        let private = zone.config().is_some_and(|c| c.private_zone());
        let record_limit = self.record_limit().await?;
        Ok(ZoneInfo {
            name,
            private,
            record_limit,
        })
    }

    /// The zone's quota of record sets (GetHostedZoneLimit, MAX_RRSETS_BY_ZONE), read with
    /// every listing. A refusal (no `route53:GetHostedZoneLimit` in the policy) is logged and
    /// the default assumed: the quota warns, it never stops a sync.
    async fn record_limit(&mut self) -> Result<Option<u64>, PublishError> {
        let (client, id) = (self.client.clone(), self.id.clone());
        let limit = self
            .call(|| {
                client
                    .get_hosted_zone_limit()
                    .hosted_zone_id(&id)
                    .r#type(HostedZoneLimitType::MaxRrsetsByZone)
                    .send()
            })
            .await;
        match limit {
            Ok(Ok(out)) => Ok(out.limit().and_then(|l| u64::try_from(l.value()).ok())),
            Ok(Err(message)) => {
                warn!(zone = %self.id, %message, "cannot read the zone's record quota; \
                    assuming Route 53's default");
                Ok(None)
            }
            Err(PublishError::Api { message, .. }) => {
                warn!(zone = %self.id, %message, "cannot read the zone's record quota \
                    (route53:GetHostedZoneLimit); assuming Route 53's default");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// One call, paced, retried while Route 53 throttles, is busy with the zone's previous
    /// change or fails on its side (0.5 s doubling to 30 s, [`TRIES`] tries). `Ok(Err)` is
    /// a request Route 53 refuses as invalid, with its message; `Err` any other failure.
    async fn call<T, E, F, Fut>(&mut self, mut f: F) -> Result<Result<T, String>, PublishError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=TRIES {
            self.pace().await;
            let e = match f().await {
                Ok(out) => return Ok(Ok(out)),
                Err(e) => e,
            };
            let code = e.code().unwrap_or_default().to_owned();
            let busy = matches!(
                code.as_str(),
                "Throttling" | "PriorRequestNotComplete" | "ServiceUnavailable"
            ) || e
                .raw_response()
                .is_some_and(|r| r.status().is_server_error());
            if matches!(code.as_str(), "InvalidChangeBatch" | "InvalidInput") {
                let message = e.message().unwrap_or("refused").to_owned();
                return Ok(Err(message));
            }
            // Route 53 answers InvalidChangeBatch in a shape of its own (`<InvalidChangeBatch>
            // <Messages>…`), which the SDK's generic error parser leaves without a code.
            let body = e.raw_response().and_then(|r| r.body().bytes());
            if let Some(messages) = body.and_then(invalid_change_batch) {
                return Ok(Err(messages));
            }
            if !busy || attempt == TRIES {
                return Err(self.api_error(crate::aws::error_line(&e)));
            }
            self.calls.retried += 1;
            self.calls.throttled += u64::from(code == "Throttling");
            warn!(zone = %self.id, code = %code, attempt, "Route 53 is busy; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
        Err(self.api_error("gave up after retries".into()))
    }

    /// Every record set in the zone. Sets with a routing policy or an alias are listed with
    /// no values: they are never ours, and only their names and types matter.
    async fn list_sets(&mut self) -> Result<Vec<RecordSet>, PublishError> {
        let mut out = Vec::new();
        let mut start: Option<(String, RrType)> = None;
        loop {
            let mut call = (self.client.list_resource_record_sets())
                .hosted_zone_id(&self.id)
                .max_items(PAGE);
            if let Some((name, rtype)) = start.take() {
                call = call.start_record_name(name).start_record_type(rtype);
            }
            let page = self
                .call(|| call.clone().send())
                .await?
                .map_err(|message| self.api_error(message))?;
            out.extend(page.resource_record_sets().iter().filter_map(to_set));
            match (
                page.is_truncated(),
                page.next_record_name(),
                page.next_record_type(),
            ) {
                (true, Some(name), Some(rtype)) => start = Some((name.to_owned(), rtype.clone())),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Each of `keys` that the zone holds: a page of one record set starting at it, kept when
    /// it is that set (Route 53 lists in order, from the start name and type on).
    async fn read_sets(
        &mut self,
        keys: &[(String, RecordType)],
    ) -> Result<Vec<RecordSet>, PublishError> {
        let mut out = Vec::new();
        for (name, rtype) in keys {
            let call = (self.client.list_resource_record_sets())
                .hosted_zone_id(&self.id)
                .start_record_name(name)
                .start_record_type(RrType::from(rtype.to_string().as_str()))
                .max_items(1);
            let page = self
                .call(|| call.clone().send())
                .await?
                .map_err(|message| self.api_error(message))?;
            let first = page.resource_record_sets().first().and_then(to_set);
            out.extend(first.filter(|s| (&s.name, s.rtype) == (name, *rtype)));
        }
        Ok(out)
    }

    /// Sends one batch: `Ok(Err(message))` when Route 53 refuses it as invalid (the caller
    /// bisects), `Err` when it fails otherwise after retries.
    async fn send(&mut self, batch: &[Change]) -> Result<Result<(), String>, PublishError> {
        let changes = batch
            .iter()
            .map(to_sdk)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.api_error(format!("cannot build the change batch: {e}")))?;
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment("stabledns")
            .build()
            .map_err(|e| self.api_error(format!("cannot build the change batch: {e}")))?;
        let (client, id) = (self.client.clone(), self.id.clone());
        self.call(|| {
            client
                .change_resource_record_sets()
                .hosted_zone_id(&id)
                .change_batch(batch.clone())
                .send()
        })
        .await
        .map(|r| r.map(|_| ()))
    }
}

impl Provider for Zone {
    async fn info(&mut self) -> Result<ZoneInfo, PublishError> {
        self.zone_info().await
    }

    async fn list(&mut self) -> Result<Vec<RecordSet>, PublishError> {
        self.list_sets().await
    }

    async fn read(
        &mut self,
        keys: &[(String, RecordType)],
    ) -> Result<Vec<RecordSet>, PublishError> {
        self.read_sets(keys).await
    }

    async fn apply(&mut self, batch: &[Change]) -> Result<Result<(), String>, PublishError> {
        self.send(batch).await
    }

    /// Route 53's own: 1,000 records (an UPSERT counts twice) and 32,000 characters per
    /// ChangeResourceRecordSets call; `max_changes_per_batch` may ask for fewer records.
    fn limits(&self) -> Limits {
        Limits {
            records: self.max_records.min(1_000),
            chars: 32_000,
        }
    }

    fn calls(&self) -> Calls {
        self.calls
    }
}

/// A listed record set as the plan sees it. Sets with a routing policy or an alias get no
/// values: they are never ours, and only their names and types matter.
fn to_set(set: &ResourceRecordSet) -> Option<RecordSet> {
    let rtype = set.r#type().as_str().parse::<RecordType>().ok()?;
    let simple = set.set_identifier().is_none() && set.alias_target().is_none();
    let mut values: Vec<String> = if simple {
        (set.resource_records().iter())
            .map(|r| r.value().to_owned())
            .collect()
    } else {
        Vec::new()
    };
    values.sort();
    Some(RecordSet {
        name: unescape(&set.name().to_ascii_lowercase()),
        rtype,
        ttl: set.ttl().and_then(|t| u32::try_from(t).ok()).unwrap_or(0),
        values,
    })
}

/// The messages of Route 53's `<InvalidChangeBatch>` error document, if `body` is one.
fn invalid_change_batch(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("<InvalidChangeBatch") {
        return None;
    }
    let messages: Vec<&str> = text
        .split("<Message>")
        .skip(1)
        .filter_map(|m| m.split("</Message>").next())
        .collect();
    Some(if messages.is_empty() {
        "InvalidChangeBatch".to_owned()
    } else {
        messages.join("; ")
    })
}

/// Route 53 writes characters outside letters, digits, `-` and `_` in names as `\ooo`.
fn unescape(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = name
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn to_sdk(change: &Change) -> Result<R53Change, aws_sdk_route53::error::BuildError> {
    let action = match change {
        Change::Create(_) => ChangeAction::Create,
        Change::Upsert { .. } => ChangeAction::Upsert,
        Change::Delete(_) => ChangeAction::Delete,
    };
    let set = change.set();
    let records = set
        .values
        .iter()
        .map(|v| ResourceRecord::builder().value(v).build())
        .collect::<Result<Vec<_>, _>>()?;
    let rrset = ResourceRecordSet::builder()
        .name(&set.name)
        .r#type(RrType::from(set.rtype.to_string().as_str()))
        .ttl(i64::from(set.ttl))
        .set_resource_records(Some(records))
        .build()?;
    R53Change::builder()
        .action(action)
        .resource_record_set(rrset)
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn route53s_own_invalid_change_batch_document_is_read() {
        let body = b"<?xml version=\"1.0\"?><InvalidChangeBatch xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Messages><Message>Tried to create resource record set [name='a.internal.', type='A'] but it already exists</Message><Message>two</Message></Messages><RequestId>x</RequestId></InvalidChangeBatch>";
        let got = super::invalid_change_batch(body).expect("recognised");
        assert!(
            got.starts_with("Tried to create") && got.ends_with("; two"),
            "{got}"
        );
        assert_eq!(super::invalid_change_batch(b"<ErrorResponse/>"), None);
    }

    #[test]
    fn names_come_back_unescaped() {
        assert_eq!(super::unescape("\\052.internal."), "*.internal.");
        assert_eq!(super::unescape("db1.internal."), "db1.internal.");
        assert_eq!(super::unescape("a\\05"), "a\\05");
    }
}
