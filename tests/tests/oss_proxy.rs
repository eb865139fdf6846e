//! The test kit's proxies against real moto: the OSS-faithful source
//! (virtual-hosted only, OSS ETags and object types, AppendObject, CRC-64,
//! OSS errors, trickled GETs) and the S3-faithful destination (the
//! conditional writes moto ignores).

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::primitives::ByteStream;

use common::{Oss, client, crc64, etag, header, md5_shaped, md5_upper};

use ossbridge_testkit::{fixtures, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_works_and_path_style_is_refused_as_oss_does() -> Result<()> {
    let oss = Oss::start().await?;
    let bytes = fixtures::bytes(1000, 1);
    let put = oss
        .s3
        .put_object()
        .bucket(&oss.bucket)
        .key("a/b c.txt")
        .body(ByteStream::from(bytes.clone()))
        .send()
        .await?;
    assert_eq!(
        put.e_tag(),
        Some(format!("\"{}\"", md5_upper(&bytes)).as_str())
    );
    let got = oss
        .s3
        .get_object()
        .bucket(&oss.bucket)
        .key("a/b c.txt")
        .send()
        .await?;
    assert_eq!(
        got.body.collect().await?.into_bytes().as_ref(),
        bytes.as_slice()
    );

    // The same request path-style: refused, with OSS's error.
    let path_style = client(&oss.aws, &oss.proxy.endpoint(), true, "testing");
    let err = path_style
        .get_object()
        .bucket(&oss.bucket)
        .key("a/b c.txt")
        .send()
        .await
        .expect_err("path-style must be refused");
    let service = err.as_service_error().context("a service error")?;
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(service),
        Some("SecondLevelDomainForbidden")
    );
    let raw = oss
        .http
        .get(format!(
            "http://{}/{}/a/b%20c.txt",
            oss.proxy.addr(),
            oss.bucket
        ))
        .send()
        .await?;
    assert_eq!(raw.status(), 403);
    let id = header(&raw, "x-oss-request-id").context("x-oss-request-id")?;
    let body = raw.text().await?;
    for part in [
        "<Code>SecondLevelDomainForbidden</Code>".to_owned(),
        format!("<RequestId>{id}</RequestId>"),
        format!("<HostId>{}</HostId>", oss.proxy.addr()),
    ] {
        ensure!(body.contains(&part), "{part} missing in {body}");
    }
    assert_eq!(
        oss.proxy.calls("GetObject"),
        3,
        "refused calls are counted too"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_and_object_types_follow_how_each_object_was_written() -> Result<()> {
    let oss = Oss::start().await?;
    let normal = fixtures::bytes(300, 2);
    oss.s3
        .put_object()
        .bucket(&oss.bucket)
        .key("normal")
        .body(ByteStream::from(normal.clone()))
        .send()
        .await?;
    let multipart = fixtures::bytes(200_000, 3);
    let completed = oss.put_multipart("multipart", multipart.clone()).await?;
    let appended = oss
        .proxy
        .append(&oss.bucket, "appendable", 0, b"abc".to_vec(), &[])
        .await?;
    assert_eq!(appended.status, 200, "{appended:?}");

    let mut etags = std::collections::HashMap::new();
    for (key, kind, content) in [
        ("normal", "Normal", normal.as_slice()),
        ("multipart", "Multipart", multipart.as_slice()),
        ("appendable", "Appendable", b"abc".as_slice()),
    ] {
        let head = oss.head(key).await?;
        assert_eq!(head.status(), 200, "{key}");
        assert_eq!(header(&head, "x-oss-object-type").as_deref(), Some(kind));
        let etag = etag(&head);
        ensure!(md5_shaped(&etag), "{key}: {etag} is not MD5-shaped");
        // Only a Normal object's ETag is its MD5.
        assert_eq!(
            etag == md5_upper(content),
            kind == "Normal",
            "{key}: {etag}"
        );
        etags.insert(key.to_owned(), etag);
    }
    assert_eq!(
        Some(&completed),
        etags.get("multipart"),
        "Complete answered the same ETag"
    );
    assert_eq!(appended.etag.as_ref(), etags.get("appendable"));

    // Listings carry the same ETags, and OSS's <Type>.
    let listed = oss.s3.list_objects_v2().bucket(&oss.bucket).send().await?;
    for object in listed.contents() {
        let key = object.key().context("key")?;
        assert_eq!(
            object.e_tag().map(|e| e.trim_matches('"')),
            etags.get(key).map(String::as_str),
            "{key}"
        );
    }
    let raw = oss
        .raw(reqwest::Method::GET, "?list-type=2")
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        raw.contains("<Type>Appendable</Type>") && raw.contains("<Type>Multipart</Type>"),
        "{raw}"
    );

    // A PutObject over an appendable object makes it Normal again.
    oss.s3
        .put_object()
        .bucket(&oss.bucket)
        .key("appendable")
        .body(ByteStream::from_static(b"abc"))
        .send()
        .await?;
    let head = oss.head("appendable").await?;
    assert_eq!(
        header(&head, "x-oss-object-type").as_deref(),
        Some("Normal")
    );
    assert_eq!(etag(&head), md5_upper(b"abc"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_follow_oss_positions() -> Result<()> {
    let oss = Oss::start().await?;
    let first = oss
        .proxy
        .append(
            &oss.bucket,
            "log",
            0,
            b"abc".to_vec(),
            &[
                ("content-type", "text/plain"),
                ("x-oss-meta-origin", "first"),
            ],
        )
        .await?;
    assert_eq!(
        (first.status, first.next_position, first.crc64),
        (200, Some(3), Some(crc64(b"abc")))
    );
    let second = oss
        .proxy
        .append(
            &oss.bucket,
            "log",
            3,
            b"def".to_vec(),
            &[("content-type", "image/png")],
        )
        .await?;
    assert_eq!(
        (second.status, second.next_position, second.crc64),
        (200, Some(6), Some(crc64(b"abcdef")))
    );
    assert_ne!(first.etag, second.etag, "each append is a new version");

    let wrong = oss
        .proxy
        .append(&oss.bucket, "log", 2, b"x".to_vec(), &[])
        .await?;
    assert_eq!(wrong.status, 409);
    assert_eq!(wrong.code.as_deref(), Some("PositionNotEqualToLength"));
    assert_eq!(wrong.next_position, Some(6));
    let missing = oss
        .proxy
        .append(&oss.bucket, "new", 5, b"x".to_vec(), &[])
        .await?;
    assert_eq!((missing.status, missing.next_position), (409, Some(0)));

    oss.aws
        .put_object(&oss.bucket, "plain", b"p".to_vec())
        .await?;
    let plain = oss
        .proxy
        .append(&oss.bucket, "plain", 1, b"x".to_vec(), &[])
        .await?;
    assert_eq!(
        (plain.status, plain.code.as_deref()),
        (409, Some("ObjectNotAppendable"))
    );

    // The object, with the first append's content type and metadata.
    let got = oss
        .s3
        .get_object()
        .bucket(&oss.bucket)
        .key("log")
        .send()
        .await?;
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("first")
    );
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"abcdef");
    let head = oss.head("log").await?;
    assert_eq!(
        header(&head, "x-oss-next-append-position").as_deref(),
        Some("6")
    );
    assert_eq!(
        header(&head, "x-oss-hash-crc64ecma"),
        Some(crc64(b"abcdef").to_string())
    );
    assert_eq!(oss.proxy.calls("AppendObject"), 5);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_gets_compare_oss_etags() -> Result<()> {
    let oss = Oss::start().await?;
    oss.aws
        .put_object(&oss.bucket, "normal", b"n".to_vec())
        .await?;
    oss.put_multipart("multipart", b"m".to_vec()).await?;
    oss.proxy
        .append(&oss.bucket, "appendable", 0, b"a".to_vec(), &[])
        .await?;
    for (key, content) in [("normal", b"n"), ("multipart", b"m"), ("appendable", b"a")] {
        let current = etag(&oss.head(key).await?);
        let get = |name: &'static str, value: String| {
            oss.raw(reqwest::Method::GET, key)
                .header(name, value)
                .send()
        };
        assert_eq!(
            get("if-match", format!("\"{current}\"")).await?.status(),
            200,
            "{key}"
        );
        assert_eq!(
            get("if-none-match", format!("\"{current}\""))
                .await?
                .status(),
            304,
            "{key}"
        );
        // The content MD5 is the current ETag only of the Normal object.
        let md5 = format!("\"{}\"", md5_upper(content));
        let guessed = get("if-match", md5.clone()).await?;
        let expected = if key == "normal" { 200 } else { 412 };
        assert_eq!(guessed.status(), expected, "{key}");
        if expected == 412 {
            let body = guessed.text().await?;
            ensure!(body.contains("<Code>PreconditionFailed</Code>"), "{body}");
        }
        let not_modified = if key == "normal" { 304 } else { 200 };
        assert_eq!(
            get("if-none-match", md5).await?.status(),
            not_modified,
            "{key}"
        );
    }
    // The SDK's conditional GET, as the product sends it.
    let current = etag(&oss.head("appendable").await?);
    let unchanged = oss
        .s3
        .get_object()
        .bucket(&oss.bucket)
        .key("appendable")
        .if_none_match(format!("\"{current}\""))
        .send()
        .await
        .expect_err("304");
    assert_eq!(
        unchanged.raw_response().map(|r| r.status().as_u16()),
        Some(304)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_gets_carry_the_whole_objects_crc64() -> Result<()> {
    let oss = Oss::start().await?;
    let bytes = fixtures::bytes(100_000, 4);
    oss.aws.put_object(&oss.bucket, "r", bytes.clone()).await?;
    let range = oss
        .raw(reqwest::Method::GET, "r")
        .header("range", "bytes=10-19")
        .send()
        .await?;
    assert_eq!(range.status(), 206);
    assert_eq!(
        header(&range, "x-oss-hash-crc64ecma"),
        Some(crc64(&bytes).to_string())
    );
    assert_eq!(range.bytes().await?.as_ref(), &bytes[10..20]);
    let put = oss
        .raw(reqwest::Method::PUT, "p")
        .body(b"123456789".to_vec())
        .send()
        .await?;
    assert_eq!(
        header(&put, "x-oss-hash-crc64ecma"),
        Some(0x995D_C9BB_DF19_39FA_u64.to_string())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_in_oss_shape() -> Result<()> {
    let oss = Oss::start().await?;
    let missing = oss
        .raw(reqwest::Method::GET, "no/such%26key")
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    let id = header(&missing, "x-oss-request-id").context("x-oss-request-id")?;
    assert_eq!(
        header(&missing, "x-oss-ec").as_deref(),
        Some("0026-00000001")
    );
    let body = missing.text().await?;
    for part in [
        "<Code>NoSuchKey</Code>".to_owned(),
        "<Message>The specified key does not exist.</Message>".to_owned(),
        format!("<RequestId>{id}</RequestId>"),
        format!(
            "<HostId>{}.localhost:{}</HostId>",
            oss.bucket,
            oss.proxy.addr().port()
        ),
        "<Key>no/such&amp;key</Key>".to_owned(),
        "<EC>0026-00000001</EC>".to_owned(),
    ] {
        ensure!(body.contains(&part), "{part} missing in {body}");
    }
    // Answers that succeed carry a request id too.
    oss.aws.put_object(&oss.bucket, "k", b"k".to_vec()).await?;
    ensure!(header(&oss.head("k").await?, "x-oss-request-id").is_some());
    // The SDK sees OSS's codes.
    let err = oss
        .s3
        .get_object()
        .bucket(&oss.bucket)
        .key("nope")
        .send()
        .await
        .expect_err("404");
    ensure!(
        err.as_service_error().is_some_and(|e| e.is_no_such_key()),
        "{err:?}"
    );
    let no_bucket = client(&oss.aws, &oss.proxy.endpoint(), false, "testing")
        .list_objects_v2()
        .bucket(unique_name("missing"))
        .send()
        .await
        .expect_err("no such bucket");
    assert_eq!(
        no_bucket
            .as_service_error()
            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code),
        Some("NoSuchBucket")
    );
    // Faults keep OSS's shape.
    oss.proxy.revoke("testing");
    let denied = oss.head("k").await?;
    assert_eq!(denied.status(), 403);
    oss.proxy.restore("testing");
    oss.proxy.slow_down_next(1);
    let slow = oss.raw(reqwest::Method::GET, "k").send().await?;
    assert_eq!(slow.status(), 503);
    ensure!(slow.text().await?.contains("<Code>SlowDown</Code>"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_get_delivers_the_version_current_when_it_was_asked() -> Result<()> {
    let oss = Oss::start().await?;
    let old = fixtures::bytes(50_000, 5);
    oss.aws.put_object(&oss.bucket, "t", old.clone()).await?;
    oss.aws
        .put_object(&oss.bucket, "other", b"o".to_vec())
        .await?;
    oss.proxy
        .trickle_gets_of(&oss.bucket, "t", Duration::from_secs(2));
    let started = Instant::now();
    let get = oss
        .s3
        .get_object()
        .bucket(&oss.bucket)
        .key("t")
        .send()
        .await?;
    ensure!(
        started.elapsed() < Duration::from_secs(1),
        "headers come at once"
    );
    // A new version lands while the old one is still being delivered.
    oss.aws
        .put_object(&oss.bucket, "t", b"new".to_vec())
        .await?;
    let other = Instant::now();
    oss.s3
        .get_object()
        .bucket(&oss.bucket)
        .key("other")
        .send()
        .await?
        .body
        .collect()
        .await?;
    ensure!(
        other.elapsed() < Duration::from_secs(1),
        "other keys are not trickled"
    );
    assert_eq!(
        get.body.collect().await?.into_bytes().as_ref(),
        old.as_slice()
    );
    ensure!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(oss.proxy.injected("trickled"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_per_access_key() -> Result<()> {
    let oss = Oss::start().await?;
    oss.aws.put_object(&oss.bucket, "k", b"k".to_vec()).await?;
    let second = client(&oss.aws, &oss.proxy.endpoint(), false, "second-worker");
    oss.s3
        .get_object()
        .bucket(&oss.bucket)
        .key("k")
        .send()
        .await?;
    for _ in 0..2 {
        second
            .head_object()
            .bucket(&oss.bucket)
            .key("k")
            .send()
            .await?;
    }
    assert_eq!(oss.proxy.calls_by("testing", "GetObject"), 1);
    assert_eq!(oss.proxy.calls_by("second-worker", "HeadObject"), 2);
    assert_eq!(oss.proxy.calls_by("second-worker", "GetObject"), 0);
    assert_eq!(oss.proxy.calls("HeadObject"), 2);
    Ok(())
}
