//! Injected faults: a flipped byte in an object's GET bodies (same length,
//! so only checksums can tell), delays, 403 for revoked access keys
//! (rotated credentials), bursts of 503 SlowDown, connections dropped
//! without an answer, GET bodies cut short, GET bodies trickled out slowly,
//! and 409 ConditionalRequestConflict for conditional writes. Listing
//! faults are in `listing.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;

use super::Body;

/// A GET answered at once whose body is delivered over `over`, after
/// `hold` opens if there is one.
#[derive(Debug, Clone)]
pub(super) struct Trickle {
    pub over: Duration,
    /// Only this object (`/bucket/key`), or every GET.
    pub only: Option<String>,
    /// While `false`, the body advances a byte at a time.
    pub hold: Option<tokio::sync::watch::Receiver<bool>>,
}

#[derive(Debug, Default)]
pub(super) struct Faults {
    /// Paths (`/bucket/key`) whose GET bodies get one byte flipped.
    pub corrupt: HashSet<String>,
    pub get_delay: Duration,
    /// Before every request.
    pub latency: Duration,
    pub revoked_keys: HashSet<String>,
    /// Upcoming requests answered 503 SlowDown without forwarding.
    pub slow_down: u64,
    /// Upcoming requests whose connection is dropped without an answer.
    pub dropped: u64,
    /// Upcoming successful GetObject answers cut after the first chunk.
    pub truncated: u64,
    /// Upcoming conditional writes answered 409 ConditionalRequestConflict.
    pub conflicts: u64,
    pub trickle: Option<Trickle>,
    /// Opens the hold of [`Trickle::hold`].
    pub release: Option<tokio::sync::watch::Sender<bool>>,
    /// Truncated, unsorted, failed and held listings (`listing.rs`).
    pub listings: super::listing::Listings,
    /// Faults injected so far, by kind.
    pub injected: HashMap<&'static str, u64>,
}

impl Faults {
    /// Takes one from a countdown; counts it as injected if it was armed.
    pub fn take(&mut self, kind: &'static str) -> bool {
        let armed = match kind {
            "slow_down" => &mut self.slow_down,
            "dropped" => &mut self.dropped,
            "conflict" => &mut self.conflicts,
            _ => &mut self.truncated,
        };
        if *armed == 0 {
            return false;
        }
        *armed -= 1;
        self.count(kind);
        true
    }

    pub fn count(&mut self, kind: &'static str) {
        *self.injected.entry(kind).or_insert(0) += 1;
    }

    /// How to trickle a GET of `path`, if at all (counted).
    pub fn trickle_for(&mut self, path: &str) -> Option<Trickle> {
        let trickle = self.trickle.as_ref()?;
        let idle = trickle.over.is_zero() && trickle.hold.is_none();
        if idle || trickle.only.as_deref().is_some_and(|p| p != path) {
            return None;
        }
        let trickle = trickle.clone();
        self.count("trickled");
        Some(trickle)
    }
}

/// Half the first chunk, then the end while Content-Length promised more:
/// hyper closes the connection and the client gets a short body.
pub(super) fn truncate(body: Body) -> Body {
    use futures::{StreamExt, TryStreamExt};
    let first = body
        .into_data_stream()
        .take(1)
        .map_ok(|data| Frame::data(data.slice(..data.len() / 2)));
    BodyExt::boxed(http_body_util::StreamBody::new(first))
}

/// The body with its first byte flipped.
pub(super) fn corrupt(body: Body) -> Body {
    let mut flipped = false;
    body.map_frame(move |frame| {
        let Ok(data) = frame.into_data() else {
            return Frame::data(Bytes::new());
        };
        if flipped || data.is_empty() {
            return Frame::data(data);
        }
        flipped = true;
        let mut bytes = data.to_vec();
        bytes[0] ^= 0x01;
        Frame::data(Bytes::from(bytes))
    })
    .boxed()
}

/// Slices in which a trickled body is delivered.
const TRICKLE_SLICES: u32 = 20;
/// While held, a byte this often: a client's stalled-stream protection
/// (the AWS SDK's fails a download that stalls for 5 s) sees progress.
const HELD_BYTE_EVERY: Duration = Duration::from_millis(500);

/// The body read from the emulator at once (so the emulator, which
/// serves one request at a time, is free and the bytes are the version
/// current now), then, while held, a byte at a time (never the last), and
/// the rest in slices spread over `over`.
pub(super) async fn trickle(body: Body, trickle: Trickle) -> Result<Body, hyper::Error> {
    let bytes = body.collect().await?.to_bytes();
    let slice = bytes.len().div_ceil(TRICKLE_SLICES as usize).max(1);
    let pause = trickle.over / TRICKLE_SLICES;
    let start = (bytes, 0usize, trickle.hold);
    let stream = futures::stream::unfold(start, move |(bytes, sent, mut hold)| async move {
        if sent >= bytes.len() {
            return None;
        }
        let held = hold.as_ref().is_some_and(|h| !*h.borrow());
        let end = if held && sent + 1 < bytes.len() {
            if let Some(h) = hold.as_mut() {
                // Wakes early when released.
                let _ = tokio::time::timeout(HELD_BYTE_EVERY, h.changed()).await;
            }
            sent + 1
        } else {
            tokio::time::sleep(pause).await;
            (sent + slice).min(bytes.len())
        };
        let chunk = bytes.slice(sent..end);
        Some((
            Ok::<_, hyper::Error>(Frame::data(chunk)),
            (bytes, end, hold),
        ))
    });
    Ok(BodyExt::boxed(http_body_util::StreamBody::new(stream)))
}
