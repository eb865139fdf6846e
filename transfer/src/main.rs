use std::process::ExitCode;

use clap::Parser;
use ossbridge_runtime::cli::{self, ConfigArgs};
use ossbridge_runtime::shutdown;
use ossbridge_transfer::{Config, run};

const PROGRAM: &str = "ossbridge-transfer";

/// Drains SQS and copies objects from Aliyun OSS to Amazon S3.
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
    match run(config, shutdown::on_termination_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(event = "transfer_failed", error = %e);
            eprintln!("{PROGRAM}: {e}");
            ExitCode::FAILURE
        }
    }
}
