//! Deduplication is scoped by destination queue, and deliberate resends
//! are never swallowed by SQS's FIFO deduplication: the same event sent to
//! two sources with different queues reaches both; a redrive from a FIFO
//! dead-letter queue inside the five-minute deduplication window of the
//! original send still ends with the message on the queue.

mod common;

use anyhow::Result;
use aws_sdk_sqs::types::QueueAttributeName;
use common::Gateway;
use common::cli::{args, config_file, event, events, gateway_cli};
use ossbridge_message::QueueMessage;
use ossbridge_testkit::{Emulator, FaultProxy, LocalAws, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_for_two_queues_reaches_both_and_one_queue_once() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let (q1, q2) = (
        aws.create_queue(&unique_name("a"), &[]).await?,
        aws.create_queue(&unique_name("b"), &[]).await?,
    );
    let sdk = aws.sdk.clone();
    let queue_two = q2.clone();
    let gw = Gateway::start_on(emulator, aws, q1.clone(), sdk, move |q1, signer| {
        let source = |id: &str, queue: &str| {
            format!(
                "[sources.{id}]\nqueue_url = \"{queue}\"\n\
                 [sources.{id}.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"{}\"]\n",
                signer.secret()
            )
        };
        // `mirror` shares the first source's queue; `backup` has its own.
        format!(
            "{}{}{}",
            source("primary", q1),
            source("mirror", q1),
            source("backup", &queue_two)
        )
    })
    .await?;
    let body = events(&[&event("reports/q3.pdf")?]);
    let mut answers = Vec::new();
    for source in ["primary", "backup", "mirror"] {
        let response = gw
            .post_signed_to(&format!("/v1/ingest/{source}"), &body)
            .await?;
        assert_eq!(response.status(), 200, "{source}");
        let json: serde_json::Value = response.json().await?;
        answers.push((json["enqueued"].clone(), json["duplicates"].clone()));
    }
    assert_eq!(answers[0], (1.into(), 0.into()), "primary");
    assert_eq!(answers[1], (1.into(), 0.into()), "backup: its own queue");
    assert_eq!(
        answers[2],
        (0.into(), 1.into()),
        "mirror: primary's queue has it"
    );
    for queue in [&q1, &q2] {
        let bodies = gw.aws.drain(queue).await?;
        assert_eq!(bodies.len(), 1, "{queue}: {bodies:?}");
        assert_eq!(QueueMessage::from_body(&bodies[0])?.key, "reports/q3.pdf");
    }
    Ok(())
}

/// A FIFO queue whose messages move to a FIFO dead-letter queue after one
/// receive.
async fn fifo_with_dlq(aws: &LocalAws) -> Result<(String, String)> {
    let fifo = |visibility: &str| {
        vec![
            (QueueAttributeName::FifoQueue, "true".to_owned()),
            (QueueAttributeName::VisibilityTimeout, visibility.to_owned()),
        ]
    };
    let name = unique_name("jobs");
    let dlq = aws
        .create_queue(&format!("{name}-dlq.fifo"), &fifo("30"))
        .await?;
    let dlq_arn = aws.queue_arn(&dlq).await?;
    let mut attributes = fifo("0");
    attributes.push((
        QueueAttributeName::RedrivePolicy,
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"1"}}"#),
    ));
    let queue = aws
        .create_queue(&format!("{name}.fifo"), &attributes)
        .await?;
    Ok((queue, dlq))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_redrive_inside_the_deduplication_window_is_not_swallowed() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let (queue, dlq) = fifo_with_dlq(&aws).await?;
    // Every send goes through the proxy, which keeps SQS's five-minute
    // deduplication window (moto forgets an id once its message is gone).
    let sqs = FaultProxy::start(&emulator.endpoint()).await?;
    let via_proxy = LocalAws::connect(&sqs.endpoint()).await;
    // Sent as the gateway sends it: grouped by object, deduplicated by
    // its idempotency key.
    via_proxy
        .sqs
        .send_message()
        .queue_url(&queue)
        .message_body(r#"{"key":"dead/1.bin","size":1}"#)
        .message_group_id("g")
        .message_deduplication_id("idempotency-key-of-the-event")
        .send()
        .await?;
    // A worker receives it and fails (visibility 0); the next receive
    // finds it moved to the dead-letter queue by the redrive policy.
    for _ in 0..2 {
        aws.sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await?;
    }
    assert_eq!(aws.queue_depth(&queue).await?, (0, 0));
    assert_eq!(aws.queue_depth(&dlq).await?, (1, 0), "moved to the DLQ");

    // Seconds after the original send, well inside SQS's five minutes.
    let config = config_file(&sqs.endpoint(), "media", &queue, "")?;
    let config_path = config.path().display().to_string();
    let run = gateway_cli(
        args(&[
            "replay",
            "--config",
            &config_path,
            "--from-dlq",
            &dlq,
            "--to",
            &queue,
        ]),
        "",
    )
    .await?;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.summary()?["moved"], 1, "{}", run.stdout);
    let back = aws.drain(&queue).await?;
    assert_eq!(back, vec![r#"{"key":"dead/1.bin","size":1}"#.to_owned()]);
    assert_eq!(aws.queue_depth(&dlq).await?, (0, 0));
    Ok(())
}
