use std::process::ExitCode;

use clap::Parser;
use ossbridge_gateway::{Config, Listeners, run};
use ossbridge_runtime::cli::{self, ConfigArgs};
use ossbridge_runtime::shutdown;

const PROGRAM: &str = "ossbridge-gateway";

// Every request allocates a few dozen small buffers across threads; glibc's
// allocator spent ~12% of the gateway's CPU on them in profiles
// (docs/benchmarks.md), mimalloc a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receives signed Aliyun OSS event notifications and enqueues them on SQS.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

async fn bind(key: &str, addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ExitCode> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        eprintln!("{PROGRAM}: {key}: cannot bind {addr}: {e}");
        ExitCode::from(cli::EXIT_CONFIG)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config: Config = match cli::start(PROGRAM, &cli.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let listeners = match (
        bind("listen", config.listen).await,
        bind("admin_listen", config.admin_listen).await,
    ) {
        (Ok(public), Ok(admin)) => Listeners {
            public,
            admin: Some(admin),
        },
        (Err(code), _) | (_, Err(code)) => return code,
    };
    match run(config, listeners, shutdown::on_termination_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(event = "gateway_failed", error = %e);
            eprintln!("{PROGRAM}: {e}");
            ExitCode::FAILURE
        }
    }
}
