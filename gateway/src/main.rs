use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ossbridge_gateway::replay::cli::{self as replay_cli, Input};
use ossbridge_gateway::replay::dlq::Redrive;
use ossbridge_gateway::replay::{InputFormat, Options};
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replays OSS events (a file, stdin or the event archive) through the
    /// live path, or moves messages from a dead-letter queue back.
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The configured source whose normalization, filters and queue apply.
    #[arg(long)]
    source: Option<String>,
    /// Force the format of every document: oss_events, cloudevents, mns,
    /// queue_message or archive (detected per document otherwise).
    #[arg(long)]
    format: Option<String>,
    /// Print what would be enqueued (or moved); send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Move messages from this dead-letter queue (URL) ...
    #[arg(long, conflicts_with_all = ["archive", "input", "source", "format"])]
    from_dlq: Option<String>,
    /// ... to this queue (URL); by default the one queue whose redrive
    /// policy names the DLQ.
    #[arg(long, requires = "from_dlq")]
    to: Option<String>,
    /// Messages to move at most.
    #[arg(long, requires = "from_dlq")]
    limit: Option<usize>,
    /// Replay the event archive at s3://BUCKET/PREFIX ...
    #[arg(long, conflicts_with = "input", requires_all = ["since", "until"])]
    archive: Option<String>,
    /// ... records received at or after this time (RFC 3339) ...
    #[arg(long, requires = "archive")]
    since: Option<String>,
    /// ... and before this one.
    #[arg(long, requires = "archive")]
    until: Option<String>,
    /// Input file, or - for stdin.
    input: Option<PathBuf>,
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
    if let Some(Command::Replay(args)) = cli.command {
        return replay(args).await;
    }
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

async fn replay(args: ReplayArgs) -> ExitCode {
    let usage = |message: &str| {
        eprintln!("{PROGRAM} replay: {message}");
        ExitCode::from(cli::EXIT_CONFIG)
    };
    let config: Option<Config> = match (&args.config.config, &args.from_dlq) {
        (None, Some(_)) => None,
        _ => match cli::start(PROGRAM, &args.config) {
            Ok(config) => Some(config),
            Err(code) => return code,
        },
    };
    let result = if let Some(dlq_url) = args.from_dlq {
        let redrive = Redrive {
            dlq_url,
            // Empty: the queue whose redrive policy names the DLQ.
            target_url: args.to.unwrap_or_default(),
            limit: args.limit,
            dry_run: args.dry_run,
        };
        replay_cli::redrive(config.as_ref(), redrive).await
    } else {
        let (Some(config), Some(source)) = (config, args.source) else {
            return usage("--source ID is required (and --config FILE)");
        };
        let format = match args.format.as_deref().map(str::parse::<InputFormat>) {
            None => None,
            Some(Ok(format)) => Some(format),
            Some(Err(e)) => return usage(&e),
        };
        let input = match (args.archive, args.since, args.until, args.input) {
            (Some(url), Some(since), Some(until), _) => {
                match (parse_time(&since), parse_time(&until)) {
                    (Ok(since), Ok(until)) => Input::Archive { url, since, until },
                    _ => return usage("--since and --until take RFC 3339 times"),
                }
            }
            (None, _, _, Some(path)) => Input::File(path),
            _ => return usage("give an input FILE (- for stdin) or --archive"),
        };
        let options = Options {
            format,
            dry_run: args.dry_run,
            ..Options::default()
        };
        replay_cli::replay(&config, &source, input, options).await
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{PROGRAM} replay: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, time::error::Parse> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
}
