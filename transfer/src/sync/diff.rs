//! The diff of two sorted key streams: a merge-join by key, pure apart
//! from pulling the next entry, so it is tested without any bucket.
//!
//! Each side is read once, in order, one entry ahead: memory does not grow
//! with the number of keys.

use std::cmp::Ordering;
use std::future::Future;

use super::SyncError;
use super::listing::{Entry, Listing};
use crate::copy::recorded::Version;

/// A stream of entries in strictly increasing byte order of key.
pub trait Sorted {
    fn side(&self) -> &'static str;
    fn next(&mut self) -> impl Future<Output = Result<Option<Entry>, SyncError>> + Send;
}

impl Sorted for Listing {
    fn side(&self) -> &'static str {
        Listing::side(self).as_str()
    }

    async fn next(&mut self) -> Result<Option<Entry>, SyncError> {
        Listing::next(self).await
    }
}

/// A key seen on one side or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pair {
    SourceOnly(Entry),
    DestinationOnly(Entry),
    Both { source: Entry, destination: Entry },
}

impl Pair {
    pub fn key(&self) -> &str {
        match self {
            Pair::SourceOnly(e) | Pair::DestinationOnly(e) => &e.key,
            Pair::Both { source, .. } => &source.key,
        }
    }
}

/// Why a key is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Missing,
    SizeDiffers,
    /// The destination recorded another source ETag.
    EtagDiffers,
    /// The destination object was not written by ossbridge (or lost its
    /// metadata), so nothing says which source version it holds.
    NoRecordedEtag,
    /// Same bytes, but the source was modified since (its Last-Modified
    /// moved: new metadata), or nothing says when; the copy engine
    /// rewrites the metadata server-side.
    Modified,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::SizeDiffers => "size differs",
            Reason::EtagDiffers => "etag differs",
            Reason::NoRecordedEtag => "no recorded etag",
            Reason::Modified => "modified at the source",
        }
    }
}

/// What to do with a key, as far as the listings can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Copy(Entry, Reason),
    /// Same size on both sides: only the destination's recorded source
    /// ETag (user metadata, which listings do not return) can tell, so the
    /// destination is HEADed.
    Check(Entry),
    /// Only at the destination (deleted with `--delete`).
    Extra(Entry),
}

pub fn decide(pair: Pair) -> Decision {
    match pair {
        Pair::SourceOnly(source) => Decision::Copy(source, Reason::Missing),
        Pair::DestinationOnly(destination) => Decision::Extra(destination),
        Pair::Both {
            source,
            destination,
        } if source.size != destination.size => Decision::Copy(source, Reason::SizeDiffers),
        Pair::Both { source, .. } => Decision::Check(source),
    }
}

/// After the HEAD: `None` when the destination holds the version the
/// source listed (same ETag, same Last-Modified second). A copy made
/// before ossbridge recorded a metadata digest counts as current here:
/// any later change at the source moves its Last-Modified.
pub fn recorded_reason(source: &Entry, recorded: Option<&Version>) -> Option<Reason> {
    let listed = Version {
        etag: source.etag.trim_matches('"').to_owned(),
        last_modified: source.last_modified,
        meta: None,
    };
    match recorded {
        None => Some(Reason::NoRecordedEtag),
        Some(r) if !r.same_content(&listed) => Some(Reason::EtagDiffers),
        Some(r) if r.last_modified.is_none() || r.last_modified != listed.last_modified => {
            Some(Reason::Modified)
        }
        Some(_) => None,
    }
}

/// One side, checked to be in strictly increasing order: a store that
/// lists in another order would make the merge report present keys as
/// missing (and, with `--delete`, delete them), so that is an error.
#[derive(Debug)]
struct Checked<S> {
    stream: S,
    last: Option<String>,
}

impl<S: Sorted> Checked<S> {
    async fn next(&mut self) -> Result<Option<Entry>, SyncError> {
        let Some(entry) = self.stream.next().await? else {
            return Ok(None);
        };
        if let Some(last) = &self.last
            && last.as_bytes() >= entry.key.as_bytes()
        {
            return Err(SyncError::Unsorted {
                side: self.stream.side(),
                previous: last.clone(),
                key: entry.key,
            });
        }
        self.last = Some(entry.key.clone());
        Ok(Some(entry))
    }
}

/// The merge-join of a source and a destination stream.
#[derive(Debug)]
pub struct Merge<S, D> {
    source: Checked<S>,
    destination: Checked<D>,
    s: Option<Entry>,
    d: Option<Entry>,
    primed: bool,
}

impl<S: Sorted, D: Sorted> Merge<S, D> {
    pub fn new(source: S, destination: D) -> Merge<S, D> {
        Merge {
            source: Checked {
                stream: source,
                last: None,
            },
            destination: Checked {
                stream: destination,
                last: None,
            },
            s: None,
            d: None,
            primed: false,
        }
    }

    /// The next key in order, from either side or both; `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Pair>, SyncError> {
        if !self.primed {
            // Both first pages at once: a range costs one round trip to
            // start, not two.
            let (s, d) = tokio::join!(self.source.next(), self.destination.next());
            self.s = s?;
            self.d = d?;
            self.primed = true;
        }
        let order = match (&self.s, &self.d) {
            (None, None) => return Ok(None),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(d)) => s.key.as_bytes().cmp(d.key.as_bytes()),
        };
        let pair = match order {
            Ordering::Less => Pair::SourceOnly(self.take_source().await?),
            Ordering::Greater => Pair::DestinationOnly(self.take_destination().await?),
            Ordering::Equal => Pair::Both {
                source: self.take_source().await?,
                destination: self.take_destination().await?,
            },
        };
        Ok(Some(pair))
    }

    async fn take_source(&mut self) -> Result<Entry, SyncError> {
        let next = self.source.next().await?;
        std::mem::replace(&mut self.s, next).ok_or(SyncError::Internal("merge: no source entry"))
    }

    async fn take_destination(&mut self) -> Result<Entry, SyncError> {
        let next = self.destination.next().await?;
        std::mem::replace(&mut self.d, next)
            .ok_or(SyncError::Internal("merge: no destination entry"))
    }
}

/// `--include` / `--exclude` prefixes (of source-relative keys); exclude
/// wins.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Filter {
    pub fn allows(&self, key: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| key.starts_with(p.as_str())))
            && !self.exclude.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Whether any key starting with `prefix` can be allowed, so a whole
    /// range can be skipped without listing it.
    pub fn may_contain(&self, prefix: &str) -> bool {
        if self.exclude.iter().any(|p| prefix.starts_with(p.as_str())) {
            return false;
        }
        self.include.is_empty()
            || self
                .include
                .iter()
                .any(|i| i.starts_with(prefix) || prefix.starts_with(i.as_str()))
    }

    /// Where listing starts: each include that no other include covers, or
    /// the whole bucket.
    pub fn roots(&self) -> Vec<String> {
        if self.include.is_empty() {
            return vec![String::new()];
        }
        let mut roots: Vec<String> = self.include.clone();
        roots.sort();
        roots.dedup();
        let mut kept: Vec<String> = Vec::new();
        for root in roots {
            // Sorted, so a covering prefix comes first.
            if !kept.iter().any(|k| root.starts_with(k.as_str())) {
                kept.push(root);
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests;
