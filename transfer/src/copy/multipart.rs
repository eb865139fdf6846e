//! Objects above the multipart threshold: ranged GETs of the source stream
//! into UploadPart calls, several parts at once; memory stays at a few
//! stream buffers per part in flight, never a part, never the object.
//!
//! Resume: a worker that died mid-upload leaves the multipart upload
//! behind. The next attempt finds it (ListMultipartUploads, ListParts),
//! verifies each finished part against the source range (its CRC-32 or
//! MD5 must match what S3 stored) and uploads only what is missing or
//! wrong. Uploads older than `stale_upload_age`, or started before the
//! source's current version, are aborted instead.
//!
//! Integrity: every part is sent with a CRC-32 that S3 checks; each
//! range's CRC-64/XZ is combined into the whole object's and compared with
//! OSS's `x-oss-hash-crc64ecma` before the upload is completed; on a
//! mismatch the upload is aborted.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{StreamExt, TryStreamExt};

use super::verify::{Expect, Tally, combine_crc64, etag_md5, verifying};
use super::{Copier, MAX_PARTS, MIB, SourceObject, with_destination_attributes};
use crate::error::CopyError;
use crate::telemetry;

/// S3's smallest part (except the last).
const MIN_PART: u64 = 5 * MIB;
/// Attempts per part before the whole copy is retried.
const PART_ATTEMPTS: usize = 4;

/// The part size for an object: the configured one, or larger so the
/// object fits in 10,000 parts (rounded up to whole MiB).
pub fn part_size(size: u64, configured: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    configured.max(needed).max(MIN_PART)
}

#[derive(Debug, Clone, Copy)]
struct Part {
    number: i32,
    offset: u64,
    length: u64,
}

fn plan(size: u64, part_size: u64) -> Vec<Part> {
    (0..size.div_ceil(part_size))
        .map(|i| Part {
            number: i as i32 + 1,
            offset: i * part_size,
            length: part_size.min(size - i * part_size),
        })
        .collect()
}

/// A part S3 already holds.
#[derive(Debug, Clone)]
struct Existing {
    size: u64,
    etag: String,
    checksum_crc32: Option<String>,
}

#[derive(Debug)]
struct Done {
    number: i32,
    etag: String,
    checksum_crc32: Option<String>,
    tally: Tally,
    reused: bool,
}

/// Copies `source` in parts; returns (parts uploaded, parts reused).
pub async fn copy(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
) -> Result<(usize, usize), CopyError> {
    let size = part_size(source.size, copier.options.part_size);
    let parts = plan(source.size, size);
    let (upload_id, existing) = match resumable(copier, source, destination_key).await? {
        Some(found) => found,
        None => (
            create(copier, source, destination_key).await?,
            HashMap::new(),
        ),
    };
    if !existing.is_empty() {
        tracing::info!(event = "multipart_resumed", upload_id = %upload_id, parts_present = existing.len());
    }
    let upload_id = upload_id.as_str();
    let existing = &existing;
    let mut done: Vec<Done> = futures::stream::iter(parts)
        .map(|part| {
            copy_part(
                copier,
                source,
                destination_key,
                upload_id,
                part,
                existing.get(&part.number),
            )
        })
        .buffer_unordered(copier.options.part_concurrency)
        .try_collect()
        .await?;
    done.sort_by_key(|d| d.number);

    if let Some(want) = source.crc64 {
        let got = combine_crc64(done.iter().map(|d| (d.tally.crc64, d.tally.length)));
        if got != Some(want) {
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
    copier
        .destination
        .complete_multipart_upload()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .map_err(|e| CopyError::from_sdk("CompleteMultipartUpload", e))?;
    let reused = done.iter().filter(|d| d.reused).count();
    Ok((done.len() - reused, reused))
}

async fn create(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
) -> Result<String, CopyError> {
    let request = copier
        .destination
        .create_multipart_upload()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32);
    let created = with_destination_attributes!(request, source, &copier.options)
        .send()
        .await
        .map_err(|e| CopyError::from_sdk("CreateMultipartUpload", e))?;
    created.upload_id.ok_or_else(|| {
        CopyError::transient("CreateMultipartUpload", "server_error", "no upload id")
    })
}

/// The newest usable upload of this key and its parts; stale ones, and
/// ones started before the source's current version, are aborted.
async fn resumable(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
) -> Result<Option<(String, HashMap<i32, Existing>)>, CopyError> {
    let mut uploads: Vec<Upload> = list_uploads(copier, destination_key)
        .await?
        .into_iter()
        .filter(|u| u.key == destination_key)
        .collect();
    let stale_before = SystemTime::now() - copier.options.stale_upload_age;
    let source_changed = source
        .last_modified
        .and_then(|t| SystemTime::try_from(t).ok());
    uploads.sort_by_key(|u| std::cmp::Reverse(u.initiated));
    let mut chosen = None;
    for upload in uploads {
        let usable = chosen.is_none()
            && upload
                .initiated
                .is_some_and(|s| s >= stale_before && source_changed.is_none_or(|c| s >= c));
        if usable {
            chosen = Some(upload.upload_id);
        } else {
            abort(copier, destination_key, &upload.upload_id).await;
        }
    }
    let Some(id) = chosen else {
        return Ok(None);
    };
    let mut existing = HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = copier
            .destination
            .list_parts()
            .bucket(&copier.destination_bucket)
            .key(destination_key)
            .upload_id(&id)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .map_err(|e| CopyError::from_sdk("ListParts", e))?;
        for p in page.parts() {
            if let (Some(number), Some(etag)) = (p.part_number(), p.e_tag()) {
                existing.insert(
                    number,
                    Existing {
                        size: p.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                        etag: etag.to_owned(),
                        checksum_crc32: p.checksum_crc32().map(str::to_owned),
                    },
                );
            }
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = page.next_part_number_marker().map(str::to_owned);
    }
    Ok(Some((id, existing)))
}

async fn abort(copier: &Copier, destination_key: &str, upload_id: &str) {
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

/// Streams one source range: returns the body wrapped for verification.
async fn source_range(
    copier: &Copier,
    source: &SourceObject,
    part: Part,
) -> Result<(ByteStream, super::verify::TallySlot), CopyError> {
    let range = format!("bytes={}-{}", part.offset, part.offset + part.length - 1);
    let object = copier
        .source
        .get_object()
        .bucket(&copier.source_bucket)
        .key(&source.key)
        .range(range)
        .if_match(&source.etag)
        .send()
        .await
        .map_err(|e| CopyError::from_sdk("GetObject (range)", e))?;
    Ok(verifying(
        object.body,
        Expect {
            length: part.length,
            crc64: None,
            md5: None,
        },
    ))
}

async fn copy_part(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    upload_id: &str,
    part: Part,
    existing: Option<&Existing>,
) -> Result<Done, CopyError> {
    if let Some(existing) = existing.filter(|e| e.size == part.length) {
        // Read (not upload) the range to prove the stored part is right.
        let (mut stream, slot) = source_range(copier, source, part).await?;
        while stream
            .try_next()
            .await
            .map_err(|e| {
                CopyError::transient(
                    "GetObject (range)",
                    "network",
                    ossbridge_runtime::error_chain(&e),
                )
            })?
            .is_some()
        {}
        let tally = slot
            .lock()
            .ok()
            .and_then(|t| *t)
            .ok_or_else(|| CopyError::transient("verify part", "integrity", "no tally"))?;
        let crc32 = STANDARD.encode(tally.crc32.to_be_bytes());
        let matches = match &existing.checksum_crc32 {
            Some(stored) => *stored == crc32,
            None => etag_md5(&existing.etag) == Some(tally.md5),
        };
        if matches {
            telemetry::part_reused();
            return Ok(Done {
                number: part.number,
                etag: existing.etag.clone(),
                checksum_crc32: existing.checksum_crc32.clone(),
                tally,
                reused: true,
            });
        }
        tracing::warn!(
            event = "multipart_part_mismatch",
            part = part.number,
            "uploading the part again"
        );
    }
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(PART_ATTEMPTS - 1)
        .with_jitter();
    (|| upload_part(copier, source, destination_key, upload_id, part))
        .retry(backoff)
        .when(CopyError::is_retryable)
        .notify(|e, _| {
            telemetry::part_retry();
            tracing::warn!(event = "part_retry", part = part.number, error = %e);
        })
        .await
}

async fn upload_part(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    upload_id: &str,
    part: Part,
) -> Result<Done, CopyError> {
    let (body, slot) = source_range(copier, source, part).await?;
    let uploaded = copier
        .destination
        .upload_part()
        .bucket(&copier.destination_bucket)
        .key(destination_key)
        .upload_id(upload_id)
        .part_number(part.number)
        .content_length(part.length as i64)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(body)
        .send()
        .await
        .map_err(|e| CopyError::from_sdk("UploadPart", e))?;
    let tally = slot.lock().ok().and_then(|t| *t).ok_or_else(|| {
        CopyError::transient(
            "UploadPart",
            "integrity",
            "the part's stream did not finish",
        )
    })?;
    Ok(Done {
        number: part.number,
        etag: uploaded.e_tag.unwrap_or_default(),
        checksum_crc32: uploaded.checksum_crc32,
        tally,
        reused: false,
    })
}

/// Aborts multipart uploads under the destination prefix older than the
/// stale age (from crashed workers that never came back for them).
pub async fn abort_stale(copier: &Copier) -> Result<usize, CopyError> {
    let stale_before = SystemTime::now() - copier.options.stale_upload_age;
    let mut aborted = 0;
    for upload in list_uploads(copier, &copier.options.destination_prefix).await? {
        if upload.initiated.is_some_and(|t| t < stale_before) {
            abort(copier, &upload.key, &upload.upload_id).await;
            aborted += 1;
        }
    }
    Ok(aborted)
}

/// A multipart upload in progress at the destination.
#[derive(Debug)]
struct Upload {
    key: String,
    upload_id: String,
    initiated: Option<SystemTime>,
}

/// Every multipart upload under `prefix` (all pages).
async fn list_uploads(copier: &Copier, prefix: &str) -> Result<Vec<Upload>, CopyError> {
    let mut uploads = Vec::new();
    let mut markers: (Option<String>, Option<String>) = (None, None);
    loop {
        let page = copier
            .destination
            .list_multipart_uploads()
            .bucket(&copier.destination_bucket)
            .prefix(prefix)
            .set_key_marker(markers.0.clone())
            .set_upload_id_marker(markers.1.clone())
            .send()
            .await
            .map_err(|e| CopyError::from_sdk("ListMultipartUploads", e))?;
        for u in page.uploads() {
            if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                uploads.push(Upload {
                    key: key.to_owned(),
                    upload_id: id.to_owned(),
                    initiated: u.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
                });
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(uploads);
        }
        markers = (
            page.next_key_marker().map(str::to_owned),
            page.next_upload_id_marker().map(str::to_owned),
        );
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
