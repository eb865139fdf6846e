//! The S3 clients' timeouts against a bare HTTP server on 127.0.0.1 that
//! reads a PutObject and then answers, stays silent, or stops reading: an
//! upload longer than the read timeout succeeds (where the SDK's own read
//! timeout would fail it), a server that never answers fails after the
//! read timeout, one that stops reading fails after the stall timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use ossbridge_runtime::{error_chain, parse_toml};
use ossbridge_testkit::LocalAws;
use ossbridge_transfer::clients::destination_s3;
use ossbridge_transfer::config::DestinationConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Sleep;

const CHUNK: usize = 64 * 1024;

/// What the server does with a request.
#[derive(Debug, Clone, Copy)]
enum Server {
    /// Reads the whole body, then answers 200.
    Answers,
    /// Reads the whole body, then says nothing.
    Silent,
    /// Reads the headers only.
    StopsReading,
}

/// Serves connections on 127.0.0.1; returns the endpoint.
async fn serve(behaviour: Server) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = vec![0u8; CHUNK];
                let head_end = loop {
                    if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                };
                if let Server::StopsReading = behaviour {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = buffer.len() - head_end;
                while body < length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => body += n,
                    }
                }
                match behaviour {
                    Server::Answers => {
                        let _ = stream
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n",
                            )
                            .await;
                        let _ = stream.read(&mut chunk).await;
                    }
                    _ => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    Ok(endpoint)
}

/// A request body of `chunks` × 64 KiB, one chunk every `every`: an
/// upload fed by a slow download, as a copy's PUT is.
struct Trickle {
    chunks: usize,
    every: Duration,
    wait: Pin<Box<Sleep>>,
}

impl Trickle {
    fn body(chunks: usize, every: Duration) -> ByteStream {
        ByteStream::new(SdkBody::from_body_1_x(Trickle {
            chunks,
            every,
            wait: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }))
    }
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.chunks == 0 {
            return Poll::Ready(None);
        }
        if self.wait.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.chunks -= 1;
        let next = tokio::time::Instant::now() + self.every;
        self.wait.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![7u8; CHUNK])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.chunks * CHUNK) as u64)
    }

    fn is_end_stream(&self) -> bool {
        self.chunks == 0
    }
}

async fn client(endpoint: &str, keys: &str) -> Result<aws_sdk_s3::Client> {
    let sdk = LocalAws::connect(endpoint).await.sdk;
    let config: DestinationConfig = parse_toml(&format!(
        "bucket = \"b\"\nendpoint_url = \"{endpoint}\"\nforce_path_style = true\n{keys}"
    ))?;
    Ok(destination_s3(&sdk, &config))
}

async fn put(client: &aws_sdk_s3::Client, body: ByteStream) -> Result<(), String> {
    client
        .put_object()
        .bucket("b")
        .key("k")
        .body(body)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| error_chain(&e))
}

#[tokio::test]
async fn an_upload_longer_than_the_read_timeout_succeeds() -> Result<()> {
    let endpoint = serve(Server::Answers).await?;
    let client = client(&endpoint, "read_timeout_secs = 1\n").await?;
    let started = Instant::now();
    // 2 s of body with a 1 s read timeout.
    put(&client, Trickle::body(9, Duration::from_millis(250)))
        .await
        .map_err(anyhow::Error::msg)
        .context("a healthy slow upload failed")?;
    ensure!(started.elapsed() >= Duration::from_secs(2));
    Ok(())
}

/// Why the clients do not use the SDK's `read_timeout`: it counts from the
/// start of the request, so it fails the same healthy upload. If this ever
/// passes, the SDK has changed and `response_timeout.rs` may be dropped.
#[tokio::test]
async fn the_sdks_read_timeout_would_fail_that_upload() -> Result<()> {
    let endpoint = serve(Server::Answers).await?;
    let sdk = LocalAws::connect(&endpoint).await.sdk;
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .timeout_config(
            TimeoutConfig::builder()
                .read_timeout(Duration::from_secs(1))
                .build(),
        )
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    let err = put(&client, Trickle::body(9, Duration::from_millis(250)))
        .await
        .expect_err("the SDK's read timeout counts the upload");
    ensure!(
        err.contains("timeout") || err.contains("timed out"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_fails_after_the_read_timeout() -> Result<()> {
    let endpoint = serve(Server::Silent).await?;
    let client = client(&endpoint, "read_timeout_secs = 1\n").await?;
    // A streamed body, and one in memory (which the SDK sends, and
    // retries, differently).
    for body in [
        Trickle::body(4, Duration::from_millis(100)),
        ByteStream::from(vec![1u8; 100_000]),
    ] {
        let started = Instant::now();
        let err = put(&client, body).await.expect_err("no answer");
        ensure!(err.contains("no answer within 1s"), "{err}");
        ensure!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_server_that_stops_reading_fails_after_the_stall_timeout() -> Result<()> {
    let endpoint = serve(Server::StopsReading).await?;
    let client = client(
        &endpoint,
        "read_timeout_secs = 600\nstall_timeout_secs = 1\n",
    )
    .await?;
    let started = Instant::now();
    // 64 MiB at once: far more than the socket buffers take.
    let err = put(&client, Trickle::body(1024, Duration::ZERO))
        .await
        .expect_err("stalled");
    ensure!(err.contains("minimum throughput"), "{err}");
    ensure!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
