//! The `replay` command's work, called by `main.rs` once the arguments
//! are parsed: build one source's pipeline (no verifier, no listener),
//! replay, print the summary, pick the exit code.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ossbridge_message::QueueMessage;
use ossbridge_runtime::ConfigError;
use time::OffsetDateTime;

use super::dlq::{self, Redrive};
use super::{Options, Summary, Target, input};
use crate::archive::{self, read::ArchiveError};
use crate::body::MnsPolicy;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::{dedup, enqueue, health, normalize};

/// Exit code when something was rejected or not enqueued.
pub const EXIT_INCOMPLETE: u8 = 1;
/// Exit code for configuration and usage errors.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {what}: {error}")]
    Input { what: String, error: std::io::Error },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Redrive(#[from] dlq::RedriveError),
}

impl ReplayError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ReplayError::Usage(_) | ReplayError::Config(_) | ReplayError::Input { .. } => {
                EXIT_USAGE
            }
            ReplayError::Archive(_) | ReplayError::Redrive(_) => EXIT_INCOMPLETE,
        }
    }
}

/// Where replayed documents come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file, or stdin for `-`.
    File(PathBuf),
    /// `s3://BUCKET/PREFIX`, records received in `[since, until)`.
    Archive {
        url: String,
        since: OffsetDateTime,
        until: OffsetDateTime,
    },
}

/// Replays `input` into source `source_id`; prints the summary on stdout
/// (after the messages, for a dry run) and rejected documents on stderr;
/// returns the exit code.
pub async fn replay(
    config: &Config,
    source_id: &str,
    input: Input,
    mut options: Options,
) -> Result<u8, ReplayError> {
    let source = config.sources.get(source_id).ok_or_else(|| {
        ReplayError::Usage(format!("unknown source {source_id:?} (not in [sources])"))
    })?;
    let sdk = config.aws.load().await;
    let documents = match input {
        Input::File(path) => input::split(&read_input(&path)?),
        Input::Archive { url, since, until } => {
            if since >= until {
                return Err(ReplayError::Usage("--since must be before --until".into()));
            }
            let (bucket, prefix) = archive::read::parse_url(&url)?;
            let archive_config = config
                .archive
                .clone()
                .unwrap_or(crate::config::ArchiveConfig {
                    bucket: bucket.clone(),
                    prefix: prefix.clone(),
                    window_secs: 300,
                    region: None,
                    force_path_style: false,
                });
            let s3 = archive::s3_client(&sdk, &archive_config);
            let lookback = time::Duration::seconds(archive_config.window_secs as i64);
            options.since = Some(since);
            options.until = Some(until);
            options.format = Some(super::InputFormat::Archive);
            archive::read::documents(&s3, &bucket, &prefix, since, until, lookback).await?
        }
    };

    let enqueue_timeout = Duration::from_millis(config.sqs.enqueue_timeout_ms);
    let sqs = enqueue::client(&sdk, enqueue_timeout);
    let (batcher, task) = enqueue::Batcher::spawn(
        sqs,
        source.queue_url.clone(),
        &config.sqs,
        health::SqsHealth::new(),
    );
    let id: Arc<str> = Arc::from(source_id);
    let normalizer = normalize::Normalizer::new(id.clone(), source);
    let dedup = dedup::Dedup::new(&config.dedup);
    let mns_policy = MnsPolicy::of(&source.verifier).unwrap_or_default();
    let target = Target {
        source_id: id,
        format: source.format(),
        mns_policy,
        pipeline: Pipeline {
            normalizer: &normalizer,
            batcher: &batcher,
            dedup: &dedup,
            enqueue_timeout,
        },
    };
    let mut print = |m: &QueueMessage| println!("{}", m.to_body());
    let summary = target.replay(documents, &options, &mut print).await;
    drop(batcher);
    let _ = tokio::time::timeout(enqueue_timeout, task).await;
    report(&summary);
    Ok(if summary.is_clean() {
        0
    } else {
        EXIT_INCOMPLETE
    })
}

fn read_input(path: &std::path::Path) -> Result<String, ReplayError> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    result.map_err(|error| ReplayError::Input {
        what: path.display().to_string(),
        error,
    })?;
    Ok(text)
}

fn report(summary: &Summary) {
    for p in &summary.problems {
        match &p.object {
            Some(object) => eprintln!("{object}: {}: {}: {}", p.position, p.kind, p.reason),
            None => eprintln!("{}: {}: {}", p.position, p.kind, p.reason),
        }
    }
    eprintln!(
        "{}enqueued {}, duplicates {}, filtered {}, ignored {}, rejected {}, failed {}, skipped {}",
        if summary.dry_run {
            "dry run: would have "
        } else {
            ""
        },
        summary.enqueued,
        summary.duplicates,
        summary.filtered,
        summary.ignored,
        summary.rejected,
        summary.failed,
        summary.skipped,
    );
    println!("{}", serde_json::to_string(summary).unwrap_or_default());
}

/// `replay --from-dlq`: returns the exit code. Without a target
/// (`redrive.target_url` empty) the DLQ's one source queue is the target.
pub async fn redrive(config: Option<&Config>, mut redrive: Redrive) -> Result<u8, ReplayError> {
    let sdk = match config {
        Some(c) => c.aws.load().await,
        None => ossbridge_runtime::aws::AwsConfig::default().load().await,
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    if redrive.target_url.is_empty() {
        redrive.target_url = dlq::source_queue(&sqs, &redrive.dlq_url).await?;
        eprintln!("target: {}", redrive.target_url);
    }
    let mut print = |m: &aws_sdk_sqs::types::Message| {
        println!(
            "{}",
            serde_json::to_string(&dlq::listed(m)).unwrap_or_default()
        );
    };
    let summary = redrive.run(&sqs, &mut print).await?;
    for e in &summary.errors {
        eprintln!("{e}");
    }
    eprintln!(
        "{}received {}, moved {}, failed {}",
        if summary.dry_run { "dry run: " } else { "" },
        summary.received,
        summary.moved,
        summary.failed
    );
    println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    Ok(if summary.failed == 0 && summary.errors.is_empty() {
        0
    } else {
        EXIT_INCOMPLETE
    })
}
