//! Deletes wait until every range has been listed, then pass a circuit
//! breaker before the first one is issued.
//!
//! A destination key becomes a delete candidate when the source listing of
//! its range did not have it. Listings can lie by omission (a page marked
//! truncated without a token, an object created after the listing began),
//! so a candidate is kept only if its whole range listed cleanly, the
//! total must pass `--max-delete` / `--max-delete-percent` and the
//! empty-source guard, and each delete still goes through the copy engine,
//! which deletes only if the source has no such key at that moment.

use std::sync::Mutex;

/// `--max-delete-percent` when not given: a sync that would delete more
/// than this share of the destination is more likely a broken listing or
/// a wrong prefix than a real change.
pub const DEFAULT_MAX_DELETE_PERCENT: f64 = 5.0;

/// The limits a run's deletes must pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeleteLimits {
    /// `--max-delete`: at most this many deletes.
    pub max_count: Option<u64>,
    /// `--max-delete-percent`: at most this share of the destination's
    /// objects in scope (0–100).
    pub max_percent: f64,
    /// `--allow-empty-source`: delete even when the source lists nothing.
    pub allow_empty_source: bool,
}

impl Default for DeleteLimits {
    fn default() -> Self {
        DeleteLimits {
            max_count: None,
            max_percent: DEFAULT_MAX_DELETE_PERCENT,
            allow_empty_source: false,
        }
    }
}

impl DeleteLimits {
    /// Why `candidates` deletes must not run, if they must not:
    /// `(reason label, message naming the flag that would allow them)`.
    pub fn refuse(
        &self,
        candidates: u64,
        source_objects: u64,
        destination_objects: u64,
    ) -> Option<(&'static str, String)> {
        if candidates == 0 {
            return None;
        }
        if source_objects == 0 && !self.allow_empty_source {
            return Some((
                "empty_source",
                format!(
                    "the source lists no objects while the destination has {destination_objects}; \
                     refusing to delete {candidates} without --allow-empty-source"
                ),
            ));
        }
        if let Some(max) = self.max_count
            && candidates > max
        {
            return Some((
                "delete_limit",
                format!(
                    "{candidates} deletes exceed --max-delete {max}; nothing deleted \
                     (look with --dry-run, then raise --max-delete)"
                ),
            ));
        }
        // Compared in integers scaled by 100, so 5 % of 20 objects allows
        // exactly one.
        let allowed_x100 =
            (self.max_percent * 100.0).round() as u128 * u128::from(destination_objects);
        if u128::from(candidates) * 10_000 > allowed_x100 {
            let percent = candidates as f64 * 100.0 / destination_objects.max(1) as f64;
            return Some((
                "delete_limit",
                format!(
                    "{candidates} deletes are {percent:.1} % of the destination's {destination_objects} \
                     objects, over --max-delete-percent {}; nothing deleted (look with --dry-run, \
                     then raise --max-delete-percent)",
                    self.max_percent
                ),
            ));
        }
        None
    }
}

/// Delete candidates of the ranges that listed cleanly.
#[derive(Debug, Default)]
pub struct Pending {
    keys: Mutex<Vec<String>>,
}

impl Pending {
    /// A range's candidates, once its listing has ended without error.
    pub fn add_range(&self, keys: Vec<String>) {
        if let Ok(mut all) = self.keys.lock() {
            all.extend(keys);
        }
    }

    pub fn take(&self) -> Vec<String> {
        self.keys
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_refuses_before_any_delete_and_names_the_flag() {
        let limits = DeleteLimits::default();
        assert_eq!(limits.refuse(0, 0, 1_000), None);
        assert_eq!(limits.refuse(1, 20, 20), None, "5 % of 20 is one");
        let (reason, why) = limits.refuse(2, 20, 20).expect("over 5 %");
        assert_eq!(reason, "delete_limit");
        assert!(why.contains("--max-delete-percent 5"), "{why}");
        let (reason, why) = limits.refuse(3, 0, 3).expect("empty source");
        assert_eq!(reason, "empty_source");
        assert!(why.contains("--allow-empty-source"), "{why}");

        let counted = DeleteLimits {
            max_count: Some(10),
            max_percent: 100.0,
            allow_empty_source: true,
        };
        assert_eq!(counted.refuse(10, 0, 10), None);
        let (_, why) = counted.refuse(11, 5, 100).expect("over the count");
        assert!(why.contains("--max-delete 10"), "{why}");
    }
}
