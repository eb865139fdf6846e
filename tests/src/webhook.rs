//! A Standard Webhooks signer for tests, written from the specification
//! rather than shared with the gateway, so a bug in one is not mirrored in
//! the other.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Signer {
    key: Vec<u8>,
    secret: String,
}

impl Signer {
    /// A fresh secret derived from `seed` (tests need unique, not secret,
    /// values).
    pub fn generate(seed: &str) -> Signer {
        let key = Sha256::digest(format!("ossbridge-test-secret:{seed}")).to_vec();
        Signer::from_key(key)
    }

    /// A signer for an existing `whsec_` secret.
    pub fn from_secret(secret: &str) -> Option<Signer> {
        let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
        Some(Signer::from_key(key))
    }

    fn from_key(key: Vec<u8>) -> Signer {
        let secret = format!("whsec_{}", STANDARD.encode(&key));
        Signer { key, secret }
    }

    /// The `whsec_...` form the gateway is configured with.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `v1,BASE64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC accepts any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The three headers for a delivery sent at `timestamp`.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", self.signature(id, timestamp, body)),
        ]
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
