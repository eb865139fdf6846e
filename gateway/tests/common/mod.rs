//! The gateway started in-process with `ossbridge_gateway::serve` on a
//! port-0 listener, against its own moto emulator and queue.

#![allow(dead_code)]

pub mod cli;
pub mod raw;

use std::net::SocketAddr;

use anyhow::Result;
use ossbridge_gateway::{Config, Listeners, RunError, serve};
use ossbridge_runtime::parse_toml;
use ossbridge_testkit::webhook::{self, Signer};
use ossbridge_testkit::{Emulator, LocalAws, unique_name};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Gateway {
    pub emulator: Emulator,
    pub aws: LocalAws,
    pub queue_url: String,
    pub signer: Signer,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<Result<(), RunError>>,
    pub http: reqwest::Client,
}

pub const SOURCE: &str = "media-prod";

impl Gateway {
    pub async fn start() -> Result<Gateway> {
        Gateway::start_with("").await
    }

    /// Starts with `extra` TOML appended to the generated configuration
    /// (one Standard Webhooks source, [`SOURCE`]).
    pub async fn start_with(extra: &str) -> Result<Gateway> {
        Gateway::start_custom(|queue_url, signer| {
            format!(
                "[sources.{SOURCE}]\nqueue_url = \"{queue_url}\"\n\
                 [sources.{SOURCE}.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"{}\"]\n{extra}",
                signer.secret()
            )
        })
        .await
    }

    /// Starts with the configuration `config(queue_url, signer)` returns.
    pub async fn start_custom(config: impl FnOnce(&str, &Signer) -> String) -> Result<Gateway> {
        let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
        let aws = LocalAws::connect(&emulator.endpoint()).await;
        let queue_url = aws.create_queue(&unique_name("ingest"), &[]).await?;
        let sdk = aws.sdk.clone();
        Gateway::start_on(emulator, aws, queue_url, sdk, config).await
    }

    /// Starts against an emulator and queue the caller set up; the gateway
    /// talks to AWS through `sdk` (a fault proxy's endpoint, say) while
    /// `aws` reaches the emulator directly.
    pub async fn start_on(
        emulator: Emulator,
        aws: LocalAws,
        queue_url: String,
        sdk: aws_config::SdkConfig,
        config: impl FnOnce(&str, &Signer) -> String,
    ) -> Result<Gateway> {
        let signer = Signer::generate(&unique_name("secret"));
        let config: Config = parse_toml(&config(&queue_url, &signer))?;
        let public = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let listeners = Listeners {
            public,
            admin: Some(admin),
        };
        let server = tokio::spawn(async move { serve(config, &sdk, listeners, token).await });
        Ok(Gateway {
            emulator,
            aws,
            queue_url,
            signer,
            addr,
            admin_addr,
            shutdown,
            server,
            http: reqwest::Client::builder().no_proxy().build()?,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ingest_url(&self) -> String {
        self.url(&format!("/v1/ingest/{SOURCE}"))
    }

    /// POSTs `body` to `path` with `headers`.
    pub async fn post_to(
        &self,
        path: &str,
        body: &str,
        headers: &[(String, String)],
    ) -> Result<reqwest::Response> {
        let mut request = self.http.post(self.url(path)).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        Ok(request.send().await?)
    }

    /// The keys of every message on the queue (received and deleted),
    /// sorted.
    pub async fn drained_keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self.drain().await?.into_iter().map(|m| m.key).collect();
        keys.sort();
        Ok(keys)
    }

    /// Every message body on the queue (received and deleted).
    pub async fn drain(&self) -> Result<Vec<ossbridge_message::QueueMessage>> {
        let bodies = self.aws.drain(&self.queue_url).await?;
        Ok(bodies
            .iter()
            .map(|b| ossbridge_message::QueueMessage::from_body(b))
            .collect::<Result<_, _>>()?)
    }

    /// POSTs `body` with `headers`.
    pub async fn post(
        &self,
        body: &str,
        headers: &[(&'static str, String)],
    ) -> Result<reqwest::Response> {
        let mut request = self.http.post(self.ingest_url()).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Ok(request.send().await?)
    }

    /// POSTs `body` signed now to `path` (another source's ingest path).
    pub async fn post_signed_to(&self, path: &str, body: &str) -> Result<reqwest::Response> {
        let headers: Vec<(String, String)> = self
            .signer
            .headers(&unique_name("msg"), webhook::now(), body.as_bytes())
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        self.post_to(path, body, &headers).await
    }

    /// POSTs `body` signed now.
    pub async fn post_signed(&self, body: &str) -> Result<reqwest::Response> {
        let headers = self
            .signer
            .headers(&unique_name("msg"), webhook::now(), body.as_bytes());
        self.post(body, &headers).await
    }
}

/// The `error` field of a JSON error response.
pub async fn reason(response: reqwest::Response) -> Result<String> {
    let body: serde_json::Value = response.json().await?;
    Ok(body["error"].as_str().unwrap_or_default().to_owned())
}
