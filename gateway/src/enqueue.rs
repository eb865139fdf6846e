//! Getting a request's messages into SQS: SendMessageBatch in chunks of at
//! most 10 entries, failed entries retried, the whole thing bounded by a
//! deadline so the sender hears 503 before its own timeout.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::future::try_join_all;
use ossbridge_message::QueueMessage;
use ossbridge_runtime::error_chain;

/// SQS accepts at most 10 entries per SendMessageBatch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// Payload cap per SendMessageBatch call. SQS allows 1 MiB, but some
/// SQS-compatible services still cap at the old 256 KiB; one OSS event's
/// message is ~1 KiB, so the lower cap costs nothing.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Attempts for an entry that SQS reports as failed in an accepted batch.
const ENTRY_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("SQS did not accept the messages within {0:?}")]
    Timeout(Duration),
    #[error("SQS request failed: {0}")]
    Unavailable(String),
    #[error("SQS entry still failing after {ENTRY_ATTEMPTS} attempts: {code}")]
    EntryFailed { code: String },
    #[error("SQS rejected a message: {code}: {message}")]
    Rejected { code: String, message: String },
}

impl EnqueueError {
    /// Everything but a message SQS refuses as malformed is worth a retry.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, EnqueueError::Rejected { .. })
    }
}

#[derive(Debug, Clone)]
pub struct Enqueuer {
    client: Client,
    deadline: Duration,
}

impl Enqueuer {
    pub fn new(sdk: &SdkConfig, deadline: Duration) -> Enqueuer {
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
        Enqueuer {
            client: Client::from_conf(config),
            deadline,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Returns only once SQS has accepted every message, or fails.
    pub async fn enqueue(
        &self,
        queue_url: &str,
        messages: &[QueueMessage],
    ) -> Result<(), EnqueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let fifo = queue_url.ends_with(".fifo");
        let entries: Vec<SendMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| entry(i, m, fifo))
            .collect::<Result<_, _>>()?;
        let batches = chunk(entries);
        let send = try_join_all(batches.into_iter().map(|b| self.send_batch(queue_url, b)));
        tokio::time::timeout(self.deadline, send)
            .await
            .map_err(|_| EnqueueError::Timeout(self.deadline))?
            .map(|_| ())
    }

    /// Sends one batch; entries SQS reports as failed are sent again, the
    /// successful ones never are.
    async fn send_batch(
        &self,
        queue_url: &str,
        mut pending: Vec<SendMessageBatchRequestEntry>,
    ) -> Result<(), EnqueueError> {
        let mut attempt = 1;
        loop {
            let output = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| EnqueueError::Unavailable(error_chain(&e)))?;
            let failed = output.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(f) = failed.iter().find(|f| f.sender_fault()) {
                return Err(EnqueueError::Rejected {
                    code: f.code().to_owned(),
                    message: f.message().unwrap_or_default().to_owned(),
                });
            }
            if attempt >= ENTRY_ATTEMPTS {
                return Err(EnqueueError::EntryFailed {
                    code: failed[0].code().to_owned(),
                });
            }
            tracing::warn!(
                event = "sqs_entries_retried",
                failed = failed.len(),
                attempt,
                "SQS failed some batch entries; retrying them"
            );
            pending.retain(|e| failed.iter().any(|f| f.id() == e.id()));
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            attempt += 1;
        }
    }
}

fn entry(
    index: usize,
    message: &QueueMessage,
    fifo: bool,
) -> Result<SendMessageBatchRequestEntry, EnqueueError> {
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(message.to_body());
    if fifo {
        // One group per object keeps each key's events in order while
        // different keys proceed in parallel; the content-derived key makes
        // SQS drop duplicates within its 5-minute window.
        builder = builder
            .message_group_id(fifo_group_id(&message.bucket, &message.key))
            .message_deduplication_id(&message.idempotency_key);
    }
    builder.build().map_err(|e| EnqueueError::Rejected {
        code: "InvalidEntry".into(),
        message: e.to_string(),
    })
}

/// FIFO group ids are limited to 128 characters, object keys are not, so
/// the group is a digest of bucket and key.
fn fifo_group_id(bucket: &str, key: &str) -> String {
    ossbridge_message::idempotency_key(bucket, key, "", "", "")
}

/// Splits entries into SendMessageBatch-sized groups (count and bytes).
fn chunk(entries: Vec<SendMessageBatchRequestEntry>) -> Vec<Vec<SendMessageBatchRequestEntry>> {
    let mut batches = Vec::new();
    let mut current: Vec<SendMessageBatchRequestEntry> = Vec::new();
    let mut bytes = 0;
    for e in entries {
        let size = e.message_body().len();
        if !current.is_empty()
            && (current.len() == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(e);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: usize, size: usize) -> SendMessageBatchRequestEntry {
        SendMessageBatchRequestEntry::builder()
            .id(id.to_string())
            .message_body("x".repeat(size))
            .build()
            .expect("entry")
    }

    #[test]
    fn chunks_by_count_and_bytes() {
        let sizes: Vec<usize> = chunk((0..25).map(|i| e(i, 10)).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let big = MAX_BATCH_BYTES / 2;
        let sizes: Vec<usize> = chunk((0..3).map(|i| e(i, big)).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![2, 1]);
    }
}
