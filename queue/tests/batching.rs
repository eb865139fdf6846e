//! The shared sender and deleter against SQS (moto), with a fault proxy
//! that counts calls and fails chosen entries.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use ossbridge_message::{CONTRACT_VERSION, Operation, QueueMessage, idempotency_key};
use ossbridge_queue::limits::MAX_MESSAGE_BYTES;
use ossbridge_queue::{
    BatchDeleter, BatchError, BatchSender, BatchSettings, Entry, NoObserver, fifo,
    request_copy_attributes,
};
use ossbridge_testkit::{Emulator, FaultProxy, LocalAws, unique_name};

const DELETE_BATCH: &str = "AmazonSQS.DeleteMessageBatch";
const SEND_BATCH: &str = "AmazonSQS.SendMessageBatch";

fn job(bucket: &str, key: &str, request_id: &str) -> QueueMessage {
    QueueMessage {
        key: key.to_owned(),
        size: 1,
        version: CONTRACT_VERSION,
        op: Operation::Copy,
        bucket: bucket.to_owned(),
        region: "cn-hangzhou".to_owned(),
        e_tag: "etag".to_owned(),
        event_name: "ObjectCreated:PutObject".to_owned(),
        event_time: String::new(),
        request_id: request_id.to_owned(),
        source_id: "test".to_owned(),
        idempotency_key: idempotency_key(
            bucket,
            key,
            "etag",
            "ObjectCreated:PutObject",
            request_id,
        ),
    }
}

fn settings() -> BatchSettings {
    BatchSettings {
        linger: std::time::Duration::from_millis(50),
        ..BatchSettings::default()
    }
}

async fn create_fifo(aws: &LocalAws) -> Result<String> {
    aws.create_queue(
        &format!("{}.fifo", unique_name("q")),
        &[(QueueAttributeName::FifoQueue, "true".to_owned())],
    )
    .await
}

/// Receives up to 10 messages with everything a copy needs.
async fn receive(aws: &LocalAws, queue_url: &str) -> Result<Vec<Message>> {
    let receive = aws
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1);
    Ok(request_copy_attributes(receive)
        .send()
        .await?
        .messages
        .unwrap_or_default())
}

fn system(m: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    m.attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_queue_gets_object_groups_and_a_handed_back_message_survives() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = create_fifo(&aws).await?;
    let (sender, task) = BatchSender::spawn(
        aws.sqs.clone(),
        &queue_url,
        &settings(),
        Arc::new(NoObserver),
    );
    ensure!(sender.is_fifo());

    // Three objects; the first event delivered twice (same idempotency
    // key): SQS keeps one message for it.
    let jobs = [
        job("media", "a", "r1"),
        job("media", "b", "r1"),
        job("media", "c", "r1"),
    ];
    let mut entries: Vec<Entry> = jobs.iter().map(|j| Entry::for_message(j, true)).collect();
    entries.push(Entry::for_message(&jobs[0], true));
    sender.submit_all(entries).await?;
    let mut seen = Vec::new();
    loop {
        let batch = receive(&aws, &queue_url).await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let job = QueueMessage::from_body(m.body().unwrap_or_default())?;
            let group = system(&m, MessageSystemAttributeName::MessageGroupId);
            ensure!(group == Some(fifo::object_group_id("media", &job.key).as_str()));
            let dedup = system(&m, MessageSystemAttributeName::MessageDeduplicationId);
            ensure!(dedup == Some(job.idempotency_key.as_str()));
            aws.sqs
                .delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            seen.push(job.key);
        }
    }
    seen.sort();
    ensure!(seen == ["a", "b", "c"], "{seen:?}");

    // A message with an attribute, received as a worker would, handed back
    // and its original deleted: the copy is all that is left, whole.
    let origin = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("o-1")
        .build()?;
    let entry =
        Entry::for_message(&job("media", "long", "r2"), true).with_attribute("origin", origin);
    sender.submit_all([entry.clone()]).await?;
    let original = receive(&aws, &queue_url)
        .await?
        .pop()
        .context("the message")?;
    // Under its own deduplication id the copy would be dropped.
    let original_id = entry.deduplication_id.clone().unwrap_or_default();
    sender.resend(&original, original_id.clone()).await?;
    sender.resend(&original, format!("{original_id}-1")).await?;
    let (deleter, deleting) = BatchDeleter::spawn(
        aws.sqs.clone(),
        &queue_url,
        &settings(),
        Arc::new(NoObserver),
    );
    deleter
        .submit_all([original.receipt_handle().unwrap_or_default().to_owned()])
        .await?;
    let mut left = receive(&aws, &queue_url).await?;
    ensure!(left.len() == 1, "{left:?}");
    let copy = left.pop().context("the copy")?;
    ensure!(copy.body() == original.body());
    ensure!(copy.message_attributes() == original.message_attributes());
    ensure!(copy.message_id() != original.message_id());
    let group = MessageSystemAttributeName::MessageGroupId;
    ensure!(system(&copy, group.clone()) == system(&original, group));

    // A FIFO entry without a group id is refused before any call.
    let no_group = Entry::new("{}").with_deduplication_id("x");
    let refused = sender.submit_all([no_group]).await;
    ensure!(
        matches!(&refused, Err(BatchError::Rejected { code, .. }) if code == "InvalidParameterValue"),
        "{refused:?}"
    );
    drop((sender, deleter));
    task.await?;
    deleting.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deletes_are_retried_and_an_invalid_receipt_is_final() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws.create_queue(&unique_name("q"), &[]).await?;
    let proxy = FaultProxy::start(&emulator.endpoint()).await?;
    let via_proxy = LocalAws::connect(&proxy.endpoint()).await.sqs;
    let (sender, sending) = BatchSender::spawn(
        via_proxy.clone(),
        &queue_url,
        &settings(),
        Arc::new(NoObserver),
    );
    let (deleter, deleting) =
        BatchDeleter::spawn(via_proxy, &queue_url, &settings(), Arc::new(NoObserver));

    sender
        .submit_all((0..5).map(|i| Entry::new(format!("m{i}"))))
        .await?;
    let mut handles = Vec::new();
    while handles.len() < 5 {
        let batch = receive(&aws, &queue_url).await?;
        ensure!(!batch.is_empty(), "only {} of 5 received", handles.len());
        handles.extend(batch.into_iter().filter_map(|m| m.receipt_handle));
    }
    // SQS fails two entries of the first delete, then the first entry of
    // the retry: every delete still succeeds, none is sent twice over.
    proxy.fail_next_delete_entries(vec![1, 3]);
    proxy.fail_next_delete_entries(vec![0]);
    deleter.submit_all(handles).await?;
    ensure!(
        proxy.calls(DELETE_BATCH) == 3,
        "{} calls",
        proxy.calls(DELETE_BATCH)
    );
    ensure!(aws.queue_depth(&queue_url).await? == (0, 0));

    // A receipt handle SQS does not know is refused once, not retried.
    let invalid = deleter
        .submit_all(["not-a-receipt-handle".to_owned()])
        .await;
    ensure!(
        matches!(&invalid, Err(BatchError::Rejected { code, .. }) if code == "ReceiptHandleIsInvalid"),
        "{invalid:?}"
    );
    ensure!(invalid.as_ref().is_err_and(|e| !e.is_retryable()));
    ensure!(proxy.calls(DELETE_BATCH) == 4);

    // A message SQS could never accept is refused without a call, and
    // does not take the others in its batch down with it.
    let sends = proxy.calls(SEND_BATCH);
    let big = sender
        .submit(Entry::new("x".repeat(MAX_MESSAGE_BYTES + 1)))
        .await;
    let small = sender.submit(Entry::new("small")).await;
    ensure!(matches!(big.await, Err(BatchError::TooLarge { .. })));
    small.await?;
    ensure!(proxy.calls(SEND_BATCH) == sends + 1);
    drop((sender, deleter));
    sending.await?;
    deleting.await?;
    Ok(())
}
