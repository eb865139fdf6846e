//! The SQS side of the gateway: the client (timeouts sized to the enqueue
//! deadline), one batcher per queue (the shared `ossbridge-queue` sender,
//! watched by the readiness flag and the metrics), and the errors of
//! getting messages there.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::Client;
use ossbridge_message::QueueMessage;
use ossbridge_queue::{
    BatchError, BatchObserver, BatchSender, BatchSettings, CallOutcome, CallReport, Entry, fifo,
};
use tokio::task::JoinHandle;

use crate::config::SqsConfig;
use crate::health::SqsHealth;
use crate::telemetry;

/// Messages waiting for a batch, per queue; beyond this, requests wait
/// (back-pressure) until their request deadline.
const QUEUE_CAPACITY: usize = 16_384;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EnqueueError {
    #[error("SQS did not accept the messages within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Queue(#[from] BatchError),
}

impl EnqueueError {
    /// Everything but a message SQS refuses as malformed is worth a retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            EnqueueError::Timeout(_) => true,
            EnqueueError::Queue(e) => e.is_retryable(),
        }
    }
}

/// An SQS client whose own retries fit inside `deadline`.
///
/// Stalled-stream protection is off: it watches the throughput of every
/// request and response body, which for a few-KiB SendMessageBatch cost
/// about 3 % of the gateway's CPU per event (perf; docs/benchmarks.md),
/// and a stalled call is already ended by the attempt timeout here (half
/// the enqueue deadline), body and all.
pub fn client(sdk: &SdkConfig, deadline: Duration) -> Client {
    let attempt = deadline / 2;
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
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

/// The batcher of one queue: concurrent requests' messages share
/// SendMessageBatch calls (see `ossbridge_queue::Batcher`). Cloning it is
/// cheap; when every clone is dropped the batcher sends what it holds and
/// its task ends.
#[derive(Debug, Clone)]
pub struct Batcher {
    sender: BatchSender,
}

impl Batcher {
    pub fn spawn(
        client: Client,
        queue_url: String,
        config: &SqsConfig,
        health: Arc<SqsHealth>,
    ) -> (Batcher, JoinHandle<()>) {
        let settings = BatchSettings {
            linger: Duration::from_millis(config.batch_linger_ms),
            linger_when_idle: config.batch_linger_when_idle,
            max_entries: config.max_batch_entries,
            max_bytes: config.max_batch_bytes,
            max_in_flight: config.max_in_flight_batches,
            entry_attempts: config.entry_attempts,
            // Retries must fit the enqueue deadline (3 s by default).
            first_retry_delay: Duration::from_millis(40),
            max_retry_delay: Duration::from_millis(640),
            capacity: QUEUE_CAPACITY,
        };
        let watch = Arc::new(Watch { health });
        let (sender, task) = BatchSender::spawn(client, queue_url, &settings, watch);
        (Batcher { sender }, task)
    }

    /// The queue this batcher sends to.
    pub fn queue_url(&self) -> &str {
        self.sender.queue_url()
    }

    /// Resolves once SQS has accepted every message, or with the first
    /// failure. On a FIFO queue each message is grouped by object and
    /// deduplicated by its idempotency key, or, for a deliberate resend
    /// (`resend`: the replay run), by a deduplication id of that run, so
    /// SQS does not drop it as a repeat of the original. The caller bounds
    /// the wait.
    pub async fn send(
        &self,
        messages: &[QueueMessage],
        resend: Option<&str>,
    ) -> Result<(), EnqueueError> {
        let on_fifo = self.sender.is_fifo();
        let entries: Vec<Entry> = messages
            .iter()
            .map(|m| {
                let entry = Entry::for_message(m, on_fifo);
                match resend {
                    Some(run) if on_fifo => entry.with_deduplication_id(
                        fifo::resend_deduplication_id(&m.idempotency_key, run),
                    ),
                    _ => entry,
                }
            })
            .collect();
        Ok(self.sender.submit_all(entries).await?)
    }
}

/// Batch outcomes drive readiness (SQS answering or not) and the batch
/// metrics.
#[derive(Debug)]
struct Watch {
    health: Arc<SqsHealth>,
}

impl BatchObserver for Watch {
    fn call_finished(&self, report: &CallReport) {
        self.health.set(report.outcome != CallOutcome::Error);
        telemetry::batch_sent(report.entries, report.seconds, report.outcome.as_str());
    }

    fn entries_retried(&self, count: usize) {
        telemetry::entries_retried(count);
    }
}
