//! What happens to verified events, whoever sent them: normalize → dedup →
//! batcher → remember. The ingest route, the admin replay endpoint and the
//! `replay` command all go through here, so a replayed event becomes
//! exactly the message live traffic would have produced.

use std::time::Duration;

use ossbridge_message::{OssEvent, QueueMessage};

use crate::dedup::Dedup;
use crate::enqueue::{Batcher, EnqueueError};
use crate::normalize::Normalizer;
use crate::telemetry;

/// The parts of a source that turn events into queued messages.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub normalizer: &'a Normalizer,
    pub batcher: &'a Batcher,
    pub dedup: &'a Dedup,
    pub enqueue_timeout: Duration,
}

/// Events normalized and deduplicated, not yet sent.
#[derive(Debug, Default)]
pub struct Prepared {
    pub events: usize,
    /// Idempotency keys of every message normalization produced, before
    /// deduplication (what the archive records).
    pub keys: Vec<String>,
    /// Messages to send (duplicates removed).
    pub messages: Vec<QueueMessage>,
    pub ignored: usize,
    pub filtered: usize,
    pub duplicates: usize,
}

impl Pipeline<'_> {
    /// Normalizes `events` and drops the duplicates.
    pub fn prepare(&self, events: &[OssEvent]) -> Prepared {
        let mut normalized = self.normalizer.normalize(events);
        let keys = normalized
            .messages
            .iter()
            .map(|m| m.idempotency_key.clone())
            .collect();
        let duplicates = self
            .dedup
            .remove_duplicates(self.batcher.queue_url(), &mut normalized.messages);
        telemetry::duplicates_dropped(duplicates);
        for m in &normalized.messages {
            tracing::debug!(event = "event_normalized", key = %m.key, op = ?m.op, idempotency_key = %m.idempotency_key);
        }
        Prepared {
            events: events.len(),
            keys,
            messages: normalized.messages,
            ignored: normalized.ignored,
            filtered: normalized.filtered,
            duplicates,
        }
    }

    /// Sends the prepared messages; resolves once SQS accepted every one
    /// (then they are remembered for deduplication) or with the failure.
    pub async fn send(&self, prepared: &Prepared) -> Result<(), EnqueueError> {
        send(
            self.batcher,
            self.dedup,
            self.enqueue_timeout,
            &prepared.messages,
            None,
        )
        .await
    }
}

/// [`Pipeline::send`] for callers holding owned handles (spawned tasks);
/// `resend` names a replay run (see [`Batcher::send`]).
pub async fn send(
    batcher: &Batcher,
    dedup: &Dedup,
    enqueue_timeout: Duration,
    messages: &[QueueMessage],
    resend: Option<&str>,
) -> Result<(), EnqueueError> {
    tokio::time::timeout(enqueue_timeout, batcher.send(messages, resend))
        .await
        .map_err(|_| EnqueueError::Timeout(enqueue_timeout))??;
    dedup.remember(batcher.queue_url(), messages);
    telemetry::enqueued(messages.iter().map(|m| m.event_time.as_str()));
    Ok(())
}
