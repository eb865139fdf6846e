//! HTTP routes: `POST /v1/ingest/{source}` and `GET /healthz`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::enqueue::Enqueuer;
use crate::error::IngestError;
use crate::normalize::normalize;
use crate::verify::Verifier;

/// A configured webhook source, ready to serve.
#[derive(Debug)]
pub struct Source {
    pub id: Arc<str>,
    pub queue_url: String,
    pub verifier: Verifier,
}

#[derive(Debug)]
pub struct AppState {
    pub sources: HashMap<String, Source>,
    pub enqueuer: Enqueuer,
    pub max_body_bytes: usize,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ingest/{source}", post(ingest))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

/// What a successful ingest reports back.
#[derive(Debug, Serialize)]
pub struct IngestResponse {
    /// Events in the body.
    pub events: usize,
    /// Messages SQS accepted.
    pub enqueued: usize,
    /// Events accepted without a message (nothing to copy).
    pub ignored: usize,
}

async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResponse>, IngestError> {
    let source = state
        .sources
        .get(&source_id)
        .ok_or(IngestError::UnknownSource)?;
    let span = tracing::info_span!("ingest", source = %source.id);
    async {
        let result = handle(&state, source, &headers, body).await;
        match &result {
            Ok(r) => tracing::info!(
                event = "ingest_accepted",
                events = r.events,
                enqueued = r.enqueued,
                ignored = r.ignored
            ),
            Err(e) if e.is_retryable() => {
                tracing::error!(event = "ingest_failed", error = %e, "answering 503")
            }
            Err(e) => tracing::warn!(event = "ingest_rejected", status = %e.status(), reason = %e),
        }
        result.map(Json)
    }
    .instrument(span)
    .await
}

async fn handle(
    state: &AppState,
    source: &Source,
    headers: &HeaderMap,
    body: Body,
) -> Result<IngestResponse, IngestError> {
    let body = read_limited(headers, body, state.max_body_bytes).await?;
    let verified = source
        .verifier
        .verify(source.id.clone(), headers, body, OffsetDateTime::now_utc())
        .await?;
    let normalized = normalize(&verified)?;
    for m in &normalized.messages {
        tracing::debug!(event = "event_normalized", key = %m.key, op = ?m.op, idempotency_key = %m.idempotency_key);
    }
    state
        .enqueuer
        .enqueue(&source.queue_url, &normalized.messages)
        .await?;
    Ok(IngestResponse {
        events: normalized.messages.len() + normalized.ignored,
        enqueued: normalized.messages.len(),
        ignored: normalized.ignored,
    })
}

/// Reads the body, refusing it as soon as it is known to exceed `limit`:
/// from Content-Length before reading anything, otherwise (chunked) as
/// soon as the running total passes the limit.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, IngestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(IngestError::TooLarge { limit });
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(IngestError::TooLarge { limit })
        }
        Err(_) => Err(IngestError::BodyRead),
    }
}
