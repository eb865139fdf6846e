//! What both ossbridge binaries do the same way at start-up: load and
//! validate configuration, set up logging, build AWS SDK configuration and
//! turn termination signals into one cancellation token.

pub mod aws;
pub mod cli;
pub mod config;
#[cfg(feature = "schemars")]
pub mod config_docs;
pub mod dns;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod shutdown;

pub use config::{ConfigError, load_config, parse_toml};
pub use error::error_chain;
