//! The gateway's configuration: `[listen]`, `[log]`, `[aws]`, `[limits]`,
//! `[sqs]` and one `[sources.ID]` table per webhook source. Every key is
//! listed in docs/configuration.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ossbridge_runtime::ConfigError;
use ossbridge_runtime::aws::AwsConfig;
use ossbridge_runtime::cli::ServiceConfig;
use ossbridge_runtime::config::require_http_url;
use ossbridge_runtime::logging::LogConfig;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the binary binds (tests hand `run` a listener instead).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub aws: AwsConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub sqs: SqsConfig,
    /// Webhook sources by id; the id is the `{source}` in
    /// `POST /v1/ingest/{source}`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted; larger ones get 413 before more is
    /// read.
    pub max_body_bytes: usize,
    /// After a shutdown signal, how long in-flight requests may take
    /// before their connections are dropped.
    pub shutdown_grace_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            shutdown_grace_secs: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqsConfig {
    /// Deadline for getting one request's messages into SQS, retries
    /// included. It must stay well inside MNS's 5 s push deadline so the
    /// sender sees our 503 rather than its own timeout.
    pub enqueue_timeout_ms: u64,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            enqueue_timeout_ms: 3000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The SQS queue this source's events go to.
    pub queue_url: String,
    pub verifier: VerifierConfig,
}

/// How a source's requests are authenticated. There is no "none": a source
/// without a verifier does not load.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifierConfig {
    /// Standard Webhooks: HMAC-SHA256 over `id.timestamp.body`.
    StandardWebhooks {
        /// `whsec_`-prefixed base64 secrets; several are accepted at once so
        /// a secret can be rotated without downtime.
        secrets: Vec<SecretString>,
        /// Allowed clock difference, either way, in seconds.
        #[serde(default = "default_tolerance_secs")]
        tolerance_secs: u64,
    },
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

fn default_tolerance_secs() -> u64 {
    300
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        Config::validate(self)
    }

    fn log(&self) -> &LogConfig {
        &self.log
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.aws.validate("aws")?;
        if self.limits.max_body_bytes == 0 {
            return Err(ConfigError::invalid("limits.max_body_bytes", "must be > 0"));
        }
        if self.sqs.enqueue_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "sqs.enqueue_timeout_ms",
                "must be > 0",
            ));
        }
        if self.sources.is_empty() {
            return Err(ConfigError::invalid(
                "sources",
                "no source configured; add a [sources.ID] table",
            ));
        }
        for (id, source) in &self.sources {
            let key = format!("sources.{id}");
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::invalid(
                    key,
                    "source ids may contain only letters, digits, '-' and '_'",
                ));
            }
            require_http_url(&format!("{key}.queue_url"), &source.queue_url)?;
            // Building the verifier checks its secrets.
            crate::verify::Verifier::from_config(&format!("{key}.verifier"), &source.verifier)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossbridge_runtime::parse_toml;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text)?;
        config.validate()?;
        Ok(config)
    }

    const SOURCE: &str = "[sources.s]\nqueue_url = \"http://127.0.0.1:1/q\"\n";

    #[test]
    fn the_example_configuration_is_valid() {
        let config = load(include_str!("../../deploy/config/gateway.example.toml")).expect("valid");
        assert!(config.sources.contains_key("media_prod"));
    }

    #[test]
    fn a_source_without_a_verifier_or_with_an_unknown_one_fails() {
        let err = load(SOURCE).expect_err("no verifier");
        assert!(
            err.to_string().contains("missing field `verifier`"),
            "{err}"
        );
        let err =
            load(&format!("{SOURCE}[sources.s.verifier]\ntype = \"none\"\n")).expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.contains("unknown variant") && msg.contains("sources.s.verifier"),
            "{msg}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let verifier =
            "[sources.s.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"whsec_AAAA\"]\n";
        let err = load(&format!("{SOURCE}{verifier}[limits]\nmax_body = 1\n")).expect_err("typo");
        assert!(err.to_string().contains("max_body"), "{err}");
        let err = load(&format!("[sources.s]\nqueue_url = \"sqs\"\n{verifier}")).expect_err("url");
        assert!(err.to_string().contains("sources.s.queue_url"), "{err}");
        let err = load("[sources.\"a b\"]\nqueue_url = \"http://h/q\"\n[sources.\"a b\".verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"whsec_AAAA\"]\n").expect_err("id");
        assert!(err.to_string().contains("sources.a b"), "{err}");
        let err = load("").expect_err("no sources");
        assert!(err.to_string().contains("sources"), "{err}");
    }
}
