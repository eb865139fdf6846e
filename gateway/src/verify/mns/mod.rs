//! MNS HTTP push: OSS event notification → MNS topic → HTTP subscription,
//! so nothing runs on Aliyun.
//!
//! MNS signs the request with RSA-SHA1 (PKCS#1 v1.5) using the key of the
//! certificate named (base64) in `x-mns-signing-cert-url`, over
//!
//! ```text
//! METHOD \n Content-MD5 \n Content-Type \n Date \n
//! x-mns-*:value \n ... (lower-cased, sorted) PATH[?QUERY]
//! ```
//!
//! The body itself is not signed, only its `Content-MD5`, so the body is
//! checked against that digest and a request without one is refused. The
//! signature proves the request came from *some* MNS topic. Which topic is
//! said by the signed `x-mns-topic-owner` / `x-mns-topic-name` headers
//! (present on real pushes: see the 2023 push in the tests below), which
//! this verifier hands on as [`PushFacts`]; the body decoder authorizes on
//! them against the source's `topic_owners` / `topics`. A SIMPLIFIED body is
//! the publisher's bytes, verbatim, so only a signed header can say who
//! sent it.

mod cert;
mod rsa_sha1;

use std::sync::Arc;

use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use super::{VerifyError, header, matches_any};
pub use cert::{CertStore, CertUrlRule};
pub use rsa_sha1::UnsupportedKey;

const CERT_URL: &str = "x-mns-signing-cert-url";
const TOPIC_OWNER: &str = "x-mns-topic-owner";
const TOPIC_NAME: &str = "x-mns-topic-name";

/// What the signature vouches for, beyond the body digest: read only from
/// headers covered by the string-to-sign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushFacts {
    /// The URL carried the source's token, and the request came over
    /// HTTPS (a token seen on plain HTTP proves nothing).
    pub url_token_checked: bool,
    /// `x-mns-topic-owner`: the Aliyun account that owns the topic.
    pub topic_owner: Option<String>,
    /// `x-mns-topic-name`.
    pub topic_name: Option<String>,
    /// MNS sends SIMPLIFIED pushes as `text/plain` (XML ones as
    /// `text/xml`); `Content-Type` is signed.
    pub plain_text: bool,
    /// An operator's replay, not a push: nothing was signed, the operator
    /// vouches for the sender.
    pub operator_input: bool,
}

#[derive(Debug)]
pub struct MnsVerifier {
    certs: Arc<CertStore>,
    url_tokens: Vec<SecretString>,
}

impl MnsVerifier {
    pub fn new(certs: Arc<CertStore>, url_tokens: Vec<SecretString>) -> MnsVerifier {
        MnsVerifier { certs, url_tokens }
    }

    /// Verifies the push; returns what its signature vouches for.
    /// `over_https` says whether the sender's connection was encrypted.
    pub async fn verify(
        &self,
        request: &Parts,
        body: &[u8],
        now: OffsetDateTime,
        over_https: bool,
    ) -> Result<PushFacts, VerifyError> {
        let headers = &request.headers;
        let authorization = header(headers, "authorization")?;
        let signature = STANDARD
            .decode(authorization.trim())
            .map_err(|_| VerifyError::MalformedHeader("authorization"))?;
        let date = header(headers, "date")?;
        let sent_at =
            httpdate::parse_http_date(date).map_err(|_| VerifyError::MalformedHeader("date"))?;
        let sent_at = OffsetDateTime::from(sent_at);
        if (now - sent_at).abs() > self.certs.date_tolerance() {
            return Err(VerifyError::StaleTimestamp);
        }
        let content_md5 = header(headers, "content-md5")?;
        if !digest_matches(content_md5, body) {
            return Err(VerifyError::BodyDigestMismatch);
        }
        let url_token_checked = self.check_url_token(request)?;

        let cert_url = STANDARD
            .decode(header(headers, CERT_URL)?.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(VerifyError::MalformedHeader(CERT_URL))?;
        let fetch_url = self.certs.check_url(&cert_url)?;
        let key = self.certs.signing_key(fetch_url).await?;
        key.verify(string_to_sign(request).as_bytes(), &signature)?;
        let signed = |name: &'static str| -> Result<Option<String>, VerifyError> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(|s| s.trim().to_owned())
                        .map_err(|_| VerifyError::MalformedHeader(name))
                })
                .transpose()
        };
        Ok(PushFacts {
            url_token_checked: url_token_checked && over_https,
            topic_owner: signed(TOPIC_OWNER)?,
            topic_name: signed(TOPIC_NAME)?,
            plain_text: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim_start()
                        .to_ascii_lowercase()
                        .starts_with("text/plain")
                }),
            operator_input: false,
        })
    }

    fn check_url_token(&self, request: &Parts) -> Result<bool, VerifyError> {
        if self.url_tokens.is_empty() {
            return Ok(false);
        }
        let given = request
            .uri
            .query()
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or(VerifyError::BadUrlToken)?;
        let accepted: Vec<Vec<u8>> = self
            .url_tokens
            .iter()
            .map(|t| t.expose_secret().as_bytes().to_vec())
            .collect();
        if matches_any(given.as_bytes(), &accepted) {
            Ok(true)
        } else {
            Err(VerifyError::BadUrlToken)
        }
    }
}

/// The MNS string-to-sign, from the header values exactly as sent.
pub fn string_to_sign(request: &Parts) -> String {
    let headers = &request.headers;
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let mut mns: Vec<(String, &str)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-mns-"))
        .map(|(name, v)| {
            (
                name.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default(),
            )
        })
        .collect();
    mns.sort();
    let mut text = format!(
        "{}\n{}\n{}\n{}\n",
        request.method.as_str(),
        value("content-md5"),
        value("content-type"),
        value("date")
    );
    for (name, v) in mns {
        text.push_str(&name);
        text.push(':');
        text.push_str(v);
        text.push('\n');
    }
    let resource = request
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    text.push_str(resource);
    text
}

/// MNS's documented example carries base64 of the *hex* MD5; RFC 1864 says
/// base64 of the raw digest. Both (and bare hex) bind the body equally.
fn digest_matches(content_md5: &str, body: &[u8]) -> bool {
    let digest = Md5::digest(body);
    let hex_lower = hex::encode(digest);
    let given = content_md5.trim();
    let candidates = [
        STANDARD.encode(digest).into_bytes(),
        STANDARD.encode(&hex_lower).into_bytes(),
        STANDARD.encode(hex_lower.to_ascii_uppercase()).into_bytes(),
        hex_lower.clone().into_bytes(),
        hex_lower.to_ascii_uppercase().into_bytes(),
    ];
    matches_any(given.as_bytes(), &candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    #[test]
    fn builds_the_documented_string_to_sign() {
        let request = Request::post("/notifications")
            .header(
                "Content-MD5",
                "ZDgxNjY5ZjFlMDQ5MGM0YWMwMWE5ODlmZDVlYmQxYjI=",
            )
            .header("Content-Type", "text/xml;charset=utf-8")
            .header("Date", "Wed, 25 May 2016 10:46:14 GMT")
            .header("x-mns-version", "2015-06-06")
            .header("x-mns-request-id", "57458276F0E3D56D7C00****")
            .header("User-Agent", "Aliyun Notification Service Agent")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        assert_eq!(
            string_to_sign(&parts),
            "POST\nZDgxNjY5ZjFlMDQ5MGM0YWMwMWE5ODlmZDVlYmQxYjI=\ntext/xml;charset=utf-8\n\
             Wed, 25 May 2016 10:46:14 GMT\nx-mns-request-id:57458276F0E3D56D7C00****\n\
             x-mns-version:2015-06-06\n/notifications"
        );
    }

    /// A genuine push received on 2023-03-29 (SIMPLIFIED, published by a
    /// third party; see ../shared/notes/mns-real-push.md), signed with
    /// Aliyun's 512-bit key whose certificate expired in 2016.
    #[test]
    fn a_real_2023_push_verifies_with_aliyuns_expired_512_bit_certificate() {
        const CERT: &[u8] = include_bytes!("../../../../tests/fixtures/mns/aliyun-2023-cert.pem");
        const SIGNATURE: &str = "LP3cxoTCbhsiLJi0KQdEiRaufaxMfWUdLH064yoVoKl8xNcY+299itGmGsirVMY8vDpuZ1VwS0Uw7R5dNduSXg==";
        let mut request = Request::post("/notifications");
        for (name, value) in [
            ("Content-md5", "4CCBAD7AF2D23C2D00DDECCA59323A8C"),
            ("Content-Type", "text/plain;charset=utf-8"),
            ("Date", "Wed, 29 Mar 2023 08:41:27 GMT"),
            ("User-Agent", "Aliyun Notification Service Agent"),
            ("x-mns-version", "2015-06-06"),
            ("x-mns-topic-owner", "1321669497458181"),
            (
                "x-mns-topic-name",
                "mns-en-topics-oss-fecdn-internal-pre-22849529792243",
            ),
            (
                "x-mns-subscription-name",
                "mns-en-subs-oss-fecdn-internal-pre-1-22849529855680",
            ),
            ("x-mns-subscriber", "1321669497458181"),
            (
                "x-mns-signing-cert-url",
                "aHR0cHM6Ly9tbnN0ZXN0Lm9zcy1jbi1oYW5nemhvdS5hbGl5dW5jcy5jb20veDUwOV9wdWJsaWNfY2VydGlmaWNhdGUucGVt",
            ),
            ("x-mns-request-id", "6423F9B7BF94313030AF5EA0"),
            ("x-mns-publish-time", "1680079287576"),
            ("x-mns-message-id", "250EB49D5F8D737A391C93C6ED165396"),
        ] {
            request = request.header(name, value);
        }
        let (mut parts, ()) = request.body(()).expect("request").into_parts();
        let text = string_to_sign(&parts);
        assert_eq!(
            text,
            "POST\n4CCBAD7AF2D23C2D00DDECCA59323A8C\ntext/plain;charset=utf-8\n\
             Wed, 29 Mar 2023 08:41:27 GMT\n\
             x-mns-message-id:250EB49D5F8D737A391C93C6ED165396\n\
             x-mns-publish-time:1680079287576\n\
             x-mns-request-id:6423F9B7BF94313030AF5EA0\n\
             x-mns-signing-cert-url:aHR0cHM6Ly9tbnN0ZXN0Lm9zcy1jbi1oYW5nemhvdS5hbGl5dW5jcy5jb20veDUwOV9wdWJsaWNfY2VydGlmaWNhdGUucGVt\n\
             x-mns-subscriber:1321669497458181\n\
             x-mns-subscription-name:mns-en-subs-oss-fecdn-internal-pre-1-22849529855680\n\
             x-mns-topic-name:mns-en-topics-oss-fecdn-internal-pre-22849529792243\n\
             x-mns-topic-owner:1321669497458181\n\
             x-mns-version:2015-06-06\n\
             /notifications"
        );
        let key = cert::signing_key(CERT).expect("an expired certificate still holds a usable key");
        assert_eq!(key.bits(), 512);
        let signature = STANDARD.decode(SIGNATURE).expect("base64");
        assert_eq!(key.verify(text.as_bytes(), &signature), Ok(()));

        // The signature covers the topic owner: another one fails, and
        // fails as a signature mismatch (the key itself is fine).
        parts.headers.insert(
            "x-mns-topic-owner",
            "1148930107246818".parse().expect("value"),
        );
        assert_eq!(
            key.verify(string_to_sign(&parts).as_bytes(), &signature),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn content_md5_in_every_form_mns_uses() {
        let body = b"<Notification/>";
        let hex_md5 = hex::encode(Md5::digest(body));
        assert!(digest_matches(&STANDARD.encode(&hex_md5), body));
        assert!(digest_matches(&STANDARD.encode(Md5::digest(body)), body));
        assert!(digest_matches(&hex_md5.to_uppercase(), body));
        assert!(!digest_matches(
            &STANDARD.encode(&hex_md5),
            b"<Notification />"
        ));
    }
}
