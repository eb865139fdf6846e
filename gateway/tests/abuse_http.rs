//! The gateway's signature checks and HTTP/1.1 framing against hostile
//! clients: replayed and future-dated signatures, request smuggling over
//! raw TCP, and bodies that lie about their size.
//!
//! A signature carries no nonce, so a captured one must buy nothing but the
//! event it signed, under its own idempotency key, and nothing at all once
//! its timestamp is stale. The ALB in front of the gateway and the gateway
//! must never disagree on where a request ends, or bytes one of them took
//! for a body reach the other as a request. Every peer is on loopback. A
//! smuggled request is always a correctly signed ingest request, so
//! "nothing on the queue" proves it was never parsed as a request.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use common::raw::{put_event, read_until_quiet};
use common::{Gateway, SOURCE, reason};
use futures::future::join_all;
use ossbridge_testkit::webhook::{Signer, now};
use ossbridge_testkit::{Emulator, LocalAws, unique_name};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

// ---- Replayed and future-dated signatures ----

/// Standard Webhooks carry no nonce store: the gateway's replay defence is
/// the timestamp window plus the content-derived idempotency key (the dedup
/// cache, and FIFO deduplication ids). A replay inside the window is a
/// duplicate, after it a 401.
#[tokio::test]
async fn a_replayed_signature_is_a_duplicate_inside_the_window_and_401_after_it() -> Result<()> {
    let gw = Gateway::start_custom(|queue_url, signer| {
        format!(
            "[sources.{SOURCE}]\nqueue_url = \"{queue_url}\"\n[sources.{SOURCE}.verifier]\n\
             type = \"standard_webhooks\"\nsecrets = [\"{}\"]\ntolerance_secs = 3\n",
            signer.secret()
        )
    })
    .await?;
    let body = put_event("replay/a")?;
    let sent_at = now();
    let headers = gw.signer.headers("msg-replayed", sent_at, body.as_bytes());
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = gw.post(&body, &headers).await?;
        assert_eq!(r.status(), 200);
        answers.push(r.json::<Value>().await?);
    }
    assert_eq!(
        (&answers[0]["enqueued"], &answers[0]["duplicates"]),
        (&1.into(), &0.into())
    );
    assert_eq!(
        (&answers[1]["enqueued"], &answers[1]["duplicates"]),
        (&0.into(), &1.into())
    );

    // Dated beyond the tolerance in the future: 401, nothing enqueued.
    let future = put_event("replay/future")?;
    let r = gw
        .post(
            &future,
            &gw.signer
                .headers("msg-future", now() + 30, future.as_bytes()),
        )
        .await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "timestamp outside the allowed window")
    );

    while now() <= sent_at + 4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = gw.post(&body, &headers).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "timestamp outside the allowed window")
    );
    assert_eq!(gw.drained_keys().await?, ["replay/a"]);
    Ok(())
}

/// Without the dedup cache a replay is enqueued again, but always under
/// the same idempotency key: a FIFO queue (deduplication id = that key)
/// keeps one message, a standard queue two identical jobs.
#[tokio::test]
async fn without_the_dedup_cache_a_replay_keeps_its_idempotency_key() -> Result<()> {
    use aws_sdk_sqs::types::QueueAttributeName as Attr;
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let standard = aws.create_queue(&unique_name("replay-std"), &[]).await?;
    let fifo = aws
        .create_queue(
            &format!("{}.fifo", unique_name("replay")),
            &[(Attr::FifoQueue, "true".to_owned())],
        )
        .await?;
    let sdk = aws.sdk.clone();
    let fifo_url = fifo.clone();
    let gw = Gateway::start_on(emulator, aws, standard.clone(), sdk, |queue_url, signer| {
        let verifier = format!(
            "type = \"standard_webhooks\"\nsecrets = [\"{}\"]\n",
            signer.secret()
        );
        format!(
            "[dedup]\ncapacity = 0\n\
             [sources.std]\nqueue_url = \"{queue_url}\"\n[sources.std.verifier]\n{verifier}\
             [sources.fifo]\nqueue_url = \"{fifo_url}\"\n[sources.fifo.verifier]\n{verifier}"
        )
    })
    .await?;
    let body = put_event("replay/nodedup")?;
    let headers: Vec<(String, String)> = gw
        .signer
        .headers("msg-replayed", now(), body.as_bytes())
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for source in ["std", "fifo"] {
        for _ in 0..2 {
            let r = gw
                .post_to(&format!("/v1/ingest/{source}"), &body, &headers)
                .await?;
            assert_eq!(r.status(), 200, "{source}");
        }
    }
    let keys = |bodies: Vec<String>| -> Result<Vec<String>> {
        bodies
            .iter()
            .map(|b| Ok(ossbridge_message::QueueMessage::from_body(b)?.idempotency_key))
            .collect()
    };
    let on_standard = keys(gw.aws.drain(&standard).await?)?;
    let on_fifo = keys(gw.aws.drain(&fifo).await?)?;
    assert_eq!(on_standard.len(), 2);
    assert_eq!(on_standard[0], on_standard[1], "a replay got another key");
    assert_eq!(on_fifo, on_standard[..1], "FIFO keeps one message");
    Ok(())
}

// ---- Request smuggling and bodies that lie ----

/// A complete, correctly signed ingest request for `key`.
fn signed_request(signer: &Signer, key: &str) -> Result<String> {
    let body = put_event(key)?;
    let mut head = format!(
        "POST /v1/ingest/{SOURCE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in signer.headers(&unique_name("m"), now(), body.as_bytes()) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    Ok(format!("{head}\r\n{body}"))
}

/// Writes `bytes` on a fresh connection; returns what came back.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    // The server may answer and close before everything is written.
    let _ = stream.write_all(bytes).await;
    let (answer, _) = read_until_quiet(&mut stream, Duration::from_secs(2)).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The status of every HTTP/1.1 response in `answer`.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok())
        .collect()
}

/// Smuggling attempts: (name, raw request) with `$P` the request line and
/// Host of an unsigned ingest POST (401 if read as a request), `$S` a
/// signed request (enqueued if ever read as one), `$N`/`$X` its length in
/// decimal/hex and `$M` that plus 5 (the `0\r\n\r\n` before it).
/// Where a Content-Length reader would see `$S` as body and a chunked
/// reader as the next request, the gateway must not read it at all.
#[rustfmt::skip]
const SMUGGLING: &[(&str, &str)] = &[
    ("cl-te", "$PContent-Length: $M\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$S"),
    ("te-cl", "$PTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n$X\r\n$S\r\n0\r\n\r\n"),
    ("two-content-lengths", "$PContent-Length: 0\r\nContent-Length: $N\r\n\r\n$S"),
    ("content-length-list", "$PContent-Length: 0, $N\r\n\r\n$S"),
    ("content-length-plus", "$PContent-Length: +0\r\n\r\n$S"),
    ("te-chunked-identity", "$PContent-Length: $M\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n$S"),
    ("te-ows", "$PContent-Length: $M\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n$S"),
    ("te-xchunked", "$PContent-Length: $M\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n$S"),
    ("te-space-colon", "$PContent-Length: $M\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n$S"),
    ("te-vtab", "$PContent-Length: $M\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n$S"),
    ("te-obs-fold", "$PContent-Length: $M\r\nX: x\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n$S"),
    ("te-twice", "$PTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n$S"),
    ("te-http10", "POST /v1/ingest/media-prod HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$S"),
    ("chunk-zz", "$PTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n$S"),
    ("chunk-negative", "$PTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n$S"),
    ("chunk-0x", "$PTransfer-Encoding: chunked\r\n\r\n0x10\r\nx\r\n0\r\n\r\n$S"),
    ("chunk-overflow", "$PTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nx\r\n0\r\n\r\n$S"),
    ("chunk-ext-flood", "$PTransfer-Encoding: chunked\r\n\r\n1;$E\r\nx\r\n0\r\n\r\n$S"),
    // The same bytes inside a body by either framing: body, not a request.
    ("in-content-length-body", "$PContent-Length: $N\r\n\r\n$S"),
    ("in-chunked-body", "$PTransfer-Encoding: chunked\r\n\r\n$X\r\n$S\r\n0\r\n\r\n"),
];

#[tokio::test]
async fn smuggling_patterns_get_4xx_or_a_closed_connection_and_never_a_second_request() -> Result<()>
{
    let gw = Gateway::start().await?;
    let mut raw = Vec::new();
    for (name, template) in SMUGGLING {
        let s = signed_request(&gw.signer, &format!("smuggled/{name}"))?;
        raw.push(
            template
                .replace(
                    "$P",
                    &format!("POST /v1/ingest/{SOURCE} HTTP/1.1\r\nHost: x\r\n"),
                )
                .replace("$N", &s.len().to_string())
                .replace("$M", &(s.len() + 5).to_string())
                .replace("$X", &format!("{:x}", s.len()))
                .replace("$E", &"e".repeat(40_000))
                .replace("$S", &s),
        );
    }
    let answers = join_all(raw.iter().map(|r| exchange(gw.addr, r.as_bytes()))).await;
    for ((name, _), answer) in SMUGGLING.iter().zip(answers) {
        let answer = answer?;
        let got = statuses(&answer);
        eprintln!("{name}: {got:?}");
        assert!(got.len() <= 1, "{name}: more than one response: {answer:?}");
        assert!(
            got.iter().all(|s| (400..500).contains(s)),
            "{name}: {answer:?}"
        );
    }
    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));

    // The control: the same kind of request on its own is accepted, so the
    // empty queue above means something.
    let control = signed_request(&gw.signer, "smuggled/control")?;
    assert_eq!(
        statuses(&exchange(gw.addr, control.as_bytes()).await?),
        [200]
    );
    assert_eq!(gw.drained_keys().await?, ["smuggled/control"]);
    Ok(())
}

#[tokio::test]
async fn a_lying_content_length_and_a_huge_announced_chunk_are_cut_at_the_limit() -> Result<()> {
    let gw = Gateway::start_with("[limits]\nmax_body_bytes = 1024\nrequest_timeout_ms = 30000\n")
        .await?;
    // Content-Length: 10, then 64 KiB more: ten bytes of body (401), the
    // rest is not a request.
    let mut lying = format!(
        "POST /v1/ingest/{SOURCE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n"
    );
    lying.push_str(&"0123456789\r\n".repeat(64 * 1024 / 12));
    let answer = exchange(gw.addr, lying.as_bytes()).await?;
    let got = statuses(&answer);
    assert_eq!(got.first(), Some(&401), "{answer:?}");
    assert!(got.iter().all(|s| (400..500).contains(s)), "{answer:?}");

    // One chunk announcing 1 GiB: refused once the limit is passed, not when
    // the chunk would end (the connection stays open on our side).
    let mut stream = TcpStream::connect(gw.addr).await?;
    let head = format!(
        "POST /v1/ingest/{SOURCE} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&[b'x'; 2048]).await?;
    let (answer, _) = read_until_quiet(&mut stream, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("body exceeds 1024 bytes"), "{answer:?}");
    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));
    assert_eq!(
        gw.post_signed(&put_event("after/lies")?).await?.status(),
        200
    );
    Ok(())
}
