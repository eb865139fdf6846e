//! SQS outage under load: the emulator is frozen (SIGSTOP) while senders
//! keep sending, then resumed. The gateway must answer 503 (never 2xx for
//! an event SQS does not hold), `/readyz` must follow, and after the
//! senders' retries every event acknowledged with 2xx is on the queue,
//! exactly once per idempotency key (a FIFO queue deduplicates the
//! re-sends of requests the gateway gave up on while SQS was frozen).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use common::Gateway;
use ossbridge_testkit::{Emulator, LocalAws, fixtures, unique_name};

const SENDERS: usize = 4;
const EVENTS_PER_SENDER: usize = 25;

async fn wait_for_readyz(gw: &Gateway, want: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let url = format!("http://{}/readyz", gw.admin_addr);
        if let Ok(r) = gw.http.get(url).send().await
            && r.status().as_u16() == want
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("/readyz did not answer {want} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_an_sqs_outage_exactly_once() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws
        .create_queue(
            &format!("{}.fifo", unique_name("outage")),
            &[(QueueAttributeName::FifoQueue, "true".into())],
        )
        .await?;
    let sdk = aws.sdk.clone();
    let gw = Arc::new(
        Gateway::start_on(emulator, aws, queue_url, sdk, |queue_url, signer| {
            format!(
                "[sqs]\nenqueue_timeout_ms = 1500\nreadiness_probe_secs = 1\n\
                 [sources.{src}]\nqueue_url = \"{queue_url}\"\n[sources.{src}.verifier]\n\
                 type = \"standard_webhooks\"\nsecrets = [\"{}\"]\n",
                signer.secret(),
                src = common::SOURCE,
            )
        })
        .await?,
    );
    wait_for_readyz(&gw, 200, Duration::from_secs(10)).await?;

    let acked = Arc::new(AtomicU64::new(0));
    let unavailable = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (gw, acked, unavailable) = (gw.clone(), acked.clone(), unavailable.clone());
        senders.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for i in 0..EVENTS_PER_SENDER {
                let key = format!("outage/{s}/{i}");
                let body = fixtures::oss_event(
                    "oss-events/put-object.json",
                    "media-prod",
                    &[(&key, b"x")],
                )?;
                // A sender retries until it gets a 2xx, as MNS does.
                loop {
                    match gw.post_signed(&body).await {
                        Ok(r) if r.status().is_success() => break,
                        Ok(r) if r.status() == 503 => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => bail!("unexpected {} for {key}", r.status()),
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                acked.fetch_add(1, Ordering::Relaxed);
                keys.push(key);
            }
            anyhow::Ok(keys)
        }));
    }

    // Let some events through, then freeze SQS for a while.
    while acked.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.emulator.pause()?;
    wait_for_readyz(&gw, 503, Duration::from_secs(15)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    gw.emulator.resume()?;
    wait_for_readyz(&gw, 200, Duration::from_secs(15)).await?;

    let mut acknowledged = HashSet::new();
    for sender in senders {
        acknowledged.extend(sender.await??);
    }
    assert_eq!(acknowledged.len(), SENDERS * EVENTS_PER_SENDER);
    assert!(
        unavailable.load(Ordering::Relaxed) > 0,
        "the outage produced 503s"
    );

    let messages = gw.drain().await?;
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for m in &messages {
        *per_key.entry(m.idempotency_key.clone()).or_default() += 1;
    }
    assert!(per_key.values().all(|n| *n == 1), "a key appears twice");
    let keys: HashSet<String> = messages.into_iter().map(|m| m.key).collect();
    assert_eq!(
        keys, acknowledged,
        "every acknowledged event is on the queue"
    );
    Ok(())
}
