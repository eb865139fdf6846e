//! Source credentials from SSM Parameter Store, in the format of the Data
//! Transfer Hub tutorial: a SecureString holding
//! `{"access_key_id": ..., "secret_access_key": ...}` (plus an optional
//! `session_token`).
//!
//! The keys are cached for `refresh` and re-read after it, so rotated keys
//! are picked up without a restart; [`SsmCredentials::invalidate`] makes
//! the next request re-read them at once (the copy engine calls it when
//! the source answers 403). The source client is built without the SDK's
//! own identity cache, so this cache is the only one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use ossbridge_runtime::error_chain;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct SsmCredentials {
    client: aws_sdk_ssm::Client,
    parameter: String,
    refresh: Duration,
    cached: Arc<Mutex<Option<(Credentials, Instant)>>>,
}

#[derive(Deserialize)]
struct OssKeys {
    access_key_id: String,
    secret_access_key: SecretString,
    #[serde(default)]
    session_token: Option<SecretString>,
}

impl SsmCredentials {
    pub fn new(client: aws_sdk_ssm::Client, parameter: String, refresh: Duration) -> Self {
        SsmCredentials {
            client,
            parameter,
            refresh,
            cached: Arc::default(),
        }
    }

    pub fn parameter(&self) -> &str {
        &self.parameter
    }

    /// Forgets the cached keys; the next request reads the parameter.
    pub fn invalidate(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }

    async fn load(&self) -> provider::Result {
        if let Ok(cached) = self.cached.lock()
            && let Some((credentials, at)) = cached.as_ref()
            && at.elapsed() < self.refresh
        {
            return Ok(credentials.clone());
        }
        let credentials = self.read().await?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((credentials.clone(), Instant::now()));
        }
        Ok(credentials)
    }

    async fn read(&self) -> provider::Result {
        let output = self
            .client
            .get_parameter()
            .name(&self.parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(format!(
                    "cannot read SSM parameter {}: {}",
                    self.parameter,
                    error_chain(&e)
                ))
            })?;
        let value = output.parameter().and_then(|p| p.value()).ok_or_else(|| {
            CredentialsError::invalid_configuration(format!(
                "SSM parameter {} has no value",
                self.parameter
            ))
        })?;
        let keys: OssKeys = serde_json::from_str(value).map_err(|e| {
            // Only the position: serde's message could quote the secret.
            CredentialsError::invalid_configuration(format!(
                "SSM parameter {} is not {{\"access_key_id\": ..., \"secret_access_key\": ...}} JSON (line {}, column {})",
                self.parameter,
                e.line(),
                e.column()
            ))
        })?;
        tracing::info!(event = "source_credentials_loaded", parameter = %self.parameter, access_key_id = %keys.access_key_id);
        Ok(Credentials::new(
            keys.access_key_id,
            keys.secret_access_key.expose_secret(),
            keys.session_token.map(|t| t.expose_secret().to_owned()),
            None,
            "ossbridge-ssm-parameter",
        ))
    }
}

impl ProvideCredentials for SsmCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}
