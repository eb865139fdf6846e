//! What a sync did: the final summary (stdout and one `sync_summary` log
//! line) and the failures it names.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use serde::Serialize;

use super::progress::{Counters, add, get};

/// Failed keys named in the summary; the rest are only counted by reason,
/// so a sync where everything fails does not hold every key.
const MAX_NAMED_FAILURES: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failed {
    pub key: String,
    pub reason: String,
    pub error: String,
}

/// Failures as they happen.
#[derive(Debug, Default)]
pub struct Failures {
    inner: Mutex<(BTreeMap<String, u64>, Vec<Failed>)>,
    /// Key ranges whose listing failed: all of them, there are few.
    ranges: Mutex<Vec<String>>,
}

impl Failures {
    /// A key range whose listing failed (`prefix` "" is the bucket root):
    /// counted as a failure and named in the summary.
    pub fn record_range(&self, counters: &Counters, prefix: &str, reason: &str, error: String) {
        self.record(counters, prefix, reason, error);
        if let Ok(mut ranges) = self.ranges.lock() {
            ranges.push(prefix.to_owned());
        }
    }

    pub fn failed_ranges(&self) -> Vec<String> {
        let mut ranges = self.ranges.lock().map(|r| r.clone()).unwrap_or_default();
        ranges.sort();
        ranges
    }

    pub fn record(&self, counters: &Counters, key: &str, reason: &str, error: String) {
        add(&counters.failed, 1);
        tracing::warn!(event = "sync_failed", key, reason, error = %error);
        if let Ok(mut inner) = self.inner.lock() {
            *inner.0.entry(reason.to_owned()).or_default() += 1;
            if inner.1.len() < MAX_NAMED_FAILURES {
                inner.1.push(Failed {
                    key: key.to_owned(),
                    reason: reason.to_owned(),
                    error,
                });
            }
        }
    }

    fn take(&self) -> (BTreeMap<String, u64>, Vec<Failed>) {
        self.inner
            .lock()
            .map(|mut i| std::mem::take(&mut *i))
            .unwrap_or_default()
    }
}

/// The outcome of one sync.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub mode: &'static str,
    pub dry_run: bool,
    pub source_objects: u64,
    pub source_bytes: u64,
    pub destination_objects: u64,
    pub to_copy: u64,
    pub to_copy_bytes: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    pub metadata_updated: u64,
    pub adopted: u64,
    pub enqueued: u64,
    /// Skipped: the destination already holds the source's version.
    pub already_current: u64,
    /// At the destination only.
    pub extra: u64,
    pub to_delete: u64,
    pub deleted: u64,
    pub delete_skipped: u64,
    pub vanished: u64,
    pub failed: u64,
    pub failure_reasons: BTreeMap<String, u64>,
    /// The first failures, by key.
    pub failures: Vec<Failed>,
    /// Key ranges (prefixes; "" is the bucket root) whose listing failed:
    /// nothing in them was deleted.
    pub failed_ranges: Vec<String>,
    /// Why the deletes were refused as a whole (the circuit breaker or the
    /// empty-source guard), if they were.
    pub deletes_refused: Option<String>,
    /// Stopped by a signal before finishing.
    pub interrupted: bool,
    pub seconds: f64,
}

impl Summary {
    pub(crate) fn collect(counters: &Counters, failures: &Failures) -> Summary {
        let failed_ranges = failures.failed_ranges();
        let (failure_reasons, failures) = failures.take();
        Summary {
            failed_ranges,
            source_objects: get(&counters.source_objects),
            source_bytes: get(&counters.source_bytes),
            destination_objects: get(&counters.destination_objects),
            to_copy: get(&counters.to_copy),
            to_copy_bytes: get(&counters.to_copy_bytes),
            copied: get(&counters.copied),
            copied_bytes: get(&counters.copied_bytes),
            metadata_updated: get(&counters.metadata_updated),
            adopted: get(&counters.adopted),
            enqueued: get(&counters.enqueued),
            already_current: get(&counters.already_current),
            extra: get(&counters.extra),
            to_delete: get(&counters.to_delete),
            deleted: get(&counters.deleted),
            delete_skipped: get(&counters.delete_skipped),
            vanished: get(&counters.vanished),
            failed: get(&counters.failed),
            failure_reasons,
            failures,
            ..Summary::default()
        }
    }

    /// Whether the sync finished with nothing failed.
    pub fn ok(&self) -> bool {
        self.failed == 0 && !self.interrupted
    }

    /// The summary as one JSON log line.
    pub fn log(&self) {
        let reasons = serde_json::to_string(&self.failure_reasons).unwrap_or_default();
        let failed_ranges = serde_json::to_string(&self.failed_ranges).unwrap_or_default();
        tracing::info!(
            event = "sync_summary",
            mode = self.mode,
            dry_run = self.dry_run,
            source_objects = self.source_objects,
            source_bytes = self.source_bytes,
            destination_objects = self.destination_objects,
            to_copy = self.to_copy,
            to_copy_bytes = self.to_copy_bytes,
            copied = self.copied,
            copied_bytes = self.copied_bytes,
            metadata_updated = self.metadata_updated,
            adopted = self.adopted,
            enqueued = self.enqueued,
            already_current = self.already_current,
            extra = self.extra,
            to_delete = self.to_delete,
            deleted = self.deleted,
            delete_skipped = self.delete_skipped,
            vanished = self.vanished,
            failed = self.failed,
            failure_reasons = %reasons,
            failed_ranges = %failed_ranges,
            deletes_refused = self.deletes_refused.as_deref().unwrap_or(""),
            interrupted = self.interrupted,
            seconds = self.seconds,
        );
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = match (self.dry_run, self.interrupted) {
            (true, _) => "sync summary (dry run, nothing changed)",
            (false, true) => "sync summary (interrupted)",
            (false, false) => "sync summary",
        };
        writeln!(f, "{title}, {} mode, {:.1} s", self.mode, self.seconds)?;
        writeln!(
            f,
            "  listed:          {} source objects ({} bytes), {} destination objects",
            self.source_objects, self.source_bytes, self.destination_objects
        )?;
        writeln!(
            f,
            "  to copy:         {} ({} bytes)",
            self.to_copy, self.to_copy_bytes
        )?;
        writeln!(
            f,
            "  copied:          {} ({} bytes)",
            self.copied, self.copied_bytes
        )?;
        if self.metadata_updated > 0 {
            writeln!(f, "  metadata updated: {}", self.metadata_updated)?;
        }
        if self.adopted > 0 {
            writeln!(
                f,
                "  adopted:         {} (same bytes already there; recorded, not downloaded)",
                self.adopted
            )?;
        }
        if self.enqueued > 0 || self.mode == "enqueue" {
            writeln!(f, "  enqueued:        {}", self.enqueued)?;
        }
        writeln!(f, "  already current: {}", self.already_current)?;
        writeln!(f, "  only at destination: {}", self.extra)?;
        writeln!(
            f,
            "  deleted:         {} (of {} to delete)",
            self.deleted, self.to_delete
        )?;
        if let Some(why) = &self.deletes_refused {
            writeln!(f, "  deletes refused: {why}")?;
        }
        if self.delete_skipped > 0 {
            writeln!(
                f,
                "  not deleted:     {} (back at the source when the delete ran)",
                self.delete_skipped
            )?;
        }
        if self.vanished > 0 {
            writeln!(f, "  source vanished: {}", self.vanished)?;
        }
        writeln!(f, "  failed:          {}", self.failed)?;
        if !self.failed_ranges.is_empty() {
            let names: Vec<String> = self
                .failed_ranges
                .iter()
                .map(|p| {
                    if p.is_empty() {
                        "(bucket root)".to_owned()
                    } else {
                        format!("{p:?}")
                    }
                })
                .collect();
            writeln!(
                f,
                "  ranges not listed (nothing deleted in them): {}",
                names.join(", ")
            )?;
        }
        for (reason, n) in &self.failure_reasons {
            writeln!(f, "    {reason}: {n}")?;
        }
        for failed in &self.failures {
            writeln!(
                f,
                "    failed {:?} ({}): {}",
                failed.key, failed.reason, failed.error
            )?;
        }
        Ok(())
    }
}
