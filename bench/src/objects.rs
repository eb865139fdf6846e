//! Filling a source bucket and queueing copy jobs for the transfer
//! benchmark.

use std::sync::Arc;

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::{StreamExt, TryStreamExt};
use ossbridge_testkit::{LocalAws, fixtures};
use serde_json::{Value, json};

/// Objects at or above this are written to a temporary file and streamed.
const STREAM_FROM_FILE: u64 = 64 * 1024 * 1024;

/// Which objects `populate` writes.
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
    pub count: usize,
    pub size: u64,
    /// Sub-prefixes to spread keys over (0: flat).
    pub fanout: usize,
}

impl Layout {
    fn key(&self, i: usize) -> String {
        match self.fanout {
            0 => format!("{}{i:06}.bin", self.prefix),
            n => format!("{}{:03}/{i:06}.bin", self.prefix, i % n),
        }
    }
}

/// Fills `bucket` and, with `mirror` (endpoint, bucket), writes each
/// object there too with the source ETag recorded as ossbridge's copy
/// would, so a sync between them finds everything current.
pub async fn populate(
    endpoint: &str,
    bucket: &str,
    layout: &Layout,
    concurrency: usize,
    mirror: Option<(String, String)>,
) -> Result<Value> {
    let (count, size) = (layout.count, layout.size);
    let aws = Arc::new(LocalAws::connect(endpoint).await);
    let _ = aws.create_bucket(bucket).await;
    let mirror = match mirror {
        Some((endpoint, bucket)) => {
            let m = LocalAws::connect(&endpoint).await;
            let _ = m.create_bucket(&bucket).await;
            Some(Arc::new((m, bucket)))
        }
        None => None,
    };
    let file = if size >= STREAM_FROM_FILE {
        let file = tempfile::NamedTempFile::new()?;
        let chunk = fixtures::bytes(8 * 1024 * 1024, 7);
        let mut written = 0u64;
        let mut out = std::io::BufWriter::new(file.reopen()?);
        while written < size {
            let n = chunk.len().min((size - written) as usize);
            std::io::Write::write_all(&mut out, &chunk[..n])?;
            written += n as u64;
        }
        std::io::Write::flush(&mut out)?;
        Some(file)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let path = file.as_ref().map(|f| f.path().to_owned());
    futures::stream::iter(0..count)
        .map(|i| {
            let (aws, path, mirror) = (aws.clone(), path.clone(), mirror.clone());
            let key = layout.key(i);
            async move {
                let body = match &path {
                    Some(p) => ByteStream::from_path(p).await?,
                    None => ByteStream::from(fixtures::bytes(size as usize, i as u64 + 1)),
                };
                let out = aws
                    .s3
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(body)
                    .send()
                    .await
                    .with_context(|| format!("put {key}"))?;
                if let Some(mirror) = mirror {
                    let (m, mirror_bucket) = &*mirror;
                    let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_owned();
                    let body = match &path {
                        Some(p) => ByteStream::from_path(p).await?,
                        None => ByteStream::from(fixtures::bytes(size as usize, i as u64 + 1)),
                    };
                    m.s3.put_object()
                        .bucket(mirror_bucket)
                        .key(&key)
                        .body(body)
                        .metadata("ossbridge-source-etag", etag)
                        .send()
                        .await
                        .with_context(|| format!("mirror {key}"))?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(json!({"objects": count, "size": size, "seconds": started.elapsed().as_secs_f64()}))
}

pub async fn enqueue(
    endpoint: &str,
    source_endpoint: &str,
    bucket: &str,
    prefix: &str,
    queue_url: &str,
) -> Result<usize> {
    let source = LocalAws::connect(source_endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&LocalAws::connect(endpoint).await.sdk);
    let mut jobs = Vec::new();
    let mut pages = source
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page?.contents() {
            let key = object.key().context("key")?;
            jobs.push(json!({"key": key, "size": object.size().unwrap_or(0)}).to_string());
        }
    }
    for (n, chunk) in jobs.chunks(10).enumerate() {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("{n}-{i}"))
                    .message_body(body)
                    .build()
                    .ok()
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(jobs.len())
}
