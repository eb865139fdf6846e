//! MNS push bodies, by the subscription's NotifyContentFormat: an XML
//! `<Notification>` or its JSON twin (TopicOwner, TopicName, MessageId,
//! MessageMD5, Message, ...), built by MNS; or SIMPLIFIED, the publisher's
//! message alone, verbatim. The message is the OSS event notification,
//! base64.
//!
//! Because a SIMPLIFIED body is whatever the publisher wrote, it is never
//! read as a Notification: anyone can publish `<Notification>` text with
//! our TopicOwner to a topic of their own. Who sent a push is taken from
//! the signed `x-mns-topic-owner` / `x-mns-topic-name` headers when MNS
//! sends them (it does for SIMPLIFIED), and a Notification's own fields
//! must agree with them.
//!
//! XML is read with quick-xml's event reader, strictly in shape (the root
//! is `<Notification>`, fields are its direct children, none twice) but
//! without matching end-tag names: Aliyun's own documented example is not
//! well-formed in that way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use ossbridge_message::OssEvent;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde::Deserialize;

use super::{BodyError, oss_events};
use crate::config::{NotifyFormat, VerifierConfig};
use crate::verify::{PushFacts, Verified};

/// Which MNS topics a source accepts, and how its pushes are written.
#[derive(Debug, Clone, Default)]
pub struct MnsPolicy {
    pub topic_owners: Vec<String>,
    pub topics: Vec<String>,
    /// The subscription's NotifyContentFormat; `None` tells it from the
    /// signed Content-Type (`text/plain` is SIMPLIFIED) and the body.
    pub format: Option<NotifyFormat>,
}

impl MnsPolicy {
    /// The policy of an `mns` verifier; `None` for other verifiers.
    pub fn of(verifier: &VerifierConfig) -> Option<MnsPolicy> {
        match verifier {
            VerifierConfig::Mns {
                topic_owners,
                topics,
                notify_content_format,
                ..
            } => Some(MnsPolicy {
                topic_owners: topic_owners.clone(),
                topics: topics.clone(),
                format: *notify_content_format,
            }),
            _ => None,
        }
    }
}

/// Why an authentic push is not accepted from its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("topic owner not allowed")]
    OwnerNotAllowed,
    #[error("push does not name its topic owner (signed x-mns-topic-owner)")]
    OwnerUnknown,
    #[error("signed x-mns-topic-owner disagrees with the body's TopicOwner")]
    OwnerMismatch,
    #[error("topic not allowed")]
    TopicNotAllowed,
    #[error("signed x-mns-topic-name disagrees with the body's TopicName")]
    TopicMismatch,
    #[error("this source accepts pushes only with its url_token over HTTPS")]
    TokenRequired,
    #[error("source has no MNS policy")]
    NoPolicy,
}

impl Refusal {
    /// A stable metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::OwnerNotAllowed | Refusal::OwnerUnknown => "topic_owner",
            Refusal::OwnerMismatch | Refusal::TopicMismatch => "header_body_mismatch",
            Refusal::TopicNotAllowed => "topic",
            Refusal::TokenRequired => "url_token",
            Refusal::NoPolicy => "policy",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Notification {
    #[serde(default)]
    topic_owner: Option<String>,
    #[serde(default)]
    topic_name: Option<String>,
    #[serde(default, rename = "MessageMD5")]
    message_md5: String,
    message: String,
}

pub fn decode(verified: &Verified, policy: &MnsPolicy) -> Result<Vec<OssEvent>, BodyError> {
    let facts = verified.mns();
    let text = std::str::from_utf8(verified.body())
        .map_err(|_| BodyError::Malformed("MNS body is not UTF-8".into()))?
        .trim_start_matches('\u{feff}')
        .trim();
    let format = policy.format.unwrap_or(if facts.plain_text {
        NotifyFormat::Simplified
    } else if text.starts_with('<') {
        NotifyFormat::Xml
    } else if text.starts_with('{') {
        NotifyFormat::Json
    } else {
        NotifyFormat::Simplified
    });
    let message = match format {
        NotifyFormat::Xml | NotifyFormat::Json => {
            let n = if format == NotifyFormat::Xml {
                from_xml(text)?
            } else {
                serde_json::from_str::<Notification>(text)
                    .map_err(|e| BodyError::json("an MNS JSON notification", &e))?
            };
            authorize(
                policy,
                facts,
                n.topic_owner.as_deref(),
                n.topic_name.as_deref(),
            )?;
            if !n.message_md5.is_empty()
                && !hex::encode(Md5::digest(n.message.as_bytes()))
                    .eq_ignore_ascii_case(&n.message_md5)
            {
                return Err(BodyError::Malformed(
                    "MessageMD5 does not match Message".into(),
                ));
            }
            n.message
        }
        NotifyFormat::Simplified => {
            authorize(policy, facts, None, None)?;
            text.to_owned()
        }
    };
    let decoded = STANDARD
        .decode(message.trim())
        .map_err(|_| BodyError::Malformed("MNS message is not base64".into()))?;
    oss_events(&decoded)
}

/// Whether the push's sender may use this source. `body_owner` and
/// `body_topic` come from an MNS-built Notification, never from a
/// SIMPLIFIED body.
fn authorize(
    policy: &MnsPolicy,
    facts: &PushFacts,
    body_owner: Option<&str>,
    body_topic: Option<&str>,
) -> Result<(), BodyError> {
    let forbid = |r: Refusal| Err(BodyError::Forbidden(r));
    let signed_owner = facts.topic_owner.as_deref();
    let signed_topic = facts.topic_name.as_deref();
    if let (Some(h), Some(b)) = (signed_owner, body_owner)
        && h != b
    {
        return forbid(Refusal::OwnerMismatch);
    }
    if let (Some(h), Some(b)) = (signed_topic, body_topic)
        && h != b
    {
        return forbid(Refusal::TopicMismatch);
    }
    // Older XML pushes carry no x-mns-topic-* headers; their body was
    // written by MNS, so its TopicOwner is MNS's word too.
    let owner = signed_owner.or(body_owner);
    let topic = signed_topic.or(body_topic);
    if policy.topic_owners.is_empty() {
        // Configuration guarantees a url_token in that case.
        if !facts.url_token_checked {
            return forbid(Refusal::TokenRequired);
        }
    } else {
        match owner {
            Some(o) if policy.topic_owners.iter().any(|a| a == o) => {}
            Some(_) => return forbid(Refusal::OwnerNotAllowed),
            // A replayed SIMPLIFIED message: the operator vouches for it.
            None if facts.operator_input => {}
            None => return forbid(Refusal::OwnerUnknown),
        }
    }
    if !policy.topics.is_empty() {
        match topic {
            Some(t) if policy.topics.iter().any(|a| a == t) => {}
            None if facts.operator_input => {}
            _ => return forbid(Refusal::TopicNotAllowed),
        }
    }
    Ok(())
}

/// The Notification's fields: direct children of a `<Notification>` root,
/// each at most once, text only.
fn from_xml(text: &str) -> Result<Notification, BodyError> {
    let malformed = |what: String| BodyError::Malformed(what);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = false;
    let mut n = Notification::default();
    let mut seen: Vec<&'static str> = Vec::new();
    // The field whose text is being read, if at depth 2.
    let mut field: Option<&'static str> = None;
    let mut value = String::new();
    let mut depth = 0usize;
    let mut had_root = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            malformed(format!(
                "body is not an MNS XML notification: {e} at byte {}",
                reader.error_position()
            ))
        })?;
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name();
                match depth {
                    1 if had_root => {
                        return Err(malformed("MNS XML has more than one root".into()));
                    }
                    1 if name.as_ref() != b"Notification" => {
                        return Err(malformed("MNS XML root is not <Notification>".into()));
                    }
                    1 => had_root = true,
                    2 => {
                        field = FIELDS
                            .iter()
                            .copied()
                            .find(|f| f.as_bytes() == name.as_ref());
                        if let Some(f) = field {
                            if seen.contains(&f) {
                                return Err(malformed(format!("MNS XML has <{f}> twice")));
                            }
                            seen.push(f);
                            value.clear();
                        }
                    }
                    _ => {
                        if let Some(f) = field {
                            return Err(malformed(format!("MNS XML <{f}> holds an element")));
                        }
                    }
                }
            }
            Event::Empty(_) if depth == 0 => {
                return Err(malformed(if had_root {
                    "MNS XML has more than one root".into()
                } else {
                    "MNS notification has no Message".into()
                }));
            }
            Event::Empty(e) if depth == 1 => {
                if let Some(f) = FIELDS
                    .iter()
                    .copied()
                    .find(|f| f.as_bytes() == e.local_name().as_ref())
                {
                    if seen.contains(&f) {
                        return Err(malformed(format!("MNS XML has <{f}> twice")));
                    }
                    seen.push(f);
                    set(&mut n, f, String::new());
                }
            }
            Event::Text(t) if depth == 2 && field.is_some() => {
                value.push_str(
                    &t.decode()
                        .map_err(|_| malformed("MNS XML text is not UTF-8".into()))?,
                );
            }
            Event::CData(t) if depth == 2 && field.is_some() => {
                value.push_str(
                    std::str::from_utf8(&t)
                        .map_err(|_| malformed("MNS XML text is not UTF-8".into()))?,
                );
            }
            Event::GeneralRef(r) if depth == 2 && field.is_some() => {
                let name = r
                    .decode()
                    .map_err(|_| malformed("MNS XML text is not UTF-8".into()))?;
                let c = match name.as_ref() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    other => {
                        return Err(malformed(format!(
                            "MNS XML has an unknown entity &{other};"
                        )));
                    }
                };
                value.push(c);
            }
            Event::End(_) => {
                if depth == 2
                    && let Some(f) = field.take()
                {
                    set(&mut n, f, value.trim().to_owned());
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen.contains(&"Message") {
        return Err(malformed("MNS notification has no Message".into()));
    }
    Ok(n)
}

/// The Notification children read; others (Subscriber, MessageId,
/// PublishTime, SigningCertURL, ...) are skipped.
const FIELDS: [&str; 4] = ["TopicOwner", "TopicName", "MessageMD5", "Message"];

fn set(n: &mut Notification, field: &str, value: String) {
    match field {
        "TopicOwner" => n.topic_owner = Some(value),
        "TopicName" => n.topic_name = Some(value),
        "MessageMD5" => n.message_md5 = value,
        _ => n.message = value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = include_str!("../../../tests/fixtures/mns/push-xml.xml");
    const JSON: &str = include_str!("../../../tests/fixtures/mns/push-json.json");
    const OWNER: &str = "1148930107246818";

    fn owners() -> MnsPolicy {
        MnsPolicy {
            topic_owners: vec![OWNER.into()],
            ..MnsPolicy::default()
        }
    }

    fn signed(owner: Option<&str>, topic: Option<&str>) -> PushFacts {
        PushFacts {
            topic_owner: owner.map(str::to_owned),
            topic_name: topic.map(str::to_owned),
            ..PushFacts::default()
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
            assert_eq!(n.topic_owner.as_deref(), Some(OWNER));
            let owner = n.topic_owner.as_deref();
            assert!(authorize(&owners(), &signed(None, None), owner, None).is_ok());
            let other = MnsPolicy {
                topic_owners: vec!["42".into()],
                ..MnsPolicy::default()
            };
            let token = PushFacts {
                url_token_checked: true,
                ..PushFacts::default()
            };
            assert!(authorize(&other, &token, owner, None).is_err());
            let decoded = STANDARD.decode(&n.message).expect("b64");
            assert_eq!(oss_events(&decoded).expect("events").len(), 1);
        }
    }

    #[test]
    fn signed_headers_decide_and_the_body_must_agree() {
        let p = MnsPolicy {
            topics: vec!["oss-events".into()],
            ..owners()
        };
        let refused = |facts: PushFacts, owner, topic| match authorize(&p, &facts, owner, topic) {
            Err(BodyError::Forbidden(r)) => Some(r),
            _ => None,
        };
        let ok = signed(Some(OWNER), Some("oss-events"));
        assert_eq!(refused(ok.clone(), Some(OWNER), Some("oss-events")), None);
        // SIMPLIFIED: only the headers speak.
        assert_eq!(refused(ok.clone(), None, None), None);
        assert_eq!(
            refused(signed(Some("42"), Some("oss-events")), None, None),
            Some(Refusal::OwnerNotAllowed)
        );
        assert_eq!(
            refused(signed(Some("42"), Some("oss-events")), Some(OWNER), None),
            Some(Refusal::OwnerMismatch)
        );
        assert_eq!(
            refused(ok.clone(), Some(OWNER), Some("other")),
            Some(Refusal::TopicMismatch)
        );
        assert_eq!(
            refused(signed(Some(OWNER), Some("other")), None, None),
            Some(Refusal::TopicNotAllowed)
        );
        // Nothing says who sent it: neither headers nor an MNS-built body.
        assert_eq!(
            refused(signed(None, None), None, None),
            Some(Refusal::OwnerUnknown)
        );
        // A token does not stand in for an owner the source requires.
        let token_only = PushFacts {
            url_token_checked: true,
            ..signed(None, None)
        };
        assert_eq!(refused(token_only, None, None), Some(Refusal::OwnerUnknown));
    }

    #[test]
    fn a_token_only_source_needs_the_token_over_https() {
        let p = MnsPolicy::default();
        let clear = signed(Some(OWNER), None);
        assert!(matches!(
            authorize(&p, &clear, None, None),
            Err(BodyError::Forbidden(Refusal::TokenRequired))
        ));
        let token = PushFacts {
            url_token_checked: true,
            ..clear
        };
        assert!(authorize(&p, &token, None, None).is_ok());
    }

    #[test]
    fn xml_fields_are_direct_children_of_notification_read_once() {
        let sloppy = "<Notification><TopicOwner>1</TopicOwner><Message>eyJldmVudHMiOltdfQ==</Mesage></Notification>";
        assert_eq!(
            from_xml(sloppy)
                .expect("end-tag names are not matched")
                .message,
            "eyJldmVudHMiOltdfQ=="
        );
        let nested = "<Notification><Wrapper><TopicOwner>1148930107246818</TopicOwner></Wrapper>\
                      <TopicOwner>42</TopicOwner><Message>e30=</Message></Notification>";
        assert_eq!(
            from_xml(nested)
                .expect("nested ignored")
                .topic_owner
                .as_deref(),
            Some("42")
        );
        let entity =
            "<Notification><TopicName>a&amp;b</TopicName><Message>e30=</Message></Notification>";
        assert_eq!(
            from_xml(entity).expect("entity").topic_name.as_deref(),
            Some("a&b")
        );
        for (body, why) in [
            (
                "<Notification><TopicOwner>1</TopicOwner><TopicOwner>2</TopicOwner><Message>e30=</Message></Notification>",
                "<TopicOwner> twice",
            ),
            (
                "<Notification><Message>e30=</Message><Message>e30=</Message></Notification>",
                "<Message> twice",
            ),
            (
                "<Notification><TopicOwner><b>1</b></TopicOwner><Message>e30=</Message></Notification>",
                "holds an element",
            ),
            (
                "<Other><TopicOwner>1</TopicOwner><Message>e30=</Message></Other>",
                "root is not <Notification>",
            ),
            (
                "<Notification><Message>e30=</Message></Notification><Notification/>",
                "more than one root",
            ),
            (
                "<Notification><TopicOwner>1</TopicOwner></Notification>",
                "no Message",
            ),
            ("<Notification/>", "no Message"),
            (
                "<Notification><Wrapper><Message>e30=</Message></Wrapper></Notification>",
                "no Message",
            ),
        ] {
            match from_xml(body) {
                Err(BodyError::Malformed(m)) => assert!(m.contains(why), "{m:?} for {body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn json_notifications_refuse_duplicate_fields() {
        let twice = r#"{"TopicOwner":"1","TopicOwner":"2","Message":"e30="}"#;
        assert!(serde_json::from_str::<Notification>(twice).is_err());
    }
}
