//! The FIFO rules: which queues are FIFO queues, and the group and
//! deduplication ids ossbridge gives a message on one.
//!
//! One group per object keeps each key's events in order while different
//! keys proceed in parallel. The deduplication id is the message's
//! idempotency key, so SQS drops a repeat of the same event (a webhook
//! retried) within its five-minute window. A deliberate resend (a replay,
//! a redrive from the dead-letter queue, a hand-back) must not be dropped
//! as a repeat, so it gets [`resend_deduplication_id`].

use ossbridge_message::QueueMessage;

use crate::limits::MAX_FIFO_ID_CHARS;

/// Whether a queue URL names a FIFO queue (SQS requires the `.fifo`
/// suffix on their names).
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

/// The `MessageGroupId` of every message about `bucket`/`key`.
///
/// Group ids are limited to 128 characters and OSS keys are not, so the
/// pair is hashed (SHA-256, 64 hex characters). The hash is the one the
/// gateway has always used, so a FIFO queue keeps its groups across an
/// upgrade.
pub fn object_group_id(bucket: &str, key: &str) -> String {
    ossbridge_message::idempotency_key(bucket, key, "", "", "")
}

/// The `MessageDeduplicationId` of a message: its idempotency key (a
/// SHA-256 in hex), which is the same for the same event and differs for
/// two writes of one object.
pub fn deduplication_id(message: &QueueMessage) -> String {
    message.idempotency_key.clone()
}

/// The deduplication id of a deliberate resend of a message whose own id
/// is `original`, for one resend `attempt` (a replay run's id, the receipt
/// handle a redrive received): SQS keeps a new id for five minutes, so
/// sending the message again inside that window is not taken for the
/// original and silently dropped, while the same attempt retried still
/// deduplicates. SHA-256 in hex, 64 characters.
pub fn resend_deduplication_id(original: &str, attempt: &str) -> String {
    ossbridge_message::idempotency_key("resend", original, attempt, "", "")
}

/// Whether SQS accepts `id` as a group or deduplication id: 1 to 128
/// characters, each alphanumeric or ASCII punctuation.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_FIFO_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resend_is_a_new_id_per_attempt_and_stable_within_one() {
        let first = resend_deduplication_id("idem", "run-1");
        assert!(is_valid_id(&first));
        assert_ne!(first, "idem");
        assert_eq!(first, resend_deduplication_id("idem", "run-1"));
        assert_ne!(first, resend_deduplication_id("idem", "run-2"));
    }

    #[test]
    fn only_fifo_urls_are_fifo() {
        assert!(is_fifo("http://127.0.0.1:4566/000000000000/jobs.fifo"));
        assert!(!is_fifo("http://127.0.0.1:4566/000000000000/jobs"));
        assert!(!is_fifo("http://127.0.0.1:4566/000000000000/fifo-jobs"));
    }

    #[test]
    fn one_group_per_object_whatever_the_key_length() {
        let long_key = "k/".repeat(600);
        let group = object_group_id("media", &long_key);
        assert!(is_valid_id(&group), "{group}");
        assert_eq!(group.len(), 64);
        assert_eq!(group, object_group_id("media", &long_key));
        assert_ne!(group, object_group_id("media", "k/"));
        // The pair is length-prefixed: moving a character across the
        // boundary is another object.
        assert_ne!(object_group_id("ab", "c"), object_group_id("a", "bc"));
    }

    #[test]
    fn the_group_id_is_the_one_the_gateway_always_used() {
        // Pinned: FIFO queues in use hold groups under these ids.
        assert_eq!(
            object_group_id("media-prod", "photos/IMG_0042.jpg"),
            ossbridge_message::idempotency_key("media-prod", "photos/IMG_0042.jpg", "", "", "")
        );
    }

    #[test]
    fn the_deduplication_id_is_the_idempotency_key() {
        let key = ossbridge_message::idempotency_key("b", "k", "e", "ObjectCreated:PutObject", "r");
        let body = format!(
            r#"{{"key":"k","size":1,"version":1,"op":"copy","bucket":"b","region":"",
                "eTag":"e","eventName":"ObjectCreated:PutObject","eventTime":"",
                "idempotencyKey":"{key}"}}"#
        );
        let m = QueueMessage::from_body(&body).expect("message");
        assert_eq!(deduplication_id(&m), key);
        assert!(is_valid_id(&deduplication_id(&m)));
    }

    #[test]
    fn ids_sqs_refuses_are_recognised() {
        assert!(is_valid_id("a-b_c.d!~"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"x".repeat(129)));
        assert!(is_valid_id(&"x".repeat(128)));
        assert!(!is_valid_id("with space"));
        assert!(!is_valid_id("ключ"));
    }
}
