//! CloudEvents as Aliyun EventBridge delivers OSS events: structured JSON
//! whose `data` is one OSS event (not wrapped in `events`); a JSON array of
//! such events (batched delivery) is accepted too.

use ossbridge_message::OssEvent;
use serde::Deserialize;

use super::BodyError;

#[derive(Deserialize)]
struct CloudEvent {
    #[allow(dead_code)]
    specversion: String,
    data: OssEvent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Box<CloudEvent>),
    Many(Vec<CloudEvent>),
}

pub fn decode(body: &[u8]) -> Result<Vec<OssEvent>, BodyError> {
    // Parse as a value first so a malformed single event reports serde's
    // precise reason rather than "did not match any variant".
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BodyError::json("a CloudEvent", &e))?;
    let parsed = if value.is_array() {
        serde_json::from_value::<Vec<CloudEvent>>(value).map(OneOrMany::Many)
    } else {
        serde_json::from_value::<CloudEvent>(value).map(|e| OneOrMany::One(Box::new(e)))
    };
    match parsed.map_err(|e| BodyError::json("a CloudEvent with an OSS event as data", &e))? {
        OneOrMany::One(event) => Ok(vec![event.data]),
        OneOrMany::Many(events) => Ok(events.into_iter().map(|e| e.data).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/eventbridge/cloudevent-put.json");

    #[test]
    fn the_eventbridge_fixture_yields_its_one_event() {
        let events = decode(FIXTURE.as_bytes()).expect("decodes");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].oss.object.key, "photos/2026/11/20/IMG_0042.jpg");
        let batch = format!("[{FIXTURE},{FIXTURE}]");
        assert_eq!(decode(batch.as_bytes()).expect("batch").len(), 2);
    }

    #[test]
    fn non_oss_data_is_refused_with_the_reason() {
        let err = decode(br#"{"specversion":"1.0","data":{"hello":1}}"#).expect_err("not OSS");
        assert!(err.to_string().contains("missing field"), "{err}");
        assert!(decode(b"{").is_err());
    }
}
