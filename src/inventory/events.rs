//! EC2 events: the state-change notifications an EventBridge rule puts on an SQS queue, so the
//! fleet follows launches, stops and terminations within seconds instead of at the next poll.
//!
//! This module reads the queue and turns each message into an [`Event`] (or says why it
//! cannot); what an event changes is the refresh loop's business. An event only says *which*
//! instance to look at again: its state is read back from the EC2 API, so an event that
//! arrives late or twice can make a needless call but never a wrong answer.

use jiff::Timestamp;
use serde_json::Value;

/// One instance the fleet should look at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// EventBridge's event id: the same event delivered twice has the same id.
    pub id: String,
    /// When the change happened (EventBridge's `time`), to tell a late event from a new one.
    pub time: Timestamp,
    /// The account the instance is in (EventBridge always says; moto's copy of it does not).
    pub account: Option<String>,
    /// Its region: which walk describes it.
    pub region: String,
    /// `i-…`
    pub instance: String,
    /// What happened, for logs: the new state, or the Auto Scaling event's kind.
    pub what: String,
}

/// The detail types an event can trigger on; any other well-formed event is ignored.
const STATE_CHANGE: &str = "EC2 Instance State-change Notification";
const AUTO_SCALING: [&str; 6] = [
    "EC2 Instance Launch Successful",
    "EC2 Instance Launch Unsuccessful",
    "EC2 Instance Terminate Successful",
    "EC2 Instance Terminate Unsuccessful",
    "EC2 Instance-launch Lifecycle Action",
    "EC2 Instance-terminate Lifecycle Action",
];

/// Reads one message body: the event as EventBridge puts it on a queue, or wrapped in an SNS
/// notification. `Ok(None)` for a well-formed event stabledns does not act on (another detail
/// type); `Err` says what is wrong with a message that is not an event.
pub fn parse(body: &str) -> Result<Option<Event>, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    // Through SNS, the event is a JSON string in `Message`.
    let value = match (value.get("Type"), value.get("Message")) {
        (Some(Value::String(t)), Some(Value::String(inner))) if t == "Notification" => {
            serde_json::from_str(inner).map_err(|e| format!("SNS Message is not JSON: {e}"))?
        }
        _ => value,
    };
    let text = |key: &str| -> Result<&str, String> {
        value
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no `{key}` string: not an EventBridge event"))
    };
    let kind = text("detail-type")?;
    let detail = value
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or("no `detail` object: not an EventBridge event")?;
    let (instance, what) = if kind == STATE_CHANGE {
        let get = |key: &str| {
            detail
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{kind} without detail.{key}"))
        };
        (get("instance-id")?, get("state")?.to_owned())
    } else if AUTO_SCALING.contains(&kind) {
        let id = detail
            .get("EC2InstanceId")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{kind} without detail.EC2InstanceId"))?;
        (id, kind.to_owned())
    } else {
        return Ok(None);
    };
    let id = text("id")?;
    if id.is_empty() || id.len() > 128 {
        return Err(format!("event id of {} bytes", id.len()));
    }
    let time: Timestamp = text("time")?
        .parse()
        .map_err(|e| format!("`time` is not an RFC 3339 time: {e}"))?;
    let account = match value.get("account") {
        None => None,
        Some(Value::String(a)) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => {
            Some(a.clone())
        }
        Some(other) => return Err(format!("`account` {other} is not 12 digits")),
    };
    let region = text("region")?;
    if region.is_empty()
        || region.len() > 32
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("`region` {region:?} is not a region"));
    }
    if !is_instance_id(instance) {
        return Err(format!("{instance:?} is not an instance id"));
    }
    Ok(Some(Event {
        id: id.to_owned(),
        time,
        account,
        region: region.to_owned(),
        instance: instance.to_owned(),
        what,
    }))
}

/// `i-` and 8 or 17 hexadecimal digits (moto makes 17).
fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(feature = "ec2")]
pub use queue::{Queue, Received};

/// Messages one receive asks for: SQS's maximum. A receive that brings this many says that
/// more are waiting: a burst.
pub const RECEIVE_MAX: usize = 10;

#[cfg(feature = "ec2")]
mod queue {
    use std::time::Duration;

    use aws_config::timeout::TimeoutConfig;
    use aws_config::{Region, SdkConfig};
    use aws_sdk_sqs::config::http::HttpResponse;
    use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

    use super::{Event, parse};
    use crate::inventory::InventoryError;

    /// Messages one receive asks for: SQS's maximum.
    const BATCH: i32 = super::RECEIVE_MAX as i32;

    /// One region's event queue.
    #[derive(Debug, Clone)]
    pub struct Queue {
        /// The region whose events it holds.
        pub region: String,
        /// Its URL.
        pub url: String,
        client: aws_sdk_sqs::Client,
        wait: Duration,
    }

    /// One message: its receipt handle, to delete it, and what it says.
    #[derive(Debug)]
    pub struct Received {
        /// What `DeleteMessageBatch` needs.
        pub handle: String,
        /// The event, `None` for one stabledns does not act on, or why it is not one.
        pub event: Result<Option<Event>, String>,
    }

    impl Queue {
        /// A client for the queue at `url` in `region`; no network traffic yet. `wait` is the
        /// long poll (at most 20 s); `api_timeout` bounds each call beyond it.
        pub async fn new(
            region: &str,
            url: &str,
            endpoint_url: Option<&str>,
            wait: Duration,
            api_timeout: Duration,
        ) -> Self {
            let timeouts = TimeoutConfig::builder()
                .connect_timeout(api_timeout.min(Duration::from_secs(5)))
                .operation_attempt_timeout(api_timeout + wait)
                .build();
            let mut loader = crate::aws::defaults()
                .timeout_config(timeouts)
                .region(Region::new(region.to_owned()));
            if let Some(url) = endpoint_url {
                loader = loader.endpoint_url(url);
            }
            let config: SdkConfig = loader.load().await;
            Self {
                region: region.to_owned(),
                url: url.to_owned(),
                client: aws_sdk_sqs::Client::new(&config),
                wait,
            }
        }

        /// Up to ten messages, waiting up to the long poll for the first.
        pub async fn receive(&self) -> Result<Vec<Received>, InventoryError> {
            let wait = i32::try_from(self.wait.as_secs()).unwrap_or(20);
            let answer = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(BATCH)
                .wait_time_seconds(wait)
                .send()
                .await
                .map_err(|e| self.error("receive messages from", &e))?;
            Ok(answer
                .messages()
                .iter()
                .filter_map(|m| {
                    // A message without a handle cannot be deleted; it is SQS's to resend.
                    let handle = m.receipt_handle()?.to_owned();
                    let event = match m.body() {
                        Some(body) => parse(body),
                        None => Err("an empty message".to_owned()),
                    };
                    Some(Received { handle, event })
                })
                .collect())
        }

        /// Deletes messages by receipt handle, ten per call. A handle SQS no longer knows
        /// (the message came back to another receive meanwhile) is not an error worth more
        /// than a count: the message will be seen, and read back, again.
        pub async fn delete(&self, handles: &[String]) -> Result<usize, InventoryError> {
            let mut failed = 0;
            for chunk in handles.chunks(10) {
                let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(n, h)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(n.to_string())
                            .receipt_handle(h)
                            .build()
                            .ok()
                    })
                    .collect();
                let answer = self
                    .client
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| self.error("delete messages from", &e))?;
                failed += answer.failed().len();
            }
            Ok(failed)
        }

        fn error<E>(&self, op: &'static str, e: &SdkError<E, HttpResponse>) -> InventoryError
        where
            E: ProvideErrorMetadata + std::error::Error + 'static,
        {
            InventoryError::Queue {
                op,
                queue: format!("{} ({})", self.url, self.region),
                message: crate::aws::error_line(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_change(id: &str, instance: &str, state: &str) -> String {
        format!(
            r#"{{"version":"0","id":"{id}","detail-type":"EC2 Instance State-change Notification",
            "source":"aws.ec2","account":"123456789012","time":"2026-12-01T18:00:00Z",
            "region":"eu-west-1","resources":["arn:aws:ec2:eu-west-1:123456789012:instance/{instance}"],
            "detail":{{"instance-id":"{instance}","state":"{state}"}}}}"#
        )
    }

    #[test]
    fn state_changes_auto_scaling_and_sns_wrapped_events_parse() {
        let e = parse(&state_change("e1", "i-0123456789abcdef0", "running"))
            .expect("parses")
            .expect("an event");
        assert_eq!(
            (e.id.as_str(), e.instance.as_str(), e.what.as_str()),
            ("e1", "i-0123456789abcdef0", "running")
        );
        assert_eq!(e.region, "eu-west-1");
        assert_eq!(e.time, "2026-12-01T18:00:00Z".parse().expect("time"));
        let asg = r#"{"id":"e2","detail-type":"EC2 Instance Launch Successful","source":"aws.autoscaling",
            "account":"123456789012","time":"2026-12-01T18:00:01Z","region":"eu-west-1",
            "detail":{"EC2InstanceId":"i-12345678","AutoScalingGroupName":"web"}}"#;
        assert_eq!(
            parse(asg).expect("parses").expect("an event").instance,
            "i-12345678"
        );
        let sns = serde_json::json!({
            "Type": "Notification",
            "Message": state_change("e3", "i-0123456789abcdef0", "stopped"),
        })
        .to_string();
        assert_eq!(
            parse(&sns).expect("parses").expect("an event").what,
            "stopped"
        );
    }

    #[test]
    fn other_events_are_ignored_and_broken_ones_say_why() {
        let other = r#"{"id":"e","detail-type":"EBS Volume Notification","account":"123456789012",
            "time":"2026-12-01T18:00:00Z","region":"eu-west-1","detail":{}}"#;
        assert_eq!(parse(other), Ok(None));
        let broken = [
            ("{", "not JSON"),
            ("[]", "detail-type"),
            (
                r#"{"detail-type":"EC2 Instance State-change Notification"}"#,
                "detail",
            ),
            (&state_change("e", "web1", "running"), "not an instance id"),
            (
                &state_change("e", "i-0123456789abcdef0", "running")
                    .replace("2026-12-01T18:00:00Z", "yesterday"),
                "RFC 3339",
            ),
            (
                &state_change("e", "i-0123456789abcdef0", "running").replace("123456789012", "me"),
                "12 digits",
            ),
            (
                &state_change("e", "i-0123456789abcdef0", "running")
                    .replace("eu-west-1\"", "EU WEST\""),
                "not a region",
            ),
            (
                &state_change("", "i-0123456789abcdef0", "running"),
                "event id",
            ),
        ];
        for (body, why) in broken {
            let e = parse(body).expect_err(body);
            assert!(e.contains(why), "{body}: {e}");
        }
    }
}
