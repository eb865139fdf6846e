//! Standard Webhooks (<https://www.standardwebhooks.com>): HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}` with the base64-decoded
//! `whsec_` secret; `webhook-signature` holds space-separated `v1,BASE64`
//! entries so a sender can sign with an old and a new secret at once.

use axum::http::HeaderMap;
use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use ossbridge_runtime::ConfigError;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;
use time::OffsetDateTime;

use super::{VerifyError, check_timestamp, header, matches_any};

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";

#[derive(Debug)]
pub struct StandardWebhooks {
    keys: Vec<SecretSlice<u8>>,
    tolerance_secs: i64,
}

impl StandardWebhooks {
    pub fn new(
        key: &str,
        secrets: &[SecretString],
        tolerance_secs: u64,
    ) -> Result<StandardWebhooks, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::invalid(
                format!("{key}.secrets"),
                "at least one secret is required",
            ));
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                decode_secret(secret.expose_secret()).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{key}.secrets[{i}]"),
                        "not a Standard Webhooks secret (whsec_ followed by base64)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tolerance_secs = i64::try_from(tolerance_secs)
            .map_err(|_| ConfigError::invalid(format!("{key}.tolerance_secs"), "out of range"))?;
        Ok(StandardWebhooks {
            keys,
            tolerance_secs,
        })
    }

    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let id = header(headers, ID)?;
        let timestamp = header(headers, TIMESTAMP)?;
        let signatures = header(headers, SIGNATURE)?;

        let sent_at: i64 = timestamp
            .parse()
            .map_err(|_| VerifyError::MalformedHeader(TIMESTAMP))?;
        check_timestamp(sent_at, now, self.tolerance_secs)?;

        let candidates: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::MalformedHeader(SIGNATURE));
        }

        for key in &self.keys {
            let expected = sign(key.expose_secret(), id, timestamp, body);
            if matches_any(&expected, &candidates) {
                return Ok(());
            }
        }
        Err(VerifyError::BadSignature)
    }
}

fn decode_secret(secret: &str) -> Option<SecretSlice<u8>> {
    // Secrets circulate with and without base64 padding; the reference
    // libraries accept both.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let b64 = secret.strip_prefix("whsec_")?;
    let bytes = LENIENT.decode(b64).ok().filter(|b| !b.is_empty())?;
    Some(SecretSlice::from(bytes))
}

fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn verifier(secrets: &[&str]) -> StandardWebhooks {
        let secrets: Vec<SecretString> = secrets.iter().map(|s| SecretString::from(*s)).collect();
        StandardWebhooks::new("sources.t.verifier", &secrets, 300).expect("valid")
    }

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ID, HeaderValue::from_str(id).expect("id"));
        h.insert(
            TIMESTAMP,
            HeaderValue::from_str(&ts.to_string()).expect("ts"),
        );
        h.insert(SIGNATURE, HeaderValue::from_str(sig).expect("sig"));
        h
    }

    fn signature(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .expect("b64");
        format!(
            "v1,{}",
            STANDARD.encode(sign(&key, id, &ts.to_string(), body))
        )
    }

    // The example from the Standard Webhooks specification's reference
    // implementations (msg_id, timestamp, payload and signature).
    #[test]
    fn accepts_the_specification_example() {
        let v = verifier(&[SECRET]);
        let body = br#"{"test": 2432232314}"#;
        let ts = 1614265330;
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            ts,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        let now = OffsetDateTime::from_unix_timestamp(ts).expect("ts");
        assert_eq!(v.verify(&h, body, now), Ok(()));
    }

    #[test]
    fn any_configured_secret_and_any_listed_signature_verify() {
        let old = "whsec_b2xkLXNlY3JldC1rZXk=";
        let v = verifier(&[old, SECRET]);
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp();
        let good = signature(SECRET, "id1", ts, b"x");
        let h = headers("id1", ts, &format!("v1,AAAA v1a,zzz {good}"));
        assert_eq!(v.verify(&h, b"x", now), Ok(()));
    }

    #[test]
    fn rejects_tampering_wrong_secret_and_stale_or_future_timestamps() {
        let v = verifier(&[SECRET]);
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp();
        let sig = signature(SECRET, "id", ts, b"body");
        assert_eq!(
            v.verify(&headers("id", ts, &sig), b"bodY", now),
            Err(VerifyError::BadSignature)
        );
        let wrong = signature("whsec_d3Jvbmc=", "id", ts, b"body");
        assert_eq!(
            v.verify(&headers("id", ts, &wrong), b"body", now),
            Err(VerifyError::BadSignature)
        );
        for skew in [-301, 301, -600] {
            let sig = signature(SECRET, "id", ts + skew, b"body");
            assert_eq!(
                v.verify(&headers("id", ts + skew, &sig), b"body", now),
                Err(VerifyError::StaleTimestamp)
            );
        }
    }

    #[test]
    fn rejects_missing_and_malformed_headers() {
        let v = verifier(&[SECRET]);
        let now = OffsetDateTime::now_utc();
        let ts = now.unix_timestamp();
        let mut h = headers("id", ts, "v1,AAAA");
        h.remove(ID);
        assert_eq!(v.verify(&h, b"", now), Err(VerifyError::MissingHeader(ID)));
        let h = headers("id", ts, "v2,AAAA");
        assert_eq!(
            v.verify(&h, b"", now),
            Err(VerifyError::MalformedHeader(SIGNATURE))
        );
        let mut h = headers("id", ts, "v1,AAAA");
        h.insert(TIMESTAMP, HeaderValue::from_static("soon"));
        assert_eq!(
            v.verify(&h, b"", now),
            Err(VerifyError::MalformedHeader(TIMESTAMP))
        );
    }

    #[test]
    fn bad_secrets_fail_at_start_naming_the_key() {
        assert!(decode_secret("whsec_b2xk").is_some());
        assert!(
            decode_secret("whsec_b2xkeA").is_some(),
            "unpadded base64 is accepted"
        );
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***", "whsec_"] {
            let err = StandardWebhooks::new("sources.s.verifier", &[SecretString::from(bad)], 300)
                .expect_err("invalid");
            assert!(
                err.to_string().contains("sources.s.verifier.secrets[0]"),
                "{err}"
            );
            let body = bad.trim_start_matches("whsec_");
            assert!(
                body.is_empty() || !err.to_string().contains(body),
                "secret leaked: {err}"
            );
        }
        let err = StandardWebhooks::new("k", &[], 300).expect_err("empty");
        assert!(err.to_string().contains("k.secrets"));
    }
}
