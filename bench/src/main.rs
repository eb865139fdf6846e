//! Load generators for docs/benchmarks.md. Each run prints one JSON object
//! on stdout; `bench/gateway.sh` orchestrates a whole comparison.

mod lag;
mod load;
mod objects;
mod soak;
mod sqs_sink;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

// The gateway's allocator, so a sender's CPU per event here (the DTH
// sender, the SQS client alone) is what the gateway would pay for the
// same calls, not glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes a self-signed certificate for 127.0.0.1 (cert.pem, key.pem).
    Cert { dir: PathBuf },
    /// The test kit's S3 proxy in front of `upstream`, counting requests by
    /// operation: prints its endpoint, then on SIGTERM the counts as JSON
    /// (`{"operations": {...}, "refused": {...}}`) and exits.
    Proxy {
        #[arg(long)]
        upstream: String,
        /// Milliseconds the proxy waits before handling every request (a
        /// round trip to a distant store).
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Also journal every object write the store accepted to this
        /// file, as it happens: `bucket/key<TAB>unix_nanos` lines (lag.rs).
        #[arg(long)]
        journal: Option<PathBuf>,
    },
    /// The test kit's SQS fault proxy in front of `upstream`, adding
    /// `latency_ms` to every call (a real SQS's round trip, where the
    /// emulator answers in a millisecond); prints its endpoint, runs until
    /// SIGTERM.
    SqsProxy {
        #[arg(long)]
        upstream: String,
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// A benchmark sink answering SQS's JSON protocol (sqs_sink.rs): prints
    /// its endpoint and serves until killed; `GET /stats` gives the counts.
    SqsSink {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Creates a queue on the emulator and prints its URL.
    Queue {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        name: String,
    },
    /// Messages on a queue (visible + in flight).
    Depth {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        queue_url: String,
    },
    /// Signed OSS events (Standard Webhooks) POSTed to the gateway over TLS.
    Gateway {
        #[arg(long)]
        url: String,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        secret: String,
        #[command(flatten)]
        load: load::LoadArgs,
        /// Events in each request body.
        #[arg(long, default_value_t = 1)]
        events_per_request: usize,
    },
    /// The emulator's own ceiling: SendMessageBatch of 10 straight to SQS,
    /// no gateway in between.
    SqsBatch {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        queue_url: String,
        #[command(flatten)]
        load: load::LoadArgs,
        /// Pad each message body to this many bytes (the gateway's
        /// messages are about 380), so the client's cost per call is
        /// measured on bodies of the gateway's size.
        #[arg(long, default_value_t = 0)]
        body_bytes: usize,
    },
    /// Creates a bucket and fills it with `count` objects of `size` bytes
    /// under `prefix` (pseudo-random bytes, streamed from a file for large
    /// ones).
    Populate {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        size: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Spread keys over this many sub-prefixes (`PREFIX/NNN/`); 0 keeps
        /// them flat under PREFIX.
        #[arg(long, default_value_t = 0)]
        fanout: usize,
        /// Also write each object, identical and with the
        /// `ossbridge-source-etag` a copy records, to this endpoint's
        /// `--mirror-bucket` (a destination already in sync).
        #[arg(long, requires = "mirror_bucket")]
        mirror_endpoint: Option<String>,
        #[arg(long)]
        mirror_bucket: Option<String>,
    },
    /// Creates a bucket (for a destination).
    Bucket {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        name: String,
    },
    /// Puts one Data Transfer Hub `{"key","size"}` job per object under
    /// `prefix` in `bucket` on the queue.
    Enqueue {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        source_endpoint: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        queue_url: String,
    },
    /// Puts OSS keys in SSM as the Data Transfer Hub tutorial does.
    Keys {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        name: String,
    },
    /// Steady load for the soak: a new version of a pooled object on the
    /// source, then its signed event to the gateway, `rate` times a second.
    Soak {
        #[command(flatten)]
        args: soak::SoakArgs,
    },
    /// Replication lag: a new object on the source, then its signed event
    /// to the gateway, `rate` times a second for `seconds` (lag.rs).
    Lag {
        #[command(flatten)]
        args: lag::LagArgs,
    },
    /// Compares two buckets object by object (size and MD5 ETag).
    Compare {
        #[arg(long)]
        source_endpoint: String,
        #[arg(long)]
        source_bucket: String,
        #[arg(long)]
        destination_endpoint: String,
        #[arg(long)]
        destination_bucket: String,
    },
    /// The Data Transfer Hub tutorial's sender: one SQS SendMessage of
    /// {"key","size"} per event, straight to the queue.
    Dth {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        queue_url: String,
        #[command(flatten)]
        load: load::LoadArgs,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Cert { dir } => {
            let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("cert.pem"), generated.cert.pem())?;
            std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem())?;
        }
        Command::SqsProxy {
            upstream,
            latency_ms,
        } => {
            let proxy = ossbridge_testkit::FaultProxy::start(&upstream).await?;
            proxy.set_latency(std::time::Duration::from_millis(latency_ms));
            println!("{}", proxy.endpoint());
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?
                .recv()
                .await;
        }
        Command::Proxy {
            upstream,
            latency_ms,
            journal,
        } => {
            let proxy = ossbridge_testkit::s3_proxy::S3Proxy::start(&upstream).await?;
            proxy.set_latency(std::time::Duration::from_millis(latency_ms));
            println!("{}", proxy.endpoint());
            lag::until_sigterm(&proxy, journal.as_deref()).await?;
            let counts = proxy.counts();
            let refused: std::collections::BTreeMap<&str, u64> = counts
                .keys()
                .map(|op| (op.as_str(), proxy.refused(op)))
                .filter(|(_, n)| *n > 0)
                .collect();
            println!(
                "{}",
                serde_json::json!({ "operations": counts, "refused": refused })
            );
        }
        Command::SqsSink { port } => sqs_sink::serve(port).await?,
        Command::Queue { endpoint, name } => {
            let sqs = load::sqs_client(&endpoint).await;
            let out = sqs.create_queue().queue_name(name).send().await?;
            println!("{}", out.queue_url.context("no queue URL")?);
        }
        Command::Depth {
            endpoint,
            queue_url,
        } => {
            let sqs = load::sqs_client(&endpoint).await;
            println!("{}", load::depth(&sqs, &queue_url).await?);
        }
        Command::Gateway {
            url,
            ca,
            secret,
            load,
            events_per_request,
        } => {
            let report = load::gateway(&url, &ca, &secret, &load, events_per_request).await?;
            println!("{report}");
        }
        Command::Populate {
            endpoint,
            bucket,
            prefix,
            count,
            size,
            concurrency,
            fanout,
            mirror_endpoint,
            mirror_bucket,
        } => {
            let mirror = mirror_endpoint.zip(mirror_bucket);
            let layout = objects::Layout {
                prefix,
                count,
                size,
                fanout,
            };
            let report =
                objects::populate(&endpoint, &bucket, &layout, concurrency, mirror).await?;
            println!("{report}");
        }
        Command::Bucket { endpoint, name } => {
            ossbridge_testkit::LocalAws::connect(&endpoint)
                .await
                .create_bucket(&name)
                .await?;
        }
        Command::Enqueue {
            endpoint,
            source_endpoint,
            bucket,
            prefix,
            queue_url,
        } => {
            let sent =
                objects::enqueue(&endpoint, &source_endpoint, &bucket, &prefix, &queue_url).await?;
            println!("{sent}");
        }
        Command::Keys { endpoint, name } => {
            let aws = ossbridge_testkit::LocalAws::connect(&endpoint).await;
            aws.put_oss_keys(&name, "bench", "bench").await?;
        }
        Command::SqsBatch {
            endpoint,
            queue_url,
            load,
            body_bytes,
        } => {
            let report = load::sqs_batch(&endpoint, &queue_url, &load, body_bytes).await?;
            println!("{report}");
        }
        Command::Soak { args } => println!("{}", soak::run(&args).await?),
        Command::Lag { args } => println!("{}", lag::run(&args).await?),
        Command::Compare {
            source_endpoint,
            source_bucket,
            destination_endpoint,
            destination_bucket,
        } => {
            let report = soak::compare(
                (&source_endpoint, &source_bucket),
                (&destination_endpoint, &destination_bucket),
            )
            .await?;
            println!("{report}");
        }
        Command::Dth {
            endpoint,
            queue_url,
            load,
        } => {
            let report = load::dth(&endpoint, &queue_url, &load).await?;
            println!("{report}");
        }
    }
    Ok(())
}
