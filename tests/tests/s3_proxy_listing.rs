//! The test kit's listing faults against real moto, through the SDK:
//! pages truncated without a token, pages out of byte order, listings
//! failing for good, and listings held before or after the emulator
//! answered, each limited to one bucket and prefix.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use common::{Oss, client, emulator, put, s3_code};
use ossbridge_testkit::s3_proxy::HoldListing;
use ossbridge_testkit::{LocalAws, S3Proxy, unique_name};

const KEYS: [&str; 6] = ["a/1", "a/2", "a/3", "a/4", "b/1", "b/2"];

/// A path-style proxy (S3 mode) and a bucket holding [`KEYS`].
async fn destination() -> Result<(S3Proxy, aws_sdk_s3::Client, String)> {
    let endpoint = emulator().await?;
    let aws = LocalAws::connect(&endpoint).await;
    let bucket = unique_name("lst");
    aws.create_bucket(&bucket).await?;
    let proxy = S3Proxy::start(&endpoint).await?;
    let s3 = client(&aws, &proxy.endpoint(), true, "testing");
    for key in KEYS {
        put(&s3, &bucket, key, b"x").await?;
    }
    Ok((proxy, s3, bucket))
}

async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<ListObjectsV2Output> {
    Ok(s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await?)
}

fn keys(page: &ListObjectsV2Output) -> Vec<&str> {
    page.contents().iter().filter_map(|o| o.key()).collect()
}

fn is_whole(page: &ListObjectsV2Output) -> bool {
    page.is_truncated() != Some(true) && page.next_continuation_token().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_listings_carry_no_token_and_half_the_objects() -> Result<()> {
    let (proxy, s3, bucket) = destination().await?;
    proxy.truncate_listings_without_token(&bucket, "");
    let page = list(&s3, &bucket, "").await?;
    assert_eq!(page.is_truncated(), Some(true));
    assert!(page.next_continuation_token().is_none());
    assert_eq!(keys(&page), ["a/1", "a/2", "a/3"]);
    assert_eq!(page.key_count(), Some(3));
    // Persistent.
    let page = list(&s3, &bucket, "b/").await?;
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(keys(&page), ["b/1"]);
    assert_eq!(proxy.injected("listing_truncated"), 2);

    proxy.clear_listing_faults();
    let page = list(&s3, &bucket, "").await?;
    assert!(is_whole(&page));
    assert_eq!(keys(&page), KEYS);
    assert_eq!(proxy.injected("listing_truncated"), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsorted_listings_swap_their_first_two_objects() -> Result<()> {
    let (proxy, s3, bucket) = destination().await?;
    proxy.unsort_listings(&bucket, "");
    let page = list(&s3, &bucket, "").await?;
    assert!(is_whole(&page));
    assert_eq!(keys(&page), ["a/2", "a/1", "a/3", "a/4", "b/1", "b/2"]);
    assert_eq!(proxy.injected("listing_unsorted"), 1);
    proxy.clear_listing_faults();
    assert_eq!(keys(&list(&s3, &bucket, "").await?), KEYS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_listings_fail_for_good_without_reaching_the_emulator() -> Result<()> {
    let (proxy, s3, bucket) = destination().await?;
    proxy.fail_listings(&bucket, "");
    let failed = s3.list_objects_v2().bucket(&bucket).send().await;
    assert_eq!(s3_code(failed), (500, "InternalError".into()));
    // Each of the SDK's attempts (it retries a 500) was answered so.
    let attempts = proxy.injected("listing_failed");
    assert!(attempts > 1, "{attempts} attempts");
    // Other requests go through.
    s3.head_object().bucket(&bucket).key("a/1").send().await?;
    proxy.clear_listing_faults();
    assert_eq!(keys(&list(&s3, &bucket, "").await?), KEYS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_apply_only_to_their_bucket_and_prefix() -> Result<()> {
    let (proxy, s3, bucket) = destination().await?;
    proxy.truncate_listings_without_token(&bucket, "a/");
    proxy.fail_listings(&bucket, "b/1");
    proxy.unsort_listings("another-bucket", "");
    // Prefix "a/" and longer prefixes under it.
    let page = list(&s3, &bucket, "a/").await?;
    assert_eq!(
        (page.is_truncated(), keys(&page)),
        (Some(true), vec!["a/1", "a/2"])
    );
    assert_eq!(keys(&list(&s3, &bucket, "a/3").await?), ["a/3"]);
    assert_eq!(proxy.injected("listing_truncated"), 2);
    // Shorter or other prefixes are not affected.
    let page = list(&s3, &bucket, "").await?;
    assert!(is_whole(&page));
    assert_eq!(keys(&page), KEYS);
    let page = list(&s3, &bucket, "b/").await?;
    assert!(is_whole(&page));
    assert_eq!(keys(&page), ["b/1", "b/2"]);
    let failed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("b/1")
        .send()
        .await;
    assert_eq!(s3_code(failed).0, 500);
    assert_eq!(proxy.injected("listing_truncated"), 2);
    assert_eq!(proxy.injected("listing_unsorted"), 0);
    Ok(())
}

/// Waits until `count` listings are held.
async fn until_held(proxy: &S3Proxy, count: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.held_listings() != count {
        if Instant::now() > deadline {
            bail!("{} listings held, not {count}", proxy.held_listings());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A listing held at `when` while `late` is written; the keys it answers.
async fn listed_around_a_write(when: HoldListing, late: &str) -> Result<Vec<String>> {
    let (proxy, s3, bucket) = destination().await?;
    proxy.hold_listings(&bucket, "", when);
    // Requests other than listings are not held.
    s3.head_object().bucket(&bucket).key("a/1").send().await?;
    let listing = tokio::spawn({
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move { list(&s3, &bucket, "").await }
    });
    until_held(&proxy, 1).await?;
    put(&s3, &bucket, late, b"late").await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !listing.is_finished(),
        "the listing went through while held"
    );
    assert_eq!(proxy.injected("listing_held"), 1);
    proxy.release_held_listings();
    let page = listing.await?.context("the held listing")?;
    assert_eq!(proxy.held_listings(), 0);
    // Released for good: later listings see the write at once.
    let later = list(&s3, &bucket, "").await?;
    assert!(keys(&later).contains(&late));
    assert_eq!(proxy.injected("listing_held"), 1);
    Ok(keys(&page).into_iter().map(str::to_owned).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_held_before_forwarding_see_the_store_as_released() -> Result<()> {
    let listed = listed_around_a_write(HoldListing::BeforeForwarding, "a/5").await?;
    assert!(listed.iter().any(|k| k == "a/5"), "{listed:?}");
    assert_eq!(listed.len(), KEYS.len() + 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_held_after_the_answer_see_the_store_as_it_was() -> Result<()> {
    let listed = listed_around_a_write(HoldListing::AfterAnswer, "a/5").await?;
    assert_eq!(listed, KEYS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_listings_are_broken_after_their_oss_rewrite() -> Result<()> {
    let oss = Oss::start().await?;
    for key in KEYS {
        put(&oss.s3, &oss.bucket, key, b"x").await?;
    }
    oss.proxy.truncate_listings_without_token(&oss.bucket, "");
    let page = list(&oss.s3, &oss.bucket, "").await?;
    assert_eq!(page.is_truncated(), Some(true));
    assert!(page.next_continuation_token().is_none());
    assert_eq!(keys(&page), ["a/1", "a/2", "a/3"]);
    // OSS's ETags: the OSS rewrite ran on the objects kept.
    for object in page.contents() {
        let etag = object.e_tag().context("ETag")?;
        assert_eq!(etag, etag.to_uppercase());
    }
    assert_eq!(oss.proxy.injected("listing_truncated"), 1);

    oss.proxy.clear_listing_faults();
    oss.proxy.unsort_listings(&oss.bucket, "a/");
    assert_eq!(
        keys(&list(&oss.s3, &oss.bucket, "a/").await?),
        ["a/2", "a/1", "a/3", "a/4"]
    );
    oss.proxy.clear_listing_faults();

    oss.proxy.fail_listings(&oss.bucket, "");
    let response = oss.raw(reqwest::Method::GET, "?list-type=2").send().await?;
    assert_eq!(response.status(), 500);
    assert!(response.headers().contains_key("x-oss-request-id"));
    let body = response.text().await?;
    assert!(body.contains("<Code>InternalError</Code>"), "{body}");
    assert!(body.contains("<HostId>"), "OSS's error body: {body}");
    Ok(())
}
