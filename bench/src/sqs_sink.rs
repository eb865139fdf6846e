//! A benchmark sink that answers SQS's JSON protocol (`X-Amz-Target:
//! AmazonSQS.*`, `application/x-amz-json-1.0`) for the calls the gateway
//! and the Data Transfer Hub-style sender make: CreateQueue, GetQueueUrl,
//! GetQueueAttributes, SendMessage and SendMessageBatch. It keeps nothing
//! but counts and one 64-bit hash per accepted body (to tell duplicates),
//! so it costs a few microseconds per message where an emulator costs a
//! hundred: what bench/gateway.sh measures is then the sender, not SQS.
//!
//! It is a benchmark sink, never a stand-in for SQS in a test of
//! behaviour: it stores no message, has no visibility or receive, and
//! checks only what a well-behaved sender could get wrong: batch size,
//! entry ids, message sizes (SQS's limits, queue/src/limits.rs), each
//! refused as SQS would, per entry or per call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const MAX_ENTRIES: usize = 10;
const MAX_BYTES: usize = 1_048_576;
const ACCOUNT: &str = "000000000000";

#[derive(Debug, Default)]
struct Queue {
    accepted: u64,
    bodies: HashSet<u64>,
    duplicates: u64,
}

#[derive(Debug, Default)]
struct State {
    calls: BTreeMap<String, u64>,
    queues: HashMap<String, Queue>,
    refused_entries: u64,
}

#[derive(Debug, Clone)]
struct Sink {
    base: String,
    state: Arc<Mutex<State>>,
    hasher: RandomState,
}

/// Serves the sink on 127.0.0.1 (port 0: any), printing its endpoint; runs
/// until the process ends. `GET /stats` answers the counts as JSON.
pub async fn serve(port: u16) -> Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("{base}");
    let sink = Sink {
        base,
        state: Arc::default(),
        hasher: RandomState::new(),
    };
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let sink = sink.clone();
                async move { Ok::<_, hyper::Error>(sink.handle(request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn error(code: &str, message: &str) -> Response<Full<Bytes>> {
    answer(
        StatusCode::BAD_REQUEST,
        &json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": message }),
    )
}

fn md5_hex(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

impl Sink {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() == hyper::Method::GET && request.uri().path() == "/stats" {
            return answer(StatusCode::OK, &self.stats());
        }
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix("AmazonSQS."))
            .unwrap_or_default()
            .to_owned();
        let Ok(body) = request.into_body().collect().await else {
            return error("InvalidParameterValue", "unreadable body");
        };
        let Ok(input) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
            return error("InvalidParameterValue", "body is not JSON");
        };
        if let Ok(mut state) = self.state.lock() {
            *state.calls.entry(target.clone()).or_insert(0) += 1;
        }
        match target.as_str() {
            "CreateQueue" | "GetQueueUrl" => self.queue_url(&target, &input),
            "GetQueueAttributes" => self.attributes(&input),
            "SendMessage" => self.send(&input),
            "SendMessageBatch" => self.send_batch(&input),
            other => error("UnsupportedOperation", &format!("{other} is not served")),
        }
    }

    fn queue_name<'a>(&self, input: &'a Value) -> Option<&'a str> {
        input["QueueUrl"].as_str()?.rsplit('/').next()
    }

    fn queue_url(&self, target: &str, input: &Value) -> Response<Full<Bytes>> {
        let Some(name) = input["QueueName"].as_str() else {
            return error("MissingParameter", "QueueName");
        };
        let Ok(mut state) = self.state.lock() else {
            return error("InternalError", "poisoned");
        };
        if target == "CreateQueue" {
            state.queues.entry(name.to_owned()).or_default();
        } else if !state.queues.contains_key(name) {
            return error("QueueDoesNotExist", "The specified queue does not exist.");
        }
        let url = format!("{}/{ACCOUNT}/{name}", self.base);
        answer(StatusCode::OK, &json!({ "QueueUrl": url }))
    }

    fn attributes(&self, input: &Value) -> Response<Full<Bytes>> {
        let name = self.queue_name(input).unwrap_or_default();
        let Ok(state) = self.state.lock() else {
            return error("InternalError", "poisoned");
        };
        let Some(queue) = state.queues.get(name) else {
            return error("QueueDoesNotExist", "The specified queue does not exist.");
        };
        answer(
            StatusCode::OK,
            &json!({ "Attributes": {
                "ApproximateNumberOfMessages": queue.accepted.to_string(),
                "ApproximateNumberOfMessagesNotVisible": "0",
                "QueueArn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"),
            }}),
        )
    }

    /// Records an accepted body; `None` if the queue does not exist.
    fn accept(&self, queue: &str, body: &str) -> Option<()> {
        let hash = self.hasher.hash_one(body);
        let mut state = self.state.lock().ok()?;
        let queue = state.queues.get_mut(queue)?;
        queue.accepted += 1;
        if !queue.bodies.insert(hash) {
            queue.duplicates += 1;
        }
        Some(())
    }

    fn send(&self, input: &Value) -> Response<Full<Bytes>> {
        let name = self.queue_name(input).unwrap_or_default();
        let Some(body) = input["MessageBody"].as_str() else {
            return error("MissingParameter", "MessageBody");
        };
        if body.is_empty() || body.len() > MAX_BYTES {
            return error("InvalidParameterValue", "message size");
        }
        if self.accept(name, body).is_none() {
            return error("QueueDoesNotExist", "The specified queue does not exist.");
        }
        answer(
            StatusCode::OK,
            &json!({ "MessageId": uuid::Uuid::new_v4().to_string(), "MD5OfMessageBody": md5_hex(body) }),
        )
    }

    fn send_batch(&self, input: &Value) -> Response<Full<Bytes>> {
        let name = self.queue_name(input).unwrap_or_default();
        let Some(entries) = input["Entries"].as_array() else {
            return error("EmptyBatchRequest", "no Entries");
        };
        if entries.is_empty() {
            return error("EmptyBatchRequest", "no Entries");
        }
        if entries.len() > MAX_ENTRIES {
            return error("TooManyEntriesInBatchRequest", "more than 10 entries");
        }
        let mut ids = HashSet::new();
        let mut total = 0;
        for entry in entries {
            let id = entry["Id"].as_str().unwrap_or_default();
            if id.is_empty() || !ids.insert(id) {
                return error("BatchEntryIdsNotDistinct", "entry ids must be distinct");
            }
            total += entry["MessageBody"].as_str().map_or(0, str::len);
        }
        if total > MAX_BYTES {
            return error("BatchRequestTooLong", "batch payload over 1 MiB");
        }
        let (mut successful, mut failed) = (Vec::new(), Vec::new());
        for entry in entries {
            let id = entry["Id"].as_str().unwrap_or_default();
            let body = entry["MessageBody"].as_str().unwrap_or_default();
            if body.is_empty() {
                failed.push(json!({ "Id": id, "SenderFault": true, "Code": "InvalidParameterValue", "Message": "empty body" }));
                continue;
            }
            if self.accept(name, body).is_none() {
                return error("QueueDoesNotExist", "The specified queue does not exist.");
            }
            successful.push(json!({
                "Id": id,
                "MessageId": uuid::Uuid::new_v4().to_string(),
                "MD5OfMessageBody": md5_hex(body),
            }));
        }
        if let Ok(mut state) = self.state.lock() {
            state.refused_entries += failed.len() as u64;
        }
        answer(
            StatusCode::OK,
            &json!({ "Successful": successful, "Failed": failed }),
        )
    }

    fn stats(&self) -> Value {
        let Ok(state) = self.state.lock() else {
            return json!({});
        };
        let queues: BTreeMap<&str, Value> = state
            .queues
            .iter()
            .map(|(name, q)| {
                (
                    name.as_str(),
                    json!({ "accepted": q.accepted, "distinct": q.bodies.len(), "duplicates": q.duplicates }),
                )
            })
            .collect();
        json!({ "calls": state.calls, "queues": queues, "refused_entries": state.refused_entries })
    }
}
