//! TLS on the public listener: rustls (TLS 1.3 and 1.2, AEAD suites with
//! forward secrecy only) with the certificate and key read from PEM files
//! and re-read on SIGHUP. Connections already open keep the certificate
//! they were made with; new handshakes get the new one.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ossbridge_runtime::ConfigError;
use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// The current certificate, swappable while serving.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    pub fn load(config: &TlsConfig) -> Result<Arc<ReloadableCert>, ConfigError> {
        let key = load_key(&config.cert_file, &config.key_file)?;
        Ok(Arc::new(ReloadableCert {
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            current: ArcSwap::from_pointee(key),
        }))
    }

    /// Re-reads the files; on failure keeps serving the old certificate.
    pub fn reload(&self) {
        match load_key(&self.cert_file, &self.key_file) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(event = "tls_certificate_reloaded", cert_file = %self.cert_file.display());
            }
            Err(e) => tracing::error!(
                event = "tls_certificate_reload_failed",
                error = %e,
                "keeping the previous certificate"
            ),
        }
    }

    /// A rustls server configuration that always presents the current
    /// certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, ConfigError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ConfigError::invalid("tls", e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load_key(cert_file: &PathBuf, key_file: &PathBuf) -> Result<CertifiedKey, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| {
            ConfigError::invalid("tls.cert_file", format!("{}: {e}", cert_file.display()))
        })?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(
            "tls.cert_file",
            format!("{}: no certificate", cert_file.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        ConfigError::invalid("tls.key_file", format!("{}: {e}", key_file.display()))
    })?;
    let signing = aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| {
            ConfigError::invalid("tls.key_file", format!("{}: {e}", key_file.display()))
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        ConfigError::invalid("tls", format!("certificate and key do not match: {e}"))
    })?;
    Ok(certified)
}
