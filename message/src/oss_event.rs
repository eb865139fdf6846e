//! Aliyun OSS event notifications, as Function Compute triggers, MNS and
//! EventBridge deliver them.
//!
//! Only the fields ossbridge acts on are modelled; everything else is
//! tolerated and ignored, because Aliyun adds fields without notice.

use serde::Deserialize;

/// The body of an OSS event notification: `{"events":[...]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct OssNotification {
    pub events: Vec<OssEvent>,
}

/// One OSS event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssEvent {
    /// For example `ObjectCreated:PutObject`; triggers and EventBridge may
    /// prefix it with `oss:`.
    pub event_name: String,
    /// ISO-8601 with milliseconds, for example `2026-11-20T08:15:42.000Z`.
    #[serde(default)]
    pub event_time: String,
    pub oss: OssDetail,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub response_elements: ResponseElements,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OssDetail {
    pub bucket: OssBucket,
    pub object: OssObject,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OssBucket {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OssObject {
    /// The raw object key. OSS does not URL-encode it (unlike S3
    /// notifications), so it is passed through untouched.
    pub key: String,
    /// Delete events carry 0.
    #[serde(default)]
    pub size: u64,
    /// Upper-case hex; the content MD5 only for simple uploads; empty on
    /// deletes.
    #[serde(default, rename = "eTag")]
    pub e_tag: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseElements {
    #[serde(default)]
    pub request_id: String,
}

/// What an OSS event means for the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventAction {
    /// The object's bytes (or the object itself) changed: copy it.
    Copy,
    /// The object is gone from the source.
    Delete,
    /// Nothing the destination needs to follow (a part upload, a download,
    /// a restore, an unknown event).
    Ignore,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Copy => "copy",
            EventAction::Delete => "delete",
            EventAction::Ignore => "ignore",
        }
    }
}

impl OssEvent {
    /// The event name without the `oss:` prefix that triggers and
    /// EventBridge add.
    pub fn name(&self) -> &str {
        canonical_event_name(&self.event_name)
    }

    pub fn action(&self) -> EventAction {
        classify(self.name())
    }
}

/// Every documented OSS event name (without the `oss:` prefix).
pub const EVENT_NAMES: &[&str] = &[
    "ObjectCreated:PutObject",
    "ObjectCreated:PostObject",
    "ObjectCreated:CopyObject",
    "ObjectCreated:AppendObject",
    "ObjectCreated:InitiateMultipartUpload",
    "ObjectCreated:UploadPart",
    "ObjectCreated:UploadPartCopy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectCreated:PutSymlink",
    "ObjectRemoved:DeleteObject",
    "ObjectRemoved:DeleteObjects",
    "ObjectRemoved:AbortMultipartUpload",
    "ObjectModified:UpdateObjectMeta",
    "ObjectModified:ChangeStorageClass",
    "ObjectReplication:ObjectCreated",
    "ObjectReplication:ObjectModified",
    "ObjectReplication:ObjectRemoved",
    "ObjectRestore:FinishRestore",
    "ObjectDownloaded:GetObject",
];

/// The name as a low-cardinality label: itself if documented, else
/// `other`.
pub fn event_name_label(name: &str) -> &'static str {
    let name = canonical_event_name(name);
    EVENT_NAMES
        .iter()
        .find(|known| **known == name)
        .copied()
        .unwrap_or("other")
}

/// Strips the `oss:` prefix, so `oss:ObjectCreated:PutObject` and
/// `ObjectCreated:PutObject` are the same event.
pub fn canonical_event_name(name: &str) -> &str {
    name.strip_prefix("oss:").unwrap_or(name)
}

/// Maps every documented OSS event name to what the destination must do.
///
/// `ObjectRemoved:AbortMultipartUpload` is in OSS's "removed" family but
/// removes only an unfinished upload, never an object, so it is ignored.
/// Part-level events (`InitiateMultipartUpload`, `UploadPart`,
/// `UploadPartCopy`) precede `CompleteMultipartUpload`, which is the one
/// that makes the object visible.
pub fn classify(name: &str) -> EventAction {
    match canonical_event_name(name) {
        "ObjectCreated:PutObject"
        | "ObjectCreated:PostObject"
        | "ObjectCreated:CopyObject"
        | "ObjectCreated:AppendObject"
        | "ObjectCreated:CompleteMultipartUpload"
        | "ObjectCreated:PutSymlink"
        | "ObjectModified:UpdateObjectMeta"
        | "ObjectReplication:ObjectCreated"
        | "ObjectReplication:ObjectModified" => EventAction::Copy,
        "ObjectRemoved:DeleteObject"
        | "ObjectRemoved:DeleteObjects"
        | "ObjectReplication:ObjectRemoved" => EventAction::Delete,
        _ => EventAction::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_documented_event_name() {
        let copy = [
            "ObjectCreated:PutObject",
            "ObjectCreated:PostObject",
            "ObjectCreated:CopyObject",
            "ObjectCreated:AppendObject",
            "ObjectCreated:CompleteMultipartUpload",
            "ObjectCreated:PutSymlink",
            "ObjectModified:UpdateObjectMeta",
            "ObjectReplication:ObjectCreated",
            "ObjectReplication:ObjectModified",
        ];
        let delete = [
            "ObjectRemoved:DeleteObject",
            "ObjectRemoved:DeleteObjects",
            "ObjectReplication:ObjectRemoved",
        ];
        let ignore = [
            "ObjectCreated:InitiateMultipartUpload",
            "ObjectCreated:UploadPart",
            "ObjectCreated:UploadPartCopy",
            "ObjectRemoved:AbortMultipartUpload",
            "ObjectModified:ChangeStorageClass",
            "ObjectRestore:FinishRestore",
            "ObjectDownloaded:GetObject",
            "SomethingNew:Unknown",
        ];
        for name in copy {
            assert_eq!(classify(name), EventAction::Copy, "{name}");
            assert_eq!(classify(&format!("oss:{name}")), EventAction::Copy);
        }
        for name in delete {
            assert_eq!(classify(name), EventAction::Delete, "{name}");
        }
        for name in ignore {
            assert_eq!(classify(name), EventAction::Ignore, "{name}");
        }
        let listed = copy.len() + delete.len() + ignore.len() - 1;
        assert_eq!(listed, EVENT_NAMES.len());
        for name in EVENT_NAMES {
            assert!(copy.contains(name) || delete.contains(name) || ignore.contains(name));
            assert_eq!(event_name_label(&format!("oss:{name}")), *name);
        }
        assert_eq!(event_name_label("SomethingNew:Unknown"), "other");
    }

    #[test]
    fn tolerates_unknown_fields_and_missing_optional_ones() {
        let body = r#"{"events":[{"eventName":"oss:ObjectRemoved:DeleteObject",
            "oss":{"bucket":{"name":"b","new":1},"object":{"key":"k"}},"extra":true}]}"#;
        let n: OssNotification = serde_json::from_str(body).expect("parses");
        let e = &n.events[0];
        assert_eq!(e.name(), "ObjectRemoved:DeleteObject");
        assert_eq!(e.action(), EventAction::Delete);
        assert_eq!(e.oss.object.size, 0);
        assert_eq!(e.oss.object.e_tag, "");
    }
}
