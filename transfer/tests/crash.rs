//! SIGKILL in the middle of a multipart copy: the next worker finds the
//! upload, verifies the parts that were finished, uploads only the rest,
//! and the result is byte-identical.

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
