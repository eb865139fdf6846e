//! The sample bodies in `tests/fixtures/`, and OSS events built from them
//! for objects a test created.

use anyhow::{Context, Result};
use md5::{Digest, Md5};
use serde_json::Value;

use crate::repo_root;

/// The text of `tests/fixtures/{path}`.
pub fn read(path: &str) -> Result<String> {
    let full = repo_root().join("tests/fixtures").join(path);
    std::fs::read_to_string(&full).with_context(|| format!("fixture {}", full.display()))
}

/// OSS's eTag for a simple upload: the MD5, upper-case hex.
pub fn oss_etag(bytes: &[u8]) -> String {
    hex::encode_upper(Md5::digest(bytes))
}

/// An `{"events":[...]}` body with one event per object, each a copy of
/// the first event of the fixture `template` with the bucket, key, size,
/// eTag and request id replaced.
pub fn oss_event(template: &str, bucket: &str, objects: &[(&str, &[u8])]) -> Result<String> {
    let fixture: Value = serde_json::from_str(&read(template)?)?;
    let first = fixture["events"][0].clone();
    let events: Vec<Value> = objects
        .iter()
        .map(|(key, bytes)| {
            let mut e = first.clone();
            e["oss"]["bucket"]["name"] = bucket.into();
            e["oss"]["object"]["key"] = (*key).into();
            e["oss"]["object"]["size"] = bytes.len().into();
            e["oss"]["object"]["eTag"] = oss_etag(bytes).into();
            e["responseElements"]["requestId"] = crate::unique_name("req").into();
            e
        })
        .collect();
    Ok(serde_json::json!({ "events": events }).to_string())
}

/// Deterministic pseudo-random bytes (xorshift), so objects are not
/// compressible runs of one byte.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
