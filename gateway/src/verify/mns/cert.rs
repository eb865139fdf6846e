//! MNS signing certificates: which URLs may be fetched, fetching them
//! (https only, no redirects, short timeout, size cap) and caching their
//! public keys.
//!
//! A URL is checked against the allowlist before any connection is made,
//! so a forged `x-mns-signing-cert-url` cannot make the gateway contact an
//! arbitrary host.
//!
//! The certificate is only a container for the key: its validity dates,
//! issuer and self-signature are not checked. Aliyun's certificate is
//! self-signed and expired on 2016-07-01, yet it signed a genuine push in
//! 2023 (see the fixture `tests/fixtures/mns/aliyun-2023-cert.pem`); what
//! vouches for the key is the allowlisted HTTPS location it was fetched
//! from, not the certificate.

use std::sync::Arc;
use std::time::Duration;

use ossbridge_runtime::ConfigError;
use url::Url;
use x509_cert::Certificate;
use x509_cert::der::{Decode, DecodePem};

use super::VerifyError;
use super::rsa_sha1::{SigningKey, UnsupportedKey};
use crate::config::MnsConfig;

/// rsaEncryption (RFC 8017).
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// One allowlist entry: `https://HOST[:PORT]/PATH`. A PATH ending in `/`
/// admits every path under it; any other PATH admits exactly that path.
/// One `*` in HOST matches within a single DNS label.
#[derive(Debug, Clone)]
pub struct CertUrlRule {
    host: String,
    port: u16,
    path: String,
}

impl CertUrlRule {
    pub fn parse(text: &str) -> Result<CertUrlRule, String> {
        let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if url.scheme() != "https" {
            return Err(format!("{text:?} must be an https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            return Err(format!("{text:?} must not contain credentials or a query"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{text:?} has no host"))?
            .to_ascii_lowercase();
        if host.matches('*').count() > 1 {
            return Err(format!("{text:?}: at most one '*' in the host"));
        }
        Ok(CertUrlRule {
            host,
            port: url.port_or_known_default().unwrap_or(443),
            path: url.path().to_owned(),
        })
    }

    fn matches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        url.scheme() == "https"
            && url.port_or_known_default() == Some(self.port)
            && if self.path.ends_with('/') {
                url.path().starts_with(&self.path)
            } else {
                url.path() == self.path
            }
            && host_matches(&self.host, &host.to_ascii_lowercase())
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let (pattern_labels, host_labels): (Vec<&str>, Vec<&str>) =
        (pattern.split('.').collect(), host.split('.').collect());
    pattern_labels.len() == host_labels.len()
        && pattern_labels
            .iter()
            .zip(&host_labels)
            .all(|(p, h)| match p.split_once('*') {
                None => p == h,
                Some((before, after)) => {
                    h.len() > before.len() + after.len()
                        && h.starts_with(before)
                        && h.ends_with(after)
                }
            })
}

/// Fetches and caches signing certificates' RSA keys.
#[derive(Debug)]
pub struct CertStore {
    rules: Vec<CertUrlRule>,
    upgrade_http: bool,
    client: reqwest::Client,
    max_bytes: usize,
    date_tolerance: time::Duration,
    /// URL → the certificate's key, checked to be usable. Refusals are
    /// not cached: the next push tries again.
    cache: moka::future::Cache<String, Arc<SigningKey>>,
}

impl CertStore {
    pub fn new(config: &MnsConfig) -> Result<CertStore, ConfigError> {
        let rules = config
            .cert_url_allowlist
            .iter()
            .enumerate()
            .map(|(i, r)| {
                CertUrlRule::parse(r).map_err(|reason| {
                    ConfigError::invalid(format!("mns.cert_url_allowlist[{i}]"), reason)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = Duration::from_millis(config.cert_fetch_timeout_ms);
        let mut client = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(path) = &config.extra_ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::invalid(
                    "mns.extra_ca_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ConfigError::invalid("mns.extra_ca_file", format!("not PEM certificates: {e}"))
            })?;
            for root in roots {
                client = client.add_root_certificate(root);
            }
        }
        let client = client.build().map_err(|e| {
            ConfigError::invalid("mns", format!("cannot build the HTTPS client: {e}"))
        })?;
        Ok(CertStore {
            rules,
            upgrade_http: config.upgrade_http_cert_urls,
            client,
            max_bytes: config.max_cert_bytes,
            date_tolerance: time::Duration::seconds(config.date_tolerance_secs as i64),
            cache: moka::future::Cache::builder()
                .max_capacity(64)
                .time_to_live(Duration::from_secs(config.cert_cache_ttl_secs))
                .build(),
        })
    }

    pub fn date_tolerance(&self) -> time::Duration {
        self.date_tolerance
    }

    /// The URL to fetch for a certificate URL as MNS sent it, or why it is
    /// refused. Nothing is contacted here.
    pub fn check_url(&self, raw: &str) -> Result<Url, VerifyError> {
        let mut url =
            Url::parse(raw).map_err(|_| VerifyError::CertificateUrlRefused("not a URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(VerifyError::CertificateUrlRefused("credentials in the URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(VerifyError::CertificateUrlRefused("query string"));
        }
        match url.scheme() {
            "https" => {}
            "http" if self.upgrade_http => {
                // Fetched over https or not at all.
                url.set_scheme("https")
                    .map_err(|()| VerifyError::CertificateUrlRefused("not a URL"))?;
                if url.port() == Some(80) {
                    let _ = url.set_port(None);
                }
            }
            "http" => return Err(VerifyError::CertificateUrlRefused("plain http")),
            _ => return Err(VerifyError::CertificateUrlRefused("not an https URL")),
        }
        if self.rules.iter().any(|r| r.matches(&url)) {
            Ok(url)
        } else {
            Err(VerifyError::CertificateUrlRefused("not on the allowlist"))
        }
    }

    /// The certificate's signing key, from the cache or fetched. `url`
    /// must come from [`CertStore::check_url`].
    pub async fn signing_key(&self, url: Url) -> Result<Arc<SigningKey>, VerifyError> {
        self.cache
            .try_get_with(url.to_string(), self.fetch(url))
            .await
            .map_err(|e: Arc<VerifyError>| (*e).clone())
    }

    async fn fetch(&self, url: Url) -> Result<Arc<SigningKey>, VerifyError> {
        let mut response = self.client.get(url.clone()).send().await.map_err(|e| {
            tracing::warn!(event = "mns_cert_fetch_failed", url = %url, error = %e);
            VerifyError::CertificateUnavailable
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(VerifyError::CertificateUrlRefused(
                "redirects are not followed",
            ));
        }
        if status.is_server_error() {
            tracing::warn!(event = "mns_cert_fetch_failed", url = %url, status = status.as_u16());
            return Err(VerifyError::CertificateUnavailable);
        }
        if !status.is_success() {
            tracing::warn!(event = "mns_cert_fetch_refused", url = %url, status = status.as_u16());
            return Err(VerifyError::CertificateInvalid("not served (HTTP 4xx)"));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| VerifyError::CertificateUnavailable)?
        {
            if bytes.len() + chunk.len() > self.max_bytes {
                tracing::warn!(event = "mns_cert_too_large", url = %url, limit = self.max_bytes);
                return Err(VerifyError::CertificateInvalid(
                    "larger than mns.max_cert_bytes",
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let key = signing_key(&bytes).inspect_err(|e| {
            tracing::warn!(event = "mns_cert_unusable", url = %url, error = %e);
        })?;
        tracing::info!(event = "mns_cert_fetched", url = %url, key_bits = key.bits());
        Ok(Arc::new(key))
    }
}

/// The RSA key of a PEM or DER X.509 certificate. Nothing else in the
/// certificate is looked at (see the module comment).
pub(super) fn signing_key(bytes: &[u8]) -> Result<SigningKey, VerifyError> {
    let cert = Certificate::from_pem(bytes)
        .or_else(|_| Certificate::from_der(bytes))
        .map_err(|_| VerifyError::CertificateInvalid("not an X.509 certificate"))?;
    let spki = cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
        return Err(VerifyError::UnsupportedKey(UnsupportedKey::NotRsa));
    }
    let der = spki
        .subject_public_key
        .as_bytes()
        .ok_or(VerifyError::CertificateInvalid("malformed RSA key"))?;
    SigningKey::from_pkcs1_der(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(rules: &[&str], upgrade_http: bool) -> CertStore {
        let config = MnsConfig {
            cert_url_allowlist: rules.iter().map(|r| (*r).to_owned()).collect(),
            upgrade_http_cert_urls: upgrade_http,
            ..MnsConfig::default()
        };
        CertStore::new(&config).expect("valid")
    }

    #[test]
    fn the_default_allowlist_admits_aliyuns_certificate_hosts_only() {
        let s = CertStore::new(&MnsConfig::default()).expect("valid");
        for ok in [
            "https://mnstest.oss-cn-hangzhou.aliyuncs.com/x509_public_certificate.pem",
            "http://mnstest.oss-cn-hangzhou.aliyuncs.com/x509_public_certificate.pem",
        ] {
            assert!(s.check_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com/x509_public_certificate.pem?x=1",
                "query string",
            ),
            (
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com/x509_public_certificate.pem#x",
                "query string",
            ),
            (
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com/evil/x509_public_certificate.pem",
                "not on the allowlist",
            ),
            (
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com/x509_public_certificate.pem.evil",
                "not on the allowlist",
            ),
            (
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com/a/../x509_public_certificate.pem/",
                "not on the allowlist",
            ),
            (
                "https://mns-cert.oss-cn-shanghai.aliyuncs.com/x509_public_certificate.pem",
                "not on the allowlist",
            ),
            (
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com.evil.example/x.pem",
                "not on the allowlist",
            ),
            (
                "https://evil.example/mnstest.oss-cn-hangzhou.aliyuncs.com/",
                "not on the allowlist",
            ),
            (
                "https://mns-cert.oss-cn-shanghai.evil.aliyuncs.com/x.pem",
                "not on the allowlist",
            ),
            (
                "https://mnstest.oss-cn-hangzhou.aliyuncs.com:8443/x.pem",
                "not on the allowlist",
            ),
            (
                "https://user@mnstest.oss-cn-hangzhou.aliyuncs.com/x.pem",
                "credentials in the URL",
            ),
            (
                "ftp://mnstest.oss-cn-hangzhou.aliyuncs.com/x.pem",
                "not an https URL",
            ),
            ("mnstest.oss-cn-hangzhou.aliyuncs.com/x.pem", "not a URL"),
        ] {
            assert_eq!(
                s.check_url(bad),
                Err(VerifyError::CertificateUrlRefused(why)),
                "{bad}"
            );
        }
    }

    #[test]
    fn plain_http_is_refused_unless_upgraded_and_ports_must_match() {
        let s = store(&["https://127.0.0.1:8443/certs/"], false);
        assert_eq!(
            s.check_url("http://127.0.0.1:8443/certs/a.pem"),
            Err(VerifyError::CertificateUrlRefused("plain http"))
        );
        assert!(s.check_url("https://127.0.0.1:8443/certs/a.pem").is_ok());
        assert!(s.check_url("https://127.0.0.1:8444/certs/a.pem").is_err());
        assert!(s.check_url("https://127.0.0.1:8443/other/a.pem").is_err());
    }

    #[test]
    fn allowlist_entries_are_checked() {
        assert!(CertUrlRule::parse("http://example.com/").is_err());
        assert!(CertUrlRule::parse("https://*.*.example.com/").is_err());
        assert!(CertUrlRule::parse("https://example.com/?a=b").is_err());
        assert!(host_matches(
            "mns-cert.oss-*.aliyuncs.com",
            "mns-cert.oss-cn-beijing.aliyuncs.com"
        ));
        assert!(!host_matches(
            "mns-cert.oss-*.aliyuncs.com",
            "mns-cert.oss-.aliyuncs.com"
        ));
        assert!(!host_matches(
            "mns-cert.oss-*.aliyuncs.com",
            "mns-cert.oss-a.b.aliyuncs.com"
        ));
    }
}
