//! Ownership of a job. A queue worker owns a job only while it owns the
//! message (its visibility keeps being extended); once that fails, SQS
//! hands the message to another worker, and this one must not write any
//! more: the new owner finishes, and a late write of ours could land
//! after theirs.
//!
//! The consumer's heartbeat cancels the lease; the copy engine runs every
//! job under it, so nothing starts after the loss and what is in flight is
//! dropped (a PUT whose body was not all sent is not stored; a multipart
//! upload is left for the new owner to resume). `sync` in-process holds no
//! message and runs under [`Lease::unbounded`].

use tokio_util::sync::CancellationToken;

use crate::error::CopyError;

#[derive(Debug, Clone, Default)]
pub struct Lease {
    lost: CancellationToken,
    max_object_size: Option<u64>,
}

impl Lease {
    /// A lease that ends when `lost` is cancelled, and cannot last long
    /// enough to copy objects larger than `max_object_size`.
    pub fn new(lost: CancellationToken, max_object_size: Option<u64>) -> Lease {
        Lease {
            lost,
            max_object_size,
        }
    }

    /// The largest object a job under this lease can copy in time.
    pub fn max_object_size(&self) -> Option<u64> {
        self.max_object_size
    }

    /// A lease nobody revokes (`sync` in-process, tests).
    pub fn unbounded() -> Lease {
        Lease::default()
    }

    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Runs `work` while the lease holds; if it is lost first, `work` is
    /// dropped where it stands and the result is [`CopyError::lease_lost`].
    pub async fn hold<T>(
        &self,
        work: impl Future<Output = Result<T, CopyError>>,
    ) -> Result<T, CopyError> {
        if self.is_lost() {
            return Err(CopyError::lease_lost());
        }
        tokio::select! {
            biased;
            () = self.lost.cancelled() => Err(CopyError::lease_lost()),
            result = work => result,
        }
    }
}
