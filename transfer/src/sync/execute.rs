//! Acting on the diff: HEAD checks of candidate-equal keys, copies through
//! the copy engine (or jobs on the queue), deletes, or, in a dry run, one
//! line per change on stdout.
//!
//! Work arrives on a bounded channel from the listing tasks; HEADs and
//! copies each have their own bound, and a task that found its key
//! outdated keeps its HEAD slot until it has a copy slot, so at most
//! `head_concurrency + concurrency` tasks exist and the listing waits when
//! the copies fall behind: memory does not grow with the bucket.

use std::sync::Arc;
use std::time::Duration;

use ossbridge_message::Operation;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::diff::{Reason, recorded_reason};
use super::enqueue::{self, Enqueuer};
use super::listing::Entry;
use super::progress::{Counters, add};
use super::summary::Failures;
use crate::copy::{Copier, Hint, Lease, Outcome, head_destination};

/// One unit of work from the diff.
#[derive(Debug)]
pub enum Work {
    Copy(Entry, Reason),
    Check(Entry),
    Delete(String),
}

#[derive(Debug)]
pub struct Executor {
    pub copier: Arc<Copier>,
    pub enqueuer: Option<Enqueuer>,
    pub source: enqueue::Source,
    pub run_id: String,
    pub dry_run: bool,
    pub counters: Arc<Counters>,
    pub failures: Arc<Failures>,
    pub copies: Arc<Semaphore>,
    pub heads: Arc<Semaphore>,
}

impl Executor {
    /// Runs work until the channel closes, or until `shutdown`: then no new
    /// work starts, and running tasks get `grace` before they are
    /// abandoned. Returns whether anything was abandoned or left undone.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Work>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> bool {
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let work = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                work = rx.recv() => match work {
                    Some(work) => work,
                    None => break,
                },
            };
            let slots = match &work {
                Work::Check(_) => &self.heads,
                Work::Copy(..) | Work::Delete(_) => &self.copies,
            };
            let permit = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            tasks.spawn(self.clone().handle(work, permit, shutdown.clone()));
        }
        if !shutdown.is_cancelled() {
            while tasks.join_next().await.is_some() {}
            return false;
        }
        tracing::info!(event = "sync_draining", running = tasks.len());
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            // A multipart copy abandoned here is resumed by the next run.
            tracing::warn!(event = "sync_drain_timeout", abandoned = tasks.len());
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        true
    }

    async fn handle(
        self: Arc<Self>,
        work: Work,
        permit: OwnedSemaphorePermit,
        shutdown: CancellationToken,
    ) {
        match work {
            Work::Copy(entry, reason) => {
                self.planned(&entry, reason);
                self.copy(entry, reason).await;
            }
            Work::Check(entry) => {
                let Some(reason) = self.check(&entry).await else {
                    return;
                };
                self.planned(&entry, reason);
                // Keep the HEAD slot until a copy slot is free, so
                // outdated keys cannot pile up as waiting tasks.
                let copy_slot = tokio::select! {
                    () = shutdown.cancelled() => return,
                    slot = self.copies.clone().acquire_owned() => slot,
                };
                drop(permit);
                let _copy_slot = copy_slot;
                self.copy(entry, reason).await;
            }
            Work::Delete(key) => {
                let _permit = permit;
                self.delete(key).await;
            }
        }
    }

    fn planned(&self, entry: &Entry, reason: Reason) {
        add(&self.counters.to_copy, 1);
        add(&self.counters.to_copy_bytes, entry.size);
        if self.dry_run {
            println!("copy {} ({})", printable(&entry.key), reason.as_str());
        }
    }

    /// HEADs the destination; `Some(reason)` when the key must be copied.
    async fn check(&self, entry: &Entry) -> Option<Reason> {
        add(&self.counters.checked, 1);
        let key = self.copier.destination_key(&entry.key);
        match head_destination(
            &self.copier.destination,
            self.copier.destination_bucket(),
            &key,
        )
        .await
        {
            Ok(Some(d)) => {
                let reason = recorded_reason(entry, d.recorded.as_ref());
                if reason.is_none() {
                    add(&self.counters.already_current, 1);
                }
                reason
            }
            // Deleted since the listing: copy it.
            Ok(None) => Some(Reason::Missing),
            Err(e) => {
                self.failures
                    .record(&self.counters, &entry.key, e.reason, e.to_string());
                None
            }
        }
    }

    async fn copy(&self, entry: Entry, reason: Reason) {
        if self.dry_run {
            return;
        }
        if let Some(enqueuer) = &self.enqueuer {
            let missing = reason == Reason::Missing;
            let message = enqueue::message(&self.source, &entry, &self.run_id, missing);
            enqueuer.send(message).await;
            return;
        }
        // The listed size lets the engine take its one-GET path for small
        // objects, and a key the destination lacks its PUT-if-absent path.
        // The engine looks at both sides again and writes conditionally,
        // so a live worker copying the same key meanwhile is never
        // overwritten with an older version.
        let hint = Hint {
            size: Some(entry.size),
            new_object: reason == Reason::Missing,
        };
        match self
            .copier
            .execute(Operation::Copy, &entry.key, hint, &Lease::unbounded())
            .await
        {
            Ok(Outcome::Copied { bytes, .. }) => {
                add(&self.counters.copied, 1);
                add(&self.counters.copied_bytes, bytes);
            }
            Ok(Outcome::AlreadyCurrent) => add(&self.counters.already_current, 1),
            Ok(Outcome::MetadataUpdated) => add(&self.counters.metadata_updated, 1),
            Ok(Outcome::Adopted) => add(&self.counters.adopted, 1),
            Ok(_) => add(&self.counters.vanished, 1),
            Err(e) => self
                .failures
                .record(&self.counters, &entry.key, e.reason, e.to_string()),
        }
    }

    async fn delete(&self, key: String) {
        add(&self.counters.to_delete, 1);
        if self.dry_run {
            println!("delete {}", printable(&key));
            return;
        }
        // Through the engine: deleted only if the source has no such key
        // now (not just in a listing that started minutes ago), and only
        // the object the engine saw (a conditional delete).
        match self
            .copier
            .execute(
                Operation::Delete,
                &key,
                Hint::default(),
                &Lease::unbounded(),
            )
            .await
        {
            Ok(Outcome::DeleteSkipped) => add(&self.counters.delete_skipped, 1),
            Ok(_) => add(&self.counters.deleted, 1),
            Err(e) => self
                .failures
                .record(&self.counters, &key, e.reason, e.to_string()),
        }
    }
}

/// A key as one line: quoted and escaped only when it holds control
/// characters (a newline would otherwise split the line).
fn printable(key: &str) -> String {
    if key.chars().any(char::is_control) {
        format!("{key:?}")
    } else {
        key.to_owned()
    }
}
