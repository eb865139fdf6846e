//! The queue consumer: long-polls SQS, runs each job, and deletes a
//! message only after its job succeeded. Anything else (a failed copy, an
//! unparseable body) stays on the queue: it reappears after the visibility
//! timeout and, after `maxReceiveCount` receives, the redrive policy moves
//! it to the dead-letter queue. Nothing is silently dropped.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use ossbridge_message::Operation;
use ossbridge_runtime::error_chain;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::copy::{Copier, Outcome};
use crate::error::CopyError;
use crate::job::{Job, decode};

/// SQS returns at most 10 messages per ReceiveMessage.
const MAX_RECEIVE: usize = 10;

#[derive(Debug)]
pub struct Consumer {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub copier: Copier,
    pub worker: WorkerConfig,
}

impl Consumer {
    /// Drains the queue until `shutdown` is cancelled, then stops receiving
    /// and waits (up to the grace period) for the jobs it holds.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.worker.concurrency));
        let mut jobs = JoinSet::new();
        loop {
            while jobs.try_join_next().is_some() {}
            // Wait for a free slot before receiving: never hold a message
            // nobody can work on (its visibility timeout would run out).
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let want = (1 + slots.available_permits()).min(MAX_RECEIVE);
            let messages = tokio::select! {
                () = shutdown.cancelled() => break,
                received = self.receive(want) => received,
            };
            let messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(event = "sqs_receive_failed", error = %e);
                    drop(first);
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let mut permit = Some(first);
            for message in messages {
                let permit = match permit.take() {
                    Some(p) => p,
                    // Only this loop takes permits, so these are free.
                    None => match slots.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let consumer = self.clone();
                jobs.spawn(async move { consumer.handle(message, permit).await });
            }
        }
        let grace = Duration::from_secs(self.worker.shutdown_grace_secs);
        tracing::info!(event = "consumer_draining", jobs = jobs.len());
        let drained =
            tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                event = "consumer_drain_timeout",
                abandoned = jobs.len(),
                "jobs still running after the grace period; their messages will reappear"
            );
            jobs.abort_all();
        }
    }

    async fn receive(&self, max: usize) -> Result<Vec<Message>, String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(self.worker.wait_time_secs)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn handle(&self, message: Message, _slot: OwnedSemaphorePermit) {
        let message_id = message.message_id().unwrap_or_default().to_owned();
        let span =
            tracing::info_span!("job", message_id = %message_id, key = tracing::field::Empty);
        async {
            let body = message.body().unwrap_or_default();
            let job = match decode(body) {
                Ok(job) => job,
                Err(e) => {
                    tracing::error!(
                        event = "message_unparseable",
                        error = %e,
                        "leaving the message for the dead-letter queue"
                    );
                    return;
                }
            };
            tracing::Span::current().record("key", job.key.as_str());
            match self.execute(&job).await {
                Ok(outcome) => {
                    tracing::info!(event = "job_done", outcome = ?outcome);
                    if let Some(handle) = message.receipt_handle() {
                        self.delete(handle).await;
                    }
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(event = "job_failed", retryable = true, error = %e)
                }
                Err(e) => tracing::error!(event = "job_failed", retryable = false, error = %e),
            }
        }
        .instrument(span)
        .await
    }

    async fn execute(&self, job: &Job) -> Result<Outcome, CopyError> {
        if let Some(bucket) = &job.bucket
            && bucket != self.copier.source_bucket()
        {
            return Err(CopyError::permanent(
                "job",
                format!(
                    "message names bucket {bucket:?}, this worker copies from {:?}",
                    self.copier.source_bucket()
                ),
            ));
        }
        match job.op {
            Operation::Copy => self.copier.copy(&job.key).await,
            Operation::Delete => Err(CopyError::permanent(
                "job",
                "delete messages are not handled by this worker version",
            )),
        }
    }

    async fn delete(&self, receipt_handle: &str) {
        let result = self
            .sqs
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await;
        if let Err(e) = result {
            // The copy is done; a redelivery finds the object already there.
            tracing::warn!(event = "sqs_delete_failed", error = %error_chain(&e));
        }
    }
}
