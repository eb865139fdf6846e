//! What a queue message asks for. Two shapes are understood:
//! ossbridge's own contract (`ossbridge_message::QueueMessage`) and Data
//! Transfer Hub's `{"key": ..., "size": ...}`.

use ossbridge_message::{ContractError, Operation, QueueMessage};
use serde::Deserialize;

/// One object to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub op: Operation,
    /// The source bucket the message names; DTH messages name none and
    /// mean the configured one.
    pub bucket: Option<String>,
    pub key: String,
    /// Size as the sender saw it (informational; the source is authoritative).
    pub size: Option<u64>,
    /// Source event time, when the message carries one.
    pub event_time: Option<String>,
}

/// A body that is neither shape. The message is left on the queue so the
/// redrive policy moves it to the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("message body is not an ossbridge or Data Transfer Hub message")]
    Unrecognized,
    #[error(transparent)]
    Contract(#[from] ContractError),
}

#[derive(Deserialize)]
struct DthMessage {
    key: String,
    #[serde(default)]
    size: Option<u64>,
}

/// Decodes one SQS message body.
pub fn decode(body: &str) -> Result<Job, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| DecodeError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
    let object = value.as_object().ok_or(DecodeError::Unrecognized)?;
    if object.contains_key("version") && object.contains_key("op") {
        let m = QueueMessage::from_body(body)?;
        return Ok(Job {
            op: m.op,
            bucket: Some(m.bucket),
            key: m.key,
            size: Some(m.size),
            event_time: Some(m.event_time).filter(|t| !t.is_empty()),
        });
    }
    let dth: DthMessage = serde_json::from_value(value).map_err(|_| DecodeError::Unrecognized)?;
    Ok(Job {
        op: Operation::Copy,
        bucket: None,
        key: dth.key,
        size: dth.size,
        event_time: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_dth_message() {
        let job =
            decode(r#"{"key": "photos/2026/11/20/IMG_0042.jpg", "size": 122539}"#).expect("dth");
        assert_eq!(job.op, Operation::Copy);
        assert_eq!(job.bucket, None);
        assert_eq!(job.key, "photos/2026/11/20/IMG_0042.jpg");
        assert_eq!(job.size, Some(122539));
    }

    #[test]
    fn decodes_the_ossbridge_message() {
        let body = r#"{"key":"a b+c%20.txt","size":3,"version":1,"op":"copy","bucket":"src",
            "region":"cn-hangzhou","eTag":"X","eventName":"ObjectCreated:PutObject",
            "eventTime":"2026-11-20T08:15:42.000Z","idempotencyKey":"k"}"#;
        let job = decode(body).expect("ossbridge");
        assert_eq!(job.bucket.as_deref(), Some("src"));
        // Keys are taken literally: no URL-decoding.
        assert_eq!(job.key, "a b+c%20.txt");
    }

    #[test]
    fn refuses_everything_else() {
        assert!(matches!(
            decode("not json"),
            Err(DecodeError::NotJson { line: 1, .. })
        ));
        assert!(matches!(decode("[1]"), Err(DecodeError::Unrecognized)));
        assert!(matches!(
            decode(r#"{"size": 1}"#),
            Err(DecodeError::Unrecognized)
        ));
        assert!(matches!(
            decode(r#"{"version":1,"op":"copy"}"#),
            Err(DecodeError::Contract(_))
        ));
    }
}
