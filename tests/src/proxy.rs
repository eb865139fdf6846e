//! A fault-injecting HTTP proxy in front of the emulator: counts calls by
//! operation (`X-Amz-Target`, e.g. `AmazonSQS.SendMessageBatch`), and on
//! request adds latency, answers 503, drops connections without an answer,
//! or makes SQS report chosen entries of a SendMessageBatch or a
//! DeleteMessageBatch as failed (they are removed from the forwarded
//! request, so SQS really does not get them).
//!
//! Bodies are buffered: it is meant for API traffic, not object data.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SEND_BATCH: &str = "AmazonSQS.SendMessageBatch";
const DELETE_BATCH: &str = "AmazonSQS.DeleteMessageBatch";

#[derive(Debug, Default)]
struct Faults {
    /// Per operation (`AmazonSQS.SendMessageBatch`, ...), for each of its
    /// upcoming calls, the entry indices to fail.
    fail_entries: HashMap<&'static str, VecDeque<Vec<usize>>>,
    latency: Duration,
    /// Upcoming requests to answer with 503 without forwarding.
    unavailable: u64,
    /// Upcoming requests whose connection is dropped without an answer.
    dropped: u64,
    /// 503s and dropped connections so far.
    injected: u64,
    /// Operations answered with an error of their own instead of being
    /// forwarded: (HTTP status, SQS error code).
    refused: HashMap<String, (StatusCode, String)>,
}

#[derive(Debug)]
struct State {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    calls: Mutex<HashMap<String, u64>>,
    faults: Mutex<Faults>,
    /// SQS's five-minute FIFO deduplication window (`sqs_dedup.rs`).
    fifo: crate::sqs_dedup::DedupWindow,
}

#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            calls: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            fifo: Default::default(),
        });
        let task = spawn_http1(listener, state.clone(), handle);
        Ok(FaultProxy { addr, state, task })
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls seen for an operation, e.g. `AmazonSQS.SendMessageBatch`.
    pub fn calls(&self, target: &str) -> u64 {
        self.state
            .calls
            .lock()
            .map(|c| c.get(target).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Makes SQS report `indices` of the next SendMessageBatch as failed.
    pub fn fail_next_batch_entries(&self, indices: Vec<usize>) {
        self.fail_next_entries(SEND_BATCH, indices);
    }

    /// Makes SQS report `indices` of the next DeleteMessageBatch as failed.
    pub fn fail_next_delete_entries(&self, indices: Vec<usize>) {
        self.fail_next_entries(DELETE_BATCH, indices);
    }

    fn fail_next_entries(&self, operation: &'static str, indices: Vec<usize>) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.fail_entries
                .entry(operation)
                .or_default()
                .push_back(indices);
        }
    }

    pub fn set_latency(&self, latency: Duration) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.latency = latency;
        }
    }

    /// Answers the next `count` requests with 503 without forwarding them.
    pub fn fail_next_requests(&self, count: u64) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.unavailable = count;
        }
    }

    /// 503s answered and connections dropped so far.
    /// Answers every call of `target` (e.g.
    /// `AmazonSQS.ChangeMessageVisibility`) with `status` and the SQS error
    /// `code` (e.g. `ReceiptHandleIsInvalid`), as SQS's JSON protocol does
    /// (`__type`, and the legacy code in `x-amzn-query-error`); nothing
    /// reaches the emulator.
    pub fn refuse(&self, target: &str, status: u16, code: &str) {
        if let Ok(mut f) = self.state.faults.lock() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            f.refused
                .insert(target.to_owned(), (status, code.to_owned()));
        }
    }

    pub fn injected(&self) -> u64 {
        self.state.faults.lock().map(|f| f.injected).unwrap_or(0)
    }

    /// Drops the connection of each of the next `count` requests without
    /// answering (nor forwarding) them.
    pub fn drop_next_requests(&self, count: u64) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.dropped = count;
        }
    }
}

/// The error a handler returns to have the connection dropped.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the fault proxy")]
pub(crate) struct Dropped;

/// Serves HTTP/1.1 on `listener`, each request handled by
/// `handle(state, request)`, until the returned task is aborted. A handler
/// that returns an error makes hyper drop the connection without an
/// answer: the client sees a reset mid-request.
pub(crate) fn spawn_http1<S, F, Fut, B, E>(
    listener: TcpListener,
    state: Arc<S>,
    handle: F,
) -> JoinHandle<()>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<B>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let drop_it = state.faults.lock().is_ok_and(|mut f| {
        let hit = f.dropped > 0;
        if hit {
            f.dropped -= 1;
            f.injected += 1;
        }
        hit
    });
    if drop_it {
        return Err(Dropped);
    }
    match forward(state, request).await {
        Ok(r) => Ok(r),
        Err(e) => Ok(response(
            StatusCode::BAD_GATEWAY,
            Bytes::from(format!("proxy: {e:#}")),
        )),
    }
}

async fn forward(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>> {
    let (mut parts, body) = request.into_parts();
    let mut body = body.collect().await?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("other")
        .to_owned();
    if let Ok(mut calls) = state.calls.lock() {
        *calls.entry(target.clone()).or_insert(0) += 1;
    }
    let refused = state
        .faults
        .lock()
        .ok()
        .and_then(|f| f.refused.get(target.as_str()).cloned());
    if let Some((status, code)) = refused {
        let body = serde_json::json!({
            "__type": format!("com.amazonaws.sqs#{code}"),
            "message": "injected by the fault proxy",
        });
        let mut answer = response(status, Bytes::from(body.to_string()));
        answer
            .headers_mut()
            .insert("x-amzn-query-error", format!("{code};Sender").parse()?);
        return Ok(answer);
    }
    let (latency, unavailable, fail) = {
        let mut f = state
            .faults
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let unavailable = f.unavailable > 0;
        if unavailable {
            f.unavailable -= 1;
            f.injected += 1;
        }
        let fail = if unavailable {
            None
        } else {
            f.fail_entries
                .get_mut(target.as_str())
                .and_then(VecDeque::pop_front)
        };
        (f.latency, unavailable, fail)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if unavailable {
        return Ok(response(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(
                br#"{"__type":"ServiceUnavailable","message":"injected by the fault proxy"}"#,
            ),
        ));
    }
    let mut failed_ids = Vec::new();
    let mut forwarded = 0;
    if let Some(indices) = &fail {
        let mut json: Value = serde_json::from_slice(&body).context("batch request body")?;
        if let Some(entries) = json["Entries"].as_array_mut() {
            let mut kept = Vec::new();
            for (i, entry) in entries.drain(..).enumerate() {
                if indices.contains(&i) {
                    failed_ids.push(entry["Id"].clone());
                } else {
                    kept.push(entry);
                }
            }
            forwarded = kept.len();
            *entries = kept;
        }
        body = Bytes::from(serde_json::to_vec(&json)?);
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
    }
    let deduplicated = match state.fifo.filter(&target, body)? {
        crate::sqs_dedup::Filtered::Forward(kept, dropped) => {
            body = kept;
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            dropped
        }
        crate::sqs_dedup::Filtered::Answer(json) => return json_answer(&json),
    };
    if fail.is_some() && forwarded == 0 {
        // SQS refuses an empty batch; answer for it, as SQS would when it
        // fails every entry.
        let json = serde_json::json!({"Successful": [], "Failed": failed_entries(failed_ids)});
        return json_answer(&json);
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = format!("{}{path}", state.upstream).parse()?;
    let upstream = state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (mut parts, body) = upstream.into_parts();
    let mut body = body.collect().await?.to_bytes();
    if !deduplicated.is_empty() {
        let mut json: Value = serde_json::from_slice(&body).context("batch response")?;
        match json.get_mut("Successful").and_then(Value::as_array_mut) {
            Some(list) => list.extend(deduplicated),
            None => json["Successful"] = Value::Array(deduplicated),
        }
        body = Bytes::from(serde_json::to_vec(&json)?);
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
    }
    if !failed_ids.is_empty() {
        let mut json: Value = serde_json::from_slice(&body).context("batch response")?;
        let failed = failed_entries(failed_ids);
        match json.get_mut("Failed").and_then(Value::as_array_mut) {
            Some(list) => list.extend(failed),
            None => json["Failed"] = Value::Array(failed),
        }
        body = Bytes::from(serde_json::to_vec(&json)?);
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// An SQS JSON answer made here.
fn json_answer(json: &Value) -> Result<Response<Full<Bytes>>> {
    let mut r = response(StatusCode::OK, Bytes::from(serde_json::to_vec(json)?));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    Ok(r)
}

/// The `Failed` entries of a batch response for `ids`: a server-side
/// failure, which the client should retry.
fn failed_entries(ids: Vec<Value>) -> Vec<Value> {
    ids.into_iter()
        .map(|id| {
            serde_json::json!({"Id": id, "SenderFault": false, "Code": "InternalError",
                "Message": "injected by the fault proxy"})
        })
        .collect()
}
