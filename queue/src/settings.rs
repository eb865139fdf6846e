//! How a batcher coalesces and retries: each service picks its own
//! trade-off between latency and calls.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::limits::{BatchLimits, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};

#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// How long a batch that is not full waits for more entries. Zero
    /// sends at once whatever is already waiting.
    pub linger: Duration,
    /// Whether a batch that is not full waits out the linger even when no
    /// call is in flight. When `false`, it waits only while calls are in
    /// flight and leaves once none is (Nagle's rule): an entry that finds
    /// the queue idle goes at once, and entries arriving while a call is
    /// out gather behind it, so a sender pushing one event at a time never
    /// waits for a linger, while a busy stream still coalesces.
    pub linger_when_idle: bool,
    /// Entries per call; SQS's 10 at most.
    pub max_entries: usize,
    /// Bytes (bodies and attributes) per call; SQS's 1 MiB at most.
    pub max_bytes: usize,
    /// Calls outstanding at once.
    pub max_in_flight: usize,
    /// Attempts for an entry SQS reports as failed (not a sender fault),
    /// the first included. A call that fails as a whole is not repeated:
    /// the SDK client has already retried it.
    pub entry_attempts: u32,
    /// Wait before the first retry of failed entries; it doubles (with
    /// jitter) up to `max_retry_delay`.
    pub first_retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// Entries waiting for a call; beyond it, submitting waits
    /// (back-pressure).
    pub capacity: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            linger: Duration::from_millis(10),
            linger_when_idle: true,
            max_entries: MAX_BATCH_ENTRIES,
            max_bytes: MAX_BATCH_BYTES,
            max_in_flight: 16,
            entry_attempts: 3,
            first_retry_delay: Duration::from_millis(50),
            max_retry_delay: Duration::from_secs(2),
            capacity: 1024,
        }
    }
}

impl BatchSettings {
    pub(crate) fn limits(&self) -> BatchLimits {
        BatchLimits::within_sqs(self.max_entries, self.max_bytes)
    }

    /// The waits before the second, third, ... attempt of a failed entry;
    /// the iterator ends when no attempt is left.
    pub(crate) fn retry_delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.first_retry_delay)
            .with_max_delay(self.max_retry_delay)
            .with_max_times(self.entry_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_delay_per_attempt_after_the_first_growing_and_bounded() {
        let settings = BatchSettings {
            entry_attempts: 5,
            first_retry_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_millis(300),
            ..BatchSettings::default()
        };
        let delays: Vec<Duration> = settings.retry_delays().collect();
        assert_eq!(delays.len(), 4);
        // Jitter adds up to the delay itself.
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] < Duration::from_millis(200));
        assert!(
            delays.iter().all(|d| *d < Duration::from_millis(600)),
            "{delays:?}"
        );
        let once = BatchSettings {
            entry_attempts: 1,
            ..BatchSettings::default()
        };
        assert_eq!(once.retry_delays().count(), 0);
    }
}
