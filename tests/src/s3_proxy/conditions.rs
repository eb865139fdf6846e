//! S3's conditional writes where the emulator lacks them, and the per-key
//! serialization that makes check-then-forward atomic.
//!
//! moto 5.2.5 honours If-Match / If-None-Match on PutObject, If-None-Match
//! on CompleteMultipartUpload and If-Match on DeleteObject, but ignores
//! If-Match on CompleteMultipartUpload, If-Match / If-None-Match on
//! CopyObject's destination and `x-amz-copy-source-if-match`. S3 answers
//! a mismatch with 412 PreconditionFailed, If-Match on a missing key with
//! 404 NoSuchKey, and may answer concurrent conditional writes with 409
//! ConditionalRequestConflict (docs.aws.amazon.com/AmazonS3/latest/
//! userguide/conditional-writes.html and the API reference of each
//! operation). The proxy checks these itself, holding the key's lock, so
//! no other write through the proxy lands between check and write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use tokio::sync::OwnedMutexGuard;

use super::route::{copy_source_path, key_of};
use super::upstream::{Upstream, etag_of};
use super::xml::escape;
use super::{Body, errors};

/// One async lock per object path.
#[derive(Debug, Default)]
pub(super) struct KeyLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl KeyLocks {
    pub(super) async fn lock(&self, path: &str) -> OwnedMutexGuard<()> {
        let lock = match self.0.lock() {
            Ok(mut locks) => locks.entry(path.to_owned()).or_default().clone(),
            // A poisoned table only loses serialization, never an answer.
            Err(_) => Arc::default(),
        };
        lock.lock_owned().await
    }
}

/// Whether a write carries a condition (for injected conflicts).
pub(super) fn is_conditional(headers: &HeaderMap) -> bool {
    ["if-match", "if-none-match", "x-amz-copy-source-if-match"]
        .iter()
        .any(|h| headers.contains_key(*h))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether an `If-Match` list names `etag` (or is `*`).
fn matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag)
}

fn precondition_failed(condition: &str, request_id: &str) -> Response<Body> {
    errors::s3(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        &[("Condition", condition.to_owned())],
        request_id,
    )
}

fn no_such_key(path: &str, request_id: &str) -> Response<Body> {
    errors::s3(
        StatusCode::NOT_FOUND,
        "NoSuchKey",
        "The specified key does not exist.",
        &[("Key", escape(&key_of(path)))],
        request_id,
    )
}

/// The S3 answer to a write whose condition does not hold, or `None` to
/// forward it. Call with the key's lock held.
pub(super) async fn check_write(
    upstream: &Upstream,
    op: &str,
    path: &str,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<Option<Response<Body>>> {
    let if_match = header(headers, "if-match");
    let if_none_match = header(headers, "if-none-match");
    let destination_checked = match op {
        "CompleteMultipartUpload" => if_match.is_some(),
        "CopyObject" => if_match.is_some() || if_none_match.is_some(),
        _ => false,
    };
    if destination_checked {
        let current = upstream.head(path).await?;
        let etag = current.as_ref().and_then(etag_of);
        if let Some(list) = if_match {
            match &etag {
                None => return Ok(Some(no_such_key(path, request_id))),
                Some(etag) if !matches(list, etag) => {
                    return Ok(Some(precondition_failed("If-Match", request_id)));
                }
                Some(_) => {}
            }
        }
        // If-None-Match on a write takes only `*`: "no object here".
        if op == "CopyObject" && if_none_match.is_some() && current.is_some() {
            return Ok(Some(precondition_failed("If-None-Match", request_id)));
        }
    }
    if op == "CopyObject"
        && let (Some(list), Some(source)) = (
            header(headers, "x-amz-copy-source-if-match"),
            header(headers, "x-amz-copy-source"),
        )
    {
        let source = copy_source_path(source);
        match upstream.head(&source).await?.as_ref().and_then(etag_of) {
            None => return Ok(Some(no_such_key(&source, request_id))),
            Some(etag) if !matches(list, &etag) => {
                return Ok(Some(precondition_failed(
                    "x-amz-copy-source-If-Match",
                    request_id,
                )));
            }
            Some(_) => {}
        }
    }
    Ok(None)
}

/// S3's answer to a conditional write that raced another.
pub(super) fn conflict(request_id: &str) -> Response<Body> {
    errors::s3(
        StatusCode::CONFLICT,
        "ConditionalRequestConflict",
        "A conflicting conditional operation is currently in progress against this resource. Please try again.",
        &[],
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_lists() {
        assert!(matches("\"abc\"", "abc"));
        assert!(matches("\"x\", \"abc\"", "abc"));
        assert!(matches("*", "abc"));
        assert!(!matches("\"ABC\"", "abc"));
    }
}
