//! Redrive: messages from a dead-letter queue back to a queue. Each batch
//! is received, sent to the target with its body and message attributes
//! (SendMessageBatch), and deleted from the dead-letter queue only for the
//! entries the target accepted. A dry run receives, prints and releases.

use std::collections::HashSet;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, SendMessageBatchRequestEntry,
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
        let fifo = crate::enqueue::is_fifo(&self.target_url);
        let mut held: Vec<(String, String)> = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let remaining = self
                .limit
                .map_or(10, |l| l.saturating_sub(summary.received));
            if remaining == 0 {
                break;
            }
            let messages = self.receive(sqs, remaining.min(10) as i32).await?;
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
            self.move_batch(sqs, fresh, fifo, &mut summary).await;
        }
        if !held.is_empty() {
            self.release(sqs, &held, &mut summary).await;
        }
        Ok(summary)
    }

    async fn receive(&self, sqs: &Client, max: i32) -> Result<Vec<Message>, RedriveError> {
        let output = sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(max)
            .visibility_timeout(HOLD_SECS)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .send()
            .await
            .map_err(|e| {
                RedriveError(format!("cannot receive from the DLQ: {}", error_chain(&e)))
            })?;
        Ok(output.messages.unwrap_or_default())
    }

    async fn move_batch(
        &self,
        sqs: &Client,
        batch: Vec<Message>,
        fifo: bool,
        summary: &mut RedriveSummary,
    ) {
        let mut entries = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let system = m.attributes();
            let system_value =
                |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name)).cloned();
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(m.body().unwrap_or_default())
                .set_message_attributes(m.message_attributes().cloned())
                .set_message_group_id(
                    fifo.then(|| system_value(MessageSystemAttributeName::MessageGroupId))
                        .flatten(),
                )
                .set_message_deduplication_id(
                    fifo.then(|| system_value(MessageSystemAttributeName::MessageDeduplicationId))
                        .flatten(),
                )
                .build();
            match entry {
                Ok(entry) => entries.push(entry),
                Err(e) => summary.errors.push(format!("message {i}: {e}")),
            }
        }
        let sent = sqs
            .send_message_batch()
            .queue_url(&self.target_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let accepted: HashSet<String> = match sent {
            Ok(output) => {
                for f in output.failed() {
                    summary.errors.push(format!(
                        "send failed: {}: {}",
                        f.code(),
                        f.message().unwrap_or("")
                    ));
                }
                output
                    .successful()
                    .iter()
                    .map(|s| s.id().to_owned())
                    .collect()
            }
            Err(e) => {
                summary
                    .errors
                    .push(format!("cannot send to the target: {}", error_chain(&e)));
                HashSet::new()
            }
        };
        let (done, not_done): (Vec<_>, Vec<_>) = batch
            .iter()
            .enumerate()
            .partition(|(i, _)| accepted.contains(&i.to_string()));
        summary.failed += not_done.len();
        let not_done: Vec<(String, String)> = not_done.iter().map(|(_, m)| receipt(m)).collect();
        if !not_done.is_empty() {
            self.release(sqs, &not_done, summary).await;
        }
        if done.is_empty() {
            return;
        }
        let deletes: Vec<DeleteMessageBatchRequestEntry> = done
            .iter()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        // Sent: counted as moved even if the delete fails (the message is
        // then on both queues, which the consumers' idempotency absorbs).
        summary.moved += done.len();
        match sqs
            .delete_message_batch()
            .queue_url(&self.dlq_url)
            .set_entries(Some(deletes))
            .send()
            .await
        {
            Ok(output) => {
                for f in output.failed() {
                    summary
                        .errors
                        .push(format!("sent but not deleted from the DLQ: {}", f.code()));
                }
            }
            Err(e) => summary.errors.push(format!(
                "sent but not deleted from the DLQ: {}",
                error_chain(&e)
            )),
        }
    }

    /// Makes held messages visible again at once.
    async fn release(&self, sqs: &Client, held: &[(String, String)], summary: &mut RedriveSummary) {
        for chunk in held.chunks(10) {
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
