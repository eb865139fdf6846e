//! The emulator behind the proxy: forwarding client requests to it
//! path-style, and the proxy's own reads and writes (HEAD for conditions,
//! GET for CRC-64 and appends, PUT for appends).

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Context, Result};
use bytes::Bytes;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Body;

/// moto routes a request to a service by the credential scope of its
/// Authorization header; it does not check the signature, so the proxy's
/// own requests carry a scope and no real signature.
const INTERNAL_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

#[derive(Debug)]
pub(super) struct Upstream {
    /// `http://127.0.0.1:PORT`
    base: String,
    /// `127.0.0.1:PORT`: the Host every forwarded request carries, since
    /// moto would read `BUCKET.localhost` as a virtual-hosted bucket.
    authority: HeaderValue,
    client: Client<HttpConnector, Body>,
    /// (path, emulator ETag) → CRC-64/XZ of that version.
    crc64: Mutex<HashMap<(String, String), u64>>,
}

pub(super) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The ETag header without quotes.
pub(super) fn etag_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("etag")?.to_str().ok()?;
    Some(value.trim_matches('"').to_owned())
}

impl Upstream {
    pub(super) fn new(base: &str) -> Result<Upstream> {
        let base = base.trim_end_matches('/').to_owned();
        let authority = base
            .split("://")
            .nth(1)
            .context("upstream URL without scheme")?
            .parse()?;
        Ok(Upstream {
            base,
            authority,
            client: Client::builder(TokioExecutor::new()).build_http(),
            crc64: Mutex::default(),
        })
    }

    /// Sends `request` to `path_and_query` on the emulator, path-style.
    pub(super) async fn send(
        &self,
        mut request: Request<Body>,
        path_and_query: &str,
    ) -> Result<Response<Incoming>> {
        *request.uri_mut() = format!("{}{path_and_query}", self.base).parse()?;
        request.headers_mut().insert(HOST, self.authority.clone());
        Ok(self.client.request(request).await?)
    }

    /// A request of the proxy's own.
    async fn internal(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .header("authorization", INTERNAL_AUTHORIZATION)
            .body(body)?;
        request.headers_mut().extend(headers);
        self.send(request, path).await
    }

    /// The object's headers, or `None` when it does not exist.
    pub(super) async fn head(&self, path: &str) -> Result<Option<HeaderMap>> {
        let response = self
            .internal(Method::HEAD, path, HeaderMap::new(), empty())
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(response.headers().clone())),
            s => anyhow::bail!("HEAD {path}: {s}"),
        }
    }

    /// The object's headers and bytes, or `None` when it does not exist.
    pub(super) async fn get(&self, path: &str) -> Result<Option<(HeaderMap, Bytes)>> {
        let response = self
            .internal(Method::GET, path, HeaderMap::new(), empty())
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let (parts, body) = response.into_parts();
                Ok(Some((parts.headers, body.collect().await?.to_bytes())))
            }
            s => anyhow::bail!("GET {path}: {s}"),
        }
    }

    /// PUTs `bytes` with `headers`; returns the new version's ETag.
    pub(super) async fn put(&self, path: &str, headers: HeaderMap, bytes: Bytes) -> Result<String> {
        let response = self
            .internal(Method::PUT, path, headers, full(bytes))
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "PUT {path}: {}",
            response.status()
        );
        etag_of(response.headers()).with_context(|| format!("PUT {path}: no ETag"))
    }

    pub(super) fn remember_crc64(&self, path: &str, etag: &str, crc: u64) {
        if let Ok(mut cache) = self.crc64.lock() {
            cache.insert((path.to_owned(), etag.to_owned()), crc);
        }
    }

    /// CRC-64/XZ of the whole object at `path`, version `etag` (emulator
    /// ETag, unquoted); `None` if that version is gone. Cached.
    pub(super) async fn crc64(&self, path: &str, etag: &str) -> Result<Option<u64>> {
        let cache_key = (path.to_owned(), etag.to_owned());
        if let Some(crc) = self
            .crc64
            .lock()
            .ok()
            .and_then(|c| c.get(&cache_key).copied())
        {
            return Ok(Some(crc));
        }
        // If-Match: the CRC must be of the version the caller saw, not of
        // whatever was written since.
        let mut headers = HeaderMap::new();
        headers.insert("if-match", format!("\"{etag}\"").parse()?);
        let response = self.internal(Method::GET, path, headers, empty()).await?;
        match response.status() {
            StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => anyhow::bail!("reading {path} for its CRC-64: {s}"),
            _ => {}
        }
        let mut body = response.into_body();
        let mut digest = CrcDigest::new(CrcAlgorithm::Crc64Xz);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                digest.update(&data);
            }
        }
        let crc = digest.finalize();
        self.remember_crc64(path, etag, crc);
        Ok(Some(crc))
    }
}
