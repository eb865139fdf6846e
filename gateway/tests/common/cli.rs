//! Helpers of the replay tests: the gateway binary as a command, CLI
//! configuration files, OSS events and what a queue holds.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use ossbridge_message::{QueueMessage, idempotency_key};
use ossbridge_testkit::{LocalAws, fixtures};
use serde_json::Value;

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The summary: the last stdout line.
    pub fn summary(&self) -> Result<Value> {
        let line = self.stdout.lines().last().context("no summary")?;
        Ok(serde_json::from_str(line)?)
    }
}

/// Runs `ossbridge-gateway ARGS` with credentials for the emulator and
/// `stdin` as its standard input.
pub async fn gateway_cli(args: Vec<String>, stdin: &str) -> Result<Output> {
    use tokio::io::AsyncWriteExt;
    let mut child =
        ossbridge_testkit::services::loopback_command(env!("CARGO_BIN_EXE_ossbridge-gateway"))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
    let mut input = child.stdin.take().context("stdin")?;
    input.write_all(stdin.as_bytes()).await?;
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A configuration file for the CLI: source `media` (or [`SOURCE`]) on
/// `queue_url`, `tmp/` excluded.
pub fn config_file(
    endpoint: &str,
    source: &str,
    queue_url: &str,
    extra: &str,
) -> Result<tempfile::NamedTempFile> {
    let text = format!(
        "[log]\nlevel = \"warn\"\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n{extra}\n\
         [sources.{source}]\nqueue_url = \"{queue_url}\"\n\
         [sources.{source}.filter]\nexclude_prefixes = [\"tmp/\"]\n\
         [sources.{source}.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"whsec_AAAAAAAAAAAAAAAAAAAAAAAA\"]\n"
    );
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile()?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(file)
}

/// One OSS event for `key` (a unique request id) as a JSON value.
pub fn event(key: &str) -> Result<Value> {
    let body: Value = serde_json::from_str(&fixtures::oss_event(
        "oss-events/put-object.json",
        "media-prod",
        &[(key, key.as_bytes())],
    )?)?;
    Ok(body["events"][0].clone())
}

pub fn events(list: &[&Value]) -> String {
    serde_json::json!({ "events": list }).to_string()
}

pub fn key_of(e: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    idempotency_key(
        &s(&e["oss"]["bucket"]["name"]),
        &s(&e["oss"]["object"]["key"]),
        &s(&e["oss"]["object"]["eTag"]),
        &s(&e["eventName"]),
        &s(&e["responseElements"]["requestId"]),
    )
}

/// key → idempotency key of every message drained from `queue_url`.
pub async fn drained(aws: &LocalAws, queue_url: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for body in aws.drain(queue_url).await? {
        let m = QueueMessage::from_body(&body)?;
        assert!(
            out.insert(m.key, m.idempotency_key).is_none(),
            "a key twice"
        );
    }
    Ok(out)
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}
