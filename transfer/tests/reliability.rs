//! How the worker behaves when deliveries, credentials, timing and
//! messages misbehave: duplicates and reordering, rotated keys, long
//! copies, shutdowns, unreadable messages, abandoned uploads.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::Rig;
use ossbridge_testkit::fixtures;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_duplicates_write_the_object_once() -> Result<()> {
    let rig = Rig::start().await?;
    let bytes = fixtures::bytes(10_000, 1);
    rig.put_source("dup/a.bin", bytes.clone()).await?;
    for _ in 0..3 {
        rig.send(rig.message("copy", "dup/a.bin")).await?;
    }
    let worker = rig.worker("").await?;
    assert_eq!(rig.wait_for_destination("dup/a.bin").await?, bytes);
    rig.drained().await?;
    // Each duplicate's `If-None-Match: *` PUT, if it came after the first
    // one's, was refused, and its HEAD found the object current.
    let puts = rig.destination.calls("PutObject");
    assert_eq!(
        puts - rig.destination.refused("PutObject"),
        1,
        "the other two found it current"
    );
    assert!(puts <= 3, "{puts} PUTs for three messages");
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_small_object_costs_one_get_and_one_put() -> Result<()> {
    let rig = Rig::start().await?;
    let bytes = fixtures::bytes(3000, 8);
    rig.put_source("hint/a.bin", bytes.clone()).await?;
    rig.put_source("hint/b.bin", bytes.clone()).await?;
    let worker = rig.worker("").await?;
    let calls = |proxy: &ossbridge_testkit::s3_proxy::S3Proxy| {
        ["HeadObject", "GetObject", "PutObject"].map(|call| proxy.calls(call))
    };
    // A true small hint for a key the destination lacks: one GET gives
    // the source's state and bytes, one `If-None-Match: *` PUT stores
    // them. Nothing else.
    rig.send(r#"{"key": "hint/a.bin", "size": 3000}"#).await?;
    assert_eq!(rig.wait_for_destination("hint/a.bin").await?, bytes);
    rig.drained().await?;
    assert_eq!(calls(&rig.source), [0, 1, 0], "source HEAD, GET, PUT");
    assert_eq!(
        calls(&rig.destination),
        [0, 0, 1],
        "destination HEAD, GET, PUT"
    );
    // A wrong, large size hint takes the HEAD-first path.
    rig.send(r#"{"key": "hint/b.bin", "size": 999999999999}"#)
        .await?;
    assert_eq!(rig.wait_for_destination("hint/b.bin").await?, bytes);
    rig.drained().await?;
    assert_eq!(calls(&rig.source), [1, 2, 0]);
    assert_eq!(calls(&rig.destination), [1, 0, 2]);
    // A duplicate small object: its GET, a PUT refused because the key is
    // taken, and the destination's HEAD, which holds the version just
    // read: done, nothing overwritten, no source HEAD.
    rig.send(r#"{"key": "hint/a.bin", "size": 3000}"#).await?;
    rig.drained().await?;
    assert_eq!(calls(&rig.source), [1, 3, 0]);
    assert_eq!(calls(&rig.destination), [2, 0, 3]);
    assert_eq!(rig.destination_object("hint/a.bin").await?, Some(bytes));
    // A duplicate large one (by its hint) downloads nothing: HEADs only.
    rig.send(r#"{"key": "hint/b.bin", "size": 999999999999}"#)
        .await?;
    rig.drained().await?;
    assert_eq!(calls(&rig.source), [2, 3, 0]);
    assert_eq!(calls(&rig.destination), [3, 0, 3]);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_puts_and_deletes_converge_on_the_source() -> Result<()> {
    let rig = Rig::start().await?;
    let propagate = "[copy]\npropagate_deletes = true\n";
    // Final source state: "kept" exists (v2), "gone" was deleted.
    let v2 = fixtures::bytes(2000, 2);
    rig.put_source("order/kept", v2.clone()).await?;
    // put, put, delete, put for "kept", delivered newest first.
    for op in ["copy", "delete", "copy", "copy"] {
        rig.send(rig.message(op, "order/kept")).await?;
    }
    // "gone": it existed, was copied, then deleted at the source; its
    // delete arrives before a stale put.
    rig.put_source("order/gone", fixtures::bytes(10, 3)).await?;
    let worker = rig.worker(propagate).await?;
    rig.send(rig.message("copy", "order/gone")).await?;
    rig.wait_for_destination("order/gone").await?;
    rig.delete_source("order/gone").await?;
    rig.send(rig.message("delete", "order/gone")).await?;
    rig.send(rig.message("copy", "order/gone")).await?;

    rig.drained().await?;
    assert_eq!(rig.destination_object("order/kept").await?, Some(v2));
    assert_eq!(rig.destination_object("order/gone").await?, None);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_ignored_unless_propagation_is_on() -> Result<()> {
    let rig = Rig::start().await?;
    rig.put_source("keep/me", b"x".to_vec()).await?;
    let worker = rig.worker("").await?;
    rig.send(rig.message("copy", "keep/me")).await?;
    rig.wait_for_destination("keep/me").await?;
    rig.delete_source("keep/me").await?;
    rig.send(rig.message("delete", "keep/me")).await?;
    rig.drained().await?;
    assert_eq!(
        rig.destination_object("keep/me").await?,
        Some(b"x".to_vec())
    );
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_source_keys_are_picked_up_on_403() -> Result<()> {
    let rig = Rig::start().await?;
    let worker = rig.worker("").await?;
    rig.put_source("rot/1", b"one".to_vec()).await?;
    rig.send(rig.message("copy", "rot/1")).await?;
    rig.wait_for_destination("rot/1").await?;

    // Rotate: the old key stops working at the source, the parameter now
    // holds the new one. The worker's cached keys are refused once, then
    // re-read from SSM.
    rig.aws
        .put_oss_keys(&rig.parameter, "rotated-key", "rotated-secret")
        .await?;
    rig.source.revoke("testing");
    rig.put_source("rot/2", b"two".to_vec()).await?;
    rig.send(rig.message("copy", "rot/2")).await?;
    assert_eq!(rig.wait_for_destination("rot/2").await?, b"two");
    rig.drained().await?;
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_longer_than_the_visibility_timeout_keeps_its_message() -> Result<()> {
    let rig = Rig::start().await?;
    rig.put_source("slow/a", fixtures::bytes(1000, 4)).await?;
    // Every GET waits 8 s; the visibility timeout is 5 s, so without the
    // heartbeat the message would be received again (and, after two
    // receives, dead-lettered).
    rig.source.delay_gets(Duration::from_secs(8));
    let worker = rig.worker("").await?;
    rig.send(rig.message("copy", "slow/a")).await?;
    rig.wait_for_destination("slow/a").await?;
    rig.drained().await?;
    assert_eq!(rig.aws.queue_depth(&rig.dlq_url).await?, (0, 0));
    assert_eq!(rig.destination.calls("PutObject"), 1, "copied exactly once");
    worker.stop().await
}

/// Waits until a worker holds the rig's one message.
async fn held(rig: &Rig) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.aws.queue_depth(&rig.queue_url).await? != (0, 1) {
        if Instant::now() > deadline {
            bail!("the message was never received");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_unfinished_copies_back_without_spending_receives() -> Result<()> {
    let rig = Rig::start().await?;
    rig.put_source("release/a", fixtures::bytes(1000, 5))
        .await?;
    rig.source.delay_gets(Duration::from_secs(20));
    rig.send(rig.message("copy", "release/a")).await?;
    // More interruptions than the queue's maxReceiveCount: were each one
    // a receive, the message would end in the dead-letter queue.
    for _ in 0..=common::MAX_RECEIVES {
        let worker = rig
            .worker("[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 300\nshutdown_grace_secs = 1\n")
            .await?;
        held(&rig).await?;
        worker.stop().await?;
        // Back at once, not after the 300 s visibility timeout.
        assert_eq!(rig.aws.queue_depth(&rig.queue_url).await?, (1, 0));
    }
    rig.source.delay_gets(Duration::ZERO);
    let last = rig.worker("").await?;
    rig.wait_for_destination("release/a").await?;
    rig.drained().await?;
    assert_eq!(rig.aws.queue_depth(&rig.dlq_url).await?, (0, 0));
    last.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_and_foreign_messages_end_in_the_dead_letter_queue() -> Result<()> {
    let rig = Rig::start().await?;
    let worker = rig.worker("").await?;
    rig.send("this is not JSON").await?;
    rig.send(r#"{"hello": "world"}"#).await?;
    let mut foreign: serde_json::Value = serde_json::from_str(&rig.message("copy", "x"))?;
    foreign["bucket"] = "someone-elses-bucket".into();
    rig.send(foreign.to_string()).await?;
    rig.dead_letters(3).await?;
    assert_eq!(rig.aws.queue_depth(&rig.queue_url).await?, (0, 0));
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idle_uploads_of_the_copied_key_are_aborted_never_other_keys() -> Result<()> {
    let rig = Rig::start().await?;
    let create = |key: &'static str| {
        rig.aws
            .s3
            .create_multipart_upload()
            .bucket(&rig.destination_bucket)
            .key(key)
            .send()
    };
    // Left by a dead worker, for a key that is copied again (moto dates
    // uploads it made itself 2010: idle and stale), and uploads of keys
    // nobody copies, which are the lifecycle rule's business.
    create("abandoned/copied-again.bin").await?;
    create("abandoned/never-copied.bin").await?;
    create("unrelated/other-tool.bin").await?;
    assert_eq!(rig.open_uploads().await?, 3);
    rig.put_source("abandoned/copied-again.bin", fixtures::bytes(12 << 20, 3))
        .await?;
    let worker = rig
        .worker("[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\n")
        .await?;
    rig.send(rig.message("copy", "abandoned/copied-again.bin"))
        .await?;
    rig.wait_for_destination("abandoned/copied-again.bin")
        .await?;
    rig.drained().await?;
    let left: Vec<String> = rig
        .destination_aws
        .s3
        .list_multipart_uploads()
        .bucket(&rig.destination_bucket)
        .send()
        .await?
        .uploads()
        .iter()
        .filter_map(|u| u.key().map(str::to_owned))
        .collect();
    assert_eq!(
        left,
        ["abandoned/never-copied.bin", "unrelated/other-tool.bin"],
        "only the copied key's stale upload is gone"
    );
    worker.stop().await
}
