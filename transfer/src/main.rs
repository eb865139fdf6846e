use std::process::ExitCode;

use clap::Parser;
use ossbridge_runtime::cli::{self, ConfigArgs};
use ossbridge_runtime::shutdown;
use ossbridge_transfer::{Config, run};

const PROGRAM: &str = "ossbridge-transfer";

// Copies stream through many small buffers on several threads; mimalloc
// keeps allocation cheap and RSS flat (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let admin = match config.metrics.listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                eprintln!("{PROGRAM}: metrics.listen: cannot bind {addr}: {e}");
                return ExitCode::from(cli::EXIT_CONFIG);
            }
        },
        None => None,
    };
    match run(config, admin, shutdown::on_termination_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(event = "transfer_failed", error = %e);
            eprintln!("{PROGRAM}: {e}");
            ExitCode::FAILURE
        }
    }
}
