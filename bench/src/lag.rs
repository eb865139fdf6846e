//! Open-loop load for `bench/lag.sh`, and the journal the destination's
//! proxy writes for it.
//!
//! Every tick, a NEW object (`lag/<stage>/<seq>`) is written to the source
//! bucket and, once the source has answered, a signed OSS event for it is
//! POSTed to the gateway, retried as a sender would. The event's
//! `eventTime` is the moment the source answered the write (OSS's format:
//! milliseconds, truncated). Ticks are due at `start + n / rate`; one that
//! starts more than [`LATE`] after it was due, or has to wait for an
//! in-flight slot, is a late tick: the generator, not the pipeline, fell
//! behind; ticks not sent by the end of the stage's time are not sent.
//! Per event it records key, event time (ns) and whether the
//! gateway acknowledged it (`--events` file); the summary goes to stdout.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use ossbridge_testkit::fixtures;
use ossbridge_testkit::s3_proxy::S3Proxy;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::soak;

#[derive(Debug, Clone, clap::Args)]
pub struct LagArgs {
    /// The gateway's ingest URL for the source.
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub ca: PathBuf,
    #[arg(long)]
    pub secret: String,
    /// The S3 endpoint standing in for OSS.
    #[arg(long)]
    pub source_endpoint: String,
    #[arg(long)]
    pub bucket: String,
    /// Names the stage: keys are `lag/STAGE/NNNNNNN`.
    #[arg(long)]
    pub stage: String,
    /// Events per second.
    #[arg(long)]
    pub rate: f64,
    #[arg(long)]
    pub seconds: f64,
    /// Object size in bytes.
    #[arg(long, default_value_t = 16384)]
    pub size: usize,
    /// Events (source write + POST) in flight at most.
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    /// Where to write one line per event: key, event time (Unix ns),
    /// acknowledged (1/0), POST retries, tab-separated.
    #[arg(long)]
    pub events: PathBuf,
}

/// A tick dispatched later than this after it was due is late.
pub const LATE: Duration = Duration::from_millis(50);

struct Event {
    key: String,
    /// When the source answered the write; `None` if it failed.
    written_ns: Option<u128>,
    acked: bool,
    retries: u32,
}

struct Record {
    events: Vec<Event>,
    source_put_us: Histogram<u64>,
    post_us: Histogram<u64>,
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// OSS's `eventTime`: UTC with milliseconds, truncated.
fn event_time(t: SystemTime) -> String {
    let at = time::OffsetDateTime::from(t);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

pub async fn run(args: &LagArgs) -> Result<Value> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be > 0");
    let (client, signer, source) =
        soak::sender(&args.ca, &args.secret, &args.source_endpoint).await?;
    // The fixture's first event, bucket set; key, size, eTag, request id
    // and time are filled in per event.
    let template = fixtures::oss_event("oss-events/put-object.json", &args.bucket, &[("k", b"")])?;
    let template: Arc<Value> = Arc::new(serde_json::from_str(&template)?);
    let histogram = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
    let record = Arc::new(Mutex::new(Record {
        events: Vec::new(),
        source_put_us: histogram()?,
        post_us: histogram()?,
    }));
    let in_flight = Arc::new(Semaphore::new(args.in_flight.max(1)));
    let (mut late_ticks, mut max_late) = (0u64, Duration::ZERO);
    let mut tasks = tokio::task::JoinSet::new();
    let started = tokio::time::Instant::now();
    let mut n: u64 = 0;
    // SIGTERM (bench/lag.sh, when the backlog passes its bound) or the
    // end of the stage's time stops the ticks; events in flight finish.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut stopped = false;
    loop {
        let due_in = Duration::from_secs_f64(n as f64 / args.rate);
        if due_in.as_secs_f64() >= args.seconds || started.elapsed().as_secs_f64() >= args.seconds {
            break;
        }
        let due = started + due_in;
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            _ = term.recv() => {
                stopped = true;
                break;
            }
        }
        let (permit, waited) = match in_flight.clone().try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => (in_flight.clone().acquire_owned().await?, true),
        };
        let late = tokio::time::Instant::now().saturating_duration_since(due);
        max_late = max_late.max(late);
        if waited || late > LATE {
            late_ticks += 1;
        }
        let key = format!("lag/{}/{n:07}", args.stage);
        let (client, signer, source, template, record) = (
            client.clone(),
            signer.clone(),
            source.clone(),
            template.clone(),
            record.clone(),
        );
        let (url, bucket, size) = (args.url.clone(), args.bucket.clone(), args.size);
        let id = format!("msg_lag_{}_{n}", args.stage);
        tasks.spawn(async move {
            let _permit = permit;
            let bytes = fixtures::bytes(size, n + 1);
            let mut event = (*template).clone();
            let e = &mut event["events"][0];
            e["oss"]["object"]["key"] = key.clone().into();
            e["oss"]["object"]["size"] = bytes.len().into();
            e["oss"]["object"]["eTag"] = fixtures::oss_etag(&bytes).into();
            e["responseElements"]["requestId"] = id.clone().into();
            let put_started = Instant::now();
            let written = match source.put_object(&bucket, &key, bytes).await {
                Ok(()) => Some(SystemTime::now()),
                Err(e) => {
                    eprintln!("lag: source write of {key} failed: {e:#}");
                    None
                }
            };
            let put_us = put_started.elapsed().as_micros() as u64;
            let post_started = Instant::now();
            let sent = match written {
                Some(at) => {
                    event["events"][0]["eventTime"] = event_time(at).into();
                    soak::post_signed(&client, &signer, &url, &id, &event.to_string()).await
                }
                None => Err(anyhow::anyhow!("not written")),
            };
            let post_us = post_started.elapsed().as_micros() as u64;
            if let (Err(e), Some(_)) = (&sent, written) {
                eprintln!("lag: event for {key} not acknowledged: {e:#}");
            }
            if let Ok(mut r) = record.lock() {
                if written.is_some() {
                    r.source_put_us.saturating_record(put_us);
                }
                if sent.is_ok() {
                    r.post_us.saturating_record(post_us);
                }
                r.events.push(Event {
                    key,
                    written_ns: written.map(unix_ns),
                    acked: sent.is_ok(),
                    retries: sent.unwrap_or(soak::ATTEMPTS),
                });
            }
        });
        while tasks.try_join_next().is_some() {}
        n += 1;
    }
    let sending = started.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}
    let record = Arc::into_inner(record)
        .context("events still in flight")?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut out = String::new();
    for e in &record.events {
        let at = e.written_ns.map_or(String::from("-"), |t| t.to_string());
        writeln!(out, "{}\t{at}\t{}\t{}", e.key, u8::from(e.acked), e.retries)?;
    }
    std::fs::write(&args.events, out)?;
    let quantiles = |h: &Histogram<u64>| {
        (!h.is_empty()).then(|| {
            json!({"p50": h.value_at_quantile(0.5) as f64 / 1e3,
                   "p99": h.value_at_quantile(0.99) as f64 / 1e3,
                   "max": h.max() as f64 / 1e3})
        })
    };
    let acked = record.events.iter().filter(|e| e.acked).count();
    Ok(json!({
        "stage": args.stage,
        "rate": args.rate,
        "seconds": args.seconds,
        "nominal_events": (args.rate * args.seconds).ceil() as u64,
        "events": n,
        "written": record.events.iter().filter(|e| e.written_ns.is_some()).count(),
        "acknowledged": acked,
        "failed": n as usize - acked,
        "retries": record.events.iter().filter(|e| e.acked).map(|e| u64::from(e.retries)).sum::<u64>(),
        "stopped": stopped,
        "late_ticks": late_ticks,
        "late_threshold_ms": LATE.as_millis() as u64,
        "max_tick_lateness_ms": max_late.as_secs_f64() * 1e3,
        "sending_seconds": sending,
        "events_per_second": n as f64 / sending,
        "source_put_ms": quantiles(&record.source_put_us),
        "gateway_post_ms": quantiles(&record.post_us),
        "cpu_seconds": crate::load::own_cpu_seconds(),
    }))
}

/// Waits for SIGTERM. With `journal`, the proxy journals its writes and
/// they are appended to that file every 100 ms and once more at SIGTERM,
/// one `bucket/key<TAB>unix_nanos` line each (the time the store answered
/// the write 2xx).
pub async fn until_sigterm(proxy: &S3Proxy, journal: Option<&Path>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let Some(path) = journal else {
        term.recv().await;
        return Ok(());
    };
    proxy.journal_writes();
    let mut file = std::fs::File::create(path)?;
    let mut flush = tokio::time::interval(Duration::from_millis(100));
    loop {
        let stop = tokio::select! {
            _ = term.recv() => true,
            _ = flush.tick() => false,
        };
        let mut lines = String::new();
        for w in proxy.take_journal() {
            writeln!(lines, "{}/{}\t{}", w.bucket, w.key, unix_ns(w.at))?;
        }
        file.write_all(lines.as_bytes())?;
        file.flush()?;
        if stop {
            return Ok(());
        }
    }
}
