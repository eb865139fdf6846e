//! The gateway as an internet-facing server: body limits with and without
//! Content-Length, slow clients, the connection cap, rate limits,
//! request ids, metrics and graceful shutdown.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{Gateway, reason};
use futures::future::join_all;
use ossbridge_testkit::{Emulator, FaultProxy, LocalAws, fixtures, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn put_event(key: &str) -> Result<String> {
    fixtures::oss_event("oss-events/put-object.json", "media-prod", &[(key, b"x")])
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Result<String> {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn oversize_bodies_get_413_with_or_without_content_length() -> Result<()> {
    let gw = Gateway::start_with("[limits]\nmax_body_bytes = 1024\n").await?;
    let big = "x".repeat(4096);
    let r = gw.post_signed(&big).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (413, "body exceeds 1024 bytes")
    );

    // Chunked: no Content-Length, so the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'x'; 512])).collect();
    let r = gw
        .http
        .post(gw.ingest_url())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (413, "body exceeds 1024 bytes")
    );
    Ok(())
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_are_cut_off() -> Result<()> {
    let gw =
        Gateway::start_with("[limits]\nheader_read_timeout_ms = 300\nrequest_timeout_ms = 500\n")
            .await?;

    // Slowloris: headers that never end.
    let mut slow_headers = TcpStream::connect(gw.addr).await?;
    slow_headers
        .write_all(b"POST /v1/ingest/media-prod HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n")
        .await?;
    let answer = read_to_close(&mut slow_headers).await?;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );

    // A body announced but never sent.
    let mut slow_body = TcpStream::connect(gw.addr).await?;
    slow_body
        .write_all(b"POST /v1/ingest/media-prod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await?;
    let answer = read_to_close(&mut slow_body).await?;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request timed out"), "{answer:?}");

    // Everyone else is still served.
    assert_eq!(
        gw.post_signed(&put_event("ok/after-slow")?).await?.status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() -> Result<()> {
    let gw = Gateway::start_with("[limits]\nmax_connections = 2\nheader_read_timeout_ms = 20000\n")
        .await?;
    let first = TcpStream::connect(gw.addr).await?;
    let second = TcpStream::connect(gw.addr).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut third = TcpStream::connect(gw.addr).await?;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await?;
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served while both slots were taken");

    drop(first);
    let answer = read_to_close(&mut third).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    drop(second);
    Ok(())
}

#[tokio::test]
async fn rate_limits_answer_429_per_client_and_trust_forwarded_for_only_from_proxies() -> Result<()>
{
    let gw = Gateway::start_with(
        "[rate_limit]\nper_ip_per_second = 1\nper_ip_burst = 2\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await?;
    let post_as = |client: &'static str, key: String| {
        let gw = &gw;
        async move {
            let body = put_event(&key)?;
            let headers = gw.signer.headers(
                &unique_name("m"),
                ossbridge_testkit::webhook::now(),
                body.as_bytes(),
            );
            let mut request = gw
                .http
                .post(gw.ingest_url())
                .body(body)
                .header("x-forwarded-for", client);
            for (k, v) in headers {
                request = request.header(k, v);
            }
            anyhow::Ok(request.send().await?)
        }
    };
    for i in 0..2 {
        assert_eq!(
            post_as("203.0.113.1", format!("rl/a{i}")).await?.status(),
            200
        );
    }
    let limited = post_as("203.0.113.1", "rl/a3".into()).await?;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(retry_after >= 1);
    assert_eq!(reason(limited).await?, "rate limit exceeded");
    // Another client behind the same (trusted) proxy has its own bucket.
    assert_eq!(post_as("203.0.113.2", "rl/b".into()).await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn request_ids_are_echoed_and_metrics_are_on_the_admin_listener() -> Result<()> {
    let gw = Gateway::start().await?;
    let body = put_event("ids/a")?;
    let mut request = gw
        .http
        .post(gw.ingest_url())
        .body(body.clone())
        .header("x-request-id", "req-123");
    for (k, v) in gw
        .signer
        .headers("m1", ossbridge_testkit::webhook::now(), body.as_bytes())
    {
        request = request.header(k, v);
    }
    let r = request.send().await?;
    assert_eq!(
        r.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"req-123"[..])
    );
    let r = gw.post_signed(&put_event("ids/b")?).await?;
    assert!(
        r.headers()
            .get("x-request-id")
            .is_some_and(|v| v.len() == 36)
    );

    let metrics = gw
        .http
        .get(format!("http://{}/metrics", gw.admin_addr))
        .send()
        .await?
        .text()
        .await?;
    for name in [
        "ossbridge_gateway_requests_total",
        "ossbridge_gateway_events_total",
        "ossbridge_gateway_sqs_batches_total",
        "ossbridge_gateway_sqs_send_seconds",
        "ossbridge_gateway_enqueue_lag_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("event=\"ObjectCreated:PutObject\""));
    // The per-source series, whose handles each source takes at start.
    for (series, label) in [
        ("ossbridge_gateway_requests_total{", "outcome=\"accepted\""),
        ("ossbridge_gateway_request_seconds_count{", "source=\""),
    ] {
        assert!(
            metrics.lines().any(|l| {
                l.starts_with(series)
                    && l.contains("source=\"")
                    && l.contains(label)
                    // This test's two accepted requests, at least.
                    && l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()) >= Some(2.0)
            }),
            "no {series}…{label} in\n{metrics}"
        );
    }
    // The public listener does not serve metrics.
    assert_eq!(gw.http.get(gw.url("/metrics")).send().await?.status(), 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_requests_in_flight_and_enqueues_them() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws.create_queue(&unique_name("drain"), &[]).await?;
    let proxy = FaultProxy::start(&emulator.endpoint()).await?;
    proxy.set_latency(Duration::from_millis(800));
    let sdk = LocalAws::connect(&proxy.endpoint()).await.sdk;
    let gw = Gateway::start_on(emulator, aws, queue_url, sdk, |queue_url, signer| {
        format!(
            "[sqs]\nenqueue_timeout_ms = 4000\n[sources.{src}]\nqueue_url = \"{queue_url}\"\n\
             [sources.{src}.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"{}\"]\n",
            signer.secret(),
            src = common::SOURCE,
        )
    })
    .await?;
    let bodies: Vec<String> = (0..5)
        .map(|i| put_event(&format!("drain/{i}")))
        .collect::<Result<_>>()?;
    let in_flight = join_all(bodies.iter().map(|b| gw.post_signed(b)));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        gw.shutdown.cancel();
    };
    let (responses, ()) = tokio::join!(in_flight, stop);
    for r in responses {
        assert_eq!(r?.status(), 200);
    }
    assert!(
        gw.http.get(gw.url("/healthz")).send().await.is_err(),
        "no longer accepting"
    );
    assert_eq!(gw.drain().await?.len(), 5);
    Ok(())
}
