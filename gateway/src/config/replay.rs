//! `[admin]` (the replay endpoint) and `[archive]` (the event archive).

use ossbridge_runtime::ConfigError;
use serde::Deserialize;

use super::Secrets;

/// `POST /admin/replay/{source}` on the admin listener.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer tokens accepted by the replay endpoint (a secret-valued
    /// setting). Unset: the endpoint is disabled (404).
    pub replay_tokens: Option<Secrets>,
    /// Replay requests per second (governor token bucket).
    pub replay_per_second: u32,
    /// Bucket size of that limit.
    pub replay_burst: u32,
    /// Largest replay request body.
    pub replay_max_body_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            replay_tokens: None,
            replay_per_second: 1,
            replay_burst: 5,
            replay_max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The event archive: every accepted body, gzip NDJSON on S3, one object
/// per window per gateway instance.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    pub bucket: String,
    /// Key prefix (without a trailing `/`).
    #[serde(default)]
    pub prefix: String,
    /// Length of one archive object's time window.
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    /// The bucket's region (`aws.region` when unset).
    pub region: Option<String>,
    /// Path-style requests (emulators).
    #[serde(default)]
    pub force_path_style: bool,
}

fn default_window_secs() -> u64 {
    300
}

impl AdminConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replay_per_second == 0 {
            return Err(ConfigError::invalid(
                "admin.replay_per_second",
                "must be > 0",
            ));
        }
        if self.replay_max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "admin.replay_max_body_bytes",
                "must be > 0",
            ));
        }
        Ok(())
    }
}

impl ArchiveConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bucket.is_empty() {
            return Err(ConfigError::invalid("archive.bucket", "must not be empty"));
        }
        if self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return Err(ConfigError::invalid(
                "archive.prefix",
                "must not start or end with '/'",
            ));
        }
        if !(60..=86_400).contains(&self.window_secs) || 86_400 % self.window_secs != 0 {
            return Err(ConfigError::invalid(
                "archive.window_secs",
                "must be between 60 and 86400 and divide a day",
            ));
        }
        if self.region.as_deref() == Some("") {
            return Err(ConfigError::invalid("archive.region", "must not be empty"));
        }
        Ok(())
    }
}
