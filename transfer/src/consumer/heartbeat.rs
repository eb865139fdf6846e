//! Keeping a message invisible while its job runs, and telling the job the
//! moment that can no longer be promised.
//!
//! The visibility is extended every third of the timeout. The job's lease
//! is lost (and the job stops before writing anything more) when:
//!
//! - SQS refuses the extension in a way that means the message is not
//!   ours any more: `ReceiptHandleIsInvalid`, `MessageNotInflight` (its
//!   visibility already ran out and another worker may hold it), or an
//!   invalid visibility past SQS's limit;
//! - transient failures leave the visibility about to run out without a
//!   successful extension: past that moment another worker may receive it;
//! - SQS's 12-hour limit on a message's total invisibility, counted from
//!   its receipt, is near: it cannot be extended past it, and the message
//!   becomes visible then whatever we do.
//!
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html>
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html>

use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use ossbridge_runtime::error_chain;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::telemetry;

/// SQS's limit on a message's invisibility, from when it was received.
pub const SQS_VISIBILITY_CAP: Duration = Duration::from_secs(12 * 3600);

/// Error codes that mean the receipt handle no longer owns the message.
fn ownership_gone(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ReceiptHandleIsInvalid"
                | "AWS.SimpleQueueService.MessageNotInflight"
                | "MessageNotInflight"
                | "InvalidParameterValue"
        )
    )
}

/// Extends the visibility of the message behind `receipt` (received just
/// now) every third of `timeout_secs` until `stop`; cancels `lost` when
/// ownership ends before that.
pub async fn run(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    receipt: String,
    timeout_secs: i32,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let received = Instant::now();
    let timeout = Duration::from_secs(u64::try_from(timeout_secs).unwrap_or(30).max(1));
    let every = timeout / 3;
    // Stop this long before ownership could lapse: a write in flight when
    // the lease is lost is dropped, and the new owner must not see it land.
    let margin = (timeout / 6).min(Duration::from_secs(30));
    let cap = received + SQS_VISIBILITY_CAP;
    let mut owned_until = received + timeout;
    loop {
        let wake = (Instant::now() + every).min(owned_until - margin);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        let want = timeout.min(cap.saturating_duration_since(now));
        if want <= margin * 2 {
            return give_up(
                &lost,
                "visibility_cap",
                "SQS's 12-hour visibility limit is near",
            );
        }
        let extend = sqs
            .change_message_visibility()
            .queue_url(&queue_url)
            .receipt_handle(&receipt)
            .visibility_timeout(i32::try_from(want.as_secs()).unwrap_or(timeout_secs))
            .send();
        // The SDK's own retries must not carry the call past the moment
        // ownership can no longer be promised.
        let Ok(result) = tokio::time::timeout_at(owned_until - margin, extend).await else {
            return give_up(
                &lost,
                "expiring",
                "the visibility runs out before it could be extended",
            );
        };
        match result {
            Ok(_) => {
                owned_until = now + Duration::from_secs(want.as_secs());
                tracing::debug!(event = "visibility_extended", seconds = want.as_secs());
            }
            Err(e) if ownership_gone(e.code()) => {
                return give_up(&lost, "not_ours", &error_chain(&e));
            }
            Err(e) => {
                tracing::warn!(event = "visibility_extend_failed", error = %error_chain(&e));
            }
        }
        if Instant::now() + margin >= owned_until {
            return give_up(
                &lost,
                "expiring",
                "the visibility runs out before it could be extended",
            );
        }
    }
}

fn give_up(lost: &CancellationToken, reason: &'static str, detail: &str) {
    telemetry::lease_lost(reason);
    tracing::warn!(
        event = "lease_lost",
        reason,
        detail,
        "stopping the job before it writes"
    );
    lost.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ownership_errors_end_the_lease() {
        for code in [
            "ReceiptHandleIsInvalid",
            "AWS.SimpleQueueService.MessageNotInflight",
            "InvalidParameterValue",
        ] {
            assert!(ownership_gone(Some(code)), "{code}");
        }
        for code in [
            None,
            Some("ServiceUnavailable"),
            Some("ThrottlingException"),
        ] {
            assert!(!ownership_gone(code), "{code:?}");
        }
    }
}
