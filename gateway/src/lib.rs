//! ossbridge gateway: receives OSS event notifications as signed webhooks
//! (MNS HTTP push, Standard Webhooks, GitHub-style HMAC, API keys and basic
//! auth for EventBridge), verifies them, normalizes them into queue
//! messages and answers 2xx only once SQS has accepted every message.
//!
//! `main.rs` parses configuration and binds; [`run`] does everything else,
//! so tests start exactly what production runs.

pub mod admin;
pub mod archive;
pub mod body;
pub mod config;
pub mod dedup;
pub mod enqueue;
pub mod error;
pub mod health;
pub mod normalize;
pub mod pipeline;
pub mod ratelimit;
pub mod replay;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod telemetry;
mod transport;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use config::{SourceConfig, VerifierConfig};
use ossbridge_runtime::ConfigError;
use ossbridge_runtime::cli::ServiceConfig;
use routes::{AppState, Source};
use server::ServeOptions;
use server::tls::ReloadableCert;
use verify::{CertStore, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// The sockets the gateway serves: the public one (webhooks) and,
/// optionally, the admin one (metrics).
#[derive(Debug)]
pub struct Listeners {
    pub public: TcpListener,
    pub admin: Option<TcpListener>,
}

/// Serves until `shutdown` is cancelled, then stops accepting, answers the
/// requests in flight (each only after SQS accepted its events, or with an
/// error), flushes the batchers and returns, within
/// `limits.shutdown_grace_secs`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let sdk = config.aws.load().await;
    serve(config, &sdk, listeners, shutdown).await
}

/// [`run`] with AWS SDK configuration built by the caller (tests hand in
/// credentials and an endpoint for the local emulator).
pub async fn serve(
    config: Config,
    sdk: &SdkConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    config.validate()?;
    telemetry::prometheus();
    let enqueue_timeout = Duration::from_millis(config.sqs.enqueue_timeout_ms);
    let sqs = enqueue::client(sdk, enqueue_timeout);
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let certs = Arc::new(CertStore::new(&config.mns)?);
    let health = health::SqsHealth::new();

    let mut batchers: HashMap<String, enqueue::Batcher> = HashMap::new();
    let mut batcher_tasks: Vec<JoinHandle<()>> = Vec::new();
    let mut sources = HashMap::new();
    for (id, source_config) in &config.sources {
        let batcher = batchers
            .entry(source_config.queue_url.clone())
            .or_insert_with(|| {
                let (batcher, task) = enqueue::Batcher::spawn(
                    sqs.clone(),
                    source_config.queue_url.clone(),
                    &config.sqs,
                    health.clone(),
                );
                batcher_tasks.push(task);
                batcher
            })
            .clone();
        let source = build_source(id, source_config, batcher, &ssm, &certs).await?;
        sources.insert(id.clone(), source);
    }

    let admin_replay = replay::admin::AdminReplay::build(&config.admin, &ssm).await?;
    let (archive, archive_task) = match &config.archive {
        Some(archive_config) => {
            let (archiver, task) =
                archive::Archiver::spawn(archive_config, archive::s3_client(sdk, archive_config));
            (Some(archiver), Some(task))
        }
        None => (None, None),
    };

    let tls = match &config.tls {
        Some(tls) => {
            let cert = ReloadableCert::load(tls)?;
            spawn_reload_on_sighup(cert.clone(), shutdown.clone());
            Some(tokio_rustls::TlsAcceptor::from(cert.server_config()?))
        }
        None => None,
    };

    let state = Arc::new(AppState {
        sources,
        listener_tls: tls.is_some(),
        max_body_bytes: config.limits.max_body_bytes,
        request_timeout: Duration::from_millis(config.limits.request_timeout_ms),
        enqueue_timeout,
        rate_limits: ratelimit::RateLimits::new(&config.rate_limit),
        dedup: dedup::Dedup::new(&config.dedup),
        health: health.clone(),
        archive,
        admin_replay,
    });

    let queues: Vec<String> = batchers.keys().cloned().collect();
    tokio::spawn(health.probe(
        sqs.clone(),
        queues,
        Duration::from_secs(config.sqs.readiness_probe_secs),
        shutdown.clone(),
    ));
    spawn_rate_limit_housekeeping(state.clone(), shutdown.clone());

    let grace = Duration::from_secs(config.limits.shutdown_grace_secs);
    let options = ServeOptions {
        tls,
        max_connections: config.limits.max_connections,
        header_read_timeout: Duration::from_millis(config.limits.header_read_timeout_ms),
        keep_alive_timeout: Duration::from_millis(config.limits.keep_alive_timeout_ms),
        tls_handshake_timeout: Duration::from_millis(config.limits.tls_handshake_timeout_ms),
        grace,
    };
    let admin_addr = match &listeners.admin {
        Some(listener) => listener.local_addr()?.to_string(),
        None => String::new(),
    };
    let admin = listeners.admin.map(|listener| {
        let admin_options = ServeOptions {
            tls: None,
            max_connections: 64,
            ..options.clone()
        };
        tokio::spawn(server::serve(
            listener,
            admin::router(state.clone()),
            admin_options,
            shutdown.clone(),
        ))
    });

    tracing::info!(
        event = "gateway_started",
        addr = %listeners.public.local_addr()?,
        admin_addr = %admin_addr,
        tls = config.tls.is_some(),
        sources = config.sources.len(),
    );
    server::serve(
        listeners.public,
        routes::router(state.clone()),
        options,
        shutdown,
    )
    .await;

    // Every request is answered; let the batchers send what they hold.
    drop(state);
    drop(batchers);
    for task in batcher_tasks {
        let _ = tokio::time::timeout(grace, task).await;
    }
    if let Some(admin) = admin {
        let _ = tokio::time::timeout(grace, admin).await;
    }
    // The last holders of the archiver are gone with the state and the
    // admin router: the archive task writes its open window and ends.
    if let Some(task) = archive_task {
        let _ = tokio::time::timeout(grace, task).await;
    }
    tracing::info!(event = "gateway_stopped");
    Ok(())
}

async fn build_source(
    id: &str,
    config: &SourceConfig,
    batcher: enqueue::Batcher,
    ssm: &aws_sdk_ssm::Client,
    certs: &Arc<CertStore>,
) -> Result<Source, ConfigError> {
    let key = format!("sources.{id}.verifier");
    let (setting, secrets) = match &config.verifier {
        VerifierConfig::StandardWebhooks { secrets, .. } | VerifierConfig::Hmac { secrets, .. } => {
            ("secrets", Some(secrets))
        }
        VerifierConfig::ApiKey { keys, .. } => ("keys", Some(keys)),
        VerifierConfig::BasicAuth { passwords, .. } => ("passwords", Some(passwords)),
        VerifierConfig::Mns { url_token, .. } => ("url_token", url_token.as_ref()),
    };
    let secrets: Vec<SecretString> = match secrets {
        Some(s) => secrets::resolve(&format!("{key}.{setting}"), s, ssm).await?,
        None => Vec::new(),
    };
    let verifier = Verifier::build(&key, &config.verifier, secrets, certs)?;
    let mns_policy = body::MnsPolicy::of(&config.verifier);
    let id: Arc<str> = Arc::from(id);
    Ok(Source {
        normalizer: normalize::Normalizer::new(id.clone(), config),
        metrics: telemetry::SourceMetrics::new(&id),
        id,
        verifier,
        format: config.format(),
        mns_policy,
        allow_plain_http: matches!(
            config.verifier,
            VerifierConfig::Mns {
                allow_plain_http: true,
                ..
            }
        ),
        batcher,
    })
}

#[cfg(unix)]
fn spawn_reload_on_sighup(cert: Arc<ReloadableCert>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(event = "sighup_unavailable", error = %e, "TLS certificates will not be reloaded");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = hangups.recv() => match received {
                    Some(()) => cert.reload(),
                    None => return,
                },
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_reload_on_sighup(_cert: Arc<ReloadableCert>, _shutdown: CancellationToken) {}

fn spawn_rate_limit_housekeeping(state: Arc<AppState>, shutdown: CancellationToken) {
    let state = Arc::downgrade(&state);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            match state.upgrade() {
                Some(state) => state.rate_limits.forget_idle(),
                None => return,
            }
        }
    });
}
