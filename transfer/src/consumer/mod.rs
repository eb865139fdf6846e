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
//! Ownership: a job runs under a lease (`copy::Lease`) that the message's
//! heartbeat (`heartbeat.rs`) keeps alive; when SQS says the message is no
//! longer ours, or the heartbeat cannot prove it in time, or SQS's 12-hour
//! visibility limit nears, the lease is lost and the job stops before it
//! writes anything more: the message's new owner finishes.
//!
//! On shutdown the receivers stop at once; copies in progress get the
//! grace period to finish; what is still running after it is abandoned and
//! its message handed back (`handback.rs`) so another worker takes it now,
//! resuming any multipart upload where it stopped.

mod deleter;
mod handback;
mod heartbeat;

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
use crate::copy::{Copier, Lease, Outcome};
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
    /// The message is another worker's now.
    LeaseLost,
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
        let receive = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(self.worker.wait_time_secs)
            .visibility_timeout(self.worker.visibility_timeout_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount);
        // What a hand-back at shutdown must carry over.
        let output = ossbridge_queue::request_copy_attributes(receive)
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
            let lost = CancellationToken::new();
            let lease = Lease::new(lost.clone(), Some(self.worker.max_object_size()));
            let stop = CancellationToken::new();
            tokio::spawn(heartbeat::run(
                self.sqs.clone(),
                self.queue_url.clone(),
                receipt.clone(),
                self.worker.visibility_timeout_secs,
                stop.clone(),
                lost,
            ));
            let outcome = tokio::select! {
                outcome = self.process(message.body().unwrap_or_default(), &lease) => Some(outcome),
                () = abandon.cancelled() => None,
            };
            stop.cancel();
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
                Some(Err(Failure::LeaseLost)) => {
                    telemetry::message("lost");
                    tracing::warn!(
                        event = "message_lost",
                        "the message's visibility could not be kept; its new owner finishes the job"
                    );
                }
                None => {
                    telemetry::message("handed_back");
                    handback::hand_back(&self.sqs, &self.queue_url, &message, &receipt).await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Decodes the body and runs its jobs; every job must succeed.
    async fn process(&self, body: &str, lease: &Lease) -> Result<(), Failure> {
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
            self.run_job(job, lease)
                .instrument(tracing::info_span!("job", key = %job.key))
                .await?;
        }
        Ok(())
    }

    async fn run_job(&self, job: &Job, lease: &Lease) -> Result<(), Failure> {
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
        match self
            .copier
            .execute(job.op, &job.key, job.hint(), lease)
            .await
        {
            Ok(outcome) => {
                let bytes = match outcome {
                    Outcome::Copied { bytes, .. } => bytes,
                    _ => 0,
                };
                tracing::info!(event = "job_done", outcome = outcome.label(), bytes, shape = job.shape.as_str(), detail = ?outcome);
                telemetry::job_done(outcome.label(), bytes, job.event_time.as_deref());
                Ok(())
            }
            Err(e) if e.is_lease_lost() => Err(Failure::LeaseLost),
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
}
