//! The gateway started in-process with `ossbridge_gateway::serve` on a
//! port-0 listener, against its own moto emulator and queue.

#![allow(dead_code)]

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

    /// Starts with `extra` TOML appended to the generated configuration.
    pub async fn start_with(extra: &str) -> Result<Gateway> {
        let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
        let aws = LocalAws::connect(&emulator.endpoint()).await;
        let queue_url = aws.create_queue(&unique_name("ingest"), &[]).await?;
        let signer = Signer::generate(&unique_name("secret"));
        let config: Config = parse_toml(&format!(
            "[sources.{SOURCE}]\nqueue_url = \"{queue_url}\"\n\
             [sources.{SOURCE}.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"{}\"]\n{extra}",
            signer.secret()
        ))?;
        let public = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let shutdown = CancellationToken::new();
        let sdk = aws.sdk.clone();
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
