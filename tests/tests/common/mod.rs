//! What the proxy tests share: one emulator per test binary and SDK
//! clients configured as the product's.

#![allow(dead_code)]

use std::sync::OnceLock;

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use crc_fast::CrcAlgorithm;
use md5::{Digest, Md5};
use ossbridge_testkit::aws::put_one_part_multipart;
use ossbridge_testkit::{Emulator, LocalAws, S3Proxy, unique_name};

/// One emulator for this file's tests (it exits with the test process);
/// each test has its own buckets.
static EMULATOR: OnceLock<Result<Emulator, String>> = OnceLock::new();

pub async fn emulator() -> Result<String> {
    tokio::task::spawn_blocking(|| {
        match EMULATOR.get_or_init(|| Emulator::start().map_err(|e| format!("{e:#}"))) {
            Ok(emulator) => Ok(emulator.endpoint()),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    })
    .await?
}

/// An SDK client for `endpoint` signing with `access_key`, resolving
/// `*.localhost` to 127.0.0.1 as the product's source client does.
pub fn client(
    aws: &LocalAws,
    endpoint: &str,
    path_style: bool,
    access_key: &str,
) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&aws.sdk)
        .endpoint_url(endpoint)
        .force_path_style(path_style)
        .credentials_provider(Credentials::new(access_key, "secret", None, None, "test"))
        .http_client(ossbridge_runtime::dns::http_client())
        // As the product's source client: OSS has no flexible checksums.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// (HTTP status, S3 error code) of an SDK call: (200, "") if it succeeded.
pub fn s3_code<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(
    result: Result<R, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (u16, String) {
    match result {
        Ok(_) => (200, String::new()),
        Err(e) => (
            e.raw_response().map_or(0, |r| r.status().as_u16()),
            e.as_service_error()
                .and_then(|s| s.code())
                .unwrap_or("")
                .to_owned(),
        ),
    }
}

/// PUTs `bytes` at `bucket/key` with `s3`; returns the ETag (quoted).
pub async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: &'static [u8],
) -> Result<String> {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(bytes))
        .send()
        .await?;
    Ok(out.e_tag().context("ETag")?.to_owned())
}

/// An OSS-faithful proxy with its own bucket, and clients for it.
pub struct Oss {
    pub aws: LocalAws,
    pub proxy: S3Proxy,
    /// Virtual-hosted through the proxy.
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub http: reqwest::Client,
}

impl Oss {
    pub async fn start() -> Result<Oss> {
        let endpoint = emulator().await?;
        let aws = LocalAws::connect(&endpoint).await;
        let bucket = unique_name("oss");
        aws.create_bucket(&bucket).await?;
        let proxy = S3Proxy::start_oss(&endpoint).await?;
        let s3 = client(&aws, &proxy.endpoint(), false, "testing");
        // BUCKET.localhost is loopback (RFC 6761), whatever the system
        // resolver thinks.
        let http = reqwest::Client::builder()
            .no_proxy()
            .resolve(&format!("{bucket}.localhost"), proxy.addr())
            .build()?;
        Ok(Oss {
            aws,
            proxy,
            s3,
            bucket,
            http,
        })
    }

    /// A raw request to `key`, addressed virtual-hosted-style. moto
    /// denies anonymous reads of private objects but does not check
    /// signatures: a SigV4 credential scope is enough.
    pub fn raw(&self, method: reqwest::Method, key: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/{key}", self.proxy.bucket_endpoint(&self.bucket));
        self.http.request(method, url).header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
        )
    }

    pub async fn head(&self, key: &str) -> Result<reqwest::Response> {
        Ok(self.raw(reqwest::Method::HEAD, key).send().await?)
    }

    /// Creates `key` as a one-part multipart upload through the proxy;
    /// returns the ETag CompleteMultipartUpload answered.
    pub async fn put_multipart(&self, key: &str, bytes: Vec<u8>) -> Result<String> {
        let put = put_one_part_multipart(&self.s3, &self.bucket, key, bytes).await?;
        ensure!(
            put.part_etag == put.part_etag.to_uppercase(),
            "OSS part ETags are upper case: {}",
            put.part_etag
        );
        Ok(put.etag.trim_matches('"').to_owned())
    }
}

pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub fn etag(response: &reqwest::Response) -> String {
    header(response, "etag")
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

pub fn md5_upper(bytes: &[u8]) -> String {
    hex::encode_upper(Md5::digest(bytes))
}

pub fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(CrcAlgorithm::Crc64Xz, bytes)
}

/// 32 upper-case hex digits: what a client that guesses would take for an MD5.
pub fn md5_shaped(etag: &str) -> bool {
    etag.len() == 32
        && etag
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
}
