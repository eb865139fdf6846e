//! Verified OSS event notifications → queue messages.

use ossbridge_message::{EventAction, OssNotification, QueueMessage};

use crate::verify::Verified;

/// What one request's events became.
#[derive(Debug, Default)]
pub struct Normalized {
    /// Messages to enqueue, in the order of the events.
    pub messages: Vec<QueueMessage>,
    /// Events accepted but not forwarded (part uploads, downloads, deletes
    /// while delete propagation is off, ...).
    pub ignored: usize,
}

/// A verified body that is not an OSS event notification.
#[derive(Debug, thiserror::Error)]
#[error("body is not an OSS event notification: {reason}")]
pub struct NormalizeError {
    reason: String,
}

/// Parses the verified body and builds one message per event that changes
/// the destination. Keys are passed through exactly as OSS sent them.
pub fn normalize(verified: &Verified) -> Result<Normalized, NormalizeError> {
    let notification: OssNotification =
        serde_json::from_slice(verified.body()).map_err(|e| NormalizeError {
            // serde's message names the field and position in the sender's
            // own body; nothing of ours is in it.
            reason: e.to_string(),
        })?;
    let mut normalized = Normalized::default();
    for event in &notification.events {
        match event.action() {
            // Deletes are not forwarded: a Data Transfer Hub worker fleet
            // reading this queue would treat them as copies.
            EventAction::Ignore | EventAction::Delete => normalized.ignored += 1,
            EventAction::Copy => match QueueMessage::from_oss_event(event, verified.source()) {
                Some(message) => normalized.messages.push(message),
                None => normalized.ignored += 1,
            },
        }
    }
    Ok(normalized)
}
