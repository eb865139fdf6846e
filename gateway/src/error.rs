//! Every way an ingest request can fail, and the HTTP answer for each.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::enqueue::EnqueueError;
use crate::normalize::NormalizeError;
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
    Malformed(#[from] NormalizeError),
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not read the request body")]
    BodyRead,
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

impl IngestError {
    /// Whether the sender should retry the same request later.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Enqueue(e) => e.is_retryable(),
            IngestError::BodyRead => true,
            _ => false,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnknownSource => StatusCode::NOT_FOUND,
            IngestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            IngestError::Malformed(_) | IngestError::BodyRead => StatusCode::BAD_REQUEST,
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Enqueue(e) if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Enqueue(_) => StatusCode::BAD_REQUEST,
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
}

/// Seconds a sender should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "error": self.public_reason() }));
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}
