//! ossbridge transfer: drains an SQS queue of copy jobs and copies each
//! object from Aliyun OSS (through its S3-compatible API) to Amazon S3:
//! streaming, multipart with resume, verified, idempotent.
//!
//! `main.rs` parses configuration and binds; [`run`] (the worker) and
//! [`sync::run_sync`] (`ossbridge-transfer sync`) do everything else, so
//! tests start exactly what production runs.

pub mod admin;
pub mod clients;
pub mod config;
pub mod consumer;
pub mod copy;
pub mod credentials;
pub mod decode;
pub mod error;
pub mod sync;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::types::{ObjectCannedAcl, ServerSideEncryption, StorageClass};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use config::KeyStoreName;
use copy::{CopyOptions, MIB};
use ossbridge_runtime::cli::ServiceConfig;
use ossbridge_runtime::{ConfigError, error_chain};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("source credentials: {0}")]
    Credentials(String),
}

/// Runs the worker until `shutdown` is cancelled; then it stops receiving,
/// finishes (within `worker.shutdown_grace_secs`) or releases the copies it
/// holds, and returns. `admin` serves `/metrics` and `/healthz`.
pub async fn run(
    config: Config,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let sdk = config.aws.load().await;
    run_with(config, &sdk, admin, shutdown).await
}

/// [`run`] with AWS SDK configuration built by the caller (tests hand in
/// credentials and an endpoint for the local emulator).
pub async fn run_with(
    config: Config,
    sdk: &SdkConfig,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    config.validate()?;
    let queue_url = config.require_queue_url("by the worker")?.to_owned();
    telemetry::prometheus();
    let copier = copier(&config, sdk).await?;
    let consumer = Arc::new(consumer::Consumer {
        sqs: clients::sqs(sdk),
        queue_url,
        copier,
        worker: config.worker.clone(),
    });

    let admin_addr = match &admin {
        Some(listener) => listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    if let Some(listener) = admin {
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = admin::serve(listener, token).await {
                tracing::error!(event = "admin_listener_failed", error = %e);
            }
        });
    }
    if config.metrics.emf {
        tokio::spawn(telemetry::emf_loop(
            Duration::from_secs(config.metrics.emf_interval_secs),
            shutdown.clone(),
        ));
    }

    tracing::info!(
        event = "transfer_started",
        source_bucket = %config.source.bucket,
        destination_bucket = %config.destination.bucket,
        concurrency = config.worker.concurrency,
        receivers = config.worker.receivers,
        admin_addr = %admin_addr,
    );
    consumer.run(shutdown).await;
    tracing::info!(event = "transfer_stopped");
    Ok(())
}

/// The source keys (read once now, so a missing parameter or secret fails
/// at start, naming it, rather than on every copy) and the copy engine
/// built on them; shared by the worker and `sync`.
pub(crate) async fn copier(config: &Config, sdk: &SdkConfig) -> Result<copy::Copier, RunError> {
    let store = match config.source.key_store()? {
        KeyStoreName::Parameter(name) => credentials::KeyStore::Parameter {
            client: clients::ssm(sdk),
            name: name.to_owned(),
        },
        KeyStoreName::Secret(id) => credentials::KeyStore::Secret {
            client: clients::secrets_manager(sdk),
            id: id.to_owned(),
        },
    };
    let credentials = credentials::SourceCredentials::new(
        store,
        Duration::from_secs(config.source.credentials_refresh_secs),
    );
    credentials
        .provide_credentials()
        .await
        .map_err(|e| RunError::Credentials(error_chain(&e)))?;
    Ok(copy::Copier::new(
        clients::source_s3(sdk, &config.source, credentials.clone()),
        config.source.bucket.clone(),
        clients::destination_s3(sdk, &config.destination),
        config.destination.bucket.clone(),
        copy_options(config),
        config.worker.max_bytes_in_flight_mib * MIB,
    ))
}

pub(crate) fn copy_options(config: &Config) -> CopyOptions {
    let d = &config.destination;
    let c = &config.copy;
    CopyOptions {
        destination_prefix: d.prefix.clone(),
        multipart_threshold: c.multipart_threshold_mib * MIB,
        part_size: c.part_size_mib * MIB,
        part_concurrency: c.part_concurrency,
        // Validated against the SDK's lists at start.
        storage_class: d.storage_class.as_deref().map(StorageClass::from),
        sse: d.sse.as_deref().map(ServerSideEncryption::from),
        sse_kms_key_id: d.sse_kms_key_id.clone(),
        acl: d.acl.as_deref().map(ObjectCannedAcl::from),
        copy_metadata: c.copy_metadata,
        propagate_deletes: c.propagate_deletes,
        stale_upload_age: Duration::from_secs(c.stale_upload_hours * 3600),
        upload_idle: Duration::from_secs(c.upload_idle_secs(&config.worker)),
        attempts: c.attempts,
    }
}
