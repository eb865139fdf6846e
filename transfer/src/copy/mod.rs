//! Copying one object from the source bucket (OSS) to the destination
//! (S3), reconciled against both sides at execution time (`reconcile.rs`):
//! a job reads the destination and the source as they are now (not as the
//! event described them), decides (`plan.rs`: current, copy the bytes,
//! rewrite only the metadata server-side, adopt a copy another tool made,
//! or delete), and writes conditionally on what it saw
//! (`destination.rs`), looking again when a write is refused or the source
//! moved. So duplicated, reordered and concurrent deliveries, in one
//! worker or across a fleet, converge on the source's current state.
//!
//! Objects up to the multipart threshold stream through one GET into one
//! PUT (`single.rs`); larger ones are copied in parts (`multipart/`);
//! metadata-only changes are server-side copies (`metadata.rs`).
//! `recorded.rs` is what every destination object records about the
//! source version it holds.

pub mod destination;
mod keylock;
mod lease;
pub mod limits;
pub mod metadata;
pub mod multipart;
pub mod plan;
mod reconcile;
pub mod recorded;
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

use crate::error::CopyError;
use crate::telemetry;
pub use destination::{DestinationObject, Precondition, head_destination};
pub use lease::Lease;
pub use source::{Fetched, SourceObject, get_source, head_source};

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
    /// Idle multipart uploads older than this are aborted, not resumed.
    pub stale_upload_age: Duration,
    /// An upload with activity (initiated, a part finished) more recent
    /// than this belongs to a running copy and is never touched.
    pub upload_idle: Duration,
    /// Attempts per job inside this worker (the queue retries beyond).
    pub attempts: usize,
}

/// What the message said about the object. It only picks the cheaper
/// path; the source's and the destination's answers decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hint {
    /// The size the message announced.
    pub size: Option<u64>,
    /// The message announced a newly written object (a PUT or POST at the
    /// source, or a key `sync` found missing at the destination): a small
    /// one is first PUT with `If-None-Match: *`, without reading the
    /// destination (`reconcile.rs`). Other changes (metadata rewrites,
    /// in-place copies, appends) read the destination first, so that they
    /// cost no download when the bytes are already there.
    pub new_object: bool,
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
    /// Same bytes; the headers, user metadata and records were rewritten
    /// server-side.
    MetadataUpdated,
    /// Same bytes, written by another tool (e.g. Data Transfer Hub); the
    /// records were added server-side.
    Adopted,
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
            Outcome::MetadataUpdated => "metadata_updated",
            Outcome::Adopted => "adopted",
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
    /// Bytes of object data in flight, in MiB permits.
    bytes_in_flight: Arc<Semaphore>,
    max_in_flight_mib: u32,
    keys: keylock::KeyLocks,
    uploads: multipart::Abandoned,
}

impl Copier {
    pub fn new(
        source: Client,
        source_bucket: String,
        destination: Client,
        destination_bucket: String,
        options: CopyOptions,
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
            bytes_in_flight: Arc::new(Semaphore::new(max_in_flight_mib as usize)),
            max_in_flight_mib,
            keys: keylock::KeyLocks::default(),
            uploads: multipart::Abandoned::default(),
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

    /// Runs one job under `lease`, retrying transient failures with
    /// exponential backoff and jitter. A source that refuses our keys gets
    /// one more attempt before the refusal counts as permanent: the source
    /// client has meanwhile re-read the keys, which may have been rotated
    /// (`credentials/`). A destination refusal is permanent at once.
    ///
    /// `hint` is what the message announced: it only picks the cheaper
    /// path for small objects.
    pub async fn execute(
        &self,
        op: Operation,
        key: &str,
        hint: Hint,
        lease: &Lease,
    ) -> Result<Outcome, CopyError> {
        let _one_at_a_time = self.keys.lock(key).await;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.options.attempts.saturating_sub(1))
            .with_jitter();
        let refreshed = std::sync::atomic::AtomicBool::new(false);
        (|| async {
            match lease.hold(self.reconcile(op, key, hint, lease)).await {
                Err(e) if e.is_source_access_denied() && !refreshed.swap(true, std::sync::atomic::Ordering::Relaxed) => {
                    tracing::warn!(event = "source_access_denied", reason = %e, "trying once more with the source keys as now stored");
                    Err(CopyError::transient(e.operation, "access_denied", e.detail))
                }
                other => other,
            }
        })
        .retry(backoff)
        .when(|e| e.is_retryable() && !e.is_lease_lost())
        .notify(|e, wait| {
            telemetry::retry(e.reason);
            tracing::warn!(event = "job_retry", reason = e.reason, error = %e, wait_ms = wait.as_millis() as u64);
        })
        .await
    }

    /// Waits until `footprint` bytes fit in the in-flight budget.
    async fn reserve(&self, footprint: u64) -> Result<tokio::sync::SemaphorePermit<'_>, CopyError> {
        let permits = (footprint.div_ceil(MIB) as u32).clamp(1, self.max_in_flight_mib);
        self.bytes_in_flight
            .acquire_many(permits)
            .await
            .map_err(|_| CopyError::transient("copy", "shutting_down", "worker is stopping"))
    }
}

/// Sets the destination attributes every write shares (content headers,
/// metadata, storage class, encryption, ACL) on a PutObject,
/// CreateMultipartUpload or CopyObject builder.
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
            .set_metadata(Some($crate::copy::recorded::destination_metadata(
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
