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

#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {detail}")]
pub struct CopyError {
    pub kind: Kind,
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
            reason,
            operation,
            detail: detail.into(),
        }
    }

    /// Whether the service refused our credentials (the source's keys may
    /// have been rotated).
    pub fn is_access_denied(&self) -> bool {
        self.reason == "access_denied"
    }

    /// Classifies an SDK error by HTTP status and error code.
    pub fn from_sdk<E, R>(operation: &'static str, error: SdkError<E, R>) -> CopyError
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
            (Some(412), _) | (_, Some("PreconditionFailed")) => (Kind::Transient, "source_changed"),
            (Some(403), _)
            | (_, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch")) => {
                (Kind::Permanent, "access_denied")
            }
            (Some(404), _) | (_, Some("NoSuchBucket" | "NoSuchKey" | "NoSuchUpload")) => {
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
