//! Deletes handled messages through the shared SQS deleter: batches of up
//! to 10 within a few milliseconds, entries SQS fails deleted again, an
//! invalid receipt handle (the visibility timeout passed) given up.

use std::sync::Arc;
use std::time::Duration;

use ossbridge_queue::{BatchDeleter, BatchSettings, NoObserver};
use tokio::task::JoinHandle;

use crate::telemetry;

#[derive(Debug, Clone)]
pub struct Deleter {
    inner: BatchDeleter,
}

impl Deleter {
    /// Starts the deleter; it stops once every clone is dropped, after
    /// its deletes are done.
    pub fn spawn(sqs: aws_sdk_sqs::Client, queue_url: String) -> (Deleter, JoinHandle<()>) {
        let settings = BatchSettings {
            linger: Duration::from_millis(20),
            entry_attempts: 5,
            first_retry_delay: Duration::from_millis(100),
            ..BatchSettings::default()
        };
        let (inner, task) = BatchDeleter::spawn(sqs, queue_url, &settings, Arc::new(NoObserver));
        (Deleter { inner }, task)
    }

    /// Queues a message's receipt handle for deletion; waits only while
    /// the deleter is full.
    pub async fn delete(&self, receipt_handle: String) {
        self.inner
            .submit_with(receipt_handle, |result| match result {
                Ok(()) => telemetry::message("deleted"),
                // The copy is done; a redelivery finds it done and skips.
                Err(e) => tracing::warn!(
                    event = "sqs_delete_failed",
                    error = %e,
                    "the message will reappear and be skipped"
                ),
            })
            .await;
    }
}
