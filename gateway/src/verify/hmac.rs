//! GitHub-style body signatures: `X-Hub-Signature-256: sha256=HEX`
//! (HMAC-SHA256) or `X-Hub-Signature: sha1=HEX` (HMAC-SHA1), keyed with the
//! raw secret. GitHub signs the body alone and carries no timestamp, so a
//! captured request can be replayed; when `timestamp_header` is configured
//! the signature covers `{timestamp}.{body}` and stale requests are
//! refused.

use axum::http::{HeaderMap, HeaderName};
use hmac::{Hmac, KeyInit, Mac};
use ossbridge_runtime::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::Sha256;
use time::OffsetDateTime;

use super::{VerifyError, check_timestamp, matches_any};
use crate::config::HmacAlgorithm;

#[derive(Debug)]
pub struct HmacVerifier {
    algorithm: HmacAlgorithm,
    keys: Vec<SecretString>,
    header: HeaderName,
    /// The header's name as sent in error messages.
    header_label: &'static str,
    timestamp: Option<(HeaderName, &'static str, i64)>,
}

impl HmacVerifier {
    pub fn new(
        key: &str,
        algorithm: HmacAlgorithm,
        secrets: &[SecretString],
        header: Option<&str>,
        timestamp_header: Option<&str>,
        tolerance_secs: u64,
    ) -> Result<HmacVerifier, ConfigError> {
        let default = match algorithm {
            HmacAlgorithm::Sha1 => "x-hub-signature",
            HmacAlgorithm::Sha256 => "x-hub-signature-256",
        };
        let header_label = leak_lowercase(header.unwrap_or(default));
        let header = HeaderName::try_from(header_label).map_err(|_| {
            ConfigError::invalid(format!("{key}.header"), "not a valid header name")
        })?;
        let timestamp = match timestamp_header {
            Some(name) => {
                let label = leak_lowercase(name);
                let parsed = HeaderName::try_from(label).map_err(|_| {
                    ConfigError::invalid(
                        format!("{key}.timestamp_header"),
                        "not a valid header name",
                    )
                })?;
                let tolerance = i64::try_from(tolerance_secs).map_err(|_| {
                    ConfigError::invalid(format!("{key}.tolerance_secs"), "out of range")
                })?;
                Some((parsed, label, tolerance))
            }
            None => None,
        };
        Ok(HmacVerifier {
            algorithm,
            keys: secrets.to_vec(),
            header,
            header_label,
            timestamp,
        })
    }

    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let value = headers
            .get(&self.header)
            .ok_or(VerifyError::MissingHeader(self.header_label))?
            .to_str()
            .map_err(|_| VerifyError::MalformedHeader(self.header_label))?;
        let prefix = match self.algorithm {
            HmacAlgorithm::Sha1 => "sha1=",
            HmacAlgorithm::Sha256 => "sha256=",
        };
        let signature = value
            .strip_prefix(prefix)
            .and_then(|hex_sig| hex::decode(hex_sig).ok())
            .ok_or(VerifyError::MalformedHeader(self.header_label))?;

        let timestamp = match &self.timestamp {
            Some((name, label, tolerance)) => {
                let text = headers
                    .get(name)
                    .ok_or(VerifyError::MissingHeader(label))?
                    .to_str()
                    .map_err(|_| VerifyError::MalformedHeader(label))?;
                let sent_at: i64 = text
                    .parse()
                    .map_err(|_| VerifyError::MalformedHeader(label))?;
                check_timestamp(sent_at, now, *tolerance)?;
                Some(text)
            }
            None => None,
        };

        let candidates = [signature];
        for key in &self.keys {
            let expected = self.sign(key.expose_secret().as_bytes(), timestamp, body);
            if matches_any(&expected, &candidates) {
                return Ok(());
            }
        }
        Err(VerifyError::BadSignature)
    }

    fn sign(&self, key: &[u8], timestamp: Option<&str>, body: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + KeyInit>(key: &[u8], timestamp: Option<&str>, body: &[u8]) -> Vec<u8> {
            let mut mac = match <M as KeyInit>::new_from_slice(key) {
                Ok(mac) => mac,
                Err(_) => unreachable!("HMAC takes keys of any length"),
            };
            if let Some(ts) = timestamp {
                mac.update(ts.as_bytes());
                mac.update(b".");
            }
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        match self.algorithm {
            HmacAlgorithm::Sha1 => mac::<Hmac<Sha1>>(key, timestamp, body),
            HmacAlgorithm::Sha256 => mac::<Hmac<Sha256>>(key, timestamp, body),
        }
    }
}

/// Header names live as long as the process (a handful, built at start-up)
/// and appear in `&'static str` error reasons.
fn leak_lowercase(name: &str) -> &'static str {
    Box::leak(name.to_ascii_lowercase().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn verifier(algorithm: HmacAlgorithm, timestamp_header: Option<&str>) -> HmacVerifier {
        HmacVerifier::new(
            "k",
            algorithm,
            &[SecretString::from("It's a Secret to Everybody")],
            None,
            timestamp_header,
            300,
        )
        .expect("valid")
    }

    // GitHub's documented example: secret "It's a Secret to Everybody",
    // payload "Hello, World!".
    #[test]
    fn accepts_githubs_documented_sha256_example() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-hub-signature-256",
            HeaderValue::from_static(
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            ),
        );
        let v = verifier(HmacAlgorithm::Sha256, None);
        assert_eq!(
            v.verify(&h, b"Hello, World!", OffsetDateTime::now_utc()),
            Ok(())
        );
        assert_eq!(
            v.verify(&h, b"Hello, World?", OffsetDateTime::now_utc()),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn sha1_and_timestamped_signatures() {
        let now = OffsetDateTime::now_utc();
        let v = verifier(HmacAlgorithm::Sha1, None);
        let sig = hex::encode(v.sign(b"It's a Secret to Everybody", None, b"x"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-hub-signature",
            HeaderValue::from_str(&format!("sha1={sig}")).expect("hv"),
        );
        assert_eq!(v.verify(&h, b"x", now), Ok(()));

        let v = verifier(HmacAlgorithm::Sha256, Some("X-Signature-Timestamp"));
        let ts = now.unix_timestamp().to_string();
        let sig = hex::encode(v.sign(b"It's a Secret to Everybody", Some(&ts), b"x"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&format!("sha256={sig}")).expect("hv"),
        );
        assert_eq!(
            v.verify(&h, b"x", now),
            Err(VerifyError::MissingHeader("x-signature-timestamp"))
        );
        h.insert(
            "x-signature-timestamp",
            HeaderValue::from_str(&ts).expect("hv"),
        );
        assert_eq!(v.verify(&h, b"x", now), Ok(()));
        let later = now + time::Duration::minutes(10);
        assert_eq!(v.verify(&h, b"x", later), Err(VerifyError::StaleTimestamp));
    }
}
