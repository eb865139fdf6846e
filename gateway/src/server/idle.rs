//! How long a connection may sit without doing its part, whatever its
//! protocol, measured from the bytes it sends and the requests it has in
//! flight:
//!
//! - a new connection must complete a request head within
//!   `header_read_timeout`: one that sends nothing, or stalls before the
//!   HTTP version is even known (a partial TLS record is the handshake
//!   deadline's business; a partial HTTP/2 preface is this one's), frees
//!   its slot then;
//! - between requests, an HTTP/1.1 connection that has started a new head
//!   must finish it within `header_read_timeout` (slowloris on a reused
//!   connection);
//! - a connection with nothing in flight is closed after
//!   `keep_alive_timeout`, HTTP/1.1 and HTTP/2 alike. That is longer than
//!   the load balancer's idle timeout (the ALB's is 60 s), so the balancer
//!   always closes first and never sends a request on a connection the
//!   gateway has just closed, which it would answer with a 502.
//!   <https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#connection-idle-timeout>
//!
//! hyper's own HTTP/1 header timer starts when a connection waits for a
//! head, so it also ends idle keep-alive connections: it is set to
//! `keep_alive_timeout` and this watchdog does the finer work.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// "Never" in [`Activity`]'s millisecond fields.
const NONE: u64 = u64::MAX;

/// What a connection has done, shared by its IO, its requests and its
/// watchdog. Times are milliseconds since the connection was accepted.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// When the connection last had nothing in flight.
    idle_since: AtomicU64,
    /// The first byte read since then, if any.
    read_since_idle: AtomicU64,
    h2: AtomicBool,
    /// Bytes of the preface seen so far (to tell HTTP/2 by its first bytes).
    prefix: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            read_since_idle: AtomicU64::new(NONE),
            h2: AtomicBool::new(false),
            prefix: AtomicUsize::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    fn bytes_read(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let _ = self.read_since_idle.compare_exchange(
            NONE,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let seen = self.prefix.load(Ordering::Relaxed);
        if seen < H2_PREFACE.len() {
            let take = bytes.len().min(H2_PREFACE.len() - seen);
            if bytes[..take] == H2_PREFACE[seen..seen + take] {
                self.prefix.store(seen + take, Ordering::Relaxed);
                if seen + take == H2_PREFACE.len() {
                    self.h2.store(true, Ordering::Relaxed);
                }
            } else {
                // Not HTTP/2: stop looking.
                self.prefix.store(usize::MAX, Ordering::Relaxed);
            }
        }
    }

    /// A request head was parsed; it is in flight until the guard drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection must close if nothing changes, or `None` while
    /// a request is in flight.
    pub fn deadline(&self, header_read: Duration, keep_alive: Duration) -> Option<Instant> {
        let state = State {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            idle_since: self.idle_since.load(Ordering::Relaxed),
            read_since_idle: self.read_since_idle.load(Ordering::Relaxed),
            h2: self.h2.load(Ordering::Relaxed),
        };
        deadline_ms(&state, millis(header_read), millis(keep_alive)).map(|ms| self.at(ms))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A snapshot of [`Activity`].
#[derive(Debug, Clone, Copy)]
struct State {
    in_flight: usize,
    requests: u64,
    idle_since: u64,
    read_since_idle: u64,
    h2: bool,
}

/// The rules of the module documentation, in milliseconds since the
/// connection was accepted.
fn deadline_ms(s: &State, header_read: u64, keep_alive: u64) -> Option<u64> {
    if s.in_flight > 0 {
        return None;
    }
    let idle_limit = s.idle_since.saturating_add(keep_alive);
    if s.requests == 0 {
        return Some(s.idle_since.saturating_add(header_read));
    }
    if s.read_since_idle != NONE && !s.h2 {
        // A head has started and not finished.
        return Some(
            s.read_since_idle
                .saturating_add(header_read)
                .min(idle_limit),
        );
    }
    Some(idle_limit)
}

/// A request in flight; when the last one ends, the idle clock restarts.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            activity
                .idle_since
                .store(activity.now_ms(), Ordering::Relaxed);
            activity.read_since_idle.store(NONE, Ordering::Relaxed);
        }
    }
}

/// The connection's IO, noting what it reads.
#[derive(Debug)]
pub struct Watched<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    pub fn new(inner: IO, activity: Arc<Activity>) -> Watched<IO> {
        Watched { inner, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if result.is_ready() {
            let activity = self.activity.clone();
            activity.bytes_read(&buf.filled()[before..]);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: u64 = 5_000;
    const KEEP: u64 = 75_000;

    fn state() -> State {
        State {
            in_flight: 0,
            requests: 0,
            idle_since: 0,
            read_since_idle: NONE,
            h2: false,
        }
    }

    #[test]
    fn a_new_connection_gets_the_header_time_whatever_it_sends() {
        assert_eq!(deadline_ms(&state(), HEAD, KEEP), Some(HEAD));
        let partial = State {
            read_since_idle: 10,
            ..state()
        };
        assert_eq!(deadline_ms(&partial, HEAD, KEEP), Some(HEAD));
        let busy = State {
            in_flight: 1,
            ..partial
        };
        assert_eq!(deadline_ms(&busy, HEAD, KEEP), None);
    }

    #[test]
    fn between_requests_keep_alive_applies_and_a_started_head_must_finish() {
        let idle = State {
            requests: 3,
            idle_since: 30_000,
            ..state()
        };
        assert_eq!(deadline_ms(&idle, HEAD, KEEP), Some(30_000 + KEEP));
        let started = State {
            read_since_idle: 31_000,
            ..idle
        };
        assert_eq!(deadline_ms(&started, HEAD, KEEP), Some(31_000 + HEAD));
        // HTTP/2 frames between requests (PING, WINDOW_UPDATE) are no head.
        let h2 = State {
            h2: true,
            ..started
        };
        assert_eq!(deadline_ms(&h2, HEAD, KEEP), Some(30_000 + KEEP));
    }

    #[test]
    fn activity_tracks_requests_bytes_and_the_http2_preface() {
        let a = Activity::new();
        a.bytes_read(&H2_PREFACE[..10]);
        assert!(!a.h2.load(Ordering::Relaxed));
        a.bytes_read(&H2_PREFACE[10..]);
        assert!(a.h2.load(Ordering::Relaxed));
        assert_ne!(a.read_since_idle.load(Ordering::Relaxed), NONE);
        let request = a.request();
        assert!(
            a.deadline(Duration::from_secs(5), Duration::from_secs(75))
                .is_none()
        );
        drop(request);
        assert_eq!(a.read_since_idle.load(Ordering::Relaxed), NONE);
        assert_eq!(a.requests.load(Ordering::Relaxed), 1);
        let http1 = Activity::new();
        http1.bytes_read(b"POST /v1/ingest/x HTTP/1.1\r\n");
        assert!(!http1.h2.load(Ordering::Relaxed));
    }
}
