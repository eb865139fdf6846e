//! Why a job failed, whether trying again can help, and a short reason
//! label for metrics.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use ossbridge_runtime::error_chain;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Throttling, 5xx, timeouts, resets, a source that changed under us:
    /// the same job may succeed later.
    Transient,
    /// Access denied (after a credential refresh), a missing bucket, an
    /// object S3 cannot hold, a message this worker must not act on.
    Permanent,
}

/// Which bucket an error came from: a refused source credential means
/// the OSS keys may have been rotated; a refused destination one does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
    /// Neither bucket (a message, the worker itself).
    Local,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct CopyError {
    pub kind: Kind,
    pub side: Side,
    /// Low-cardinality reason, e.g. `throttled`, `access_denied`.
    pub reason: &'static str,
    pub operation: &'static str,
    pub detail: String,
}

impl CopyError {
    pub fn is_retryable(&self) -> bool {
        self.kind == Kind::Transient
    }

    pub fn permanent(
        operation: &'static str,
        reason: &'static str,
        detail: impl Into<String>,
    ) -> CopyError {
        CopyError {
            kind: Kind::Permanent,
            side: Side::Local,
            reason,
            operation,
            detail: detail.into(),
        }
    }

    pub fn transient(
        operation: &'static str,
        reason: &'static str,
        detail: impl Into<String>,
    ) -> CopyError {
        CopyError {
            kind: Kind::Transient,
            side: Side::Local,
            reason,
            operation,
            detail: detail.into(),
        }
    }

    /// Whether the source refused our credentials: its keys may have been
    /// rotated, so they are worth reading again. A destination refusal is
    /// an IAM matter the OSS keys cannot fix.
    pub fn is_source_access_denied(&self) -> bool {
        self.side == Side::Source && self.reason == "access_denied"
    }

    /// Someone else changed the destination key between our look and our
    /// write (a failed `If-Match` / `If-None-Match`, S3's 409
    /// ConditionalRequestConflict, our upload gone), or the source changed
    /// under a read conditional on its ETag: both mean "look again", never
    /// a failure of the job.
    pub fn is_race(&self) -> bool {
        matches!(self.reason, "conflict" | "source_changed")
    }

    /// The job no longer owns its message; another worker finishes it.
    pub fn lease_lost() -> CopyError {
        CopyError::transient(
            "lease",
            "lease_lost",
            "the queue message is no longer ours; its new owner finishes the job",
        )
    }

    pub fn is_lease_lost(&self) -> bool {
        self.reason == "lease_lost"
    }

    /// Classifies an SDK error of a source call by HTTP status and code.
    pub fn from_source<E, R>(operation: &'static str, error: SdkError<E, R>) -> CopyError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus + Send + Sync + 'static,
    {
        CopyError::from_sdk(Side::Source, operation, error)
    }

    /// Classifies an SDK error of a destination call by HTTP status and
    /// code.
    pub fn from_destination<E, R>(operation: &'static str, error: SdkError<E, R>) -> CopyError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus + Send + Sync + 'static,
    {
        CopyError::from_sdk(Side::Destination, operation, error)
    }

    fn from_sdk<E, R>(side: Side, operation: &'static str, error: SdkError<E, R>) -> CopyError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus + Send + Sync + 'static,
    {
        let status = error.raw_response().map(HttpStatus::status);
        let code = error.code().map(str::to_owned);
        let detail = error_chain(&error);
        let (kind, reason) = match (status, code.as_deref()) {
            (
                _,
                Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"),
            ) => (Kind::Transient, "throttled"),
            (_, Some("RequestTimeout" | "InternalError")) => (Kind::Transient, "server_error"),
            // A read conditional on the source's ETag, or of a key that
            // vanished since we looked: the source moved on.
            (Some(412), _) | (_, Some("PreconditionFailed" | "NoSuchKey"))
                if side == Side::Source =>
            {
                (Kind::Transient, "source_changed")
            }
            // S3 conditional writes: 412 when the ETag moved, 409 when a
            // concurrent write won, 404 NoSuchKey for `If-Match` on a key
            // that is gone, NoSuchUpload when the upload was aborted.
            // https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
            (Some(412 | 409), _)
            | (_, Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchUpload"))
            | (Some(404), Some("NoSuchKey")) => (Kind::Transient, "conflict"),
            (Some(403), _)
            | (_, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch")) => {
                (Kind::Permanent, "access_denied")
            }
            (Some(404), _) | (_, Some("NoSuchBucket" | "NoSuchKey")) => {
                (Kind::Permanent, "not_found")
            }
            (_, Some("InvalidStorageClass" | "KMS.NotFoundException" | "InvalidArgument")) => {
                (Kind::Permanent, "invalid_request")
            }
            (Some(s), _) if s == 408 || s == 429 => (Kind::Transient, "throttled"),
            (Some(s), _) if s >= 500 => (Kind::Transient, "server_error"),
            (Some(s), _) if (400..500).contains(&s) => (Kind::Permanent, "invalid_request"),
            // No response at all: timeouts, refused or reset connections,
            // or our own integrity check failing the request body.
            _ if detail.contains("integrity check failed") => (Kind::Transient, "integrity"),
            _ => (Kind::Transient, "network"),
        };
        CopyError {
            kind,
            side,
            reason,
            operation,
            detail,
        }
    }
}

/// The HTTP status of a raw SDK response.
pub trait HttpStatus {
    fn status(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}
