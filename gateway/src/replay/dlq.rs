//! Redrive: messages from a dead-letter queue back to a queue. Each batch
//! is received, sent to the target with its body and message attributes
//! (and, to a FIFO queue, its group and deduplication ids) through the
//! shared SQS sender, and deleted from the dead-letter queue only for the
//! messages the target accepted. A dry run receives, prints and releases.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, Message};
use ossbridge_queue::limits::MAX_BATCH_ENTRIES;
use ossbridge_queue::{
    BatchDeleter, BatchSender, BatchSettings, Entry, NoObserver, fifo, request_copy_attributes,
};
use ossbridge_runtime::error_chain;
use serde::Serialize;

/// Visibility timeout while a batch is being moved, or held by a dry run.
const HOLD_SECS: i32 = 60;

#[derive(Debug, Clone)]
pub struct Redrive {
    pub dlq_url: String,
    pub target_url: String,
    /// Messages to move at most (all when `None`).
    pub limit: Option<usize>,
    pub dry_run: bool,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveSummary {
    pub received: usize,
    pub moved: usize,
    pub failed: usize,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One message as a dry run prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
    pub attributes: Vec<&'a str>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RedriveError(String);

impl Redrive {
    /// Moves (or, dry, lists through `out`) up to `limit` messages.
    pub async fn run(
        &self,
        sqs: &Client,
        out: &mut (dyn FnMut(&Message) + Send),
    ) -> Result<RedriveSummary, RedriveError> {
        let mut summary = RedriveSummary {
            dry_run: self.dry_run,
            ..RedriveSummary::default()
        };
        let queues = Queues::spawn(sqs, self);
        let mut held: Vec<(String, String)> = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let remaining = self
                .limit
                .map_or(MAX_BATCH_ENTRIES, |l| l.saturating_sub(summary.received));
            if remaining == 0 {
                break;
            }
            let messages = self
                .receive(sqs, remaining.min(MAX_BATCH_ENTRIES) as i32)
                .await?;
            let fresh: Vec<Message> = messages
                .into_iter()
                .filter(|m| seen.insert(m.message_id().unwrap_or_default().to_owned()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            summary.received += fresh.len();
            if self.dry_run {
                for m in &fresh {
                    out(m);
                    held.push(receipt(m));
                }
                continue;
            }
            self.move_batch(sqs, &queues, fresh, &mut summary).await;
        }
        queues.finish().await;
        if !held.is_empty() {
            self.release(sqs, &held, &mut summary).await;
        }
        Ok(summary)
    }

    async fn receive(&self, sqs: &Client, max: i32) -> Result<Vec<Message>, RedriveError> {
        let receive = sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(max)
            .visibility_timeout(HOLD_SECS)
            .wait_time_seconds(1);
        let output = request_copy_attributes(receive).send().await.map_err(|e| {
            RedriveError(format!("cannot receive from the DLQ: {}", error_chain(&e)))
        })?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn move_batch(
        &self,
        sqs: &Client,
        queues: &Queues,
        batch: Vec<Message>,
        summary: &mut RedriveSummary,
    ) {
        // A deliberate resend: on a FIFO target the original deduplication
        // id would make SQS drop the copy as a repeat if the original was
        // sent less than five minutes ago, and the DLQ message would then
        // be deleted with nothing queued. This receipt handle is new for
        // every receive, and the same for a retry of this send.
        let sent = queues
            .target
            .submit_many(batch.iter().map(|m| {
                let original = m.message_id().unwrap_or_default();
                let attempt = m.receipt_handle().unwrap_or_default();
                Entry::copy_of(m)
                    .with_deduplication_id(fifo::resend_deduplication_id(original, attempt))
            }))
            .await;
        let mut moved = Vec::new();
        let mut not_moved = Vec::new();
        for (m, completion) in batch.iter().zip(sent) {
            match completion.await {
                Ok(()) => moved.push(m.receipt_handle().unwrap_or_default().to_owned()),
                Err(e) => {
                    summary.errors.push(format!("send failed: {e}"));
                    not_moved.push(receipt(m));
                }
            }
        }
        summary.failed += not_moved.len();
        if !not_moved.is_empty() {
            self.release(sqs, &not_moved, summary).await;
        }
        // Sent: counted as moved even if the delete fails (the message is
        // then on both queues, which the consumers' idempotency absorbs).
        summary.moved += moved.len();
        for deleted in queues.dlq.submit_many(moved).await {
            if let Err(e) = deleted.await {
                summary
                    .errors
                    .push(format!("sent but not deleted from the DLQ: {e}"));
            }
        }
    }

    /// Makes held messages visible again at once.
    async fn release(&self, sqs: &Client, held: &[(String, String)], summary: &mut RedriveSummary) {
        for chunk in held.chunks(MAX_BATCH_ENTRIES) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, handle))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = sqs
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                summary.errors.push(format!(
                    "cannot release messages (they reappear after {HOLD_SECS} s): {}",
                    error_chain(&e)
                ));
            }
        }
    }
}

/// The target's sender and the DLQ's deleter for one redrive.
struct Queues {
    target: BatchSender,
    dlq: BatchDeleter,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Queues {
    fn spawn(sqs: &Client, redrive: &Redrive) -> Queues {
        // A received batch is submitted at once; the linger lets it leave
        // as one call.
        let settings = BatchSettings {
            linger: Duration::from_millis(20),
            ..BatchSettings::default()
        };
        let (target, sending) = BatchSender::spawn(
            sqs.clone(),
            redrive.target_url.clone(),
            &settings,
            Arc::new(NoObserver),
        );
        let (dlq, deleting) = BatchDeleter::spawn(
            sqs.clone(),
            redrive.dlq_url.clone(),
            &settings,
            Arc::new(NoObserver),
        );
        Queues {
            target,
            dlq,
            tasks: [sending, deleting],
        }
    }

    async fn finish(self) {
        let Queues { target, dlq, tasks } = self;
        drop((target, dlq));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// The queue whose redrive policy names `dlq_url`, when exactly one does
/// (ListDeadLetterSourceQueues).
pub async fn source_queue(sqs: &Client, dlq_url: &str) -> Result<String, RedriveError> {
    let output = sqs
        .list_dead_letter_source_queues()
        .queue_url(dlq_url)
        .send()
        .await
        .map_err(|e| {
            RedriveError(format!(
                "cannot find the DLQ's source queue: {}",
                error_chain(&e)
            ))
        })?;
    match output.queue_urls() {
        [one] => Ok(one.clone()),
        [] => Err(RedriveError(
            "no queue uses this DLQ; give --to QUEUE_URL".to_owned(),
        )),
        many => Err(RedriveError(format!(
            "{} queues use this DLQ; give --to QUEUE_URL",
            many.len()
        ))),
    }
}

fn receipt(m: &Message) -> (String, String) {
    (
        m.message_id().unwrap_or_default().to_owned(),
        m.receipt_handle().unwrap_or_default().to_owned(),
    )
}

/// A received message in the form a dry run prints.
pub fn listed(m: &Message) -> Listed<'_> {
    let mut attributes: Vec<&str> = m
        .message_attributes()
        .map(|a| a.keys().map(String::as_str).collect())
        .unwrap_or_default();
    attributes.sort_unstable();
    Listed {
        message_id: m.message_id().unwrap_or_default(),
        body: m.body().unwrap_or_default(),
        attributes,
    }
}
