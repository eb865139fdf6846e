//! Where the OSS keys are kept, and reading them: an SSM Parameter Store
//! SecureString or an AWS Secrets Manager secret, both holding the same
//! JSON, `{"access_key_id": ..., "secret_access_key": ...}` with an
//! optional `session_token`.
//!
//! The JSON is Data Transfer Hub's. Its OSS tutorial stores the keys as a
//! Secrets Manager "Other type of secret" in that plaintext format
//! (aws-solutions/data-transfer-hub, docs/en-base/user-guide/tutorial-oss.md,
//! "Step 1: Configure credentials for OSS"), and its worker reads them with
//! GetSecretValue's SecretString and takes `access_key_id` and
//! `secret_access_key` from it (aws-solutions/data-transfer-hub-cli,
//! dth/job.go `getCredentials`, dth/service.go `GetSecret`). So a secret
//! made for Data Transfer Hub works here unchanged.
//!
//! Nothing here ever formats a value read from a store: errors name the
//! parameter or secret and, for malformed JSON, only a position.

use aws_credential_types::Credentials;
use ossbridge_runtime::error_chain;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The provider name the SDK records on credentials from this module.
const PROVIDER_NAME: &str = "ossbridge-source-keys";

/// A store of OSS keys and the client that reads it.
#[derive(Debug, Clone)]
pub enum KeyStore {
    Parameter {
        client: aws_sdk_ssm::Client,
        name: String,
    },
    Secret {
        client: aws_sdk_secretsmanager::Client,
        /// Name or ARN.
        id: String,
    },
}

/// Why the keys could not be read. Never carries a stored value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {store}: {detail}")]
    Unreadable { store: String, detail: String },
    #[error("{store} has no value")]
    Empty { store: String },
    #[error(
        "{store} holds a binary value; store the JSON as a SecretString (\"Plaintext\" in the console)"
    )]
    Binary { store: String },
    #[error(
        "{store} is not {{\"access_key_id\": ..., \"secret_access_key\": ...}} JSON (line {line}, column {column})"
    )]
    NotJson {
        store: String,
        line: usize,
        column: usize,
    },
    #[error("{store} has an empty {field}")]
    EmptyField { store: String, field: &'static str },
}

#[derive(Deserialize)]
struct OssKeys {
    access_key_id: String,
    secret_access_key: SecretString,
    #[serde(default)]
    session_token: Option<SecretString>,
}

impl KeyStore {
    /// "SSM parameter NAME" or "Secrets Manager secret ID", for messages.
    pub fn describe(&self) -> String {
        match self {
            KeyStore::Parameter { name, .. } => format!("SSM parameter {name}"),
            KeyStore::Secret { id, .. } => format!("Secrets Manager secret {id}"),
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyStore::Parameter { .. } => "ssm",
            KeyStore::Secret { .. } => "secretsmanager",
        }
    }

    /// Reads and parses the keys (one request; the client's retry and
    /// timeout settings bound it).
    pub async fn read(&self) -> Result<Credentials, StoreError> {
        let value = match self {
            KeyStore::Parameter { client, name } => {
                let output = client
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| self.unreadable(&e))?;
                output
                    .parameter
                    .and_then(|p| p.value)
                    .map(SecretString::from)
            }
            KeyStore::Secret { client, id } => {
                let output = client
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| self.unreadable(&e))?;
                if output.secret_string.is_none() && output.secret_binary.is_some() {
                    return Err(StoreError::Binary {
                        store: self.describe(),
                    });
                }
                output.secret_string.map(SecretString::from)
            }
        };
        let value = value.ok_or_else(|| StoreError::Empty {
            store: self.describe(),
        })?;
        self.parse(&value)
    }

    fn unreadable(&self, error: &(dyn std::error::Error + 'static)) -> StoreError {
        StoreError::Unreadable {
            store: self.describe(),
            detail: error_chain(error),
        }
    }

    fn parse(&self, value: &SecretString) -> Result<Credentials, StoreError> {
        let keys: OssKeys = serde_json::from_str(value.expose_secret()).map_err(|e| {
            // Only the position: serde's message can quote the value.
            StoreError::NotJson {
                store: self.describe(),
                line: e.line(),
                column: e.column(),
            }
        })?;
        for (field, empty) in [
            ("access_key_id", keys.access_key_id.is_empty()),
            (
                "secret_access_key",
                keys.secret_access_key.expose_secret().is_empty(),
            ),
        ] {
            if empty {
                return Err(StoreError::EmptyField {
                    store: self.describe(),
                    field,
                });
            }
        }
        Ok(Credentials::new(
            keys.access_key_id,
            keys.secret_access_key.expose_secret(),
            keys.session_token.map(|t| t.expose_secret().to_owned()),
            None,
            PROVIDER_NAME,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> KeyStore {
        let conf = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .build();
        KeyStore::Parameter {
            client: aws_sdk_ssm::Client::from_conf(conf),
            name: "/t/oss-keys".into(),
        }
    }

    #[test]
    fn the_data_transfer_hub_json_is_read_with_an_optional_session_token() {
        let keys = store()
            .parse(&SecretString::from(
                r#"{"access_key_id": "LTAI1", "secret_access_key": "s3cr3t"}"#,
            ))
            .expect("parses");
        assert_eq!(keys.access_key_id(), "LTAI1");
        assert_eq!(keys.secret_access_key(), "s3cr3t");
        assert_eq!(keys.session_token(), None);
        let keys = store()
            .parse(&SecretString::from(
                r#"{"access_key_id": "STS.1", "secret_access_key": "s", "session_token": "t"}"#,
            ))
            .expect("parses");
        assert_eq!(keys.session_token(), Some("t"));
    }

    #[test]
    fn malformed_values_are_reported_without_their_content() {
        for value in [
            "hunter2-not-json",
            r#"{"access_key_id": "LTAI1", "secret_access_key": 12345678}"#,
            r#"{"access_key_id": "LTAI1"}"#,
            r#"{"access_key_id": "", "secret_access_key": "hunter2"}"#,
        ] {
            let err = store()
                .parse(&SecretString::from(value))
                .expect_err(value)
                .to_string();
            assert!(err.contains("SSM parameter /t/oss-keys"), "{err}");
            for secret in ["hunter2", "12345678"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
    }
}
