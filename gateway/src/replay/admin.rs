//! `POST /admin/replay/{source}` on the admin listener: a replay body in
//! any format `replay` reads, authenticated by its own bearer tokens
//! (`[admin] replay_tokens`, never a webhook secret), rate-limited and
//! size-limited. Answers 200 with the summary only once SQS accepted every
//! message.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use ossbridge_runtime::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{Options, Target, input};
use crate::body::MnsPolicy;
use crate::config::AdminConfig;
use crate::error::IngestError;
use crate::routes::{AppState, read_limited};
use crate::verify::matches_any;

/// The endpoint's settings, built at start-up when tokens are configured.
pub struct AdminReplay {
    /// SHA-256 of each accepted token (compared in constant time, and
    /// without revealing the tokens' lengths).
    token_digests: Vec<Vec<u8>>,
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    max_body_bytes: usize,
}

impl std::fmt::Debug for AdminReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminReplay")
            .field("tokens", &self.token_digests.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl AdminReplay {
    /// `None` when no tokens are configured (the endpoint answers 404).
    pub async fn build(
        config: &AdminConfig,
        ssm: &aws_sdk_ssm::Client,
    ) -> Result<Option<AdminReplay>, ConfigError> {
        let Some(tokens) = &config.replay_tokens else {
            return Ok(None);
        };
        let tokens: Vec<SecretString> =
            crate::secrets::resolve("admin.replay_tokens", tokens, ssm).await?;
        let rate = NonZeroU32::new(config.replay_per_second)
            .ok_or_else(|| ConfigError::invalid("admin.replay_per_second", "must be > 0"))?;
        let burst = NonZeroU32::new(config.replay_burst).unwrap_or(rate);
        Ok(Some(AdminReplay {
            token_digests: tokens.iter().map(|t| digest(t.expose_secret())).collect(),
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
            max_body_bytes: config.replay_max_body_bytes,
        }))
    }

    fn authorized(&self, headers: &axum::http::HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        !given.is_empty() && matches_any(&digest(given), &self.token_digests)
    }
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn error(status: StatusCode, reason: &str) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

pub async fn replay(
    State(state): State<Arc<AppState>>,
    Path(source_id): Path<String>,
    request: Request,
) -> Response {
    let Some(admin) = &state.admin_replay else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    if let Err(not_until) = admin.limiter.check() {
        let wait = not_until.wait_time_from(admin.clock.now());
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return response;
    }
    let (parts, body) = request.into_parts();
    if !admin.authorized(&parts.headers) {
        tracing::info!(event = "admin_replay_refused", reason = "bad token");
        return error(StatusCode::UNAUTHORIZED, "missing or wrong token");
    }
    let Some(source) = state.sources.get(&source_id) else {
        return IngestError::UnknownSource.into_response();
    };
    let body = match read_limited(&parts.headers, body, admin.max_body_bytes).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    let target = Target {
        source_id: source.id.clone(),
        format: source.format,
        mns_policy: source.mns_policy.clone().unwrap_or_else(MnsPolicy::default),
        pipeline: source.pipeline(&state),
    };
    let documents = input::split(text);
    let summary = target
        .replay(documents, &Options::default(), &mut |_| {})
        .await;
    tracing::info!(
        event = "admin_replay_done",
        source = %source.id,
        enqueued = summary.enqueued,
        rejected = summary.rejected,
        failed = summary.failed,
    );
    if summary.failed > 0 {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue unavailable, retry later",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        return response;
    }
    (StatusCode::OK, Json(summary)).into_response()
}
