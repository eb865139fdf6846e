//! The harness behind ossbridge's end-to-end tests and local demo: a real
//! AWS emulator process on 127.0.0.1, SDK clients pointed at it, the
//! gateway and transfer binaries as child processes, and a Standard
//! Webhooks signer written independently of the gateway's verifier.

pub mod aws;
pub mod emulator;
pub mod fixtures;
pub mod pipeline;
pub mod proxy;
pub mod s3_proxy;
pub mod services;
mod sqs_dedup;
pub mod stack;
pub mod tools;
pub mod webhook;

use std::path::PathBuf;

pub use aws::{LocalAws, unique_name};
pub use emulator::Emulator;
pub use pipeline::Pipeline;
pub use proxy::FaultProxy;
pub use s3_proxy::S3Proxy;
pub use services::Service;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Credentials every local process uses against the emulator.
pub const TEST_ACCESS_KEY_ID: &str = "testing";
pub const TEST_SECRET_ACCESS_KEY: &str = "testing";
pub const TEST_REGION: &str = "us-east-1";
