//! What ossbridge records on every destination object about the source
//! version it holds, and how a source version is compared with it.
//!
//! The S3 ETag of a copy says nothing about the source (OSS ETags are not
//! S3 ETags, and a metadata change keeps both unchanged), so each write
//! records, as user metadata:
//!
//! - `ossbridge-source-etag`: the source's ETag (its content);
//! - `ossbridge-source-last-modified`: the source's Last-Modified, which
//!   OSS moves on every change, metadata-only ones included;
//! - `ossbridge-source-meta`: a digest of the headers and user metadata
//!   copied with the object, so a metadata change is seen even when the
//!   Last-Modified second did not move;
//! - `ossbridge-source-crc64`: OSS's CRC-64, for operators.
//!
//! A destination is current when all three of the first match the source
//! now.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use sha2::{Digest, Sha256};

use super::source::SourceObject;

pub const META_SOURCE_ETAG: &str = "ossbridge-source-etag";
pub const META_SOURCE_CRC64: &str = "ossbridge-source-crc64";
pub const META_SOURCE_LAST_MODIFIED: &str = "ossbridge-source-last-modified";
pub const META_SOURCE_META: &str = "ossbridge-source-meta";

/// S3 limits user-defined metadata to 2 KB, counted as the UTF-8 bytes of
/// every key and value; OSS allows 8 KB, so some sources cannot be copied
/// with theirs.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html>
pub const S3_USER_METADATA_LIMIT: usize = 2 * 1024;

/// One source version as ossbridge tells versions apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The source ETag, unquoted.
    pub etag: String,
    /// Whole seconds: S3 and OSS give HEAD answers to the second.
    pub last_modified: Option<i64>,
    pub meta: Option<String>,
}

impl Version {
    /// The version `source` is now, as it would be recorded.
    pub fn of(source: &SourceObject, copy_user_metadata: bool) -> Version {
        Version {
            etag: source.etag_unquoted().to_owned(),
            last_modified: source.last_modified.map(|t| t.secs()),
            meta: Some(meta_digest(source, copy_user_metadata)),
        }
    }

    /// What a destination object's metadata says it holds, if ossbridge
    /// wrote it.
    pub fn recorded(metadata: &HashMap<String, String>) -> Option<Version> {
        Some(Version {
            etag: metadata.get(META_SOURCE_ETAG)?.trim_matches('"').to_owned(),
            last_modified: metadata
                .get(META_SOURCE_LAST_MODIFIED)
                .and_then(|t| DateTime::from_str(t, DateTimeFormat::DateTime).ok())
                .map(|t| t.secs()),
            meta: metadata.get(META_SOURCE_META).cloned(),
        })
    }

    /// Same bytes: ETags identify a source object's content.
    pub fn same_content(&self, other: &Version) -> bool {
        self.etag.eq_ignore_ascii_case(&other.etag)
    }

    /// Same bytes, same Last-Modified second and same copied metadata. A
    /// side that does not know a part (an object written before ossbridge
    /// recorded it) never matches on it.
    pub fn same_version(&self, other: &Version) -> bool {
        self.same_content(other)
            && self.last_modified.is_some()
            && self.last_modified == other.last_modified
            && self.meta.is_some()
            && self.meta == other.meta
    }
}

/// A digest of everything copied besides the bytes: the content headers
/// and, when copied, the user metadata. Hex of the first 16 bytes of a
/// SHA-256 over a canonical text (fixed header order, metadata sorted by
/// lower-cased key).
pub fn meta_digest(source: &SourceObject, copy_user_metadata: bool) -> String {
    let mut text = String::new();
    for (name, value) in [
        ("content-type", source.content_type.as_deref()),
        ("content-encoding", source.content_encoding.as_deref()),
        ("content-language", source.content_language.as_deref()),
        ("content-disposition", source.content_disposition.as_deref()),
        ("cache-control", source.cache_control.as_deref()),
    ] {
        text.push_str(&format!("{name}:{}\n", value.unwrap_or_default()));
    }
    let expires = source.expires.map(|t| t.secs().to_string());
    text.push_str(&format!("expires:{}\n", expires.unwrap_or_default()));
    if copy_user_metadata {
        let sorted: BTreeMap<String, &String> = source
            .user_metadata
            .iter()
            .filter(|(k, _)| !is_ours(k))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for (key, value) in sorted {
            // Length-prefixed, so no key or value can fake a boundary.
            text.push_str(&format!(
                "meta:{}:{key}{}:{value}\n",
                key.len(),
                value.len()
            ));
        }
    }
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// Whether a metadata key is one ossbridge writes (never copied from a
/// source, where it could only be a leftover of an earlier copy).
fn is_ours(key: &str) -> bool {
    key.to_ascii_lowercase().starts_with("ossbridge-source-")
}

/// The user metadata of a write: the source's (when copied) plus the
/// records of [`Version::of`].
pub fn destination_metadata(
    source: &SourceObject,
    copy_user_metadata: bool,
) -> HashMap<String, String> {
    let mut meta: HashMap<String, String> = if copy_user_metadata {
        source
            .user_metadata
            .iter()
            .filter(|(k, _)| !is_ours(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        HashMap::new()
    };
    meta.insert(
        META_SOURCE_ETAG.to_owned(),
        source.etag_unquoted().to_owned(),
    );
    if let Some(crc) = source.crc64 {
        meta.insert(META_SOURCE_CRC64.to_owned(), crc.to_string());
    }
    if let Some(t) = source.last_modified
        && let Ok(text) = t.fmt(DateTimeFormat::DateTime)
    {
        meta.insert(META_SOURCE_LAST_MODIFIED.to_owned(), text);
    }
    meta.insert(
        META_SOURCE_META.to_owned(),
        meta_digest(source, copy_user_metadata),
    );
    meta
}

/// S3's measure of user metadata: the UTF-8 bytes of keys and values.
pub fn user_metadata_size(meta: &HashMap<String, String>) -> usize {
    meta.iter().map(|(k, v)| k.len() + v.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceObject {
        SourceObject {
            key: "k".into(),
            size: 3,
            etag: "\"ABC\"".into(),
            last_modified: Some(DateTime::from_secs(1_700_000_000)),
            content_type: Some("text/plain".into()),
            user_metadata: HashMap::from([("owner".into(), "ops".into())]),
            ..SourceObject::default()
        }
    }

    #[test]
    fn a_written_version_reads_back_as_the_same_version() {
        let s = source();
        let recorded = Version::recorded(&destination_metadata(&s, true)).expect("recorded");
        assert!(recorded.same_version(&Version::of(&s, true)));
    }

    #[test]
    fn metadata_and_last_modified_changes_are_new_versions_with_the_same_content() {
        let s = source();
        let before = Version::of(&s, true);
        let mut typed = s.clone();
        typed.content_type = Some("image/png".into());
        let mut tagged = s.clone();
        tagged.user_metadata.insert("owner".into(), "dev".into());
        let mut touched = s.clone();
        touched.last_modified = Some(DateTime::from_secs(1_700_000_001));
        for changed in [typed, tagged, touched] {
            let after = Version::of(&changed, true);
            assert!(before.same_content(&after));
            assert!(!before.same_version(&after), "{changed:?}");
        }
    }

    #[test]
    fn user_metadata_counts_only_when_copied_and_our_own_keys_never() {
        let s = source();
        let mut tagged = s.clone();
        tagged.user_metadata.insert("owner".into(), "dev".into());
        assert_eq!(meta_digest(&s, false), meta_digest(&tagged, false));
        let mut leftover = s.clone();
        leftover
            .user_metadata
            .insert("ossbridge-source-etag".into(), "OLD".into());
        assert_eq!(meta_digest(&s, true), meta_digest(&leftover, true));
        assert_eq!(
            destination_metadata(&leftover, true).get(META_SOURCE_ETAG),
            Some(&"ABC".to_owned())
        );
    }

    #[test]
    fn an_object_written_before_versions_were_recorded_is_not_current() {
        let s = source();
        let old = HashMap::from([(META_SOURCE_ETAG.to_owned(), "ABC".to_owned())]);
        let recorded = Version::recorded(&old).expect("etag recorded");
        assert!(recorded.same_content(&Version::of(&s, true)));
        assert!(!recorded.same_version(&Version::of(&s, true)));
        assert!(Version::recorded(&HashMap::new()).is_none());
    }

    #[test]
    fn metadata_size_is_counted_as_s3_counts_it() {
        let meta = HashMap::from([("ab".to_owned(), "☃".to_owned())]);
        assert_eq!(user_metadata_size(&meta), 2 + 3);
    }
}
