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

// Today's copy engine takes any 32-hex-digit ETag for an MD5: the small
// objects fail "integrity check failed: MD5 ... does not match the source
// ETag ..." until they reach the dead-letter queue. Un-ignore with the fix.
#[ignore = "the copy engine still reads MD5-shaped OSS ETags as MD5s (issue 12)"]
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
    worker.stop().await
}
