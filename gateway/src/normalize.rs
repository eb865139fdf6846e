//! OSS events → queue messages: the event-name table, delete propagation
//! and the source's filters. Keys pass through exactly as OSS sent them.

use std::sync::Arc;

use ossbridge_message::{EventAction, OssEvent, QueueMessage, canonical_event_name};

use crate::config::{FilterConfig, SourceConfig};
use crate::telemetry;

/// What one request's events became.
#[derive(Debug, Default)]
pub struct Normalized {
    /// Messages to enqueue, in the order of the events.
    pub messages: Vec<QueueMessage>,
    /// Events that change nothing at the destination (part uploads,
    /// downloads, restores) or deletes while delete propagation is off.
    pub ignored: usize,
    /// Events a filter excluded.
    pub filtered: usize,
}

/// One source's normalization rules.
#[derive(Debug)]
pub struct Normalizer {
    source_id: Arc<str>,
    propagate_deletes: bool,
    filter: FilterConfig,
}

impl Normalizer {
    pub fn new(source_id: Arc<str>, config: &SourceConfig) -> Normalizer {
        let mut filter = config.filter.clone();
        for name in &mut filter.event_names {
            *name = canonical_event_name(name).to_owned();
        }
        Normalizer {
            source_id,
            propagate_deletes: config.propagate_deletes,
            filter,
        }
    }

    pub fn normalize(&self, events: &[OssEvent]) -> Normalized {
        let mut out = Normalized::default();
        for event in events {
            let action = event.action();
            let counted = match action {
                EventAction::Delete if !self.propagate_deletes => {
                    out.ignored += 1;
                    "ignored"
                }
                EventAction::Ignore => {
                    out.ignored += 1;
                    "ignored"
                }
                _ if !self.passes(event) => {
                    out.filtered += 1;
                    "filtered"
                }
                _ => match QueueMessage::from_oss_event(event, &self.source_id) {
                    Some(message) => {
                        out.messages.push(message);
                        action.as_str()
                    }
                    None => {
                        out.ignored += 1;
                        "ignored"
                    }
                },
            };
            telemetry::event_seen(event.name(), counted);
        }
        out
    }

    fn passes(&self, event: &OssEvent) -> bool {
        let f = &self.filter;
        let key = &event.oss.object.key;
        (f.buckets.is_empty() || f.buckets.iter().any(|b| b == &event.oss.bucket.name))
            && (f.event_names.is_empty() || f.event_names.iter().any(|n| n == event.name()))
            && (f.include_prefixes.is_empty()
                || f.include_prefixes
                    .iter()
                    .any(|p| key.starts_with(p.as_str())))
            && !f
                .exclude_prefixes
                .iter()
                .any(|p| key.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossbridge_message::OssNotification;

    fn events(list: &[(&str, &str, &str)]) -> Vec<OssEvent> {
        let events: Vec<serde_json::Value> = list
            .iter()
            .map(|(name, bucket, key)| {
                serde_json::json!({"eventName": name, "oss": {"bucket": {"name": bucket},
                    "object": {"key": key, "size": 1, "eTag": "E"}}})
            })
            .collect();
        let n: OssNotification =
            serde_json::from_value(serde_json::json!({ "events": events })).expect("events");
        n.events
    }

    fn normalizer(toml: &str) -> Normalizer {
        let config: SourceConfig = ossbridge_runtime::parse_toml(&format!(
            "queue_url = \"http://127.0.0.1:1/q\"\n{toml}\n[verifier]\ntype = \"api_key\"\nkeys = [\"k\"]\n"
        ))
        .expect("config");
        Normalizer::new(Arc::from("s"), &config)
    }

    #[test]
    fn deletes_are_forwarded_only_when_propagation_is_on() {
        let input = events(&[
            ("ObjectRemoved:DeleteObject", "b", "k"),
            ("ObjectCreated:PutObject", "b", "k"),
            ("ObjectCreated:UploadPart", "b", "k"),
        ]);
        let off = normalizer("").normalize(&input);
        assert_eq!((off.messages.len(), off.ignored), (1, 2));
        let on = normalizer("propagate_deletes = true").normalize(&input);
        assert_eq!((on.messages.len(), on.ignored), (2, 1));
        assert_eq!(on.messages[0].op, ossbridge_message::Operation::Delete);
    }

    #[test]
    fn filters_on_bucket_prefix_and_event_name() {
        let n = normalizer(
            "[filter]\nbuckets = [\"b\"]\ninclude_prefixes = [\"photos/\", \"video/\"]\n\
             exclude_prefixes = [\"photos/tmp/\"]\nevent_names = [\"oss:ObjectCreated:PutObject\"]",
        );
        let out = n.normalize(&events(&[
            ("ObjectCreated:PutObject", "b", "photos/a.jpg"),
            ("oss:ObjectCreated:PutObject", "b", "video/a.mp4"),
            ("ObjectCreated:PutObject", "other", "photos/a.jpg"),
            ("ObjectCreated:PutObject", "b", "photos/tmp/a.jpg"),
            ("ObjectCreated:PutObject", "b", "docs/a.pdf"),
            ("ObjectCreated:CopyObject", "b", "photos/b.jpg"),
        ]));
        let keys: Vec<&str> = out.messages.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["photos/a.jpg", "video/a.mp4"]);
        assert_eq!(out.filtered, 4);
    }
}
