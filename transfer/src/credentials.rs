//! Source credentials from SSM Parameter Store, in the format of the Data
//! Transfer Hub tutorial: a SecureString holding
//! `{"access_key_id": ..., "secret_access_key": ...}` (plus an optional
//! `session_token`).
//!
//! The provider stamps each credential set with an expiry of
//! `refresh` from now, so the SDK's identity cache re-reads the parameter
//! on that schedule: rotated keys are picked up without a restart.

use std::time::{Duration, SystemTime};

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
        }
    }

    pub fn parameter(&self) -> &str {
        &self.parameter
    }

    async fn load(&self) -> provider::Result {
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
            Some(SystemTime::now() + self.refresh),
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
