//! The admin listener: Prometheus `/metrics`, `/healthz`, `/readyz` and,
//! when tokens are configured, `POST /admin/replay/{source}`
//! ([`crate::replay::admin`]). It is meant for the VPC only (a separate
//! port the load balancer does not forward).

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::routes::{AppState, healthz, readyz};
use crate::{replay, telemetry};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/admin/replay/{source}", post(replay::admin::replay))
        .with_state(state)
}

async fn metrics() -> String {
    telemetry::prometheus().render()
}
