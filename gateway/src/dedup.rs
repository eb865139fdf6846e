//! Recently enqueued idempotency keys (bounded, with a TTL), so MNS and
//! EventBridge retries and duplicates do not multiply queue traffic.
//!
//! A key is remembered only after SQS accepted its message: remembering it
//! earlier would make a retry after a failed enqueue look like a duplicate
//! and the event would be lost.

use std::collections::HashSet;
use std::time::Duration;

use ossbridge_message::QueueMessage;

use crate::config::DedupConfig;

#[derive(Debug, Clone)]
pub struct Dedup {
    seen: Option<moka::sync::Cache<String, ()>>,
}

impl Dedup {
    pub fn new(config: &DedupConfig) -> Dedup {
        let seen = (config.capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.capacity)
                .time_to_live(Duration::from_secs(config.ttl_secs))
                .build()
        });
        Dedup { seen }
    }

    /// Drops messages already enqueued recently, or twice in `messages`;
    /// returns how many were dropped.
    pub fn remove_duplicates(&self, messages: &mut Vec<QueueMessage>) -> usize {
        let before = messages.len();
        let mut in_request = HashSet::new();
        messages.retain(|m| {
            let recent = self
                .seen
                .as_ref()
                .is_some_and(|s| s.contains_key(&m.idempotency_key));
            !recent && in_request.insert(m.idempotency_key.clone())
        });
        before - messages.len()
    }

    /// Remembers messages SQS accepted.
    pub fn remember(&self, messages: &[QueueMessage]) {
        if let Some(seen) = &self.seen {
            for m in messages {
                seen.insert(m.idempotency_key.clone(), ());
            }
        }
    }
}
