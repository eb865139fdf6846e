//! The gateway's configuration. Every key is listed, with its default, in
//! docs/configuration.md; the example file is checked by a test.

mod replay;
mod source;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use ossbridge_queue::limits::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use ossbridge_runtime::ConfigError;
use ossbridge_runtime::aws::AwsConfig;
use ossbridge_runtime::cli::ServiceConfig;
use ossbridge_runtime::logging::LogConfig;
use serde::Deserialize;

pub use replay::{AdminConfig, ArchiveConfig};
pub use source::{
    BodyFormat, FilterConfig, HmacAlgorithm, NotifyFormat, Secrets, SourceConfig, VerifierConfig,
};

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the public listener (webhooks, `/healthz`, `/readyz`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`);
    /// never expose it through the load balancer.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub aws: AwsConfig,
    /// TLS on the public listener; without it the listener speaks plain
    /// HTTP (behind an ALB that terminates TLS).
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub sqs: SqsConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub mns: MnsConfig,
    /// The replay endpoint on the admin listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The event archive (off when absent).
    pub archive: Option<ArchiveConfig>,
    /// Webhook sources by id; the id is the `{source}` in
    /// `POST /v1/ingest/{source}`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Re-read on SIGHUP.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Re-read on SIGHUP.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body; larger ones get 413 before more is read.
    pub max_body_bytes: usize,
    /// Whole-request deadline (reading the body, verifying, enqueueing).
    pub request_timeout_ms: u64,
    /// Time a new connection gets to send a whole request head, and a
    /// reused HTTP/1.1 connection to finish a head it started (slowloris
    /// guard); the connection is then closed.
    pub header_read_timeout_ms: u64,
    /// How long a connection with nothing in flight stays open (HTTP/1.1
    /// keep-alive, idle HTTP/2). Longer than the load balancer's idle
    /// timeout (the ALB's default is 60 s), so the balancer never reuses a
    /// connection the gateway has closed.
    pub keep_alive_timeout_ms: u64,
    /// Time a client gets to finish the TLS handshake.
    pub tls_handshake_timeout_ms: u64,
    /// Connections served at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// After a shutdown signal, how long in-flight requests may take before
    /// their connections are dropped.
    pub shutdown_grace_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 5_000,
            keep_alive_timeout_ms: 75_000,
            tls_handshake_timeout_ms: 5_000,
            max_connections: 10_000,
            shutdown_grace_secs: 20,
        }
    }
}

/// Token buckets (governor); 0 disables a limit.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second across all clients.
    pub global_per_second: u32,
    pub global_burst: u32,
    /// Requests per second from one client IP.
    pub per_ip_per_second: u32,
    pub per_ip_burst: u32,
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed, e.g. the ALB's
    /// subnets. From anyone else the header is ignored and the peer
    /// address is the client.
    #[cfg_attr(test, schemars(with = "Vec<String>"))]
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            global_per_second: 50_000,
            global_burst: 10_000,
            per_ip_per_second: 0,
            per_ip_burst: 1_000,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct SqsConfig {
    /// Deadline for getting one request's messages into SQS, retries
    /// included. Keep it well inside MNS's 5 s push deadline so the sender
    /// sees our 503 rather than its own timeout.
    pub enqueue_timeout_ms: u64,
    /// How long the batcher waits for more messages before sending a batch
    /// that is not full.
    pub batch_linger_ms: u64,
    /// Whether a batch waits out the linger when no SendMessageBatch call
    /// is in flight. `false`: it waits only while one is (Nagle's rule),
    /// so a push that finds the queue idle is sent at once.
    pub batch_linger_when_idle: bool,
    /// Entries per SendMessageBatch (1–10).
    pub max_batch_entries: usize,
    /// Payload bytes per SendMessageBatch (SQS allows 1 MiB).
    pub max_batch_bytes: usize,
    /// SendMessageBatch calls in flight per queue.
    pub max_in_flight_batches: usize,
    /// Attempts for an entry SQS reports as failed inside a batch.
    pub entry_attempts: u32,
    /// How often `/readyz` re-checks that every queue is reachable.
    pub readiness_probe_secs: u64,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            enqueue_timeout_ms: 3000,
            batch_linger_ms: 2,
            batch_linger_when_idle: true,
            max_batch_entries: 10,
            max_batch_bytes: 1024 * 1024,
            max_in_flight_batches: 64,
            entry_attempts: 3,
            readiness_probe_secs: 10,
        }
    }
}

/// Recently enqueued idempotency keys, so retried or duplicated deliveries
/// (MNS, EventBridge) do not multiply queue traffic.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// Keys remembered at most (0 disables deduplication).
    pub capacity: u64,
    /// How long a key is remembered.
    pub ttl_secs: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            capacity: 200_000,
            ttl_secs: 600,
        }
    }
}

/// Settings of the MNS verifier shared by every `mns` source.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct MnsConfig {
    /// Certificate URLs accepted in `x-mns-signing-cert-url`:
    /// `https://HOST[:PORT]/PATH`, exactly that path, or every path under
    /// it when PATH ends in `/`; one `*` in HOST matches within a single
    /// DNS label. Anything else, and any URL with a query string, is
    /// refused before a connection is made.
    pub cert_url_allowlist: Vec<String>,
    /// An `http://` certificate URL whose `https://` form is allowed is
    /// fetched over https (older MNS documentation shows http URLs).
    /// Certificates are never fetched over plain http.
    pub upgrade_http_cert_urls: bool,
    /// Extra PEM root certificates trusted for certificate downloads.
    pub extra_ca_file: Option<PathBuf>,
    /// Deadline for one certificate download.
    pub cert_fetch_timeout_ms: u64,
    /// Largest certificate accepted.
    pub max_cert_bytes: usize,
    /// How long a downloaded certificate is reused.
    pub cert_cache_ttl_secs: u64,
    /// Allowed difference between the `Date` header and our clock.
    pub date_tolerance_secs: u64,
}

impl Default for MnsConfig {
    fn default() -> Self {
        MnsConfig {
            // The one certificate URL Aliyun documents and real pushes
            // name (docs/configuration.md, "Where MNS pushes").
            cert_url_allowlist: vec![
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com/x509_public_certificate.pem"
                    .to_owned(),
            ],
            upgrade_http_cert_urls: true,
            extra_ca_file: None,
            cert_fetch_timeout_ms: 2_000,
            max_cert_bytes: 16 * 1024,
            cert_cache_ttl_secs: 3_600,
            date_tolerance_secs: 900,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be > 0"));
    }
    Ok(())
}

impl ServiceConfig for Config {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    /// Checks everything that can be checked without I/O. Secrets held in
    /// files, environment variables or SSM are resolved (and checked) when
    /// the gateway starts.
    fn validate(&self) -> Result<(), ConfigError> {
        self.aws.validate("aws")?;
        let l = &self.limits;
        positive("limits.max_body_bytes", l.max_body_bytes as u64)?;
        positive("limits.request_timeout_ms", l.request_timeout_ms)?;
        positive("limits.header_read_timeout_ms", l.header_read_timeout_ms)?;
        positive("limits.keep_alive_timeout_ms", l.keep_alive_timeout_ms)?;
        positive(
            "limits.tls_handshake_timeout_ms",
            l.tls_handshake_timeout_ms,
        )?;
        positive("limits.max_connections", l.max_connections as u64)?;
        let s = &self.sqs;
        positive("sqs.enqueue_timeout_ms", s.enqueue_timeout_ms)?;
        if !(1..=MAX_BATCH_ENTRIES).contains(&s.max_batch_entries) {
            return Err(ConfigError::invalid(
                "sqs.max_batch_entries",
                format!("must be between 1 and {MAX_BATCH_ENTRIES}"),
            ));
        }
        if !(1024..=MAX_BATCH_BYTES).contains(&s.max_batch_bytes) {
            return Err(ConfigError::invalid(
                "sqs.max_batch_bytes",
                format!("must be between 1024 and {MAX_BATCH_BYTES}"),
            ));
        }
        positive("sqs.max_in_flight_batches", s.max_in_flight_batches as u64)?;
        positive("sqs.entry_attempts", u64::from(s.entry_attempts))?;
        positive("sqs.readiness_probe_secs", s.readiness_probe_secs)?;
        if self.dedup.capacity > 0 {
            positive("dedup.ttl_secs", self.dedup.ttl_secs)?;
        }
        let m = &self.mns;
        for (i, prefix) in m.cert_url_allowlist.iter().enumerate() {
            crate::verify::mns::CertUrlRule::parse(prefix).map_err(|reason| {
                ConfigError::invalid(format!("mns.cert_url_allowlist[{i}]"), reason)
            })?;
        }
        positive("mns.cert_fetch_timeout_ms", m.cert_fetch_timeout_ms)?;
        positive("mns.max_cert_bytes", m.max_cert_bytes as u64)?;
        positive("mns.date_tolerance_secs", m.date_tolerance_secs)?;
        self.admin.validate()?;
        if let Some(archive) = &self.archive {
            archive.validate()?;
        }
        if self.sources.is_empty() {
            return Err(ConfigError::invalid(
                "sources",
                "no source configured; add a [sources.ID] table",
            ));
        }
        for (id, source) in &self.sources {
            source.validate(id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
