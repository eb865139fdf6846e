//! Refusals no retry can change, decided before anything is written: an
//! object S3 cannot hold, one a queue worker cannot copy within SQS's
//! visibility limit, and metadata S3 cannot hold.

use super::recorded::{S3_USER_METADATA_LIMIT, destination_metadata, user_metadata_size};
use super::{MAX_OBJECT_SIZE, SourceObject};
use crate::error::CopyError;

/// `max_object_size` is what the job's lease allows (`None`: no limit).
pub fn check(
    source: &SourceObject,
    max_object_size: Option<u64>,
    copy_user_metadata: bool,
) -> Result<(), CopyError> {
    if source.size > MAX_OBJECT_SIZE {
        return Err(CopyError::permanent(
            "copy",
            "too_large",
            format!(
                "{:?} is {} bytes; S3 objects are limited to {MAX_OBJECT_SIZE} bytes (5 TiB)",
                source.key, source.size
            ),
        ));
    }
    if let Some(limit) = max_object_size
        && source.size > limit
    {
        return Err(CopyError::permanent(
            "copy",
            "too_large_for_queue",
            format!(
                "{:?} is {} bytes; at worker.lease_throughput_mib_per_sec a queue worker cannot \
                 copy more than {limit} bytes within SQS's 12-hour visibility limit; copy it \
                 with `ossbridge-transfer sync --include` (no queue, no limit)",
                source.key, source.size
            ),
        ));
    }
    let size = user_metadata_size(&destination_metadata(source, copy_user_metadata));
    if size > S3_USER_METADATA_LIMIT {
        return Err(CopyError::permanent(
            "copy",
            "metadata_too_large",
            format!(
                "{:?} carries {size} bytes of user metadata with ossbridge's records; S3 allows \
                 {S3_USER_METADATA_LIMIT} (OSS allows 8 KiB); shorten it at the source or set \
                 copy.copy_metadata = false",
                source.key
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::WorkerConfig;

    fn object(size: u64, meta_bytes: usize) -> SourceObject {
        SourceObject {
            key: "k".into(),
            size,
            etag: "\"E\"".into(),
            user_metadata: HashMap::from([("note".to_owned(), "x".repeat(meta_bytes))]),
            ..SourceObject::default()
        }
    }

    fn reason(result: Result<(), CopyError>) -> Option<&'static str> {
        result.err().map(|e| {
            assert!(!e.is_retryable(), "{e}");
            e.reason
        })
    }

    #[test]
    fn s3_s_five_tebibytes_bound_every_copy() {
        assert_eq!(reason(check(&object(MAX_OBJECT_SIZE, 0), None, true)), None);
        assert_eq!(
            reason(check(&object(MAX_OBJECT_SIZE + 1, 0), None, true)),
            Some("too_large")
        );
    }

    #[test]
    fn a_queue_worker_refuses_what_it_cannot_copy_within_twelve_hours() {
        let worker = WorkerConfig {
            lease_throughput_mib_per_sec: 50,
            ..WorkerConfig::default()
        };
        let limit = worker.max_object_size();
        assert_eq!(limit, 50 * 1024 * 1024 * 12 * 3600);
        assert_eq!(reason(check(&object(limit, 0), Some(limit), true)), None);
        assert_eq!(
            reason(check(&object(limit + 1, 0), Some(limit), true)),
            Some("too_large_for_queue")
        );
        // `sync` holds no message.
        assert_eq!(reason(check(&object(limit + 1, 0), None, true)), None);
    }

    #[test]
    fn metadata_over_s3_s_two_kilobytes_is_refused_unless_not_copied() {
        assert_eq!(reason(check(&object(1, 1500), None, true)), None);
        assert_eq!(
            reason(check(&object(1, 2048), None, true)),
            Some("metadata_too_large")
        );
        assert_eq!(reason(check(&object(1, 2048), None, false)), None);
    }
}
