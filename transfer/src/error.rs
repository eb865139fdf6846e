//! Why a job failed, and whether trying again can help.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use ossbridge_runtime::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Throttling, 5xx, timeouts, dropped connections: the same job may
    /// succeed later.
    #[error("{operation} failed (retryable): {detail}")]
    Transient {
        operation: &'static str,
        detail: String,
    },
    /// Access denied, a refused request, a message this worker must not
    /// act on: retrying the same job gives the same answer.
    #[error("{operation} failed: {detail}")]
    Permanent {
        operation: &'static str,
        detail: String,
    },
}

impl CopyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CopyError::Transient { .. })
    }

    pub fn permanent(operation: &'static str, detail: impl Into<String>) -> CopyError {
        CopyError::Permanent {
            operation,
            detail: detail.into(),
        }
    }

    /// Classifies an SDK error by its HTTP status and error code.
    pub fn from_sdk<E, R>(operation: &'static str, error: SdkError<E, R>) -> CopyError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + HttpStatus + Send + Sync + 'static,
    {
        let status = error.raw_response().map(HttpStatus::status);
        let code = error.code().map(str::to_owned);
        let detail = error_chain(&error);
        let permanent = match (status, code.as_deref()) {
            (_, Some("SlowDown" | "Throttling" | "RequestTimeout" | "InternalError")) => false,
            (Some(s), _) if s == 408 || s == 429 || s >= 500 => false,
            (Some(s), _) if (400..500).contains(&s) => true,
            // No response at all: timeouts, refused or reset connections.
            _ => false,
        };
        if permanent {
            CopyError::Permanent { operation, detail }
        } else {
            CopyError::Transient { operation, detail }
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
