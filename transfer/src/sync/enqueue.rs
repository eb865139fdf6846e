//! `sync --enqueue`: copy jobs go to the SQS queue as ossbridge queue
//! messages (the contract the gateway writes, `docs/queue-message.md`), for
//! a worker fleet to copy. SendMessageBatch, 10 entries per call; entries
//! SQS fails inside an accepted batch are sent again, never the accepted
//! ones.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use ossbridge_message::{CONTRACT_VERSION, Operation, QueueMessage, idempotency_key};
use ossbridge_runtime::error_chain;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::listing::Entry;
use super::progress::{Counters, add};
use super::summary::Failures;

/// SQS's limit per SendMessageBatch.
const BATCH: usize = 10;
/// Attempts per entry (a failed call counts for each of its entries).
const ATTEMPTS: u32 = 5;
/// How long a batch that is not full waits for more jobs.
const LINGER: Duration = Duration::from_millis(50);
/// The event name of sync jobs: no OSS event caused them.
pub const EVENT_NAME: &str = "ObjectCreated:Sync";

/// Where the source objects are, for the messages.
#[derive(Debug, Clone)]
pub struct Source {
    pub bucket: String,
    pub region: String,
}

/// The message for one copy job. `eventTime` is empty: the job is not an
/// event, and a worker would otherwise count the object's age as
/// replication lag.
pub fn message(source: &Source, entry: &Entry, run_id: &str) -> QueueMessage {
    QueueMessage {
        key: entry.key.clone(),
        size: entry.size,
        version: CONTRACT_VERSION,
        op: Operation::Copy,
        bucket: source.bucket.clone(),
        region: source.region.clone(),
        e_tag: entry.etag.clone(),
        event_name: EVENT_NAME.to_owned(),
        event_time: String::new(),
        request_id: run_id.to_owned(),
        source_id: "sync".to_owned(),
        // The run id stands in for OSS's request id: the same object
        // enqueued twice in one run gets one key, another run another.
        idempotency_key: idempotency_key(
            &source.bucket,
            &entry.key,
            &entry.etag,
            EVENT_NAME,
            run_id,
        ),
    }
}

/// Hands jobs to the batching task.
#[derive(Debug, Clone)]
pub struct Enqueuer {
    tx: mpsc::Sender<QueueMessage>,
}

impl Enqueuer {
    pub fn spawn(
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        counters: Arc<Counters>,
        failures: Arc<Failures>,
    ) -> (Enqueuer, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(BATCH * 100);
        let task = tokio::spawn(run(sqs, queue_url, rx, counters, failures));
        (Enqueuer { tx }, task)
    }

    /// Waits while the batcher is full (backpressure on the listing).
    pub async fn send(&self, message: QueueMessage) -> bool {
        self.tx.send(message).await.is_ok()
    }
}

async fn run(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut rx: mpsc::Receiver<QueueMessage>,
    counters: Arc<Counters>,
    failures: Arc<Failures>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = match rx.recv().await {
            Some(m) => m,
            None => return,
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => batch.push(m),
                Ok(None) | Err(_) => break,
            }
        }
        send_batch(
            &sqs,
            &queue_url,
            std::mem::take(&mut batch),
            &counters,
            &failures,
        )
        .await;
    }
}

/// Sends up to 10 messages, retrying the entries that failed.
async fn send_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: Vec<QueueMessage>,
    counters: &Counters,
    failures: &Failures,
) {
    // Entry id = index into `messages`; ids must be unique per call only.
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    let mut last_error: Vec<(usize, String)> = Vec::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
        }
        let entries: Vec<SendMessageBatchRequestEntry> = pending
            .iter()
            .filter_map(|&i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(messages[i].to_body())
                    .build()
                    .ok()
            })
            .collect();
        let out = match sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let detail = error_chain(&e);
                tracing::warn!(event = "sync_enqueue_retry", error = %detail);
                last_error = pending.iter().map(|&i| (i, detail.clone())).collect();
                continue;
            }
        };
        add(&counters.enqueued, out.successful().len() as u64);
        let mut retry = Vec::new();
        last_error.clear();
        for failed in out.failed() {
            let Ok(i) = failed.id().parse::<usize>() else {
                continue;
            };
            let detail = format!(
                "{}: {}",
                failed.code(),
                failed.message().unwrap_or_default()
            );
            // Sender faults (a message SQS refuses) fail the same way
            // every time.
            if failed.sender_fault() {
                failures.record(counters, &messages[i].key, "enqueue_refused", detail);
            } else {
                retry.push(i);
                last_error.push((i, detail));
            }
        }
        pending = retry;
        if pending.is_empty() {
            return;
        }
    }
    for (i, detail) in last_error {
        if let Some(m) = messages.get(i) {
            failures.record(counters, &m.key, "enqueue_failed", detail);
        }
    }
}
