//! Listing faults: broken ListObjectsV2 pages, so a test can show that a
//! sync fails closed rather than diffing half a bucket.
//!
//! - **truncated without a token**: `IsTruncated` true, no
//!   `NextContinuationToken`, half the `Contents` (a page a client cannot
//!   continue from, and must not mistake for the end);
//! - **unsorted**: the first two `Contents` swapped (S3 promises byte
//!   order, which a merge-diff depends on);
//! - **failed**: 500 InternalError without forwarding, for good;
//! - **held**: a listing kept waiting, before it reaches the emulator or
//!   with the emulator's answer buffered, so a test can change the store
//!   at a known point of the listing instead of racing it.
//!
//! Each applies to the listings of one bucket whose `prefix` parameter
//! starts with a given prefix. The rewrites run on the answer as the
//! client would get it, so in OSS mode after `oss.rs` has rewritten it.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use http_body_util::BodyExt;
use hyper::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{Method, Response, StatusCode};
use tokio::sync::watch;

use super::errors::Answerer;
use super::upstream::full;
use super::xml::{element, map_elements};
use super::{Body, S3Proxy, State, route};

/// When [`S3Proxy::hold_listings`] holds a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldListing {
    /// Before it is sent to the emulator: once released, the answer shows
    /// the store as it is then.
    BeforeForwarding,
    /// With the emulator's whole answer buffered: once released, the
    /// answer shows the store as it was when the request arrived.
    AfterAnswer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Truncate,
    Unsort,
    Fail,
}

/// Which listings a fault or hold applies to.
#[derive(Debug, Clone)]
struct Scope {
    bucket: String,
    prefix: String,
}

impl Scope {
    fn new(bucket: &str, prefix: &str) -> Scope {
        Scope {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }
    }

    fn covers(&self, bucket: &str, prefix: &str) -> bool {
        self.bucket == bucket && prefix.starts_with(&self.prefix)
    }
}

/// The listing faults armed, kept with the proxy's other faults.
#[derive(Debug, Default)]
pub(super) struct Listings {
    faults: Vec<(Fault, Scope)>,
    holds: Vec<(Scope, HoldListing)>,
    /// Opened (set to `true`) by [`S3Proxy::release_held_listings`]; one
    /// for all the holds armed since the last release.
    release: Option<watch::Sender<bool>>,
    /// Listings waiting now. Shared with the requests, which count
    /// themselves out even when their client gives up.
    held: Arc<AtomicU64>,
}

/// What happens to one listing, decided when it arrives.
#[derive(Debug)]
pub(super) struct Plan {
    truncate: bool,
    unsort: bool,
    fail: bool,
    hold: Option<(HoldListing, watch::Receiver<bool>)>,
    held: Arc<AtomicU64>,
}

/// The (bucket, prefix) of a ListObjectsV2 request: a GET of the bucket
/// with `list-type=2`, the bucket taken from the emulator path the routing
/// made of it in either mode. Not by `route::operation`, which takes the
/// SDK's path-style `/bucket/` for a GetObject of the key "".
fn listed(method: &Method, path: &str, query: &str) -> Option<(String, String)> {
    if method != Method::GET || route::param(query, "list-type") != Some("2") {
        return None;
    }
    let bucket = path.strip_prefix('/')?;
    let bucket = bucket.strip_suffix('/').unwrap_or(bucket);
    if bucket.is_empty() || bucket.contains('/') {
        return None;
    }
    let prefix = route::param(query, "prefix").unwrap_or("");
    let prefix = percent_encoding::percent_decode_str(prefix).decode_utf8_lossy();
    Some((bucket.to_owned(), prefix.into_owned()))
}

impl Plan {
    /// The plan for a request, `None` when it is no listing anything is
    /// armed for.
    pub(super) fn of(state: &State, method: &Method, path: &str, query: &str) -> Option<Plan> {
        let (bucket, prefix) = listed(method, path, query)?;
        let faults = state.faults.lock().ok()?;
        let listings = &faults.listings;
        let armed = |fault| {
            listings
                .faults
                .iter()
                .any(|(f, scope)| *f == fault && scope.covers(&bucket, &prefix))
        };
        let hold = listings
            .holds
            .iter()
            .find(|(scope, _)| scope.covers(&bucket, &prefix))
            .zip(listings.release.as_ref())
            .map(|((_, when), release)| (*when, release.subscribe()));
        let plan = Plan {
            truncate: armed(Fault::Truncate),
            unsort: armed(Fault::Unsort),
            fail: armed(Fault::Fail),
            hold,
            held: listings.held.clone(),
        };
        (plan.truncate || plan.unsort || plan.fail || plan.hold.is_some()).then_some(plan)
    }

    /// The 500 a failed listing gets instead of being forwarded.
    pub(super) fn refusal(&self, state: &State, who: &Answerer) -> Option<Response<Body>> {
        if !self.fail {
            return None;
        }
        if let Ok(mut f) = state.faults.lock() {
            f.count("listing_failed");
        }
        Some(state.error(
            who,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
            false,
        ))
    }

    /// Waits here, before forwarding, if held so.
    pub(super) async fn before_forwarding(&mut self, state: &State) {
        if let Some((HoldListing::BeforeForwarding, release)) = &mut self.hold {
            wait(state, release, &self.held).await;
        }
    }

    /// The client's answer (already rewritten for OSS mode) buffered,
    /// broken as armed, and held if so.
    pub(super) async fn after_answer(
        mut self,
        state: &State,
        response: Response<Body>,
    ) -> Result<Response<Body>> {
        let (mut parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        let body = if parts.status.is_success() && (self.truncate || self.unsort) {
            let mut xml = String::from_utf8_lossy(&bytes).into_owned();
            let mut injected = Vec::new();
            if self.truncate {
                xml = truncate_without_token(&xml);
                injected.push("listing_truncated");
            }
            if self.unsort
                && let Some(swapped) = swap_first_two(&xml)
            {
                xml = swapped;
                injected.push("listing_unsorted");
            }
            if let Ok(mut f) = state.faults.lock() {
                injected.into_iter().for_each(|kind| f.count(kind));
            }
            // The length changed; hyper sets it from the new body.
            parts.headers.remove(CONTENT_LENGTH);
            parts.headers.remove(TRANSFER_ENCODING);
            full(xml)
        } else {
            full(bytes)
        };
        if let Some((HoldListing::AfterAnswer, release)) = &mut self.hold {
            wait(state, release, &self.held).await;
        }
        Ok(Response::from_parts(parts, body))
    }
}

/// Counts a listing as held while it waits for the release.
struct Held(Arc<AtomicU64>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn wait(state: &State, release: &mut watch::Receiver<bool>, held: &Arc<AtomicU64>) {
    // Counted as injected before it shows as held, so a test that has
    // seen it held also sees it counted.
    if let Ok(mut f) = state.faults.lock() {
        f.count("listing_held");
    }
    held.fetch_add(1, Ordering::SeqCst);
    let _held = Held(held.clone());
    // An error means the sender is gone, replaced or released: go on.
    let _ = release.wait_for(|open| *open).await;
}

/// Byte ranges of the whole `<Contents>…</Contents>` elements.
fn contents(xml: &str) -> Vec<Range<usize>> {
    const OPEN: usize = "<Contents>".len();
    const CLOSE: usize = "</Contents>".len();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some((start, end, _)) = element(xml, "Contents", from) {
        spans.push(start - OPEN..end + CLOSE);
        from = end + CLOSE;
    }
    spans
}

/// The page said to be truncated, without the token to continue from,
/// and with the first half of its objects (at least one, if any).
fn truncate_without_token(xml: &str) -> String {
    let spans = contents(xml);
    let keep = match spans.len() {
        0 => 0,
        n => (n / 2).max(1),
    };
    let mut out = String::with_capacity(xml.len());
    let mut copied = 0;
    for span in &spans[keep..] {
        out.push_str(&xml[copied..span.start]);
        copied = span.end;
    }
    out.push_str(&xml[copied..]);
    let dropped = spans.len() - keep;
    if let Some((start, end, _)) = element(&out, "NextContinuationToken", 0) {
        let open = "<NextContinuationToken>".len();
        let close = "</NextContinuationToken>".len();
        out.replace_range(start - open..end + close, "");
    }
    let mut out = match element(&out, "IsTruncated", 0) {
        Some(_) => map_elements(&out, "IsTruncated", |_| "true".to_owned()),
        None => out.replace(
            "</ListBucketResult>",
            "<IsTruncated>true</IsTruncated></ListBucketResult>",
        ),
    };
    // KeyCount counts what the page holds; a client may check it.
    out = map_elements(&out, "KeyCount", |n| {
        n.trim()
            .parse::<usize>()
            .map_or(n.to_owned(), |n| n.saturating_sub(dropped).to_string())
    });
    out
}

/// The page with its first two objects swapped; `None` with fewer.
fn swap_first_two(xml: &str) -> Option<String> {
    let spans = contents(xml);
    let (first, second) = (spans.first()?, spans.get(1)?);
    Some(
        [
            &xml[..first.start],
            &xml[second.clone()],
            &xml[first.end..second.start],
            &xml[first.clone()],
            &xml[second.end..],
        ]
        .concat(),
    )
}

impl S3Proxy {
    fn listing_fault(&self, fault: Fault, bucket: &str, prefix: &str) {
        let scope = Scope::new(bucket, prefix);
        self.faults(|f| f.listings.faults.push((fault, scope)));
    }

    /// ListObjectsV2 answers for `bucket`, listing a prefix that starts
    /// with `prefix` ("" for all), say they are truncated but carry no
    /// continuation token, and hold half their objects. Until
    /// [`S3Proxy::clear_listing_faults`].
    pub fn truncate_listings_without_token(&self, bucket: &str, prefix: &str) {
        self.listing_fault(Fault::Truncate, bucket, prefix);
    }

    /// Such listings answer their first two objects out of byte order.
    /// Until [`S3Proxy::clear_listing_faults`].
    pub fn unsort_listings(&self, bucket: &str, prefix: &str) {
        self.listing_fault(Fault::Unsort, bucket, prefix);
    }

    /// Such listings are answered 500 InternalError (OSS's error body in
    /// OSS mode) without reaching the emulator, retries included. Until
    /// [`S3Proxy::clear_listing_faults`].
    pub fn fail_listings(&self, bucket: &str, prefix: &str) {
        self.listing_fault(Fault::Fail, bucket, prefix);
    }

    /// Ends the truncated, unsorted and failed listings (not holds).
    pub fn clear_listing_faults(&self) {
        self.faults(|f| f.listings.faults.clear());
    }

    /// Holds such listings at `when` until
    /// [`S3Proxy::release_held_listings`]; [`S3Proxy::held_listings`]
    /// tells when one is waiting, so the store can be changed at a known
    /// point of the listing.
    pub fn hold_listings(&self, bucket: &str, prefix: &str, when: HoldListing) {
        let scope = Scope::new(bucket, prefix);
        self.faults(|f| {
            f.listings.holds.push((scope, when));
            f.listings
                .release
                .get_or_insert_with(|| watch::channel(false).0);
        });
    }

    /// Lets every held listing go and holds no more.
    pub fn release_held_listings(&self) {
        self.faults(|f| {
            if let Some(release) = f.listings.release.take() {
                let _ = release.send(true);
            }
            f.listings.holds.clear();
        });
    }

    /// Listings waiting to be released now.
    pub fn held_listings(&self) -> u64 {
        self.state
            .faults
            .lock()
            .map(|f| f.listings.held.load(Ordering::SeqCst))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<ListBucketResult><Name>b</Name><KeyCount>3</KeyCount><IsTruncated>false</IsTruncated>\
        <Contents><Key>a</Key></Contents><Contents><Key>b</Key></Contents>\
        <Contents><Key>c</Key></Contents><NextContinuationToken>t</NextContinuationToken></ListBucketResult>";

    #[test]
    fn truncated_pages_lose_their_token_and_half_their_objects() {
        let out = truncate_without_token(PAGE);
        assert!(out.contains("<IsTruncated>true</IsTruncated>"), "{out}");
        assert!(!out.contains("NextContinuationToken"), "{out}");
        assert!(out.contains("<KeyCount>1</KeyCount>"), "{out}");
        assert_eq!(contents(&out).len(), 1, "{out}");
        assert!(out.contains("<Key>a</Key>") && out.ends_with("</ListBucketResult>"));
        let empty = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(
            truncate_without_token(empty),
            "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"
        );
    }

    #[test]
    fn unsorted_pages_swap_their_first_two_objects() {
        let out = swap_first_two(PAGE).expect("two objects");
        let keys: Vec<_> = contents(&out).into_iter().map(|s| &out[s]).collect();
        assert_eq!(
            keys,
            [
                "<Contents><Key>b</Key></Contents>",
                "<Contents><Key>a</Key></Contents>",
                "<Contents><Key>c</Key></Contents>"
            ]
        );
        assert!(swap_first_two("<Contents><Key>a</Key></Contents>").is_none());
    }

    #[test]
    fn only_v2_listings_of_the_bucket_and_prefix_are_covered() {
        let get = &Method::GET;
        assert_eq!(
            listed(get, "/b", "list-type=2&prefix=a%2Fx"),
            Some(("b".into(), "a/x".into()))
        );
        assert_eq!(
            listed(get, "/b/", "list-type=2"),
            Some(("b".into(), "".into()))
        );
        assert_eq!(listed(get, "/b", "prefix=a"), None);
        assert_eq!(listed(get, "/b/k", "list-type=2"), None);
        assert_eq!(listed(&Method::PUT, "/b", "list-type=2"), None);
        let scope = Scope::new("b", "a/");
        assert!(scope.covers("b", "a/x"));
        assert!(!scope.covers("b", "") && !scope.covers("c", "a/x"));
        assert!(Scope::new("b", "").covers("b", "z"));
    }
}
