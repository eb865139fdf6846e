//! Objects above the multipart threshold: ranged GETs of the source stream
//! into UploadPart calls, several parts at once; memory stays at a few
//! stream buffers per part in flight, never a part, never the object.
//!
//! Resume (`resume.rs`): a worker that died mid-upload leaves the upload
//! behind; the next copy of the key picks it up and uploads only what is
//! missing or wrong. An upload some other copy is still feeding is never
//! touched.
//!
//! Integrity: every part is sent with a CRC-32 that S3 checks; each
//! range's CRC-64/XZ is combined into the whole object's and compared with
//! OSS's `x-oss-hash-crc64ecma` before the upload is completed; on a
//! mismatch the upload is aborted.
//!
//! Order between workers: CompleteMultipartUpload carries the job's
//! destination precondition (`If-Match` / `If-None-Match: *`), so a slow
//! copy of an older version cannot land over a newer one; on a refusal the
//! upload is aborted and the job reconciles again.

mod part;
mod resume;

pub use resume::Abandoned;

use std::collections::HashMap;

use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, StorageClass};
use futures::{StreamExt, TryStreamExt};

use super::destination::Precondition;
use super::verify::combine_crc64;
use super::{Copier, MAX_PARTS, MIB, SourceObject, with_destination_attributes};
use crate::error::CopyError;
use part::Done;

/// S3's smallest part (except the last).
const MIN_PART: u64 = 5 * MIB;

/// The part size for an object: the configured one, or larger so the
/// object fits in 10,000 parts (rounded up to whole MiB).
pub fn part_size(size: u64, configured: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    configured.max(needed).max(MIN_PART)
}

/// One range of the object.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub number: i32,
    pub offset: u64,
    pub length: u64,
}

pub fn plan(size: u64, part_size: u64) -> Vec<Part> {
    (0..size.div_ceil(part_size))
        .map(|i| Part {
            number: i as i32 + 1,
            offset: i * part_size,
            length: part_size.min(size - i * part_size),
        })
        .collect()
}

/// What a multipart copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub uploaded: usize,
    pub reused: usize,
    /// It completed an upload an earlier copy started, whose metadata
    /// (set at CreateMultipartUpload) describes the version that copy saw.
    pub resumed: bool,
}

/// Copies `source` in parts.
pub async fn copy(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    precondition: &Precondition,
) -> Result<Written, CopyError> {
    let size = part_size(source.size, copier.options.part_size);
    let parts = plan(source.size, size);
    let resumed = resume::resumable(copier, source, destination_key).await?;
    let was_resumed = resumed.is_some();
    let (upload_id, existing) = match resumed {
        Some(found) => found,
        None => (
            create(
                copier,
                source,
                destination_key,
                copier.options.storage_class.clone(),
            )
            .await?,
            HashMap::new(),
        ),
    };
    if was_resumed {
        tracing::info!(event = "multipart_resumed", upload_id = %upload_id, parts_present = existing.len());
    }
    let result = upload(
        copier,
        source,
        destination_key,
        &upload_id,
        parts,
        &existing,
        precondition,
    )
    .await;
    match &result {
        // Another writer moved the key, or the source changed: these
        // parts will never be completed.
        Err(e) if e.is_race() => abort(copier, destination_key, &upload_id).await,
        // Anything else (a network fault, throttling): the upload is kept,
        // and this worker's next attempt resumes it at once.
        Err(_) => copier.uploads.abandoned(&upload_id),
        Ok(_) => {}
    }
    let (uploaded, reused) = result?;
    Ok(Written {
        uploaded,
        reused,
        resumed: was_resumed,
    })
}

async fn upload(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    upload_id: &str,
    parts: Vec<Part>,
    existing: &HashMap<i32, part::Existing>,
    precondition: &Precondition,
) -> Result<(usize, usize), CopyError> {
    let mut done: Vec<Done> = futures::stream::iter(parts)
        .map(|p| {
            part::copy_part(
                copier,
                source,
                destination_key,
                upload_id,
                p,
                existing.get(&p.number),
            )
        })
        .buffer_unordered(copier.options.part_concurrency)
        .try_collect()
        .await?;
    done.sort_by_key(|d| d.number);

    if let Some(want) = source.crc64 {
        let got = combine_crc64(done.iter().map(|d| (d.tally.crc64, d.tally.length)));
        if got != Some(want) {
            // Not resumable: some part is wrong and we cannot tell which.
            abort(copier, destination_key, upload_id).await;
            return Err(CopyError::transient(
                "multipart",
                "integrity",
                format!(
                    "integrity check failed: CRC-64 of the parts {got:?} does not match the source's {want}"
                ),
            ));
        }
    }
    let completed: Vec<CompletedPart> = done
        .iter()
        .map(|d| {
            CompletedPart::builder()
                .part_number(d.number)
                .e_tag(&d.etag)
                .set_checksum_crc32(d.checksum_crc32.clone())
                .build()
        })
        .collect();
    complete(copier, destination_key, upload_id, completed, precondition).await?;
    let reused = done.iter().filter(|d| d.reused).count();
    Ok((done.len() - reused, reused))
}

/// Completes an upload if the destination is still what `precondition`
/// says.
pub async fn complete(
    copier: &Copier,
    destination_key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
    precondition: &Precondition,
) -> Result<(), CopyError> {
    copier
        .destination
        .complete_multipart_upload()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .upload_id(upload_id)
        .set_if_match(precondition.if_match())
        .set_if_none_match(precondition.if_none_match())
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| CopyError::from_destination("CompleteMultipartUpload", e))?;
    Ok(())
}

/// Starts an upload of `destination_key` with `source`'s attributes and
/// storage class `class` (`None`: STANDARD).
pub async fn create(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    class: Option<StorageClass>,
) -> Result<String, CopyError> {
    let request = copier
        .destination
        .create_multipart_upload()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32);
    let created = with_destination_attributes!(request, source, &copier.options)
        .set_storage_class(class)
        .send()
        .await
        .map_err(|e| CopyError::from_destination("CreateMultipartUpload", e))?;
    created.upload_id.ok_or_else(|| {
        CopyError::transient("CreateMultipartUpload", "server_error", "no upload id")
    })
}

pub async fn abort(copier: &Copier, destination_key: &str, upload_id: &str) {
    let result = copier
        .destination
        .abort_multipart_upload()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .upload_id(upload_id)
        .send()
        .await;
    match result {
        Ok(_) => tracing::info!(
            event = "multipart_aborted",
            upload_id,
            key = destination_key
        ),
        Err(e) => {
            tracing::warn!(event = "multipart_abort_failed", upload_id, error = %ossbridge_runtime::error_chain(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_fit_ten_thousand_parts() {
        assert_eq!(part_size(100 * MIB, 16 * MIB), 16 * MIB);
        assert_eq!(part_size(100 * MIB, MIB), MIN_PART);
        let five_tib = super::super::MAX_OBJECT_SIZE;
        let size = part_size(five_tib, 16 * MIB);
        assert!(five_tib.div_ceil(size) <= MAX_PARTS, "{size}");
        assert_eq!(size % MIB, 0);
    }

    #[test]
    fn plans_cover_the_object_exactly() {
        let parts = plan(10 * MIB + 1, 5 * MIB);
        let lengths: Vec<u64> = parts.iter().map(|p| p.length).collect();
        assert_eq!(lengths, [5 * MIB, 5 * MIB, 1]);
        assert_eq!(parts[2].offset, 10 * MIB);
        assert_eq!(
            parts.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }
}
