//! The copy engine end to end against moto: sizes around the multipart
//! threshold, a 100 MiB multipart object, raw and URL-encoded keys,
//! metadata, destination options and integrity failures.

mod common;

use std::collections::HashMap;

use anyhow::{Result, ensure};
use common::Rig;
use ossbridge_testkit::fixtures;

const MIB: usize = 1024 * 1024;
/// Small thresholds so the boundary cases stay small.
const SMALL_PARTS: &str =
    "[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\npart_concurrency = 2\n";

async fn expect_identical(rig: &Rig, key: &str, bytes: &[u8]) -> Result<()> {
    let copied = rig.wait_for_destination(key).await?;
    ensure!(
        copied.len() == bytes.len(),
        "{key}: {} bytes, expected {}",
        copied.len(),
        bytes.len()
    );
    ensure!(copied == bytes, "{key}: contents differ");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_around_the_multipart_threshold_copy_byte_identical() -> Result<()> {
    let rig = Rig::start().await?;
    let worker = rig.worker(SMALL_PARTS).await?;
    let sizes = [0, 1, 5 * MIB - 1, 5 * MIB, 5 * MIB + 1];
    for (i, size) in sizes.iter().enumerate() {
        let key = format!("sizes/{size}");
        rig.put_source(&key, fixtures::bytes(*size, i as u64 + 1))
            .await?;
        rig.send(rig.message("copy", &key)).await?;
    }
    for (i, size) in sizes.iter().enumerate() {
        expect_identical(
            &rig,
            &format!("sizes/{size}"),
            &fixtures::bytes(*size, i as u64 + 1),
        )
        .await?;
    }
    rig.drained().await?;
    // Only the object above the threshold went multipart (two parts).
    assert_eq!(rig.destination.calls("UploadPart"), 2);
    assert_eq!(rig.destination.calls("PutObject"), 4);
    let head = rig
        .aws
        .s3
        .head_object()
        .bucket(&rig.destination_bucket)
        .key("sizes/1")
        .send()
        .await?;
    let meta = head.metadata().cloned().unwrap_or_default();
    assert!(meta.contains_key("ossbridge-source-etag"), "{meta:?}");
    assert!(meta.contains_key("ossbridge-source-crc64"), "{meta:?}");
    assert!(
        meta.contains_key("ossbridge-source-last-modified"),
        "{meta:?}"
    );
    assert_eq!(rig.open_uploads().await?, 0);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_object_is_copied_in_parts() -> Result<()> {
    let rig = Rig::start().await?;
    let worker = rig
        .worker("[copy]\npart_size_mib = 8\npart_concurrency = 4\n")
        .await?;
    let bytes = fixtures::bytes(100 * MIB, 99);
    rig.put_source("video/launch day (final).mp4", bytes.clone())
        .await?;
    rig.send(rig.message("copy", "video/launch day (final).mp4"))
        .await?;
    expect_identical(&rig, "video/launch day (final).mp4", &bytes).await?;
    rig.drained().await?;
    assert_eq!(
        rig.destination.calls("UploadPart"),
        13,
        "100 MiB in 8 MiB parts"
    );
    assert_eq!(rig.open_uploads().await?, 0);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_oss_keys_and_url_encoded_s3_notification_keys() -> Result<()> {
    let rig = Rig::start().await?;
    let worker = rig.worker("").await?;
    // Raw OSS event notification on the queue: keys used as they are.
    let fixture: serde_json::Value =
        serde_json::from_str(&fixtures::read("oss-events/tricky-keys.json")?)?;
    let mut objects = Vec::new();
    for (i, e) in fixture["events"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = e["oss"]["object"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let size = e["oss"]["object"]["size"].as_u64().unwrap_or_default() as usize;
        objects.push((key, fixtures::bytes(size, i as u64 + 7)));
    }
    for (key, bytes) in &objects {
        rig.put_source(key, bytes.clone()).await?;
    }
    let refs: Vec<(&str, &[u8])> = objects
        .iter()
        .map(|(k, b)| (k.as_str(), b.as_slice()))
        .collect();
    rig.send(fixtures::oss_event(
        "oss-events/tricky-keys.json",
        &rig.source_bucket,
        &refs,
    )?)
    .await?;

    // S3 event notification: the key is URL-encoded, '+' for space.
    let notification = fixtures::read("queue-messages/s3-event-notification.json")?
        .replace("source-bucket", &rig.source_bucket);
    let decoded = "reports/2026/Q4 summary报告.pdf";
    rig.put_source(decoded, fixtures::bytes(1024, 3)).await?;
    rig.send(notification).await?;
    // s3:TestEvent is dropped without a trace.
    rig.send(fixtures::read("queue-messages/s3-test-event.json")?)
        .await?;

    for (key, bytes) in &objects {
        expect_identical(&rig, key, bytes).await?;
    }
    expect_identical(&rig, decoded, &fixtures::bytes(1024, 3)).await?;
    rig.drained().await?;
    assert_eq!(rig.aws.queue_depth(&rig.dlq_url).await?, (0, 0));
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_destination_options_reach_the_destination() -> Result<()> {
    let rig = Rig::start().await?;
    let options =
        "storage_class = \"STANDARD_IA\"\nsse = \"AES256\"\nacl = \"bucket-owner-full-control\"\n";
    let worker = rig.worker_with_destination(options, SMALL_PARTS).await?;
    let meta: HashMap<String, String> = [
        ("camera".to_owned(), "X100V".to_owned()),
        ("album".to_owned(), "launch".to_owned()),
    ]
    .into();
    for (key, size) in [("meta/small.jpg", 1000), ("meta/large.jpg", 6 * MIB)] {
        rig.put_source_with_metadata(key, fixtures::bytes(size, 5), &meta)
            .await?;
        rig.send(rig.message("copy", key)).await?;
    }
    for (key, size) in [("meta/small.jpg", 1000), ("meta/large.jpg", 6 * MIB)] {
        expect_identical(&rig, key, &fixtures::bytes(size, 5)).await?;
        let head = rig
            .aws
            .s3
            .head_object()
            .bucket(&rig.destination_bucket)
            .key(key)
            .send()
            .await?;
        assert_eq!(head.content_type(), Some("image/jpeg"), "{key}");
        assert_eq!(head.content_encoding(), Some("identity"), "{key}");
        assert_eq!(head.content_language(), Some("zh-CN"), "{key}");
        assert_eq!(
            head.content_disposition(),
            Some("attachment; filename=\"a.jpg\""),
            "{key}"
        );
        assert_eq!(head.cache_control(), Some("max-age=3600"), "{key}");
        assert!(
            head.expires_string().is_some_and(|e| e.contains("2030")),
            "{key}: {:?}",
            head.expires_string()
        );
        let m = head.metadata().cloned().unwrap_or_default();
        assert_eq!(m.get("camera").map(String::as_str), Some("X100V"), "{key}");
        assert_eq!(m.get("album").map(String::as_str), Some("launch"), "{key}");
        assert_eq!(
            head.storage_class().map(|s| s.as_str()),
            Some("STANDARD_IA"),
            "{key}"
        );
        assert_eq!(
            head.server_side_encryption().map(|s| s.as_str()),
            Some("AES256"),
            "{key}"
        );
        let acl = rig
            .aws
            .s3
            .get_object_acl()
            .bucket(&rig.destination_bucket)
            .key(key)
            .send()
            .await?;
        assert!(
            acl.grants()
                .iter()
                .any(|g| g.permission().map(|p| p.as_str()) == Some("FULL_CONTROL")),
            "{key}"
        );
    }
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_source_bytes_never_reach_the_destination() -> Result<()> {
    let rig = Rig::start().await?;
    let worker = rig.worker(&format!("{SMALL_PARTS}attempts = 2\n")).await?;
    for (key, size) in [("bad/small.bin", 4096), ("bad/large.bin", 11 * MIB)] {
        rig.put_source(key, fixtures::bytes(size, 11)).await?;
        rig.source.corrupt(&rig.source_bucket, key);
        rig.send(rig.message("copy", key)).await?;
    }
    // Every attempt fails the integrity check; after the queue's receive
    // limit both messages are in the dead-letter queue.
    rig.dead_letters(2).await?;
    assert_eq!(rig.destination_object("bad/small.bin").await?, None);
    assert_eq!(rig.destination_object("bad/large.bin").await?, None);
    assert_eq!(
        rig.open_uploads().await?,
        0,
        "the failed multipart upload was aborted"
    );
    worker.stop().await
}
