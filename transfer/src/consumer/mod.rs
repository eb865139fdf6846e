//! The queue consumer: several long-polling receivers, concurrency bounded
//! in objects (here) and in bytes (in the copier), a visibility heartbeat
//! for long copies, batched deletes, and a graceful stop.
//!
//! A message is deleted only after every job it holds succeeded. Anything
//! else stays on the queue: an unreadable message or a failed copy
//! reappears after the visibility timeout and, after the queue's
//! `maxReceiveCount`, its redrive policy moves it to the dead-letter queue.
//! Nothing is silently dropped.
//!
//! On shutdown the receivers stop at once; copies in progress get the
//! grace period to finish; what is still running after it is abandoned and
//! its messages released (visibility 0) so another worker takes them now,
//! resuming any multipart upload where it stopped.

mod deleter;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use ossbridge_message::Operation;
use ossbridge_runtime::error_chain;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::WorkerConfig;
use crate::copy::{Copier, Outcome};
use crate::decode::{Decoded, Job, decode};
use crate::error::CopyError;
use crate::telemetry;
use deleter::Deleter;

/// SQS returns at most 10 messages per ReceiveMessage.
const MAX_RECEIVE: usize = 10;

#[derive(Debug)]
pub struct Consumer {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub copier: Copier,
    pub worker: WorkerConfig,
}

/// Why a message was not handled.
enum Failure {
    Unparseable(String),
    Job(CopyError),
}

impl Consumer {
    /// Drains the queue until `shutdown` is cancelled, then stops as
    /// described in the module documentation.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.worker.concurrency));
        let (deleter, deleter_task) = Deleter::spawn(self.sqs.clone(), self.queue_url.clone());
        let jobs = TaskTracker::new();
        let abandon = CancellationToken::new();
        let receivers: Vec<_> = (0..self.worker.receivers)
            .map(|_| {
                tokio::spawn(self.clone().receive_loop(
                    slots.clone(),
                    deleter.clone(),
                    jobs.clone(),
                    abandon.clone(),
                    shutdown.clone(),
                ))
            })
            .collect();
        for r in receivers {
            let _ = r.await;
        }
        jobs.close();
        tracing::info!(event = "consumer_draining", jobs = jobs.len());
        let grace = Duration::from_secs(self.worker.shutdown_grace_secs);
        if tokio::time::timeout(grace, jobs.wait()).await.is_err() {
            tracing::warn!(
                event = "consumer_drain_timeout",
                abandoned = jobs.len(),
                "releasing their messages"
            );
            abandon.cancel();
            jobs.wait().await;
        }
        drop(deleter);
        let _ = deleter_task.await;
    }

    async fn receive_loop(
        self: Arc<Self>,
        slots: Arc<Semaphore>,
        deleter: Deleter,
        jobs: TaskTracker,
        abandon: CancellationToken,
        shutdown: CancellationToken,
    ) {
        let batch =
            (self.worker.concurrency / (2 * self.worker.receivers)).clamp(1, MAX_RECEIVE) as u32;
        loop {
            // Reserve the slots before receiving: never hold a message
            // nobody can work on. Batches, not single messages, keep the
            // receive calls per object low; half the slots at most are
            // reserved by waiting receivers, so copies are not starved.
            let mut reserved = tokio::select! {
                () = shutdown.cancelled() => return,
                permit = slots.clone().acquire_many_owned(batch) => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = self.receive(batch as usize) => received,
            };
            let messages = match received {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(event = "sqs_receive_failed", error = %e);
                    drop(reserved);
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            for message in messages {
                // One slot per message; unused ones are freed below.
                let Some(slot) = reserved.split(1) else {
                    break;
                };
                let consumer = self.clone();
                let (deleter, abandon) = (deleter.clone(), abandon.clone());
                jobs.spawn(async move { consumer.handle(message, slot, deleter, abandon).await });
            }
        }
    }

    async fn receive(&self, max: usize) -> Result<Vec<Message>, String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(self.worker.wait_time_secs)
            .visibility_timeout(self.worker.visibility_timeout_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn handle(
        &self,
        message: Message,
        _slot: OwnedSemaphorePermit,
        deleter: Deleter,
        abandon: CancellationToken,
    ) {
        let message_id = message.message_id().unwrap_or_default().to_owned();
        let receives = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .cloned()
            .unwrap_or_default();
        let span = tracing::info_span!("message", message_id = %message_id, receives = %receives);
        async {
            let Some(receipt) = message.receipt_handle().map(str::to_owned) else {
                return;
            };
            let heartbeat = CancellationToken::new();
            tokio::spawn(self.clone_sqs_heartbeat(receipt.clone(), heartbeat.clone()));
            let outcome = tokio::select! {
                outcome = self.process(message.body().unwrap_or_default()) => Some(outcome),
                () = abandon.cancelled() => None,
            };
            heartbeat.cancel();
            match outcome {
                Some(Ok(())) => deleter.delete(receipt).await,
                Some(Err(Failure::Unparseable(why))) => {
                    telemetry::message("unparseable");
                    tracing::error!(event = "message_unparseable", error = %why, "leaving it for the dead-letter queue");
                }
                Some(Err(Failure::Job(e))) => {
                    telemetry::message("failed");
                    // Already logged with its key by `process`.
                    let _ = e;
                }
                None => {
                    telemetry::message("released");
                    self.release(&receipt).await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Decodes the body and runs its jobs; every job must succeed.
    async fn process(&self, body: &str) -> Result<(), Failure> {
        let jobs = match decode(body) {
            Ok(Decoded::Jobs(jobs)) => jobs,
            Ok(Decoded::Nothing(why)) => {
                tracing::info!(event = "message_ignored", reason = why);
                telemetry::message("nothing");
                return Ok(());
            }
            Err(e) => return Err(Failure::Unparseable(e.to_string())),
        };
        for job in &jobs {
            self.run_job(job)
                .instrument(tracing::info_span!("job", key = %job.key))
                .await?;
        }
        Ok(())
    }

    async fn run_job(&self, job: &Job) -> Result<(), Failure> {
        if let Some(bucket) = &job.bucket
            && bucket != self.copier.source_bucket()
        {
            let e = CopyError::permanent(
                "job",
                "wrong_bucket",
                format!(
                    "message names bucket {bucket:?}; this worker copies from {:?}",
                    self.copier.source_bucket()
                ),
            );
            telemetry::job_failed(e.reason, true);
            tracing::error!(event = "job_failed", key = %job.key, reason = e.reason, permanent = true, error = %e);
            return Err(Failure::Job(e));
        }
        if job.op == Operation::Delete && !self.copier.options.propagate_deletes {
            tracing::info!(
                event = "job_done",
                outcome = "delete_ignored",
                shape = job.shape.as_str()
            );
            telemetry::job_done("delete_ignored", 0, None);
            return Ok(());
        }
        match self.copier.execute(job.op, &job.key, job.size).await {
            Ok(outcome) => {
                let bytes = match outcome {
                    Outcome::Copied { bytes, .. } => bytes,
                    _ => 0,
                };
                tracing::info!(event = "job_done", outcome = outcome.label(), bytes, shape = job.shape.as_str(), detail = ?outcome);
                telemetry::job_done(outcome.label(), bytes, job.event_time.as_deref());
                Ok(())
            }
            Err(e) => {
                telemetry::job_failed(e.reason, !e.is_retryable());
                tracing::error!(
                    event = "job_failed",
                    key = %job.key,
                    reason = e.reason,
                    permanent = !e.is_retryable(),
                    error = %e,
                    "the message stays on the queue"
                );
                Err(Failure::Job(e))
            }
        }
    }

    fn clone_sqs_heartbeat(
        &self,
        receipt: String,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + use<> {
        let (sqs, queue_url, timeout) = (
            self.sqs.clone(),
            self.queue_url.clone(),
            self.worker.visibility_timeout_secs,
        );
        heartbeat(sqs, queue_url, receipt, timeout, stop)
    }

    /// Makes the message visible again now (another worker takes it).
    async fn release(&self, receipt: &str) {
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(event = "sqs_release_failed", error = %error_chain(&e));
        }
    }
}

/// Extends the message's visibility every third of the timeout until
/// `stop`, so a long copy keeps its message.
async fn heartbeat(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    receipt: String,
    timeout_secs: i32,
    stop: CancellationToken,
) {
    let every = Duration::from_secs(u64::try_from(timeout_secs / 3).unwrap_or(10).max(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let result = sqs
            .change_message_visibility()
            .queue_url(&queue_url)
            .receipt_handle(&receipt)
            .visibility_timeout(timeout_secs)
            .send()
            .await;
        match result {
            Ok(_) => tracing::debug!(event = "visibility_extended", seconds = timeout_secs),
            Err(e) => tracing::warn!(event = "visibility_extend_failed", error = %error_chain(&e)),
        }
    }
}
