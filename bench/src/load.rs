//! Closed-loop load: `concurrency` workers each send requests back to back
//! until `requests` have been sent; every latency goes into an HDR
//! histogram.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use hdrhistogram::Histogram;
use ossbridge_testkit::webhook::{Signer, now};
use serde_json::{Value, json};

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Requests in total.
    #[arg(long, default_value_t = 50_000)]
    pub requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// A label that makes keys unique across runs.
    #[arg(long, default_value = "run")]
    pub run_id: String,
}

pub async fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let sdk = ossbridge_testkit::LocalAws::connect(endpoint).await.sdk;
    aws_sdk_sqs::Client::new(&sdk)
}

pub async fn depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let attrs = out.attributes().context("no attributes")?;
    let get = |n: &QueueAttributeName| {
        attrs
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(get(&QueueAttributeName::ApproximateNumberOfMessages)
        + get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// One OSS event for object number `n`.
fn event(run_id: &str, n: usize) -> Value {
    json!({
        "eventName": "ObjectCreated:PutObject",
        "eventSource": "acs:oss",
        "eventTime": time_now(),
        "eventVersion": "1.0",
        "oss": {
            "bucket": {"arn": "acs:oss:cn-hangzhou:1148930107246818:media-prod", "name": "media-prod",
                       "ownerIdentity": "1148930107246818"},
            "object": {"deltaSize": 122539, "eTag": format!("{n:032X}"),
                       "key": format!("bench/{run_id}/{n:08}.jpg"), "size": 122539},
            "ossSchemaVersion": "1.0", "ruleId": "bench"
        },
        "region": "cn-hangzhou",
        "requestParameters": {"sourceIPAddress": "203.0.113.17"},
        "responseElements": {"requestId": format!("{run_id}-{n}")},
        "userIdentity": {"principalId": "1148930107246818"}
    })
}

fn time_now() -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

struct Outcome {
    histogram: Histogram<u64>,
    ok: usize,
    failed: usize,
    seconds: f64,
    /// This process's CPU over the run: for the DTH mode that is the
    /// sender's whole cost per event, to set beside the gateway's.
    cpu_seconds: Option<f64>,
}

/// This process's user + system CPU so far, from /proc/self/stat (in
/// USER_HZ ticks, 100 a second on Linux).
pub(crate) fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces: state is the
    // first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Runs `send(i)` for i in 0..requests with `concurrency` workers.
async fn drive<F, Fut>(args: &LoadArgs, send: F) -> Result<Outcome>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let send = Arc::new(send);
    let started = Instant::now();
    let cpu_before = own_cpu_seconds();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (next, send, total) = (next.clone(), send.clone(), args.requests);
        workers.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut ok, mut failed) = (0, 0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                if send(i).await {
                    ok += 1;
                } else {
                    failed += 1;
                }
                histogram.record(t.elapsed().as_micros().max(1) as u64)?;
            }
            anyhow::Ok((histogram, ok, failed))
        }));
    }
    let mut outcome = Outcome {
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        ok: 0,
        failed: 0,
        seconds: 0.0,
        cpu_seconds: None,
    };
    for w in workers {
        let (h, ok, failed) = w.await??;
        outcome.histogram.add(h)?;
        outcome.ok += ok;
        outcome.failed += failed;
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.cpu_seconds = own_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    Ok(outcome)
}

fn report(mode: &str, args: &LoadArgs, events_per_request: usize, o: &Outcome) -> Value {
    let ms = |q: f64| o.histogram.value_at_quantile(q) as f64 / 1000.0;
    let events = o.ok * events_per_request;
    json!({
        "mode": mode,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "events_per_request": events_per_request,
        "ok": o.ok,
        "failed": o.failed,
        "seconds": o.seconds,
        "events_per_second": events as f64 / o.seconds,
        "p50_ms": ms(0.50),
        "p99_ms": ms(0.99),
        "max_ms": o.histogram.max() as f64 / 1000.0,
        "cpu_seconds": o.cpu_seconds,
        "cpu_us_per_event": o.cpu_seconds.map(|c| c * 1e6 / events.max(1) as f64),
    })
}

pub async fn gateway(
    url: &str,
    ca: &Path,
    secret: &str,
    args: &LoadArgs,
    per_request: usize,
) -> Result<Value> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca)?)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let signer = Signer::from_secret(secret).context("not a whsec_ secret")?;
    // Parsed once: reqwest parses (and IDNA-checks) a string URL on every
    // request, which was 5 % of the load generator's CPU, taken from the
    // gateway it shares the cores with.
    let url = reqwest::Url::parse(url)?;
    let run_id = args.run_id.clone();
    let outcome = drive(args, move |i| {
        let events: Vec<Value> = (0..per_request)
            .map(|k| event(&run_id, i * per_request + k))
            .collect();
        let body = json!({ "events": events }).to_string();
        let headers = signer.headers(&format!("msg_{run_id}_{i}"), now(), body.as_bytes());
        let mut request = client.post(url.clone()).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        async move { matches!(request.send().await, Ok(r) if r.status().is_success()) }
    })
    .await?;
    if outcome.ok == 0 {
        bail!("no request succeeded");
    }
    Ok(report("ossbridge-gateway", args, per_request, &outcome))
}

pub async fn dth(endpoint: &str, queue_url: &str, args: &LoadArgs) -> Result<Value> {
    let sqs = sqs_client(endpoint).await;
    let (queue_url, run_id) = (queue_url.to_owned(), args.run_id.clone());
    let outcome = drive(args, move |i| {
        let body = json!({"key": format!("bench/{run_id}/{i:08}.jpg"), "size": 122539}).to_string();
        let call = sqs
            .send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send();
        async move { call.await.is_ok() }
    })
    .await?;
    Ok(report("dth-sendmessage-per-event", args, 1, &outcome))
}

pub async fn sqs_batch(
    endpoint: &str,
    queue_url: &str,
    args: &LoadArgs,
    body_bytes: usize,
) -> Result<Value> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let sqs = sqs_client(endpoint).await;
    let (queue_url, run_id) = (queue_url.to_owned(), args.run_id.clone());
    let outcome = drive(args, move |i| {
        let entries: Vec<SendMessageBatchRequestEntry> = (0..10)
            .filter_map(|k| {
                let key = format!("bench/{run_id}/{i:08}-{k}.jpg");
                let mut body = json!({"key": key, "size": 1}).to_string();
                if body.len() + 10 < body_bytes {
                    let pad = "p".repeat(body_bytes - body.len() - 10);
                    body = json!({"key": key, "size": 1, "pad": pad}).to_string();
                }
                SendMessageBatchRequestEntry::builder()
                    .id(k.to_string())
                    .message_body(body)
                    .build()
                    .ok()
            })
            .collect();
        let call = sqs
            .send_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries))
            .send();
        async move { matches!(call.await, Ok(out) if out.failed().is_empty()) }
    })
    .await?;
    Ok(report("sqs-send-message-batch-direct", args, 10, &outcome))
}
