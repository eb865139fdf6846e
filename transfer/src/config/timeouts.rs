//! Timeouts of the two S3 clients: the keys' defaults and their checks.
//! What each one bounds, and why a long healthy transfer survives all of
//! them, is explained where they are applied (`clients/mod.rs`) and in
//! docs/configuration.md.

use std::time::Duration;

use ossbridge_runtime::ConfigError;

/// One S3 client's timeouts, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Timeouts {
    pub connect: Duration,
    /// From the last byte of the request to the first byte of the answer.
    pub read: Duration,
    /// One attempt of one request; `None` = no limit.
    pub attempt: Option<Duration>,
    /// Stalled stream protection's grace period.
    pub stall: Duration,
}

impl S3Timeouts {
    pub(super) fn from_secs(connect: u64, read: u64, attempt: u64, stall: u64) -> S3Timeouts {
        S3Timeouts {
            connect: Duration::from_secs(connect),
            read: Duration::from_secs(read),
            attempt: (attempt > 0).then(|| Duration::from_secs(attempt)),
            stall: Duration::from_secs(stall),
        }
    }
}

// OSS is reached over the internet, often across a border: slower
// handshakes and pauses than S3 in-region. Source requests carry no body,
// and a GET's attempt ends when its headers arrive (the object streams
// after it), so an attempt limit costs a long download nothing.
pub(super) fn source_connect_secs() -> u64 {
    10
}
pub(super) fn source_read_secs() -> u64 {
    60
}
pub(super) fn source_attempt_secs() -> u64 {
    120
}
pub(super) fn source_stall_secs() -> u64 {
    20
}

// S3 in the worker's region. A PUT's or UploadPart's attempt includes
// uploading its body (up to 5 GiB), so no attempt limit by default: any
// fixed one would have to exceed the slowest healthy upload of the
// largest part. Every phase of an attempt is bounded without it.
pub(super) fn destination_connect_secs() -> u64 {
    5
}
pub(super) fn destination_read_secs() -> u64 {
    60
}
pub(super) fn destination_attempt_secs() -> u64 {
    0
}
pub(super) fn destination_stall_secs() -> u64 {
    10
}

/// Zero would disable a timeout the client relies on; only the attempt
/// limit may be off.
pub(super) fn validate(side: &str, t: &S3Timeouts) -> Result<(), ConfigError> {
    for (key, value) in [
        ("connect_timeout_secs", t.connect),
        ("read_timeout_secs", t.read),
        ("stall_timeout_secs", t.stall),
    ] {
        if value.is_zero() {
            return Err(ConfigError::invalid(format!("{side}.{key}"), "must be > 0"));
        }
    }
    Ok(())
}
