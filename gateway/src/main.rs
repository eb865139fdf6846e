use std::process::ExitCode;

use clap::Parser;
use ossbridge_gateway::{Config, run};
use ossbridge_runtime::cli::{self, ConfigArgs};
use ossbridge_runtime::shutdown;

const PROGRAM: &str = "ossbridge-gateway";

/// Receives signed Aliyun OSS event notifications and enqueues them on SQS.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: Config = match cli::start(PROGRAM, &cli.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{PROGRAM}: listen: cannot bind {}: {e}", config.listen);
            return ExitCode::from(cli::EXIT_CONFIG);
        }
    };
    match run(config, listener, shutdown::on_termination_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(event = "gateway_failed", error = %e);
            eprintln!("{PROGRAM}: {e}");
            ExitCode::FAILURE
        }
    }
}
