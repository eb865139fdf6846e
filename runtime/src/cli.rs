//! Start-up shared by the binaries: the `--config` argument, loading and
//! validating the configuration, installing logging.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;

use crate::config::{CONFIG_PATH_ENV, ConfigError, load_config};
use crate::logging::{self, LogConfig};

/// A service's top-level configuration.
pub trait ServiceConfig: DeserializeOwned {
    /// Checks every value, naming the key of the first bad one.
    fn validate(&self) -> Result<(), ConfigError>;

    fn log(&self) -> &LogConfig;

    /// Loads the file (if any) plus `OSSBRIDGE_*` overrides and validates.
    fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = load_config(file)?;
        config.validate()?;
        Ok(config)
    }
}

/// `--config PATH` (or `OSSBRIDGE_CONFIG`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML); `OSSBRIDGE_*` environment variables
    /// override its keys.
    #[arg(long, env = CONFIG_PATH_ENV)]
    pub config: Option<PathBuf>,
}

/// Exit code for a configuration the process cannot start with.
pub const EXIT_CONFIG: u8 = 2;

/// Loads the configuration and installs logging. On failure the reason is
/// printed as `program: reason` and the caller exits with the returned code.
pub fn start<C: ServiceConfig>(program: &str, args: &ConfigArgs) -> Result<C, ExitCode> {
    let loaded = C::load(args.config.as_deref()).and_then(|config| {
        logging::init(config.log())?;
        Ok(config)
    });
    loaded.map_err(|e| {
        eprintln!("{program}: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}
