//! How an entry can fail, and which failures are worth trying again.

/// Why an entry did not make it. Every submitted entry ends in `Ok` or
/// exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The whole call failed after the SDK's own retries (SQS unreachable,
    /// throttling, 5xx): nothing in it was done.
    #[error("SQS {operation} failed: {detail}")]
    Unavailable {
        operation: &'static str,
        detail: String,
    },
    /// SQS kept reporting the entry failed (not its sender's fault) for
    /// every attempt.
    #[error("SQS {operation} entry still failing after {attempts} attempts: {code}")]
    EntryFailed {
        operation: &'static str,
        code: String,
        attempts: u32,
    },
    /// SQS refused the entry itself (a sender fault: a malformed message, a
    /// receipt handle that is no longer valid); sending it again fails the
    /// same way.
    #[error("SQS refused the entry: {code}: {message}")]
    Rejected { code: String, message: String },
    /// Larger than SQS accepts in one message; it was never sent.
    #[error("message of {bytes} bytes exceeds SQS's {limit}-byte limit")]
    TooLarge { bytes: usize, limit: usize },
    /// The batcher's task has ended (the process is stopping).
    #[error("the SQS batcher has stopped")]
    Stopped,
}

impl BatchError {
    /// Whether the same entry may succeed later: everything but what SQS
    /// refuses as such.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            BatchError::Rejected { .. } | BatchError::TooLarge { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_are_permanent() {
        let rejected = BatchError::Rejected {
            code: "ReceiptHandleIsInvalid".into(),
            message: String::new(),
        };
        let too_large = BatchError::TooLarge { bytes: 2, limit: 1 };
        assert!(!rejected.is_retryable() && !too_large.is_retryable());
        let failed = BatchError::EntryFailed {
            operation: "SendMessageBatch",
            code: "InternalError".into(),
            attempts: 3,
        };
        assert!(failed.is_retryable() && BatchError::Stopped.is_retryable());
    }
}
