//! Finding a multipart upload to resume, without ever touching one that a
//! live copy is still feeding.
//!
//! ListMultipartUploads says nothing about who owns an upload, so
//! ownership is read from activity: an upload that was initiated, or had a
//! part finished, within `copy.upload_idle_secs` belongs to a copy that is
//! running now (in this process or another) and is left alone. A worker
//! that crashed stops feeding its upload; its message comes back after the
//! visibility timeout, by which time the upload is idle (the idle time is
//! kept below two thirds of the visibility timeout), and the new owner
//! resumes it. Uploads this process itself stopped using after an error
//! are resumable at once.
//!
//! Of the idle uploads of a key, the newest usable one is resumed; idle
//! uploads that are older than `copy.stale_upload_hours`, started before
//! the source's current version, or superseded by a newer one are aborted.
//! Nothing outside the key being copied is ever aborted; leftovers of keys
//! nobody copies again are for the bucket's lifecycle rule
//! (AbortIncompleteMultipartUpload, docs/operations.md).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::SystemTime;

use super::abort;
use super::part::Existing;
use crate::copy::{Copier, SourceObject};
use crate::error::CopyError;

/// Uploads this process created and stopped using after a failure: they
/// are idle by definition, whatever their last part's time.
#[derive(Debug, Default)]
pub struct Abandoned(Mutex<HashSet<String>>);

impl Abandoned {
    pub fn abandoned(&self, upload_id: &str) {
        if let Ok(mut ids) = self.0.lock() {
            ids.insert(upload_id.to_owned());
        }
    }

    fn take(&self, upload_id: &str) -> bool {
        self.0.lock().is_ok_and(|mut ids| ids.remove(upload_id))
    }
}

/// A multipart upload in progress at the destination.
#[derive(Debug)]
struct Upload {
    key: String,
    upload_id: String,
    initiated: Option<SystemTime>,
}

/// The upload to resume for `source` at `destination_key`, and its parts.
pub async fn resumable(
    copier: &Copier,
    source: &SourceObject,
    destination_key: &str,
) -> Result<Option<(String, HashMap<i32, Existing>)>, CopyError> {
    let mut uploads: Vec<Upload> = list_uploads(copier, destination_key)
        .await?
        .into_iter()
        .filter(|u| u.key == destination_key)
        .collect();
    uploads.sort_by_key(|u| std::cmp::Reverse(u.initiated));
    let now = SystemTime::now();
    let stale_before = now - copier.options.stale_upload_age;
    let source_changed = source
        .last_modified
        .and_then(|t| SystemTime::try_from(t).ok());
    let mut chosen = None;
    for upload in uploads {
        let parts = match list_parts(copier, destination_key, &upload.upload_id).await {
            Ok(parts) => parts,
            // Completed or aborted since the listing.
            Err(e) if e.is_race() => continue,
            Err(e) => return Err(e),
        };
        let ours = copier.uploads.take(&upload.upload_id);
        let last_activity = parts
            .values()
            .filter_map(|p| p.last_modified)
            .chain(upload.initiated)
            .max();
        let live = !ours
            && last_activity.is_none_or(|t| {
                now.duration_since(t).unwrap_or_default() < copier.options.upload_idle
            });
        if live {
            tracing::info!(
                event = "multipart_upload_in_use",
                upload_id = %upload.upload_id,
                "another copy of this key is running; leaving its upload alone"
            );
            continue;
        }
        let usable = chosen.is_none()
            && upload
                .initiated
                .is_some_and(|s| s >= stale_before && source_changed.is_none_or(|c| s >= c));
        if usable {
            chosen = Some((upload.upload_id, parts));
        } else {
            abort(copier, destination_key, &upload.upload_id).await;
        }
    }
    Ok(chosen)
}

async fn list_parts(
    copier: &Copier,
    destination_key: &str,
    upload_id: &str,
) -> Result<HashMap<i32, Existing>, CopyError> {
    let mut existing = HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = copier
            .destination
            .list_parts()
            .bucket(&copier.destination_bucket)
            .key(destination_key)
            .upload_id(upload_id)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .map_err(|e| CopyError::from_destination("ListParts", e))?;
        for p in page.parts() {
            if let (Some(number), Some(etag)) = (p.part_number(), p.e_tag()) {
                existing.insert(
                    number,
                    Existing {
                        size: p.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                        etag: etag.to_owned(),
                        checksum_crc32: p.checksum_crc32().map(str::to_owned),
                        last_modified: p
                            .last_modified()
                            .and_then(|t| SystemTime::try_from(*t).ok()),
                    },
                );
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(existing);
        }
        marker = page.next_part_number_marker().map(str::to_owned);
    }
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
            .map_err(|e| CopyError::from_destination("ListMultipartUploads", e))?;
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
