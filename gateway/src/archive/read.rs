//! Reading the archive back for `replay --archive`: the objects whose
//! window can hold records received in a time range, as replay documents.

use std::io::Read;

use flate2::read::MultiGzDecoder;
use ossbridge_runtime::error_chain;
use time::OffsetDateTime;

use crate::replay::input::{Document, Position};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive location must look like s3://BUCKET/PREFIX, not {0:?}")]
    Url(String),
    #[error("cannot list s3://{bucket}/{prefix}: {reason}")]
    List {
        bucket: String,
        prefix: String,
        reason: String,
    },
    #[error("cannot read s3://{bucket}/{key}: {reason}")]
    Read {
        bucket: String,
        key: String,
        reason: String,
    },
}

/// `s3://BUCKET/PREFIX` → (bucket, prefix without slashes at either end).
pub fn parse_url(url: &str) -> Result<(String, String), ArchiveError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| ArchiveError::Url(url.to_owned()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(ArchiveError::Url(url.to_owned()));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Every record line of the objects that may hold records received in
/// `[since, until)`; `lookback` is the longest window an object can cover.
/// Records are filtered by their own receive time later.
pub async fn documents(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    since: OffsetDateTime,
    until: OffsetDateTime,
    lookback: time::Duration,
) -> Result<Vec<Document>, ArchiveError> {
    let first = since - lookback - time::Duration::minutes(1);
    let mut hour = first.replace_minute(0).unwrap_or(first);
    let hour = {
        hour = hour.replace_second(0).unwrap_or(hour);
        hour.replace_nanosecond(0).unwrap_or(hour)
    };
    let mut keys = Vec::new();
    let mut at = hour;
    while at < until {
        let dir = crate::archive::object_key(prefix, at, "", 0);
        // "PREFIX/YYYY/MM/DD/HH/" from the key layout.
        let dir = match dir.rfind('/') {
            Some(i) => dir[..=i].to_owned(),
            None => String::new(),
        };
        keys.extend(list(s3, bucket, &dir).await?);
        at += time::Duration::hours(1);
    }
    let mut documents = Vec::new();
    for key in keys {
        if window_start(&key).is_some_and(|start| start >= until || start < first) {
            continue;
        }
        let text = fetch(s3, bucket, &key).await?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            documents.push(Document {
                position: Position {
                    line: i + 1,
                    item: None,
                },
                text: line.to_owned(),
                json: serde_json::from_str(line).ok(),
                object: Some(key.clone()),
            });
        }
    }
    Ok(documents)
}

async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, ArchiveError> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ArchiveError::List {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            reason: error_chain(&e),
        })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| k.ends_with(".ndjson.gz"))
                .map(str::to_owned),
        );
    }
    Ok(keys)
}

async fn fetch(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<String, ArchiveError> {
    let error = |reason: String| ArchiveError::Read {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| error(error_chain(&e)))?;
    let compressed = object
        .body
        .collect()
        .await
        .map_err(|e| error(e.to_string()))?
        .into_bytes();
    let mut text = String::new();
    MultiGzDecoder::new(compressed.as_ref())
        .read_to_string(&mut text)
        .map_err(|e| error(format!("not gzip NDJSON: {e}")))?;
    Ok(text)
}

/// The window start in an archive object's name
/// (`.../YYYYMMDDTHHMMSSZ-INSTANCE[-PART].ndjson.gz`).
fn window_start(key: &str) -> Option<OffsetDateTime> {
    let name = key.rsplit('/').next()?;
    let stamp = name.get(..16)?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(stamp, format)
        .ok()
        .map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_window_starts() {
        assert_eq!(
            parse_url("s3://b/a/b/").expect("url"),
            ("b".to_owned(), "a/b".to_owned())
        );
        assert_eq!(parse_url("s3://b").expect("url").1, "");
        assert!(parse_url("https://b/x").is_err());
        let t = window_start("p/2026/11/27/08/20261127T081500Z-i.ndjson.gz").expect("start");
        assert_eq!(t.unix_timestamp(), 1_795_767_300);
    }
}
