//! SQS's FIFO deduplication window, which moto does not keep: moto drops
//! a FIFO message only while another with its deduplication id is still
//! on the queue, while SQS "accepts successfully but doesn't deliver" any
//! message whose deduplication id it saw in the last five minutes, even if
//! the first one was deleted or moved to a dead-letter queue since
//! (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
//! using-messagededuplicationid-property.html). The fault proxy applies
//! this window to SendMessage and SendMessageBatch on `.fifo` queues, so a
//! resend that reuses an id is lost in tests as it would be on AWS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::Value;

const WINDOW: Duration = Duration::from_secs(300);
const SEND: &str = "AmazonSQS.SendMessage";
const SEND_BATCH: &str = "AmazonSQS.SendMessageBatch";

/// What to do with a send request.
pub(crate) enum Filtered {
    /// Forward this body; answer these entries (dropped as repeats) as
    /// successful, as SQS does.
    Forward(Bytes, Vec<Value>),
    /// Nothing to forward: answer this.
    Answer(Value),
}

#[derive(Debug, Default)]
pub(crate) struct DedupWindow {
    seen: Mutex<HashMap<(String, String), Instant>>,
}

impl DedupWindow {
    pub(crate) fn filter(&self, target: &str, body: Bytes) -> Result<Filtered> {
        if target != SEND && target != SEND_BATCH {
            return Ok(Filtered::Forward(body, Vec::new()));
        }
        let mut json: Value = serde_json::from_slice(&body).context("send request body")?;
        let queue = json["QueueUrl"].as_str().unwrap_or_default().to_owned();
        if !queue.ends_with(".fifo") {
            return Ok(Filtered::Forward(body, Vec::new()));
        }
        if target == SEND {
            return Ok(match self.repeat(&queue, &json) {
                true => Filtered::Answer(accepted(&json, None)),
                false => Filtered::Forward(body, Vec::new()),
            });
        }
        let mut dropped = Vec::new();
        if let Some(entries) = json["Entries"].as_array_mut() {
            let mut kept = Vec::new();
            for entry in entries.drain(..) {
                if self.repeat(&queue, &entry) {
                    dropped.push(accepted(&entry, Some(&entry["Id"])));
                } else {
                    kept.push(entry);
                }
            }
            if kept.is_empty() {
                return Ok(Filtered::Answer(
                    serde_json::json!({"Successful": dropped, "Failed": []}),
                ));
            }
            *entries = kept;
        }
        Ok(Filtered::Forward(
            Bytes::from(serde_json::to_vec(&json)?),
            dropped,
        ))
    }

    /// Whether `message` repeats a deduplication id sent to `queue` within
    /// the window; records it if not.
    fn repeat(&self, queue: &str, message: &Value) -> bool {
        let Some(id) = message["MessageDeduplicationId"].as_str() else {
            return false;
        };
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let now = Instant::now();
        seen.retain(|_, at| now.duration_since(*at) < WINDOW);
        match seen.get(&(queue.to_owned(), id.to_owned())) {
            Some(_) => true,
            None => {
                seen.insert((queue.to_owned(), id.to_owned()), now);
                false
            }
        }
    }
}

/// SQS's answer for a message it accepted: a message id and the body's
/// MD5 (and the entry id in a batch).
fn accepted(message: &Value, id: Option<&Value>) -> Value {
    let body = message["MessageBody"].as_str().unwrap_or_default();
    let mut answer = serde_json::json!({
        "MessageId": uuid::Uuid::new_v4().to_string(),
        "MD5OfMessageBody": hex::encode(Md5::digest(body.as_bytes())),
    });
    if let Some(id) = id {
        answer["Id"] = id.clone();
    }
    answer
}
