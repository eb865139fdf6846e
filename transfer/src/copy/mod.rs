//! Copying one object from the source bucket (OSS) to the destination
//! (S3), reconciled against the source at execution time:
//!
//! - a copy reads the source's state now (not the event's) and the
//!   destination's, and skips when the destination already holds this
//!   source version (recorded ETag and size); a copy whose source has
//!   vanished is skipped, or becomes a delete with delete propagation;
//! - a delete is skipped when the source exists again.
//!
//! So duplicated and reordered deliveries converge on the source's state.
//! Objects up to the multipart threshold stream through one GET into one
//! PUT (`single.rs`); larger ones are copied in parts (`multipart.rs`).
//!
//! When the message says the object is small, the source's state comes
//! from the GET itself (conditional on the ETag the destination recorded),
//! not from a HEAD first: one source request per object instead of two,
//! which halves what OSS bills for requests and saves a round trip.

mod keylock;
pub mod multipart;
pub mod single;
pub mod source;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{ObjectCannedAcl, ServerSideEncryption, StorageClass};
use backon::{ExponentialBuilder, Retryable};
use ossbridge_message::Operation;
use tokio::sync::Semaphore;

use crate::credentials::SsmCredentials;
use crate::error::CopyError;
use crate::telemetry;
pub use source::{Fetched, SourceObject, get_source, head_destination, head_source};

/// S3's largest object.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
pub const MIB: u64 = 1024 * 1024;

/// How objects are written at the destination.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub destination_prefix: String,
    pub multipart_threshold: u64,
    pub part_size: u64,
    pub part_concurrency: usize,
    pub storage_class: Option<StorageClass>,
    pub sse: Option<ServerSideEncryption>,
    pub sse_kms_key_id: Option<String>,
    pub acl: Option<ObjectCannedAcl>,
    pub copy_metadata: bool,
    pub propagate_deletes: bool,
    /// Multipart uploads older than this are aborted, not resumed.
    pub stale_upload_age: Duration,
    /// Attempts per job inside this worker (the queue retries beyond).
    pub attempts: usize,
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Copied {
        bytes: u64,
        parts_uploaded: usize,
        parts_reused: usize,
    },
    /// The destination already holds this source version.
    AlreadyCurrent,
    /// The source no longer has the key and deletes are not propagated.
    SourceMissing,
    Deleted,
    /// A delete whose source exists (again).
    DeleteSkipped,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Copied { .. } => "copied",
            Outcome::AlreadyCurrent => "already_current",
            Outcome::SourceMissing => "source_missing",
            Outcome::Deleted => "deleted",
            Outcome::DeleteSkipped => "delete_skipped",
        }
    }
}

#[derive(Debug)]
pub struct Copier {
    pub(crate) source: Client,
    pub(crate) source_bucket: String,
    pub(crate) destination: Client,
    pub(crate) destination_bucket: String,
    pub(crate) options: CopyOptions,
    credentials: Option<SsmCredentials>,
    /// Bytes of object data in flight, in MiB permits.
    bytes_in_flight: Arc<Semaphore>,
    max_in_flight_mib: u32,
    keys: keylock::KeyLocks,
}

impl Copier {
    pub fn new(
        source: Client,
        source_bucket: String,
        destination: Client,
        destination_bucket: String,
        options: CopyOptions,
        credentials: Option<SsmCredentials>,
        max_bytes_in_flight: u64,
    ) -> Copier {
        let max_in_flight_mib =
            (max_bytes_in_flight / MIB).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        Copier {
            source,
            source_bucket,
            destination,
            destination_bucket,
            options,
            credentials,
            bytes_in_flight: Arc::new(Semaphore::new(max_in_flight_mib as usize)),
            max_in_flight_mib,
            keys: keylock::KeyLocks::default(),
        }
    }

    pub fn source_bucket(&self) -> &str {
        &self.source_bucket
    }

    pub fn destination_bucket(&self) -> &str {
        &self.destination_bucket
    }

    pub fn destination_key(&self, key: &str) -> String {
        format!("{}{key}", self.options.destination_prefix)
    }

    /// Runs one job, retrying transient failures with exponential backoff
    /// and jitter. A refused credential triggers one re-read of the source
    /// keys from SSM (they may have been rotated) before it counts as
    /// permanent.
    ///
    /// `size_hint` is the size the message announced, if any: it only picks
    /// the cheaper path for small objects; the source's answer decides.
    pub async fn execute(
        &self,
        op: Operation,
        key: &str,
        size_hint: Option<u64>,
    ) -> Result<Outcome, CopyError> {
        let _one_at_a_time = self.keys.lock(key).await;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.options.attempts.saturating_sub(1))
            .with_jitter();
        let refreshed = std::sync::atomic::AtomicBool::new(false);
        (|| async {
            match self.attempt(op, key, size_hint).await {
                Err(e) if e.is_access_denied() && !refreshed.swap(true, std::sync::atomic::Ordering::Relaxed) => {
                    if let Some(credentials) = &self.credentials {
                        tracing::warn!(event = "credentials_refresh", reason = %e, "re-reading the source keys");
                        credentials.invalidate();
                    }
                    Err(CopyError::transient(e.operation, "access_denied", e.detail))
                }
                other => other,
            }
        })
        .retry(backoff)
        .when(CopyError::is_retryable)
        .notify(|e, wait| {
            telemetry::retry(e.reason);
            tracing::warn!(event = "job_retry", reason = e.reason, error = %e, wait_ms = wait.as_millis() as u64);
        })
        .await
    }

    async fn attempt(
        &self,
        op: Operation,
        key: &str,
        size_hint: Option<u64>,
    ) -> Result<Outcome, CopyError> {
        match op {
            Operation::Copy => {
                if size_hint.is_some_and(|size| size <= self.options.multipart_threshold)
                    && let Some(outcome) = self.copy_small(key, size_hint).await?
                {
                    return Ok(outcome);
                }
                self.copy(key).await
            }
            Operation::Delete => self.delete(key).await,
        }
    }

    /// The destination's HEAD, then one GET that yields the source's state
    /// and bytes together, then one PUT. `None` when the object turned out
    /// to be larger than the threshold (the message was stale).
    async fn copy_small(
        &self,
        key: &str,
        size_hint: Option<u64>,
    ) -> Result<Option<Outcome>, CopyError> {
        let destination_key = self.destination_key(key);
        let existing = head_destination(
            &self.destination,
            &self.destination_bucket,
            &destination_key,
        )
        .await?;
        // A 304 proves only the ETag; ask for one only when the destination
        // also has the announced size, so a damaged copy is rewritten.
        let recorded = existing
            .as_ref()
            .filter(|d| size_hint == Some(d.size))
            .and_then(|d| d.source_etag.as_deref());
        let (source, body) =
            match get_source(&self.source, &self.source_bucket, key, recorded).await? {
                Fetched::Missing => return self.source_missing(key).await.map(Some),
                Fetched::Unchanged => return Ok(Some(Outcome::AlreadyCurrent)),
                Fetched::Object(source, body) => (source, body),
            };
        if existing.is_some_and(|d| {
            d.size == source.size && d.source_etag.as_deref() == Some(source.etag_unquoted())
        }) {
            return Ok(Some(Outcome::AlreadyCurrent));
        }
        if source.size > self.options.multipart_threshold {
            return Ok(None);
        }
        let _budget = self.reserve(source.size).await?;
        let _in_flight = telemetry::InFlight::start(source.size);
        single::put(self, &source, body, &destination_key).await?;
        Ok(Some(Outcome::Copied {
            bytes: source.size,
            parts_uploaded: 0,
            parts_reused: 0,
        }))
    }

    async fn source_missing(&self, key: &str) -> Result<Outcome, CopyError> {
        if self.options.propagate_deletes {
            return self.delete_destination(key).await;
        }
        Ok(Outcome::SourceMissing)
    }

    /// Waits until `footprint` bytes fit in the in-flight budget.
    async fn reserve(&self, footprint: u64) -> Result<tokio::sync::SemaphorePermit<'_>, CopyError> {
        let permits = (footprint.div_ceil(MIB) as u32).clamp(1, self.max_in_flight_mib);
        self.bytes_in_flight
            .acquire_many(permits)
            .await
            .map_err(|_| CopyError::transient("copy", "shutting_down", "worker is stopping"))
    }

    async fn copy(&self, key: &str) -> Result<Outcome, CopyError> {
        let Some(source) = head_source(&self.source, &self.source_bucket, key).await? else {
            return self.source_missing(key).await;
        };
        if source.size > MAX_OBJECT_SIZE {
            return Err(CopyError::permanent(
                "copy",
                "too_large",
                format!(
                    "{key:?} is {} bytes; S3 objects are limited to {MAX_OBJECT_SIZE} bytes (5 TiB)",
                    source.size
                ),
            ));
        }
        let destination_key = self.destination_key(key);
        if let Some(existing) = head_destination(
            &self.destination,
            &self.destination_bucket,
            &destination_key,
        )
        .await?
            && existing.size == source.size
            && existing.source_etag.as_deref() == Some(source.etag_unquoted())
        {
            return Ok(Outcome::AlreadyCurrent);
        }
        let multipart = source.size > self.options.multipart_threshold;
        let footprint = if multipart {
            multipart::part_size(source.size, self.options.part_size)
                * self.options.part_concurrency as u64
        } else {
            source.size
        };
        let _budget = self.reserve(footprint).await?;
        let _in_flight = telemetry::InFlight::start(source.size);
        if multipart {
            let (uploaded, reused) = multipart::copy(self, &source, &destination_key).await?;
            Ok(Outcome::Copied {
                bytes: source.size,
                parts_uploaded: uploaded,
                parts_reused: reused,
            })
        } else {
            single::copy(self, &source, &destination_key).await?;
            Ok(Outcome::Copied {
                bytes: source.size,
                parts_uploaded: 0,
                parts_reused: 0,
            })
        }
    }

    async fn delete(&self, key: &str) -> Result<Outcome, CopyError> {
        if head_source(&self.source, &self.source_bucket, key)
            .await?
            .is_some()
        {
            return Ok(Outcome::DeleteSkipped);
        }
        self.delete_destination(key).await
    }

    async fn delete_destination(&self, key: &str) -> Result<Outcome, CopyError> {
        self.destination
            .delete_object()
            .bucket(&self.destination_bucket)
            .key(self.destination_key(key))
            .send()
            .await
            .map_err(|e| CopyError::from_sdk("DeleteObject", e))?;
        Ok(Outcome::Deleted)
    }
}

/// Sets the destination attributes every write shares (content headers,
/// metadata, storage class, encryption, ACL) on a PutObject or
/// CreateMultipartUpload builder.
macro_rules! with_destination_attributes {
    ($builder:expr, $source:expr, $options:expr) => {{
        let source: &$crate::copy::SourceObject = $source;
        let options: &$crate::copy::CopyOptions = $options;
        $builder
            .set_content_type(source.content_type.clone())
            .set_content_encoding(source.content_encoding.clone())
            .set_content_language(source.content_language.clone())
            .set_content_disposition(source.content_disposition.clone())
            .set_cache_control(source.cache_control.clone())
            .set_expires(source.expires)
            .set_metadata(Some($crate::copy::source::destination_metadata(
                source,
                options.copy_metadata,
            )))
            .set_storage_class(options.storage_class.clone())
            .set_server_side_encryption(options.sse.clone())
            .set_ssekms_key_id(options.sse_kms_key_id.clone())
            .set_acl(options.acl.clone())
    }};
}
pub(crate) use with_destination_attributes;
