//! Connections that do not do their part free their slots in bounded
//! time, whatever the protocol, while keep-alive outlasts the load
//! balancer's idle timeout; and a flood of bad signatures from one address
//! does not cost a correctly signed source its budget.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::Gateway;
use common::cli::{event, events};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ossbridge_testkit::unique_name;
use ossbridge_testkit::webhook;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short deadlines: a head within 1 s, idle connections kept 4 s.
const LIMITS: &str = "[limits]\nheader_read_timeout_ms = 1000\nkeep_alive_timeout_ms = 4000\n\
                      max_connections = 4\n";
/// What "within the configured time" allows on a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

/// Waits until the server closes `stream`; how long that took.
async fn closed_after(stream: &mut TcpStream) -> Result<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .context("the server never closed the connection")?
            .unwrap_or(0);
        if n == 0 {
            return Ok(started.elapsed());
        }
    }
}

async fn healthz_on(stream: &mut TcpStream) -> Result<String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await?;
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_started_connections_free_their_slots() -> Result<()> {
    let gw = Gateway::start_with(LIMITS).await?;
    // Every slot taken: two say nothing, one stops inside the HTTP/2
    // preface (the version is not known yet), one inside an HTTP/1 head.
    let mut held = Vec::new();
    for opening in [
        &b""[..],
        b"",
        b"PRI * HTTP/2.0\r\n",
        b"POST /v1/ingest/x HTTP/1.1\r\nHost: g",
    ] {
        let mut stream = TcpStream::connect(gw.addr).await?;
        stream.write_all(opening).await?;
        held.push(stream);
    }
    for stream in &mut held {
        let after = closed_after(stream).await?;
        ensure!(
            after <= Duration::from_secs(1) + SLACK,
            "closed after {after:?}"
        );
    }
    // The slots are free again: a new client is served.
    let mut fresh = TcpStream::connect(gw.addr).await?;
    let answer = healthz_on(&mut fresh).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_outlasts_the_head_deadline_then_ends() -> Result<()> {
    let gw = Gateway::start_with(LIMITS).await?;
    let mut stream = TcpStream::connect(gw.addr).await?;
    ensure!(healthz_on(&mut stream).await?.starts_with("HTTP/1.1 200"));
    // Idle for twice the head deadline: a balancer reusing the connection
    // now must find it open (the old gateway closed it at the deadline).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = healthz_on(&mut stream).await?;
    ensure!(
        again.starts_with("HTTP/1.1 200"),
        "reused connection: {again:?}"
    );
    let after = closed_after(&mut stream).await?;
    ensure!(
        after >= Duration::from_secs(3) && after <= Duration::from_secs(4) + SLACK,
        "idle connection closed after {after:?}, keep-alive is 4 s"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_keep_alive() -> Result<()> {
    let gw = Gateway::start_with(LIMITS).await?;
    let stream = TcpStream::connect(gw.addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(format!("http://{}/healthz", gw.addr))
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    ensure!(response.status() == 200);
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), connection)
        .await
        .context("the idle HTTP/2 connection was never closed")???;
    let after = idle_from.elapsed();
    ensure!(
        after >= Duration::from_secs(3) && after <= Duration::from_secs(4) + SLACK,
        "idle HTTP/2 connection closed after {after:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_from_one_address_do_not_throttle_a_signed_source() -> Result<()> {
    // Behind a load balancer (127.0.0.1 trusted), clients told apart by
    // X-Forwarded-For. Each address may send 5/s, everyone together 10/s.
    let gw = Gateway::start_with(
        "[rate_limit]\nglobal_per_second = 10\nglobal_burst = 10\nper_ip_per_second = 5\n\
         per_ip_burst = 5\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await?;
    let body = events(&[&event("flood/target.bin")?]);
    let mut refused = (0, 0);
    for _ in 0..60 {
        let response = gw
            .http
            .post(gw.ingest_url())
            .header("x-forwarded-for", "198.51.100.7")
            .header("webhook-id", unique_name("msg"))
            .header("webhook-timestamp", webhook::now().to_string())
            .header(
                "webhook-signature",
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
            .body(body.clone())
            .send()
            .await?;
        match response.status().as_u16() {
            401 => refused.0 += 1,
            429 => refused.1 += 1,
            other => anyhow::bail!("a forged request got {other}"),
        }
    }
    ensure!(
        refused.1 > 0,
        "the flooding address was never limited: {refused:?}"
    );
    for i in 0..8 {
        let body = events(&[&event(&format!("signed/{i}.bin"))?]);
        let headers = gw
            .signer
            .headers(&unique_name("msg"), webhook::now(), body.as_bytes());
        let mut request = gw
            .http
            .post(gw.ingest_url())
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let status = request.send().await?.status();
        ensure!(status == 200, "signed delivery {i}: {status}");
    }
    Ok(())
}
