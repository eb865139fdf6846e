//! Manual replay: OSS events from a file, stdin, the admin endpoint or the
//! event archive go through the same decoding, normalization, filters,
//! deduplication and batcher as live traffic (see [`crate::pipeline`]).
//! Replayed input is trusted operator input: it is not verified.

pub mod admin;
pub mod cli;
pub mod dlq;
pub mod input;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use ossbridge_message::{OssEvent, QueueMessage};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::archive::ArchivedRecord;
use crate::body::{self, MnsPolicy};
use crate::config::BodyFormat;
use crate::pipeline::{self, Pipeline};
use crate::verify::Verified;
pub use input::{Document, InputFormat, Position};

/// Documents sent to SQS at once.
const IN_FLIGHT: usize = 64;

/// Where replayed events go: one configured source.
#[derive(Debug)]
pub struct Target<'a> {
    pub source_id: Arc<str>,
    /// The source's body format (archive records hold bodies in it).
    pub format: BodyFormat,
    /// The source's MNS policy; permissive for non-MNS sources.
    pub mns_policy: MnsPolicy,
    pub pipeline: Pipeline<'a>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Forces the format of every document instead of detecting it.
    pub format: Option<InputFormat>,
    /// Report what would be enqueued; send nothing.
    pub dry_run: bool,
    /// Archive records are replayed only when received in
    /// `[since, until)`.
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// What a replay did. `rejected` documents could not be used; `failed`
/// ones were usable but SQS did not accept their messages.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub documents: usize,
    pub events: usize,
    pub enqueued: usize,
    pub duplicates: usize,
    pub filtered: usize,
    pub ignored: usize,
    pub rejected: usize,
    pub failed: usize,
    /// Archive records outside the time range or of another source.
    pub skipped: usize,
    /// Archive records whose replayed idempotency keys differ from the
    /// recorded ones (the source's filters changed, say).
    pub key_mismatches: usize,
    pub dry_run: bool,
    pub problems: Vec<Problem>,
}

impl Summary {
    /// Whether anything was rejected or failed.
    pub fn is_clean(&self) -> bool {
        self.rejected == 0 && self.failed == 0
    }
}

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(flatten)]
    pub position: Position,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// `rejected` or `failed`.
    pub kind: &'static str,
    pub reason: String,
}

enum Decoded {
    Events(Vec<OssEvent>, Option<Vec<String>>),
    Skip,
}

impl Target<'_> {
    /// Replays `documents`; `dry_run_out` receives each message that would
    /// be sent when `options.dry_run` is set.
    pub async fn replay(
        &self,
        documents: Vec<Document>,
        options: &Options,
        dry_run_out: &mut (dyn FnMut(&QueueMessage) + Send),
    ) -> Summary {
        let mut summary = Summary {
            dry_run: options.dry_run,
            ..Summary::default()
        };
        let mut in_run: HashSet<String> = HashSet::new();
        // A replay is a deliberate resend: on a FIFO queue its messages
        // get deduplication ids of this run, so SQS does not drop them as
        // repeats of events it saw less than five minutes ago.
        let run_id: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let mut sending = JoinSet::new();
        for document in documents {
            summary.documents += 1;
            let (events, recorded) = match self.decode(&document, options) {
                Ok(Decoded::Events(events, recorded)) => (events, recorded),
                Ok(Decoded::Skip) => {
                    summary.skipped += 1;
                    continue;
                }
                Err(reason) => {
                    summary.rejected += 1;
                    summary
                        .problems
                        .push(problem(&document, "rejected", reason));
                    continue;
                }
            };
            let mut prepared = self.pipeline.prepare(&events);
            if recorded.is_some_and(|keys| keys != prepared.keys) {
                summary.key_mismatches += 1;
            }
            let before = prepared.messages.len();
            prepared
                .messages
                .retain(|m| in_run.insert(m.idempotency_key.clone()));
            summary.duplicates += prepared.duplicates + before - prepared.messages.len();
            summary.events += prepared.events;
            summary.filtered += prepared.filtered;
            summary.ignored += prepared.ignored;
            if options.dry_run {
                prepared.messages.iter().for_each(&mut *dry_run_out);
                summary.enqueued += prepared.messages.len();
                continue;
            }
            if prepared.messages.is_empty() {
                continue;
            }
            while sending.len() >= IN_FLIGHT {
                collect(sending.join_next().await, &mut summary);
            }
            let (batcher, dedup) = (self.pipeline.batcher.clone(), self.pipeline.dedup.clone());
            let timeout = self.pipeline.enqueue_timeout;
            let run = run_id.clone();
            sending.spawn(async move {
                let result =
                    pipeline::send(&batcher, &dedup, timeout, &prepared.messages, Some(&run)).await;
                (document, prepared.messages.len(), result)
            });
        }
        while let Some(done) = sending.join_next().await {
            collect(Some(done), &mut summary);
        }
        summary
    }

    fn decode(&self, document: &Document, options: &Options) -> Result<Decoded, String> {
        let format = match options.format {
            Some(format) => format,
            None => input::detect(document).ok_or_else(|| unrecognised(document))?,
        };
        let body_format = match format {
            InputFormat::OssEvents => BodyFormat::OssEvents,
            InputFormat::Cloudevents => BodyFormat::Cloudevents,
            InputFormat::Mns => BodyFormat::Mns,
            InputFormat::QueueMessage => {
                let message = QueueMessage::from_body(&document.text).map_err(|e| e.to_string())?;
                return Ok(Decoded::Events(vec![to_event(&message)?], None));
            }
            InputFormat::Archive => return self.decode_archived(document, options),
        };
        let body = Bytes::from(document.text.clone().into_bytes());
        self.decode_body(body_format, body)
            .map(|events| Decoded::Events(events, None))
    }

    fn decode_body(&self, format: BodyFormat, body: Bytes) -> Result<Vec<OssEvent>, String> {
        let verified = Verified::trusted_operator_input(self.source_id.clone(), body);
        body::decode(format, &verified, Some(&self.mns_policy)).map_err(|e| e.to_string())
    }

    fn decode_archived(&self, document: &Document, options: &Options) -> Result<Decoded, String> {
        let record: ArchivedRecord = serde_json::from_str(&document.text)
            .map_err(|e| format!("not an archive record: {e}"))?;
        let received_at = record.received_at()?;
        let in_range = options.since.is_none_or(|s| received_at >= s)
            && options.until.is_none_or(|u| received_at < u);
        if !in_range || record.source_id != *self.source_id {
            return Ok(Decoded::Skip);
        }
        let body = record.body_bytes()?;
        let events = self.decode_body(self.format, body)?;
        Ok(Decoded::Events(events, Some(record.idempotency_keys)))
    }
}

fn unrecognised(document: &Document) -> String {
    if document.json.is_none()
        && document.text.starts_with(['{', '['])
        && let Err(e) = serde_json::from_str::<serde_json::Value>(&document.text)
    {
        return format!("not valid JSON: {e}");
    }
    "not a recognised format".to_owned()
}

fn problem(document: &Document, kind: &'static str, reason: String) -> Problem {
    Problem {
        position: document.position,
        object: document.object.clone(),
        kind,
        reason,
    }
}

type Sent = (Document, usize, Result<(), crate::enqueue::EnqueueError>);

fn collect(done: Option<Result<Sent, tokio::task::JoinError>>, summary: &mut Summary) {
    match done {
        Some(Ok((_, count, Ok(())))) => summary.enqueued += count,
        Some(Ok((document, _, Err(e)))) => {
            summary.failed += 1;
            summary
                .problems
                .push(problem(&document, "failed", e.to_string()));
        }
        Some(Err(e)) => {
            summary.failed += 1;
            tracing::error!(event = "replay_task_failed", error = %e);
        }
        None => {}
    }
}

/// An ossbridge queue message back into the OSS event it was made from, so
/// it goes through normalization (filters, the source id of the replay)
/// and gets the same content-derived idempotency key.
fn to_event(m: &QueueMessage) -> Result<OssEvent, String> {
    let value = serde_json::json!({
        "eventName": m.event_name,
        "eventTime": m.event_time,
        "region": m.region,
        "oss": {
            "bucket": {"name": m.bucket},
            "object": {"key": m.key, "size": m.size, "eTag": m.e_tag},
        },
        "responseElements": {"requestId": m.request_id},
    });
    serde_json::from_value(value).map_err(|e| format!("not a queue message: {e}"))
}
