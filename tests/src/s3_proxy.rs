//! A streaming proxy in front of the emulator's S3, for copy tests:
//!
//! - counts calls by S3 operation (UploadPart, PutObject, ...);
//! - in OSS mode, plays Aliyun OSS's S3-compatible API: object responses
//!   carry `x-oss-hash-crc64ecma` (CRC-64/XZ of the whole object, computed
//!   here from the emulator's copy), which no S3 emulator produces;
//! - mends one moto quirk: moto 5.2 names the root element of a ListParts
//!   answer `ListPartsResponse` instead of S3's `ListPartsResult`, which
//!   the Rust SDK rightly refuses; and it reports every multipart upload
//!   as initiated on 2010-11-10, so the proxy notes when each upload it
//!   created was really initiated and reports that;
//! - injects faults: a flipped byte in an object's GET bodies (same
//!   length, so only checksums can tell), a delay before answering GETs or
//!   every request, 403 AccessDenied for revoked access keys (rotated
//!   credentials), bursts of 503 SlowDown, connections dropped without an
//!   answer, and GET bodies cut short (the connection closes mid-body).
//!
//! Bodies stream through; nothing is buffered.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, hyper::Error>;

#[derive(Debug, Default)]
struct Faults {
    /// Paths (`/bucket/key`) whose GET bodies get one byte flipped.
    corrupt: HashSet<String>,
    get_delay: Duration,
    /// Before every request.
    latency: Duration,
    revoked_keys: HashSet<String>,
    /// Upcoming requests answered 503 SlowDown without forwarding.
    slow_down: u64,
    /// Upcoming requests whose connection is dropped without an answer.
    dropped: u64,
    /// Upcoming successful GetObject answers cut after the first chunk.
    truncated: u64,
    /// Faults injected so far, by kind.
    injected: HashMap<&'static str, u64>,
}

impl Faults {
    /// Takes one from a countdown; counts it as injected if it was armed.
    fn take(&mut self, kind: &'static str) -> bool {
        let armed = match kind {
            "slow_down" => &mut self.slow_down,
            "dropped" => &mut self.dropped,
            _ => &mut self.truncated,
        };
        if *armed == 0 {
            return false;
        }
        *armed -= 1;
        *self.injected.entry(kind).or_insert(0) += 1;
        true
    }
}

#[derive(Debug)]
struct State {
    upstream: String,
    oss: bool,
    client: Client<HttpConnector, Body>,
    calls: Mutex<HashMap<&'static str, u64>>,
    crc64: Mutex<HashMap<(String, String), u64>>,
    faults: Mutex<Faults>,
    /// Upload id → when CreateMultipartUpload went through here.
    initiated: Mutex<HashMap<String, String>>,
}

#[derive(Debug)]
pub struct S3Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl S3Proxy {
    /// A plain counting proxy.
    pub async fn start(upstream: &str) -> Result<S3Proxy> {
        S3Proxy::start_with(upstream, false).await
    }

    /// A proxy that answers like OSS (with `x-oss-hash-crc64ecma`).
    pub async fn start_oss(upstream: &str) -> Result<S3Proxy> {
        S3Proxy::start_with(upstream, true).await
    }

    async fn start_with(upstream: &str, oss: bool) -> Result<S3Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            oss,
            client: Client::builder(TokioExecutor::new()).build_http(),
            calls: Mutex::default(),
            crc64: Mutex::default(),
            faults: Mutex::default(),
            initiated: Mutex::default(),
        });
        let task = crate::proxy::spawn_http1(listener, state.clone(), handle);
        Ok(S3Proxy { addr, state, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls seen for an operation, e.g. `UploadPart`.
    pub fn calls(&self, operation: &str) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| c.get(operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn faults(&self, f: impl FnOnce(&mut Faults)) {
        if let Ok(mut faults) = self.state.faults.lock() {
            f(&mut faults);
        }
    }

    /// Flips one byte in every GET body of `bucket/key` from now on.
    pub fn corrupt(&self, bucket: &str, key: &str) {
        let path = object_path(bucket, key);
        self.faults(|f| {
            f.corrupt.insert(path);
        });
    }

    /// Delays every GET by `delay` (slow source).
    pub fn delay_gets(&self, delay: Duration) {
        self.faults(|f| f.get_delay = delay);
    }

    /// Answers 403 AccessDenied to requests signed with `access_key_id`.
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

    /// Faults of `kind` (`slow_down`, `dropped`, `truncated`) injected.
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

/// `/bucket/key` with the key percent-encoded the way the SDK sends it.
fn object_path(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    format!(
        "/{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, KEEP)
    )
}

/// The S3 operation a request is.
fn operation(method: &Method, path: &str, query: &str) -> &'static str {
    let has = |p: &str| {
        query
            .split('&')
            .any(|kv| kv == p || kv.starts_with(&format!("{p}=")))
    };
    let is_object = path.trim_start_matches('/').contains('/');
    match *method {
        Method::PUT if has("partNumber") && has("uploadId") => "UploadPart",
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::GET if has("uploadId") => "ListParts",
        Method::GET if has("uploads") => "ListMultipartUploads",
        Method::GET if has("acl") => "GetObjectAcl",
        Method::GET if is_object => "GetObject",
        Method::HEAD if is_object => "HeadObject",
        Method::PUT if is_object => "PutObject",
        Method::DELETE if is_object => "DeleteObject",
        Method::GET => "ListObjects",
        _ => "Other",
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, crate::proxy::Dropped> {
    let (latency, dropped, slow_down) = match state.faults.lock() {
        Ok(mut f) => (f.latency, f.take("dropped"), f.take("slow_down")),
        Err(_) => (Duration::ZERO, false, false),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if dropped {
        return Err(crate::proxy::Dropped);
    }
    if slow_down {
        let mut r = Response::new(full(
            "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        ));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(r);
    }
    match forward(state, request).await {
        Ok(r) => Ok(r),
        Err(e) => {
            let mut r = Response::new(full(format!("proxy: {e:#}")));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(r)
        }
    }
}

/// The access key id of a SigV4 `Authorization` header.
fn access_key(request: &Request<Incoming>) -> Option<String> {
    let auth = request.headers().get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

async fn forward(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Body>> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let op = operation(request.method(), &path, &query);
    if let Ok(mut calls) = state.calls.lock() {
        *calls.entry(op).or_insert(0) += 1;
    }
    let (delay, corrupt, revoked) = {
        let f = state
            .faults
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let revoked = access_key(&request).is_some_and(|k| f.revoked_keys.contains(&k));
        (f.get_delay, f.corrupt.contains(&path), revoked)
    };
    if revoked {
        let mut r = Response::new(full(
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>revoked key</Message></Error>",
        ));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return Ok(r);
    }
    if op == "GetObject" && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (mut parts, body) = request.into_parts();
    let uri = format!(
        "{}{}",
        state.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    parts.uri = uri.parse()?;
    let upstream = state
        .client
        .request(Request::from_parts(parts, body.boxed()))
        .await?;
    let (mut parts, body) = upstream.into_parts();
    let is_object_read = matches!(op, "GetObject" | "HeadObject") && parts.status.is_success();
    if state.oss
        && is_object_read
        && let Some(etag) = parts
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    {
        let crc = crc64(&state, &path, &etag).await?;
        parts
            .headers
            .insert("x-oss-hash-crc64ecma", crc.to_string().parse()?);
    }
    let body = if matches!(
        op,
        "ListParts" | "CreateMultipartUpload" | "ListMultipartUploads"
    ) {
        let xml = String::from_utf8_lossy(&body.collect().await?.to_bytes()).into_owned();
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
        full(mend(&state, op, xml))
    } else if op == "GetObject"
        && parts.status.is_success()
        && state.faults.lock().is_ok_and(|mut f| f.take("truncated"))
    {
        // Half the first chunk, then the end while Content-Length promised
        // more: hyper closes the connection and the client gets a short body.
        use futures::{StreamExt, TryStreamExt};
        let first = body
            .into_data_stream()
            .take(1)
            .map_ok(|data| Frame::data(data.slice(..data.len() / 2)));
        BodyExt::boxed(http_body_util::StreamBody::new(first))
    } else if op == "GetObject" && corrupt {
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
    } else {
        body.boxed()
    };
    Ok(Response::from_parts(parts, body))
}

/// The text between `<tag>` and `</tag>`, from `from` on.
fn element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<(usize, usize, &'a str)> {
    let open = format!("<{tag}>");
    let start = xml[from..].find(&open)? + from + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some((start, end, &xml[start..end]))
}

fn mend(state: &State, op: &str, xml: String) -> String {
    match op {
        "ListParts" => xml
            .replace("<ListPartsResponse", "<ListPartsResult")
            .replace("</ListPartsResponse>", "</ListPartsResult>"),
        "CreateMultipartUpload" => {
            if let Some((_, _, id)) = element(&xml, "UploadId", 0)
                && let Ok(mut initiated) = state.initiated.lock()
            {
                let format = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                );
                let now = time::OffsetDateTime::now_utc()
                    .format(&format)
                    .unwrap_or_default();
                initiated.insert(id.to_owned(), now);
            }
            xml
        }
        _ => {
            let Ok(initiated) = state.initiated.lock() else {
                return xml;
            };
            // Rebuild the answer, swapping each known upload's Initiated.
            let mut out = String::with_capacity(xml.len());
            let mut copied = 0;
            let mut from = 0;
            while let Some((_, id_end, id)) = element(&xml, "UploadId", from) {
                if let (Some(when), Some((start, end, _))) =
                    (initiated.get(id), element(&xml, "Initiated", id_end))
                {
                    out.push_str(&xml[copied..start]);
                    out.push_str(when);
                    copied = end;
                }
                from = id_end;
            }
            out.push_str(&xml[copied..]);
            out
        }
    }
}

/// CRC-64/XZ of the whole object at `path` (this version), cached.
async fn crc64(state: &State, path: &str, etag: &str) -> Result<u64> {
    let cache_key = (path.to_owned(), etag.to_owned());
    if let Some(crc) = state
        .crc64
        .lock()
        .ok()
        .and_then(|c| c.get(&cache_key).copied())
    {
        return Ok(crc);
    }
    // moto routes a request to a service by the credential scope of its
    // Authorization header; it does not check the signature.
    let request = Request::builder()
        .uri(format!("{}{path}", state.upstream))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(Empty::new().map_err(|never| match never {}).boxed())?;
    let response = state.client.request(request).await?;
    if !response.status().is_success() {
        anyhow::bail!("reading {path} for its CRC-64: {}", response.status());
    }
    let mut body = response.into_body();
    let mut digest = CrcDigest::new(CrcAlgorithm::Crc64Xz);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            digest.update(&data);
        }
    }
    let crc = digest.finalize();
    if let Ok(mut cache) = state.crc64.lock() {
        cache.insert(cache_key, crc);
    }
    Ok(crc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_told_apart() {
        assert_eq!(
            operation(&Method::PUT, "/b/k", "partNumber=1&uploadId=x"),
            "UploadPart"
        );
        assert_eq!(
            operation(&Method::PUT, "/b/k", "x-id=PutObject"),
            "PutObject"
        );
        assert_eq!(
            operation(&Method::POST, "/b/k", "uploads"),
            "CreateMultipartUpload"
        );
        assert_eq!(operation(&Method::GET, "/b", "list-type=2"), "ListObjects");
        assert_eq!(
            operation(&Method::GET, "/b/k", "x-id=GetObject"),
            "GetObject"
        );
        assert_eq!(
            object_path("b", "a b/报告+.txt"),
            "/b/a%20b/%E6%8A%A5%E5%91%8A%2B.txt"
        );
    }
}
