//! Deletes handled messages in DeleteMessageBatch calls of up to 10,
//! flushing within a few milliseconds.

use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use ossbridge_runtime::error_chain;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::telemetry;

const LINGER: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct Deleter {
    tx: mpsc::UnboundedSender<String>,
}

impl Deleter {
    /// Starts the deleter; it stops once every clone is dropped, after
    /// flushing.
    pub fn spawn(sqs: aws_sdk_sqs::Client, queue_url: String) -> (Deleter, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Deleter { tx }, tokio::spawn(run(sqs, queue_url, rx)))
    }

    /// Queues a message's receipt handle for deletion.
    pub fn delete(&self, receipt_handle: String) {
        if self.tx.send(receipt_handle).is_err() {
            tracing::warn!(
                event = "sqs_delete_dropped",
                "deleter stopped; the message will reappear"
            );
        }
    }
}

async fn run(sqs: aws_sdk_sqs::Client, queue_url: String, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(first) = rx.recv().await {
        let mut handles = vec![first];
        let deadline = tokio::time::sleep(LINGER);
        tokio::pin!(deadline);
        while handles.len() < 10 {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(h) => handles.push(h),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        delete_batch(&sqs, &queue_url, handles).await;
    }
}

async fn delete_batch(sqs: &aws_sdk_sqs::Client, queue_url: &str, handles: Vec<String>) {
    let entries: Vec<DeleteMessageBatchRequestEntry> = handles
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(h)
                .build()
                .ok()
        })
        .collect();
    let count = entries.len();
    match sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => {
            for failed in out.failed() {
                // The copy is done; a redelivery finds it done and skips.
                tracing::warn!(
                    event = "sqs_delete_failed",
                    code = failed.code(),
                    "the message will reappear and be skipped"
                );
            }
            for _ in 0..count - out.failed().len() {
                telemetry::message("deleted");
            }
        }
        Err(e) => {
            tracing::warn!(event = "sqs_delete_failed", error = %error_chain(&e), messages = count)
        }
    }
}
