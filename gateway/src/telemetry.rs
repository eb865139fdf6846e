//! Metric names, in one place, and the functions that record them. Labels
//! stay low-cardinality: source ids come from configuration, event names
//! from Aliyun's documented list (anything else is `other`).

use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Requests to the ingest endpoint, by `source` and `outcome`.
pub const REQUESTS: &str = "ossbridge_gateway_requests_total";
/// Seconds from request start to answer, by `source`.
pub const REQUEST_SECONDS: &str = "ossbridge_gateway_request_seconds";
/// OSS events seen, by `event` (name) and `action` (copy, delete, ignored,
/// filtered, duplicate).
pub const EVENTS: &str = "ossbridge_gateway_events_total";
/// SendMessageBatch calls, by `outcome` (ok, partial, error).
pub const SQS_BATCHES: &str = "ossbridge_gateway_sqs_batches_total";
/// Entries per SendMessageBatch call.
pub const SQS_BATCH_SIZE: &str = "ossbridge_gateway_sqs_batch_size";
/// Seconds per SendMessageBatch call.
pub const SQS_SEND_SECONDS: &str = "ossbridge_gateway_sqs_send_seconds";
/// Entries SQS reported as failed and that were sent again.
pub const SQS_ENTRY_RETRIES: &str = "ossbridge_gateway_sqs_entry_retries_total";
/// Messages SQS accepted.
pub const SQS_MESSAGES: &str = "ossbridge_gateway_sqs_messages_total";
/// Seconds from the OSS event time to SQS accepting its message.
pub const ENQUEUE_LAG_SECONDS: &str = "ossbridge_gateway_enqueue_lag_seconds";
/// 1 while every queue answers, 0 while SQS is failing.
pub const SQS_READY: &str = "ossbridge_gateway_sqs_ready";
/// Connections open now.
pub const CONNECTIONS: &str = "ossbridge_gateway_connections";
/// Connections closed for doing nothing: no request head in time, or idle
/// past the keep-alive timeout.
pub const CONNECTIONS_TIMED_OUT: &str = "ossbridge_gateway_connections_timed_out_total";
/// Requests refused as not authentic or not allowed, by `source` and
/// `reason` (header, timestamp, signature, credentials, body_digest,
/// url_token, certificate, sender_not_allowed): a burst for one source
/// usually means a rotated secret on one side only.
pub const AUTH_REJECTIONS: &str = "ossbridge_gateway_auth_rejections_total";

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    const SECONDS: &[f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    const LAG: &[f64] = &[
        0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    ];
    const BATCH: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
    ossbridge_runtime::metrics::prometheus(&[
        (REQUEST_SECONDS, SECONDS),
        (SQS_SEND_SECONDS, SECONDS),
        (ENQUEUE_LAG_SECONDS, LAG),
        (SQS_BATCH_SIZE, BATCH),
    ])
}

pub fn request_done(source: &str, outcome: &'static str, seconds: f64) {
    counter!(REQUESTS, "source" => source.to_owned(), "outcome" => outcome).increment(1);
    histogram!(REQUEST_SECONDS, "source" => source.to_owned()).record(seconds);
}

/// One source's request metrics, registered once: looking a labelled
/// series up by name on every request (hashing the key, cloning the
/// labels) was a measurable share of the gateway's CPU per event (see
/// docs/benchmarks.md, "Gateway CPU per event").
#[derive(Debug, Clone)]
pub struct SourceMetrics {
    source: String,
    accepted: Counter,
    seconds: Histogram,
}

impl SourceMetrics {
    pub fn new(source: &str) -> SourceMetrics {
        SourceMetrics {
            source: source.to_owned(),
            accepted: counter!(REQUESTS, "source" => source.to_owned(), "outcome" => "accepted"),
            seconds: histogram!(REQUEST_SECONDS, "source" => source.to_owned()),
        }
    }

    /// [`request_done`] for this source, without the lookup when accepted.
    pub fn request_done(&self, outcome: &'static str, seconds: f64) {
        if outcome == "accepted" {
            self.accepted.increment(1);
        } else {
            counter!(REQUESTS, "source" => self.source.clone(), "outcome" => outcome).increment(1);
        }
        self.seconds.record(seconds);
    }
}

pub fn auth_rejected(source: &str, reason: &'static str) {
    counter!(AUTH_REJECTIONS, "source" => source.to_owned(), "reason" => reason).increment(1);
}

pub fn connection_timed_out() {
    counter!(CONNECTIONS_TIMED_OUT).increment(1);
}

pub fn event_seen(name: &str, action: &'static str) {
    counter!(EVENTS, "event" => ossbridge_message::event_name_label(name), "action" => action)
        .increment(1);
}

pub fn duplicates_dropped(count: usize) {
    if count > 0 {
        counter!(EVENTS, "event" => "any", "action" => "duplicate").increment(count as u64);
    }
}

pub fn batch_sent(entries: usize, seconds: f64, outcome: &'static str) {
    counter!(SQS_BATCHES, "outcome" => outcome).increment(1);
    histogram!(SQS_BATCH_SIZE).record(entries as f64);
    histogram!(SQS_SEND_SECONDS).record(seconds);
}

pub fn entries_retried(count: usize) {
    counter!(SQS_ENTRY_RETRIES).increment(count as u64);
}

/// Records messages SQS accepted, with their lag from the OSS event time.
pub fn enqueued<'a>(event_times: impl Iterator<Item = &'a str>) {
    let now = OffsetDateTime::now_utc();
    let lag = histogram!(ENQUEUE_LAG_SECONDS);
    let mut count = 0;
    for t in event_times {
        count += 1;
        if let Ok(at) = OffsetDateTime::parse(t, &Rfc3339) {
            lag.record((now - at).as_seconds_f64().max(0.0));
        }
    }
    counter!(SQS_MESSAGES).increment(count);
}

pub fn sqs_ready(ready: bool) {
    gauge!(SQS_READY).set(if ready { 1.0 } else { 0.0 });
}

pub fn connection_opened() {
    gauge!(CONNECTIONS).increment(1.0);
}

pub fn connection_closed() {
    gauge!(CONNECTIONS).decrement(1.0);
}

/// Archive objects written (`outcome` = ok) or lost after retries
/// (`outcome` = failed).
pub const ARCHIVE_OBJECTS: &str = "ossbridge_gateway_archive_objects_total";

pub fn archive_object(ok: bool) {
    counter!(ARCHIVE_OBJECTS, "outcome" => if ok { "ok" } else { "failed" }).increment(1);
}
