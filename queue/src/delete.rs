//! DeleteMessageBatch through the batcher: [`BatchDeleter`].

use std::sync::Arc;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::task::JoinHandle;

use crate::batcher::Batcher;
use crate::call::{BatchCall, EntryOutcome, answered, sealed};
use crate::error::BatchError;
use crate::observer::BatchObserver;
use crate::settings::BatchSettings;

/// Deletes messages of one queue by receipt handle in DeleteMessageBatch
/// calls, retrying the entries SQS failed; see [`Batcher`] for how, and
/// [`BatchDeleter::spawn`] to start one.
pub type BatchDeleter = Batcher<DeleteMessages>;

/// DeleteMessageBatch on one queue.
#[derive(Debug)]
pub struct DeleteMessages {
    client: Client,
    queue_url: String,
}

impl sealed::Sealed for DeleteMessages {}

/// The receipt handle belongs to an expired receive (the message is
/// someone else's now, or gone): no retry can delete it.
const INVALID_RECEIPT: &str = "ReceiptHandleIsInvalid";

impl BatchCall for DeleteMessages {
    /// A receipt handle.
    type Item = String;
    const OPERATION: &'static str = "DeleteMessageBatch";

    /// Deletes carry no payload; only the entry count limits them.
    fn size(_: &String) -> usize {
        0
    }

    fn check(&self, receipt_handle: &String) -> Result<(), BatchError> {
        if receipt_handle.is_empty() {
            return Err(BatchError::Rejected {
                code: INVALID_RECEIPT.to_owned(),
                message: "empty receipt handle".to_owned(),
            });
        }
        Ok(())
    }

    async fn call(&self, receipt_handles: Vec<&String>) -> Result<Vec<EntryOutcome>, String> {
        let n = receipt_handles.len();
        // The builder fails only without an id or a handle, both always set.
        let requests = receipt_handles
            .into_iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(requests))
            .send();
        let mut result = answered(n, sent).await?;
        for outcome in &mut result {
            if let EntryOutcome::Failed {
                code, sender_fault, ..
            } = outcome
                && code == INVALID_RECEIPT
            {
                *sender_fault = true;
            }
        }
        Ok(result)
    }
}

impl Batcher<DeleteMessages> {
    /// Starts the deleter of `queue_url`.
    pub fn spawn(
        client: Client,
        queue_url: impl Into<String>,
        settings: &BatchSettings,
        observer: Arc<dyn BatchObserver>,
    ) -> (BatchDeleter, JoinHandle<()>) {
        let call = DeleteMessages {
            client,
            queue_url: queue_url.into(),
        };
        Batcher::start(call, settings, observer)
    }
}
