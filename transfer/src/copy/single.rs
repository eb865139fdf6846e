//! Objects up to the multipart threshold: the source's GET body streams
//! through the integrity check straight into one conditional PUT.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;

use super::destination::Precondition;
use super::verify::{Expect, verifying};
use super::{Copier, SourceObject, with_destination_attributes};
use crate::error::CopyError;

/// GETs the version `source` describes (a HEAD found it) and PUTs it.
pub async fn copy(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    precondition: &Precondition,
) -> Result<(), CopyError> {
    let object = copier
        .source
        .get_object()
        .bucket(&copier.source_bucket)
        .key(&source.key)
        // The bytes must be the version we just looked at.
        .if_match(&source.etag)
        .send()
        .await
        .map_err(|e| CopyError::from_source("GetObject", e))?;
    put(copier, source, object.body, destination_key, precondition).await
}

/// PUTs `body`, the bytes of `source`, checking them on the way, if the
/// destination is still what `precondition` says.
pub async fn put(
    copier: &Copier,
    source: &SourceObject,
    body: ByteStream,
    destination_key: &str,
    precondition: &Precondition,
) -> Result<(), CopyError> {
    let expect = Expect {
        length: source.size,
        crc64: source.crc64,
        // A CRC-64 from OSS is the check; an ETag is used as an MD5 only
        // where the store guarantees it is one and nothing better exists.
        md5: source.crc64.is_none().then(|| source.md5()).flatten(),
    };
    let (body, _tally) = verifying(body, expect);
    let put = copier
        .destination
        .put_object()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .content_length(source.size as i64)
        .set_if_match(precondition.if_match())
        .set_if_none_match(precondition.if_none_match())
        // S3 checks what it receives against this.
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(body);
    with_destination_attributes!(put, source, &copier.options)
        .send()
        .await
        .map_err(|e| CopyError::from_destination("PutObject", e))?;
    Ok(())
}
