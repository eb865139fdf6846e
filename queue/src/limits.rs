//! SQS's limits on batch calls and message ids, in one place, so that no
//! caller packs a batch SQS refuses as a whole.
//!
//! The byte limits are the current SendMessageBatch reference: "The maximum
//! allowed individual message size and the maximum total payload size (the
//! sum of the individual lengths of all of the batched messages) are both
//! 1 MiB 1,048,576 bytes" (AWS raised both from 256 KiB in 2025; a queue's
//! own `MaximumMessageSize` attribute can still be set lower, and SQS then
//! refuses larger messages one by one, as sender faults).
//! <https://docs.aws.amazon.com/goto/SdkForKotlin/sqs-2012-11-05/SendMessageBatch>,
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>
//!
//! The id limits are the message quotas:
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html>

use std::time::Duration;

/// Entries per SendMessageBatch, DeleteMessageBatch and
/// ChangeMessageVisibilityBatch call.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Body plus message attributes of all entries of one SendMessageBatch.
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// Body plus message attributes of one message.
pub const MAX_MESSAGE_BYTES: usize = 1_048_576;

/// Characters of a `MessageGroupId` or `MessageDeduplicationId`.
pub const MAX_FIFO_ID_CHARS: usize = 128;

/// How long a FIFO queue drops a message whose deduplication id it has
/// already accepted.
pub const FIFO_DEDUPLICATION_WINDOW: Duration = Duration::from_secs(300);

/// How many entries and bytes one call may carry: what the caller asked
/// for, never more than SQS accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl BatchLimits {
    /// `max_entries` and `max_bytes` clamped to SQS's limits (and to at
    /// least one entry, one byte).
    pub fn within_sqs(max_entries: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_entries: max_entries.clamp(1, MAX_BATCH_ENTRIES),
            max_bytes: max_bytes.clamp(1, MAX_BATCH_BYTES),
        }
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits::within_sqs(MAX_BATCH_ENTRIES, MAX_BATCH_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_limits_never_exceed_what_sqs_accepts() {
        let l = BatchLimits::within_sqs(50, 4 * MAX_BATCH_BYTES);
        assert_eq!((l.max_entries, l.max_bytes), (10, 1_048_576));
        let l = BatchLimits::within_sqs(0, 0);
        assert_eq!((l.max_entries, l.max_bytes), (1, 1));
        let l = BatchLimits::within_sqs(4, 2048);
        assert_eq!((l.max_entries, l.max_bytes), (4, 2048));
    }
}
