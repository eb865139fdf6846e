//! A streaming proxy in front of the emulator's S3 that makes it behave
//! like the real services where the emulator does not. Two modes:
//!
//! - **OSS** ([`S3Proxy::start_oss`]), the source: Aliyun OSS's
//!   S3-compatible API. Virtual-hosted-style only (clients address
//!   `http://BUCKET.localhost:PORT/KEY`; path-style is refused with 403
//!   SecondLevelDomainForbidden); OSS ETags (upper case; MD5-shaped but not
//!   the MD5 for multipart and appendable objects, see `oss.rs`) in
//!   headers, listings and conditions; `x-oss-object-type`;
//!   `x-oss-hash-crc64ecma` (CRC-64/XZ of the whole object, also on range
//!   GETs) on GET, HEAD, PutObject and AppendObject; AppendObject itself;
//!   `x-oss-request-id` on every answer and OSS's error bodies.
//! - **S3** ([`S3Proxy::start`]), the destination: S3's conditional
//!   writes where the emulator ignores them (`conditions.rs`), with every
//!   write serialized per key so check-then-write is atomic.
//!
//! Both count calls by operation and by access key, mend moto quirks
//! (`mend.rs`) and inject faults (`faults.rs`; broken and held listings
//! in `listing.rs`). Object bodies stream through; only error, XML and
//! trickled answers are buffered. On request they journal when each
//! object write was accepted (`journal.rs`).

mod answer;
mod append;
mod conditions;
mod errors;
mod faults;
mod journal;
mod listing;
mod mend;
mod oss;
mod route;
mod serve;
mod upstream;
mod xml;

pub use append::Appended;
pub use journal::Written;
pub use listing::HoldListing;
pub use oss::ObjectType;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use faults::{Faults, Trickle};

type Body = BoxBody<Bytes, hyper::Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    S3,
    Oss,
}

#[derive(Debug, Default)]
struct Calls {
    by_operation: HashMap<&'static str, u64>,
    by_access_key: HashMap<(String, &'static str), u64>,
    /// Writes whose whole body arrived, by access key: the ones the store
    /// could have applied (a PUT cut off mid-body never is).
    sent_by_access_key: HashMap<(String, &'static str), u64>,
    /// Conditional writes refused (412, 404) because the key was not what
    /// the condition said.
    refused: HashMap<&'static str, u64>,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    upstream: upstream::Upstream,
    calls: Mutex<Calls>,
    faults: Mutex<Faults>,
    initiated: mend::Initiated,
    objects: oss::Objects,
    locks: conditions::KeyLocks,
    requests: AtomicU64,
    journal: journal::Journal,
}

impl State {
    fn count(&self, operation: &'static str, access_key: Option<String>) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.by_operation.entry(operation).or_insert(0) += 1;
            if let Some(key) = access_key {
                *calls.by_access_key.entry((key, operation)).or_insert(0) += 1;
            }
        }
    }

    fn count_refused(&self, operation: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.refused.entry(operation).or_insert(0) += 1;
        }
    }

    fn count_sent(&self, operation: &'static str, access_key: Option<String>) {
        if let (Ok(mut calls), Some(key)) = (self.calls.lock(), access_key) {
            *calls
                .sent_by_access_key
                .entry((key, operation))
                .or_insert(0) += 1;
        }
    }

    /// An id in OSS's form (24 upper-case hex digits), unique per proxy.
    fn next_request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!("0551BB1D{:016X}", n)
    }
}

#[derive(Debug)]
pub struct S3Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl S3Proxy {
    /// An S3-faithful proxy (the destination): path-style, conditional
    /// writes enforced.
    pub async fn start(upstream: &str) -> Result<S3Proxy> {
        S3Proxy::start_with(upstream, Mode::S3).await
    }

    /// An OSS-faithful proxy (the source): virtual-hosted-style only, OSS
    /// ETags, object types, CRC-64 headers, AppendObject, OSS errors.
    pub async fn start_oss(upstream: &str) -> Result<S3Proxy> {
        S3Proxy::start_with(upstream, Mode::Oss).await
    }

    async fn start_with(upstream: &str, mode: Mode) -> Result<S3Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            mode,
            upstream: upstream::Upstream::new(upstream)?,
            calls: Mutex::default(),
            faults: Mutex::default(),
            initiated: mend::Initiated::default(),
            objects: oss::Objects::default(),
            locks: conditions::KeyLocks::default(),
            requests: AtomicU64::new(1),
            journal: journal::Journal::default(),
        });
        let task = crate::proxy::spawn_http1(listener, state.clone(), serve::handle);
        Ok(S3Proxy { addr, state, task })
    }

    /// The endpoint clients are configured with: `http://localhost:PORT`
    /// in OSS mode (buckets are then `BUCKET.localhost:PORT`, which
    /// `ossbridge_runtime::dns::http_client()` resolves to 127.0.0.1),
    /// `http://127.0.0.1:PORT` for path-style S3.
    pub fn endpoint(&self) -> String {
        match self.state.mode {
            Mode::Oss => format!("http://localhost:{}", self.addr.port()),
            Mode::S3 => format!("http://{}", self.addr),
        }
    }

    /// `http://BUCKET.localhost:PORT`: a bucket addressed as OSS requires.
    pub fn bucket_endpoint(&self, bucket: &str) -> String {
        format!("http://{bucket}.localhost:{}", self.addr.port())
    }

    /// The address the proxy listens on (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Calls seen for an operation, e.g. `UploadPart`.
    pub fn calls(&self, operation: &str) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| c.by_operation.get(operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Every operation seen so far and its count.
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.state
            .calls
            .lock()
            .map(|c| {
                c.by_operation
                    .iter()
                    .map(|(op, n)| ((*op).to_owned(), *n))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Conditional writes of an operation refused because the key was not
    /// what their condition said: `calls - refused` is what was written.
    pub fn refused(&self, operation: &str) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| c.refused.get(operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Calls for an operation signed with `access_key_id` (from the SigV4
    /// `Credential=AKID/...`), so one proxy can tell two workers apart.
    pub fn calls_by(&self, access_key_id: &str, operation: &str) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| {
                c.by_access_key
                    .iter()
                    .find(|((key, op), _)| key == access_key_id && *op == operation)
                    .map_or(0, |(_, n)| *n)
            })
            .unwrap_or(0)
    }

    /// Writes (PutObject, CopyObject, CompleteMultipartUpload,
    /// DeleteObject, AppendObject) signed with `access_key_id` whose whole
    /// request arrived, so that the store could have applied them;
    /// [`S3Proxy::calls_by`] also counts requests abandoned mid-body.
    pub fn writes_sent_by(&self, access_key_id: &str, operation: &str) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| {
                c.sent_by_access_key
                    .iter()
                    .find(|((key, op), _)| key == access_key_id && *op == operation)
                    .map_or(0, |(_, n)| *n)
            })
            .unwrap_or(0)
    }

    /// Starts journaling object writes: from now on, each PutObject and
    /// CompleteMultipartUpload the store answers with a 2xx is noted with
    /// the time of that answer (when the object became visible), for
    /// [`S3Proxy::take_journal`]. Off by default.
    pub fn journal_writes(&self) {
        self.state.journal.start();
    }

    /// The writes journaled since the last call, oldest first; empty while
    /// the journal is off.
    pub fn take_journal(&self) -> Vec<Written> {
        self.state.journal.take()
    }

    fn faults(&self, f: impl FnOnce(&mut Faults)) {
        if let Ok(mut faults) = self.state.faults.lock() {
            f(&mut faults);
        }
    }

    /// Flips one byte in every GET body of `bucket/key` from now on.
    pub fn corrupt(&self, bucket: &str, key: &str) {
        let path = route::object_path(bucket, key);
        self.faults(|f| {
            f.corrupt.insert(path);
        });
    }

    /// Delays every GET by `delay` (slow source).
    pub fn delay_gets(&self, delay: Duration) {
        self.faults(|f| f.get_delay = delay);
    }

    /// Answers 403 to requests signed with `access_key_id` (OSS mode:
    /// InvalidAccessKeyId, as for a deleted key; S3: AccessDenied).
    pub fn revoke(&self, access_key_id: &str) {
        let key = access_key_id.to_owned();
        self.faults(|f| {
            f.revoked_keys.insert(key);
        });
    }

    /// Lets `access_key_id` through again.
    pub fn restore(&self, access_key_id: &str) {
        self.faults(|f| {
            f.revoked_keys.remove(access_key_id);
        });
    }

    /// Waits `latency` before handling every request.
    pub fn set_latency(&self, latency: Duration) {
        self.faults(|f| f.latency = latency);
    }

    /// Answers the next `count` requests with 503 SlowDown.
    pub fn slow_down_next(&self, count: u64) {
        self.faults(|f| f.slow_down = count);
    }

    /// Drops the connection of each of the next `count` requests.
    pub fn drop_next(&self, count: u64) {
        self.faults(|f| f.dropped = count);
    }

    /// Cuts the next `count` successful GetObject bodies short.
    pub fn truncate_next_gets(&self, count: u64) {
        self.faults(|f| f.truncated = count);
    }

    /// Answers every GET at once (the version current then) but delivers
    /// its body over `over`; `Duration::ZERO` stops trickling.
    pub fn trickle_gets(&self, over: Duration) {
        self.faults(|f| {
            f.trickle = Some(Trickle {
                over,
                only: None,
                hold: None,
            })
        });
    }

    /// [`S3Proxy::trickle_gets`] for GETs of `bucket/key` only.
    pub fn trickle_gets_of(&self, bucket: &str, key: &str, over: Duration) {
        let only = Some(route::object_path(bucket, key));
        self.faults(|f| {
            f.trickle = Some(Trickle {
                over,
                only,
                hold: None,
            })
        });
    }

    /// Holds GETs of `bucket/key`: each is answered at once (the version
    /// current then), then its body advances a byte at a time, never to
    /// its end, until [`S3Proxy::release_held_gets`]. Makes "this copy is
    /// still reading the old version" a fact rather than a race.
    pub fn hold_gets_of(&self, bucket: &str, key: &str) {
        let only = Some(route::object_path(bucket, key));
        let (open, hold) = tokio::sync::watch::channel(false);
        self.faults(|f| {
            f.trickle = Some(Trickle {
                over: Duration::ZERO,
                only,
                hold: Some(hold),
            });
            f.release = Some(open);
        });
    }

    /// Lets held GET bodies (and later GETs) through at full speed.
    pub fn release_held_gets(&self) {
        self.faults(|f| {
            if let Some(open) = f.release.take() {
                let _ = open.send(true);
            }
            f.trickle = None;
        });
    }

    /// Answers the next `count` conditional writes (S3 mode) with 409
    /// ConditionalRequestConflict, as S3 may under concurrency.
    pub fn conflict_next_conditional_writes(&self, count: u64) {
        self.faults(|f| f.conflicts = count);
    }

    /// Faults of `kind` injected so far: `slow_down`, `dropped`,
    /// `truncated`, `trickled`, `conflict`, `listing_truncated`,
    /// `listing_unsorted`, `listing_failed`, `listing_held`.
    pub fn injected(&self, kind: &str) -> u64 {
        self.state
            .faults
            .lock()
            .map(|f| f.injected.get(kind).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
