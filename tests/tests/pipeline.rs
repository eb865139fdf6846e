//! End to end through real processes: moto (S3, SQS, SSM), the gateway
//! binary and the transfer binary.

use std::time::Duration;

use anyhow::{Result, ensure};
use ossbridge_testkit::{Pipeline, fixtures};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_oss_event_is_copied_byte_identical_and_the_queue_drains() -> Result<()> {
    let pipeline = Pipeline::start(true).await?;
    let key = "photos/2026/11/20/IMG_0042.jpg";
    let bytes = fixtures::bytes(122_539, 7);
    pipeline
        .aws
        .put_object(&pipeline.source_bucket, key, bytes.clone())
        .await?;

    let body = fixtures::oss_event(
        "oss-events/put-object.json",
        &pipeline.source_bucket,
        &[(key, &bytes)],
    )?;
    let response = pipeline.post_signed(&body).await?;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await?;
    assert_eq!(answer["enqueued"], 1, "{answer}");

    pipeline.expect_copied(key, &bytes, WAIT).await?;
    assert_eq!(pipeline.aws.queue_depth(&pipeline.dlq_url).await?, (0, 0));
    pipeline.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tricky_keys_and_a_zero_byte_object_are_copied_under_their_raw_keys() -> Result<()> {
    let pipeline = Pipeline::start(true).await?;
    let fixture: serde_json::Value =
        serde_json::from_str(&fixtures::read("oss-events/tricky-keys.json")?)?;
    let mut objects = Vec::new();
    for (i, event) in fixture["events"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = event["oss"]["object"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let size = event["oss"]["object"]["size"].as_u64().unwrap_or_default() as usize;
        objects.push((key, fixtures::bytes(size, i as u64 + 1)));
    }
    assert!(
        objects.iter().any(|(_, b)| b.is_empty()),
        "fixture has a zero-byte object"
    );
    for (key, bytes) in &objects {
        pipeline
            .aws
            .put_object(&pipeline.source_bucket, key, bytes.clone())
            .await?;
    }
    let refs: Vec<(&str, &[u8])> = objects
        .iter()
        .map(|(k, b)| (k.as_str(), b.as_slice()))
        .collect();
    let body = fixtures::oss_event(
        "oss-events/tricky-keys.json",
        &pipeline.source_bucket,
        &refs,
    )?;
    let response = pipeline.post_signed(&body).await?;
    assert_eq!(response.status(), 200);

    for (key, bytes) in &objects {
        let copied = pipeline
            .aws
            .wait_for_object(&pipeline.destination_bucket, key, WAIT)
            .await?;
        ensure!(&copied == bytes, "{key:?} differs");
    }
    pipeline
        .aws
        .wait_until_empty(&pipeline.queue_url, WAIT)
        .await?;
    pipeline.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_transfer_hub_message_put_on_the_queue_is_copied() -> Result<()> {
    let pipeline = Pipeline::start(true).await?;
    let fixture: serde_json::Value =
        serde_json::from_str(&fixtures::read("queue-messages/dth-minimal.json")?)?;
    let key = fixture["key"].as_str().unwrap_or_default();
    let size = fixture["size"].as_u64().unwrap_or_default() as usize;
    let bytes = fixtures::bytes(size, 3);
    pipeline
        .aws
        .put_object(&pipeline.source_bucket, key, bytes.clone())
        .await?;

    pipeline
        .aws
        .sqs
        .send_message()
        .queue_url(&pipeline.queue_url)
        .message_body(fixture.to_string())
        .send()
        .await?;

    pipeline.expect_copied(key, &bytes, WAIT).await?;
    pipeline.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transfer_refuses_to_start_without_readable_oss_keys_and_names_the_parameter()
-> Result<()> {
    let mut pipeline = Pipeline::start(false).await?;
    pipeline.parameter = "/ossbridge/no-such-parameter".into();
    let err = pipeline.start_transfer().await.expect_err("must not start");
    let msg = format!("{err:#}");
    assert!(msg.contains("exited with"), "{msg}");
    assert!(msg.contains("/ossbridge/no-such-parameter"), "{msg}");

    // A parameter that exists but is not the {"access_key_id", ...} JSON.
    pipeline
        .aws
        .ssm
        .put_parameter()
        .name("/ossbridge/not-json")
        .value("AKID:SECRET")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await?;
    pipeline.parameter = "/ossbridge/not-json".into();
    let msg = format!(
        "{:#}",
        pipeline.start_transfer().await.expect_err("must not start")
    );
    assert!(
        msg.contains("/ossbridge/not-json") && msg.contains("access_key_id"),
        "{msg}"
    );
    assert!(!msg.contains("SECRET"), "secret leaked: {msg}");
    Ok(())
}
