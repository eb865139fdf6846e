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
use std::time::{Duration, Instant};

use ossbridge_message::QueueMessage;
use sha2::{Digest, Sha256};

use crate::config::DedupConfig;

/// Keys with when SQS accepted them, bounded by count. The cache is
/// quick_cache (CLOCK-Pro eviction, sharded locks, no background work):
/// moka, with its TTL, admission sketch and maintenance tasks, cost about
/// 4 % of the gateway's CPU per event in profiles (docs/benchmarks.md).
/// The TTL is checked on lookup instead: an entry older than it is no
/// longer a duplicate, and eviction makes room for new keys.
#[derive(Debug, Clone)]
pub struct Dedup {
    seen: Option<std::sync::Arc<quick_cache::sync::Cache<ScopedKey, Instant>>>,
    ttl: Duration,
}

impl Dedup {
    pub fn new(config: &DedupConfig) -> Dedup {
        let seen = (config.capacity > 0).then(|| {
            let capacity = usize::try_from(config.capacity).unwrap_or(usize::MAX);
            std::sync::Arc::new(quick_cache::sync::Cache::new(capacity))
        });
        Dedup {
            seen,
            ttl: Duration::from_secs(config.ttl_secs),
        }
    }

    fn is_recent(&self, key: &ScopedKey) -> bool {
        self.seen
            .as_ref()
            .and_then(|seen| seen.get(key))
            .is_some_and(|accepted| accepted.elapsed() < self.ttl)
    }

    /// Drops messages already enqueued on `queue_url` recently, or twice in
    /// `messages`; returns how many were dropped.
    pub fn remove_duplicates(&self, queue_url: &str, messages: &mut Vec<QueueMessage>) -> usize {
        let before = messages.len();
        let mut in_request = HashSet::new();
        messages.retain(|m| {
            let key = scoped(queue_url, &m.idempotency_key);
            !self.is_recent(&key) && in_request.insert(key)
        });
        before - messages.len()
    }

    /// Remembers messages `queue_url` accepted.
    pub fn remember(&self, queue_url: &str, messages: &[QueueMessage]) {
        if let Some(seen) = &self.seen {
            let now = Instant::now();
            for m in messages {
                seen.insert(scoped(queue_url, &m.idempotency_key), now);
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

    #[test]
    fn a_key_older_than_the_ttl_is_no_duplicate() {
        let dedup = Dedup::new(&DedupConfig {
            capacity: 100,
            ttl_secs: 0,
        });
        dedup.remember("q1", &[message("a")]);
        let mut again = vec![message("a")];
        assert_eq!(dedup.remove_duplicates("q1", &mut again), 0);
    }

    #[test]
    fn capacity_bounds_what_is_remembered() {
        let dedup = Dedup::new(&DedupConfig {
            capacity: 10,
            ttl_secs: 60,
        });
        let many: Vec<QueueMessage> = (0..1000).map(|i| message(&i.to_string())).collect();
        dedup.remember("q1", &many);
        let seen = dedup.seen.as_ref().map_or(0, |s| s.len());
        assert!(seen <= 10, "{seen} keys kept");
    }
}
