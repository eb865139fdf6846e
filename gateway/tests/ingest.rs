//! `POST /v1/ingest/{source}` against a real SQS (moto): what is accepted
//! lands on the queue, what is refused leaves it empty.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{Gateway, reason};
use ossbridge_message::{Operation, QueueMessage};
use ossbridge_testkit::fixtures;
use ossbridge_testkit::webhook::{self, Signer};

#[tokio::test]
async fn accepted_events_reach_the_queue_with_their_raw_keys() -> Result<()> {
    let gw = Gateway::start().await?;
    let body = fixtures::read("oss-events/tricky-keys.json")?;
    let response = gw.post_signed(&body).await?;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await?;
    assert_eq!(
        answer,
        serde_json::json!({"events": 3, "enqueued": 3, "ignored": 0, "filtered": 0, "duplicates": 0})
    );

    let fixture: serde_json::Value = serde_json::from_str(&body)?;
    let mut expected: Vec<String> = fixture["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            e["oss"]["object"]["key"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let bodies = gw.aws.drain(&gw.queue_url).await?;
    assert!(bodies.iter().all(|b| !b.contains("eventSource")));
    let mut messages: Vec<QueueMessage> = bodies
        .iter()
        .map(|b| QueueMessage::from_body(b))
        .collect::<Result<_, _>>()?;
    let mut keys: Vec<String> = messages.iter().map(|m| m.key.clone()).collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    messages.sort_by(|a, b| a.key.cmp(&b.key));
    let m = messages
        .iter()
        .find(|m| m.key.starts_with("报告"))
        .expect("CJK key");
    assert_eq!(m.op, Operation::Copy);
    assert_eq!(m.bucket, "media-prod");
    assert_eq!(m.region, "cn-hangzhou");
    assert_eq!(m.e_tag, "5D41402ABC4B2A76B9719D911017C592");
    assert_eq!(m.event_name, "ObjectCreated:PutObject");
    assert_eq!(m.event_time, "2026-11-20T11:00:00.000Z");
    assert_eq!(m.source_id, common::SOURCE);
    assert_eq!(
        m.idempotency_key,
        ossbridge_message::idempotency_key(
            "media-prod",
            &m.key,
            "5D41402ABC4B2A76B9719D911017C592",
            "ObjectCreated:PutObject",
            "673DC0000000000000000001"
        )
    );
    Ok(())
}

#[tokio::test]
async fn events_that_change_nothing_are_accepted_but_not_enqueued() -> Result<()> {
    let gw = Gateway::start().await?;
    for fixture in ["oss-events/delete-object.json"] {
        let response = gw.post_signed(&fixtures::read(fixture)?).await?;
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await?;
        assert_eq!(answer["enqueued"], 0, "{fixture}");
        assert_eq!(answer["ignored"], 1, "{fixture}");
    }
    let part = fixtures::read("oss-events/put-object.json")?
        .replace("ObjectCreated:PutObject", "ObjectCreated:UploadPart");
    let answer: serde_json::Value = gw.post_signed(&part).await?.json().await?;
    assert_eq!(answer["ignored"], 1);
    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn tampered_wrongly_signed_and_stale_requests_get_401_and_enqueue_nothing() -> Result<()> {
    let gw = Gateway::start().await?;
    let body = fixtures::read("oss-events/put-object.json")?;
    let now = webhook::now();

    let tampered_headers = gw.signer.headers("msg_1", now, body.as_bytes());
    let tampered = body.replace("IMG_0042", "IMG_0043");
    let r = gw.post(&tampered, &tampered_headers).await?;
    assert_eq!(r.status(), 401);
    assert_eq!(reason(r).await?, "signature mismatch");

    let stranger = Signer::generate("someone else");
    let r = gw
        .post(&body, &stranger.headers("msg_2", now, body.as_bytes()))
        .await?;
    assert_eq!(r.status(), 401);
    assert_eq!(reason(r).await?, "signature mismatch");

    let ten_minutes_ago = now - 600;
    let r = gw
        .post(
            &body,
            &gw.signer.headers("msg_3", ten_minutes_ago, body.as_bytes()),
        )
        .await?;
    assert_eq!(r.status(), 401);
    assert_eq!(reason(r).await?, "timestamp outside the allowed window");

    let r = gw.post(&body, &[]).await?;
    assert_eq!(r.status(), 401);
    assert_eq!(reason(r).await?, "missing webhook-id header");

    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn unknown_sources_oversize_and_malformed_bodies_are_refused() -> Result<()> {
    let gw = Gateway::start_with("[limits]\nmax_body_bytes = 4096\n").await?;

    let r = gw
        .http
        .post(gw.url("/v1/ingest/nobody"))
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    assert_eq!(reason(r).await?, "unknown source");

    let big = "x".repeat(5000);
    let r = gw.post_signed(&big).await?;
    assert_eq!(r.status(), 413);
    assert_eq!(reason(r).await?, "body exceeds 4096 bytes");

    let r = gw.post_signed(r#"{"events":[{"eventName":1}]}"#).await?;
    assert_eq!(r.status(), 400);
    let why = reason(r).await?;
    assert!(
        why.starts_with("body is not an OSS event notification"),
        "{why}"
    );

    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));
    Ok(())
}

#[tokio::test]
async fn with_the_emulator_stopped_the_gateway_answers_503() -> Result<()> {
    let mut gw = Gateway::start().await?;
    // Reachable first, so the 503 below is about SQS, not configuration.
    let ok = gw
        .post_signed(&fixtures::read("oss-events/put-object.json")?)
        .await?;
    assert_eq!(ok.status(), 200);

    gw.emulator.stop();
    let r = gw
        .post_signed(&fixtures::read("oss-events/complete-multipart.json")?)
        .await?;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(reason(r).await?, "queue unavailable, retry later");
    Ok(())
}

#[tokio::test]
async fn healthz_answers_and_shutdown_stops_the_server() -> Result<()> {
    let gw = Gateway::start().await?;
    let r = gw.http.get(gw.url("/healthz")).send().await?;
    assert_eq!(r.status(), 200);
    let (http, url) = (gw.http.clone(), gw.url("/healthz"));
    gw.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), gw.server).await???;
    assert!(http.get(url).send().await.is_err());
    Ok(())
}

#[tokio::test]
async fn each_source_names_its_own_queue() -> Result<()> {
    let gw = Gateway::start_custom(|queue_url, signer| {
        // The second queue is created below, after start; SQS URLs are
        // predictable, so its URL is known in advance.
        let other = queue_url.replace("ingest-", "other-");
        format!(
            "[sources.a]\nqueue_url = \"{queue_url}\"\n[sources.a.verifier]\n\
             type = \"standard_webhooks\"\nsecrets = [\"{s}\"]\n\
             [sources.b]\nqueue_url = \"{other}\"\n[sources.b.verifier]\n\
             type = \"standard_webhooks\"\nsecrets = [\"{s}\"]\n",
            s = signer.secret()
        )
    })
    .await?;
    let other_name = gw
        .queue_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .replace("ingest-", "other-");
    let other_url = gw.aws.create_queue(&other_name, &[]).await?;
    for (source, key) in [("a", "to/a"), ("b", "to/b")] {
        let body = fixtures::oss_event("oss-events/put-object.json", "media-prod", &[(key, b"x")])?;
        let headers: Vec<(String, String)> = gw
            .signer
            .headers(
                &ossbridge_testkit::unique_name("m"),
                webhook::now(),
                body.as_bytes(),
            )
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let r = gw
            .post_to(&format!("/v1/ingest/{source}"), &body, &headers)
            .await?;
        assert_eq!(r.status(), 200, "{source}");
    }
    assert_eq!(gw.drained_keys().await?, ["to/a"]);
    let on_other: Vec<String> = gw
        .aws
        .drain(&other_url)
        .await?
        .iter()
        .map(|b| QueueMessage::from_body(b).map(|m| m.key))
        .collect::<Result<_, _>>()?;
    assert_eq!(on_other, ["to/b"]);
    Ok(())
}

#[tokio::test]
async fn secrets_are_read_from_ssm_and_files_at_start() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(ossbridge_testkit::Emulator::start).await??;
    let aws = ossbridge_testkit::LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws
        .create_queue(&ossbridge_testkit::unique_name("secrets"), &[])
        .await?;
    let from_ssm = Signer::generate("ssm");
    let from_file = Signer::generate("file");
    aws.ssm
        .put_parameter()
        .name("/ossbridge/test/webhook-secrets")
        .value(format!("# current\n{}\n", from_ssm.secret()))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("secrets");
    std::fs::write(&file, format!("[\"{}\"]", from_file.secret()))?;
    let sdk = aws.sdk.clone();
    let path = file.display().to_string();
    let gw = Gateway::start_on(emulator, aws, queue_url, sdk, |queue_url, _| {
        format!(
            "[sources.ssm]\nqueue_url = \"{queue_url}\"\n[sources.ssm.verifier]\n\
             type = \"standard_webhooks\"\nsecrets = {{ ssm_parameter = \"/ossbridge/test/webhook-secrets\" }}\n\
             [sources.file]\nqueue_url = \"{queue_url}\"\n[sources.file.verifier]\n\
             type = \"standard_webhooks\"\nsecrets = {{ file = \"{path}\" }}\n"
        )
    })
    .await?;
    for (source, signer) in [("ssm", &from_ssm), ("file", &from_file)] {
        let body = fixtures::oss_event(
            "oss-events/put-object.json",
            "media-prod",
            &[(source, b"x")],
        )?;
        let headers: Vec<(String, String)> = signer
            .headers("m", webhook::now(), body.as_bytes())
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let r = gw
            .post_to(&format!("/v1/ingest/{source}"), &body, &headers)
            .await?;
        assert_eq!(r.status(), 200, "{source}");
    }
    assert_eq!(gw.drained_keys().await?, ["file", "ssm"]);
    Ok(())
}
