//! Standard Webhooks, GitHub-style HMAC and EventBridge (API key, basic
//! auth, CloudEvents) against the gateway and SQS (moto), with every
//! signature produced by independent, widely used code: the PyPI
//! `standardwebhooks` package, the npm `@octokit/webhooks-methods` package
//! and node:crypto.

mod common;

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Gateway, reason};
use ossbridge_testkit::webhook::now;
use ossbridge_testkit::{fixtures, tools, unique_name};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";

fn put_event(key: &str) -> Result<String> {
    fixtures::oss_event(
        "oss-events/put-object.json",
        "media-prod",
        &[(key, b"hello")],
    )
}

fn h(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

#[tokio::test]
async fn standard_webhooks_from_the_reference_library_with_rotated_secrets() -> Result<()> {
    let old = "whsec_b2xkLXNlY3JldC1rZXktZm9yLXRlc3Rz";
    let new = "whsec_bmV3LXNlY3JldC1rZXktZm9yLXRlc3Rz";
    let gw = Gateway::start_custom(|queue_url, _| {
        format!(
            "[sources.sw]\nqueue_url = \"{queue_url}\"\n[sources.sw.verifier]\n\
             type = \"standard_webhooks\"\nsecrets = [\"{new}\", \"{old}\"]\n"
        )
    })
    .await?;
    for (secret, key) in [(old, "a/old.txt"), (new, "a/new.txt")] {
        let body = put_event(key)?;
        let id = unique_name("msg");
        // One timestamp for the signature and the header: two calls could
        // straddle a second and sign a different time than the one sent.
        let sent_at = now();
        let sig = tools::standard_webhooks_signature(secret, &id, sent_at, body.as_bytes()).await?;
        let headers = [
            h("webhook-id", &id),
            h("webhook-timestamp", sent_at.to_string()),
            h("webhook-signature", sig),
        ];
        let r = gw.post_to("/v1/ingest/sw", &body, &headers).await?;
        assert_eq!(r.status(), 200, "{secret}");
    }
    let body = put_event("a/refused.txt")?;
    for (ts, why) in [
        (now() - 600, "timestamp outside the allowed window"),
        (now() + 600, "timestamp outside the allowed window"),
    ] {
        let sig = tools::standard_webhooks_signature(new, "m1", ts, body.as_bytes()).await?;
        let headers = [
            h("webhook-id", "m1"),
            h("webhook-timestamp", ts.to_string()),
            h("webhook-signature", sig),
        ];
        let r = gw.post_to("/v1/ingest/sw", &body, &headers).await?;
        assert_eq!((r.status().as_u16(), reason(r).await?.as_str()), (401, why));
    }
    let stranger = "whsec_c3RyYW5nZXItc2VjcmV0LWtleQ==";
    let sent_at = now();
    let sig = tools::standard_webhooks_signature(stranger, "m2", sent_at, body.as_bytes()).await?;
    let headers = [
        h("webhook-id", "m2"),
        h("webhook-timestamp", sent_at.to_string()),
        h("webhook-signature", sig),
    ];
    let r = gw.post_to("/v1/ingest/sw", &body, &headers).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "signature mismatch")
    );

    let keys = gw.drained_keys().await?;
    assert_eq!(keys, ["a/new.txt", "a/old.txt"]);
    Ok(())
}

#[tokio::test]
async fn github_style_signatures_from_octokit_and_node_crypto() -> Result<()> {
    let gw = Gateway::start_custom(|queue_url, _| {
        format!(
            "[sources.gh256]\nqueue_url = \"{queue_url}\"\n[sources.gh256.verifier]\n\
             type = \"hmac\"\nsecrets = [\"{GITHUB_SECRET}\"]\n\
             [sources.gh1]\nqueue_url = \"{queue_url}\"\n[sources.gh1.verifier]\n\
             type = \"hmac\"\nalgorithm = \"sha1\"\nsecrets = [\"{GITHUB_SECRET}\"]\n\
             [sources.ghts]\nqueue_url = \"{queue_url}\"\n[sources.ghts.verifier]\n\
             type = \"hmac\"\nsecrets = [\"{GITHUB_SECRET}\"]\ntimestamp_header = \"X-Signature-Timestamp\"\n"
        )
    })
    .await?;
    let body = put_event("gh/sha256.txt")?;
    let sig = tools::github_signature(GITHUB_SECRET, "sha256", None, body.as_bytes()).await?;
    let r = gw
        .post_to("/v1/ingest/gh256", &body, &[h("X-Hub-Signature-256", &sig)])
        .await?;
    assert_eq!(r.status(), 200);

    let body = put_event("gh/sha1.txt")?;
    let sig = tools::github_signature(GITHUB_SECRET, "sha1", None, body.as_bytes()).await?;
    let r = gw
        .post_to("/v1/ingest/gh1", &body, &[h("X-Hub-Signature", &sig)])
        .await?;
    assert_eq!(r.status(), 200);

    let body = put_event("gh/timestamped.txt")?;
    let ts = now();
    let sig = tools::github_signature(GITHUB_SECRET, "sha256", Some(ts), body.as_bytes()).await?;
    let headers = [
        h("X-Hub-Signature-256", &sig),
        h("X-Signature-Timestamp", ts.to_string()),
    ];
    let r = gw.post_to("/v1/ingest/ghts", &body, &headers).await?;
    assert_eq!(r.status(), 200);

    // Refusals: another key, a tampered body, a replay of a timestamped
    // request an hour later, a missing header.
    let refused = put_event("gh/refused.txt")?;
    let wrong =
        tools::github_signature("not the secret", "sha256", None, refused.as_bytes()).await?;
    let r = gw
        .post_to(
            "/v1/ingest/gh256",
            &refused,
            &[h("X-Hub-Signature-256", &wrong)],
        )
        .await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "signature mismatch")
    );
    let good = tools::github_signature(GITHUB_SECRET, "sha256", None, refused.as_bytes()).await?;
    let r = gw
        .post_to(
            "/v1/ingest/gh256",
            &refused.replace("refused", "tampered"),
            &[h("X-Hub-Signature-256", &good)],
        )
        .await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "signature mismatch")
    );
    let old = now() - 3600;
    let sig =
        tools::github_signature(GITHUB_SECRET, "sha256", Some(old), refused.as_bytes()).await?;
    let headers = [
        h("X-Hub-Signature-256", &sig),
        h("X-Signature-Timestamp", old.to_string()),
    ];
    let r = gw.post_to("/v1/ingest/ghts", &refused, &headers).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "timestamp outside the allowed window")
    );
    let r = gw.post_to("/v1/ingest/gh1", &refused, &[]).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "missing x-hub-signature header")
    );

    let keys = gw.drained_keys().await?;
    assert_eq!(keys, ["gh/sha1.txt", "gh/sha256.txt", "gh/timestamped.txt"]);
    Ok(())
}

#[tokio::test]
async fn eventbridge_cloudevents_with_api_keys_or_basic_auth() -> Result<()> {
    let gw = Gateway::start_custom(|queue_url, _| {
        format!(
            "[sources.eb_key]\nqueue_url = \"{queue_url}\"\n[sources.eb_key.verifier]\n\
             type = \"api_key\"\nheader = \"X-Api-Key\"\nkeys = [\"key-new\", \"key-old\"]\n\
             [sources.eb_basic]\nqueue_url = \"{queue_url}\"\n[sources.eb_basic.verifier]\n\
             type = \"basic_auth\"\nusername = \"eventbridge\"\npasswords = [\"pw\"]\n"
        )
    })
    .await?;
    let cloudevent = fixtures::read("eventbridge/cloudevent-put.json")?;
    let basic = |user: &str, pw: &str| format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")));

    let r = gw
        .post_to(
            "/v1/ingest/eb_key",
            &cloudevent,
            &[h("X-Api-Key", "key-old")],
        )
        .await?;
    assert_eq!(r.status(), 200);
    let second = cloudevent
        .replace("IMG_0042", "IMG_0043")
        .replace("673D9A1E5B2C4F0012A3B4C5", "REQ2");
    let r = gw
        .post_to(
            "/v1/ingest/eb_basic",
            &second,
            &[h("Authorization", basic("eventbridge", "pw"))],
        )
        .await?;
    assert_eq!(r.status(), 200);

    let r = gw
        .post_to(
            "/v1/ingest/eb_key",
            &cloudevent,
            &[h("X-Api-Key", "key-guess")],
        )
        .await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "bad credentials")
    );
    let r = gw
        .post_to(
            "/v1/ingest/eb_basic",
            &cloudevent,
            &[h("Authorization", basic("eventbridge", "nope"))],
        )
        .await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "bad credentials")
    );
    let r = gw
        .post_to(
            "/v1/ingest/eb_key",
            "{\"specversion\":\"1.0\",\"data\":{}}",
            &[h("X-Api-Key", "key-new")],
        )
        .await?;
    assert_eq!(r.status(), 400);
    assert!(reason(r).await?.starts_with("body is not a CloudEvent"));

    // The same event delivered twice (EventBridge duplicates) is enqueued
    // once.
    let r = gw
        .post_to(
            "/v1/ingest/eb_key",
            &cloudevent,
            &[h("X-Api-Key", "key-new")],
        )
        .await?;
    let answer: serde_json::Value = r.json().await?;
    assert_eq!(
        (answer["enqueued"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(1))
    );

    let keys = gw.drained_keys().await?;
    assert_eq!(
        keys,
        [
            "photos/2026/11/20/IMG_0042.jpg",
            "photos/2026/11/20/IMG_0043.jpg"
        ]
    );
    Ok(())
}
