//! One part: a ranged GET of the source streamed into UploadPart, or, for
//! a part an interrupted upload already holds, a read of the range that
//! proves the stored part right before it is reused.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Part;
use crate::copy::verify::{Expect, Tally, TallySlot, etag_md5, verifying};
use crate::copy::{Copier, SourceObject};
use crate::error::CopyError;
use crate::telemetry;

/// Attempts per part before the whole copy is retried.
const PART_ATTEMPTS: usize = 4;

/// A part S3 already holds.
#[derive(Debug, Clone)]
pub struct Existing {
    pub size: u64,
    pub etag: String,
    pub checksum_crc32: Option<String>,
    /// When S3 finished storing it: how an upload's activity is judged.
    pub last_modified: Option<std::time::SystemTime>,
}

#[derive(Debug)]
pub struct Done {
    pub number: i32,
    pub etag: String,
    pub checksum_crc32: Option<String>,
    pub tally: Tally,
    pub reused: bool,
}

/// Streams one source range: returns the body wrapped for verification.
async fn source_range(
    copier: &Copier,
    source: &SourceObject,
    part: Part,
) -> Result<(ByteStream, TallySlot), CopyError> {
    let range = format!("bytes={}-{}", part.offset, part.offset + part.length - 1);
    let object = copier
        .source
        .get_object()
        .bucket(&copier.source_bucket)
        .key(&source.key)
        .range(range)
        // Every range must come from the version the copy is of.
        .if_match(&source.etag)
        .send()
        .await
        .map_err(|e| CopyError::from_source("GetObject (range)", e))?;
    Ok(verifying(
        object.body,
        Expect {
            length: part.length,
            crc64: None,
            md5: None,
        },
    ))
}

pub async fn copy_part(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
    upload_id: &str,
    part: Part,
    existing: Option<&Existing>,
) -> Result<Done, CopyError> {
    if let Some(existing) = existing.filter(|e| e.size == part.length)
        && let Some(done) = reuse(copier, source, part, existing).await?
    {
        return Ok(done);
    }
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(PART_ATTEMPTS - 1)
        .with_jitter();
    (|| upload_part(copier, source, destination_key, upload_id, part))
        .retry(backoff)
        // A changed source or a vanished upload will not get better.
        .when(|e| e.is_retryable() && !e.is_race())
        .notify(|e, _| {
            telemetry::part_retry();
            tracing::warn!(event = "part_retry", part = part.number, error = %e);
        })
        .await
}

/// Reads (not uploads) the range to prove the stored part is right;
/// `None` when it is not.
async fn reuse(
    copier: &Copier,
    source: &SourceObject,
    part: Part,
    existing: &Existing,
) -> Result<Option<Done>, CopyError> {
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
    if !matches {
        tracing::warn!(
            event = "multipart_part_mismatch",
            part = part.number,
            "uploading the part again"
        );
        return Ok(None);
    }
    telemetry::part_reused();
    Ok(Some(Done {
        number: part.number,
        etag: existing.etag.clone(),
        checksum_crc32: existing.checksum_crc32.clone(),
        tally,
        reused: true,
    }))
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
        .map_err(|e| CopyError::from_destination("UploadPart", e))?;
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
