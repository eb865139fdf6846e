//! Request authentication. A [`Verified`] request can only be built here,
//! by a verifier that checked the raw bytes, so nothing downstream can
//! parse an unauthenticated body by mistake.

mod standard_webhooks;

use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use ossbridge_runtime::ConfigError;
use time::OffsetDateTime;

use crate::config::VerifierConfig;
pub use standard_webhooks::StandardWebhooks;

/// A request body whose signature was checked.
#[derive(Debug)]
pub struct Verified {
    source: Arc<str>,
    body: Bytes,
}

impl Verified {
    fn new(source: Arc<str>, body: Bytes) -> Verified {
        Verified { source, body }
    }

    /// The source whose secret verified the body.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Why a request was not authenticated. The messages are what the sender
/// sees: short and specific, never a secret or an expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    #[error("timestamp outside the allowed window")]
    StaleTimestamp,
    #[error("signature mismatch")]
    BadSignature,
}

/// A source's verifier, built once at start-up from its configuration.
#[derive(Debug)]
pub enum Verifier {
    StandardWebhooks(StandardWebhooks),
}

impl Verifier {
    /// Builds the verifier; `key` names the configuration table in errors.
    pub fn from_config(key: &str, config: &VerifierConfig) -> Result<Verifier, ConfigError> {
        match config {
            VerifierConfig::StandardWebhooks {
                secrets,
                tolerance_secs,
            } => Ok(Verifier::StandardWebhooks(StandardWebhooks::new(
                key,
                secrets,
                *tolerance_secs,
            )?)),
        }
    }

    pub async fn verify(
        &self,
        source: Arc<str>,
        headers: &HeaderMap,
        body: Bytes,
        now: OffsetDateTime,
    ) -> Result<Verified, VerifyError> {
        match self {
            Verifier::StandardWebhooks(v) => {
                v.verify(headers, &body, now)?;
                Ok(Verified::new(source, body))
            }
        }
    }
}

/// A header's value as text, or the reason it cannot be used.
fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, VerifyError> {
    headers
        .get(name)
        .ok_or(VerifyError::MissingHeader(name))?
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader(name))
}
