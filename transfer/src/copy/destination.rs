//! The destination's side of a job: what it holds for a key, and the
//! precondition every write and delete there carries.
//!
//! Several workers (and `sync`) write the same bucket. Each decides from
//! what it saw, so each write is conditional on the destination still
//! being what was seen: `If-Match: <ETag>` when an object was there,
//! `If-None-Match: *` when none was. S3 refuses a write whose condition no
//! longer holds (412, or 409 for a concurrent conditional write, or 404
//! for `If-Match` on a key that is gone), and the job looks again instead
//! of overwriting a newer copy.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::head_object::HeadObjectError;

use super::recorded::Version;
use aws_sdk_s3::types::StorageClass;

use crate::error::CopyError;

/// What the destination holds for a key.
#[derive(Debug, Clone)]
pub struct DestinationObject {
    /// S3's own ETag, as returned (quoted).
    pub etag: String,
    pub size: u64,
    /// The source version ossbridge recorded when it wrote the object;
    /// `None` for objects another tool wrote.
    pub recorded: Option<Version>,
    /// Its storage class (`None`: STANDARD), kept when the object is
    /// rewritten in place and `destination.storage_class` is unset.
    pub storage_class: Option<StorageClass>,
}

impl DestinationObject {
    /// S3's ETag as an MD5, when it is one (a single-part upload that is
    /// not KMS-encrypted: 32 hex digits, no part count).
    pub fn md5(&self) -> Option<[u8; 16]> {
        super::verify::etag_md5(&self.etag)
    }
}

pub async fn head_destination(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<DestinationObject>, CopyError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(Some(DestinationObject {
            etag: head.e_tag.clone().unwrap_or_default(),
            size: head
                .content_length
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0),
            recorded: head.metadata.as_ref().and_then(Version::recorded),
            storage_class: head.storage_class.clone(),
        })),
        Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => Ok(None),
        Err(e) => Err(CopyError::from_destination("HeadObject (destination)", e)),
    }
}

/// What the destination key must still be for a write to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No object (`If-None-Match: *`).
    Absent,
    /// This object (`If-Match: <ETag>`).
    Matches(String),
}

impl Precondition {
    /// The condition that what was seen is still there.
    pub fn seen(destination: Option<&DestinationObject>) -> Precondition {
        match destination {
            Some(d) => Precondition::Matches(d.etag.clone()),
            None => Precondition::Absent,
        }
    }

    pub fn if_match(&self) -> Option<String> {
        match self {
            Precondition::Matches(etag) => Some(etag.clone()),
            Precondition::Absent => None,
        }
    }

    pub fn if_none_match(&self) -> Option<String> {
        match self {
            Precondition::Absent => Some("*".to_owned()),
            Precondition::Matches(_) => None,
        }
    }
}
