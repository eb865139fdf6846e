//! OSS's object model on top of the emulator's.
//!
//! OSS ETags are upper-case hex in quotes. A `Normal` object's (PutObject)
//! is its content MD5; a `Multipart` object's (CompleteMultipartUpload)
//! and an `Appendable` one's (AppendObject) are "a unique value generated
//! based on specific rules", not the MD5 (Aliyun: "How do I fix the
//! InvalidPart error" and the AppendObject reference). The proxy makes
//! those deliberately MD5-SHAPED (32 upper-case hex digits, no `-N`) but
//! never the content MD5: the hardest case for a client that guesses what
//! an ETag means from its shape. They are derived from the emulator's ETag
//! and the object's path, so each stays stable for one object version.

use std::collections::HashMap;
use std::sync::Mutex;

use md5::{Digest, Md5};

use super::route::object_path;
use super::xml::{element, map_elements, unescape};

/// OSS's `x-oss-object-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Normal,
    Multipart,
    Appendable,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Normal => "Normal",
            ObjectType::Multipart => "Multipart",
            ObjectType::Appendable => "Appendable",
        }
    }
}

/// Never an ETag of any object: what a client's condition becomes when it
/// cannot match (so the emulator answers 412 or a full GET).
const NO_SUCH_ETAG: &str = "\"ossbridge-testkit-no-such-etag\"";

#[derive(Debug, Default)]
pub(super) struct Objects {
    /// Made-up OSS ETag (upper case, unquoted) → emulator ETag.
    made_up: Mutex<HashMap<String, String>>,
    /// Path → emulator ETag of the version AppendObject last wrote.
    appendable: Mutex<HashMap<String, String>>,
}

impl Objects {
    /// The type of the version at `path` whose emulator ETag is `etag`.
    pub fn kind(&self, path: &str, etag: &str) -> ObjectType {
        if etag.contains('-') {
            ObjectType::Multipart
        } else if self
            .appendable
            .lock()
            .is_ok_and(|a| a.get(path).is_some_and(|e| e == etag))
        {
            ObjectType::Appendable
        } else {
            ObjectType::Normal
        }
    }

    /// (type, OSS ETag unquoted) of the version at `path` with emulator
    /// ETag `etag` (unquoted).
    pub fn etag(&self, path: &str, etag: &str) -> (ObjectType, String) {
        let kind = self.kind(path, etag);
        if kind == ObjectType::Normal {
            return (kind, etag.to_ascii_uppercase());
        }
        let digest = Md5::digest(format!("ossbridge-testkit {} {path} {etag}", kind.as_str()));
        let made_up = hex::encode_upper(digest);
        if let Ok(mut m) = self.made_up.lock() {
            m.insert(made_up.clone(), etag.to_owned());
        }
        (kind, made_up)
    }

    pub fn mark_appendable(&self, path: &str, etag: &str) {
        if let Ok(mut a) = self.appendable.lock() {
            a.insert(path.to_owned(), etag.to_owned());
        }
    }

    /// A PutObject, copy, multipart upload or delete through the proxy
    /// ends the appendable version.
    pub fn forget_appendable(&self, path: &str) {
        if let Ok(mut a) = self.appendable.lock() {
            a.remove(path);
        }
    }

    /// A client's `If-Match` / `If-None-Match` value (OSS ETags) as the
    /// emulator's ETags of the same versions. ETags are compared without
    /// regard to case.
    pub fn condition_to_emulator(&self, path: &str, value: &str) -> String {
        value
            .split(',')
            .map(|tag| {
                let tag = tag.trim();
                if tag == "*" {
                    return tag.to_owned();
                }
                let bare = tag.trim_start_matches("W/").trim_matches('"');
                if let Some(etag) = self
                    .made_up
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&bare.to_ascii_uppercase()).cloned())
                {
                    return format!("\"{etag}\"");
                }
                let lower = bare.to_ascii_lowercase();
                // The content MD5 of an appendable object is its emulator
                // ETag, but never its OSS ETag.
                let appendable_md5 = self
                    .appendable
                    .lock()
                    .is_ok_and(|a| a.get(path).is_some_and(|e| *e == lower));
                if appendable_md5 || lower.contains('-') {
                    return NO_SUCH_ETAG.to_owned();
                }
                format!("\"{lower}\"")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A ListObjects(V2) answer with OSS ETags and each object's `<Type>`.
    pub fn rewrite_listing(&self, bucket_path: &str, xml: &str) -> String {
        let bucket = bucket_path.trim_start_matches('/');
        let url_encoded = element(xml, "EncodingType", 0).is_some_and(|e| e.2 == "url");
        map_elements(xml, "Contents", |contents| {
            let Some((_, _, key)) = element(contents, "Key", 0) else {
                return contents.to_owned();
            };
            let mut key = unescape(key);
            if url_encoded {
                key = percent_encoding::percent_decode_str(&key)
                    .decode_utf8_lossy()
                    .into_owned();
            }
            let path = object_path(bucket, &key);
            let mut kind = ObjectType::Normal;
            let rewritten = map_elements(contents, "ETag", |etag| {
                let (k, oss) = self.etag(&path, unescape(etag).trim_matches('"'));
                kind = k;
                format!("\"{oss}\"")
            });
            format!("{rewritten}<Type>{}</Type>", kind.as_str())
        })
    }
}

/// Part ETags as OSS shows them (upper case) in a ListParts answer.
pub(super) fn upper_part_etags(xml: &str) -> String {
    map_elements(xml, "ETag", |etag| unescape(etag).to_ascii_uppercase())
}

/// Part ETags of a CompleteMultipartUpload request back in the emulator's
/// (lower) case.
pub(super) fn lower_part_etags(xml: &str) -> String {
    map_elements(xml, "ETag", |etag| unescape(etag).to_ascii_lowercase())
}

/// The object's whole length from a GET/HEAD answer's headers.
pub(super) fn object_length(headers: &hyper::HeaderMap) -> Option<u64> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match header("content-range") {
        Some(range) => range.rsplit_once('/')?.1.parse().ok(),
        None => header("content-length")?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5_HELLO: &str = "5d41402abc4b2a76b9719d911017c592";

    #[test]
    fn etags_by_object_type() {
        let objects = Objects::default();
        assert_eq!(
            objects.etag("/b/k", MD5_HELLO),
            (ObjectType::Normal, MD5_HELLO.to_uppercase())
        );
        let (kind, multipart) = objects.etag("/b/k", "3b1e2e8a2c5e4f7d9a0b1c2d3e4f5a6b-2");
        assert_eq!(kind, ObjectType::Multipart);
        assert_eq!(multipart.len(), 32);
        assert!(
            multipart
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        objects.mark_appendable("/b/k", MD5_HELLO);
        let (kind, appendable) = objects.etag("/b/k", MD5_HELLO);
        assert_eq!(kind, ObjectType::Appendable);
        assert_ne!(appendable, MD5_HELLO.to_uppercase());
        // Stable for the version.
        assert_eq!(objects.etag("/b/k", MD5_HELLO).1, appendable);
        // Conditions: made-up ETags map back; the content MD5 of an
        // appendable object matches nothing.
        assert_eq!(
            objects.condition_to_emulator("/b/k", &format!("\"{appendable}\"")),
            format!("\"{MD5_HELLO}\"")
        );
        assert_eq!(
            objects.condition_to_emulator("/b/k", &MD5_HELLO.to_uppercase()),
            NO_SUCH_ETAG
        );
        objects.forget_appendable("/b/k");
        assert_eq!(
            objects.condition_to_emulator("/b/k", &format!("\"{}\"", MD5_HELLO.to_uppercase())),
            format!("\"{MD5_HELLO}\"")
        );
    }

    #[test]
    fn listings_carry_oss_etags_and_types() {
        let objects = Objects::default();
        let xml = format!(
            "<ListBucketResult><Contents><Key>a&amp;b</Key><ETag>&quot;{MD5_HELLO}&quot;</ETag></Contents>\
             <Contents><Key>m</Key><ETag>\"{MD5_HELLO}-3\"</ETag></Contents></ListBucketResult>"
        );
        let out = objects.rewrite_listing("/b", &xml);
        assert!(
            out.contains(&format!(
                "<ETag>\"{}\"</ETag><Type>Normal</Type>",
                MD5_HELLO.to_uppercase()
            )),
            "{out}"
        );
        assert!(out.contains("<Type>Multipart</Type>"), "{out}");
        assert!(!out.contains("-3"), "{out}");
    }

    #[test]
    fn whole_length_of_range_answers() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("content-length", "10".parse().expect("value"));
        assert_eq!(object_length(&headers), Some(10));
        headers.insert("content-range", "bytes 0-9/300".parse().expect("value"));
        assert_eq!(object_length(&headers), Some(300));
    }
}
