//! Metric names, in one place, the functions that record them, and the
//! optional CloudWatch Embedded Metric Format lines. Labels stay
//! low-cardinality (outcomes and reasons, never keys).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

/// Jobs finished, by `outcome` (copied, already_current, source_missing,
/// deleted, delete_skipped, delete_ignored, failed).
pub const JOBS: &str = "ossbridge_transfer_jobs_total";
/// Bytes written to the destination.
pub const BYTES_COPIED: &str = "ossbridge_transfer_bytes_copied_total";
/// Jobs that failed, by `reason` and `kind` (transient, permanent).
pub const FAILURES: &str = "ossbridge_transfer_failures_total";
/// In-process retries of a job, by `reason`.
pub const RETRIES: &str = "ossbridge_transfer_retries_total";
/// Parts uploaded again after a failure.
pub const PART_RETRIES: &str = "ossbridge_transfer_part_retries_total";
/// Parts of an interrupted upload verified and reused.
pub const PARTS_REUSED: &str = "ossbridge_transfer_parts_reused_total";
/// Objects and bytes being copied now.
pub const IN_FLIGHT_OBJECTS: &str = "ossbridge_transfer_in_flight_objects";
pub const IN_FLIGHT_BYTES: &str = "ossbridge_transfer_in_flight_bytes";
/// Seconds from the source event to the destination write.
pub const REPLICATION_LAG_SECONDS: &str = "ossbridge_transfer_replication_lag_seconds";
/// Rounds a job looked at both sides again, by `reason` (conflict: a
/// conditional write was refused; source_changed: the source moved under a
/// conditional read; source_moved: it moved while we wrote;
/// source_returned: it came back after a delete).
pub const RECONCILE_AGAIN: &str = "ossbridge_transfer_reconcile_again_total";
/// Jobs that lost their message's lease, by `reason` (not_ours,
/// expiring, visibility_cap).
pub const LEASES_LOST: &str = "ossbridge_transfer_leases_lost_total";
/// Queue messages, by `result` (deleted, nothing, unparseable, failed,
/// released).
pub const MESSAGES: &str = "ossbridge_transfer_messages_total";
/// Reads of the store holding the source keys, by `store` (ssm,
/// secretsmanager), `reason` (start, age, refused) and `result` (ok,
/// failed). A failed read with keys held keeps them.
pub const SOURCE_KEY_READS: &str = "ossbridge_transfer_source_key_reads_total";
/// Age of the source keys in use; grows past `credentials_refresh_secs`
/// while their store cannot be read.
pub const SOURCE_KEYS_AGE_SECONDS: &str = "ossbridge_transfer_source_keys_age_seconds";

pub fn prometheus() -> &'static PrometheusHandle {
    // Sub-second buckets too: a healthy pipeline replicates a small
    // object in well under half a second (p50 73 ms at 200 events/s in
    // bench/lag.sh), and a histogram whose first bucket is 0.5 s cannot
    // tell that from a lag ten times as long.
    const LAG: &[f64] = &[
        0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0,
    ];
    ossbridge_runtime::metrics::prometheus(&[(REPLICATION_LAG_SECONDS, LAG)])
}

/// Totals for the EMF lines, since the last one was written.
static EMF_OBJECTS: AtomicU64 = AtomicU64::new(0);
static EMF_BYTES: AtomicU64 = AtomicU64::new(0);
static EMF_FAILED: AtomicU64 = AtomicU64::new(0);
static EMF_LAG_MAX_MS: AtomicU64 = AtomicU64::new(0);

pub fn job_done(outcome: &'static str, bytes: u64, event_time: Option<&str>) {
    counter!(JOBS, "outcome" => outcome).increment(1);
    if bytes > 0 || outcome == "copied" {
        counter!(BYTES_COPIED).increment(bytes);
        EMF_OBJECTS.fetch_add(1, Ordering::Relaxed);
        EMF_BYTES.fetch_add(bytes, Ordering::Relaxed);
        if let Some(at) = event_time.and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()) {
            let lag = (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0);
            histogram!(REPLICATION_LAG_SECONDS).record(lag);
            EMF_LAG_MAX_MS.fetch_max((lag * 1000.0) as u64, Ordering::Relaxed);
        }
    }
}

pub fn job_failed(reason: &'static str, permanent: bool) {
    counter!(JOBS, "outcome" => "failed").increment(1);
    let kind = if permanent { "permanent" } else { "transient" };
    counter!(FAILURES, "reason" => reason, "kind" => kind).increment(1);
    EMF_FAILED.fetch_add(1, Ordering::Relaxed);
}

pub fn retry(reason: &'static str) {
    counter!(RETRIES, "reason" => reason).increment(1);
}

pub fn reconcile_again(reason: &'static str) {
    counter!(RECONCILE_AGAIN, "reason" => reason).increment(1);
}

pub fn lease_lost(reason: &'static str) {
    counter!(LEASES_LOST, "reason" => reason).increment(1);
}

pub fn part_retry() {
    counter!(PART_RETRIES).increment(1);
}

pub fn part_reused() {
    counter!(PARTS_REUSED).increment(1);
}

pub fn message(result: &'static str) {
    counter!(MESSAGES, "result" => result).increment(1);
}

pub fn source_key_read(store: &'static str, reason: &'static str, result: &'static str) {
    counter!(SOURCE_KEY_READS, "store" => store, "reason" => reason, "result" => result)
        .increment(1);
}

pub fn source_keys_age(age: Duration) {
    gauge!(SOURCE_KEYS_AGE_SECONDS).set(age.as_secs_f64());
}

/// Counts an object as in flight until dropped.
#[derive(Debug)]
pub struct InFlight(u64);

impl InFlight {
    pub fn start(bytes: u64) -> InFlight {
        gauge!(IN_FLIGHT_OBJECTS).increment(1.0);
        gauge!(IN_FLIGHT_BYTES).increment(bytes as f64);
        InFlight(bytes)
    }

    /// Counts `bytes` more, once the object's size is known.
    pub fn add_bytes(&mut self, bytes: u64) {
        gauge!(IN_FLIGHT_BYTES).increment(bytes as f64);
        self.0 += bytes;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT_OBJECTS).decrement(1.0);
        gauge!(IN_FLIGHT_BYTES).decrement(self.0 as f64);
    }
}

/// Writes one CloudWatch Embedded Metric Format line to stdout every
/// `interval`, so the awslogs driver alone feeds a CloudWatch dashboard.
pub async fn emf_loop(interval: Duration, shutdown: CancellationToken) {
    loop {
        let stop = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(interval) => false,
        };
        println!("{}", emf_line(OffsetDateTime::now_utc()));
        if stop {
            return;
        }
    }
}

fn emf_line(now: OffsetDateTime) -> String {
    let timestamp = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": "ossbridge",
                "Dimensions": [["Service"]],
                "Metrics": [
                    {"Name": "ObjectsCopied", "Unit": "Count"},
                    {"Name": "BytesCopied", "Unit": "Bytes"},
                    {"Name": "ObjectsFailed", "Unit": "Count"},
                    {"Name": "ReplicationLagMax", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Service": "ossbridge-transfer",
        "ObjectsCopied": EMF_OBJECTS.swap(0, Ordering::Relaxed),
        "BytesCopied": EMF_BYTES.swap(0, Ordering::Relaxed),
        "ObjectsFailed": EMF_FAILED.swap(0, Ordering::Relaxed),
        "ReplicationLagMax": EMF_LAG_MAX_MS.swap(0, Ordering::Relaxed),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_declare_every_metric_they_carry() {
        let line: serde_json::Value =
            serde_json::from_str(&emf_line(OffsetDateTime::UNIX_EPOCH)).expect("json");
        let declared = &line["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        for metric in declared.as_array().expect("list") {
            let name = metric["Name"].as_str().expect("name");
            assert!(line[name].is_u64(), "{name}");
        }
        assert_eq!(line["Service"], "ossbridge-transfer");
    }

    #[test]
    fn replication_lag_resolves_sub_second_lags() {
        let handle = prometheus();
        let written = OffsetDateTime::now_utc() - time::Duration::milliseconds(70);
        let event_time = written.format(&Rfc3339).expect("time");
        job_done("copied", 1, Some(&event_time));
        let rendered = handle.render();
        for le in ["0.05", "0.1", "0.25"] {
            let bucket = format!("{REPLICATION_LAG_SECONDS}_bucket{{le=\"{le}\"}}");
            assert!(rendered.contains(&bucket), "no {bucket} in\n{rendered}");
        }
    }
}
