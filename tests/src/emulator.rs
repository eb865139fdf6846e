//! moto server as a child process on 127.0.0.1: S3, SQS and SSM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::repo_root;

/// A running emulator. Dropping it stops the process; the emulator also
/// exits on its own when this process dies (it watches its stdin).
#[derive(Debug)]
pub struct Emulator {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Installs moto into the project's virtualenv (once per process) and
/// returns its python.
fn python() -> Result<PathBuf> {
    let result = INSTALLED.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(root.join("deploy/local/setup-emulator.sh"))
            .status()
            .map_err(|e| format!("cannot run deploy/local/setup-emulator.sh: {e}"))?;
        if !status.success() {
            return Err(format!("deploy/local/setup-emulator.sh failed: {status}"));
        }
        let venv = std::env::var_os("OSSBRIDGE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".local/venv"));
        Ok(venv.join("bin/python"))
    });
    result.clone().map_err(anyhow::Error::msg)
}

impl Emulator {
    /// Starts an emulator on a port the OS picks.
    pub fn start() -> Result<Emulator> {
        Emulator::start_on(0)
    }

    /// Starts an emulator on `port` (0 = any free port).
    pub fn start_on(port: u16) -> Result<Emulator> {
        let python = python()?;
        let script = repo_root().join("deploy/local/moto_server.py");
        let log = std::env::temp_dir().join(format!(
            "ossbridge-moto-{}-{}.log",
            std::process::id(),
            crate::aws::unique_name("m")
        ));
        let log_file = std::fs::File::create(&log).context("emulator log file")?;
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdout = child.stdout.take().context("emulator stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                bail!("emulator did not start within 60 s; see {}", log.display());
            }
        };
        let Some(port) = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("emulator failed to start: {line:?}\n{output}");
        };
        Ok(Emulator {
            port,
            child: Some(child),
            log,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Freezes the process (SIGSTOP): connections are accepted by the
    /// kernel but never answered, and no state is lost.
    pub fn pause(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// Resumes a paused emulator (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let child = self.child.as_ref().context("emulator not running")?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal)?;
        Ok(())
    }

    /// Stops the emulator (its in-memory state is lost).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh emulator on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let port = self.port;
        let mut last = None;
        // The old socket may linger for a moment.
        for _ in 0..20 {
            match Emulator::start_on(port) {
                Ok(mut fresh) => {
                    self.child = fresh.child.take();
                    self.log = fresh.log.clone();
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("restart failed")))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}
