//! The contract between the ossbridge gateway and transfer service: the
//! OSS event notifications the gateway accepts and the queue message both
//! sides exchange over SQS.

pub mod oss_event;
pub mod queue_message;

pub use oss_event::{
    EVENT_NAMES, EventAction, OssEvent, OssNotification, canonical_event_name, classify,
    event_name_label,
};
pub use queue_message::{
    CONTRACT_VERSION, ContractError, Operation, QueueMessage, idempotency_key,
};
