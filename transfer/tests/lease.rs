//! A worker that loses its message never writes after that. The first
//! worker's SQS calls go through a fault proxy that refuses every
//! visibility extension, either as SQS does for a receipt handle that no
//! longer owns the message, or as an outage that lets the visibility run
//! out; its copy is held mid-GET meanwhile. The message's new owner, a
//! second worker process, finishes the job.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use common::Rig;
use ossbridge_testkit::{FaultProxy, S3Proxy, Service, TEST_ACCESS_KEY_ID, fixtures};

const EXTEND: &str = "AmazonSQS.ChangeMessageVisibility";
const NEW_OWNER: &str = "new-owner";

async fn lost_message_is_finished_by_its_new_owner(status: u16, code: &str) -> Result<()> {
    let rig = Rig::start().await?;
    let key = "lease/report.bin";
    let bytes = fixtures::bytes(300_000, 1);
    rig.put_source(key, bytes.clone()).await?;
    let sqs = FaultProxy::start(&rig.emulator.endpoint()).await?;
    sqs.refuse(EXTEND, status, code);
    rig.source.hold_gets_of(&rig.source_bucket, key);
    // Extended every 2 s; ownership lapses 6 s after the receive.
    let first = rig
        .worker_via(
            &sqs.endpoint(),
            "[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 6\nshutdown_grace_secs = 1\n",
        )
        .await?;
    rig.send(rig.message("copy", key)).await?;

    // The first worker holds the message and reads; from now on it
    // receives nothing more (else it would take the message back).
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.source.injected("trickled") == 0 {
        if Instant::now() > deadline {
            bail!("the first worker never read the object");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqs.refuse("AmazonSQS.ReceiveMessage", 503, "ServiceUnavailable");

    // The message comes back once its visibility runs out; a second
    // worker, reading the source unheld, takes it.
    let fresh_source = S3Proxy::start_oss(&rig.emulator.endpoint()).await?;
    let config = format!(
        "{}[metrics]\nlisten = \"127.0.0.1:0\"\n",
        rig.config_toml("[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 30\n")
            .replace(&rig.source.endpoint(), &fresh_source.endpoint())
    );
    let second = Service::spawn_with_env(
        "ossbridge-transfer",
        &config,
        "transfer_started",
        &[("AWS_ACCESS_KEY_ID", NEW_OWNER)],
    )
    .await?;
    assert_eq!(rig.wait_for_destination(key).await?, bytes);
    rig.drained().await?;
    ensure!(
        sqs.calls(EXTEND) >= 1,
        "the first worker never tried to extend"
    );

    // Now let the first worker's GET finish, had it kept it: nothing more
    // may come of it.
    rig.source.release_held_gets();
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        rig.destination.calls_by(NEW_OWNER, "PutObject") == 1,
        "the new owner wrote the object"
    );
    // Its PUT had started, streaming from the held GET; it was dropped
    // before its body was complete, so S3 could never have stored it.
    for write in [
        "PutObject",
        "CompleteMultipartUpload",
        "CopyObject",
        "DeleteObject",
    ] {
        ensure!(
            rig.destination.writes_sent_by(TEST_ACCESS_KEY_ID, write) == 0,
            "the worker that lost its message still sent {write}"
        );
    }
    ensure!(
        rig.aws.queue_depth(&rig.dlq_url).await? == (0, 0),
        "dead letters"
    );
    ensure!(!second.events("job_done").is_empty(), "no job_done");
    first.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_receipt_handle_stops_the_job_before_it_writes() -> Result<()> {
    lost_message_is_finished_by_its_new_owner(400, "ReceiptHandleIsInvalid").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visibility_that_cannot_be_extended_stops_the_job_before_it_lapses() -> Result<()> {
    lost_message_is_finished_by_its_new_owner(503, "ServiceUnavailable").await
}
