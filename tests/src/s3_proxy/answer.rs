//! The emulator's answer rewritten for the client: moto quirks mended,
//! in OSS mode OSS's ETags, object types, CRC-64 headers and error
//! bodies, and the GET faults applied to object bodies.

use anyhow::Result;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::errors::{self, Answerer};
use super::oss::{self, ObjectType};
use super::upstream::{empty, etag_of, full};
use super::xml::{map_elements, unescape};
use super::{Body, Mode, State, faults, mend};

/// Whether the answer's body is read whole to be rewritten.
fn rewrites_body(oss: bool, op: &str) -> bool {
    mend::needs_mending(op)
        || (oss && matches!(op, "ListObjects" | "CompleteMultipartUpload" | "CopyObject"))
}

pub(super) async fn answer(
    state: &State,
    who: &Answerer,
    op: &'static str,
    path: &str,
    head: bool,
    upstream: Response<Incoming>,
) -> Result<Response<Body>> {
    let oss = state.mode == Mode::Oss;
    let (mut parts, body) = upstream.into_parts();
    let status = parts.status;
    if oss && (status.is_client_error() || status.is_server_error()) {
        if head {
            return Ok(Response::from_parts(parts, empty()));
        }
        let bytes = body.collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        return Ok(match errors::to_oss(who, status, &text, false) {
            Some(rewritten) => rewritten,
            None => Response::from_parts(parts, full(bytes)),
        });
    }
    if oss {
        oss_headers(state, op, path, status, &mut parts.headers).await?;
    }
    let body = if status.is_success() && rewrites_body(oss, op) {
        let xml = String::from_utf8_lossy(&body.collect().await?.to_bytes()).into_owned();
        let mut xml = state.initiated.mend(op, xml);
        if oss {
            xml = oss_body(state, op, path, &xml);
        }
        parts.headers.remove(CONTENT_LENGTH);
        full(xml)
    } else if op == "GetObject" && status.is_success() {
        get_faults(state, path, body.boxed()).await?
    } else {
        body.boxed()
    };
    Ok(Response::from_parts(parts, body))
}

/// OSS's headers on a successful (or 304) answer.
async fn oss_headers(
    state: &State,
    op: &str,
    path: &str,
    status: StatusCode,
    headers: &mut HeaderMap,
) -> Result<()> {
    match op {
        "GetObject" | "HeadObject" => {
            let Some(etag) = etag_of(headers) else {
                return Ok(());
            };
            let (kind, oss_etag) = state.objects.etag(path, &etag);
            headers.insert("etag", format!("\"{oss_etag}\"").parse()?);
            if status == StatusCode::NOT_MODIFIED {
                return Ok(());
            }
            headers.insert("x-oss-object-type", HeaderValue::from_static(kind.as_str()));
            headers.insert("x-oss-storage-class", HeaderValue::from_static("Standard"));
            if kind == ObjectType::Appendable
                && let Some(length) = oss::object_length(headers)
            {
                headers.insert("x-oss-next-append-position", length.into());
            }
            // A range GET carries the whole object's CRC, as OSS's does.
            if let Some(crc) = state.upstream.crc64(path, &etag).await? {
                headers.insert("x-oss-hash-crc64ecma", crc.into());
            }
        }
        "PutObject" => {
            state.objects.forget_appendable(path);
            if let Some(etag) = etag_of(headers) {
                headers.insert(
                    "etag",
                    format!("\"{}\"", etag.to_ascii_uppercase()).parse()?,
                );
                if let Some(crc) = state.upstream.crc64(path, &etag).await? {
                    headers.insert("x-oss-hash-crc64ecma", crc.into());
                }
            }
        }
        "UploadPart" => {
            if let Some(etag) = etag_of(headers) {
                headers.insert(
                    "etag",
                    format!("\"{}\"", etag.to_ascii_uppercase()).parse()?,
                );
            }
        }
        "CompleteMultipartUpload" | "CopyObject" | "DeleteObject" => {
            state.objects.forget_appendable(path);
        }
        _ => {}
    }
    Ok(())
}

/// OSS's ETags in an XML answer.
fn oss_body(state: &State, op: &str, path: &str, xml: &str) -> String {
    match op {
        "ListObjects" => state.objects.rewrite_listing(path, xml),
        "ListParts" => oss::upper_part_etags(xml),
        "CompleteMultipartUpload" | "CopyObject" => map_elements(xml, "ETag", |etag| {
            let (_, oss_etag) = state.objects.etag(path, unescape(etag).trim_matches('"'));
            format!("&quot;{oss_etag}&quot;")
        }),
        _ => xml.to_owned(),
    }
}

/// The injected GET faults: truncated, corrupted, trickled bodies.
async fn get_faults(state: &State, path: &str, body: Body) -> Result<Body> {
    let (truncated, corrupt, trickle) = match state.faults.lock() {
        Ok(mut f) => (
            f.take("truncated"),
            f.corrupt.contains(path),
            f.trickle_for(path),
        ),
        Err(_) => (false, false, None),
    };
    if truncated {
        return Ok(faults::truncate(body));
    }
    let body = match corrupt {
        true => faults::corrupt(body),
        false => body,
    };
    Ok(match trickle {
        Some(trickle) => faults::trickle(body, trickle).await?,
        None => body,
    })
}
