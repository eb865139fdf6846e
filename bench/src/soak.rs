//! Steady open-loop load for `bench/soak.sh`: every tick, a new version of
//! one object from a fixed pool is written to the source bucket and a
//! signed OSS event for it is POSTed to the gateway, retried as a sender
//! would. Keys cycle through the pool so the emulators' memory stays flat
//! and what grows, if anything, is ossbridge's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ossbridge_testkit::webhook::{Signer, now};
use ossbridge_testkit::{LocalAws, fixtures};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// The gateway's ingest URL for the source.
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub ca: std::path::PathBuf,
    #[arg(long)]
    pub secret: String,
    /// The S3 endpoint standing in for OSS.
    #[arg(long)]
    pub source_endpoint: String,
    #[arg(long)]
    pub bucket: String,
    /// Events per second.
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    #[arg(long, default_value_t = 1800)]
    pub seconds: u64,
    /// Distinct keys; each is rewritten every `pool / rate` seconds.
    #[arg(long, default_value_t = 1000)]
    pub pool: usize,
    /// Object size in bytes.
    #[arg(long, default_value_t = 16384)]
    pub size: usize,
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    late_ticks: AtomicU64,
}

/// How often a sender retries an event the gateway did not acknowledge
/// (Function Compute's async invocation retries a few times, too).
pub(crate) const ATTEMPTS: u32 = 5;

/// What a sender of signed events needs: an HTTPS client trusting the
/// gateway's certificate, the signer and the source store.
pub(crate) async fn sender(
    ca: &std::path::Path,
    secret: &str,
    source_endpoint: &str,
) -> Result<(reqwest::Client, Arc<Signer>, Arc<LocalAws>)> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca)?)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()?;
    let signer = Arc::new(Signer::from_secret(secret).context("not a whsec_ secret")?);
    let source = Arc::new(LocalAws::connect(source_endpoint).await);
    Ok((client, signer, source))
}

pub async fn run(args: &SoakArgs) -> Result<Value> {
    let (client, signer, source) = sender(&args.ca, &args.secret, &args.source_endpoint).await?;
    let counters = Arc::new(Counters::default());
    // Bounds what is in flight when the pipeline slows down, so a stall
    // shows up as late ticks rather than as the load generator's memory.
    let in_flight = Arc::new(Semaphore::new(256));
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n: u64 = 0;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        ticks.tick().await;
        let permit = match in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                counters.late_ticks.fetch_add(1, Ordering::Relaxed);
                in_flight.clone().acquire_owned().await?
            }
        };
        let key = format!("soak/{:06}.bin", n as usize % args.pool.max(1));
        let bytes = fixtures::bytes(args.size, n + 1);
        let (client, signer, source, counters) = (
            client.clone(),
            signer.clone(),
            source.clone(),
            counters.clone(),
        );
        let (url, bucket) = (args.url.clone(), args.bucket.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let sent = send_one(&client, &signer, &source, &url, &bucket, &key, bytes, n).await;
            match sent {
                Ok(retries) => {
                    counters.ok.fetch_add(1, Ordering::Relaxed);
                    counters.retries.fetch_add(retries, Ordering::Relaxed);
                }
                Err(e) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("soak: event {n} for {key} not acknowledged: {e:#}");
                }
            }
        });
        while tasks.try_join_next().is_some() {}
        n += 1;
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "events": n,
        "acknowledged": counters.ok.load(Ordering::Relaxed),
        "failed": counters.failed.load(Ordering::Relaxed),
        "retries": counters.retries.load(Ordering::Relaxed),
        "late_ticks": counters.late_ticks.load(Ordering::Relaxed),
        "seconds": seconds,
        "events_per_second": n as f64 / seconds,
    }))
}

/// Writes the object, then delivers its event; returns the retries used.
#[allow(clippy::too_many_arguments)]
async fn send_one(
    client: &reqwest::Client,
    signer: &Signer,
    source: &LocalAws,
    url: &str,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
    n: u64,
) -> Result<u64> {
    let body = fixtures::oss_event("oss-events/put-object.json", bucket, &[(key, &bytes)])?;
    source
        .put_object(bucket, key, bytes)
        .await
        .context("source PutObject")?;
    let retries = post_signed(client, signer, url, &format!("msg_soak_{n}"), &body).await?;
    Ok(u64::from(retries))
}

/// POSTs one signed event until the gateway acknowledges it, with the same
/// webhook-id on every attempt (the gateway's idempotency key); returns
/// the retries used.
pub(crate) async fn post_signed(
    client: &reqwest::Client,
    signer: &Signer,
    url: &str,
    id: &str,
    body: &str,
) -> Result<u32> {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        let mut request = client.post(url).body(body.to_owned());
        for (k, v) in signer.headers(id, now(), body.as_bytes()) {
            request = request.header(k, v);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
    }
    anyhow::bail!("{ATTEMPTS} attempts, last: {last}")
}

/// Key -> (size, ETag) of every object in a bucket.
async fn inventory(
    endpoint: &str,
    bucket: &str,
) -> Result<std::collections::BTreeMap<String, (i64, String)>> {
    let aws = LocalAws::connect(endpoint).await;
    let mut out = std::collections::BTreeMap::new();
    let mut pages = aws
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page?.contents() {
            let etag = o
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_ascii_lowercase();
            out.insert(
                o.key().unwrap_or_default().to_owned(),
                (o.size().unwrap_or(-1), etag),
            );
        }
    }
    Ok(out)
}

/// Compares two buckets object by object (size and content MD5: both
/// sides are single-part uploads, so the ETag is the MD5).
pub async fn compare(source: (&str, &str), destination: (&str, &str)) -> Result<Value> {
    let src = inventory(source.0, source.1).await?;
    let dst = inventory(destination.0, destination.1).await?;
    let missing: Vec<&String> = src.keys().filter(|k| !dst.contains_key(*k)).collect();
    let different: Vec<&String> = src
        .iter()
        .filter(|(k, v)| dst.get(*k).is_some_and(|d| d != *v))
        .map(|(k, _)| k)
        .collect();
    let extra: Vec<&String> = dst.keys().filter(|k| !src.contains_key(*k)).collect();
    Ok(json!({
        "source_objects": src.len(),
        "destination_objects": dst.len(),
        "missing": missing.len(),
        "different": different.len(),
        "extra": extra.len(),
        "examples": missing.iter().chain(&different).chain(&extra).take(5).collect::<Vec<_>>(),
    }))
}
