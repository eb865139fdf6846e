//! `ossbridge-transfer sync`: a full reconcile of the destination with the
//! source, for the first migration and for catching up on anything the
//! event path missed.
//!
//! Both buckets are listed (ListObjectsV2) and merged by key as two sorted
//! streams (`diff.rs`), a page at a time, so memory does not grow with the
//! bucket. Listing runs in parallel over ranges: the keys directly under
//! each root (the whole bucket, or each `--include`) and each "directory"
//! one level below it, each range its own merge. A key is copied when it
//! is missing at the destination or its size differs; when sizes agree the
//! destination is HEADed and its recorded `ossbridge-source-etag` compared
//! with the source's ETag. Copies go through the copy engine in-process, or
//! onto the queue (`--enqueue`).
//!
//! A restarted sync does not redo finished work: objects already copied
//! carry the recorded ETag, and the copy engine resumes a half-finished
//! multipart upload.

mod deletes;
mod diff;
mod enqueue;
mod execute;
mod listing;
mod progress;
mod ranges;
mod summary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use ossbridge_runtime::ConfigError;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Config, RunError, clients};
pub use deletes::{DEFAULT_MAX_DELETE_PERCENT, DeleteLimits};
pub use diff::{Decision, Filter, Pair, Reason, decide};
pub use enqueue::{EVENT_NAME, EVENT_NAME_MISSING};
use execute::Executor;
pub use listing::{Entry, Listing, Side};
use progress::Counters;
pub use progress::Display as ProgressDisplay;
use summary::Failures;
pub use summary::{Failed, Summary};

/// Work items queued between the listings and the executor.
const WORK_QUEUE: usize = 1024;

/// How copies are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Through the copy engine in this process.
    InProcess,
    /// As jobs on `queue_url`, for the workers.
    Enqueue,
}

/// The `sync` command line, as the library takes it.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub mode: Mode,
    pub dry_run: bool,
    /// Delete destination objects the source does not have.
    pub delete: bool,
    /// `--yes-delete`: required with `delete` unless `dry_run`.
    pub confirm_delete: bool,
    /// The circuit breaker deletes must pass, checked before the first.
    pub delete_limits: DeleteLimits,
    pub filter: Filter,
    /// Overrides `destination.prefix`.
    pub destination_prefix: Option<String>,
    /// Copies at once; `worker.concurrency` when unset.
    pub concurrency: Option<usize>,
    /// Destination HEADs at once.
    pub head_concurrency: usize,
    /// Ranges listed and merged at once.
    pub list_concurrency: usize,
    pub progress: ProgressDisplay,
    pub progress_interval: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            mode: Mode::InProcess,
            dry_run: false,
            delete: false,
            confirm_delete: false,
            delete_limits: DeleteLimits::default(),
            filter: Filter::default(),
            destination_prefix: None,
            concurrency: None,
            head_concurrency: 32,
            list_concurrency: 4,
            progress: ProgressDisplay::Auto,
            progress_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "--delete deletes destination objects; confirm with --yes-delete (or look first with --dry-run)"
    )]
    DeleteNotConfirmed,
    #[error("source credentials: {0}")]
    Credentials(String),
    #[error("listing the {side} (s3://{bucket}/{prefix}): {detail}")]
    List {
        side: &'static str,
        bucket: String,
        prefix: String,
        detail: String,
    },
    #[error(
        "the {side} listing is not in byte order ({previous:?} before {key:?}); refusing to diff it"
    )]
    Unsorted {
        side: &'static str,
        previous: String,
        key: String,
    },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl SyncError {
    /// Whether the fault is the command line's or the configuration's
    /// (exit code 2) rather than the run's.
    pub fn is_usage(&self) -> bool {
        matches!(self, SyncError::Config(_) | SyncError::DeleteNotConfirmed)
    }
}

impl From<RunError> for SyncError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Config(c) => SyncError::Config(c),
            RunError::Credentials(c) => SyncError::Credentials(c),
        }
    }
}

/// [`run_sync_with`] with the AWS SDK configuration from `[aws]`.
pub async fn run_sync(
    config: Config,
    options: SyncOptions,
    shutdown: CancellationToken,
) -> Result<Summary, SyncError> {
    let sdk = config.aws.load().await;
    run_sync_with(config, options, &sdk, shutdown).await
}

/// Reconciles the destination with the source until done or `shutdown`;
/// returns the summary (also logged as `sync_summary`). Errors are what
/// stops a sync from starting; failures of single keys or ranges are in
/// the summary.
pub async fn run_sync_with(
    mut config: Config,
    options: SyncOptions,
    sdk: &SdkConfig,
    shutdown: CancellationToken,
) -> Result<Summary, SyncError> {
    use ossbridge_runtime::cli::ServiceConfig;
    if options.delete && !options.confirm_delete && !options.dry_run {
        return Err(SyncError::DeleteNotConfirmed);
    }
    if let Some(prefix) = &options.destination_prefix {
        config.destination.prefix = prefix.clone();
    }
    config.validate()?;
    let queue_url = match options.mode {
        Mode::Enqueue => Some(config.require_queue_url("by sync --enqueue")?.to_owned()),
        Mode::InProcess => None,
    };
    let concurrency = options.concurrency.unwrap_or(config.worker.concurrency);
    let percent = options.delete_limits.max_percent;
    if !(0.0..=100.0).contains(&percent) {
        return Err(
            ConfigError::invalid("--max-delete-percent", "must be between 0 and 100").into(),
        );
    }
    for (key, n) in [
        ("--concurrency", concurrency),
        ("--head-concurrency", options.head_concurrency),
        ("--list-concurrency", options.list_concurrency),
    ] {
        if n == 0 {
            return Err(ConfigError::invalid(key, "must be > 0").into());
        }
    }
    let started = Instant::now();
    let copier = Arc::new(crate::copier(&config, sdk).await?);
    let counters = Arc::new(Counters::default());
    let failures = Arc::new(Failures::default());
    let run_id = format!(
        "sync-{}",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let (enqueuer, enqueuer_task) = match (&queue_url, options.dry_run) {
        (Some(url), false) => {
            let (e, task) = enqueue::Enqueuer::spawn(
                clients::sqs(sdk),
                url.clone(),
                counters.clone(),
                failures.clone(),
            );
            (Some(e), Some(task))
        }
        _ => (None, None),
    };
    let executor = Arc::new(Executor {
        copier: copier.clone(),
        enqueuer,
        source: enqueue::Source {
            bucket: config.source.bucket.clone(),
            region: config.source.region.clone(),
        },
        run_id: run_id.clone(),
        dry_run: options.dry_run,
        counters: counters.clone(),
        failures: failures.clone(),
        copies: Arc::new(Semaphore::new(concurrency)),
        heads: Arc::new(Semaphore::new(options.head_concurrency)),
    });
    let stop_progress = CancellationToken::new();
    let reporter = progress::spawn(
        counters.clone(),
        options.progress,
        options.progress_interval,
        stop_progress.clone(),
    );
    tracing::info!(
        event = "sync_started",
        run_id = %run_id,
        source_bucket = %config.source.bucket,
        destination_bucket = %config.destination.bucket,
        destination_prefix = %config.destination.prefix,
        mode = mode_label(options.mode),
        dry_run = options.dry_run,
        delete = options.delete,
        concurrency,
    );

    let (tx, rx) = mpsc::channel(WORK_QUEUE);
    let grace = Duration::from_secs(config.worker.shutdown_grace_secs);
    let executing = tokio::spawn(executor.run(rx, shutdown.clone(), grace));
    let pending_deletes = Arc::new(deletes::Pending::default());
    let lister = ranges::Lister {
        source: copier.source.clone(),
        destination: copier.destination.clone(),
        source_bucket: config.source.bucket.clone(),
        destination_bucket: config.destination.bucket.clone(),
        root: config.destination.prefix.clone(),
        options: options.clone(),
        counters: counters.clone(),
        failures: failures.clone(),
        deletes: pending_deletes.clone(),
    };
    lister.run(&tx, &shutdown).await;
    // Only now, with every range listed, are deletes considered.
    let deletes_refused = if options.delete && !shutdown.is_cancelled() {
        let candidates = pending_deletes.take();
        let refused = options.delete_limits.refuse(
            candidates.len() as u64,
            progress::get(&counters.source_objects),
            progress::get(&counters.destination_objects),
        );
        if let Some((reason, why)) = &refused {
            failures.record(&counters, "", reason, why.clone());
        }
        // A dry run still lists what would be deleted, so the operator
        // can judge whether to raise the limit.
        if refused.is_none() || options.dry_run {
            for key in candidates {
                if tx.send(execute::Work::Delete(key)).await.is_err() {
                    break;
                }
            }
        }
        refused.map(|(_, why)| why)
    } else {
        None
    };
    drop(tx);
    let abandoned = executing.await.unwrap_or(true);
    // The executor held the only sender to the enqueuer: it has gone, so
    // the enqueuer flushes what it holds and returns.
    if let Some(task) = enqueuer_task {
        let _ = task.await;
    }
    stop_progress.cancel();
    let _ = reporter.await;

    let mut summary = Summary::collect(&counters, &failures);
    summary.mode = mode_label(options.mode);
    summary.dry_run = options.dry_run;
    summary.deletes_refused = deletes_refused;
    summary.interrupted = abandoned || shutdown.is_cancelled();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.log();
    Ok(summary)
}

fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::InProcess => "in-process",
        Mode::Enqueue => "enqueue",
    }
}
