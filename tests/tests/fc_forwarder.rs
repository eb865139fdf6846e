//! The Function Compute forwarder (`deploy/aliyun/fc-forwarder/index.py`)
//! run with Python against the real gateway binary and moto: every OSS
//! event fixture it forwards must land on SQS, and a wrong secret must
//! fail the invocation (so FC retries) with nothing enqueued.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use ossbridge_message::{EventAction, QueueMessage, classify};
use ossbridge_testkit::services::{Service, loopback_command};
use ossbridge_testkit::tools::CertServer;
use ossbridge_testkit::webhook::Signer;
use ossbridge_testkit::{Pipeline, fixtures, repo_root, unique_name};
use tokio::io::AsyncWriteExt;

const FIXTURES: &[&str] = &[
    "oss-events/put-object.json",
    "oss-events/complete-multipart.json",
    "oss-events/append-object.json",
    "oss-events/delete-object.json",
    "oss-events/tricky-keys.json",
];

/// The project virtualenv's Python (as `ossbridge_testkit::tools` finds
/// it); the forwarder itself needs only the standard library.
fn python() -> PathBuf {
    std::env::var_os("OSSBRIDGE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/venv"))
        .join("bin/python")
}

/// Runs the forwarder's command-line mode with `body` on stdin; returns
/// whether it succeeded, its stdout and its stderr.
async fn forward(url: &str, secret: &str, body: &[u8]) -> Result<(bool, String, String)> {
    forward_with(url, secret, body, &[]).await
}

async fn forward_with(
    url: &str,
    secret: &str,
    body: &[u8],
    env: &[(&str, &str)],
) -> Result<(bool, String, String)> {
    let script = repo_root().join("deploy/aliyun/fc-forwarder/index.py");
    let mut child = loopback_command(python())
        .arg(script)
        .env("OSSBRIDGE_GATEWAY_URL", url)
        .env("OSSBRIDGE_WEBHOOK_SECRET", secret)
        // Keep a refused delivery quick: two attempts, short timeout.
        .env("OSSBRIDGE_ATTEMPTS", "2")
        .env("OSSBRIDGE_TIMEOUT_SECS", "10")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawn the forwarder (run tests/tools/setup.sh for the venv)")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(body).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    Ok((
        output.status.success(),
        String::from_utf8(output.stdout)?,
        String::from_utf8(output.stderr)?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fc_forwarder_delivers_every_fixture_to_sqs_and_fails_on_a_wrong_secret() -> Result<()>
{
    let pipeline = Pipeline::start(false).await?;
    let url = pipeline.ingest_url()?;

    let mut expected = Vec::new();
    for fixture in FIXTURES {
        let body = fixtures::read(fixture)?;
        let document: serde_json::Value = serde_json::from_str(&body)?;
        // The gateway's source does not propagate deletes, so only the
        // copy events become messages.
        let copies: Vec<String> = document["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| classify(e["eventName"].as_str().unwrap_or_default()) == EventAction::Copy)
            .map(|e| {
                e["oss"]["object"]["key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let (ok, stdout, stderr) = forward(&url, pipeline.signer.secret(), body.as_bytes()).await?;
        ensure!(ok, "{fixture}: forwarder failed: {stderr}");
        let answer: serde_json::Value = serde_json::from_str(&stdout)
            .with_context(|| format!("{fixture}: forwarder printed {stdout:?}"))?;
        assert_eq!(answer["enqueued"], copies.len(), "{fixture}: {answer}");
        expected.extend(copies);
    }

    let mut landed: Vec<String> = Vec::new();
    for body in pipeline.aws.drain(&pipeline.queue_url).await? {
        let message: QueueMessage =
            serde_json::from_str(&body).with_context(|| format!("queue message {body}"))?;
        landed.push(message.key);
    }
    expected.sort();
    landed.sort();
    assert_eq!(landed, expected, "one message per copy event, raw keys");

    // Signed with another secret: refused (401, not retried), non-zero
    // exit, and nothing reaches the queue.
    let wrong = Signer::generate(&unique_name("wrong"));
    let body = fixtures::oss_event(
        "oss-events/put-object.json",
        &pipeline.source_bucket,
        &[("photos/never-enqueued.jpg", b"x")],
    )?;
    let (ok, _, stderr) = forward(&url, wrong.secret(), body.as_bytes()).await?;
    assert!(!ok, "a wrong secret must fail the invocation");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(pipeline.aws.drain(&pipeline.queue_url).await?.is_empty());

    // An unreachable gateway: retried, then a failure naming the cause.
    let (ok, _, stderr) = forward(
        "http://127.0.0.1:9/v1/ingest/media-prod",
        pipeline.signer.secret(),
        body.as_bytes(),
    )
    .await?;
    assert!(!ok, "an unreachable gateway must fail the invocation");
    assert!(stderr.contains("after 2 attempts"), "{stderr}");

    pipeline.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fc_forwarder_trusts_the_ca_file_it_is_given_and_only_that() -> Result<()> {
    let pipeline = Pipeline::start(false).await?;
    // The fake MNS certificate host's CA and its 127.0.0.1 server
    // certificate stand in for a gateway behind a private CA.
    let certs = tokio::task::spawn_blocking(CertServer::start).await??;
    let dir = certs.ca.parent().context("cert dir")?;
    let config = format!(
        "{}[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        pipeline.gateway_config(),
        dir.join("server.pem").display().to_string(),
        dir.join("server-key.pem").display().to_string(),
    );
    let gateway = Service::spawn("ossbridge-gateway", &config, "gateway_started").await?;
    let started = gateway
        .event("gateway_started")
        .context("gateway_started")?;
    let addr = started["addr"].as_str().context("addr")?;
    let url = format!("https://{addr}/v1/ingest/{}", pipeline.source_id);
    let body = fixtures::read("oss-events/put-object.json")?;
    let secret = pipeline.signer.secret();

    let ca = certs.ca.display().to_string();
    let (ok, stdout, stderr) =
        forward_with(&url, secret, body.as_bytes(), &[("OSSBRIDGE_CA_FILE", &ca)]).await?;
    ensure!(ok, "forwarder failed over TLS: {stderr}");
    let answer: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(answer["enqueued"], 1, "{answer}");

    // Without it the system roots do not know the test CA: the handshake
    // fails, the invocation fails, nothing more is enqueued.
    let (ok, _, stderr) = forward(&url, secret, body.as_bytes()).await?;
    assert!(!ok, "an untrusted certificate must fail the invocation");
    assert!(stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{stderr}");
    assert_eq!(pipeline.aws.drain(&pipeline.queue_url).await?.len(), 1);
    pipeline.stop().await
}
