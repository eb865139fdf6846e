//! ossbridge gateway: receives signed OSS event notifications over HTTPS,
//! verifies them, normalizes them into queue messages and answers 2xx only
//! once SQS has accepted every message.
//!
//! `main.rs` parses configuration and binds; [`run`] does everything else,
//! so tests start exactly what production runs.

pub mod config;
pub mod enqueue;
pub mod error;
pub mod normalize;
pub mod routes;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use ossbridge_runtime::ConfigError;
use routes::{AppState, Source};
use verify::Verifier;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the gateway on `listener` until `shutdown` is cancelled, then
/// stops accepting, lets in-flight requests finish (each one is answered
/// only after SQS accepted its events or it failed) and returns, at most
/// `limits.shutdown_grace_secs` later.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let sdk = config.aws.load().await;
    serve(config, &sdk, listener, shutdown).await
}

/// [`run`] with AWS SDK configuration built by the caller (tests hand in
/// credentials and an endpoint for the local emulator).
pub async fn serve(
    config: Config,
    sdk: &SdkConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    config.validate()?;
    let enqueuer =
        enqueue::Enqueuer::new(sdk, Duration::from_millis(config.sqs.enqueue_timeout_ms));
    let mut sources = HashMap::new();
    for (id, source) in &config.sources {
        let verifier = Verifier::from_config(&format!("sources.{id}.verifier"), &source.verifier)?;
        sources.insert(
            id.clone(),
            Source {
                id: Arc::from(id.as_str()),
                queue_url: source.queue_url.clone(),
                verifier,
            },
        );
    }
    let state = Arc::new(AppState {
        sources,
        enqueuer,
        max_body_bytes: config.limits.max_body_bytes,
    });
    let app = routes::router(state);

    tracing::info!(
        event = "gateway_started",
        addr = %listener.local_addr()?,
        sources = config.sources.len(),
    );
    let grace = Duration::from_secs(config.limits.shutdown_grace_secs);
    let server =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::select! {
        result = server => result?,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(event = "shutdown_grace_elapsed", "dropping connections still open");
        }
    }
    tracing::info!(event = "gateway_stopped");
    Ok(())
}
