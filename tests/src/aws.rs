//! SDK clients pointed at the local emulator, and the resources tests need.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_ssm::types::ParameterType;

use crate::{TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY};

/// A name no other test in this run uses: lower-case, DNS-safe, short
/// enough for a bucket.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

#[derive(Debug, Clone)]
pub struct LocalAws {
    pub endpoint: String,
    /// SDK configuration for the emulator: test credentials, region,
    /// endpoint. Hand it to `ossbridge_gateway::serve` and friends.
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl LocalAws {
    pub async fn connect(endpoint: &str) -> LocalAws {
        let credentials = aws_sdk_s3::config::Credentials::new(
            TEST_ACCESS_KEY_ID,
            TEST_SECRET_ACCESS_KEY,
            None,
            None,
            "ossbridge-testkit",
        );
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(TEST_REGION))
            .endpoint_url(endpoint)
            .credentials_provider(credentials)
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        LocalAws {
            endpoint: endpoint.to_owned(),
            s3,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            sdk,
        }
    }

    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        self.s3
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .with_context(|| format!("create bucket {name}"))?;
        Ok(())
    }

    pub async fn put_object(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .with_context(|| format!("put s3://{bucket}/{key}"))?;
        Ok(())
    }

    /// The object's bytes, or `None` when it does not exist.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(Some(out.body.collect().await?.into_bytes().to_vec())),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("get s3://{bucket}/{key}")),
        }
    }

    /// Waits until the object exists and returns its bytes.
    pub async fn wait_for_object(
        &self,
        bucket: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(bytes) = self.get_object(bucket, key).await? {
                return Ok(bytes);
            }
            if Instant::now() > deadline {
                bail!("s3://{bucket}/{key} did not appear within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ARN of the queue at `queue_url` (what a redrive policy names).
    pub async fn queue_arn(&self, queue_url: &str) -> Result<String> {
        self.sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .with_context(|| format!("{queue_url} has no ARN"))
    }

    /// Creates a queue with a dead-letter queue after `max_receive`
    /// receives; returns (queue URL, DLQ URL).
    pub async fn create_queue_with_dlq(
        &self,
        name: &str,
        max_receive: u32,
        visibility_timeout_secs: u32,
    ) -> Result<(String, String)> {
        let dlq = self.create_queue(&format!("{name}-dlq"), &[]).await?;
        let dlq_arn = self.queue_arn(&dlq).await?;
        let redrive =
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive}"}}"#);
        let queue = self
            .create_queue(
                name,
                &[
                    (QueueAttributeName::RedrivePolicy, redrive),
                    (
                        QueueAttributeName::VisibilityTimeout,
                        visibility_timeout_secs.to_string(),
                    ),
                ],
            )
            .await?;
        Ok((queue, dlq))
    }

    pub async fn create_queue(
        &self,
        name: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> Result<String> {
        let mut request = self.sqs.create_queue().queue_name(name);
        for (k, v) in attributes {
            request = request.attributes(k.clone(), v.clone());
        }
        let out = request
            .send()
            .await
            .with_context(|| format!("create queue {name}"))?;
        out.queue_url.context("CreateQueue returned no URL")
    }

    /// (visible, in flight) messages.
    pub async fn queue_depth(&self, url: &str) -> Result<(u64, u64)> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let get = |name: QueueAttributeName| -> u64 {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            get(QueueAttributeName::ApproximateNumberOfMessages),
            get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Waits until the queue holds no message, visible or in flight.
    pub async fn wait_until_empty(&self, url: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let depth = self.queue_depth(url).await?;
            if depth == (0, 0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("queue still holds {depth:?} (visible, in flight) after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Receives (and deletes) every visible message body; for checking
    /// what a gateway enqueued when no transfer runs.
    pub async fn drain(&self, url: &str) -> Result<Vec<String>> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(bodies);
            }
            for m in messages {
                bodies.push(m.body.unwrap_or_default());
                if let Some(handle) = m.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
    }

    /// Stores OSS keys the way the Data Transfer Hub tutorial does: an SSM
    /// SecureString `{"access_key_id": ..., "secret_access_key": ...}`.
    pub async fn put_oss_keys(
        &self,
        name: &str,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<()> {
        let value = serde_json::json!({
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
        });
        self.ssm
            .put_parameter()
            .name(name)
            .value(value.to_string())
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .with_context(|| format!("put SSM parameter {name}"))?;
        Ok(())
    }
}

/// What a one-part multipart upload answered: the part's ETag and the
/// object's, as the server wrote them.
#[derive(Debug, Clone)]
pub struct MultipartPut {
    pub part_etag: String,
    pub etag: String,
}

/// Writes `bucket/key` by a one-part multipart upload with `s3` (any
/// client: the emulator's, or one through a proxy), so the object is a
/// multipart object without the 5 MiB minimum of a non-last part.
pub async fn put_one_part_multipart(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
) -> Result<MultipartPut> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .with_context(|| format!("CreateMultipartUpload {key}"))?;
    let id = upload.upload_id().context("no upload id")?;
    let part = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .with_context(|| format!("UploadPart {key}"))?;
    let part_etag = part.e_tag().context("part without ETag")?.to_owned();
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(&part_etag)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("CompleteMultipartUpload {key}"))?;
    let etag = done.e_tag().context("no ETag")?.to_owned();
    Ok(MultipartPut { part_etag, etag })
}
