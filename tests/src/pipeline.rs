//! The whole local pipeline: emulator, a source ("OSS") bucket that the
//! transfer reads through the OSS-faithful proxy, a destination bucket, a
//! queue with its dead-letter queue, the OSS keys in SSM, the gateway and
//! (optionally) the transfer service.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::aws::{LocalAws, unique_name};
use crate::emulator::Emulator;
use crate::s3_proxy::S3Proxy;
use crate::services::Service;
use crate::webhook::{self, Signer};
use crate::{TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY};

/// Receives before a message moves to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 3;
pub const VISIBILITY_TIMEOUT_SECS: u32 = 30;

/// Names of the resources a pipeline creates.
#[derive(Debug, Clone)]
pub struct Names {
    pub source_bucket: String,
    pub destination_bucket: String,
    pub queue: String,
    pub parameter: String,
}

impl Names {
    /// Names no other test in this run uses.
    pub fn unique() -> Names {
        Names {
            source_bucket: unique_name("oss-src"),
            destination_bucket: unique_name("s3-dst"),
            queue: unique_name("jobs"),
            parameter: format!("/ossbridge/{}/oss-keys", unique_name("t")),
        }
    }
}

/// What a pipeline runs on: a source ("OSS") and a destination bucket, a
/// queue with its dead-letter queue, and the OSS keys in SSM (in the Data
/// Transfer Hub format; moto accepts any key).
#[derive(Debug, Clone)]
pub struct Resources {
    pub source_bucket: String,
    pub destination_bucket: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub parameter: String,
}

impl Resources {
    pub async fn create(
        aws: &LocalAws,
        names: Names,
        max_receive: u32,
        visibility_timeout_secs: u32,
    ) -> Result<Resources> {
        aws.create_bucket(&names.source_bucket).await?;
        aws.create_bucket(&names.destination_bucket).await?;
        let (queue_url, dlq_url) = aws
            .create_queue_with_dlq(&names.queue, max_receive, visibility_timeout_secs)
            .await?;
        aws.put_oss_keys(&names.parameter, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
            .await?;
        Ok(Resources {
            source_bucket: names.source_bucket,
            destination_bucket: names.destination_bucket,
            queue_url,
            dlq_url,
            parameter: names.parameter,
        })
    }
}

#[derive(Debug)]
pub struct Pipeline {
    pub emulator: Emulator,
    /// OSS as the transfer sees it: virtual-hosted-style, OSS ETags and
    /// headers. Tests write the source bucket through `aws` (moto).
    pub source: S3Proxy,
    pub aws: LocalAws,
    pub source_bucket: String,
    pub destination_bucket: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub parameter: String,
    pub source_id: String,
    pub signer: Signer,
    pub gateway: Option<Service>,
    pub transfer: Option<Service>,
    /// TOML appended to the transfer's configuration (tables after
    /// `[worker]`, e.g. `[copy]`).
    pub transfer_extra: String,
    pub http: reqwest::Client,
}

/// TOML basic string (JSON string escapes are valid TOML escapes).
fn toml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

impl Pipeline {
    /// Creates the resources under unique names and starts the gateway,
    /// and the transfer service when `with_transfer`.
    pub async fn start(with_transfer: bool) -> Result<Pipeline> {
        Pipeline::start_named(Names::unique(), with_transfer).await
    }

    /// Like [`Pipeline::start`] with the given resource names (the demo
    /// owns its emulator and uses readable ones).
    pub async fn start_named(names: Names, with_transfer: bool) -> Result<Pipeline> {
        let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
        let aws = LocalAws::connect(&emulator.endpoint()).await;
        let Resources {
            source_bucket,
            destination_bucket,
            queue_url,
            dlq_url,
            parameter,
        } = Resources::create(&aws, names, MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT_SECS).await?;
        let source_id = "media-prod".to_owned();
        let signer = Signer::generate(&unique_name("secret"));
        let source = S3Proxy::start_oss(&emulator.endpoint()).await?;
        let mut pipeline = Pipeline {
            emulator,
            source,
            aws,
            source_bucket,
            destination_bucket,
            queue_url,
            dlq_url,
            parameter,
            source_id,
            signer,
            gateway: None,
            transfer: None,
            transfer_extra: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        pipeline.gateway = Some(
            Service::spawn(
                "ossbridge-gateway",
                &pipeline.gateway_config(),
                "gateway_started",
            )
            .await?,
        );
        if with_transfer {
            pipeline.start_transfer().await?;
        }
        Ok(pipeline)
    }

    pub async fn start_transfer(&mut self) -> Result<()> {
        self.transfer = Some(
            Service::spawn(
                "ossbridge-transfer",
                &self.transfer_config(),
                "transfer_started",
            )
            .await?,
        );
        Ok(())
    }

    fn aws_section(&self) -> String {
        format!(
            "[aws]\nregion = {}\nendpoint_url = {}\n",
            toml_str(TEST_REGION),
            toml_str(&self.emulator.endpoint())
        )
    }

    pub fn gateway_config(&self) -> String {
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\
             {aws}\
             [sources.{id}]\nqueue_url = {queue}\n\
             [sources.{id}.verifier]\ntype = \"standard_webhooks\"\nsecrets = [{secret}]\n",
            aws = self.aws_section(),
            id = self.source_id,
            queue = toml_str(&self.queue_url),
            secret = toml_str(self.signer.secret()),
        )
    }

    pub fn transfer_config(&self) -> String {
        format!(
            "queue_url = {queue}\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\
             {aws}\
             [source]\nbucket = {src}\nendpoint_url = {endpoint}\nregion = {region}\n\
             credentials_parameter = {param}\nforce_path_style = false\n\
             [destination]\nbucket = {dst}\nforce_path_style = true\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n\
             [worker]\nvisibility_timeout_secs = 30\n{extra}",
            queue = toml_str(&self.queue_url),
            aws = self.aws_section(),
            src = toml_str(&self.source_bucket),
            endpoint = toml_str(&self.source.endpoint()),
            region = toml_str(TEST_REGION),
            param = toml_str(&self.parameter),
            dst = toml_str(&self.destination_bucket),
            extra = self.transfer_extra,
        )
    }

    /// `http://ADDR/v1/ingest/SOURCE` of the running gateway.
    pub fn ingest_url(&self) -> Result<String> {
        let gateway = self.gateway.as_ref().context("gateway not running")?;
        let started = gateway
            .event("gateway_started")
            .context("no gateway_started")?;
        let addr = started["addr"].as_str().context("no addr")?;
        Ok(format!("http://{addr}/v1/ingest/{}", self.source_id))
    }

    /// POSTs `body` signed now with the pipeline's secret.
    pub async fn post_signed(&self, body: &str) -> Result<reqwest::Response> {
        let id = unique_name("msg");
        self.post_with(
            body,
            &self.signer.headers(&id, webhook::now(), body.as_bytes()),
        )
        .await
    }

    /// POSTs `body` with the given headers.
    pub async fn post_with(
        &self,
        body: &str,
        headers: &[(&'static str, String)],
    ) -> Result<reqwest::Response> {
        let mut request = self
            .http
            .post(self.ingest_url()?)
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Ok(request.send().await?)
    }

    /// Waits until `key` is in the destination with exactly `bytes`, and
    /// the queue holds no message, visible or in flight.
    pub async fn expect_copied(&self, key: &str, bytes: &[u8], timeout: Duration) -> Result<()> {
        let copied = self
            .aws
            .wait_for_object(&self.destination_bucket, key, timeout)
            .await?;
        anyhow::ensure!(
            copied == bytes,
            "s3://{}/{key} differs from the source",
            self.destination_bucket
        );
        self.aws.wait_until_empty(&self.queue_url, timeout).await
    }

    /// SIGTERMs both services and waits for them to exit.
    pub async fn stop(mut self) -> Result<()> {
        for service in [self.transfer.as_mut(), self.gateway.as_mut()]
            .into_iter()
            .flatten()
        {
            service.terminate()?;
            service.wait(Duration::from_secs(40)).await?;
        }
        Ok(())
    }
}
