//! The AWS clients a worker uses: the source bucket (OSS through its
//! S3-compatible API, keys from SSM or Secrets Manager), the destination
//! bucket, SQS, and the store of the source keys (default credential chain
//! for all but the source).
//!
//! ## Timeouts of the two S3 clients
//!
//! A copy streams a source GET body into a destination PUT or UploadPart
//! of up to 5 GiB, so no limit may depend on the size of a body, while a
//! stalled connection must still fail. What bounds each phase of a request
//! (`[source]` / `[destination]` keys):
//!
//! - connecting (DNS, TCP, TLS): `connect_timeout_secs`, the SDK's
//!   connect timeout;
//! - sending the body and reading the answer's body: stalled stream
//!   protection, on for both directions: a body that moves less than
//!   1 byte/s for `stall_timeout_secs` fails (aws-smithy-runtime
//!   `client/stalled_stream_protection.rs` and
//!   `client/http/body/minimum_throughput.rs`; an upload waiting on its own
//!   body, here the source's download, is not counted as stalled, and the
//!   source download has its own protection);
//! - waiting for the answer once the request is sent: `read_timeout_secs`
//!   ([`response_timeout`]; not the SDK's read timeout, which also counts
//!   the upload);
//! - one attempt as a whole: `operation_attempt_timeout_secs`. The SDK's
//!   attempt ends when the answer's headers are read for a streaming
//!   answer (a GET: the object streams after it, outside every operation
//!   timeout; developer guide, "Configuring timeouts"), but includes
//!   uploading the body of a PUT. So the source has one by default and the
//!   destination none.
//!
//! No operation timeout (all attempts) is set: streamed bodies are not
//! retried by the SDK, and the copy engine bounds its own attempts.

pub mod response_timeout;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::{
    RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
};

use crate::config::{DestinationConfig, S3Timeouts, SourceConfig};
use crate::credentials::SourceCredentials;

/// A client for the source bucket.
///
/// OSS does not implement S3's flexible checksums, so the SDK is told to
/// neither send nor expect `x-amz-checksum-*` there; integrity is checked
/// against OSS's own headers instead.
pub fn source_s3(
    sdk: &SdkConfig,
    config: &SourceConfig,
    credentials: SourceCredentials,
) -> aws_sdk_s3::Client {
    let timeouts = config.timeouts();
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .credentials_provider(credentials.clone())
        // OSS takes only virtual-hosted-style requests (BUCKET.ENDPOINT);
        // this resolver makes `BUCKET.localhost` loopback for local
        // stand-ins and leaves real names to the system resolver.
        .http_client(response_timeout::wrap(
            ossbridge_runtime::dns::http_client(),
            timeouts.read,
        ))
        // SourceCredentials caches the keys itself, and re-reads them when
        // this client's requests are refused (its interceptor tells it).
        .identity_cache(aws_sdk_s3::config::IdentityCache::no_cache())
        .interceptor(credentials.source_interceptor())
        .timeout_config(s3_timeouts(&timeouts))
        .stalled_stream_protection(stall_protection(&timeouts))
        .region(Region::new(config.region.clone()))
        .endpoint_url(&config.endpoint_url)
        .force_path_style(config.force_path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A client for the destination bucket, on the default credential chain.
pub fn destination_s3(sdk: &SdkConfig, config: &DestinationConfig) -> aws_sdk_s3::Client {
    let timeouts = config.timeouts();
    // The same HTTPS client the SDK would pick (rustls, aws-lc), unless
    // the caller chose one; wrapped for the read timeout.
    let http = sdk
        .http_client()
        .unwrap_or_else(ossbridge_runtime::dns::http_client);
    let mut conf = aws_sdk_s3::config::Builder::from(sdk)
        .http_client(response_timeout::wrap(http, timeouts.read))
        .timeout_config(s3_timeouts(&timeouts))
        .stalled_stream_protection(stall_protection(&timeouts))
        .force_path_style(config.force_path_style);
    if let Some(region) = &config.region {
        conf = conf.region(Region::new(region.clone()));
    }
    if let Some(url) = &config.endpoint_url {
        conf = conf.endpoint_url(url);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// The SDK's share of [`S3Timeouts`]; the read timeout is
/// [`response_timeout`]'s, so the SDK's own is off.
fn s3_timeouts(t: &S3Timeouts) -> TimeoutConfig {
    let mut builder = TimeoutConfig::builder()
        .connect_timeout(t.connect)
        .disable_read_timeout()
        .disable_operation_timeout();
    builder.set_operation_attempt_timeout(t.attempt);
    builder.build()
}

/// Explicit rather than the behavior version's default (uploads and
/// downloads, 1 byte/s, 5 s grace: aws-smithy-runtime
/// `client/defaults.rs`), so that the grace period is configurable and the
/// protection cannot silently change with an SDK upgrade.
fn stall_protection(t: &S3Timeouts) -> StalledStreamProtectionConfig {
    StalledStreamProtectionConfig::enabled()
        .upload_enabled(true)
        .download_enabled(true)
        .grace_period(t.stall)
        .build()
}

/// The stores of the source keys. One read is one request (with the SDK's
/// retries); it is bounded so that callers waiting on it (the refresh is
/// single-flight) fall back to the last good keys in good time.
fn key_store_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build()
}

/// SSM client for `source.credentials_parameter`.
pub fn ssm(sdk: &SdkConfig) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::config::Builder::from(sdk)
        .timeout_config(key_store_timeouts())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// Secrets Manager client for `source.credentials_secret`.
pub fn secrets_manager(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::config::Builder::from(sdk)
        .timeout_config(key_store_timeouts())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

/// SQS client. Long polls hold a request open for up to 20 s, so the
/// per-attempt timeout must be longer than that.
pub fn sqs(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}
