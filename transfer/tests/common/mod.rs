//! A transfer worker against moto: an "OSS" source bucket behind the test
//! kit's OSS-faithful proxy (virtual-hosted-style only, OSS ETags and
//! object types, CRC-64 headers, fault injection), a destination bucket
//! behind its S3-faithful proxy (conditional writes, counting), a queue
//! with a dead-letter queue, and the OSS keys in SSM. The worker runs
//! in-process (`run_with`) or as the binary. Helpers that write the source
//! (`put_source`, `put_many`) go to moto directly, not through the proxy.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_s3::primitives::ByteStream;
use ossbridge_runtime::parse_toml;
use ossbridge_testkit::pipeline::{Names, Resources};
use ossbridge_testkit::{Emulator, LocalAws, S3Proxy, Service, unique_name};
use ossbridge_transfer::{Config, RunError, run_with};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(60);
/// Receives before the dead-letter queue.
pub const MAX_RECEIVES: u32 = 2;

pub struct Rig {
    pub emulator: Emulator,
    pub aws: LocalAws,
    /// The destination bucket's emulator: `aws`, or a second emulator
    /// process (`Rig::start_split`) so that two cores serve the two sides.
    pub destination_aws: LocalAws,
    _destination_emulator: Option<Emulator>,
    pub source: S3Proxy,
    pub destination: S3Proxy,
    pub source_bucket: String,
    pub destination_bucket: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub parameter: String,
}

pub struct Worker {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), RunError>>,
}

impl Worker {
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task).await???;
        Ok(())
    }
}

impl Rig {
    pub async fn start() -> Result<Rig> {
        Rig::start_with(false).await
    }

    /// A rig whose destination bucket lives in its own emulator process
    /// (moto serves one request at a time per process; large tests need
    /// both cores).
    pub async fn start_split() -> Result<Rig> {
        Rig::start_with(true).await
    }

    /// A rig whose queue allows `max_receives` receives before the
    /// dead-letter queue, as a production queue would, for tests where
    /// injected faults may cost a message a receive or two.
    pub async fn start_with_max_receives(max_receives: u32) -> Result<Rig> {
        Rig::build(false, max_receives).await
    }

    async fn start_with(split: bool) -> Result<Rig> {
        Rig::build(split, MAX_RECEIVES).await
    }

    async fn build(split: bool, max_receives: u32) -> Result<Rig> {
        ossbridge_runtime::logging::init_for_tests();
        let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
        let aws = LocalAws::connect(&emulator.endpoint()).await;
        let resources = Resources::create(&aws, Names::unique(), max_receives, 5).await?;
        let (destination_emulator, destination_aws) = if split {
            let second = tokio::task::spawn_blocking(Emulator::start).await??;
            let second_aws = LocalAws::connect(&second.endpoint()).await;
            second_aws
                .create_bucket(&resources.destination_bucket)
                .await?;
            (Some(second), second_aws)
        } else {
            (None, aws.clone())
        };
        Ok(Rig {
            source: S3Proxy::start_oss(&emulator.endpoint()).await?,
            destination: S3Proxy::start(&destination_aws.endpoint).await?,
            emulator,
            aws,
            destination_aws,
            _destination_emulator: destination_emulator,
            source_bucket: resources.source_bucket,
            destination_bucket: resources.destination_bucket,
            queue_url: resources.queue_url,
            dlq_url: resources.dlq_url,
            parameter: resources.parameter,
        })
    }

    /// The worker's configuration; `extra` is appended (tables only). The
    /// source is addressed virtual-hosted-style, as OSS requires (the
    /// proxy refuses path-style requests).
    pub fn config_toml(&self, extra: &str) -> String {
        format!(
            "queue_url = \"{queue}\"\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\
             [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{aws}\"\n\
             [source]\nbucket = \"{src}\"\nendpoint_url = \"{src_ep}\"\nregion = \"us-east-1\"\n\
             credentials_parameter = \"{param}\"\nforce_path_style = false\ncredentials_refresh_secs = 600\n\
             [destination]\nbucket = \"{dst}\"\nendpoint_url = \"{dst_ep}\"\nforce_path_style = true\n{extra}",
            queue = self.queue_url,
            aws = self.emulator.endpoint(),
            src = self.source_bucket,
            src_ep = self.source.endpoint(),
            param = self.parameter,
            dst = self.destination_bucket,
            dst_ep = self.destination.endpoint(),
        )
    }

    /// Starts an in-process worker. `extra` must set `[worker]` and
    /// `[metrics]` if it needs them; defaults keep tests fast.
    pub async fn worker(&self, extra: &str) -> Result<Worker> {
        self.worker_with_destination("", extra).await
    }

    /// [`Rig::worker`] with extra `[destination]` keys.
    pub async fn worker_with_destination(&self, destination: &str, extra: &str) -> Result<Worker> {
        self.start_worker(self.aws.sdk.clone(), destination, extra)
    }

    /// [`Rig::worker`] whose SQS and SSM calls go to `endpoint` (a fault
    /// proxy in front of the emulator).
    pub async fn worker_via(&self, endpoint: &str, extra: &str) -> Result<Worker> {
        let sdk = LocalAws::connect(endpoint).await.sdk;
        self.start_worker(sdk, "", extra)
    }

    fn start_worker(
        &self,
        sdk: aws_config::SdkConfig,
        destination: &str,
        extra: &str,
    ) -> Result<Worker> {
        let text = insert_destination(&self.config_toml(extra), destination);
        self.worker_from_toml(sdk, text)
    }

    /// Starts an in-process worker on a whole configuration `text` (as
    /// [`Rig::config_toml`] writes it, edited), adding the fast `[worker]`
    /// defaults and `[metrics]` unless it has them.
    pub fn worker_from_toml(&self, sdk: aws_config::SdkConfig, mut text: String) -> Result<Worker> {
        if !text.contains("[worker]") {
            text.push_str("[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 5\nshutdown_grace_secs = 5\n");
        }
        if !text.contains("[metrics]") {
            text.push_str("[metrics]\n");
        }
        let mut config: Config = parse_toml(&text)?;
        config.metrics.listen = None;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { run_with(config, &sdk, None, token).await });
        Ok(Worker { shutdown, task })
    }

    /// Starts the `ossbridge-transfer` binary.
    pub async fn process(&self, extra: &str) -> Result<Service> {
        let text = format!(
            "{}[metrics]\nlisten = \"127.0.0.1:0\"\n",
            self.config_toml(extra)
        );
        Service::spawn("ossbridge-transfer", &text, "transfer_started").await
    }

    pub async fn put_source(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.aws.put_object(&self.source_bucket, key, bytes).await
    }

    /// Puts a source object by a one-part multipart upload (to moto
    /// directly): through the OSS proxy it is a `Multipart` object, whose
    /// ETag is MD5-shaped but not the MD5.
    pub async fn put_source_multipart(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        ossbridge_testkit::aws::put_one_part_multipart(
            &self.aws.s3,
            &self.source_bucket,
            key,
            bytes,
        )
        .await?;
        Ok(())
    }

    /// Appends to a source object through the OSS proxy's AppendObject
    /// (position 0 creates an `Appendable` object).
    pub async fn append_source(&self, key: &str, position: u64, bytes: Vec<u8>) -> Result<()> {
        let appended = self
            .source
            .append(&self.source_bucket, key, position, bytes, &[])
            .await?;
        ensure!(appended.status == 200, "append {key}: {appended:?}");
        Ok(())
    }

    pub async fn delete_source(&self, key: &str) -> Result<()> {
        self.aws
            .s3
            .delete_object()
            .bucket(&self.source_bucket)
            .key(key)
            .send()
            .await?;
        Ok(())
    }

    /// Puts a source object with every content header and user metadata.
    pub async fn put_source_with_metadata(
        &self,
        key: &str,
        bytes: Vec<u8>,
        meta: &HashMap<String, String>,
    ) -> Result<()> {
        self.aws
            .s3
            .put_object()
            .bucket(&self.source_bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .content_type("image/jpeg")
            .content_encoding("identity")
            .content_language("zh-CN")
            .content_disposition("attachment; filename=\"a.jpg\"")
            .cache_control("max-age=3600")
            .expires(aws_sdk_s3::primitives::DateTime::from_secs(1_900_000_000))
            .set_metadata(Some(meta.clone()))
            .send()
            .await?;
        Ok(())
    }

    pub async fn send(&self, body: impl Into<String>) -> Result<()> {
        self.aws
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await?;
        Ok(())
    }

    /// An ossbridge queue message for `key` (built as the gateway would).
    pub fn message(&self, op: &str, key: &str) -> String {
        let event = if op == "delete" {
            "ObjectRemoved:DeleteObject"
        } else {
            "ObjectCreated:PutObject"
        };
        serde_json::json!({
            "key": key, "size": 0, "version": 1, "op": op, "bucket": self.source_bucket,
            "region": "cn-hangzhou", "eTag": "", "eventName": event,
            "eventTime": "2026-11-20T08:15:42.000Z", "idempotencyKey": unique_name("idem"),
        })
        .to_string()
    }

    pub async fn destination_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.destination_aws
            .get_object(&self.destination_bucket, key)
            .await
    }

    pub async fn wait_for_destination(&self, key: &str) -> Result<Vec<u8>> {
        self.destination_aws
            .wait_for_object(&self.destination_bucket, key, WAIT)
            .await
    }

    /// Waits until the queue is empty (nothing visible or in flight).
    pub async fn drained(&self) -> Result<()> {
        self.aws.wait_until_empty(&self.queue_url, WAIT).await
    }

    /// Every key's destination bytes equal the source's `bytes`.
    pub async fn expect_equal(&self, objects: &[(String, Vec<u8>)]) -> Result<()> {
        for (key, bytes) in objects {
            let copied = self.destination_object(key).await?;
            anyhow::ensure!(
                copied.as_deref() == Some(bytes.as_slice()),
                "{key}: destination differs from the source ({:?} bytes)",
                copied.map(|c| c.len())
            );
        }
        Ok(())
    }

    /// Waits until the dead-letter queue holds `n` messages.
    pub async fn dead_letters(&self, n: u64) -> Result<()> {
        self.dead_letters_within(n, WAIT).await
    }

    /// [`Rig::dead_letters`], waiting up to `timeout`.
    pub async fn dead_letters_within(&self, n: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (visible, in_flight) = self.aws.queue_depth(&self.dlq_url).await?;
            if visible + in_flight >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "dead-letter queue holds {} after {timeout:?}, expected {n}",
                    visible + in_flight
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// In-progress multipart uploads in the destination bucket.
    pub async fn open_uploads(&self) -> Result<usize> {
        let out = self
            .destination_aws
            .s3
            .list_multipart_uploads()
            .bucket(&self.destination_bucket)
            .send()
            .await
            .context("ListMultipartUploads")?;
        Ok(out.uploads().len())
    }
}

/// Adds keys at the top of the `[destination]` table.
fn insert_destination(config: &str, keys: &str) -> String {
    let marker = "[destination]\n";
    match config.find(marker) {
        Some(start) => {
            let after = start + marker.len();
            format!("{}{keys}{}", &config[..after], &config[after..])
        }
        None => config.to_owned(),
    }
}

/// An object to put: key, bytes, user metadata.
pub type NewObject = (String, Vec<u8>, Option<HashMap<String, String>>);

/// `config` without its `queue_url`: an in-process sync needs no queue.
pub fn without_queue_url(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.starts_with("queue_url"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What one run of `ossbridge-transfer sync` did.
pub struct SyncRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl SyncRun {
    /// The keys of the stdout lines starting with `verb ` (`copy`,
    /// `delete`), as a dry run prints them.
    pub fn planned(&self, verb: &str) -> std::collections::BTreeSet<String> {
        let prefix = format!("{verb} ");
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|rest| match rest.rfind(" (") {
                Some(i) if verb == "copy" => rest[..i].to_owned(),
                _ => rest.to_owned(),
            })
            .collect()
    }

    /// The `sync_summary` log line.
    pub fn summary(&self) -> Result<serde_json::Value> {
        self.stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "sync_summary")
            .with_context(|| format!("no sync_summary in:\n{}", self.stderr))
    }

    pub fn count(&self, field: &str) -> Result<u64> {
        let summary = self.summary()?;
        summary[field]
            .as_u64()
            .with_context(|| format!("{field} missing in {summary}"))
    }
}

impl Rig {
    /// Runs the `ossbridge-transfer` binary with `args` (e.g. `sync
    /// --dry-run`) on `config_toml` and waits for it to exit.
    pub async fn run_binary(&self, config_toml: &str, args: &[&str]) -> Result<SyncRun> {
        let mut config = tempfile::Builder::new().suffix(".toml").tempfile()?;
        std::io::Write::write_all(&mut config, config_toml.as_bytes())?;
        let output =
            ossbridge_testkit::services::loopback_command(env!("CARGO_BIN_EXE_ossbridge-transfer"))
                .args(args)
                .arg("--config")
                .arg(config.path())
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
        let output = tokio::time::timeout(Duration::from_secs(150), output)
            .await
            .context("ossbridge-transfer did not exit")??;
        Ok(SyncRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Puts `(key, bytes, metadata)` objects into `bucket` directly (not
    /// through a proxy), `concurrency` at a time; returns each key's ETag
    /// (unquoted) as the product sees it: for the source bucket, read
    /// through the OSS proxy, OSS's form of a PutObject ETag (the MD5 in
    /// upper case).
    pub async fn put_many(
        &self,
        bucket: &str,
        objects: Vec<NewObject>,
        concurrency: usize,
    ) -> Result<HashMap<String, String>> {
        use futures::StreamExt;
        let aws = if bucket == self.destination_bucket {
            &self.destination_aws
        } else {
            &self.aws
        };
        let results: Vec<Result<(String, String)>> = futures::stream::iter(objects)
            .map(|(key, bytes, meta)| async move {
                let out = aws
                    .s3
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(ByteStream::from(bytes))
                    .set_metadata(meta)
                    .send()
                    .await
                    .with_context(|| format!("put {key}"))?;
                let etag = out.e_tag().unwrap_or_default().trim_matches('"');
                let etag = if bucket == self.source_bucket {
                    etag.to_ascii_uppercase()
                } else {
                    etag.to_owned()
                };
                Ok((key, etag))
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }
}
