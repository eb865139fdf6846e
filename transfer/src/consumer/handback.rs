//! Handing a message back at shutdown without costing it a receive.
//!
//! Releasing a message (visibility 0) counts against the queue's
//! `maxReceiveCount`: a long copy interrupted by a few deploys in a row
//! would end in the dead-letter queue although nothing is wrong with it.
//! So the worker sends a copy of the message (same body and attributes;
//! on a FIFO queue the same group and a new deduplication id, since this
//! resend is deliberate) and deletes the original only once SQS has
//! accepted the copy. Should the send fail, the message is released as
//! before, which at least lets another worker take it now; should the
//! delete fail, the job runs twice, which the copy engine makes harmless.

use std::sync::Arc;

use aws_sdk_sqs::types::Message;
use ossbridge_queue::{BatchSender, BatchSettings, NoObserver};
use ossbridge_runtime::error_chain;

pub async fn hand_back(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &Message,
    receipt: &str,
) {
    // The shared sender carries over the body, attributes and FIFO group
    // (queue/); a hand-back happens at shutdown only, so it gets its own.
    let (sender, task) = BatchSender::spawn(
        sqs.clone(),
        queue_url,
        &BatchSettings::default(),
        Arc::new(NoObserver),
    );
    let sent = sender
        .resend(message, uuid::Uuid::new_v4().to_string())
        .await;
    drop(sender);
    let _ = task.await;
    match sent {
        Ok(()) => {
            let deleted = sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await;
            match deleted {
                Ok(_) => tracing::info!(event = "message_handed_back"),
                Err(e) => tracing::warn!(
                    event = "handback_delete_failed",
                    error = %error_chain(&e),
                    "the job will run twice; the second finds it done"
                ),
            }
        }
        Err(e) => {
            tracing::warn!(event = "handback_failed", error = %e, "releasing the message instead");
            release(sqs, queue_url, receipt).await;
        }
    }
}

/// Makes the message visible again now (another worker takes it).
async fn release(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str) {
    let result = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(0)
        .send()
        .await;
    if let Err(e) = result {
        tracing::warn!(event = "sqs_release_failed", error = %error_chain(&e));
    }
}
