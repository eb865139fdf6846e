//! The local demo behind the README's first command: the whole pipeline on
//! this machine, one signed OSS event in, one object out.
//!
//! `--keep-running` leaves the stack up afterwards (Ctrl-C stops it).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ossbridge_testkit::pipeline::Names;
use ossbridge_testkit::{Pipeline, fixtures};

const KEY: &str = "photos/2026/11/20/IMG_0042.jpg";

#[tokio::main]
async fn main() -> Result<()> {
    let keep_running = std::env::args().any(|a| a == "--keep-running");

    println!(
        "==> starting the local AWS emulator (moto: S3, SQS, SSM), the gateway and the transfer service"
    );
    let names = Names {
        source_bucket: "oss-media-prod".into(),
        destination_bucket: "s3-media-replica".into(),
        queue: "ossbridge-jobs".into(),
        parameter: "/ossbridge/oss-keys".into(),
    };
    let pipeline = Pipeline::start_named(names, true).await?;
    let endpoint = pipeline.emulator.endpoint();
    println!("    emulator         {endpoint}");
    println!("    gateway          {}", pipeline.ingest_url()?);
    println!("    queue            {}", pipeline.queue_url);
    println!("    OSS keys in SSM  {}", pipeline.parameter);

    let bytes = fixtures::bytes(122_539, 42);
    pipeline
        .aws
        .put_object(&pipeline.source_bucket, KEY, bytes.clone())
        .await?;
    println!(
        "==> put oss://{}/{KEY} ({} bytes) in the local \"OSS\" bucket",
        pipeline.source_bucket,
        bytes.len()
    );

    let body = fixtures::oss_event(
        "oss-events/put-object.json",
        &pipeline.source_bucket,
        &[(KEY, &bytes)],
    )?;
    let response = pipeline.post_signed(&body).await?;
    let status = response.status();
    let answer = response.text().await?;
    println!(
        "==> POSTed the ObjectCreated:PutObject event, signed with Standard Webhooks: {status} {answer}"
    );
    ensure!(status.is_success(), "the gateway refused the event");

    pipeline
        .expect_copied(KEY, &bytes, Duration::from_secs(60))
        .await
        .context("the transfer service did not copy the object")?;
    println!(
        "==> the object landed at s3://{}/{KEY}",
        pipeline.destination_bucket
    );
    println!(
        "    {} bytes, byte-identical to the source; the queue is empty",
        bytes.len()
    );
    println!(
        "    (S3 endpoint {endpoint}, path-style; e.g. aws --endpoint-url {endpoint} s3 ls s3://{}/ --recursive)",
        pipeline.destination_bucket
    );

    if keep_running {
        println!("==> the stack keeps running; Ctrl-C stops it");
        tokio::signal::ctrl_c().await?;
    }
    pipeline.stop().await?;
    println!("==> stopped");
    Ok(())
}
