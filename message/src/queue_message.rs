//! The queue message: what the gateway puts on SQS and the transfer
//! service takes off it. See `docs/queue-message.md`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::oss_event::{EventAction, OssEvent};

/// The contract version this crate writes. Readers accept any message whose
/// `version` is at most this; new optional fields do not bump it.
pub const CONTRACT_VERSION: u32 = 1;

/// What the transfer service must do with the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Copy,
    Delete,
}

/// One object-level job.
///
/// A strict superset of Data Transfer Hub's `{"key": ..., "size": ...}`, so
/// a DTH worker fleet can consume ossbridge's copy messages unchanged. No
/// field is named `eventSource`: DTH treats any body containing
/// `"eventSource":` as an S3 notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueMessage {
    /// The raw object key in the source bucket (never URL-encoded).
    pub key: String,
    /// Object size in bytes as the event reported it (0 for deletes).
    pub size: u64,
    /// Contract version, [`CONTRACT_VERSION`] when written by this crate.
    pub version: u32,
    pub op: Operation,
    /// Source bucket name.
    pub bucket: String,
    /// Source region, for example `cn-hangzhou`.
    pub region: String,
    /// The source object's ETag as the event reported it (upper-case hex
    /// from OSS; empty for deletes).
    #[serde(rename = "eTag")]
    pub e_tag: String,
    /// The OSS event name without the `oss:` prefix.
    pub event_name: String,
    /// When the event happened at the source (ISO-8601).
    pub event_time: String,
    /// OSS request id of the operation that caused the event.
    #[serde(default)]
    pub request_id: String,
    /// The gateway source (configuration id) that accepted the event.
    #[serde(default)]
    pub source_id: String,
    /// Derived from the event's content, see [`idempotency_key`]; the same
    /// event delivered twice yields the same key.
    pub idempotency_key: String,
}

/// A body that is not a queue message of a version this build understands.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("not a queue message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("queue message version {found} is newer than supported version {CONTRACT_VERSION}")]
    UnsupportedVersion { found: u32 },
}

impl QueueMessage {
    /// Builds the message for one OSS event. Returns `None` for events that
    /// change nothing at the destination.
    pub fn from_oss_event(event: &OssEvent, source_id: &str) -> Option<QueueMessage> {
        let op = match event.action() {
            EventAction::Copy => Operation::Copy,
            EventAction::Delete => Operation::Delete,
            EventAction::Ignore => return None,
        };
        let object = &event.oss.object;
        let bucket = &event.oss.bucket.name;
        let request_id = &event.response_elements.request_id;
        let event_name = event.name();
        Some(QueueMessage {
            key: object.key.clone(),
            size: object.size,
            version: CONTRACT_VERSION,
            op,
            bucket: bucket.clone(),
            region: event.region.clone(),
            e_tag: object.e_tag.clone(),
            event_name: event_name.to_owned(),
            event_time: event.event_time.clone(),
            request_id: request_id.clone(),
            source_id: source_id.to_owned(),
            idempotency_key: idempotency_key(
                bucket,
                &object.key,
                &object.e_tag,
                event_name,
                request_id,
            ),
        })
    }

    /// Serializes to the SQS message body.
    ///
    /// Two substrings are escaped inside string values (`\u` escapes decode
    /// to the same text in any JSON parser): `"s3:TestEvent"`, which makes a
    /// DTH worker delete the message unread, and the non-characters U+FFFE
    /// and U+FFFF, which SQS refuses in a message body.
    pub fn to_body(&self) -> String {
        let json = match serde_json::to_string(self) {
            Ok(json) => json,
            // Serializing plain strings and integers cannot fail.
            Err(e) => unreachable!("queue message serialization failed: {e}"),
        };
        escape_for_consumers(json)
    }

    /// Parses a body written by [`QueueMessage::to_body`] (any version up to
    /// [`CONTRACT_VERSION`]).
    pub fn from_body(body: &str) -> Result<QueueMessage, ContractError> {
        let message: QueueMessage = serde_json::from_str(body)?;
        if message.version > CONTRACT_VERSION {
            return Err(ContractError::UnsupportedVersion {
                found: message.version,
            });
        }
        Ok(message)
    }
}

fn escape_for_consumers(json: String) -> String {
    let needs = json.contains("\"s3:TestEvent\"") || json.contains(['\u{FFFE}', '\u{FFFF}']);
    if !needs {
        return json;
    }
    json.replace("\"s3:TestEvent\"", "\"s3:TestEven\\u0074\"")
        .replace('\u{FFFE}', "\\ufffe")
        .replace('\u{FFFF}', "\\uffff")
}

/// The idempotency key of an event: SHA-256 (hex) over the bucket, key,
/// eTag, event name and OSS request id, each length-prefixed so that no two
/// different tuples can produce the same input.
///
/// Retries of one delivery (MNS, EventBridge, a replay) carry the same
/// fields and so the same key; two different writes of one object differ
/// in request id and usually in eTag.
pub fn idempotency_key(
    bucket: &str,
    key: &str,
    e_tag: &str,
    event_name: &str,
    request_id: &str,
) -> String {
    let mut hasher = Sha256::new();
    for part in [bucket, key, e_tag, event_name, request_id] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oss_event::OssNotification;

    fn put_event(key: &str) -> OssEvent {
        let body = serde_json::json!({"events": [{
            "eventName": "ObjectCreated:PutObject",
            "eventSource": "acs:oss",
            "eventTime": "2026-11-20T08:15:42.000Z",
            "oss": {"bucket": {"name": "media-prod"},
                    "object": {"key": key, "size": 5, "eTag": "5D41402ABC4B2A76B9719D911017C592"}},
            "region": "cn-hangzhou",
            "responseElements": {"requestId": "REQ1"}
        }]});
        let n: OssNotification = serde_json::from_value(body).expect("event");
        n.events.into_iter().next().expect("one event")
    }

    #[test]
    fn body_is_a_superset_of_the_dth_message_without_event_source() {
        let m = QueueMessage::from_oss_event(&put_event("a/b.txt"), "src").expect("copy");
        let body = m.to_body();
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["key"], "a/b.txt");
        assert_eq!(v["size"], 5);
        assert_eq!(v["op"], "copy");
        assert_eq!(v["version"], 1);
        assert!(!body.contains("eventSource"));
        assert_eq!(QueueMessage::from_body(&body).expect("round trip"), m);
    }

    #[test]
    fn keys_that_would_confuse_dth_or_sqs_are_escaped_but_round_trip() {
        for key in ["s3:TestEvent", "x\u{FFFF}y\u{FFFE}", "\"eventSource\":"] {
            let m = QueueMessage::from_oss_event(&put_event(key), "src").expect("copy");
            let body = m.to_body();
            assert!(!body.contains("\"s3:TestEvent\""), "{body}");
            assert!(!body.contains("\"eventSource\":"), "{body}");
            assert!(!body.contains(['\u{FFFE}', '\u{FFFF}']));
            assert_eq!(QueueMessage::from_body(&body).expect("parses").key, key);
        }
    }

    #[test]
    fn idempotency_key_depends_on_every_field_and_on_boundaries() {
        let base = idempotency_key("b", "k", "e", "n", "r");
        assert_eq!(base, idempotency_key("b", "k", "e", "n", "r"));
        assert_eq!(base.len(), 64);
        for other in [
            idempotency_key("B", "k", "e", "n", "r"),
            idempotency_key("b", "K", "e", "n", "r"),
            idempotency_key("b", "k", "E", "n", "r"),
            idempotency_key("b", "k", "e", "N", "r"),
            idempotency_key("b", "k", "e", "n", "R"),
            idempotency_key("bk", "", "e", "n", "r"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn ignored_events_produce_no_message() {
        let mut e = put_event("k");
        e.event_name = "ObjectCreated:UploadPart".into();
        assert!(QueueMessage::from_oss_event(&e, "src").is_none());
    }

    #[test]
    fn newer_versions_are_refused() {
        let m = QueueMessage::from_oss_event(&put_event("k"), "src").expect("copy");
        let body = m.to_body().replace("\"version\":1", "\"version\":2");
        assert!(matches!(
            QueueMessage::from_body(&body),
            Err(ContractError::UnsupportedVersion { found: 2 })
        ));
    }
}
