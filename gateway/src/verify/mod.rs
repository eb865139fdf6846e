//! Request authentication, one verifier per delivery path. A [`Verified`]
//! body can only be built here, by a verifier that checked it, so nothing
//! downstream can parse an unauthenticated body by mistake.

mod credentials;
mod hmac;
pub mod mns;
mod standard_webhooks;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::request::Parts;
use bytes::Bytes;
use ossbridge_runtime::ConfigError;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::config::VerifierConfig;
pub use credentials::{ApiKey, BasicAuth};
pub use hmac::HmacVerifier;
pub use mns::{CertStore, MnsVerifier, PushFacts};
pub use standard_webhooks::StandardWebhooks;

/// A request body whose authenticity was checked.
#[derive(Debug)]
pub struct Verified {
    source: Arc<str>,
    body: Bytes,
    mns: PushFacts,
}

impl Verified {
    fn new(source: Arc<str>, body: Bytes) -> Verified {
        Verified {
            source,
            body,
            mns: PushFacts::default(),
        }
    }

    /// The source whose verifier accepted the body.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as received (a cheap clone), for the archive.
    pub fn bytes(&self) -> Bytes {
        self.body.clone()
    }

    /// Operator input that is trusted without a signature: `replay` files
    /// and the admin replay endpoint (behind its own token), and archive
    /// records, which hold only bodies a verifier accepted. It still goes
    /// through the same decoding; an MNS body counts as carrying the URL
    /// token (its topic owner is still checked when the source lists
    /// owners).
    pub(crate) fn trusted_operator_input(source: Arc<str>, body: Bytes) -> Verified {
        Verified {
            source,
            body,
            mns: PushFacts {
                url_token_checked: true,
                operator_input: true,
                ..PushFacts::default()
            },
        }
    }

    /// What an MNS push's signature vouched for (all empty for other
    /// verifiers).
    pub fn mns(&self) -> &PushFacts {
        &self.mns
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
    #[error("bad credentials")]
    BadCredentials,
    #[error("Content-MD5 does not match the body")]
    BodyDigestMismatch,
    #[error("missing or wrong url token")]
    BadUrlToken,
    /// A trusted proxy says the request came over plain HTTP, and the
    /// source's secrets must not travel in clear.
    #[error("this source accepts only HTTPS")]
    PlainHttp,
    #[error("signing certificate URL refused: {0}")]
    CertificateUrlRefused(&'static str),
    /// The certificate could not be fetched (timeout, network, 5xx): the
    /// request may well be genuine, so the sender should retry.
    #[error("signing certificate unavailable, retry later")]
    CertificateUnavailable,
    /// The certificate host answered, but not with a usable certificate.
    #[error("signing certificate unusable: {0}")]
    CertificateInvalid(&'static str),
    /// A key the MNS verifier cannot use (its type or size): said as such,
    /// so a key problem is never mistaken for a forged signature.
    #[error("signing certificate key unsupported: {0}")]
    UnsupportedKey(mns::UnsupportedKey),
}

impl VerifyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, VerifyError::CertificateUnavailable)
    }

    /// Which check failed, as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) | VerifyError::MalformedHeader(_) => "header",
            VerifyError::StaleTimestamp => "timestamp",
            VerifyError::BadSignature => "signature",
            VerifyError::BadCredentials => "credentials",
            VerifyError::BodyDigestMismatch => "body_digest",
            VerifyError::BadUrlToken => "url_token",
            VerifyError::PlainHttp => "plain_http",
            VerifyError::CertificateUrlRefused(_) => "certificate_url",
            VerifyError::CertificateUnavailable => "certificate_unavailable",
            VerifyError::CertificateInvalid(_) => "certificate",
            VerifyError::UnsupportedKey(_) => "certificate_key",
        }
    }
}

/// A source's verifier, built once at start-up from its configuration and
/// resolved secrets.
#[derive(Debug)]
pub enum Verifier {
    StandardWebhooks(StandardWebhooks),
    Hmac(HmacVerifier),
    ApiKey(ApiKey),
    BasicAuth(BasicAuth),
    Mns(MnsVerifier),
}

impl Verifier {
    /// Builds the verifier. `key` names the configuration table in errors;
    /// `secrets` are the resolved values of the verifier's secret setting
    /// (its `url_token` for MNS).
    pub fn build(
        key: &str,
        config: &VerifierConfig,
        secrets: Vec<SecretString>,
        certs: &Arc<CertStore>,
    ) -> Result<Verifier, ConfigError> {
        Ok(match config {
            VerifierConfig::StandardWebhooks { tolerance_secs, .. } => {
                Verifier::StandardWebhooks(StandardWebhooks::new(key, &secrets, *tolerance_secs)?)
            }
            VerifierConfig::Hmac {
                algorithm,
                header,
                timestamp_header,
                tolerance_secs,
                ..
            } => Verifier::Hmac(HmacVerifier::new(
                key,
                *algorithm,
                &secrets,
                header.as_deref(),
                timestamp_header.as_deref(),
                *tolerance_secs,
            )?),
            VerifierConfig::ApiKey { header, .. } => {
                Verifier::ApiKey(ApiKey::new(key, header, secrets)?)
            }
            VerifierConfig::BasicAuth { username, .. } => {
                Verifier::BasicAuth(BasicAuth::new(username, secrets))
            }
            VerifierConfig::Mns { .. } => Verifier::Mns(MnsVerifier::new(certs.clone(), secrets)),
        })
    }

    /// `over_https`: whether the sender's connection was encrypted (only
    /// the MNS verifier may run without; see `allow_plain_http`).
    pub async fn verify(
        &self,
        source: Arc<str>,
        request: &Parts,
        body: Bytes,
        now: OffsetDateTime,
        over_https: bool,
    ) -> Result<Verified, VerifyError> {
        let headers = &request.headers;
        match self {
            Verifier::StandardWebhooks(v) => v.verify(headers, &body, now)?,
            Verifier::Hmac(v) => v.verify(headers, &body, now)?,
            Verifier::ApiKey(v) => v.verify(headers)?,
            Verifier::BasicAuth(v) => v.verify(headers)?,
            Verifier::Mns(v) => {
                let facts = v.verify(request, &body, now, over_https).await?;
                let mut verified = Verified::new(source, body);
                verified.mns = facts;
                return Ok(verified);
            }
        }
        Ok(Verified::new(source, body))
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

/// Whether `candidate` equals any of `accepted`, in time independent of
/// where they differ and of their lengths: both sides are compared as
/// SHA-256 digests, whose length is fixed (`subtle` alone returns at once
/// for slices of different lengths, telling a guesser the secret's
/// length), and every accepted value is compared.
pub(crate) fn matches_any(candidate: &[u8], accepted: &[Vec<u8>]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let given = Sha256::digest(candidate);
    accepted.iter().fold(0u8, |acc, a| {
        acc | given
            .as_slice()
            .ct_eq(Sha256::digest(a).as_slice())
            .unwrap_u8()
    }) == 1
}

/// Checks a Unix-seconds timestamp against `now` ± `tolerance_secs`.
fn check_timestamp(
    sent_at: i64,
    now: OffsetDateTime,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    if now.unix_timestamp().abs_diff(sent_at) > tolerance_secs.unsigned_abs() {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::matches_any;

    #[test]
    fn equal_values_match_whatever_their_length() {
        let accepted = vec![b"short".to_vec(), b"a-much-longer-secret".to_vec()];
        assert!(matches_any(b"short", &accepted));
        assert!(matches_any(b"a-much-longer-secret", &accepted));
        assert!(!matches_any(b"shor", &accepted));
        assert!(!matches_any(b"", &accepted));
        assert!(!matches_any(b"short", &[]));
    }
}
