//! Reconciling one key: look at both sides, decide (`plan.rs`), act with a
//! write conditional on what was seen, and look again whenever that is not
//! enough to be sure the destination is the source's current version.
//!
//! Why this converges with any number of workers (and `sync`) on one
//! bucket, whatever order their jobs run in:
//!
//! 1. A job reads the destination before the source, and every write or
//!    delete is conditional on the destination still being what it read
//!    (`destination.rs`). A job whose write succeeds therefore read the
//!    source after every other write that changed the destination's ETag
//!    before its own: it cannot replace a newer version with an older one
//!    through a write that other jobs could see.
//! 2. Writes that keep the destination's ETag (a metadata rewrite, the
//!    same bytes again) are invisible to those conditions, and a key can
//!    be deleted and written again between a read and a write. So after
//!    every write conditional on an existing object, after every metadata
//!    rewrite, after every delete, and after every write when deletes are
//!    propagated, the job reads the source once more: if it moved, the job
//!    reconciles again. The last write to the destination is always
//!    followed by such a look by the job that made it, so the destination
//!    ends on the source's version as of a moment after the last write;
//!    any later source change brings its own event.
//! 3. A refused write (412, 409, 404 on `If-Match`) or a source that
//!    changed under a conditional read is not a failure: the job
//!    reconciles again, up to [`MAX_ROUNDS`] times, then hands the message
//!    back to the queue as a transient failure.
//!
//! A new object written with `If-None-Match: *` while deletes are not
//! propagated needs no second look: nothing can have been there before it,
//! and a job that read an older source state would find the key taken.
//!
//! That is why a small new object (by the message's hint: its size, and an
//! event that writes a new object) skips the first read of the
//! destination: one GET at the source, one `If-None-Match: *`
//! PUT, two requests, the physical minimum for a new object. The write's
//! condition is checked by S3 when it lands, so it cannot overwrite
//! anything, whatever happened since the GET. When the key is taken (a
//! duplicate, or a copy already there), the job reads the destination: if
//! it holds exactly the version just read, the job is done (the source's
//! next change brings its own event); otherwise the round goes on as
//! above, with that read as its destination-before-source look. A
//! duplicate small object therefore costs GET, refused PUT and HEAD; a
//! large one still costs no download.

use ossbridge_message::Operation;

use super::destination::{DestinationObject, Precondition, head_destination};
use super::multipart;
use super::plan::{Plan, decide};
use super::recorded::Version;
use super::source::{Fetched, SourceObject, get_source, head_source};
use super::{Copier, Hint, Lease, Outcome, limits, metadata, single};
use crate::error::CopyError;
use crate::telemetry;

/// Looks at both sides this many times at most per attempt.
pub const MAX_ROUNDS: usize = 5;

/// What [`Copier::put_if_absent`] did.
enum Absent {
    /// It wrote the object, or found nothing to do.
    Written(Step),
    /// The key was taken by another version: the destination as read then.
    Taken(Option<DestinationObject>),
    /// Not a small object after all: nothing was written or read.
    NotSmall,
}

/// How one round ended.
enum Step {
    Done(Outcome),
    /// It wrote, but the source has moved since: look again.
    Wrote(Outcome),
    /// It deleted the destination, and the source has the key again.
    Restore,
}

impl Copier {
    pub(super) async fn reconcile(
        &self,
        op: Operation,
        key: &str,
        hint: Hint,
        lease: &Lease,
    ) -> Result<Outcome, CopyError> {
        let mut deleting = op == Operation::Delete;
        let mut wrote: Option<Outcome> = None;
        for _ in 0..MAX_ROUNDS {
            let step = if deleting {
                self.delete_round(key).await
            } else {
                self.copy_round(key, hint, lease).await
            };
            match step {
                Ok(Step::Done(outcome)) => {
                    return Ok(match (wrote, outcome) {
                        // A later round found our own write current.
                        (Some(w), Outcome::AlreadyCurrent) => w,
                        (_, outcome) => outcome,
                    });
                }
                Ok(Step::Wrote(outcome)) => {
                    telemetry::reconcile_again("source_moved");
                    tracing::info!(
                        event = "reconcile_again",
                        reason = "source_moved",
                        "the source changed while we wrote; looking again"
                    );
                    wrote = Some(outcome);
                }
                Ok(Step::Restore) => {
                    telemetry::reconcile_again("source_returned");
                    deleting = false;
                }
                Err(e) if e.is_race() => {
                    telemetry::reconcile_again(e.reason);
                    tracing::info!(event = "reconcile_again", reason = e.reason, error = %e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(CopyError::transient(
            "reconcile",
            "contended",
            format!("{key:?} kept changing over {MAX_ROUNDS} looks; the queue retries later"),
        ))
    }

    async fn copy_round(&self, key: &str, hint: Hint, lease: &Lease) -> Result<Step, CopyError> {
        let destination_key = self.destination_key(key);
        let small = hint
            .size
            .is_some_and(|size| size <= self.options.multipart_threshold);
        // A small new object skips the first look at the destination
        // (module documentation); anything else reads it first.
        let looked = !(small && hint.new_object);
        let mut destination = None;
        if looked {
            destination = self.head_destination(&destination_key).await?;
        }
        // A small object the destination lacks (or may lack): one GET
        // yields the source's state and its bytes together.
        if small && destination.is_none() {
            match self.put_if_absent(key, &destination_key, lease).await? {
                Absent::Written(step) => return Ok(step),
                Absent::Taken(taken) => destination = taken,
                Absent::NotSmall if !looked => {
                    destination = self.head_destination(&destination_key).await?;
                }
                Absent::NotSmall => {}
            }
        }
        let source = head_source(&self.source, &self.source_bucket, key).await?;
        match decide(
            source.as_ref(),
            destination.as_ref(),
            self.options.copy_metadata,
        ) {
            Plan::Current => Ok(Step::Done(Outcome::AlreadyCurrent)),
            Plan::SourceGone => self.source_gone(key, destination.as_ref(), false).await,
            plan @ (Plan::UpdateMetadata | Plan::Adopt) => {
                let (Some(source), Some(destination)) = (source, destination) else {
                    return Err(CopyError::transient("reconcile", "internal", "no object"));
                };
                limits::check(&source, lease.max_object_size(), self.options.copy_metadata)?;
                metadata::rewrite(self, &source, &destination_key, &destination).await?;
                let outcome = if plan == Plan::Adopt {
                    Outcome::Adopted
                } else {
                    Outcome::MetadataUpdated
                };
                self.settle(
                    key,
                    Some(&source),
                    &Precondition::seen(Some(&destination)),
                    outcome,
                )
                .await
            }
            Plan::Copy => {
                let Some(source) = source else {
                    return Err(CopyError::transient("reconcile", "internal", "no source"));
                };
                limits::check(&source, lease.max_object_size(), self.options.copy_metadata)?;
                let precondition = Precondition::seen(destination.as_ref());
                self.write(&source, &destination_key, &precondition, key)
                    .await
            }
        }
    }

    /// A small object: one GET, then one PUT if the key is free (module
    /// documentation). When it is taken, returns the destination as read
    /// after the refusal, unless it already holds the version just read.
    async fn put_if_absent(
        &self,
        key: &str,
        destination_key: &str,
        lease: &Lease,
    ) -> Result<Absent, CopyError> {
        let threshold = self.options.multipart_threshold;
        // In flight from the GET on, as on the general path (whose copy
        // starts with its GET): behind a slow source the GET is most of a
        // copy's life, and a gauge that missed it showed a busy worker as
        // idle.
        let mut in_flight = telemetry::InFlight::start(0);
        let (source, body) = match get_source(&self.source, &self.source_bucket, key, None).await? {
            Fetched::Object(source, body) if source.size <= threshold => (source, body),
            // Deleting the destination's copy needs the destination read
            // first; a key that is not there needs nothing.
            Fetched::Missing if !self.options.propagate_deletes => {
                return Ok(Absent::Written(Step::Done(Outcome::SourceMissing)));
            }
            // Larger than the message said, or gone: the general path.
            Fetched::Object(..) | Fetched::Missing | Fetched::Unchanged => {
                return Ok(Absent::NotSmall);
            }
        };
        limits::check(&source, lease.max_object_size(), self.options.copy_metadata)?;
        let precondition = Precondition::Absent;
        in_flight.add_bytes(source.size);
        let written = {
            let _budget = self.reserve(source.size).await?;
            single::put(self, &source, body, destination_key, &precondition).await
        };
        drop(in_flight);
        match written {
            Ok(()) => {
                let step = self
                    .settle(key, Some(&source), &precondition, copied(source.size, 0, 0))
                    .await?;
                Ok(Absent::Written(step))
            }
            Err(e) if e.is_race() => {
                telemetry::reconcile_again("destination_taken");
                tracing::info!(
                    event = "reconcile_again",
                    reason = "destination_taken",
                    "the key is taken; looking at the destination"
                );
                let destination = self.head_destination(destination_key).await?;
                let plan = decide(
                    Some(&source),
                    destination.as_ref(),
                    self.options.copy_metadata,
                );
                Ok(match plan {
                    Plan::Current => Absent::Written(Step::Done(Outcome::AlreadyCurrent)),
                    _ => Absent::Taken(destination),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Copies the bytes of `source` to the destination.
    async fn write(
        &self,
        source: &SourceObject,
        destination_key: &str,
        precondition: &Precondition,
        key: &str,
    ) -> Result<Step, CopyError> {
        let multipart = source.size > self.options.multipart_threshold;
        let footprint = if multipart {
            multipart::part_size(source.size, self.options.part_size)
                * self.options.part_concurrency as u64
        } else {
            source.size
        };
        let _budget = self.reserve(footprint).await?;
        let _in_flight = telemetry::InFlight::start(source.size);
        if !multipart {
            single::copy(self, source, destination_key, precondition).await?;
            return self
                .settle(key, Some(source), precondition, copied(source.size, 0, 0))
                .await;
        }
        let written = multipart::copy(self, source, destination_key, precondition).await?;
        let outcome = copied(source.size, written.uploaded, written.reused);
        if written.resumed {
            // The upload's metadata was set by the copy that started it,
            // which may have seen another version: look again, and a
            // metadata rewrite fixes the records if so.
            return Ok(Step::Wrote(outcome));
        }
        self.settle(key, Some(source), precondition, outcome).await
    }

    /// The source has no such key: delete the destination's copy when
    /// deletes are propagated.
    async fn source_gone(
        &self,
        key: &str,
        destination: Option<&DestinationObject>,
        deleting: bool,
    ) -> Result<Step, CopyError> {
        if !self.options.propagate_deletes && !deleting {
            return Ok(Step::Done(Outcome::SourceMissing));
        }
        let Some(destination) = destination else {
            return Ok(Step::Done(if deleting {
                Outcome::Deleted
            } else {
                Outcome::SourceMissing
            }));
        };
        self.destination
            .delete_object()
            .bucket(&self.destination_bucket)
            .key(self.destination_key(key))
            .if_match(&destination.etag)
            .send()
            .await
            .map_err(|e| CopyError::from_destination("DeleteObject", e))?;
        // The key may have been written again at the source since we
        // looked (and its copy been overwritten by a same-ETag write).
        match head_source(&self.source, &self.source_bucket, key).await? {
            None => Ok(Step::Done(Outcome::Deleted)),
            Some(_) => Ok(Step::Restore),
        }
    }

    /// A delete job: the destination loses the key if the source has none.
    async fn delete_round(&self, key: &str) -> Result<Step, CopyError> {
        if head_source(&self.source, &self.source_bucket, key)
            .await?
            .is_some()
        {
            return Ok(Step::Done(Outcome::DeleteSkipped));
        }
        let destination = self.head_destination(&self.destination_key(key)).await?;
        self.source_gone(key, destination.as_ref(), true).await
    }

    /// After a successful write: done, unless the write may have been
    /// overtaken (module documentation, point 2) and the source has moved.
    async fn settle(
        &self,
        key: &str,
        written: Option<&SourceObject>,
        precondition: &Precondition,
        outcome: Outcome,
    ) -> Result<Step, CopyError> {
        let certain = *precondition == Precondition::Absent
            && !self.options.propagate_deletes
            && matches!(outcome, Outcome::Copied { .. });
        if certain {
            return Ok(Step::Done(outcome));
        }
        let now = head_source(&self.source, &self.source_bucket, key).await?;
        let copy_metadata = self.options.copy_metadata;
        let unchanged = match (written, now.as_ref()) {
            (Some(w), Some(n)) => {
                Version::of(w, copy_metadata).same_version(&Version::of(n, copy_metadata))
            }
            (None, None) => true,
            _ => false,
        };
        Ok(if unchanged {
            Step::Done(outcome)
        } else {
            Step::Wrote(outcome)
        })
    }

    async fn head_destination(
        &self,
        destination_key: &str,
    ) -> Result<Option<DestinationObject>, CopyError> {
        head_destination(&self.destination, &self.destination_bucket, destination_key).await
    }
}

fn copied(bytes: u64, parts_uploaded: usize, parts_reused: usize) -> Outcome {
    Outcome::Copied {
        bytes,
        parts_uploaded,
        parts_reused,
    }
}
