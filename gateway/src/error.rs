//! Every way an ingest request can fail, and its one HTTP mapping.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::body::BodyError;
use crate::enqueue::EnqueueError;
use crate::verify::VerifyError;

/// An ingest failure. The response body is a short, specific reason; no
/// internal detail (queue URLs, SDK errors) ever reaches the sender.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown source")]
    UnknownSource,
    #[error(transparent)]
    Unauthorized(#[from] VerifyError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not read the request body")]
    BodyRead,
    #[error("request timed out")]
    Timeout,
    #[error("rate limit exceeded")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

impl IngestError {
    /// Whether the sender should send the same request again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Enqueue(e) => e.is_retryable(),
            IngestError::Unauthorized(e) => e.is_retryable(),
            IngestError::RateLimited { .. } | IngestError::Timeout => true,
            _ => false,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnknownSource => StatusCode::NOT_FOUND,
            IngestError::Unauthorized(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Unauthorized(_) | IngestError::Body(BodyError::Forbidden(_)) => {
                StatusCode::UNAUTHORIZED
            }
            IngestError::Body(BodyError::Malformed(_)) | IngestError::BodyRead => {
                StatusCode::BAD_REQUEST
            }
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Timeout => StatusCode::REQUEST_TIMEOUT,
            IngestError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Enqueue(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Enqueue(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            IngestError::UnknownSource => "unknown_source",
            IngestError::Unauthorized(e) if e.is_retryable() => "unavailable",
            IngestError::Unauthorized(_) | IngestError::Body(BodyError::Forbidden(_)) => {
                "unauthorized"
            }
            IngestError::Body(BodyError::Malformed(_)) | IngestError::BodyRead => "malformed",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::Timeout => "timeout",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::Enqueue(e) if e.is_retryable() => "unavailable",
            IngestError::Enqueue(_) => "rejected",
        }
    }

    /// For a request refused as not authentic or not allowed, which check
    /// refused it (a metric label; the failing-auth alarm counts these).
    pub fn auth_reason(&self) -> Option<&'static str> {
        match self {
            IngestError::Unauthorized(e) if !e.is_retryable() => Some(e.reason()),
            IngestError::Body(BodyError::Forbidden(r)) => Some(r.reason()),
            _ => None,
        }
    }

    /// The reason given to the sender.
    fn public_reason(&self) -> String {
        match self {
            // The SDK error stays in our logs.
            IngestError::Enqueue(e) if e.is_retryable() => "queue unavailable, retry later".into(),
            IngestError::Enqueue(_) => "event rejected by the queue".into(),
            other => other.to_string(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            IngestError::RateLimited { retry_after } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "error": self.public_reason() }));
        let mut response = (status, body).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
