//! `sync --delete` that cannot delete what it should not: broken listings
//! fail closed, deletes pass a circuit breaker first, objects the live
//! pipeline copies during the sync survive; Data Transfer Hub's copies are
//! adopted without a download; SIGTERM leaves a summary and a run that the
//! next one finishes. The source is the OSS-faithful proxy, the
//! destination the S3-faithful one; listing faults are injected there.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{Rig, SyncRun};
use ossbridge_testkit::s3_proxy::HoldListing;

/// The worker's configuration without a queue (sync runs in-process).
fn sync_config(rig: &Rig, extra: &str) -> String {
    common::without_queue_url(&rig.config_toml(extra))
}

fn body(key: &str) -> Vec<u8> {
    format!("bytes of {key}").into_bytes()
}

/// Puts `keys` at the source and copies them with a plain sync, so both
/// sides are current.
async fn in_step(rig: &Rig, keys: &[String]) -> Result<()> {
    for key in keys {
        rig.put_source(key, body(key)).await?;
    }
    let run = rig.run_binary(&sync_config(rig, ""), &["sync"]).await?;
    ensure!(run.code == 0, "{}\n{}", run.stdout, run.stderr);
    Ok(())
}

async fn put_destination(rig: &Rig, key: &str) -> Result<()> {
    rig.destination_aws
        .put_object(&rig.destination_bucket, key, b"only here".to_vec())
        .await
}

async fn destination_keys(rig: &Rig, prefix: &str) -> Result<BTreeSet<String>> {
    let out = rig
        .destination_aws
        .s3
        .list_objects_v2()
        .bucket(&rig.destination_bucket)
        .prefix(prefix)
        .send()
        .await?;
    Ok(out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect())
}

fn failed_ranges(run: &SyncRun) -> Result<Vec<String>> {
    let summary = run.summary()?;
    // A JSON array, written as a string field of the log line.
    let text = summary["failed_ranges"]
        .as_str()
        .context("failed_ranges missing")?;
    Ok(serde_json::from_str(text)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_source_listings_delete_nothing_in_their_range_and_fail_the_run() -> Result<()> {
    let rig = Rig::start().await?;
    let keys: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|p| (0..30).map(move |i| format!("{p}/{i:03}")))
        .collect();
    in_step(&rig, &keys).await?;
    let args = [
        "sync",
        "--delete",
        "--yes-delete",
        "--max-delete-percent",
        "100",
    ];
    let bucket = rig.source_bucket.clone();
    for fault in ["truncated without a token", "out of byte order", "failing"] {
        // A real extra in each range: the healthy range deletes its own.
        put_destination(&rig, "a/zz-extra").await?;
        put_destination(&rig, "b/zz-extra").await?;
        let deletes_before = rig.destination.calls("DeleteObject");
        match fault {
            "truncated without a token" => {
                rig.source.truncate_listings_without_token(&bucket, "a/")
            }
            "out of byte order" => rig.source.unsort_listings(&bucket, "a/"),
            _ => rig.source.fail_listings(&bucket, "a/"),
        }
        let run = rig.run_binary(&sync_config(&rig, ""), &args).await?;
        rig.source.clear_listing_faults();
        ensure!(
            run.code == 1,
            "{fault}: exit {}\n{}\n{}",
            run.code,
            run.stdout,
            run.stderr
        );
        ensure!(
            failed_ranges(&run)? == ["a/"],
            "{fault}: {:?}",
            failed_ranges(&run)
        );
        ensure!(
            run.stdout
                .contains("ranges not listed (nothing deleted in them): \"a/\""),
            "{fault}: {}",
            run.stdout
        );
        let mut expected: BTreeSet<String> = keys
            .iter()
            .filter(|k| k.starts_with("a/"))
            .cloned()
            .collect();
        expected.insert("a/zz-extra".into());
        ensure!(
            destination_keys(&rig, "a/").await? == expected,
            "{fault}: something under a/ was deleted"
        );
        ensure!(
            destination_keys(&rig, "b/").await?.len() == 30,
            "{fault}: the healthy range still deletes its extra"
        );
        ensure!(
            rig.destination.calls("DeleteObject") == deletes_before + 1,
            "{fault}: one delete (b/zz-extra)"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_breaker_and_the_empty_source_guard_refuse_before_any_delete() -> Result<()> {
    let rig = Rig::start().await?;
    let keys: Vec<String> = (0..20).map(|i| format!("k/{i:03}")).collect();
    in_step(&rig, &keys).await?;
    for extra in ["k/x1", "k/x2", "k/x3", "gone/1", "gone/2"] {
        put_destination(&rig, extra).await?;
    }
    let config = sync_config(&rig, "");
    let delete = ["sync", "--delete", "--yes-delete", "--include", "k/"];

    // 3 of 23 is over the default 5 %.
    let run = rig.run_binary(&config, &delete).await?;
    ensure!(run.code == 1, "exit {}\n{}", run.code, run.stdout);
    ensure!(
        run.stdout.contains("deletes refused:") && run.stdout.contains("--max-delete-percent 5"),
        "{}",
        run.stdout
    );
    let run = rig
        .run_binary(
            &config,
            &[
                &delete[..],
                &["--max-delete", "2", "--max-delete-percent", "100"],
            ]
            .concat(),
        )
        .await?;
    ensure!(run.code == 1, "exit {}", run.code);
    ensure!(
        run.stdout.contains("exceed --max-delete 2"),
        "{}",
        run.stdout
    );

    // A scope the source lists as empty.
    let empty = [
        "sync",
        "--delete",
        "--yes-delete",
        "--max-delete-percent",
        "100",
        "--include",
        "gone/",
    ];
    let run = rig.run_binary(&config, &empty).await?;
    ensure!(run.code == 1, "exit {}", run.code);
    ensure!(
        run.stdout.contains("--allow-empty-source"),
        "{}",
        run.stdout
    );
    ensure!(
        rig.destination.calls("DeleteObject") == 0,
        "a refused run deletes nothing"
    );
    ensure!(destination_keys(&rig, "").await?.len() == 25);

    // Allowed explicitly: done.
    let run = rig
        .run_binary(&config, &[&empty[..], &["--allow-empty-source"]].concat())
        .await?;
    ensure!(run.code == 0, "{}\n{}", run.stdout, run.stderr);
    ensure!(destination_keys(&rig, "gone/").await?.is_empty());
    let run = rig
        .run_binary(
            &config,
            &[
                &delete[..],
                &["--max-delete", "3", "--max-delete-percent", "100"],
            ]
            .concat(),
        )
        .await?;
    ensure!(
        run.code == 0 && run.count("deleted")? == 3,
        "{}",
        run.stdout
    );
    Ok(())
}

/// The sync's source listing is a snapshot from before the objects were
/// created; its destination listing sees them, copied meanwhile by a live
/// worker. They look like extras, and none may be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_the_live_pipeline_copies_during_a_delete_sync_survive() -> Result<()> {
    let rig = Rig::start().await?;
    let keys: Vec<String> = (0..10).map(|i| format!("live/x/{i:03}")).collect();
    in_step(&rig, &keys).await?;
    let worker = rig.worker("").await?;

    // Held at the range's listing: the source answers as of now, the
    // destination as of the release.
    rig.source
        .hold_listings(&rig.source_bucket, "live/x/", HoldListing::AfterAnswer);
    rig.destination.hold_listings(
        &rig.destination_bucket,
        "live/x/",
        HoldListing::BeforeForwarding,
    );
    let config = sync_config(&rig, "");
    let args = [
        "sync",
        "--delete",
        "--yes-delete",
        "--max-delete-percent",
        "100",
        "--include",
        "live/",
    ];
    let sync = rig.run_binary(&config, &args);
    tokio::pin!(sync);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.source.held_listings() == 0 || rig.destination.held_listings() == 0 {
        tokio::select! {
            run = &mut sync => bail!("sync ended before its listings were held: {}", run?.stdout),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        ensure!(Instant::now() < deadline, "the listings were never held");
    }
    let new: Vec<String> = (0..5).map(|i| format!("live/x/new-{i}")).collect();
    for key in &new {
        rig.put_source(key, body(key)).await?;
        rig.send(rig.message("copy", key)).await?;
    }
    for key in &new {
        ensure!(rig.wait_for_destination(key).await? == body(key));
    }
    rig.source.release_held_listings();
    rig.destination.release_held_listings();
    let run = sync.await?;
    worker.stop().await?;

    ensure!(run.code == 0, "{}\n{}", run.stdout, run.stderr);
    ensure!(
        run.count("to_delete")? == 5 && run.count("delete_skipped")? == 5,
        "{}",
        run.stdout
    );
    ensure!(run.count("deleted")? == 0);
    for key in &new {
        ensure!(
            rig.destination_object(key).await? == Some(body(key)),
            "{key} was deleted"
        );
    }
    Ok(())
}

/// A bucket Data Transfer Hub already copied: same bytes, plain MD5 ETags
/// on both sides, no ossbridge metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_data_transfer_hub_copied_are_adopted_with_no_download() -> Result<()> {
    let rig = Rig::start().await?;
    let objects: Vec<(String, Vec<u8>, _)> = (0..40)
        .map(|i| {
            let key = format!("dth/{i:03}.bin");
            let bytes = body(&key).repeat(i + 1);
            (key, bytes, None)
        })
        .collect();
    rig.put_many(&rig.source_bucket, objects.clone(), 8).await?;
    rig.put_many(&rig.destination_bucket, objects[1..].to_vec(), 8)
        .await?;
    // DTH copied this one into another storage class: adopting it must not
    // make it STANDARD.
    let (ia_key, ia_bytes, _) = &objects[0];
    rig.destination_aws
        .s3
        .put_object()
        .bucket(&rig.destination_bucket)
        .key(ia_key)
        .storage_class(aws_sdk_s3::types::StorageClass::StandardIa)
        .body(ia_bytes.clone().into())
        .send()
        .await?;
    let config = sync_config(&rig, "");

    let run = rig.run_binary(&config, &["sync"]).await?;
    ensure!(run.code == 0, "{}\n{}", run.stdout, run.stderr);
    ensure!(
        run.count("adopted")? == 40 && run.count("copied")? == 0,
        "{}",
        run.stdout
    );
    ensure!(run.stdout.contains("adopted:         40"), "{}", run.stdout);
    ensure!(
        rig.source.calls("GetObject") == 0,
        "{} GETs at the source",
        rig.source.calls("GetObject")
    );
    ensure!(rig.destination.calls("PutObject") == 0);

    // Recorded now: the next run finds everything current from the
    // listings and destination HEADs alone.
    let heads = rig.source.calls("HeadObject");
    let again = rig.run_binary(&config, &["sync"]).await?;
    ensure!(again.code == 0);
    ensure!(again.count("already_current")? == 40 && again.count("adopted")? == 0);
    ensure!(rig.source.calls("HeadObject") == heads);
    ensure!(rig.source.calls("GetObject") == 0);
    for (key, bytes, _) in &objects {
        ensure!(rig.destination_object(key).await?.as_ref() == Some(bytes));
    }
    let head = rig
        .destination_aws
        .s3
        .head_object()
        .bucket(&rig.destination_bucket)
        .key(ia_key)
        .send()
        .await?;
    ensure!(
        head.storage_class() == Some(&aws_sdk_s3::types::StorageClass::StandardIa),
        "adoption changed the storage class to {:?}",
        head.storage_class()
    );
    ensure!(
        head.metadata()
            .is_some_and(|m| m.contains_key("ossbridge-source-etag")),
        "adopted, so recorded"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_sync_prints_the_summary_exits_3_and_the_next_run_finishes() -> Result<()>
{
    let rig = Rig::start().await?;
    let objects: Vec<(String, Vec<u8>, _)> = (0..60)
        .map(|i| {
            let key = format!("t/{i:03}");
            (key.clone(), body(&key), None)
        })
        .collect();
    rig.put_many(&rig.source_bucket, objects.clone(), 8).await?;
    let config_text = sync_config(
        &rig,
        "[worker]\nconcurrency = 2\nshutdown_grace_secs = 10\n",
    );
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile()?;
    std::io::Write::write_all(&mut config, config_text.as_bytes())?;

    rig.source.delay_gets(Duration::from_millis(200));
    let child =
        ossbridge_testkit::services::loopback_command(env!("CARGO_BIN_EXE_ossbridge-transfer"))
            .args(["sync", "--progress", "log", "--config"])
            .arg(config.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.destination.calls("PutObject") < 4 {
        ensure!(Instant::now() < deadline, "the sync never copied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().context("pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid)?),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .context("sync did not stop after SIGTERM")??;
    let stopped = SyncRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    ensure!(
        stopped.code == 3,
        "exit {}\n{}\n{}",
        stopped.code,
        stopped.stdout,
        stopped.stderr
    );
    ensure!(
        stopped.stdout.contains("sync summary (interrupted)"),
        "{}",
        stopped.stdout
    );
    let copied = stopped.count("copied")?;
    ensure!((1..60).contains(&copied), "{copied} copied before the stop");

    rig.source.delay_gets(Duration::ZERO);
    let gets = rig.source.calls("GetObject");
    let next = rig.run_binary(&config_text, &["sync"]).await?;
    ensure!(next.code == 0, "{}\n{}", next.stdout, next.stderr);
    ensure!(
        next.count("copied")? == 60 - copied,
        "the next run copies only what is left: {}",
        next.stdout
    );
    ensure!(rig.source.calls("GetObject") - gets == 60 - copied);
    for (key, bytes, _) in &objects {
        ensure!(rig.destination_object(key).await?.as_ref() == Some(bytes));
    }
    Ok(())
}
