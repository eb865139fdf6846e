//! Reading the source's state, with OSS's own headers, which the S3 SDK
//! does not model.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ServerSideEncryption;

use crate::error::CopyError;

/// The source object as it is now.
#[derive(Debug, Clone, Default)]
pub struct SourceObject {
    pub key: String,
    pub size: u64,
    /// As the source returned it (possibly quoted).
    pub etag: String,
    pub last_modified: Option<DateTime>,
    /// OSS's `x-oss-hash-crc64ecma` (CRC-64/XZ of the whole object).
    pub crc64: Option<u64>,
    /// Encrypted with a KMS key: its ETag is not the MD5 of its bytes.
    pub kms_encrypted: bool,
    /// OSS's `x-oss-object-type`: `Normal`, `Multipart`, `Appendable` or
    /// `Symlink`; `None` from a store that is not OSS.
    pub object_type: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<DateTime>,
    /// User metadata, without prefix (from `x-amz-meta-*` or `x-oss-meta-*`).
    pub user_metadata: HashMap<String, String>,
}

impl SourceObject {
    /// The ETag without quotes, as recorded at the destination.
    pub fn etag_unquoted(&self) -> &str {
        self.etag.trim_matches('"')
    }

    /// The content MD5, where the ETag is one by the store's rules. OSS
    /// documents its ETag as the MD5 only for objects written by
    /// PutObject (`Normal`); multipart and appendable objects get "a unique
    /// value generated based on specific rules, not the MD5" even when it
    /// looks like one, and KMS-encrypted objects never carry one
    /// (<https://www.alibabacloud.com/help/en/oss/developer-reference/appendobject>,
    /// <https://www.alibabacloud.com/help/en/oss/oss-reports-an-invalidpart-error-when-using-the-multipart-upload-method-to-upload-files>).
    /// For a store that is not OSS (no object type), S3's rule applies:
    /// 32 hex digits and not KMS.
    pub fn md5(&self) -> Option<[u8; 16]> {
        let plain = match self.object_type.as_deref() {
            None => true,
            Some(t) => t.eq_ignore_ascii_case("Normal"),
        };
        (plain && !self.kms_encrypted)
            .then(|| super::verify::etag_md5(&self.etag))
            .flatten()
    }
}

/// Captures the `x-oss-*` response headers of one call.
#[derive(Debug, Clone, Default)]
struct OssHeaders(Arc<Mutex<Vec<(String, String)>>>);

impl OssHeaders {
    fn take(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }
}

impl Intercept for OssHeaders {
    fn name(&self) -> &'static str {
        "ossbridge::OssHeaders"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let captured: Vec<(String, String)> = context
            .response()
            .headers()
            .iter()
            .filter(|(name, _)| name.starts_with("x-oss-"))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        if let Ok(mut slot) = self.0.lock() {
            *slot = captured;
        }
        Ok(())
    }
}

/// A [`SourceObject`] from a HeadObject or GetObject output, which carry
/// the same attribute fields, and the `x-oss-*` headers of that response.
macro_rules! source_object {
    ($out:expr, $key:expr, $oss:expr, $operation:literal) => {{
        let out = &$out;
        let oss: Vec<(String, String)> = $oss;
        let crc64 = oss
            .iter()
            .find(|(k, _)| k == "x-oss-hash-crc64ecma")
            .and_then(|(_, v)| v.parse::<u64>().ok());
        let mut user_metadata = out.metadata.clone().unwrap_or_default();
        for (name, value) in &oss {
            if let Some(meta) = name.strip_prefix("x-oss-meta-") {
                user_metadata
                    .entry(meta.to_owned())
                    .or_insert_with(|| value.clone());
            }
        }
        let size = out
            .content_length
            .and_then(|l| u64::try_from(l).ok())
            .ok_or_else(|| {
                CopyError::permanent($operation, "invalid_request", "no Content-Length")
            })?;
        SourceObject {
            key: $key.to_owned(),
            size,
            etag: out.e_tag.clone().unwrap_or_default(),
            last_modified: out.last_modified,
            crc64,
            kms_encrypted: matches!(
                out.server_side_encryption,
                Some(ServerSideEncryption::AwsKms)
            ) || oss
                .iter()
                .any(|(k, v)| k == "x-oss-server-side-encryption" && v == "KMS"),
            object_type: oss
                .iter()
                .find(|(k, _)| k == "x-oss-object-type")
                .map(|(_, v)| v.clone()),
            content_type: out.content_type.clone(),
            content_encoding: out.content_encoding.clone(),
            content_language: out.content_language.clone(),
            content_disposition: out.content_disposition.clone(),
            cache_control: out.cache_control.clone(),
            expires: out.expires_string.as_deref().and_then(|s| {
                DateTime::from_str(s, aws_sdk_s3::primitives::DateTimeFormat::HttpDate).ok()
            }),
            user_metadata,
        }
    }};
}

/// The source object, or `None` if the key does not exist (any more).
pub async fn head_source(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<SourceObject>, CopyError> {
    let captured = OssHeaders::default();
    let result = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .customize()
        .interceptor(captured.clone())
        .send()
        .await;
    let head = match result {
        Ok(head) => head,
        Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
            return Ok(None);
        }
        Err(e) => return Err(CopyError::from_source("HeadObject (source)", e)),
    };
    Ok(Some(source_object!(
        head,
        key,
        captured.take(),
        "HeadObject (source)"
    )))
}

/// The answer to a GET of the source.
#[derive(Debug)]
pub enum Fetched {
    Missing,
    /// Its ETag is still the one given as `if_none_match` (HTTP 304).
    Unchanged,
    /// Its state and its bytes, from one response.
    Object(Box<SourceObject>, ByteStream),
}

/// GETs the source object; with `if_none_match` (an unquoted ETag) the
/// source answers 304 instead of sending a version the caller already has.
pub async fn get_source(
    client: &Client,
    bucket: &str,
    key: &str,
    if_none_match: Option<&str>,
) -> Result<Fetched, CopyError> {
    let captured = OssHeaders::default();
    let result = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_if_none_match(if_none_match.map(|etag| format!("\"{etag}\"")))
        .customize()
        .interceptor(captured.clone())
        .send()
        .await;
    let mut object = match result {
        Ok(object) => object,
        Err(e) => {
            return match e.raw_response().map(|r| r.status().as_u16()) {
                Some(304) => Ok(Fetched::Unchanged),
                Some(404) => Ok(Fetched::Missing),
                _ if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                    Ok(Fetched::Missing)
                }
                _ => Err(CopyError::from_source("GetObject", e)),
            };
        }
    };
    let body = std::mem::take(&mut object.body);
    let source = source_object!(object, key, captured.take(), "GetObject");
    Ok(Fetched::Object(Box::new(source), body))
}
