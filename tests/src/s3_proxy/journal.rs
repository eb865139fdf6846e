//! A journal of completed writes: the moment the store answered each
//! PutObject and CompleteMultipartUpload with a 2xx, i.e. when the object
//! became visible there, learnt without polling the store (`bench/lag.sh`).
//! Off until [`S3Proxy::journal_writes`](super::S3Proxy::journal_writes);
//! while off it costs an uncontended lock per accepted write.

use std::sync::Mutex;
use std::time::SystemTime;

use hyper::StatusCode;

use super::route::key_of;

/// One write the store accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
    /// `PutObject` or `CompleteMultipartUpload`.
    pub operation: &'static str,
    /// When the store's 2xx status line reached the proxy (before the
    /// proxy answers its client). A CompleteMultipartUpload that S3 would
    /// fail with an error in a 200 body is journaled too.
    pub at: SystemTime,
}

#[derive(Debug, Default)]
pub(super) struct Journal(Mutex<Option<Vec<Written>>>);

impl Journal {
    pub(super) fn start(&self) {
        if let Ok(mut journal) = self.0.lock() {
            journal.get_or_insert_with(Vec::new);
        }
    }

    /// Notes the store's answer to a request for `path` (`/bucket/key`).
    pub(super) fn record(&self, operation: &'static str, path: &str, status: StatusCode) {
        if !status.is_success() || !matches!(operation, "PutObject" | "CompleteMultipartUpload") {
            return;
        }
        let at = SystemTime::now();
        if let Ok(mut journal) = self.0.lock()
            && let Some(entries) = journal.as_mut()
        {
            let bucket = path.trim_start_matches('/').split('/').next();
            entries.push(Written {
                bucket: bucket.unwrap_or_default().to_owned(),
                key: key_of(path),
                operation,
                at,
            });
        }
    }

    /// The entries so far, oldest first; the journal stays on, empty.
    pub(super) fn take(&self) -> Vec<Written> {
        self.0
            .lock()
            .ok()
            .and_then(|mut journal| journal.as_mut().map(std::mem::take))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_successful_object_writes_are_journaled_once_started() {
        let journal = Journal::default();
        journal.record("PutObject", "/b/k", StatusCode::OK);
        assert!(journal.take().is_empty(), "off by default");
        journal.start();
        journal.record("PutObject", "/b/a%20b/c", StatusCode::OK);
        journal.record("PutObject", "/b/refused", StatusCode::PRECONDITION_FAILED);
        journal.record("GetObject", "/b/read", StatusCode::OK);
        journal.record("CompleteMultipartUpload", "/b/big", StatusCode::OK);
        let taken: Vec<_> = journal
            .take()
            .into_iter()
            .map(|w| (w.bucket, w.key, w.operation))
            .collect();
        assert_eq!(
            taken,
            [
                ("b".into(), "a b/c".into(), "PutObject"),
                ("b".into(), "big".into(), "CompleteMultipartUpload"),
            ]
        );
        assert!(journal.take().is_empty(), "taken entries are gone");
    }
}
