//! The coalescing batcher: entries submitted one by one, from many tasks,
//! leave in as few calls as SQS's limits allow, waiting at most the linger
//! for a batch to fill, with a bounded number of calls in flight.
//!
//! Every entry has its own completion, so each caller learns the fate of
//! exactly its own entries. Entries SQS reports as failed are sent again
//! (never the ones it accepted) until their attempts run out; sender faults
//! are final, and so is a call that failed as a whole (the SDK client has
//! retried it already, within the caller's deadline).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::call::{BatchCall, EntryOutcome};
use crate::error::BatchError;
use crate::observer::{BatchObserver, CallOutcome, CallReport};
use crate::packing::Batch;
use crate::settings::BatchSettings;

/// How an entry's result reaches whoever submitted it.
type Notify = Box<dyn FnOnce(Result<(), BatchError>) + Send>;

struct Pending<T> {
    item: T,
    size: usize,
    notify: Notify,
}

impl<T> Pending<T> {
    fn finish(self, result: Result<(), BatchError>) {
        (self.notify)(result);
    }
}

/// The batcher of one queue and operation ([`crate::BatchSender`],
/// [`crate::BatchDeleter`]). Cloning it is cheap; when every clone is
/// dropped, its task sends what it holds, waits for the calls in flight
/// and ends.
pub struct Batcher<C: BatchCall> {
    tx: mpsc::Sender<Pending<C::Item>>,
    pub(crate) call: Arc<C>,
}

impl<C: BatchCall> Clone for Batcher<C> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
            call: self.call.clone(),
        }
    }
}

impl<C: BatchCall> std::fmt::Debug for Batcher<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("call", &self.call).finish()
    }
}

impl<C: BatchCall> Batcher<C> {
    pub(crate) fn start(
        call: C,
        settings: &BatchSettings,
        observer: Arc<dyn BatchObserver>,
    ) -> (Batcher<C>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        let call = Arc::new(call);
        let task = tokio::spawn(run(rx, call.clone(), settings.clone(), observer));
        (Batcher { tx, call }, task)
    }

    /// Queues `item`; `notify` gets its result, once, from the batcher's
    /// task (keep it cheap: count, log, send on a channel). Waits while the
    /// batcher is full.
    pub async fn submit_with(
        &self,
        item: C::Item,
        notify: impl FnOnce(Result<(), BatchError>) + Send + 'static,
    ) {
        let pending = Pending {
            size: C::size(&item),
            item,
            notify: Box::new(notify),
        };
        if let Err(refused) = self.call.check(&pending.item) {
            return pending.finish(Err(refused));
        }
        if let Err(mpsc::error::SendError(pending)) = self.tx.send(pending).await {
            pending.finish(Err(BatchError::Stopped));
        }
    }

    /// Queues `item`; the returned [`Completion`] resolves with its result.
    /// Waits while the batcher is full.
    pub async fn submit(&self, item: C::Item) -> Completion {
        let (done, completion) = oneshot::channel();
        self.submit_with(item, move |result| {
            let _ = done.send(result);
        })
        .await;
        Completion(completion)
    }

    /// Queues every item (so they can share calls); the completions are in
    /// the items' order.
    pub async fn submit_many(&self, items: impl IntoIterator<Item = C::Item>) -> Vec<Completion> {
        let mut completions = Vec::new();
        for item in items {
            completions.push(self.submit(item).await);
        }
        completions
    }

    /// Queues every item and resolves once all are done, or with the first
    /// failure (in submission order). The caller bounds the wait.
    pub async fn submit_all(
        &self,
        items: impl IntoIterator<Item = C::Item>,
    ) -> Result<(), BatchError> {
        for completion in self.submit_many(items).await {
            completion.await?;
        }
        Ok(())
    }
}

/// The result of one submitted entry. Dropping it does not withdraw the
/// entry.
#[derive(Debug)]
#[must_use = "an entry's result is only known by awaiting its completion"]
pub struct Completion(oneshot::Receiver<Result<(), BatchError>>);

impl Future for Completion {
    type Output = Result<(), BatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(BatchError::Stopped)))
    }
}

/// What ended a wait for the next entry.
enum Wake<T> {
    Entry(Option<T>),
    CallDone,
    Linger,
}

async fn run<C: BatchCall>(
    mut rx: mpsc::Receiver<Pending<C::Item>>,
    call: Arc<C>,
    settings: BatchSettings,
    observer: Arc<dyn BatchObserver>,
) {
    let limits = settings.limits();
    let slots = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
    let mut carried: Option<Pending<C::Item>> = None;
    let mut calls = JoinSet::new();
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => break,
            },
        };
        let size = first.size;
        let mut batch = Batch::new(first, size, limits);
        let linger = tokio::time::sleep(settings.linger);
        tokio::pin!(linger);
        let nagle = !settings.linger_when_idle;
        while !batch.is_full() {
            while calls.try_join_next().is_some() {}
            let next = match rx.try_recv() {
                Ok(p) => p,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if settings.linger.is_zero() => break,
                // Nothing in flight: waiting would only delay this batch.
                Err(TryRecvError::Empty) if nagle && calls.is_empty() => break,
                Err(TryRecvError::Empty) => match tokio::select! {
                    biased;
                    next = rx.recv() => Wake::Entry(next),
                    Some(_) = calls.join_next(), if nagle => Wake::CallDone,
                    () = &mut linger => Wake::Linger,
                } {
                    Wake::Entry(Some(p)) => p,
                    Wake::Entry(None) | Wake::Linger => break,
                    // Checked again at the top: once no call is in
                    // flight, the batch leaves.
                    Wake::CallDone => continue,
                },
            };
            let size = next.size;
            if let Err(next) = batch.push(next, size) {
                carried = Some(next);
                break;
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        calls.spawn(send_batch(
            call.clone(),
            batch.into_items(),
            settings.clone(),
            observer.clone(),
            slot,
        ));
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
}

/// One batch through its calls: the first, then one per retry of the
/// entries SQS failed.
async fn send_batch<C: BatchCall>(
    call: Arc<C>,
    mut pending: Vec<Pending<C::Item>>,
    settings: BatchSettings,
    observer: Arc<dyn BatchObserver>,
    _slot: OwnedSemaphorePermit,
) {
    let operation = C::OPERATION;
    let mut delays = settings.retry_delays();
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let result = call.call(pending.iter().map(|p| &p.item).collect()).await;
        let mut report = CallReport {
            operation,
            entries: pending.len(),
            accepted: 0,
            seconds: started.elapsed().as_secs_f64(),
            outcome: CallOutcome::Error,
        };
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(detail) => {
                observer.call_finished(&report);
                tracing::warn!(event = "sqs_batch_failed", operation, entries = pending.len(), error = %detail);
                let error = BatchError::Unavailable { operation, detail };
                for p in pending {
                    p.finish(Err(error.clone()));
                }
                return;
            }
        };
        report.accepted = outcomes
            .iter()
            .filter(|o| **o == EntryOutcome::Done)
            .count();
        report.outcome = if report.accepted == pending.len() {
            CallOutcome::Ok
        } else {
            CallOutcome::Partial
        };
        observer.call_finished(&report);

        let delay = delays.next();
        let mut again = Vec::new();
        let outcomes = outcomes
            .into_iter()
            .chain(std::iter::repeat(EntryOutcome::Unanswered));
        for (p, outcome) in pending.into_iter().zip(outcomes) {
            let final_error = match outcome {
                EntryOutcome::Done => {
                    p.finish(Ok(()));
                    continue;
                }
                EntryOutcome::Failed {
                    code,
                    message,
                    sender_fault: true,
                } => BatchError::Rejected { code, message },
                _ if delay.is_some() => {
                    again.push(p);
                    continue;
                }
                EntryOutcome::Failed { code, .. } => BatchError::EntryFailed {
                    operation,
                    code,
                    attempts: attempt,
                },
                EntryOutcome::Unanswered => BatchError::EntryFailed {
                    operation,
                    code: "NotAcknowledged".to_owned(),
                    attempts: attempt,
                },
            };
            tracing::warn!(event = "sqs_entry_failed", operation, error = %final_error);
            p.finish(Err(final_error));
        }
        let Some(delay) = delay.filter(|_| !again.is_empty()) else {
            return;
        };
        tracing::warn!(
            event = "sqs_entries_retried",
            operation,
            entries = again.len(),
            attempt
        );
        observer.entries_retried(again.len());
        tokio::time::sleep(delay).await;
        attempt += 1;
        pending = again;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::call::sealed::Sealed;
    use crate::observer::NoObserver;

    /// A batch call that holds each call until the test lets it go, and
    /// records how many entries each call carried.
    #[derive(Debug)]
    struct Gated {
        gate: Arc<Semaphore>,
        started: std::sync::atomic::AtomicUsize,
        batches: Mutex<Vec<usize>>,
    }

    impl Default for Gated {
        fn default() -> Self {
            Gated {
                gate: Arc::new(Semaphore::new(0)),
                started: Default::default(),
                batches: Mutex::default(),
            }
        }
    }

    impl Sealed for Gated {}

    impl BatchCall for Gated {
        type Item = u32;
        const OPERATION: &'static str = "Test";

        fn size(_: &u32) -> usize {
            1
        }

        fn check(&self, _: &u32) -> Result<(), BatchError> {
            Ok(())
        }

        async fn call<'a>(&'a self, items: Vec<&'a u32>) -> Result<Vec<EntryOutcome>, String> {
            self.started
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Ok(permit) = self.gate.acquire().await {
                permit.forget();
            }
            self.batches
                .lock()
                .map_err(|e| e.to_string())?
                .push(items.len());
            Ok(vec![EntryOutcome::Done; items.len()])
        }
    }

    fn nagle(linger: Duration) -> BatchSettings {
        BatchSettings {
            linger,
            linger_when_idle: false,
            ..BatchSettings::default()
        }
    }

    #[tokio::test]
    async fn with_nothing_in_flight_an_entry_does_not_wait_for_the_linger() {
        let call = Gated::default();
        call.gate.add_permits(100);
        let (batcher, _task) =
            Batcher::start(call, &nagle(Duration::from_secs(60)), Arc::new(NoObserver));
        for item in 0..3 {
            // One at a time, each waiting for its answer, as a serial
            // sender does: a linger of a minute must not be paid.
            let done =
                tokio::time::timeout(Duration::from_secs(20), batcher.submit(item).await).await;
            assert!(matches!(done, Ok(Ok(()))), "entry {item}: {done:?}");
        }
        assert_eq!(*batcher.call.batches.lock().expect("batches"), [1, 1, 1]);
    }

    #[tokio::test]
    async fn entries_arriving_while_a_call_is_out_leave_together_when_it_returns() {
        let call = Gated::default();
        let gate = call.gate.clone();
        let (batcher, _task) =
            Batcher::start(call, &nagle(Duration::from_secs(60)), Arc::new(NoObserver));
        let first = batcher.submit(0).await;
        // The first call is out (held at the gate); three more arrive.
        let out = tokio::time::timeout(Duration::from_secs(20), async {
            while batcher
                .call
                .started
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(out.await.is_ok(), "the first call never started");
        let rest = batcher.submit_many([1, 2, 3]).await;
        gate.add_permits(2);
        let all = tokio::time::timeout(Duration::from_secs(20), async {
            first.await?;
            for c in rest {
                c.await?;
            }
            Ok::<_, BatchError>(())
        })
        .await;
        assert!(matches!(all, Ok(Ok(()))), "{all:?}");
        assert_eq!(*batcher.call.batches.lock().expect("batches"), [1, 3]);
    }
}
