//! `sync --enqueue`: copy jobs go to the SQS queue as ossbridge queue
//! messages (the contract the gateway writes, `docs/queue-message.md`), for
//! a worker fleet to copy, through the shared SQS sender: batches of up to
//! 10, entries SQS fails sent again (never the accepted ones), and on a
//! FIFO queue one group per object and the message's idempotency key as
//! deduplication id.

use std::sync::Arc;
use std::time::Duration;

use ossbridge_message::{CONTRACT_VERSION, Operation, QueueMessage, idempotency_key};
use ossbridge_queue::{BatchError, BatchSender, BatchSettings, Entry, NoObserver};
use tokio::task::JoinHandle;

use super::listing::Entry as Listed;
use super::progress::{Counters, add};
use super::summary::Failures;

/// The event name of sync jobs: no OSS event caused them.
pub const EVENT_NAME: &str = "ObjectCreated:Sync";

/// The event name of a sync job for a key the destination lacked when
/// sync listed it. A worker takes it as a new object: one source GET and
/// one `If-None-Match: *` PUT, no destination HEAD first, as `sync`
/// without `--enqueue` copies a missing key. The PUT's condition keeps
/// that safe if the key appeared since the listing.
pub const EVENT_NAME_MISSING: &str = "ObjectCreated:SyncMissing";

/// Where the source objects are, for the messages.
#[derive(Debug, Clone)]
pub struct Source {
    pub bucket: String,
    pub region: String,
}

/// The message for one copy job, of a key the destination lacked
/// (`missing`) or held in another version. `eventTime` is empty: the job
/// is not an event, and a worker would otherwise count the object's age
/// as replication lag.
pub fn message(source: &Source, entry: &Listed, run_id: &str, missing: bool) -> QueueMessage {
    let event_name = if missing {
        EVENT_NAME_MISSING
    } else {
        EVENT_NAME
    };
    QueueMessage {
        key: entry.key.clone(),
        size: entry.size,
        version: CONTRACT_VERSION,
        op: Operation::Copy,
        bucket: source.bucket.clone(),
        region: source.region.clone(),
        e_tag: entry.etag.clone(),
        event_name: event_name.to_owned(),
        event_time: String::new(),
        request_id: run_id.to_owned(),
        source_id: "sync".to_owned(),
        // The run id stands in for OSS's request id: the same object
        // enqueued twice in one run gets one key, another run another.
        idempotency_key: idempotency_key(
            &source.bucket,
            &entry.key,
            &entry.etag,
            event_name,
            run_id,
        ),
    }
}

/// Hands jobs to the shared SQS sender and counts each one's outcome.
#[derive(Debug, Clone)]
pub struct Enqueuer {
    sender: BatchSender,
    counters: Arc<Counters>,
    failures: Arc<Failures>,
}

impl Enqueuer {
    /// The task ends once every clone is dropped and every job's outcome
    /// is counted.
    pub fn spawn(
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        counters: Arc<Counters>,
        failures: Arc<Failures>,
    ) -> (Enqueuer, JoinHandle<()>) {
        // Throughput over latency: a sync enqueues many jobs, nobody waits
        // on one. Failed entries get more and longer retries than the
        // gateway's, which answers a webhook within seconds.
        let settings = BatchSettings {
            linger: Duration::from_millis(50),
            max_in_flight: 4,
            entry_attempts: 5,
            first_retry_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(5),
            capacity: 1000,
            ..BatchSettings::default()
        };
        let (sender, task) = BatchSender::spawn(sqs, queue_url, &settings, Arc::new(NoObserver));
        let enqueuer = Enqueuer {
            sender,
            counters,
            failures,
        };
        (enqueuer, task)
    }

    /// Queues a job; waits while the sender is full (back-pressure on the
    /// listing). Its outcome is counted when SQS has answered.
    pub async fn send(&self, message: QueueMessage) {
        let (counters, failures) = (self.counters.clone(), self.failures.clone());
        let key = message.key.clone();
        let counted = move |result: Result<(), BatchError>| match result {
            Ok(()) => add(&counters.enqueued, 1),
            Err(e) => {
                // A refusal fails the same way every time.
                let reason = if e.is_retryable() {
                    "enqueue_failed"
                } else {
                    "enqueue_refused"
                };
                failures.record(&counters, &key, reason, e.to_string());
            }
        };
        self.sender
            .submit_with(Entry::for_message(&message, self.sender.is_fifo()), counted)
            .await;
    }
}
