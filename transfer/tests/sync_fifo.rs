//! `ossbridge-transfer sync --enqueue` onto a FIFO queue, through the real
//! binary: every job arrives once, grouped by object and deduplicated by
//! its idempotency key, as the gateway's messages are.

mod common;

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::Rig;
use ossbridge_message::{Operation, QueueMessage};
use ossbridge_testkit::unique_name;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_onto_a_fifo_queue_sends_every_job_once_grouped_by_object() -> Result<()> {
    let rig = Rig::start().await?;
    // More than one batch, with keys longer than a group id may be.
    let keys: Vec<String> = (0..23)
        .map(|i| format!("d{}/{}-{i:02}", i % 3, "long".repeat(40)))
        .collect();
    let objects = keys
        .iter()
        .map(|k| (k.clone(), k.as_bytes().to_vec(), None))
        .collect();
    let etags = rig.put_many(&rig.source_bucket, objects, 8).await?;
    let fifo = rig
        .aws
        .create_queue(
            &format!("{}.fifo", unique_name("sync")),
            &[(QueueAttributeName::FifoQueue, "true".to_owned())],
        )
        .await?;
    let config = rig.config_toml("").replacen(&rig.queue_url, &fifo, 1);

    let run = rig.run_binary(&config, &["sync", "--enqueue"]).await?;
    ensure!(run.code == 0, "{}\n{}", run.stdout, run.stderr);
    ensure!(run.count("enqueued")? == 23 && run.count("failed")? == 0);

    let mut seen = BTreeSet::new();
    loop {
        let out = rig
            .aws
            .sqs
            .receive_message()
            .queue_url(&fifo)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .send()
            .await?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let job = QueueMessage::from_body(m.body().unwrap_or_default())?;
            ensure!(job.op == Operation::Copy && job.e_tag == etags[&job.key]);
            let system = |name| m.attributes().and_then(|a| a.get(&name)).cloned();
            let group = ossbridge_queue::fifo::object_group_id(&rig.source_bucket, &job.key);
            ensure!(system(MessageSystemAttributeName::MessageGroupId) == Some(group));
            ensure!(
                system(MessageSystemAttributeName::MessageDeduplicationId)
                    == Some(job.idempotency_key.clone())
            );
            rig.aws
                .sqs
                .delete_message()
                .queue_url(&fifo)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await?;
            ensure!(seen.insert(job.key), "duplicate job");
        }
    }
    let expected: BTreeSet<String> = keys.into_iter().collect();
    ensure!(seen == expected, "{seen:?}");
    Ok(())
}
