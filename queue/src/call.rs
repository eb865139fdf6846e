//! What the batcher needs of an SQS batch operation: how big an item is,
//! what is refused before sending, and one call's per-entry outcomes.

use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::BatchResultErrorEntry;
use ossbridge_runtime::error_chain;

use crate::error::BatchError;

pub(crate) mod sealed {
    /// Only this crate's operations are batched: the batcher's retry rules
    /// rely on how SQS reports their entries.
    pub trait Sealed {}
}

/// An SQS batch operation: SendMessageBatch ([`crate::SendMessages`]) or
/// DeleteMessageBatch ([`crate::DeleteMessages`]).
pub trait BatchCall: sealed::Sealed + std::fmt::Debug + Send + Sync + 'static {
    type Item: std::fmt::Debug + Send + Sync + 'static;
    /// The SQS operation, for logs and errors.
    const OPERATION: &'static str;

    /// Bytes counted against a call's byte limit.
    fn size(item: &Self::Item) -> usize;

    /// Refuses an item that SQS would refuse, before it is queued, so that
    /// it cannot fail a whole call for the others.
    fn check(&self, item: &Self::Item) -> Result<(), BatchError>;

    /// One call with `items` (entry id = index); the outcome of each, by
    /// index. `Err` when the call itself failed.
    fn call<'a>(
        &'a self,
        items: Vec<&'a Self::Item>,
    ) -> impl Future<Output = Result<Vec<EntryOutcome>, String>> + Send + 'a;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Done,
    Failed {
        code: String,
        message: String,
        sender_fault: bool,
    },
    /// Neither in `Successful` nor in `Failed`: SQS owes an answer, so it
    /// is treated as failed, not as done.
    Unanswered,
}

/// What SQS answers to a batch call: the ids of the entries it did, and
/// those it failed.
pub(crate) trait BatchResponse {
    fn successful_ids(&self) -> impl Iterator<Item = &str>;
    fn failed_entries(&self) -> &[BatchResultErrorEntry];
}

impl BatchResponse for SendMessageBatchOutput {
    fn successful_ids(&self) -> impl Iterator<Item = &str> {
        self.successful().iter().map(|s| s.id())
    }

    fn failed_entries(&self) -> &[BatchResultErrorEntry] {
        self.failed()
    }
}

impl BatchResponse for DeleteMessageBatchOutput {
    fn successful_ids(&self) -> impl Iterator<Item = &str> {
        self.successful().iter().map(|s| s.id())
    }

    fn failed_entries(&self) -> &[BatchResultErrorEntry] {
        self.failed()
    }
}

/// Awaits a call of `n` entries (ids = indices) and reads each entry's
/// outcome from the answer; `Err` when the call itself failed.
pub(crate) async fn answered<R, E>(
    n: usize,
    sent: impl Future<Output = Result<R, E>>,
) -> Result<Vec<EntryOutcome>, String>
where
    R: BatchResponse,
    E: std::error::Error + 'static,
{
    let response = sent.await.map_err(|e| error_chain(&e))?;
    Ok(outcomes(
        n,
        response.successful_ids(),
        response.failed_entries(),
    ))
}

/// The outcomes of `n` entries whose ids are their indices, from a batch
/// response's successful ids and failed entries.
fn outcomes<'a>(
    n: usize,
    successful: impl IntoIterator<Item = &'a str>,
    failed: &[BatchResultErrorEntry],
) -> Vec<EntryOutcome> {
    let mut outcomes = vec![EntryOutcome::Unanswered; n];
    let index = |id: &str| id.parse::<usize>().ok().filter(|i| *i < n);
    for i in successful.into_iter().filter_map(index) {
        outcomes[i] = EntryOutcome::Done;
    }
    for f in failed {
        if let Some(i) = index(f.id()) {
            outcomes[i] = EntryOutcome::Failed {
                code: f.code().to_owned(),
                message: f.message().unwrap_or_default().to_owned(),
                sender_fault: f.sender_fault(),
            };
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(id: &str, code: &str, sender_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .sender_fault(sender_fault)
            .build()
            .expect("entry")
    }

    #[test]
    fn each_entry_gets_its_own_outcome_and_silence_is_not_success() {
        let got = outcomes(
            4,
            ["0", "3", "17", "x"],
            &[failed("1", "InternalError", false), failed("9", "X", true)],
        );
        assert_eq!(got[0], EntryOutcome::Done);
        assert_eq!(
            got[1],
            EntryOutcome::Failed {
                code: "InternalError".into(),
                message: String::new(),
                sender_fault: false
            }
        );
        assert_eq!(got[2], EntryOutcome::Unanswered);
        assert_eq!(got[3], EntryOutcome::Done);
    }
}
