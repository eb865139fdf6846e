//! Signing code independent of ossbridge's own, used to produce the
//! requests the gateway must accept or refuse: the Python
//! `standardwebhooks` package, the npm `@octokit/webhooks-methods`
//! package, an MNS signer built on Python `cryptography`, and an HTTPS
//! server playing Aliyun's MNS certificate host.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::repo_root;

static READY: OnceLock<Result<(), String>> = OnceLock::new();

/// Installs the signers (once per process) via `tests/tools/setup.sh`.
pub fn setup() -> Result<()> {
    READY
        .get_or_init(|| {
            let status = Command::new(repo_root().join("tests/tools/setup.sh"))
                .status()
                .map_err(|e| format!("cannot run tests/tools/setup.sh: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("tests/tools/setup.sh failed: {status}"))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn venv() -> PathBuf {
    std::env::var_os("OSSBRIDGE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/venv"))
}

fn python() -> PathBuf {
    venv().join("bin/python")
}

/// The AWS CLI (v1, from PyPI) in the project virtualenv, installed by
/// tests/tools/setup.sh: the client the stack deployment tests drive the
/// emulator with, and the one deploy/aws/run-sync.sh calls.
pub fn aws_cli() -> Result<PathBuf> {
    setup()?;
    Ok(venv().join("bin/aws"))
}

/// Runs a tool with `stdin` and returns its stdout.
async fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Result<String> {
    tokio::task::spawn_blocking(setup).await??;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", program.display()))?;
    let mut input = child.stdin.take().context("stdin")?;
    input.write_all(stdin).await?;
    drop(input);
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!(
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn signers_py() -> String {
    repo_root()
        .join("tests/tools/signers.py")
        .display()
        .to_string()
}

/// `webhook-signature` for a delivery, from the PyPI `standardwebhooks`
/// package.
pub async fn standard_webhooks_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String> {
    let ts = timestamp.to_string();
    run(
        &python(),
        &[&signers_py(), "standard-webhooks", secret, id, &ts],
        body,
    )
    .await
}

/// A GitHub-style signature header value (`sha256=HEX` from
/// `@octokit/webhooks-methods`, `sha1=HEX` from node:crypto), over
/// `TIMESTAMP.BODY` when `timestamp` is given.
pub async fn github_signature(
    secret: &str,
    algorithm: &str,
    timestamp: Option<i64>,
    body: &[u8],
) -> Result<String> {
    let script = repo_root().join("tests/tools/node/github-sign.mjs");
    let script = script.display().to_string();
    let ts = timestamp.map(|t| t.to_string());
    let mut args = vec![script.as_str(), secret, algorithm];
    if let Some(ts) = &ts {
        args.push(ts);
    }
    run(Path::new("node"), &args, body).await
}

/// The base64 RSA-SHA1 `Authorization` of an MNS push with these headers.
pub async fn mns_signature(
    key_pem: &Path,
    method: &str,
    resource: &str,
    headers: &[(String, String)],
) -> Result<String> {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let request = serde_json::json!({ "method": method, "resource": resource, "headers": headers });
    let key = key_pem.display().to_string();
    run(
        &python(),
        &[&signers_py(), "mns", &key],
        request.to_string().as_bytes(),
    )
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertServerStats {
    pub main_connections: u64,
    pub other_connections: u64,
    /// GET /cert.pem on either server.
    pub fetches: u64,
}

/// The fake MNS certificate host (see tests/tools/cert_server.py).
#[derive(Debug)]
pub struct CertServer {
    child: Child,
    pub port: u16,
    pub other_port: u16,
    pub ca: PathBuf,
    pub signing_key: PathBuf,
    pub other_signing_key: PathBuf,
    /// The 512-bit key of `/aliyun-512.pem`, whose certificate expired in
    /// 2016 (as Aliyun's does).
    pub legacy_signing_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl CertServer {
    pub fn start() -> Result<CertServer> {
        setup()?;
        let dir = tempfile::tempdir()?;
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/tools/cert_server.py"))
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("start cert_server.py")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let info: Value =
            serde_json::from_str(&line).with_context(|| format!("cert_server said {line:?}"))?;
        let path = |k: &str| PathBuf::from(info[k].as_str().unwrap_or_default());
        Ok(CertServer {
            port: info["port"].as_u64().context("port")? as u16,
            other_port: info["other_port"].as_u64().context("other_port")? as u16,
            ca: path("ca"),
            signing_key: path("signing_key"),
            other_signing_key: path("other_signing_key"),
            legacy_signing_key: path("legacy_signing_key"),
            child,
            _dir: dir,
        })
    }

    /// `https://127.0.0.1:PORT{path}` on the allowlisted server.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The same on the server the allowlist does not cover.
    pub fn other_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.other_port)
    }

    /// Connections accepted so far by each server, and certificate fetches.
    pub async fn stats(&self) -> Result<CertServerStats> {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca)?)?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(ca)
            .build()?;
        let stats: Value = client.get(self.url("/stats")).send().await?.json().await?;
        // The /stats request itself is one connection to main.
        Ok(CertServerStats {
            main_connections: stats["main"].as_u64().unwrap_or(0).saturating_sub(1),
            other_connections: stats["other"].as_u64().unwrap_or(0),
            fetches: stats["fetches"].as_u64().unwrap_or(0),
        })
    }
}

impl Drop for CertServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// deploy/aws/ossbridge.yaml as JSON, read with cfn-lint's own YAML loader
/// (from the project virtualenv), which turns the short-form tags (!Ref,
/// !Sub, ...) into their JSON form.
pub fn cloudformation_template() -> Result<Value> {
    const TEMPLATE: &str = "deploy/aws/ossbridge.yaml";
    const LOAD: &str = "import json, sys\n\
        from cfnlint.decode import cfn_yaml\n\
        json.dump(cfn_yaml.load(sys.argv[1]), sys.stdout)\n";
    setup()?;
    let output = Command::new(python())
        .arg("-c")
        .arg(LOAD)
        .arg(repo_root().join(TEMPLATE))
        .output()
        .with_context(|| format!("run {}", python().display()))?;
    anyhow::ensure!(
        output.status.success(),
        "loading {TEMPLATE} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}
