//! The AWS clients a worker uses: the source bucket (OSS through its
//! S3-compatible API, keys from SSM or Secrets Manager), the destination
//! bucket, SQS, and the store of the source keys (default credential chain
//! for all but the source).

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};

use crate::config::{DestinationConfig, SourceConfig};
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
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .credentials_provider(credentials.clone())
        // OSS takes only virtual-hosted-style requests (BUCKET.ENDPOINT);
        // this resolver makes `BUCKET.localhost` loopback for local
        // stand-ins and leaves real names to the system resolver.
        .http_client(ossbridge_runtime::dns::http_client())
        // SourceCredentials caches the keys itself, and re-reads them when
        // this client's requests are refused (its interceptor tells it).
        .identity_cache(aws_sdk_s3::config::IdentityCache::no_cache())
        .interceptor(credentials.source_interceptor())
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
    let mut conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(config.force_path_style);
    if let Some(region) = &config.region {
        conf = conf.region(Region::new(region.clone()));
    }
    if let Some(url) = &config.endpoint_url {
        conf = conf.endpoint_url(url);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
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
