//! SQS batching for every ossbridge component, in one place: the gateway's
//! enqueue, `sync --enqueue`, the worker's deletes and the DLQ redrive.
//!
//! - [`limits`]: SQS's entry, byte and id limits.
//! - [`fifo`]: FIFO queues, and the group and deduplication ids of a
//!   message on one.
//! - [`Entry`]: one message to send (body, attributes, FIFO ids), its size
//!   as SQS counts it, and copies of received messages.
//! - [`Batcher`]: coalesces entries from many tasks into batch calls, each
//!   entry with its own result, failed entries retried; as
//!   [`BatchSender`] (SendMessageBatch) and [`BatchDeleter`]
//!   (DeleteMessageBatch), configured by [`BatchSettings`] and watched
//!   through a [`BatchObserver`].
//! - [`BatchError`]: how an entry fails, and whether to try again.

mod batcher;
mod call;
mod delete;
mod entry;
mod error;
pub mod fifo;
pub mod limits;
mod observer;
mod packing;
mod send;
mod settings;

pub use batcher::{Batcher, Completion};
pub use call::{BatchCall, EntryOutcome};
pub use delete::{BatchDeleter, DeleteMessages};
pub use entry::{Entry, request_copy_attributes};
pub use error::BatchError;
pub use observer::{BatchObserver, CallOutcome, CallReport, NoObserver};
pub use send::{BatchSender, SendMessages};
pub use settings::BatchSettings;
