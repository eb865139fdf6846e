//! The SQS side of the gateway: the client (timeouts sized to the enqueue
//! deadline), how a queue message becomes a SendMessageBatch entry, and
//! the errors of getting it there.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use ossbridge_message::QueueMessage;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EnqueueError {
    #[error("SQS did not accept the messages within {0:?}")]
    Timeout(Duration),
    #[error("SQS request failed: {0}")]
    Unavailable(String),
    #[error("SQS entry still failing after {attempts} attempts: {code}")]
    EntryFailed { code: String, attempts: u32 },
    #[error("SQS rejected a message: {code}: {message}")]
    Rejected { code: String, message: String },
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

impl EnqueueError {
    /// Everything but a message SQS refuses as malformed is worth a retry.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, EnqueueError::Rejected { .. })
    }
}

/// An SQS client whose own retries fit inside `deadline`.
pub fn client(sdk: &SdkConfig, deadline: Duration) -> Client {
    let attempt = deadline / 2;
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1).min(attempt))
                .operation_attempt_timeout(attempt)
                .operation_timeout(deadline)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_millis(400)),
        )
        .build();
    Client::from_conf(config)
}

/// A message ready for SendMessageBatch (the entry id is assigned per
/// batch).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: String,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
}

impl Prepared {
    pub fn new(message: &QueueMessage, fifo: bool) -> Prepared {
        Prepared {
            body: message.to_body(),
            // One group per object keeps each key's events in order while
            // different keys proceed in parallel; the content-derived key
            // makes SQS drop duplicates within its 5-minute window. Group
            // ids are limited to 128 characters, keys are not: hash them.
            group_id: fifo.then(|| {
                ossbridge_message::idempotency_key(&message.bucket, &message.key, "", "", "")
            }),
            deduplication_id: fifo.then(|| message.idempotency_key.clone()),
        }
    }

    pub fn size(&self) -> usize {
        self.body.len()
    }

    pub fn entry(&self, id: usize) -> Result<SendMessageBatchRequestEntry, EnqueueError> {
        SendMessageBatchRequestEntry::builder()
            .id(id.to_string())
            .message_body(&self.body)
            .set_message_group_id(self.group_id.clone())
            .set_message_deduplication_id(self.deduplication_id.clone())
            .build()
            .map_err(|e| EnqueueError::Rejected {
                code: "InvalidEntry".into(),
                message: e.to_string(),
            })
    }
}

/// Whether a queue URL names a FIFO queue.
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}
