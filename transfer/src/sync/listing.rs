//! Paged, sorted streams of one bucket's keys (ListObjectsV2).
//!
//! A [`Listing`] holds one page (at most 1,000 entries) and a continuation
//! token, never the bucket: memory is a page per stream whatever the
//! bucket holds. S3 (and OSS) return keys in UTF-8 binary order, which is
//! Rust's `str` order, so two listings can be merged byte-wise.

use std::collections::VecDeque;

use aws_sdk_s3::Client;
use ossbridge_runtime::error_chain;

use super::SyncError;

/// One object as a listing reports it, keyed relative to the side's root
/// (the destination's keys have `destination.prefix` stripped), so both
/// sides compare on the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    /// Without quotes (the form recorded as `ossbridge-source-etag`).
    pub etag: String,
    /// Whole seconds; OSS moves it on every change, metadata-only ones
    /// included, so it tells a metadata change without a HEAD of the
    /// source.
    pub last_modified: Option<i64>,
}

/// Which bucket a listing reads, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

/// Keys under `root + prefix`, in order, a page at a time.
#[derive(Debug)]
pub struct Listing {
    client: Client,
    side: Side,
    bucket: String,
    /// Stripped from every key (the destination prefix; empty at the
    /// source).
    root: String,
    prefix: String,
    /// With `/` as delimiter: only the keys directly under `prefix`; the
    /// deeper ones are other ranges' business.
    delimited: bool,
    page: VecDeque<Entry>,
    token: Option<String>,
    done: bool,
}

impl Listing {
    pub fn new(
        client: Client,
        side: Side,
        bucket: &str,
        root: &str,
        prefix: &str,
        delimited: bool,
    ) -> Listing {
        Listing {
            client,
            side,
            bucket: bucket.to_owned(),
            root: root.to_owned(),
            prefix: prefix.to_owned(),
            delimited,
            page: VecDeque::new(),
            token: None,
            done: false,
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    /// The next key, fetching the next page when this one is used up.
    pub async fn next(&mut self) -> Result<Option<Entry>, SyncError> {
        loop {
            if let Some(entry) = self.page.pop_front() {
                return Ok(Some(entry));
            }
            if self.done {
                return Ok(None);
            }
            self.fetch().await?;
        }
    }

    async fn fetch(&mut self) -> Result<(), SyncError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{}", self.root, self.prefix))
            .set_delimiter(self.delimited.then(|| "/".to_owned()))
            .set_continuation_token(self.token.take())
            .send()
            .await
            .map_err(|e| self.error(error_chain(&e)))?;
        for object in out.contents() {
            let Some(full) = object.key() else { continue };
            let Some(key) = full.strip_prefix(self.root.as_str()) else {
                return Err(self.error(format!("key {full:?} outside the listed prefix")));
            };
            self.page.push_back(Entry {
                key: key.to_owned(),
                size: object
                    .size()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
                etag: object
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned(),
                last_modified: object.last_modified().map(|t| t.secs()),
            });
        }
        self.token = next_page(out.is_truncated(), out.next_continuation_token())
            .map_err(|detail| self.error(detail.to_owned()))?;
        self.done = self.token.is_none();
        Ok(())
    }

    fn error(&self, detail: String) -> SyncError {
        SyncError::List {
            side: self.side.as_str(),
            bucket: self.bucket.clone(),
            prefix: format!("{}{}", self.root, self.prefix),
            detail,
        }
    }
}

/// The "directories" one level below `root + prefix` (ListObjectsV2 with
/// delimiter `/`), relative to `root`. Held in memory: one entry per
/// top-level prefix, not per object.
pub async fn common_prefixes(
    client: &Client,
    side: Side,
    bucket: &str,
    root: &str,
    prefix: &str,
) -> Result<Vec<String>, SyncError> {
    let mut prefixes = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(format!("{root}{prefix}"))
            .delimiter("/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| SyncError::List {
                side: side.as_str(),
                bucket: bucket.to_owned(),
                prefix: format!("{root}{prefix}"),
                detail: error_chain(&e),
            })?;
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .filter_map(|p| p.strip_prefix(root))
                .map(str::to_owned),
        );
        token = next_page(out.is_truncated(), out.next_continuation_token()).map_err(|detail| {
            SyncError::List {
                side: side.as_str(),
                bucket: bucket.to_owned(),
                prefix: format!("{root}{prefix}"),
                detail: detail.to_owned(),
            }
        })?;
        if token.is_none() {
            return Ok(prefixes);
        }
    }
}

/// The token of the next page, `None` at the end, or why the answer
/// cannot be trusted: a page that says it is truncated but gives no way
/// on would otherwise read as the end of the bucket, and every key after
/// it as deleted.
fn next_page(truncated: Option<bool>, token: Option<&str>) -> Result<Option<String>, &'static str> {
    match (truncated.unwrap_or(false), token) {
        (false, _) => Ok(None),
        (true, Some(t)) if !t.is_empty() => Ok(Some(t.to_owned())),
        (true, _) => Err("a page marked truncated without a continuation token"),
    }
}

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn a_truncated_page_without_a_token_is_an_error_not_the_end() {
        assert_eq!(next_page(Some(false), None), Ok(None));
        assert_eq!(next_page(None, Some("ignored")), Ok(None));
        assert_eq!(next_page(Some(true), Some("t")), Ok(Some("t".to_owned())));
        assert!(next_page(Some(true), None).is_err());
        assert!(next_page(Some(true), Some("")).is_err());
    }
}
