//! One job per key at a time in this worker: duplicates of an event that
//! arrive together run one after the other, so the second finds the first
//! one's result and skips instead of copying the object again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Debug, Default)]
pub struct KeyLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl KeyLocks {
    /// Waits until no other job of this worker holds `key`.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = match self.locks.lock() {
                Ok(l) => l,
                Err(poisoned) => poisoned.into_inner(),
            };
            // Forget keys nobody holds or waits for.
            if locks.len() > 1024 {
                locks.retain(|_, weak| weak.strong_count() > 0);
            }
            match locks.get(key).and_then(Weak::upgrade) {
                Some(existing) => existing,
                None => {
                    let fresh = Arc::new(AsyncMutex::new(()));
                    locks.insert(key.to_owned(), Arc::downgrade(&fresh));
                    fresh
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_key_waits_other_keys_do_not() {
        let locks = KeyLocks::default();
        let held = locks.lock("a").await;
        let other =
            tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("b")).await;
        assert!(other.is_ok(), "another key is free");
        let same =
            tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("a")).await;
        assert!(same.is_err(), "the same key waits");
        drop(held);
        let again =
            tokio::time::timeout(std::time::Duration::from_millis(100), locks.lock("a")).await;
        assert!(again.is_ok());
    }
}
