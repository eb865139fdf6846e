//! Source credentials: the OSS keys, in the Data Transfer Hub format
//! `{"access_key_id": ..., "secret_access_key": ...}` (plus an optional
//! `session_token`), read from an SSM SecureString or a Secrets Manager
//! secret (`store.rs`).
//!
//! The keys are cached for `refresh` and re-read after it, so rotated keys
//! are picked up without a restart; [`SourceCredentials::invalidate`] makes
//! the next request re-read them at once (the copy engine calls it when
//! the source answers 403). The source client is built without the SDK's
//! own identity cache, so this cache is the only one.

pub mod store;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, future};

pub use store::{KeyStore, StoreError};

/// The former name, from when the keys could only come from SSM; the copy
/// engine still uses it.
pub type SsmCredentials = SourceCredentials;

#[derive(Debug, Clone)]
pub struct SourceCredentials {
    store: KeyStore,
    refresh: Duration,
    cached: Arc<Mutex<Option<(Credentials, Instant)>>>,
}

impl SourceCredentials {
    pub fn new(store: KeyStore, refresh: Duration) -> Self {
        SourceCredentials {
            store,
            refresh,
            cached: Arc::default(),
        }
    }

    /// "SSM parameter NAME" or "Secrets Manager secret ID".
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// Forgets the cached keys; the next request reads the store.
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
        let credentials = self.store.read().await.map_err(|error| match error {
            StoreError::Unreadable { .. } => CredentialsError::provider_error(error),
            _ => CredentialsError::invalid_configuration(error),
        })?;
        tracing::info!(
            event = "source_credentials_loaded",
            store = %self.store.describe(),
            access_key_id = %credentials.access_key_id(),
        );
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((credentials.clone(), Instant::now()));
        }
        Ok(credentials)
    }
}

impl ProvideCredentials for SourceCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}
