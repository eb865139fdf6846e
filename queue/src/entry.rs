//! One message to send: body, message attributes and, for a FIFO queue,
//! its group and deduplication ids; how big SQS counts it; and the
//! SendMessageBatch entry it becomes.

use std::collections::HashMap;

use aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use ossbridge_message::QueueMessage;

use crate::fifo;

/// A message for [`crate::BatchSender`].
///
/// The FIFO ids are carried whatever the queue; the sender passes them on
/// only to a FIFO queue, because SQS refuses a deduplication id on a
/// standard one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    pub body: String,
    pub attributes: HashMap<String, MessageAttributeValue>,
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
}

impl Entry {
    pub fn new(body: impl Into<String>) -> Entry {
        Entry {
            body: body.into(),
            ..Entry::default()
        }
    }

    /// An ossbridge queue message. For a FIFO queue (`on_fifo`) it is
    /// grouped by object and deduplicated by idempotency key (see
    /// [`crate::fifo`]); a standard queue takes neither id, so none is
    /// computed (the group id is a SHA-256 per message).
    pub fn for_message(message: &QueueMessage, on_fifo: bool) -> Entry {
        Entry {
            body: message.to_body(),
            attributes: HashMap::new(),
            group_id: on_fifo.then(|| fifo::object_group_id(&message.bucket, &message.key)),
            deduplication_id: on_fifo.then(|| fifo::deduplication_id(message)),
        }
    }

    /// A copy of a received message: its body, its message attributes and
    /// its FIFO group and deduplication ids, as far as the receive asked
    /// for them (see [`request_copy_attributes`]).
    ///
    /// Sent back to the queue it came from, a FIFO queue drops the copy as
    /// a duplicate of the original for five minutes unless the copy gets a
    /// new deduplication id ([`Entry::with_deduplication_id`]).
    pub fn copy_of(message: &Message) -> Entry {
        let system = |name: MessageSystemAttributeName| {
            message
                .attributes()
                .and_then(|a| a.get(&name))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        Entry {
            body: message.body().unwrap_or_default().to_owned(),
            attributes: message.message_attributes().cloned().unwrap_or_default(),
            group_id: system(MessageSystemAttributeName::MessageGroupId),
            deduplication_id: system(MessageSystemAttributeName::MessageDeduplicationId),
        }
    }

    pub fn with_attribute(mut self, name: impl Into<String>, value: MessageAttributeValue) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }

    pub fn with_group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Replaces the deduplication id: a FIFO queue accepts a message with
    /// an id it has seen in the last five minutes, but drops it.
    pub fn with_deduplication_id(mut self, deduplication_id: impl Into<String>) -> Self {
        self.deduplication_id = Some(deduplication_id.into());
        self
    }

    /// The bytes SQS counts against its message and batch limits: the body
    /// and, for every message attribute, its name, type and value.
    pub fn size(&self) -> usize {
        let attributes: usize = self
            .attributes
            .iter()
            .map(|(name, value)| {
                name.len()
                    + value.data_type().len()
                    + value.string_value().map_or(0, str::len)
                    + value.binary_value().map_or(0, |b| b.as_ref().len())
                    + value
                        .string_list_values()
                        .iter()
                        .map(String::len)
                        .sum::<usize>()
                    + value
                        .binary_list_values()
                        .iter()
                        .map(|b| b.as_ref().len())
                        .sum::<usize>()
            })
            .sum();
        self.body.len() + attributes
    }

    /// The entry `id` of a SendMessageBatch to a queue that is (or is not)
    /// a FIFO queue.
    pub(crate) fn to_request(
        &self,
        id: usize,
        fifo: bool,
    ) -> Result<SendMessageBatchRequestEntry, String> {
        let attributes = (!self.attributes.is_empty()).then(|| self.attributes.clone());
        SendMessageBatchRequestEntry::builder()
            .id(id.to_string())
            .message_body(&self.body)
            .set_message_attributes(attributes)
            .set_message_group_id(self.group_id.clone().filter(|_| fifo))
            .set_message_deduplication_id(self.deduplication_id.clone().filter(|_| fifo))
            .build()
            .map_err(|e| e.to_string())
    }
}

/// Asks a ReceiveMessage for what [`Entry::copy_of`] copies: every message
/// attribute and the FIFO group and deduplication ids.
pub fn request_copy_attributes(
    receive: ReceiveMessageFluentBuilder,
) -> ReceiveMessageFluentBuilder {
    receive
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::primitives::Blob;

    fn string(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("attribute")
    }

    #[test]
    fn size_counts_the_body_and_every_attribute_part() {
        let binary = MessageAttributeValue::builder()
            .data_type("Binary")
            .binary_value(Blob::new(vec![0u8; 5]))
            .build()
            .expect("attribute");
        let entry = Entry::new("0123456789")
            .with_attribute("origin", string("o-1"))
            .with_attribute("raw", binary)
            .with_group_id("g")
            .with_deduplication_id("d");
        // Body 10; "origin" 6 + "String" 6 + "o-1" 3; "raw" 3 + "Binary" 6
        // + 5 bytes. The FIFO ids do not count.
        assert_eq!(entry.size(), 10 + 15 + 14);
    }

    #[test]
    fn fifo_ids_reach_only_a_fifo_queue() {
        let entry = Entry::new("b")
            .with_group_id("g")
            .with_deduplication_id("d");
        let fifo = entry.to_request(3, true).expect("entry");
        assert_eq!(fifo.id(), "3");
        assert_eq!(fifo.message_group_id(), Some("g"));
        assert_eq!(fifo.message_deduplication_id(), Some("d"));
        let standard = entry.to_request(0, false).expect("entry");
        assert_eq!(standard.message_group_id(), None);
        assert_eq!(standard.message_deduplication_id(), None);
        assert_eq!(standard.message_attributes(), None);
    }

    #[test]
    fn a_copy_keeps_body_attributes_and_fifo_ids() {
        let received = Message::builder()
            .body("{\"key\":\"k\"}")
            .message_attributes("origin", string("o-7"))
            .attributes(MessageSystemAttributeName::MessageGroupId, "group-1")
            .attributes(
                MessageSystemAttributeName::MessageDeduplicationId,
                "dedup-1",
            )
            .build();
        let copy = Entry::copy_of(&received);
        assert_eq!(copy.body, "{\"key\":\"k\"}");
        assert_eq!(copy.attributes.get("origin"), Some(&string("o-7")));
        assert_eq!(copy.group_id.as_deref(), Some("group-1"));
        assert_eq!(copy.deduplication_id.as_deref(), Some("dedup-1"));
        let handed_back = copy.with_deduplication_id("dedup-1-again");
        assert_eq!(
            handed_back.deduplication_id.as_deref(),
            Some("dedup-1-again")
        );
        // From a standard queue there is nothing to copy.
        let plain = Entry::copy_of(&Message::builder().body("x").build());
        assert_eq!((plain.group_id, plain.deduplication_id), (None, None));
    }

    #[test]
    fn a_queue_message_is_grouped_by_object_and_deduplicated_by_its_key() {
        let body = r#"{"key":"a/b","size":1,"version":1,"op":"copy","bucket":"media",
            "region":"cn-hangzhou","eTag":"e","eventName":"ObjectCreated:PutObject",
            "eventTime":"","idempotencyKey":"k-1"}"#;
        let message = QueueMessage::from_body(body).expect("message");
        let entry = Entry::for_message(&message, true);
        assert_eq!(entry.body, message.to_body());
        assert_eq!(
            entry.group_id.as_deref(),
            Some(fifo::object_group_id("media", "a/b").as_str())
        );
        assert_eq!(entry.deduplication_id.as_deref(), Some("k-1"));
        let standard = Entry::for_message(&message, false);
        assert_eq!(standard.body, message.to_body());
        assert_eq!((standard.group_id, standard.deduplication_id), (None, None));
    }
}
