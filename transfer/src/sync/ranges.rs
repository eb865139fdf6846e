//! Cutting the keyspace into ranges and diffing each: the keys directly
//! under each root, and each prefix one level below it, every range a
//! merge of its own two listings, several at once.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::deletes::Pending;
use super::diff::{self, Decision, Pair, decide};
use super::execute::Work;
use super::listing::{self, Listing, Side};
use super::progress::{Counters, add};
use super::summary::Failures;
use super::{SyncError, SyncOptions};

/// One keyspace range merged on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    prefix: String,
    /// Only the keys directly under `prefix` (delimiter `/`).
    delimited: bool,
}

/// Lists and diffs every range, sending the work on.
#[derive(Debug)]
pub(super) struct Lister {
    pub source: aws_sdk_s3::Client,
    pub destination: aws_sdk_s3::Client,
    pub source_bucket: String,
    pub destination_bucket: String,
    /// The destination prefix: destination keys are `root + source key`.
    pub root: String,
    pub options: SyncOptions,
    pub counters: Arc<Counters>,
    pub failures: Arc<Failures>,
    /// Delete candidates of ranges that listed cleanly (with `--delete`).
    pub deletes: Arc<Pending>,
}

impl Lister {
    /// Lists and diffs every range; copies and checks go to `tx` as they
    /// are found, delete candidates to `self.deletes` when their range has
    /// ended cleanly.
    pub async fn run(&self, tx: &mpsc::Sender<Work>, shutdown: &CancellationToken) {
        let ranges = match self.ranges().await {
            Ok(r) => r,
            Err(e) => {
                self.failures
                    .record_range(&self.counters, "", "list_failed", e.to_string());
                return;
            }
        };
        tracing::info!(event = "sync_ranges", ranges = ranges.len());
        futures::stream::iter(ranges)
            .for_each_concurrent(self.options.list_concurrency, |range| {
                let tx = tx.clone();
                async move {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        result = self.range(&range, &tx) => match result {
                            Ok(deletes) => self.deletes.add_range(deletes),
                            Err(e) => {
                                // The range stops here and its delete
                                // candidates are dropped: a listing that
                                // failed anywhere deletes nothing.
                                let reason = match e {
                                    SyncError::Unsorted { .. } => "unsorted_listing",
                                    _ => "list_failed",
                                };
                                self.failures.record_range(
                                    &self.counters,
                                    &range.prefix,
                                    reason,
                                    e.to_string(),
                                );
                            }
                        }
                    }
                }
            })
            .await;
    }

    /// Each root's direct keys, and every prefix one level below a root at
    /// the source (and, with `--delete`, at the destination).
    async fn ranges(&self) -> Result<Vec<Range>, SyncError> {
        let filter = &self.options.filter;
        let mut ranges = Vec::new();
        for root in filter.roots() {
            let mut below: BTreeSet<String> = listing::common_prefixes(
                &self.source,
                Side::Source,
                &self.source_bucket,
                "",
                &root,
            )
            .await?
            .into_iter()
            .collect();
            if self.options.delete {
                below.extend(
                    listing::common_prefixes(
                        &self.destination,
                        Side::Destination,
                        &self.destination_bucket,
                        &self.root,
                        &root,
                    )
                    .await?,
                );
            }
            ranges.push(Range {
                prefix: root,
                delimited: true,
            });
            ranges.extend(
                below
                    .into_iter()
                    .filter(|p| filter.may_contain(p))
                    .map(|prefix| Range {
                        prefix,
                        delimited: false,
                    }),
            );
        }
        Ok(ranges)
    }

    /// Diffs one range; returns its delete candidates, valid only because
    /// the whole range listed without error.
    async fn range(
        &self,
        range: &Range,
        tx: &mpsc::Sender<Work>,
    ) -> Result<Vec<String>, SyncError> {
        let source = Listing::new(
            self.source.clone(),
            Side::Source,
            &self.source_bucket,
            "",
            &range.prefix,
            range.delimited,
        );
        let destination = Listing::new(
            self.destination.clone(),
            Side::Destination,
            &self.destination_bucket,
            &self.root,
            &range.prefix,
            range.delimited,
        );
        let mut merge = diff::Merge::new(source, destination);
        let c = &self.counters;
        let mut deletes = Vec::new();
        while let Some(pair) = merge.next().await? {
            if !self.options.filter.allows(pair.key()) {
                continue;
            }
            if let Pair::SourceOnly(s) | Pair::Both { source: s, .. } = &pair {
                add(&c.source_objects, 1);
                add(&c.source_bytes, s.size);
            }
            if matches!(pair, Pair::DestinationOnly(_) | Pair::Both { .. }) {
                add(&c.destination_objects, 1);
            }
            let work = match decide(pair) {
                Decision::Copy(entry, reason) => Work::Copy(entry, reason),
                Decision::Check(entry) => Work::Check(entry),
                Decision::Extra(entry) => {
                    add(&c.extra, 1);
                    if self.options.delete {
                        deletes.push(entry.key);
                    }
                    continue;
                }
            };
            if tx.send(work).await.is_err() {
                // The executor stopped (shutdown): nothing more to plan,
                // and nothing to delete.
                return Ok(Vec::new());
            }
        }
        Ok(deletes)
    }
}
