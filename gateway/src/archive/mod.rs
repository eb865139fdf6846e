//! The event archive: every body the gateway accepted (verified, and only
//! after SQS accepted its messages), with its source, receive time and the
//! idempotency keys it produced, as gzip-compressed NDJSON on S3: one
//! object per time window per gateway instance,
//! `PREFIX/YYYY/MM/DD/HH/<window-start>-<instance>.ndjson.gz`, written at
//! the window's end and on shutdown. `replay --archive` reads it back.

pub mod read;

use std::io::Write;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use ossbridge_runtime::error_chain;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::config::ArchiveConfig;
use crate::telemetry;

/// Records waiting for the archive task; beyond this, requests wait.
const CHANNEL: usize = 4096;
/// An object is written early (as a further part of its window) when its
/// uncompressed records pass this.
const MAX_OBJECT_INPUT_BYTES: usize = 256 * 1024 * 1024;
const UPLOAD_ATTEMPTS: u32 = 4;

/// One accepted request.
#[derive(Debug, Clone)]
pub struct Record {
    pub source_id: String,
    pub received_at: OffsetDateTime,
    /// The raw verified body.
    pub body: Bytes,
    /// Idempotency keys normalization produced (before deduplication).
    pub keys: Vec<String>,
}

/// A record as one NDJSON line of an archive object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedRecord {
    /// Always 1; also how replay recognises a record.
    pub ossbridge_archive: u32,
    pub source_id: String,
    /// RFC 3339.
    pub received_at: String,
    /// The body, as text when it is UTF-8, else base64.
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<String>,
    pub idempotency_keys: Vec<String>,
}

impl ArchivedRecord {
    fn from_record(r: &Record) -> ArchivedRecord {
        let (body, body_encoding) = match std::str::from_utf8(&r.body) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => (STANDARD.encode(&r.body), Some("base64".to_owned())),
        };
        ArchivedRecord {
            ossbridge_archive: 1,
            source_id: r.source_id.clone(),
            received_at: r.received_at.format(&Rfc3339).unwrap_or_default(),
            body,
            body_encoding,
            idempotency_keys: r.keys.clone(),
        }
    }

    pub fn received_at(&self) -> Result<OffsetDateTime, String> {
        OffsetDateTime::parse(&self.received_at, &Rfc3339)
            .map_err(|_| "archive record has a malformed receivedAt".to_owned())
    }

    pub fn body_bytes(&self) -> Result<Bytes, String> {
        match self.body_encoding.as_deref() {
            None => Ok(Bytes::from(self.body.clone().into_bytes())),
            Some("base64") => STANDARD
                .decode(&self.body)
                .map(Bytes::from)
                .map_err(|_| "archive record body is not base64".to_owned()),
            Some(_) => Err("archive record has an unknown bodyEncoding".to_owned()),
        }
    }
}

/// The S3 client for the archive bucket.
pub fn s3_client(sdk: &SdkConfig, config: &ArchiveConfig) -> aws_sdk_s3::Client {
    let mut builder =
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(config.force_path_style);
    if let Some(region) = &config.region {
        builder = builder.region(aws_sdk_s3::config::Region::new(region.clone()));
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// The key of an archive object.
pub fn object_key(prefix: &str, window_start: OffsetDateTime, instance: &str, part: u32) -> String {
    let t = window_start;
    let mut key = String::new();
    if !prefix.is_empty() {
        key.push_str(prefix);
        key.push('/');
    }
    key.push_str(&format!(
        "{:04}/{:02}/{:02}/{:02}/{:04}{:02}{:02}T{:02}{:02}{:02}Z-{instance}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ));
    if part > 0 {
        key.push_str(&format!("-{part}"));
    }
    key.push_str(".ndjson.gz");
    key
}

/// Hands records to the archive task. When every clone is dropped the task
/// writes what it holds and ends.
#[derive(Debug, Clone)]
pub struct Archiver {
    tx: mpsc::Sender<Record>,
}

impl Archiver {
    pub fn spawn(config: &ArchiveConfig, s3: aws_sdk_s3::Client) -> (Archiver, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let writer = Writer {
            uploader: Uploader {
                s3,
                bucket: config.bucket.clone(),
                prefix: config.prefix.clone(),
                instance: Uuid::new_v4().to_string(),
            },
            window_secs: config.window_secs as i64,
        };
        (Archiver { tx }, tokio::spawn(writer.run(rx)))
    }

    /// Queues `record` without waiting, so neither a slow S3 nor a caller
    /// that goes away between SQS's answer and this call loses it: when
    /// the queue is full a task waits for room.
    pub fn record(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(record)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    if tx.send(record).await.is_err() {
                        tracing::error!(
                            event = "archive_record_lost",
                            reason = "archive task stopped"
                        );
                    }
                });
            }
            Err(TrySendError::Closed(_)) => {
                tracing::error!(
                    event = "archive_record_lost",
                    reason = "archive task stopped"
                );
            }
        }
    }
}

struct Window {
    start: OffsetDateTime,
    part: u32,
    encoder: GzEncoder<Vec<u8>>,
    input_bytes: usize,
    records: usize,
}

struct Writer {
    uploader: Uploader,
    window_secs: i64,
}

/// Writes finished windows; uploads run in their own tasks so records keep
/// flowing while S3 is slow.
#[derive(Clone)]
struct Uploader {
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    instance: String,
}

impl Writer {
    fn window_start(&self, at: OffsetDateTime) -> OffsetDateTime {
        let secs = at.unix_timestamp();
        let start = secs - secs.rem_euclid(self.window_secs);
        OffsetDateTime::from_unix_timestamp(start).unwrap_or(at)
    }

    async fn run(self, mut rx: mpsc::Receiver<Record>) {
        let mut current: Option<Window> = None;
        let mut uploads = JoinSet::new();
        loop {
            let until_end = current.as_ref().map(|w| {
                let end = w.start + time::Duration::seconds(self.window_secs);
                let left = (end - OffsetDateTime::now_utc()).as_seconds_f64().max(0.0);
                Duration::from_secs_f64(left)
            });
            let finished = tokio::select! {
                received = rx.recv() => match received {
                    Some(record) => self.append(&mut current, &record),
                    None => break,
                },
                () = tokio::time::sleep(until_end.unwrap_or(Duration::MAX)), if until_end.is_some() => {
                    current.take()
                }
            };
            if let Some(window) = finished {
                uploads.spawn(self.uploader.clone().upload(window));
            }
            while uploads.try_join_next().is_some() {}
        }
        if let Some(window) = current.take() {
            uploads.spawn(self.uploader.clone().upload(window));
        }
        while uploads.join_next().await.is_some() {}
        tracing::info!(event = "archive_flushed");
    }

    /// Adds `record` to the current window; returns a window to write when
    /// the record starts a new one.
    fn append(&self, current: &mut Option<Window>, record: &Record) -> Option<Window> {
        let start = self.window_start(OffsetDateTime::now_utc());
        let finished = match current.take() {
            Some(w) if w.start == start && w.input_bytes < MAX_OBJECT_INPUT_BYTES => {
                *current = Some(w);
                None
            }
            Some(w) => {
                let part = if w.start == start { w.part + 1 } else { 0 };
                *current = Some(Window::open(start, part));
                Some(w)
            }
            None => {
                *current = Some(Window::open(start, 0));
                None
            }
        };
        if let Some(window) = current.as_mut() {
            window.write(record);
        }
        finished
    }
}

impl Window {
    fn open(start: OffsetDateTime, part: u32) -> Window {
        Window {
            start,
            part,
            encoder: GzEncoder::new(Vec::new(), Compression::default()),
            input_bytes: 0,
            records: 0,
        }
    }

    fn write(&mut self, record: &Record) {
        let mut line = match serde_json::to_vec(&ArchivedRecord::from_record(record)) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(event = "archive_record_lost", reason = %e);
                return;
            }
        };
        line.push(b'\n');
        match self.encoder.write_all(&line) {
            Ok(()) => {
                self.input_bytes += line.len();
                self.records += 1;
            }
            Err(e) => tracing::error!(event = "archive_record_lost", reason = %e),
        }
    }
}

impl Uploader {
    async fn upload(self, window: Window) {
        if window.records == 0 {
            return;
        }
        let key = object_key(&self.prefix, window.start, &self.instance, window.part);
        let records = window.records;
        let bytes = match window.encoder.finish() {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                tracing::error!(event = "archive_upload_failed", key = %key, records, error = %e);
                telemetry::archive_object(false);
                return;
            }
        };
        for attempt in 1..=UPLOAD_ATTEMPTS {
            let result = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                // Not Content-Encoding: clients would unpack it on the way.
                .content_type("application/gzip")
                .body(ByteStream::from(bytes.clone()))
                .send()
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(event = "archive_object_written", key = %key, records);
                    telemetry::archive_object(true);
                    return;
                }
                Err(e) if attempt < UPLOAD_ATTEMPTS => {
                    tracing::warn!(event = "archive_upload_retried", key = %key, attempt, error = %error_chain(&e));
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(event = "archive_upload_failed", key = %key, records, error = %error_chain(&e));
                    telemetry::archive_object(false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_by_hour_and_window() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_767_300).expect("time");
        assert_eq!(
            object_key("arch", t, "i", 0),
            "arch/2026/11/27/08/20261127T081500Z-i.ndjson.gz"
        );
        assert_eq!(
            object_key("", t, "i", 2),
            "2026/11/27/08/20261127T081500Z-i-2.ndjson.gz"
        );
    }
}
