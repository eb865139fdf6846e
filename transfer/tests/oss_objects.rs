//! OSS object types the emulator cannot make by itself, read through the
//! OSS-faithful proxy: `Multipart` and `Appendable` objects, whose ETags
//! are MD5-shaped but are not the MD5 of their bytes (OSS documents them
//! as "a unique value generated based on specific rules"). Their bytes
//! must reach the destination intact, and their integrity be checked by
//! something that does hold: length and CRC-64.

mod common;

use anyhow::Result;
use common::Rig;
use ossbridge_testkit::fixtures;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_and_appendable_source_objects_are_copied() -> Result<()> {
    let rig = Rig::start().await?;
    let worker = rig
        .worker("[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\n")
        .await?;
    // Small and above the multipart threshold, of each type.
    let multipart_small = fixtures::bytes(1000, 1);
    let multipart_large = fixtures::bytes(6 * MIB, 2);
    rig.put_source_multipart("mp/small", multipart_small.clone())
        .await?;
    rig.put_source_multipart("mp/large", multipart_large.clone())
        .await?;
    let appended_small = fixtures::bytes(1000, 3);
    rig.append_source("app/small", 0, appended_small[..400].to_vec())
        .await?;
    rig.append_source("app/small", 400, appended_small[400..].to_vec())
        .await?;
    let appended_large = fixtures::bytes(6 * MIB, 4);
    rig.append_source("app/large", 0, appended_large.clone())
        .await?;
    let objects = [
        ("mp/small".to_owned(), multipart_small),
        ("mp/large".to_owned(), multipart_large),
        ("app/small".to_owned(), appended_small),
        ("app/large".to_owned(), appended_large),
    ];
    for (key, _) in &objects {
        rig.send(rig.message("copy", key)).await?;
    }
    for (key, _) in &objects {
        rig.wait_for_destination(key).await?;
    }
    rig.expect_equal(&objects).await?;
    rig.drained().await?;
    assert_eq!(rig.aws.queue_depth(&rig.dlq_url).await?, (0, 0));

    // Appending changes the object (and its ETag): the next event copies
    // the longer object, checked against its new CRC-64.
    let mut longer = fixtures::bytes(1000, 3);
    longer.extend(fixtures::bytes(700, 5));
    rig.append_source("app/small", 1000, longer[1000..].to_vec())
        .await?;
    rig.send(rig.message("copy", "app/small")).await?;
    rig.drained().await?;
    rig.expect_equal(&[("app/small".to_owned(), longer)])
        .await?;
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_copies_multipart_and_appendable_objects_and_then_finds_them_current() -> Result<()> {
    let rig = Rig::start().await?;
    let multipart = fixtures::bytes(2000, 6);
    let appended = fixtures::bytes(3000, 7);
    rig.put_source_multipart("s/mp", multipart.clone()).await?;
    rig.append_source("s/app", 0, appended.clone()).await?;
    let config = rig.config_toml("");
    let first = rig.run_binary(&config, &["sync"]).await?;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(first.count("copied")?, 2);
    rig.expect_equal(&[
        ("s/mp".to_owned(), multipart),
        ("s/app".to_owned(), appended),
    ])
    .await?;
    let again = rig.run_binary(&config, &["sync"]).await?;
    assert_eq!(again.count("already_current")?, 2, "{}", again.stdout);
    assert_eq!(again.count("copied")?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_multipart_object_is_caught_by_its_crc64_not_its_etag() -> Result<()> {
    let rig = Rig::start().await?;
    rig.put_source_multipart("bad/mp", fixtures::bytes(5000, 8))
        .await?;
    rig.source.corrupt(&rig.source_bucket, "bad/mp");
    let text = rig.config_toml("[copy]\nattempts = 1\n");
    let run = rig.run_binary(&text, &["sync"]).await?;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("failed \"bad/mp\" (integrity)") && run.stdout.contains("CRC-64"),
        "{}",
        run.stdout
    );
    assert!(rig.destination_object("bad/mp").await?.is_none());
    Ok(())
}
