//! The worker's deletes when DeleteMessageBatch fails some entries: the
//! deleter sends those again, so the messages leave the queue now instead
//! of reappearing after the visibility timeout to be handled twice.

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::Rig;
use ossbridge_testkit::FaultProxy;

const DELETE_BATCH: &str = "AmazonSQS.DeleteMessageBatch";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_sqs_reports_failed_are_retried() -> Result<()> {
    let rig = Rig::start().await?;
    let sqs = FaultProxy::start(&rig.emulator.endpoint()).await?;
    let mut objects = Vec::new();
    for i in 0..6 {
        let key = format!("delete-retry/{i}");
        rig.put_source(&key, key.as_bytes().to_vec()).await?;
        rig.send(rig.message("copy", &key)).await?;
        objects.push((key.clone(), key.into_bytes()));
    }
    // The first delete fails its first two entries, the next one its first.
    sqs.fail_next_delete_entries(vec![0, 1]);
    sqs.fail_next_delete_entries(vec![0]);
    // A message whose delete were given up would stay in flight for the
    // whole visibility timeout, far past the wait below.
    let worker = rig
        .worker_via(
            &sqs.endpoint(),
            "[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 300\nshutdown_grace_secs = 5\n",
        )
        .await?;
    rig.aws
        .wait_until_empty(&rig.queue_url, Duration::from_secs(30))
        .await?;
    worker.stop().await?;
    let deletes = sqs.calls(DELETE_BATCH);
    ensure!(deletes >= 3, "{deletes} DeleteMessageBatch calls: no retry");
    rig.expect_equal(&objects).await?;
    Ok(())
}
