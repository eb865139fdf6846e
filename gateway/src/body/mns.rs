//! MNS push bodies: an XML `<Notification>` or its JSON twin (TopicOwner,
//! TopicName, MessageId, MessageMD5, Message, ...), or SIMPLIFIED (the
//! message alone). The message is the OSS event notification, base64.
//!
//! XML is read with quick-xml's event reader, taking the text of the
//! elements we need wherever they are and without checking end tags:
//! Aliyun's own documented example is not well-formed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use ossbridge_message::OssEvent;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde::Deserialize;

use super::{BodyError, oss_events};
use crate::verify::Verified;

/// Which MNS topics a source accepts.
#[derive(Debug, Clone, Default)]
pub struct MnsPolicy {
    pub topic_owners: Vec<String>,
    pub topics: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Notification {
    #[serde(default)]
    topic_owner: String,
    #[serde(default)]
    topic_name: String,
    #[serde(default, rename = "MessageMD5")]
    message_md5: String,
    message: String,
}

pub fn decode(verified: &Verified, policy: &MnsPolicy) -> Result<Vec<OssEvent>, BodyError> {
    let body = verified.body();
    let text = std::str::from_utf8(body)
        .map_err(|_| BodyError::Malformed("MNS body is not UTF-8".into()))?
        .trim_start_matches('\u{feff}')
        .trim();
    let message = if text.starts_with('<') || text.starts_with('{') {
        let n = if text.starts_with('<') {
            from_xml(text)?
        } else {
            serde_json::from_str::<Notification>(text)
                .map_err(|e| BodyError::json("an MNS JSON notification", &e))?
        };
        authorize(&n, policy, verified.url_token_checked())?;
        if !n.message_md5.is_empty()
            && !hex::encode(Md5::digest(n.message.as_bytes())).eq_ignore_ascii_case(&n.message_md5)
        {
            return Err(BodyError::Malformed(
                "MessageMD5 does not match Message".into(),
            ));
        }
        n.message
    } else {
        // SIMPLIFIED: nothing in the request says which topic sent it.
        if !verified.url_token_checked() {
            return Err(BodyError::Forbidden(
                "SIMPLIFIED pushes are accepted only with the source's url_token",
            ));
        }
        text.to_owned()
    };
    let decoded = STANDARD
        .decode(message.trim())
        .map_err(|_| BodyError::Malformed("MNS message is not base64".into()))?;
    oss_events(&decoded)
}

fn authorize(
    n: &Notification,
    policy: &MnsPolicy,
    url_token_checked: bool,
) -> Result<(), BodyError> {
    if policy.topic_owners.is_empty() {
        // Configuration guarantees a url_token in that case.
        if !url_token_checked {
            return Err(BodyError::Forbidden("topic owner not allowed"));
        }
    } else if !policy.topic_owners.iter().any(|o| o == &n.topic_owner) {
        return Err(BodyError::Forbidden("topic owner not allowed"));
    }
    if !policy.topics.is_empty() && !policy.topics.iter().any(|t| t == &n.topic_name) {
        return Err(BodyError::Forbidden("topic not allowed"));
    }
    Ok(())
}

fn from_xml(text: &str) -> Result<Notification, BodyError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = false;
    let mut n = Notification::default();
    let mut current: Option<Vec<u8>> = None;
    let mut saw_message = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => current = Some(e.local_name().as_ref().to_vec()),
            Ok(Event::Text(t)) => {
                let value = t
                    .decode()
                    .map_err(|_| BodyError::Malformed("MNS XML text is not UTF-8".into()))?;
                let value = value.trim().to_owned();
                match current.as_deref() {
                    Some(b"TopicOwner") => n.topic_owner = value,
                    Some(b"TopicName") => n.topic_name = value,
                    Some(b"MessageMD5") => n.message_md5 = value,
                    Some(b"Message") => {
                        n.message = value;
                        saw_message = true;
                    }
                    _ => {}
                }
            }
            Ok(Event::End(_)) => current = None,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(BodyError::Malformed(format!(
                    "body is not an MNS XML notification: {e} at byte {}",
                    reader.error_position()
                )));
            }
        }
    }
    if !saw_message {
        return Err(BodyError::Malformed(
            "MNS notification has no Message".into(),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = include_str!("../../../tests/fixtures/mns/push-xml.xml");
    const JSON: &str = include_str!("../../../tests/fixtures/mns/push-json.json");

    fn owners() -> MnsPolicy {
        MnsPolicy {
            topic_owners: vec!["1148930107246818".into()],
            topics: vec![],
        }
    }

    #[test]
    fn xml_and_json_fixtures_carry_the_put_event() {
        for body in [XML, JSON] {
            let n = if body.starts_with('<') {
                from_xml(body).expect("xml")
            } else {
                serde_json::from_str(body).expect("json")
            };
            assert_eq!(n.topic_owner, "1148930107246818");
            assert!(authorize(&n, &owners(), false).is_ok());
            let other = MnsPolicy {
                topic_owners: vec!["42".into()],
                topics: vec![],
            };
            assert!(authorize(&n, &other, true).is_err());
            let decoded = STANDARD.decode(&n.message).expect("b64");
            assert_eq!(oss_events(&decoded).expect("events").len(), 1);
        }
    }

    #[test]
    fn xml_is_read_leniently_but_a_missing_message_is_refused() {
        let sloppy = "<Notification><TopicOwner>1</TopicOwner><Message>eyJldmVudHMiOltdfQ==</Mesage></Notification>";
        assert_eq!(
            from_xml(sloppy).expect("lenient").message,
            "eyJldmVudHMiOltdfQ=="
        );
        assert!(from_xml("<Notification><TopicOwner>1</TopicOwner></Notification>").is_err());
    }
}
