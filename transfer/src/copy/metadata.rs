//! Rewriting what the destination records and carries besides the bytes
//! (content headers, user metadata, the recorded source version) with a
//! server-side copy of the object onto itself: nothing is downloaded from
//! the source, nothing uploaded.
//!
//! Up to the multipart threshold, one CopyObject with
//! `x-amz-metadata-directive: REPLACE`; above it, a multipart copy
//! (UploadPartCopy of ranges, several at once), which is also the only way
//! past CopyObject's 5 GiB limit. Both are conditional on the destination
//! ETag the job saw, as every write is (`destination.rs`).

use aws_sdk_s3::types::{CompletedPart, MetadataDirective, StorageClass};
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::destination::{DestinationObject, Precondition};
use super::multipart::{self, Part};
use super::{Copier, SourceObject, with_destination_attributes};
use crate::error::CopyError;

/// Characters a key keeps in `x-amz-copy-source`, which is URL-encoded
/// with `/` left alone.
const COPY_SOURCE_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn copy_source(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", utf8_percent_encode(key, COPY_SOURCE_KEEP))
}

/// Gives the destination object `destination_key`, as `destination` saw
/// it, the headers, metadata and records of `source`. Its storage class
/// stays unless `destination.storage_class` is configured: a copy without
/// one would silently make it STANDARD (an adopted Intelligent-Tiering
/// copy, say).
pub async fn rewrite(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    destination: &DestinationObject,
) -> Result<(), CopyError> {
    let etag = destination.etag.as_str();
    let class = copier
        .options
        .storage_class
        .clone()
        .or_else(|| destination.storage_class.clone());
    if source.size > copier.options.multipart_threshold {
        return rewrite_in_parts(copier, source, destination_key, etag, class).await;
    }
    let request = copier
        .destination
        .copy_object()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .copy_source(copy_source(&copier.destination_bucket, destination_key))
        // The bytes copied must be the ones the job saw, and the object
        // replaced too (they are the same object).
        .copy_source_if_match(etag)
        .if_match(etag)
        .metadata_directive(MetadataDirective::Replace);
    with_destination_attributes!(request, source, &copier.options)
        .set_storage_class(class)
        .send()
        .await
        .map_err(|e| CopyError::from_destination("CopyObject", e))?;
    Ok(())
}

async fn rewrite_in_parts(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    etag: &str,
    class: Option<StorageClass>,
) -> Result<(), CopyError> {
    let upload_id = multipart::create(copier, source, destination_key, class).await?;
    let parts = multipart::plan(
        source.size,
        multipart::part_size(source.size, copier.options.part_size),
    );
    let from = copy_source(&copier.destination_bucket, destination_key);
    let copied: Result<Vec<CompletedPart>, CopyError> = futures::stream::iter(parts)
        .map(|part| copy_part(copier, destination_key, &upload_id, &from, etag, part))
        .buffered(copier.options.part_concurrency)
        .try_collect()
        .await;
    let completed = match copied {
        Ok(parts) => parts,
        Err(e) => {
            multipart::abort(copier, destination_key, &upload_id).await;
            return Err(e);
        }
    };
    multipart::complete(
        copier,
        destination_key,
        &upload_id,
        completed,
        &Precondition::Matches(etag.to_owned()),
    )
    .await
}

async fn copy_part(
    copier: &Copier,
    destination_key: &str,
    upload_id: &str,
    from: &str,
    etag: &str,
    part: Part,
) -> Result<CompletedPart, CopyError> {
    let copied = copier
        .destination
        .upload_part_copy()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .upload_id(upload_id)
        .part_number(part.number)
        .copy_source(from)
        .copy_source_if_match(etag)
        .copy_source_range(format!(
            "bytes={}-{}",
            part.offset,
            part.offset + part.length - 1
        ))
        .send()
        .await
        .map_err(|e| CopyError::from_destination("UploadPartCopy", e))?;
    let result = copied.copy_part_result();
    // The upload was created with CRC-32 checksums: S3 wants each part's.
    Ok(CompletedPart::builder()
        .part_number(part.number)
        .set_e_tag(result.and_then(|r| r.e_tag().map(str::to_owned)))
        .set_checksum_crc32(result.and_then(|r| r.checksum_crc32().map(str::to_owned)))
        .build())
}
