//! Helpers of the abuse tests, shared by the files that talk to the
//! gateway below reqwest: the event they send and a socket reader that
//! tells a closed connection from a quiet one.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::Result;
use ossbridge_testkit::fixtures;
use tokio::io::{AsyncRead, AsyncReadExt};

/// One OSS put event for `key`, as a request body.
pub fn put_event(key: &str) -> Result<String> {
    fixtures::oss_event("oss-events/put-object.json", "media-prod", &[(key, b"x")])
}

/// Reads until the peer closes (`true`), stays quiet for `quiet` or errors.
pub async fn read_until_quiet(
    stream: &mut (impl AsyncRead + Unpin),
    quiet: Duration,
) -> (Vec<u8>, bool) {
    let (mut answer, mut buf) = (Vec::new(), [0u8; 8192]);
    loop {
        match tokio::time::timeout(quiet, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (answer, true),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return (answer, false),
        }
    }
}
