//! The source's OSS keys, as the source client's only credentials
//! provider (the client is built without the SDK's identity cache):
//! read from an SSM parameter or a Secrets Manager secret (`store.rs`),
//! cached, and refreshed.
//!
//! - **Cached** for `source.credentials_refresh_secs`, then re-read, so
//!   rotated keys are picked up without a restart.
//! - **Single-flight**: when the keys are due, exactly one store read
//!   happens, under a tokio `Mutex`. When the keys are missing or refused,
//!   callers arriving meanwhile wait for that read (the mutex is fair) and
//!   then find its result in the cache. When they are only old, the other
//!   callers keep using them meanwhile: they still work, and a slow or
//!   unreachable store must not stall every source request.
//! - **Last good keys**: if a read fails (store unreachable, throttled,
//!   timed out, or a new value that does not parse), the keys held keep
//!   being served, the failure is logged (`source_credentials_kept`) and
//!   counted, and the store is not asked again before an exponential
//!   backoff with jitter (2 s, doubling to 60 s). Only at start, with no
//!   keys yet, is a failed read an error, naming the parameter or secret.
//! - **Re-read on a source 403**: the source client reports each 403 with
//!   the access key id that signed the request (`refusals.rs`); the keys
//!   are re-read before the next request only if that id is the one held
//!   now. So a destination 403, or a late 403 to keys already replaced,
//!   costs no store read. A re-read that finds the same keys is not
//!   repeated for another refusal within [`SAME_KEYS_QUIET`]: a 403 that is
//!   not about the keys (a bucket policy) cannot hammer the store.

mod refusals;
pub mod store;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use aws_sdk_s3::config::Intercept;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::telemetry;
pub use store::{KeyStore, StoreError};

/// After a refusal-driven re-read found the same keys, further refusals
/// of those keys do not re-read the store for this long.
pub const SAME_KEYS_QUIET: Duration = Duration::from_secs(30);
/// First and longest wait before asking a failing store again.
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct SourceCredentials {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: KeyStore,
    refresh: Duration,
    /// Never held across an await.
    state: Mutex<State>,
    /// Held by the one caller reading the store.
    reading: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    held: Option<Held>,
    /// The source refused the held keys: re-read before the next request.
    refused: bool,
    /// When a refusal-driven read last found the keys unchanged.
    unchanged_at: Option<Instant>,
    /// After a failed read, no new read before this.
    retry_at: Option<Instant>,
    backoff: Option<ExponentialBackoff>,
}

#[derive(Debug)]
struct Held {
    credentials: Credentials,
    loaded_at: Instant,
}

/// Why the store is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// No keys yet.
    Start,
    /// Older than `credentials_refresh_secs`.
    Age,
    /// The source refused the held keys.
    Refused,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Age => "age",
            Reason::Refused => "refused",
        }
    }
}

impl SourceCredentials {
    pub fn new(store: KeyStore, refresh: Duration) -> Self {
        SourceCredentials {
            inner: Arc::new(Inner {
                store,
                refresh,
                state: Mutex::default(),
                reading: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// "SSM parameter NAME" or "Secrets Manager secret ID".
    pub fn describe(&self) -> String {
        self.inner.store.describe()
    }

    /// The interceptor to install on the source client (and only there):
    /// it reports the source's 403s, with the key id they refused.
    pub fn source_interceptor(&self) -> impl Intercept + 'static {
        refusals::SourceRefusals {
            credentials: self.clone(),
        }
    }

    /// The source refused a request signed with `access_key_id`.
    fn refused(&self, access_key_id: &str) {
        let mut state = self.state();
        let Some(held) = &state.held else { return };
        if state.refused || held.credentials.access_key_id() != access_key_id {
            return;
        }
        if state
            .unchanged_at
            .is_some_and(|at| at.elapsed() < SAME_KEYS_QUIET)
        {
            return;
        }
        state.refused = true;
        tracing::info!(
            event = "source_credentials_refused",
            access_key_id,
            store = %self.inner.store.describe(),
            "the source refused the keys; re-reading them before the next request"
        );
    }

    async fn load(&self) -> provider::Result {
        let reason = match self.due() {
            Ok(credentials) => return Ok(credentials),
            Err(reason) => reason,
        };
        let _reading = match self.inner.reading.try_lock() {
            Ok(reading) => reading,
            // Keys that are only old still work: the caller reading the
            // store refreshes them, the others carry on meanwhile rather
            // than all stall behind a slow or unreachable store.
            Err(_) if reason == Reason::Age => match self.held() {
                Some(credentials) => return Ok(credentials),
                None => self.inner.reading.lock().await,
            },
            // Missing or refused keys are worth waiting for.
            Err(_) => self.inner.reading.lock().await,
        };
        // Whoever held the lock before may have read the store already.
        let reason = match self.due() {
            Ok(credentials) => return Ok(credentials),
            Err(reason) => reason,
        };
        let result = self.inner.store.read().await;
        self.settle(reason, result)
    }

    fn held(&self) -> Option<Credentials> {
        self.state().held.as_ref().map(|h| h.credentials.clone())
    }

    /// The keys to use now, or why the store must be read first.
    fn due(&self) -> Result<Credentials, Reason> {
        let state = self.state();
        let Some(held) = &state.held else {
            return Err(Reason::Start);
        };
        let backing_off = state.retry_at.is_some_and(|at| Instant::now() < at);
        if !backing_off {
            if state.refused {
                return Err(Reason::Refused);
            }
            if held.loaded_at.elapsed() >= self.inner.refresh {
                return Err(Reason::Age);
            }
        }
        telemetry::source_keys_age(held.loaded_at.elapsed());
        Ok(held.credentials.clone())
    }

    /// Records a read's result; returns the keys to use.
    fn settle(&self, reason: Reason, result: Result<Credentials, StoreError>) -> provider::Result {
        let store = &self.inner.store;
        let mut state = self.state();
        let now = Instant::now();
        match result {
            Ok(credentials) => {
                telemetry::source_key_read(store.kind(), reason.label(), "ok");
                let unchanged = state
                    .held
                    .as_ref()
                    .is_some_and(|held| held.credentials == credentials);
                if !unchanged {
                    state.unchanged_at = None;
                    tracing::info!(
                        event = "source_credentials_loaded",
                        store = %store.describe(),
                        access_key_id = %credentials.access_key_id(),
                        reason = reason.label(),
                    );
                } else if reason == Reason::Refused {
                    state.unchanged_at = Some(now);
                    tracing::warn!(
                        event = "source_credentials_unchanged",
                        store = %store.describe(),
                        access_key_id = %credentials.access_key_id(),
                        "the source refused these keys and the store holds no others"
                    );
                }
                state.held = Some(Held {
                    credentials: credentials.clone(),
                    loaded_at: now,
                });
                state.refused = false;
                state.retry_at = None;
                state.backoff = None;
                Ok(credentials)
            }
            Err(error) => {
                telemetry::source_key_read(store.kind(), reason.label(), "failed");
                let State {
                    held,
                    retry_at,
                    backoff,
                    ..
                } = &mut *state;
                let Some(held) = held else {
                    return Err(match error {
                        StoreError::Unreadable { .. } => CredentialsError::provider_error(error),
                        _ => CredentialsError::invalid_configuration(error),
                    });
                };
                let wait = backoff
                    .get_or_insert_with(|| {
                        ExponentialBuilder::default()
                            .with_min_delay(RETRY_MIN)
                            .with_max_delay(RETRY_MAX)
                            .with_jitter()
                            .without_max_times()
                            .build()
                    })
                    .next()
                    .unwrap_or(RETRY_MAX);
                *retry_at = Some(now + wait);
                tracing::warn!(
                    event = "source_credentials_kept",
                    error = %error,
                    access_key_id = %held.credentials.access_key_id(),
                    age_secs = held.loaded_at.elapsed().as_secs(),
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot read the source keys; using the last good ones"
                );
                Ok(held.credentials.clone())
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
