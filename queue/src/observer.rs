//! Hooks for what a service does with batch outcomes beyond the entries'
//! own results: the gateway's readiness flag and metrics, the worker's
//! counters.

/// Called from the batcher's task after each call; keep it cheap.
pub trait BatchObserver: std::fmt::Debug + Send + Sync + 'static {
    /// One call to SQS finished (or failed as a whole).
    fn call_finished(&self, _report: &CallReport) {}
    /// `count` entries SQS failed are about to be sent again.
    fn entries_retried(&self, _count: usize) {}
}

/// What one call did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallReport {
    /// `SendMessageBatch` or `DeleteMessageBatch`.
    pub operation: &'static str,
    pub entries: usize,
    pub accepted: usize,
    pub seconds: f64,
    pub outcome: CallOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Every entry was done.
    Ok,
    /// SQS answered, but not every entry was done.
    Partial,
    /// The call itself failed: SQS did not answer usefully.
    Error,
}

impl CallOutcome {
    /// A metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Partial => "partial",
            CallOutcome::Error => "error",
        }
    }
}

/// For callers that only need each entry's result.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl BatchObserver for NoObserver {}
