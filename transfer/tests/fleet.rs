//! Two `ossbridge-transfer` processes on one queue, as a fleet runs them,
//! with one of them held mid-copy (its source proxy answers the GET of one
//! key at once, with the version current then, and holds the body back
//! until the test releases it): whatever the order in which their writes
//! land, the destination ends equal to the source, with the queue and the
//! dead-letter queue empty. Both processes write through one S3-faithful
//! destination proxy, which tells them apart by access key.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::Rig;
use ossbridge_testkit::{S3Proxy, Service, fixtures};

const MIB: usize = 1024 * 1024;
const SLOW: &str = "slow-worker";
const FAST: &str = "fast-worker";
/// One copy at a time, so the slow worker cannot take the second message.
const WORKER: &str = "[worker]\nconcurrency = 1\nreceivers = 1\nwait_time_secs = 1\n\
                      visibility_timeout_secs = 60\nshutdown_grace_secs = 1\n";

/// A worker process reading the source through `source`, signing its AWS
/// calls with `access_key`.
async fn worker(rig: &Rig, source: &S3Proxy, access_key: &str, copy: &str) -> Result<Service> {
    let config = format!(
        "{}[metrics]\nlisten = \"127.0.0.1:0\"\n",
        rig.config_toml(&format!("{copy}{WORKER}"))
            .replace(&rig.source.endpoint(), &source.endpoint())
    );
    Service::spawn_with_env(
        "ossbridge-transfer",
        &config,
        "transfer_started",
        &[("AWS_ACCESS_KEY_ID", access_key)],
    )
    .await
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await? {
        if Instant::now() > deadline {
            bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The destination holds `bytes` at `key`.
async fn holds(rig: &Rig, key: &str, bytes: &[u8]) -> Result<bool> {
    Ok(rig.destination_object(key).await?.as_deref() == Some(bytes))
}

/// The end state every scenario must reach: the destination equals the
/// source at `key`, nothing is left on either queue, no upload is open.
async fn converged(rig: &Rig, key: &str, source: Option<&[u8]>) -> Result<()> {
    rig.drained().await?;
    ensure!(
        rig.destination_object(key).await?.as_deref() == source,
        "{key}: the destination differs from the source"
    );
    ensure!(
        rig.aws.queue_depth(&rig.dlq_url).await? == (0, 0),
        "dead letters"
    );
    ensure!(rig.open_uploads().await? == 0, "open multipart uploads");
    Ok(())
}

/// How often `service` looked at both sides again, for `reason`.
fn looked_again(service: &Service, reason: &str) -> usize {
    service
        .events("reconcile_again")
        .iter()
        .filter(|e| e["reason"] == reason)
        .count()
}

/// v1 is being copied slowly by one worker when v2 replaces it and the
/// other worker copies v2: the slow copy must not land over v2.
async fn slow_old_version_fast_new_version(size: usize, copy: &str) -> Result<()> {
    let rig = Rig::start().await?;
    let key = "race/report.bin";
    let (v1, v2) = (fixtures::bytes(size, 1), fixtures::bytes(size, 2));
    rig.put_source(key, v1).await?;
    let slow_source = S3Proxy::start_oss(&rig.emulator.endpoint()).await?;
    slow_source.hold_gets_of(&rig.source_bucket, key);
    let slow = worker(&rig, &slow_source, SLOW, copy).await?;
    // The message carries the real size, as DTH-style senders do.
    let message = format!(r#"{{"key": "{key}", "size": {size}}}"#);
    rig.send(message.clone()).await?;
    // Single-part: the one GET; multipart: the ranged GETs after the HEAD.
    let reading = if size > 5 * MIB { 2 } else { 1 };
    wait_until("the slow worker reads v1", async || {
        Ok(slow_source.injected("trickled") >= reading)
    })
    .await?;

    rig.put_source(key, v2.clone()).await?;
    let fast = worker(&rig, &rig.source, FAST, copy).await?;
    rig.send(message).await?;
    wait_until("the fast worker copied v2", async || {
        holds(&rig, key, &v2).await
    })
    .await?;
    ensure!(
        slow.events("job_done").is_empty(),
        "the slow copy was not held"
    );
    slow_source.release_held_gets();

    converged(&rig, key, Some(&v2)).await?;
    // Refused: a conditional write (or, for a small object, its
    // `If-None-Match: *` PUT finding the key taken) or the source's ETag.
    let refused = looked_again(&slow, "conflict")
        + looked_again(&slow, "destination_taken")
        + looked_again(&slow, "source_changed");
    ensure!(
        refused >= 1,
        "the slow worker's copy of v1 was never refused:\n{}",
        slow.logs().join("\n")
    );
    ensure!(
        looked_again(&fast, "conflict") + looked_again(&fast, "destination_taken") == 0,
        "the fast worker had nothing to race"
    );
    if size > 5 * MIB {
        // The slow worker's upload was live while the fast one copied:
        // left alone, and aborted by its owner once refused.
        ensure!(
            !fast.events("multipart_upload_in_use").is_empty(),
            "{}",
            fast.logs().join("\n")
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_of_an_old_version_never_overwrites_the_new_one() -> Result<()> {
    slow_old_version_fast_new_version(512 * 1024, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_multipart_copy_of_an_old_version_never_overwrites_the_new_one() -> Result<()> {
    slow_old_version_fast_new_version(
        12 * MIB,
        "[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\npart_concurrency = 2\n",
    )
    .await
}

const PROPAGATE: &str = "[copy]\npropagate_deletes = true\n";

/// The slow worker is reading v1 when the key is deleted at the source;
/// `recreate` then puts v2 there. The fast worker handles the delete
/// (and the new copy) first.
async fn slow_copy_across_a_delete(recreate: bool) -> Result<()> {
    let rig = Rig::start().await?;
    let key = "race/deleted.bin";
    let v2 = fixtures::bytes(256 * 1024, 2);
    rig.put_source(key, fixtures::bytes(256 * 1024, 1)).await?;
    let slow_source = S3Proxy::start_oss(&rig.emulator.endpoint()).await?;
    slow_source.hold_gets_of(&rig.source_bucket, key);
    let slow = worker(&rig, &slow_source, SLOW, PROPAGATE).await?;
    rig.send(rig.message("copy", key)).await?;
    wait_until("the slow worker reads v1", async || {
        Ok(slow_source.injected("trickled") >= 1)
    })
    .await?;

    rig.delete_source(key).await?;
    let fast = worker(&rig, &rig.source, FAST, PROPAGATE).await?;
    rig.send(rig.message("delete", key)).await?;
    wait_until("the fast worker handled the delete", async || {
        Ok(!fast.events("job_done").is_empty())
    })
    .await?;
    if recreate {
        rig.put_source(key, v2.clone()).await?;
        rig.send(rig.message("copy", key)).await?;
        wait_until("the fast worker copied v2", async || {
            holds(&rig, key, &v2).await
        })
        .await?;
    }
    ensure!(
        slow.events("job_done").is_empty(),
        "the slow copy was not held"
    );
    slow_source.release_held_gets();

    if recreate {
        converged(&rig, key, Some(&v2)).await?;
        // Its PUT (If-None-Match: *) found v2 there.
        ensure!(
            looked_again(&slow, "conflict") + looked_again(&slow, "destination_taken") >= 1,
            "{}",
            slow.logs().join("\n")
        );
    } else {
        converged(&rig, key, None).await?;
        // Its PUT landed on an empty key; the look at the source after it
        // found the key gone, and the next round deleted the stale copy.
        ensure!(
            looked_again(&slow, "source_moved") >= 1,
            "{}",
            slow.logs().join("\n")
        );
        let done = slow.events("job_done");
        let last = done.last().context("no job_done")?;
        ensure!(last["outcome"] == "deleted", "{last}");
    }
    ensure!(
        rig.destination.calls_by(SLOW, "PutObject") >= 1,
        "the slow worker never wrote"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_across_delete_then_recreate_ends_on_the_recreated_object() -> Result<()> {
    slow_copy_across_a_delete(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_that_lands_after_the_delete_is_deleted_again() -> Result<()> {
    slow_copy_across_a_delete(false).await
}
