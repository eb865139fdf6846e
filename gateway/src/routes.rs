//! The public routes: `POST /v1/ingest/{source}`, `GET /healthz`,
//! `GET /readyz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::archive::{self, Archiver};
use crate::body::{self, MnsPolicy};
use crate::config::BodyFormat;
use crate::dedup::Dedup;
use crate::enqueue::Batcher;
use crate::error::IngestError;
use crate::health::SqsHealth;
use crate::normalize::Normalizer;
use crate::pipeline::Pipeline;
use crate::ratelimit::RateLimits;
use crate::replay::admin::AdminReplay;
use crate::telemetry;
use crate::transport::Scheme;
use crate::verify::{Verifier, VerifyError};

/// A configured webhook source, ready to serve.
#[derive(Debug)]
pub struct Source {
    pub id: Arc<str>,
    pub verifier: Verifier,
    pub format: BodyFormat,
    pub mns_policy: Option<MnsPolicy>,
    /// Pushes over plain HTTP are accepted (MNS `allow_plain_http`).
    pub allow_plain_http: bool,
    pub normalizer: Normalizer,
    pub batcher: Batcher,
    pub metrics: telemetry::SourceMetrics,
}

impl Source {
    /// This source's normalize → dedup → enqueue path.
    pub fn pipeline<'a>(&'a self, state: &'a AppState) -> Pipeline<'a> {
        Pipeline {
            normalizer: &self.normalizer,
            batcher: &self.batcher,
            dedup: &state.dedup,
            enqueue_timeout: state.enqueue_timeout,
        }
    }
}

#[derive(Debug)]
pub struct AppState {
    pub sources: HashMap<String, Source>,
    /// The public listener terminates TLS itself.
    pub listener_tls: bool,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub enqueue_timeout: Duration,
    pub rate_limits: RateLimits,
    pub dedup: Dedup,
    pub health: Arc<SqsHealth>,
    /// The event archive, when `[archive]` is configured.
    pub archive: Option<Archiver>,
    /// `POST /admin/replay/{source}`, when replay tokens are configured.
    pub admin_replay: Option<AdminReplay>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ingest/{source}", post(ingest))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "sqs unavailable")
    }
}

/// What a successful ingest reports back.
#[derive(Debug, Serialize)]
pub struct IngestResponse {
    /// Events in the body.
    pub events: usize,
    /// Messages SQS accepted.
    pub enqueued: usize,
    /// Events that change nothing at the destination.
    pub ignored: usize,
    /// Events a source filter excluded.
    pub filtered: usize,
    /// Events already enqueued recently (a retried delivery).
    pub duplicates: usize,
}

async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let request_id = request_id(&parts.headers);
    let Some(source) = state.sources.get(&source_id) else {
        // Not the caller's string as a label: that would let anyone mint
        // metric series.
        telemetry::request_done("-", "unknown_source", started.elapsed().as_secs_f64());
        return with_request_id(IngestError::UnknownSource.into_response(), &request_id);
    };
    let span = tracing::info_span!("ingest", source = %source.id, request_id = %request_id);
    async {
        let result = match tokio::time::timeout(
            state.request_timeout,
            handle(&state, source, peer, parts, body),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(IngestError::Timeout),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let response = match result {
            Ok(r) => {
                source.metrics.request_done("accepted", elapsed);
                tracing::debug!(event = "ingest_accepted", events = r.events, enqueued = r.enqueued);
                if source.format == BodyFormat::Mns {
                    // MNS expects 204 No Content.
                    StatusCode::NO_CONTENT.into_response()
                } else {
                    (StatusCode::OK, axum::Json(r)).into_response()
                }
            }
            Err(e) => {
                source.metrics.request_done(e.outcome(), elapsed);
                if e.is_retryable() {
                    tracing::warn!(event = "ingest_failed", status = e.status().as_u16(), error = %e);
                } else if let Some(check) = e.auth_reason() {
                    telemetry::auth_rejected(&source.id, check);
                    // Its own event, with the source, for the stack's
                    // failing-auth metric filter and alarm.
                    tracing::warn!(
                        event = "auth_rejected",
                        source = %source.id,
                        check,
                        status = e.status().as_u16(),
                        reason = %e
                    );
                } else {
                    tracing::info!(event = "ingest_rejected", status = e.status().as_u16(), reason = %e);
                }
                e.into_response()
            }
        };
        with_request_id(response, &request_id)
    }
    .instrument(span)
    .await
}

async fn handle(
    state: &AppState,
    source: &Source,
    peer: SocketAddr,
    parts: axum::http::request::Parts,
    body: Body,
) -> Result<IngestResponse, IngestError> {
    let client = state.rate_limits.client_ip(peer.ip(), &parts.headers);
    state
        .rate_limits
        .check_client(client)
        .map_err(|retry_after| IngestError::RateLimited { retry_after })?;
    let scheme = Scheme::of(
        state.listener_tls,
        state.rate_limits.trusted(peer.ip()),
        &parts.headers,
    );
    if scheme == Scheme::Http && !source.allow_plain_http {
        return Err(VerifyError::PlainHttp.into());
    }
    let body = read_limited(&parts.headers, body, state.max_body_bytes).await?;
    let received_at = OffsetDateTime::now_utc();
    let verified = source
        .verifier
        .verify(
            source.id.clone(),
            &parts,
            body,
            received_at,
            scheme.confidential(),
        )
        .await?;
    state
        .rate_limits
        .check_global()
        .map_err(|retry_after| IngestError::RateLimited { retry_after })?;
    let events = body::decode(source.format, &verified, source.mns_policy.as_ref())?;
    let pipeline = source.pipeline(state);
    let prepared = pipeline.prepare(&events);
    pipeline.send(&prepared).await?;
    if let Some(archive) = &state.archive {
        // Only now: the archive never holds what SQS refused.
        archive.record(archive::Record {
            source_id: source.id.to_string(),
            received_at,
            body: verified.bytes(),
            keys: prepared.keys.clone(),
        });
    }
    Ok(IngestResponse {
        events: prepared.events,
        enqueued: prepared.messages.len(),
        ignored: prepared.ignored,
        filtered: prepared.filtered,
        duplicates: prepared.duplicates,
    })
}

/// Reads the body, refusing it as soon as it is known to exceed `limit`:
/// from Content-Length before reading anything, otherwise (chunked) as
/// soon as the running total passes the limit.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, IngestError> {
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

/// The caller's `x-request-id` if it is short and printable, else a new
/// UUID; echoed in the response and logged with every line.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
