//! The batcher against SQS (moto) behind a fault proxy that counts calls
//! and injects per-entry failures.

mod common;

use anyhow::Result;
use common::Gateway;
use futures::future::join_all;
use ossbridge_testkit::{Emulator, FaultProxy, LocalAws, fixtures, unique_name};

const BATCH: &str = "AmazonSQS.SendMessageBatch";

async fn behind_proxy(extra: &str) -> Result<(Gateway, FaultProxy)> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws.create_queue(&unique_name("batched"), &[]).await?;
    let proxy = FaultProxy::start(&emulator.endpoint()).await?;
    let sdk = LocalAws::connect(&proxy.endpoint()).await.sdk;
    let extra = extra.to_owned();
    let gw = Gateway::start_on(emulator, aws, queue_url, sdk, |queue_url, signer| {
        format!(
            "[sources.{src}]\nqueue_url = \"{queue_url}\"\n[sources.{src}.verifier]\n\
             type = \"standard_webhooks\"\nsecrets = [\"{}\"]\n{extra}",
            signer.secret(),
            src = common::SOURCE,
        )
    })
    .await?;
    Ok((gw, proxy))
}

/// Sends `n` single-event requests at once; returns their statuses.
async fn burst(gw: &Gateway, prefix: &str, n: usize) -> Result<Vec<u16>> {
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            fixtures::oss_event(
                "oss-events/put-object.json",
                "media-prod",
                &[(&format!("{prefix}/{i}"), b"x")],
            )
        })
        .collect::<Result<_>>()?;
    let responses = join_all(bodies.iter().map(|b| gw.post_signed(b))).await;
    responses
        .into_iter()
        .map(|r| r.map(|r| r.status().as_u16()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_send_message_batch_calls() -> Result<()> {
    let (gw, proxy) = behind_proxy("[sqs]\nbatch_linger_ms = 50\n").await?;
    let n = 100;
    let statuses = burst(&gw, "burst", n).await?;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let calls = proxy.calls(BATCH);
    assert!(
        (10..=13).contains(&calls),
        "{n} requests took {calls} SendMessageBatch calls; expected about {}",
        n / 10
    );
    let messages = gw.drain().await?;
    let mut keys: Vec<String> = messages.into_iter().map(|m| m.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "every event exactly once");
    Ok(())
}

/// With `batch_linger_when_idle = false`, a sender that pushes one event
/// at a time never waits for the linger: here a linger of a minute, far
/// past the 3 s enqueue deadline, which each request would otherwise
/// miss with a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_sender_does_not_wait_for_the_linger_when_the_queue_is_idle() -> Result<()> {
    let (gw, proxy) =
        behind_proxy("[sqs]\nbatch_linger_ms = 60000\nbatch_linger_when_idle = false\n").await?;
    for i in 0..3 {
        let statuses = burst(&gw, &format!("serial-{i}"), 1).await?;
        assert_eq!(statuses, [200], "push {i}");
    }
    assert_eq!(proxy.calls(BATCH), 3, "one call per push, none held back");
    assert_eq!(gw.drain().await?.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_entries_are_retried_without_duplicating_the_others() -> Result<()> {
    let (gw, proxy) = behind_proxy("[sqs]\nbatch_linger_ms = 200\n").await?;
    proxy.fail_next_batch_entries(vec![2, 7]);
    let statuses = burst(&gw, "partial", 10).await?;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        proxy.calls(BATCH),
        2,
        "one batch, then one retry of the two failed entries"
    );
    let messages = gw.drain().await?;
    assert_eq!(messages.len(), 10, "no entry lost, none duplicated");
    let mut keys: Vec<String> = messages.into_iter().map(|m| m.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_keep_failing_get_503_and_only_they() -> Result<()> {
    let (gw, proxy) = behind_proxy("[sqs]\nbatch_linger_ms = 200\nentry_attempts = 2\n").await?;
    proxy.fail_next_batch_entries(vec![0]);
    proxy.fail_next_batch_entries(vec![0]);
    let statuses = burst(&gw, "stubborn", 3).await?;
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 200, 503], "{statuses:?}");
    assert_eq!(gw.drain().await?.len(), 2);
    // A whole-call failure (503 from SQS, retried by the SDK) still ends in
    // 200 when a later attempt succeeds.
    proxy.fail_next_requests(1);
    assert_eq!(burst(&gw, "sdk-retry", 1).await?, [200]);
    assert_eq!(gw.drain().await?.len(), 1);
    Ok(())
}
