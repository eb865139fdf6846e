//! OSS's AppendObject (`POST /KEY?append&position=P`), which no S3
//! emulator has, built on whole-object reads and writes (help.aliyun.com/
//! en/oss/developer-reference/appendobject):
//!
//! - position 0 on a missing key creates an `Appendable` object;
//! - on an appendable object, a position equal to its length appends;
//!   any other answers 409 PositionNotEqualToLength with
//!   `x-oss-next-append-position` (help.aliyun.com/en/oss/user-guide/
//!   0026-00000016);
//! - on any other object: 409 ObjectNotAppendable;
//! - the answer carries `x-oss-next-append-position`,
//!   `x-oss-hash-crc64ecma` (of the whole object) and the ETag;
//! - content type and metadata are those of the first append.
//!
//! Runs with the key's lock held, like every write through the proxy.

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use crc_fast::CrcAlgorithm;
use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderName};
use hyper::{Response, StatusCode};

use super::errors::{self, Answerer};
use super::oss::ObjectType;
use super::route::param;
use super::upstream::{empty, etag_of};
use super::{Body, State};

/// What an AppendObject answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub status: u16,
    /// The OSS error code, when it failed.
    pub code: Option<String>,
    /// `x-oss-next-append-position`: the object's length.
    pub next_position: Option<u64>,
    /// `x-oss-hash-crc64ecma` of the whole object.
    pub crc64: Option<u64>,
    /// Unquoted.
    pub etag: Option<String>,
}

/// Headers an object keeps from the write that created it.
const KEPT: [&str; 6] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// The attributes of `from` to write with the object: content headers and
/// user metadata (OSS clients send `x-oss-meta-*`, S3 ones `x-amz-meta-*`;
/// the emulator stores the latter).
fn attributes(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in from {
        let name = name.as_str();
        if KEPT.contains(&name) || name.starts_with("x-amz-meta-") {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                out.insert(n, value.clone());
            }
        } else if let Some(meta) = name.strip_prefix("x-oss-meta-")
            && let Ok(n) = HeaderName::from_bytes(format!("x-amz-meta-{meta}").as_bytes())
        {
            out.insert(n, value.clone());
        }
    }
    out
}

fn position_not_equal(who: &Answerer, length: u64) -> Response<Body> {
    let mut r = errors::oss(
        who,
        StatusCode::CONFLICT,
        "PositionNotEqualToLength",
        "Position is not equal to file length",
        &[],
        false,
    );
    r.headers_mut()
        .insert("x-oss-next-append-position", length.into());
    r
}

pub(super) async fn serve(
    state: &State,
    who: &Answerer,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: super::Body,
) -> Result<Response<Body>> {
    let Some(position) = param(query, "position").and_then(|p| p.parse::<u64>().ok()) else {
        return Ok(errors::oss(
            who,
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Position is not valid.",
            &[],
            false,
        ));
    };
    let data = body.collect().await?.to_bytes();
    let (content, attributes) = match state.upstream.get(path).await? {
        None if position != 0 => return Ok(position_not_equal(who, 0)),
        None => (data, attributes(headers)),
        Some((stored, existing)) => {
            let etag = etag_of(&stored).context("stored object without ETag")?;
            if state.objects.kind(path, &etag) != ObjectType::Appendable {
                return Ok(errors::oss(
                    who,
                    StatusCode::CONFLICT,
                    "ObjectNotAppendable",
                    "The object is not appendable",
                    &[],
                    false,
                ));
            }
            if position != existing.len() as u64 {
                return Ok(position_not_equal(who, existing.len() as u64));
            }
            let mut joined = BytesMut::from(existing);
            joined.extend_from_slice(&data);
            (joined.freeze(), attributes(&stored))
        }
    };
    let length = content.len() as u64;
    let crc = crc_fast::checksum(CrcAlgorithm::Crc64Xz, &content);
    let etag = state.upstream.put(path, attributes, content).await?;
    state.objects.mark_appendable(path, &etag);
    state.upstream.remember_crc64(path, &etag, crc);
    let (_, oss_etag) = state.objects.etag(path, &etag);
    let mut response = Response::new(empty());
    let h = response.headers_mut();
    h.insert("etag", format!("\"{oss_etag}\"").parse()?);
    h.insert("x-oss-next-append-position", length.into());
    h.insert("x-oss-hash-crc64ecma", crc.into());
    Ok(response)
}

impl super::S3Proxy {
    /// OSS's AppendObject through this proxy (OSS mode), signed with the
    /// test access key: appends `bytes` at `position`. `headers`
    /// (`content-type`, `x-oss-meta-*`, ...) count only on the first
    /// append of an object, as on OSS.
    pub async fn append(
        &self,
        bucket: &str,
        key: &str,
        position: u64,
        bytes: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<Appended> {
        let addr = self.addr;
        let path = super::route::object_path(bucket, key);
        let key_path = path
            .strip_prefix(&format!("/{bucket}"))
            .context("object path")?;
        let request = hyper::Request::post(format!(
            "http://{addr}{key_path}?append&position={position}"
        ))
        .header("host", format!("{bucket}.localhost:{}", addr.port()))
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
                crate::TEST_ACCESS_KEY_ID
            ),
        )
        .body(super::upstream::full(Bytes::from(bytes)))?;
        let mut request = request;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(HeaderName::from_bytes(name.as_bytes())?, value.parse()?);
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Body>();
        let response = client.request(request).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let next_position = header("x-oss-next-append-position").and_then(|v| v.parse().ok());
        let crc64 = header("x-oss-hash-crc64ecma").and_then(|v| v.parse().ok());
        let etag = header("etag").map(|e| e.trim_matches('"').to_owned());
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        let code =
            super::xml::element(&String::from_utf8_lossy(&body), "Code", 0).map(|c| c.2.to_owned());
        Ok(Appended {
            status,
            code,
            next_position,
            crc64,
            etag,
        })
    }
}
