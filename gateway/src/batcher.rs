//! Coalesces the messages of concurrent requests into SendMessageBatch
//! calls: at most `max_batch_entries` entries and `max_batch_bytes` bytes
//! per call, waiting at most `batch_linger_ms` for a batch to fill, with
//! `max_in_flight_batches` calls outstanding per queue.
//!
//! Every message has its own completion, so each request is answered for
//! exactly its own messages. Entries SQS reports as failed are sent again
//! (never the ones it accepted); sender faults are final.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use ossbridge_message::QueueMessage;
use ossbridge_runtime::error_chain;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::SqsConfig;
use crate::enqueue::{EnqueueError, Prepared, is_fifo};
use crate::health::SqsHealth;
use crate::telemetry;

/// Messages waiting for a batch, per queue; beyond this, requests wait
/// (back-pressure) until their request deadline.
const QUEUE_CAPACITY: usize = 16_384;

#[derive(Debug, Clone)]
struct Settings {
    linger: Duration,
    max_entries: usize,
    max_bytes: usize,
    max_in_flight: usize,
    entry_attempts: u32,
}

#[derive(Debug)]
struct Pending {
    prepared: Prepared,
    done: oneshot::Sender<Result<(), EnqueueError>>,
}

/// The batcher of one queue. Cloning it is cheap; when every clone is
/// dropped the batcher sends what it holds and its task ends.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
    fifo: bool,
}

impl Batcher {
    pub fn spawn(
        client: Client,
        queue_url: String,
        config: &SqsConfig,
        health: Arc<SqsHealth>,
    ) -> (Batcher, JoinHandle<()>) {
        let settings = Settings {
            linger: Duration::from_millis(config.batch_linger_ms),
            max_entries: config.max_batch_entries,
            max_bytes: config.max_batch_bytes,
            max_in_flight: config.max_in_flight_batches,
            entry_attempts: config.entry_attempts,
        };
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let fifo = is_fifo(&queue_url);
        let task = tokio::spawn(run(rx, client, Arc::from(queue_url), settings, health));
        (Batcher { tx, fifo }, task)
    }

    /// Resolves once SQS has accepted every message, or with the first
    /// failure. The caller bounds the wait.
    pub async fn send(&self, messages: &[QueueMessage]) -> Result<(), EnqueueError> {
        let mut completions = Vec::with_capacity(messages.len());
        for message in messages {
            let (done, completion) = oneshot::channel();
            let pending = Pending {
                prepared: Prepared::new(message, self.fifo),
                done,
            };
            self.tx
                .send(pending)
                .await
                .map_err(|_| EnqueueError::ShuttingDown)?;
            completions.push(completion);
        }
        for completion in completions {
            completion.await.map_err(|_| EnqueueError::ShuttingDown)??;
        }
        Ok(())
    }
}

async fn run(
    mut rx: mpsc::Receiver<Pending>,
    client: Client,
    queue_url: Arc<str>,
    settings: Settings,
    health: Arc<SqsHealth>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_in_flight));
    let mut carried: Option<Pending> = None;
    let mut calls = JoinSet::new();
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => break,
            },
        };
        let mut bytes = first.prepared.size();
        let mut batch = vec![first];
        let linger = tokio::time::sleep(settings.linger);
        tokio::pin!(linger);
        while batch.len() < settings.max_entries {
            let next = match rx.try_recv() {
                Ok(p) => p,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if settings.linger.is_zero() => break,
                Err(TryRecvError::Empty) => tokio::select! {
                    biased;
                    next = rx.recv() => match next {
                        Some(p) => p,
                        None => break,
                    },
                    () = &mut linger => break,
                },
            };
            if bytes + next.prepared.size() > settings.max_bytes {
                carried = Some(next);
                break;
            }
            bytes += next.prepared.size();
            batch.push(next);
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        calls.spawn(send_batch(
            client.clone(),
            queue_url.clone(),
            batch,
            settings.entry_attempts,
            health.clone(),
            slot,
        ));
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
}

async fn send_batch(
    client: Client,
    queue_url: Arc<str>,
    mut pending: Vec<Pending>,
    attempts: u32,
    health: Arc<SqsHealth>,
    _slot: OwnedSemaphorePermit,
) {
    let mut attempt = 1;
    loop {
        let entries = match pending
            .iter()
            .enumerate()
            .map(|(i, p)| p.prepared.entry(i))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(entries) => entries,
            Err(e) => return fail_all(pending, &e),
        };
        let started = Instant::now();
        let result = client
            .send_message_batch()
            .queue_url(&*queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let seconds = started.elapsed().as_secs_f64();
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                health.set(false);
                telemetry::batch_sent(pending.len(), seconds, "error");
                let error = EnqueueError::Unavailable(error_chain(&e));
                tracing::warn!(event = "sqs_batch_failed", entries = pending.len(), error = %error);
                return fail_all(pending, &error);
            }
        };
        health.set(true);
        let accepted: HashSet<&str> = output.successful().iter().map(|s| s.id()).collect();
        let outcome = if output.failed().is_empty() {
            "ok"
        } else {
            "partial"
        };
        telemetry::batch_sent(pending.len(), seconds, outcome);

        let mut again = Vec::new();
        for (i, p) in pending.into_iter().enumerate() {
            let id = i.to_string();
            if accepted.contains(id.as_str()) {
                let _ = p.done.send(Ok(()));
                continue;
            }
            let failure = output.failed().iter().find(|f| f.id() == id);
            match failure {
                Some(f) if f.sender_fault() => {
                    let _ = p.done.send(Err(EnqueueError::Rejected {
                        code: f.code().to_owned(),
                        message: f.message().unwrap_or_default().to_owned(),
                    }));
                }
                // Failed, or neither accepted nor failed: send again.
                _ if attempt < attempts => again.push(p),
                _ => {
                    let code = failure.map(|f| f.code()).unwrap_or("NotAcknowledged");
                    let _ = p.done.send(Err(EnqueueError::EntryFailed {
                        code: code.to_owned(),
                        attempts,
                    }));
                }
            }
        }
        if again.is_empty() {
            return;
        }
        tracing::warn!(
            event = "sqs_entries_retried",
            entries = again.len(),
            attempt
        );
        telemetry::entries_retried(again.len());
        tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
        attempt += 1;
        pending = again;
    }
}

fn fail_all(pending: Vec<Pending>, error: &EnqueueError) {
    for p in pending {
        let _ = p.done.send(Err(error.clone()));
    }
}
