//! Replay input: a whole document, a JSON array or NDJSON, split into
//! documents that remember where they came from, and the format of each.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// The layouts replay understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// `{"events":[...]}`.
    OssEvents,
    /// One CloudEvent (or an array) whose `data` is an OSS event.
    Cloudevents,
    /// An MNS push body: XML, JSON or SIMPLIFIED (base64).
    Mns,
    /// An ossbridge queue message.
    QueueMessage,
    /// A record of the event archive.
    Archive,
}

impl FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "oss_events" => InputFormat::OssEvents,
            "cloudevents" => InputFormat::Cloudevents,
            "mns" => InputFormat::Mns,
            "queue_message" => InputFormat::QueueMessage,
            "archive" => InputFormat::Archive,
            other => {
                return Err(format!(
                    "unknown format {other:?}: oss_events, cloudevents, mns, queue_message or archive"
                ));
            }
        })
    }
}

/// Where a document is in the input: its first line (1-based) and, for a
/// JSON array, its position in the array (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(item) => write!(f, "line {} item {item}", self.line),
            None => write!(f, "line {}", self.line),
        }
    }
}

/// One document of the input.
#[derive(Debug, Clone)]
pub struct Document {
    pub position: Position,
    /// The document's bytes as given (an array item re-serialized).
    pub text: String,
    /// The parsed JSON, when it is JSON.
    pub json: Option<Value>,
    /// The archive object it was read from (archive replay).
    pub object: Option<String>,
}

/// Splits `input`: a whole JSON document (an array is split into its
/// items), a whole XML document, or else one document per non-empty line.
pub fn split(input: &str) -> Vec<Document> {
    let trimmed = input.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    let leading = input.len() - input.trim_start().len();
    let first_line = input.get(..leading).unwrap_or("").matches('\n').count() + 1;
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return whole(value, trimmed, first_line);
    }
    if trimmed.starts_with('<') {
        return vec![Document {
            position: Position {
                line: first_line,
                item: None,
            },
            text: trimmed.to_owned(),
            json: None,
            object: None,
        }];
    }
    let mut documents = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line_text = line.trim_start_matches('\u{feff}').trim();
        if line_text.is_empty() {
            continue;
        }
        let position = Position {
            line: i + 1,
            item: None,
        };
        let json = serde_json::from_str::<Value>(line_text).ok();
        match json {
            Some(Value::Array(items)) => {
                documents.extend(array_items(items, position.line));
            }
            json => documents.push(Document {
                position,
                text: line_text.to_owned(),
                json,
                object: None,
            }),
        }
    }
    documents
}

fn whole(value: Value, text: &str, line: usize) -> Vec<Document> {
    match value {
        Value::Array(items) => array_items(items, line),
        value => vec![Document {
            position: Position { line, item: None },
            text: text.to_owned(),
            json: Some(value),
            object: None,
        }],
    }
}

fn array_items(items: Vec<Value>, line: usize) -> Vec<Document> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| Document {
            position: Position {
                line,
                item: Some(i + 1),
            },
            text: item.to_string(),
            json: Some(item),
            object: None,
        })
        .collect()
}

/// The format of a document, by its shape; `None` when it is none of them.
pub fn detect(document: &Document) -> Option<InputFormat> {
    let Some(json) = &document.json else {
        let text = document.text.as_str();
        if text.starts_with('<') {
            return Some(InputFormat::Mns);
        }
        // SIMPLIFIED MNS: the base64 message alone.
        let base64 = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        return base64.then_some(InputFormat::Mns);
    };
    let object = json.as_object()?;
    let has = |k: &str| object.contains_key(k);
    if has("ossbridgeArchive") {
        Some(InputFormat::Archive)
    } else if has("events") {
        Some(InputFormat::OssEvents)
    } else if has("specversion") {
        Some(InputFormat::Cloudevents)
    } else if has("Message") && (has("TopicOwner") || has("MessageId") || has("TopicName")) {
        Some(InputFormat::Mns)
    } else if has("idempotencyKey") && has("key") && has("bucket") {
        Some(InputFormat::QueueMessage)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_documents_arrays_and_ndjson() {
        let pretty = "\n{\n  \"events\": []\n}\n";
        let docs = split(pretty);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].position.line, 2);
        assert_eq!(detect(&docs[0]), Some(InputFormat::OssEvents));

        let array = r#"[{"events":[]},{"specversion":"1.0","data":{}}]"#;
        let docs = split(array);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].position.item, Some(2));
        assert_eq!(detect(&docs[1]), Some(InputFormat::Cloudevents));

        let ndjson = "{\"events\":[]}\n\n{oops\n{\"hello\":1}\nZXZlbnRz\n";
        let docs = split(ndjson);
        let lines: Vec<usize> = docs.iter().map(|d| d.position.line).collect();
        assert_eq!(lines, [1, 3, 4, 5]);
        assert_eq!(detect(&docs[1]), None);
        assert_eq!(detect(&docs[2]), None);
        assert_eq!(detect(&docs[3]), Some(InputFormat::Mns));
    }
}
