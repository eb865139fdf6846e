//! The gateway and transfer binaries as child processes, configured by a
//! TOML file, with their JSON logs captured.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY};

/// Path of a workspace binary built in the same profile as this program.
/// A command for `program` with only the environment a local run needs:
/// the emulator's credentials, and nothing that could send a request off
/// loopback (the instance metadata address, a user's profile, a proxy).
pub fn loopback_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
        .env("AWS_REGION", TEST_REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("NO_PROXY", "127.0.0.1,localhost,::1");
    command
}

pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    let mut dir = exe.parent().context("exe dir")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: build the binaries first (cargo build --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

/// A running service. Killed when dropped; its logs are printed if the
/// test is failing at that moment.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _config: tempfile::NamedTempFile,
}

impl Service {
    /// Starts `binary --config FILE` with credentials for the local
    /// emulator, and waits until it logs `ready_event`.
    pub async fn spawn(binary_name: &str, config_toml: &str, ready_event: &str) -> Result<Service> {
        Service::spawn_with_env(binary_name, config_toml, ready_event, &[]).await
    }

    /// [`Service::spawn`] with extra environment variables.
    pub async fn spawn_with_env(
        binary_name: &str,
        config_toml: &str,
        ready_event: &str,
        env: &[(&str, &str)],
    ) -> Result<Service> {
        let mut config = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .context("config file")?;
        std::io::Write::write_all(&mut config, config_toml.as_bytes())?;
        let mut child = loopback_command(binary(binary_name)?)
            .arg("--config")
            .arg(config.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {binary_name}"))?;
        let stderr = child.stderr.take().context("stderr")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut logs) = sink.lock() {
                    logs.push(line);
                }
            }
        });
        let mut service = Service {
            name: binary_name.to_owned(),
            child,
            logs,
            _config: config,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while service.event(ready_event).is_none() {
            if let Some(status) = service.child.try_wait()? {
                bail!(
                    "{binary_name} exited with {status} before {ready_event}:\n{}",
                    service.logs().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!("{binary_name} did not log {ready_event} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(service)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Captured log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The first JSON log line whose `event` field is `name`.
    pub fn event(&self, name: &str) -> Option<serde_json::Value> {
        self.events(name).into_iter().next()
    }

    /// Every JSON log line whose `event` field is `name`.
    pub fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == name)
            .collect()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) -> Result<()> {
        let pid = self.pid().context("already exited")?;
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM)?;
        Ok(())
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) -> Result<()> {
        self.child.start_kill()?;
        Ok(())
    }

    pub async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| format!("{} still running after {timeout:?}", self.name))?
            .context("wait")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- {} logs -----\n{}", self.name, self.logs().join("\n"));
        }
    }
}
