//! The contract between the ossbridge gateway and transfer service: the
//! OSS event notifications the gateway accepts and the queue message both
//! sides exchange over SQS.

pub mod oss_event;
pub mod queue_message;

pub use oss_event::{EventAction, OssEvent, OssNotification};
pub use queue_message::{
    CONTRACT_VERSION, ContractError, Operation, QueueMessage, idempotency_key,
};
