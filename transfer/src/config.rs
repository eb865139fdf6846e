//! The transfer service's configuration. Every key is listed in
//! docs/configuration.md.

use ossbridge_runtime::ConfigError;
use std::net::SocketAddr;

use aws_sdk_s3::types::{ObjectCannedAcl, ServerSideEncryption, StorageClass};
use ossbridge_runtime::aws::AwsConfig;
use ossbridge_runtime::cli::ServiceConfig;
use ossbridge_runtime::config::require_http_url;
use ossbridge_runtime::logging::LogConfig;
use serde::Deserialize;

mod timeouts;
pub use timeouts::S3Timeouts;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub log: LogConfig,
    /// Where SQS, SSM and the destination bucket are reached (default AWS
    /// credential chain).
    #[serde(default)]
    pub aws: AwsConfig,
    /// The SQS queue of copy jobs. Required by the worker and by
    /// `sync --enqueue` (see [`Config::require_queue_url`]); an in-process
    /// `sync` has no queue.
    #[serde(default)]
    pub queue_url: Option<String>,
    pub source: SourceConfig,
    pub destination: DestinationConfig,
    #[serde(default)]
    pub copy: CopyConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[source]`: the OSS bucket, read through OSS's S3-compatible API.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source bucket. Messages naming another bucket are refused.
    pub bucket: String,
    /// For example `https://s3.oss-cn-hangzhou.aliyuncs.com`.
    pub endpoint_url: String,
    /// The region used for signing, for example `oss-cn-hangzhou`.
    pub region: String,
    /// SSM Parameter Store SecureString holding
    /// `{"access_key_id": ..., "secret_access_key": ...}` (`session_token`
    /// is optional). Exactly one of this and `credentials_secret`.
    pub credentials_parameter: Option<String>,
    /// AWS Secrets Manager secret (name or ARN) holding the same JSON as a
    /// SecretString, which is how Data Transfer Hub stores OSS keys.
    pub credentials_secret: Option<String>,
    /// How often the keys are re-read from their store, in seconds.
    #[serde(default = "default_credentials_refresh_secs")]
    pub credentials_refresh_secs: u64,
    /// OSS accepts only virtual-hosted-style requests; local emulators need
    /// path style.
    #[serde(default)]
    pub force_path_style: bool,
    /// Connecting (DNS, TCP, TLS), in seconds.
    #[serde(default = "timeouts::source_connect_secs")]
    pub connect_timeout_secs: u64,
    /// From the last byte of a request to the first byte of its answer.
    #[serde(default = "timeouts::source_read_secs")]
    pub read_timeout_secs: u64,
    /// One attempt of one request, object bodies aside; 0 = none.
    #[serde(default = "timeouts::source_attempt_secs")]
    pub operation_attempt_timeout_secs: u64,
    /// How long a body may move less than 1 byte/s before it fails.
    #[serde(default = "timeouts::source_stall_secs")]
    pub stall_timeout_secs: u64,
}

/// Where the source keys are kept, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStoreName<'a> {
    /// `source.credentials_parameter`: an SSM parameter name.
    Parameter(&'a str),
    /// `source.credentials_secret`: a Secrets Manager secret name or ARN.
    Secret(&'a str),
}

impl SourceConfig {
    /// The configured key store; exactly one must be set (checked by
    /// `validate`).
    pub fn key_store(&self) -> Result<KeyStoreName<'_>, ConfigError> {
        match (
            self.credentials_parameter.as_deref(),
            self.credentials_secret.as_deref(),
        ) {
            (Some(name), None) => {
                non_empty("source.credentials_parameter", name)?;
                Ok(KeyStoreName::Parameter(name))
            }
            (None, Some(id)) => {
                non_empty("source.credentials_secret", id)?;
                Ok(KeyStoreName::Secret(id))
            }
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "source.credentials_parameter",
                "set only one of source.credentials_parameter (SSM) and source.credentials_secret (Secrets Manager)",
            )),
            (None, None) => Err(ConfigError::invalid(
                "source.credentials_parameter",
                "required, or source.credentials_secret: where the OSS keys are kept (SSM parameter or Secrets Manager secret)",
            )),
        }
    }
}

/// `[destination]`: the Amazon S3 bucket.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub bucket: String,
    /// Prepended to every source key.
    #[serde(default)]
    pub prefix: String,
    /// Region of the bucket; `[aws].region` when unset.
    pub region: Option<String>,
    /// Endpoint override for the destination only (tests, S3-compatible
    /// stores); `[aws].endpoint_url` when unset.
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub force_path_style: bool,
    /// Storage class of written objects, e.g. `INTELLIGENT_TIERING`; the
    /// bucket's default when unset.
    pub storage_class: Option<String>,
    /// Server-side encryption: `AES256` or `aws:kms`.
    pub sse: Option<String>,
    /// KMS key id or ARN, with `sse = "aws:kms"`.
    pub sse_kms_key_id: Option<String>,
    /// Canned ACL, e.g. `bucket-owner-full-control` (cross-account).
    pub acl: Option<String>,
    /// Connecting (DNS, TCP, TLS), in seconds.
    #[serde(default = "timeouts::destination_connect_secs")]
    pub connect_timeout_secs: u64,
    /// From the last byte of a request (an uploaded body included) to the
    /// first byte of its answer.
    #[serde(default = "timeouts::destination_read_secs")]
    pub read_timeout_secs: u64,
    /// One attempt of one request, uploading its body included; 0 = none.
    #[serde(default = "timeouts::destination_attempt_secs")]
    pub operation_attempt_timeout_secs: u64,
    /// How long a body may move less than 1 byte/s before it fails.
    #[serde(default = "timeouts::destination_stall_secs")]
    pub stall_timeout_secs: u64,
}

/// `timeouts()` of a side: both have the same four keys.
macro_rules! s3_timeouts {
    ($($side:ty),*) => {$(
        impl $side {
            pub fn timeouts(&self) -> S3Timeouts {
                S3Timeouts::from_secs(
                    self.connect_timeout_secs,
                    self.read_timeout_secs,
                    self.operation_attempt_timeout_secs,
                    self.stall_timeout_secs,
                )
            }
        }
    )*};
}
s3_timeouts!(SourceConfig, DestinationConfig);

/// `[copy]`: how objects are copied.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct CopyConfig {
    /// Objects larger than this are copied in parts (5–5120 MiB).
    pub multipart_threshold_mib: u64,
    /// Part size (5–5120 MiB); larger when the object would otherwise
    /// need more than 10,000 parts.
    pub part_size_mib: u64,
    /// Parts of one object copied at once.
    pub part_concurrency: usize,
    /// Copy the source's user metadata (`x-oss-meta-*` → `x-amz-meta-*`).
    pub copy_metadata: bool,
    /// Act on deletes: a delete message removes the destination object
    /// (unless the source exists again), and a copy whose source vanished
    /// becomes a delete. Off by default.
    pub propagate_deletes: bool,
    /// An idle multipart upload of a key being copied that is older than
    /// this is aborted rather than resumed. Uploads of keys nobody copies
    /// again are left to the bucket's lifecycle rule
    /// (AbortIncompleteMultipartUpload; docs/operations.md).
    pub stale_upload_hours: u64,
    /// A multipart upload initiated, or with a part finished, less than
    /// this many seconds ago belongs to a copy that is running (here or in
    /// another worker) and is never resumed or aborted by another. 60 by
    /// default; at most two thirds of `worker.visibility_timeout_secs`, so
    /// a crashed worker's upload is idle by the time its message comes
    /// back.
    pub upload_idle_secs: Option<u64>,
    /// Attempts per job inside one receive of its message.
    pub attempts: usize,
}

impl Default for CopyConfig {
    fn default() -> Self {
        CopyConfig {
            multipart_threshold_mib: 64,
            part_size_mib: 16,
            part_concurrency: 4,
            copy_metadata: true,
            propagate_deletes: false,
            stale_upload_hours: 24,
            upload_idle_secs: None,
            attempts: 3,
        }
    }
}

/// `[metrics]`: the admin listener and CloudWatch EMF lines.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics` (Prometheus) and `/healthz`; unset disables.
    pub listen: Option<SocketAddr>,
    /// Write CloudWatch Embedded Metric Format lines to stdout.
    pub emf: bool,
    pub emf_interval_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9091))),
            emf: false,
            emf_interval_secs: 60,
        }
    }
}

/// `[worker]`: how the queue is drained.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Objects copied at the same time.
    pub concurrency: usize,
    /// Object data in flight at once, across all copies; a multipart copy
    /// counts its parts in flight, not the whole object.
    pub max_bytes_in_flight_mib: u64,
    /// Long-polling receivers.
    pub receivers: usize,
    /// ReceiveMessage long-poll wait (0–20 s).
    pub wait_time_secs: i32,
    /// Visibility timeout requested for received messages, and extended
    /// every third of it while a copy runs.
    pub visibility_timeout_secs: i32,
    /// After a shutdown signal, how long copies in progress may take before
    /// the process exits (their messages are then handed back to the queue
    /// as new messages, so the interruption costs no receive).
    pub shutdown_grace_secs: u64,
    /// The throughput (MiB/s) one copy is assumed to sustain. SQS keeps a
    /// message invisible for at most 12 hours after it was received, so a
    /// queue worker refuses objects larger than 12 h at this rate
    /// (permanent reason `too_large_for_queue`); `sync` has no such limit.
    pub lease_throughput_mib_per_sec: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            max_bytes_in_flight_mib: 1024,
            receivers: 2,
            wait_time_secs: 20,
            visibility_timeout_secs: 300,
            shutdown_grace_secs: 30,
            lease_throughput_mib_per_sec: 50,
        }
    }
}

fn default_credentials_refresh_secs() -> u64 {
    300
}

impl ServiceConfig for Config {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.aws.validate("aws")?;
        if let Some(url) = &self.queue_url {
            require_http_url("queue_url", url)?;
        }
        let s = &self.source;
        non_empty("source.bucket", &s.bucket)?;
        require_http_url("source.endpoint_url", &s.endpoint_url)?;
        non_empty("source.region", &s.region)?;
        s.key_store()?;
        if s.credentials_refresh_secs < 10 {
            return Err(ConfigError::invalid(
                "source.credentials_refresh_secs",
                "must be at least 10",
            ));
        }
        timeouts::validate("source", &s.timeouts())?;
        let d = &self.destination;
        non_empty("destination.bucket", &d.bucket)?;
        timeouts::validate("destination", &d.timeouts())?;
        if let Some(url) = &d.endpoint_url {
            require_http_url("destination.endpoint_url", url)?;
        }
        if d.region.as_deref() == Some("") {
            return Err(ConfigError::invalid(
                "destination.region",
                "must not be empty",
            ));
        }
        for (key, value, allowed) in [
            (
                "destination.storage_class",
                &d.storage_class,
                StorageClass::values(),
            ),
            ("destination.sse", &d.sse, ServerSideEncryption::values()),
            ("destination.acl", &d.acl, ObjectCannedAcl::values()),
        ] {
            if let Some(v) = value
                && !allowed.contains(&v.as_str())
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("{v:?} is not one of {}", allowed.join(", ")),
                ));
            }
        }
        if d.sse_kms_key_id.is_some() && !d.sse.as_deref().is_some_and(|s| s.starts_with("aws:kms"))
        {
            return Err(ConfigError::invalid(
                "destination.sse_kms_key_id",
                "needs sse = \"aws:kms\"",
            ));
        }
        let c = &self.copy;
        for (key, mib) in [
            ("copy.multipart_threshold_mib", c.multipart_threshold_mib),
            ("copy.part_size_mib", c.part_size_mib),
        ] {
            if !(5..=5120).contains(&mib) {
                return Err(ConfigError::invalid(
                    key,
                    "must be between 5 and 5120 (MiB)",
                ));
            }
        }
        for (key, n) in [
            ("copy.part_concurrency", c.part_concurrency),
            ("copy.attempts", c.attempts),
            ("worker.concurrency", self.worker.concurrency),
            ("worker.receivers", self.worker.receivers),
        ] {
            if n == 0 {
                return Err(ConfigError::invalid(key, "must be > 0"));
            }
        }
        let w = &self.worker;
        if w.max_bytes_in_flight_mib < 5 {
            return Err(ConfigError::invalid(
                "worker.max_bytes_in_flight_mib",
                "must be at least 5",
            ));
        }
        if !(5..=43_200).contains(&w.visibility_timeout_secs) {
            return Err(ConfigError::invalid(
                "worker.visibility_timeout_secs",
                "must be between 5 and 43200",
            ));
        }
        if c.upload_idle_secs
            .is_some_and(|idle| idle.saturating_mul(3) > 2 * w.visibility_timeout())
        {
            return Err(ConfigError::invalid(
                "copy.upload_idle_secs",
                format!(
                    "must be at most two thirds of worker.visibility_timeout_secs ({}), or a \
                     crashed worker's upload would still look in use when its message returns",
                    w.visibility_timeout_secs
                ),
            ));
        }
        if w.lease_throughput_mib_per_sec == 0 {
            return Err(ConfigError::invalid(
                "worker.lease_throughput_mib_per_sec",
                "must be > 0",
            ));
        }
        if self.metrics.emf && self.metrics.emf_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "metrics.emf_interval_secs",
                "must be > 0",
            ));
        }
        if !(0..=20).contains(&w.wait_time_secs) {
            return Err(ConfigError::invalid(
                "worker.wait_time_secs",
                "must be between 0 and 20",
            ));
        }
        Ok(())
    }
}

impl CopyConfig {
    /// `upload_idle_secs`, or a minute, at most two thirds of the
    /// visibility timeout. A running copy finishes a part every few
    /// seconds, so a minute without one means nobody is feeding it.
    pub fn upload_idle_secs(&self, worker: &WorkerConfig) -> u64 {
        self.upload_idle_secs
            .unwrap_or_else(|| (2 * worker.visibility_timeout() / 3).min(60))
    }
}

impl WorkerConfig {
    /// The visibility timeout in seconds (validated positive).
    pub fn visibility_timeout(&self) -> u64 {
        u64::from(self.visibility_timeout_secs.unsigned_abs())
    }

    /// The largest object a queue worker takes on: what
    /// `lease_throughput_mib_per_sec` copies within SQS's 12-hour
    /// visibility limit.
    pub fn max_object_size(&self) -> u64 {
        const MIB: u64 = 1024 * 1024;
        self.lease_throughput_mib_per_sec
            .saturating_mul(MIB)
            .saturating_mul(12 * 3600)
    }
}

impl Config {
    /// The queue URL, for the modes that need one (the worker, `sync
    /// --enqueue`). `mode` ends the error message, e.g. "by the worker".
    pub fn require_queue_url(&self, mode: &str) -> Result<&str, ConfigError> {
        self.queue_url
            .as_deref()
            .ok_or_else(|| ConfigError::invalid("queue_url", format!("required {mode}")))
    }
}

fn non_empty(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    Ok(())
}

#[cfg(test)]
mod docs_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use ossbridge_runtime::parse_toml;

    const EXAMPLE: &str = include_str!("../../deploy/config/transfer.example.toml");

    fn load(text: &str) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let config = load(EXAMPLE).expect("valid");
        assert_eq!(
            config.source.key_store().expect("one store"),
            KeyStoreName::Parameter("/ossbridge/oss-keys")
        );
        assert_eq!(config.worker.wait_time_secs, 20);
    }

    #[test]
    fn the_compose_configuration_is_valid() {
        let config = load(include_str!("../../deploy/compose/transfer.toml")).expect("valid");
        // deploy/compose/init.sh creates this parameter.
        assert_eq!(
            config.source.credentials_parameter.as_deref(),
            Some("/ossbridge/oss-keys")
        );
        assert!(config.require_queue_url("by the worker").is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let err = load(&EXAMPLE.replace("wait_time_secs = 20", "wait_time_secs = 21"))
            .expect_err("range");
        assert!(err.to_string().contains("worker.wait_time_secs"), "{err}");
        let err = load(&EXAMPLE.replace("bucket = \"media-prod\"", "")).expect_err("missing");
        assert!(
            err.to_string().contains("bucket") && err.to_string().contains("source"),
            "{err}"
        );
        let err =
            load(&EXAMPLE.replace("endpoint_url = \"https://s3.oss", "endpoint_url = \"s3.oss"))
                .expect_err("url");
        assert!(err.to_string().contains("source.endpoint_url"), "{err}");
        let err = load(&format!("{EXAMPLE}\nconcurency = 3\n")).expect_err("typo");
        assert!(err.to_string().contains("concurency"), "{err}");
    }

    #[test]
    fn the_keys_come_from_exactly_one_store() {
        let parameter = "credentials_parameter = \"/ossbridge/oss-keys\"\n";
        let secret = "credentials_secret = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:dth-oss-credentials-AbCdEf\"\n";
        let config = load(&EXAMPLE.replace(parameter, secret)).expect("a secret instead");
        assert_eq!(
            config.source.key_store().expect("one store"),
            KeyStoreName::Secret(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:dth-oss-credentials-AbCdEf"
            )
        );
        for (text, what) in [
            (EXAMPLE.replace(parameter, ""), "neither"),
            (
                EXAMPLE.replace(parameter, &format!("{parameter}{secret}")),
                "both",
            ),
        ] {
            let err = load(&text).expect_err(what).to_string();
            assert!(
                err.contains("source.credentials_parameter")
                    && err.contains("source.credentials_secret"),
                "{what}: {err}"
            );
        }
        let err = load(&EXAMPLE.replace(parameter, "credentials_secret = \"\"\n"))
            .expect_err("empty")
            .to_string();
        assert!(err.contains("source.credentials_secret"), "{err}");
    }

    #[test]
    fn queue_url_is_optional_in_the_file_but_required_by_the_worker() {
        let without: String = EXAMPLE
            .lines()
            .filter(|l| !l.starts_with("queue_url"))
            .collect::<Vec<_>>()
            .join("\n");
        let config = load(&without).expect("valid without a queue");
        let err = config
            .require_queue_url("by the worker")
            .expect_err("missing");
        assert!(err.to_string().contains("queue_url"), "{err}");
        let err = load(&format!("queue_url = \"sqs\"\n{without}")).expect_err("not a URL");
        assert!(err.to_string().contains("queue_url"), "{err}");
    }
}
