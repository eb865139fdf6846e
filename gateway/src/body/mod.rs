//! Verified bodies → OSS events, per source body format.

mod cloudevents;
mod mns;

use ossbridge_message::{OssEvent, OssNotification};

pub use mns::{MnsPolicy, Refusal};

use crate::config::BodyFormat;
use crate::verify::Verified;

/// A verified body that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not the source's body format; the reason names the position or
    /// field in the sender's own body.
    #[error("{0}")]
    Malformed(String),
    /// Authentic, but from a sender this source does not accept (another
    /// account's MNS topic).
    #[error(transparent)]
    Forbidden(Refusal),
}

impl BodyError {
    fn json(what: &str, e: &serde_json::Error) -> BodyError {
        BodyError::Malformed(format!("body is not {what}: {e}"))
    }
}

/// The OSS events in a verified body.
pub fn decode(
    format: BodyFormat,
    verified: &Verified,
    mns_policy: Option<&MnsPolicy>,
) -> Result<Vec<OssEvent>, BodyError> {
    match format {
        BodyFormat::OssEvents => oss_events(verified.body()),
        BodyFormat::Cloudevents => cloudevents::decode(verified.body()),
        BodyFormat::Mns => {
            let policy = mns_policy.ok_or(BodyError::Forbidden(Refusal::NoPolicy))?;
            mns::decode(verified, policy)
        }
    }
}

/// `{"events":[...]}`.
pub fn oss_events(body: &[u8]) -> Result<Vec<OssEvent>, BodyError> {
    serde_json::from_slice::<OssNotification>(body)
        .map(|n| n.events)
        .map_err(|e| BodyError::json("an OSS event notification", &e))
}
