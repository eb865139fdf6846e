//! Metadata-only changes at the source (`ObjectModified:UpdateObjectMeta`,
//! an in-place copy that replaces Content-Type and user metadata, ETag
//! unchanged) reach the destination through the worker and through `sync`,
//! as server-side copies: no GET at the source, counted at its proxy. And
//! metadata S3 cannot hold fails once, permanently, with its reason.

mod common;

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::types::MetadataDirective;
use common::Rig;
use ossbridge_testkit::{Service, fixtures};

const MIB: usize = 1024 * 1024;
const SMALL_PARTS: &str =
    "[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\npart_concurrency = 2\n";

/// Rewrites a source object's metadata in place, as OSS does for
/// UpdateObjectMeta: same bytes, same ETag, new headers and user metadata.
async fn change_metadata(rig: &Rig, key: &str, content_type: &str, owner: &str) -> Result<()> {
    rig.aws
        .s3
        .copy_object()
        .bucket(&rig.source_bucket)
        .key(key)
        .copy_source(format!("{}/{key}", rig.source_bucket))
        .metadata_directive(MetadataDirective::Replace)
        .content_type(content_type)
        .cache_control("no-cache")
        .metadata("owner", owner)
        .send()
        .await
        .with_context(|| format!("change the metadata of {key}"))?;
    Ok(())
}

/// The destination's Content-Type, Cache-Control and user metadata.
async fn destination_metadata(
    rig: &Rig,
    key: &str,
) -> Result<(Option<String>, Option<String>, HashMap<String, String>)> {
    let head = rig
        .destination_aws
        .s3
        .head_object()
        .bucket(&rig.destination_bucket)
        .key(key)
        .send()
        .await?;
    Ok((
        head.content_type().map(str::to_owned),
        head.cache_control().map(str::to_owned),
        head.metadata().cloned().unwrap_or_default(),
    ))
}

fn update_meta_message(rig: &Rig, key: &str) -> Result<String> {
    let mut message: serde_json::Value = serde_json::from_str(&rig.message("copy", key))?;
    message["eventName"] = "ObjectModified:UpdateObjectMeta".into();
    Ok(message.to_string())
}

async fn expect_new_metadata(rig: &Rig, key: &str) -> Result<()> {
    let (content_type, cache_control, meta) = destination_metadata(rig, key).await?;
    ensure!(
        content_type.as_deref() == Some("image/png"),
        "{key}: {content_type:?}"
    );
    ensure!(
        cache_control.as_deref() == Some("no-cache"),
        "{key}: {cache_control:?}"
    );
    ensure!(
        meta.get("owner").map(String::as_str) == Some("dev"),
        "{key}: {meta:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_replicates_metadata_only_changes_without_a_download() -> Result<()> {
    let rig = Rig::start().await?;
    let meta = HashMap::from([("owner".to_owned(), "ops".to_owned())]);
    let small = fixtures::bytes(40_000, 1);
    let large = fixtures::bytes(12 * MIB, 2);
    rig.put_source_with_metadata("meta/small.jpg", small.clone(), &meta)
        .await?;
    rig.put_source_with_metadata("meta/large.jpg", large.clone(), &meta)
        .await?;
    let worker = rig.worker(SMALL_PARTS).await?;
    for key in ["meta/small.jpg", "meta/large.jpg"] {
        rig.send(rig.message("copy", key)).await?;
    }
    rig.drained().await?;
    let (content_type, _, _) = destination_metadata(&rig, "meta/small.jpg").await?;
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));

    let gets = rig.source.calls("GetObject");
    let writes = (
        rig.destination.calls("PutObject"),
        rig.destination.calls("UploadPart"),
    );
    for key in ["meta/small.jpg", "meta/large.jpg"] {
        change_metadata(&rig, key, "image/png", "dev").await?;
        rig.send(update_meta_message(&rig, key)?).await?;
    }
    rig.drained().await?;
    for key in ["meta/small.jpg", "meta/large.jpg"] {
        expect_new_metadata(&rig, key).await?;
    }
    assert_eq!(
        rig.source.calls("GetObject"),
        gets,
        "nothing downloaded again"
    );
    assert_eq!(
        (
            rig.destination.calls("PutObject"),
            rig.destination.calls("UploadPart")
        ),
        writes,
        "nothing uploaded again"
    );
    // One CopyObject for the small object; the large one (above the
    // multipart threshold) was copied server-side in parts.
    assert_eq!(rig.destination.calls("CopyObject"), 1);
    assert!(rig.destination.calls("UploadPartCopy") >= 3);
    rig.expect_equal(&[
        ("meta/small.jpg".to_owned(), small),
        ("meta/large.jpg".to_owned(), large),
    ])
    .await?;
    assert_eq!(rig.open_uploads().await?, 0);

    // A duplicate of the change finds the destination current.
    rig.send(update_meta_message(&rig, "meta/small.jpg")?)
        .await?;
    rig.drained().await?;
    assert_eq!(rig.destination.calls("CopyObject"), 1);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replicates_metadata_only_changes_without_a_download() -> Result<()> {
    let rig = Rig::start().await?;
    let meta = HashMap::from([("owner".to_owned(), "ops".to_owned())]);
    for (i, key) in ["m/a.jpg", "m/b.jpg", "m/c.jpg"].iter().enumerate() {
        rig.put_source_with_metadata(key, fixtures::bytes(1000 * (i + 1), i as u64), &meta)
            .await?;
    }
    let config = rig.config_toml("");
    let first = rig.run_binary(&config, &["sync"]).await?;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.count("copied")?, 3);

    // Later than the upload's second: OSS's Last-Modified, which sync
    // compares from the listing, has whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for key in ["m/a.jpg", "m/c.jpg"] {
        change_metadata(&rig, key, "image/png", "dev").await?;
    }
    let gets = rig.source.calls("GetObject");
    let second = rig.run_binary(&config, &["sync"]).await?;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.count("metadata_updated")?, 2, "{}", second.stdout);
    assert_eq!(second.count("copied")?, 0);
    assert_eq!(second.count("already_current")?, 1);
    assert_eq!(
        rig.source.calls("GetObject"),
        gets,
        "nothing downloaded again"
    );
    for key in ["m/a.jpg", "m/c.jpg"] {
        expect_new_metadata(&rig, key).await?;
    }

    // A third run finds everything current from the listings and the
    // destination's records alone.
    let heads = rig.source.calls("HeadObject");
    let third = rig.run_binary(&config, &["sync"]).await?;
    assert_eq!(third.count("already_current")?, 3, "{}", third.stdout);
    assert_eq!(rig.source.calls("HeadObject"), heads);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_s3_cannot_hold_fails_permanently_with_its_reason() -> Result<()> {
    let rig = Rig::start().await?;
    // OSS allows 8 KB of user metadata, S3 2 KB.
    let meta: HashMap<String, String> = (0..6)
        .map(|i| (format!("note-{i}"), "x".repeat(500)))
        .collect();
    rig.put_source_with_metadata("big-meta/a.jpg", fixtures::bytes(100, 1), &meta)
        .await?;
    let config = format!(
        "{}[metrics]\nlisten = \"127.0.0.1:0\"\n",
        rig.config_toml("[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 5\n")
    );
    let worker = Service::spawn("ossbridge-transfer", &config, "transfer_started").await?;
    rig.send(rig.message("copy", "big-meta/a.jpg")).await?;
    // Refused on each receive, never retried within one, then dead-lettered.
    rig.dead_letters(1).await?;
    let failures = worker.events("job_failed");
    ensure!(!failures.is_empty(), "no job_failed");
    for failure in &failures {
        ensure!(failure["reason"] == "metadata_too_large", "{failure}");
        ensure!(failure["permanent"] == true, "{failure}");
    }
    ensure!(
        worker.events("job_retry").is_empty(),
        "a permanent failure was retried"
    );
    ensure!(
        failures.len() as u32 <= common::MAX_RECEIVES,
        "{failures:?}"
    );
    assert_eq!(rig.destination.calls("PutObject"), 0);

    let admin = worker
        .event("transfer_started")
        .and_then(|e| e["admin_addr"].as_str().map(str::to_owned))
        .context("admin_addr")?;
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await?
        .text()
        .await?;
    ensure!(
        metrics
            .lines()
            .any(|l| l.starts_with("ossbridge_transfer_failures_total")
                && l.contains("reason=\"metadata_too_large\"")
                && l.contains("kind=\"permanent\"")),
        "{metrics}"
    );
    Ok(())
}
