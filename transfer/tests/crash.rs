//! SIGKILL in the middle of copies: the next worker (or sync) finds the
//! upload, verifies the parts that were finished, uploads only the rest,
//! and the result is byte-identical; a sync killed again and again still
//! ends with the destination equal to the source and no upload left open.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::Rig;
use ossbridge_testkit::fixtures;

const MIB: usize = 1024 * 1024;
const PARTS: u64 = 8;
const CONFIG: &str = "[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\npart_concurrency = 1\n\
                      [worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 5\nshutdown_grace_secs = 5\n";

async fn finished_parts(rig: &Rig, key: &str) -> Result<usize> {
    // Through the destination proxy, which mends moto's ListParts answer.
    let s3 = ossbridge_testkit::LocalAws::connect(&rig.destination.endpoint())
        .await
        .s3;
    let uploads = s3
        .list_multipart_uploads()
        .bucket(&rig.destination_bucket)
        .send()
        .await?;
    let upload = uploads
        .uploads()
        .iter()
        .find(|u| u.key() == Some(key))
        .context("no upload left behind")?;
    let parts = s3
        .list_parts()
        .bucket(&rig.destination_bucket)
        .key(key)
        .upload_id(upload.upload_id().context("id")?)
        .send()
        .await?;
    Ok(parts.parts().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_upload_is_resumed_with_its_finished_parts() -> Result<()> {
    let rig = Rig::start().await?;
    let key = "crash/movie.mp4";
    let bytes = fixtures::bytes(PARTS as usize * 5 * MIB, 77);
    rig.put_source(key, bytes.clone()).await?;
    // Slow the source down so the kill lands mid-copy.
    rig.source.delay_gets(Duration::from_millis(400));

    let mut first = rig.process(CONFIG).await?;
    rig.send(rig.message("copy", key)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.destination.calls("UploadPart") < 4 {
        if Instant::now() > deadline {
            bail!("the copy never got going");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill()?;
    first.wait(Duration::from_secs(10)).await?;
    let finished = finished_parts(&rig, key).await?;
    let uploads_before = rig.destination.calls("UploadPart");
    ensure!(
        (1..PARTS as usize).contains(&finished),
        "killed mid-copy, {finished} parts finished"
    );

    rig.source.delay_gets(Duration::ZERO);
    let second = rig.process(CONFIG).await?;
    let copied = rig.wait_for_destination(key).await?;
    ensure!(copied == bytes, "the resumed copy differs from the source");
    rig.drained().await?;

    let uploaded_again = rig.destination.calls("UploadPart") - uploads_before;
    assert_eq!(
        uploaded_again,
        PARTS - finished as u64,
        "only the missing parts were uploaded"
    );
    let done = second.event("job_done").context("job_done")?;
    assert_eq!(
        done["detail"]
            .as_str()
            .map(|d| d.contains(&format!("parts_reused: {finished}"))),
        Some(true),
        "{done}"
    );
    assert_eq!(rig.open_uploads().await?, 0);
    Ok(())
}

/// A few hundred objects of mixed sizes: most small (0 B to 64 KiB), some
/// above the multipart threshold (four 5 MiB parts).
fn mixed_objects() -> Vec<(String, Vec<u8>)> {
    let mut objects: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("mixed/big-{i}.bin"),
                fixtures::bytes(16 * MIB + 1000 * i, 500 + i as u64),
            )
        })
        .collect();
    objects.extend((0..294).map(|i| {
        let len = (i * 4099) % (64 * 1024);
        (
            format!("mixed/small-{i:03}"),
            fixtures::bytes(len, i as u64 + 1),
        )
    }));
    objects
}

/// Starts `ossbridge-transfer sync` on `config` (a file).
fn start_sync(config: &std::path::Path) -> Result<tokio::process::Child> {
    Ok(
        ossbridge_testkit::services::loopback_command(env!("CARGO_BIN_EXE_ossbridge-transfer"))
            .args(["sync", "--progress", "log", "--config"])
            .arg(config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_again_and_again_ends_equal_to_the_source_with_no_open_uploads() -> Result<()>
{
    const KILLS: usize = 4;
    let rig = Rig::start_split().await?;
    let objects = mixed_objects();
    let entries = objects
        .iter()
        .map(|(k, b)| (k.clone(), b.clone(), None))
        .collect();
    rig.put_many(&rig.source_bucket, entries, 8).await?;
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile()?;
    std::io::Write::write_all(
        &mut config,
        rig.config_toml(
            "[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\npart_concurrency = 2\n\
             upload_idle_secs = 1\n\
             [worker]\nconcurrency = 8\nshutdown_grace_secs = 5\n",
        )
        .as_bytes(),
    )?;

    // Slowed down so each run is killed mid-work. The first kill waits for
    // parts to be uploaded (so an upload is left open); the others for a
    // few more objects to be written than before the run started.
    rig.source.delay_gets(Duration::from_millis(150));
    let mut left_open = 0;
    for kill in 0..KILLS {
        let (parts, puts) = (
            rig.destination.calls("UploadPart"),
            rig.destination.calls("PutObject"),
        );
        let mut sync = start_sync(config.path())?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let progressed = if kill == 0 {
                rig.destination.calls("UploadPart") >= parts + 3
            } else {
                rig.destination.calls("PutObject") >= puts + 25
                    || rig.destination.calls("UploadPart") >= parts + 6
            };
            if progressed {
                break;
            }
            if let Some(status) = sync.try_wait()? {
                bail!("sync run {kill} ended ({status}) before it could be killed");
            }
            if Instant::now() > deadline {
                bail!("sync run {kill} made no progress");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sync.start_kill()?; // SIGKILL: no shutdown code runs
        sync.wait().await?;
        // Its uploads are resumed once idle (`copy.upload_idle_secs`);
        // sooner, they would look like another copy's, still running.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if kill == 0 {
            left_open = rig.open_uploads().await?;
        }
    }
    ensure!(left_open > 0, "the first kill left no upload to resume");

    rig.source.delay_gets(Duration::ZERO);
    let mut last = start_sync(config.path())?;
    let status = tokio::time::timeout(Duration::from_secs(300), last.wait())
        .await
        .context("the last sync did not finish")??;
    ensure!(status.success(), "the last sync exited {status}");

    // Object by object: every source key, byte-identical, nothing else.
    rig.expect_equal(&objects).await?;
    let listed = rig
        .destination_aws
        .s3
        .list_objects_v2()
        .bucket(&rig.destination_bucket)
        .max_keys(1000)
        .send()
        .await?;
    assert_eq!(listed.key_count(), Some(objects.len() as i32));
    assert_eq!(rig.open_uploads().await?, 0, "orphaned multipart uploads");
    Ok(())
}
