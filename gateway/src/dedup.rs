//! Recently enqueued idempotency keys (bounded, with a TTL), so MNS and
//! EventBridge retries and duplicates do not multiply queue traffic.
//!
//! A key is remembered only after SQS accepted its message: remembering it
//! earlier would make a retry after a failed enqueue look like a duplicate
//! and the event would be lost. And it is remembered for the queue that
//! accepted it: the same event delivered to two sources with different
//! queues must reach both, while sources sharing a queue still drop each
//! other's duplicates.

use std::collections::HashSet;
use std::time::Duration;

use ossbridge_message::QueueMessage;
use sha2::{Digest, Sha256};

use crate::config::DedupConfig;

#[derive(Debug, Clone)]
pub struct Dedup {
    seen: Option<moka::sync::Cache<ScopedKey, ()>>,
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

    /// Drops messages already enqueued on `queue_url` recently, or twice in
    /// `messages`; returns how many were dropped.
    pub fn remove_duplicates(&self, queue_url: &str, messages: &mut Vec<QueueMessage>) -> usize {
        let before = messages.len();
        let mut in_request = HashSet::new();
        messages.retain(|m| {
            let key = scoped(queue_url, &m.idempotency_key);
            let recent = self.seen.as_ref().is_some_and(|s| s.contains_key(&key));
            !recent && in_request.insert(key)
        });
        before - messages.len()
    }

    /// Remembers messages `queue_url` accepted.
    pub fn remember(&self, queue_url: &str, messages: &[QueueMessage]) {
        if let Some(seen) = &self.seen {
            for m in messages {
                seen.insert(scoped(queue_url, &m.idempotency_key), ());
            }
        }
    }
}

/// The cache key: a digest of the queue and the message's idempotency key.
/// A fixed 32 bytes rather than the two strings joined: no allocation per
/// lookup and a short key to hash (the joined string cost a measurable
/// share of the gateway's CPU per event). SHA-256 keeps two different
/// pairs from sharing a key, which would drop an event as a duplicate.
type ScopedKey = [u8; 32];

fn scoped(queue_url: &str, idempotency_key: &str) -> ScopedKey {
    Sha256::new()
        .chain_update((queue_url.len() as u64).to_be_bytes())
        .chain_update(queue_url)
        .chain_update(idempotency_key)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use ossbridge_message::{CONTRACT_VERSION, Operation};

    use super::*;

    fn message(key: &str) -> QueueMessage {
        QueueMessage {
            key: key.to_owned(),
            size: 1,
            version: CONTRACT_VERSION,
            op: Operation::Copy,
            bucket: "b".into(),
            region: "r".into(),
            e_tag: "e".into(),
            event_name: "ObjectCreated:PutObject".into(),
            event_time: String::new(),
            request_id: "q".into(),
            source_id: "s".into(),
            idempotency_key: format!("idem-{key}"),
        }
    }

    #[test]
    fn duplicates_are_per_queue() {
        let dedup = Dedup::new(&DedupConfig {
            capacity: 100,
            ttl_secs: 60,
        });
        dedup.remember("q1", &[message("a")]);
        let mut again = vec![message("a"), message("b"), message("b")];
        assert_eq!(dedup.remove_duplicates("q1", &mut again), 2);
        assert_eq!(again, vec![message("b")]);
        let mut elsewhere = vec![message("a")];
        assert_eq!(dedup.remove_duplicates("q2", &mut elsewhere), 0);
    }
}
