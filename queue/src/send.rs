//! SendMessageBatch through the batcher: [`BatchSender`].

use std::sync::Arc;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::Message;
use tokio::task::JoinHandle;

use crate::batcher::Batcher;
use crate::call::{BatchCall, EntryOutcome, answered, sealed};
use crate::entry::Entry;
use crate::error::BatchError;
use crate::fifo;
use crate::limits::MAX_MESSAGE_BYTES;
use crate::observer::BatchObserver;
use crate::settings::BatchSettings;

/// Coalesces messages for one queue into SendMessageBatch calls; see
/// [`Batcher`] for how, and [`BatchSender::spawn`] to start one.
pub type BatchSender = Batcher<SendMessages>;

/// SendMessageBatch to one queue.
#[derive(Debug)]
pub struct SendMessages {
    client: Client,
    queue_url: String,
    fifo: bool,
}

impl sealed::Sealed for SendMessages {}

impl BatchCall for SendMessages {
    type Item = Entry;
    const OPERATION: &'static str = "SendMessageBatch";

    fn size(entry: &Entry) -> usize {
        entry.size()
    }

    fn check(&self, entry: &Entry) -> Result<(), BatchError> {
        let bytes = entry.size();
        if bytes > MAX_MESSAGE_BYTES {
            return Err(BatchError::TooLarge {
                bytes,
                limit: MAX_MESSAGE_BYTES,
            });
        }
        if !self.fifo {
            return Ok(());
        }
        // SQS (and its emulators) refuse a batch as a whole for one entry
        // without a valid group id; refused here, it fails only itself.
        for (name, id, required) in [
            ("MessageGroupId", &entry.group_id, true),
            ("MessageDeduplicationId", &entry.deduplication_id, false),
        ] {
            let valid = match id {
                Some(id) => fifo::is_valid_id(id),
                None => !required,
            };
            if !valid {
                return Err(BatchError::Rejected {
                    code: "InvalidParameterValue".to_owned(),
                    message: format!(
                        "a FIFO queue needs {name} of 1 to 128 alphanumeric or punctuation characters, got {id:?}"
                    ),
                });
            }
        }
        Ok(())
    }

    async fn call(&self, entries: Vec<&Entry>) -> Result<Vec<EntryOutcome>, String> {
        let n = entries.len();
        // The builder fails only without an id or a body, both always set.
        let requests = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| entry.to_request(i, self.fifo))
            .collect::<Result<Vec<_>, _>>()?;
        let sent = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(requests))
            .send();
        answered(n, sent).await
    }
}

impl Batcher<SendMessages> {
    /// Starts the sender of `queue_url`. Entries get their FIFO group and
    /// deduplication ids sent only if the URL names a FIFO queue.
    pub fn spawn(
        client: Client,
        queue_url: impl Into<String>,
        settings: &BatchSettings,
        observer: Arc<dyn BatchObserver>,
    ) -> (BatchSender, JoinHandle<()>) {
        let queue_url = queue_url.into();
        let call = SendMessages {
            client,
            fifo: fifo::is_fifo(&queue_url),
            queue_url,
        };
        Batcher::start(call, settings, observer)
    }

    pub fn queue_url(&self) -> &str {
        &self.call.queue_url
    }

    pub fn is_fifo(&self) -> bool {
        self.call.fifo
    }

    /// Hands a received message back to the queue as a new message, e.g.
    /// a long copy's message at shutdown, for another worker to take now
    /// rather than after its visibility timeout.
    ///
    /// The copy has the original's body, message attributes and FIFO group
    /// (receive it with [`crate::request_copy_attributes`] for those to be
    /// known) and `deduplication_id`, which must differ from the
    /// original's: a FIFO queue would otherwise drop the copy as a
    /// duplicate for five minutes. A standard queue ignores it.
    ///
    /// Resolves once SQS holds the copy. Only then delete the original
    /// (e.g. with a [`crate::BatchDeleter`]): a failure in between leaves
    /// the message twice on the queue, never nowhere.
    pub async fn resend(
        &self,
        received: &Message,
        deduplication_id: impl Into<String>,
    ) -> Result<(), BatchError> {
        let entry = Entry::copy_of(received).with_deduplication_id(deduplication_id);
        self.submit(entry).await.await
    }
}
