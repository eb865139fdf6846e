//! The admin listener: Prometheus `/metrics`, `/healthz`, `/readyz`. It is
//! meant for the VPC only (a separate port the load balancer does not
//! forward).

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::routes::{AppState, healthz, readyz};
use crate::telemetry;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics() -> String {
    telemetry::prometheus().render()
}
