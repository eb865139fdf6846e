//! ossbridge transfer: drains an SQS queue of copy jobs and copies each
//! object from Aliyun OSS (through its S3-compatible API) to Amazon S3.
//!
//! `main.rs` parses configuration; [`run`] does everything else, so tests
//! start exactly what production runs.

pub mod clients;
pub mod config;
pub mod consumer;
pub mod copy;
pub mod credentials;
pub mod error;
pub mod job;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use ossbridge_runtime::cli::ServiceConfig;
use ossbridge_runtime::{ConfigError, error_chain};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("source credentials: {0}")]
    Credentials(String),
}

/// Runs the worker until `shutdown` is cancelled; then it stops receiving
/// and finishes (within `worker.shutdown_grace_secs`) the copies it holds.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let sdk = config.aws.load().await;
    run_with(config, &sdk, shutdown).await
}

/// [`run`] with AWS SDK configuration built by the caller (tests hand in
/// credentials and an endpoint for the local emulator).
pub async fn run_with(
    config: Config,
    sdk: &SdkConfig,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    config.validate()?;
    let credentials = credentials::SsmCredentials::new(
        clients::ssm(sdk),
        config.source.credentials_parameter.clone(),
        Duration::from_secs(config.source.credentials_refresh_secs),
    );
    // Fail at start, with the parameter's name, rather than on every copy.
    credentials
        .provide_credentials()
        .await
        .map_err(|e| RunError::Credentials(error_chain(&e)))?;

    let copier = copy::Copier::new(
        clients::source_s3(sdk, &config.source, credentials),
        config.source.bucket.clone(),
        clients::destination_s3(sdk, &config.destination),
        config.destination.bucket.clone(),
        config.destination.prefix.clone(),
    );
    let consumer = Arc::new(consumer::Consumer {
        sqs: clients::sqs(sdk),
        queue_url: config.queue_url.clone(),
        copier,
        worker: config.worker.clone(),
    });
    tracing::info!(
        event = "transfer_started",
        source_bucket = %config.source.bucket,
        destination_bucket = %config.destination.bucket,
        concurrency = config.worker.concurrency,
    );
    consumer.run(shutdown).await;
    tracing::info!(event = "transfer_stopped");
    Ok(())
}
