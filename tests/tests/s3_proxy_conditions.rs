//! The test kit's S3-faithful destination proxy against real moto: the
//! conditional writes moto ignores (If-Match on CompleteMultipartUpload,
//! If-Match / If-None-Match on CopyObject's destination,
//! x-amz-copy-source-if-match) are enforced with S3's errors, and writes
//! to one key are serialized so check-then-write is atomic.

mod common;

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use common::{client, emulator, put, s3_code};
use ossbridge_testkit::{LocalAws, S3Proxy, unique_name};

/// The destination: path-style S3 through the plain proxy.
async fn destination() -> Result<(S3Proxy, aws_sdk_s3::Client, String)> {
    let endpoint = emulator().await?;
    let aws = LocalAws::connect(&endpoint).await;
    let bucket = unique_name("dst");
    aws.create_bucket(&bucket).await?;
    let proxy = S3Proxy::start(&endpoint).await?;
    let s3 = client(&aws, &proxy.endpoint(), true, "testing");
    Ok((proxy, s3, bucket))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_enforces_the_conditional_writes_moto_ignores() -> Result<()> {
    let (proxy, s3, bucket) = destination().await?;
    let current = put(&s3, &bucket, "k", b"v1").await?;
    let complete = |key: &'static str, if_match: Option<&str>| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        let if_match = if_match.map(str::to_owned);
        async move {
            let id = s3
                .create_multipart_upload()
                .bucket(&bucket)
                .key(key)
                .send()
                .await?
                .upload_id()
                .context("upload id")?
                .to_owned();
            let part = s3
                .upload_part()
                .bucket(&bucket)
                .key(key)
                .upload_id(&id)
                .part_number(1)
                .body(ByteStream::from_static(b"v2"))
                .send()
                .await?;
            let parts = CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .set_e_tag(part.e_tag)
                        .build(),
                )
                .build();
            anyhow::Ok(s3_code(
                s3.complete_multipart_upload()
                    .bucket(&bucket)
                    .key(key)
                    .upload_id(&id)
                    .multipart_upload(parts)
                    .set_if_match(if_match)
                    .send()
                    .await,
            ))
        }
    };
    assert_eq!(
        complete("k", Some("\"0123\"")).await?,
        (412, "PreconditionFailed".into())
    );
    assert_eq!(
        complete("missing", Some(&current)).await?,
        (404, "NoSuchKey".into())
    );
    assert_eq!(complete("k", Some(&current)).await?.0, 200);
    let current = s3
        .head_object()
        .bucket(&bucket)
        .key("k")
        .send()
        .await?
        .e_tag()
        .context("ETag")?
        .to_owned();

    // CopyObject in place: a metadata update guarded by the ETag.
    let copy =
        |if_match: Option<&str>, if_none_match: Option<&str>, source_if_match: Option<&str>| {
            s3.copy_object()
                .bucket(&bucket)
                .key("k")
                .copy_source(format!("{bucket}/k"))
                .metadata_directive(MetadataDirective::Replace)
                .metadata("ossbridge-source-etag", "X")
                .set_if_match(if_match.map(str::to_owned))
                .set_if_none_match(if_none_match.map(str::to_owned))
                .set_copy_source_if_match(source_if_match.map(str::to_owned))
                .send()
        };
    assert_eq!(
        s3_code(copy(Some("\"0123\""), None, None).await),
        (412, "PreconditionFailed".into())
    );
    assert_eq!(
        s3_code(copy(None, Some("*"), None).await),
        (412, "PreconditionFailed".into())
    );
    assert_eq!(
        s3_code(copy(None, None, Some("\"0123\"")).await),
        (412, "PreconditionFailed".into())
    );
    assert_eq!(
        s3_code(copy(Some(&current), None, Some(&current)).await).0,
        200
    );
    let head = s3.head_object().bucket(&bucket).key("k").send().await?;
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("ossbridge-source-etag"))
            .map(String::as_str),
        Some("X")
    );

    // S3's answer to a conditional write that raced another.
    proxy.conflict_next_conditional_writes(1);
    assert_eq!(
        s3_code(
            s3.delete_object()
                .bucket(&bucket)
                .key("k")
                .if_match(&current)
                .send()
                .await
        ),
        (409, "ConditionalRequestConflict".into())
    );
    assert_eq!(proxy.calls("CopyObject"), 4);
    assert_eq!(proxy.calls("CompleteMultipartUpload"), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_puts_on_one_key_let_exactly_one_through() -> Result<()> {
    let (_proxy, s3, bucket) = destination().await?;
    let current = put(&s3, &bucket, "k", b"v1").await?;
    let attempts = (0..4u8).map(|i| {
        s3.put_object()
            .bucket(&bucket)
            .key("k")
            .if_match(&current)
            .body(ByteStream::from(vec![i; 100_000]))
            .send()
    });
    let results = futures::future::join_all(attempts).await;
    let codes: Vec<(u16, String)> = results.into_iter().map(s3_code).collect();
    assert_eq!(codes.iter().filter(|c| c.0 == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| c.0 == 412).count(), 3, "{codes:?}");
    Ok(())
}
