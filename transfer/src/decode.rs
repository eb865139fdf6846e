//! What a queue message asks for. Understood shapes:
//!
//! - ossbridge's contract (`ossbridge_message::QueueMessage`);
//! - Data Transfer Hub's `{"key": ..., "size": ...}`;
//! - S3 event notifications (`{"Records": [...]}`), directly, wrapped by
//!   SNS (`{"Type": "Notification", "Message": "..."}`) or by EventBridge
//!   (`{"detail-type": ..., "detail": {...}}`); their keys are URL-encoded
//!   with `+` for space and are decoded here; `s3:TestEvent` is dropped;
//! - a raw OSS event notification (`{"events": [...]}`), keys taken as-is.
//!
//! Anything else is an error: the message stays on the queue and the
//! redrive policy moves it to the dead-letter queue.

use ossbridge_message::{
    ContractError, EventAction, Operation, OssNotification, QueueMessage, classify,
};
use serde_json::Value;

/// One object to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub op: Operation,
    /// The source bucket the message names; DTH messages name none and
    /// mean the configured one.
    pub bucket: Option<String>,
    pub key: String,
    /// Size as the sender saw it (informational; the source decides).
    pub size: Option<u64>,
    /// When the change happened at the source, if the message says.
    pub event_time: Option<String>,
    /// The event wrote a new object (`creates_object`).
    pub new_object: bool,
    /// Which shape the message had, for logs and metrics.
    pub shape: Shape,
}

impl Job {
    /// What the copy engine may use to pick its path.
    pub fn hint(&self) -> crate::copy::Hint {
        crate::copy::Hint {
            size: self.size,
            new_object: self.new_object,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Ossbridge,
    DataTransferHub,
    S3Notification,
    OssEvent,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Ossbridge => "ossbridge",
            Shape::DataTransferHub => "dth",
            Shape::S3Notification => "s3_notification",
            Shape::OssEvent => "oss_event",
        }
    }
}

/// What a message amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Jobs(Vec<Job>),
    /// Nothing to do (an `s3:TestEvent`, events that change nothing): the
    /// message is deleted.
    Nothing(&'static str),
}

/// A body that is none of the shapes.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("message body is not a message this worker understands")]
    Unrecognized,
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Contract(#[from] ContractError),
}

/// Decodes one SQS message body.
pub fn decode(body: &str) -> Result<Decoded, DecodeError> {
    let value: Value = serde_json::from_str(body).map_err(|e| DecodeError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    decode_value(body, &value, 0)
}

fn decode_value(body: &str, value: &Value, depth: u8) -> Result<Decoded, DecodeError> {
    let object = value.as_object().ok_or(DecodeError::Unrecognized)?;
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Decoded::Nothing("s3:TestEvent"));
    }
    // SNS envelope: the notification is a JSON string in Message.
    if object.get("Type").and_then(Value::as_str) == Some("Notification") && depth < 2 {
        let inner = object
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| DecodeError::Malformed("SNS notification without Message".into()))?;
        let parsed: Value = serde_json::from_str(inner)
            .map_err(|_| DecodeError::Malformed("SNS Message is not JSON".into()))?;
        return decode_value(inner, &parsed, depth + 1);
    }
    if object.contains_key("detail-type") && object.contains_key("detail") && depth < 2 {
        return eventbridge(object);
    }
    if let Some(records) = object.get("Records") {
        return s3_records(records);
    }
    if object.contains_key("events") {
        return oss_events(value);
    }
    if object.contains_key("version") && object.contains_key("op") {
        let m = QueueMessage::from_body(body)?;
        return Ok(Decoded::Jobs(vec![Job {
            op: m.op,
            bucket: Some(m.bucket),
            key: m.key,
            size: Some(m.size),
            new_object: creates_object(&m.event_name),
            event_time: Some(m.event_time).filter(|t| !t.is_empty()),
            shape: Shape::Ossbridge,
        }]));
    }
    match object.get("key").and_then(Value::as_str) {
        Some(key) if !key.is_empty() => Ok(Decoded::Jobs(vec![Job {
            op: Operation::Copy,
            bucket: None,
            key: key.to_owned(),
            size: object.get("size").and_then(Value::as_u64),
            event_time: None,
            // A DTH message names no event; most are new objects (the
            // tutorial's OSS trigger), and one that exists costs a refused
            // PUT and a HEAD, never an overwrite.
            new_object: true,
            shape: Shape::DataTransferHub,
        }])),
        _ => Err(DecodeError::Unrecognized),
    }
}

/// S3 notification keys are URL-encoded with `+` for space.
pub fn decode_s3_key(key: &str) -> Result<String, DecodeError> {
    let plus_decoded = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| DecodeError::Malformed(format!("S3 key {key:?} does not decode to UTF-8")))
}

/// Whether an event wrote a new object with a PUT or POST (OSS's
/// `ObjectCreated:PutObject`/`PostObject`, S3's `ObjectCreated:Put`/`Post`),
/// as opposed to a copy (which may be in place, a metadata change), an
/// append, a multipart completion or a metadata rewrite.
fn creates_object(event_name: &str) -> bool {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    matches!(
        name,
        "ObjectCreated:PutObject"
            | "ObjectCreated:PostObject"
            | "ObjectCreated:Put"
            | "ObjectCreated:Post"
    ) || name == crate::sync::EVENT_NAME_MISSING
}

fn s3_op(event_name: &str) -> Option<Operation> {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    if name.starts_with("ObjectCreated:") {
        Some(Operation::Copy)
    } else if name.starts_with("ObjectRemoved:") {
        Some(Operation::Delete)
    } else {
        None
    }
}

fn s3_records(records: &Value) -> Result<Decoded, DecodeError> {
    let records = records
        .as_array()
        .ok_or_else(|| DecodeError::Malformed("Records is not a list".into()))?;
    let mut jobs = Vec::new();
    for record in records {
        let Some(op) = record
            .get("eventName")
            .and_then(Value::as_str)
            .and_then(s3_op)
        else {
            continue;
        };
        let s3 = &record["s3"];
        let key = s3["object"]["key"]
            .as_str()
            .ok_or_else(|| DecodeError::Malformed("S3 record without s3.object.key".into()))?;
        jobs.push(Job {
            op,
            bucket: s3["bucket"]["name"].as_str().map(str::to_owned),
            key: decode_s3_key(key)?,
            size: s3["object"]["size"].as_u64(),
            event_time: record["eventTime"].as_str().map(str::to_owned),
            new_object: record["eventName"].as_str().is_some_and(creates_object),
            shape: Shape::S3Notification,
        });
    }
    Ok(if jobs.is_empty() {
        Decoded::Nothing("no object-level S3 records")
    } else {
        Decoded::Jobs(jobs)
    })
}

fn eventbridge(object: &serde_json::Map<String, Value>) -> Result<Decoded, DecodeError> {
    let detail = &object["detail"];
    // A notification forwarded whole as the event's detail.
    if detail.get("Records").is_some() {
        return s3_records(&detail["Records"]);
    }
    let op = match object["detail-type"].as_str() {
        Some("Object Created") => Operation::Copy,
        Some("Object Deleted") => Operation::Delete,
        _ => return Ok(Decoded::Nothing("EventBridge event that changes nothing")),
    };
    let key = detail["object"]["key"].as_str().ok_or_else(|| {
        DecodeError::Malformed("EventBridge event without detail.object.key".into())
    })?;
    Ok(Decoded::Jobs(vec![Job {
        op,
        bucket: detail["bucket"]["name"].as_str().map(str::to_owned),
        key: decode_s3_key(key)?,
        size: detail["object"]["size"].as_u64(),
        new_object: matches!(detail["reason"].as_str(), Some("PutObject" | "POST Object")),
        event_time: object
            .get("time")
            .and_then(Value::as_str)
            .map(str::to_owned),
        shape: Shape::S3Notification,
    }]))
}

fn oss_events(value: &Value) -> Result<Decoded, DecodeError> {
    let notification: OssNotification = serde_json::from_value(value.clone())
        .map_err(|e| DecodeError::Malformed(format!("not an OSS event notification: {e}")))?;
    let jobs: Vec<Job> = notification
        .events
        .into_iter()
        .filter_map(|e| {
            let op = match classify(&e.event_name) {
                EventAction::Copy => Operation::Copy,
                EventAction::Delete => Operation::Delete,
                EventAction::Ignore => return None,
            };
            Some(Job {
                op,
                bucket: Some(e.oss.bucket.name),
                key: e.oss.object.key,
                size: Some(e.oss.object.size),
                new_object: creates_object(&e.event_name),
                event_time: Some(e.event_time).filter(|t| !t.is_empty()),
                shape: Shape::OssEvent,
            })
        })
        .collect();
    Ok(if jobs.is_empty() {
        Decoded::Nothing("OSS events that change nothing")
    } else {
        Decoded::Jobs(jobs)
    })
}

#[cfg(test)]
mod tests;
