use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ossbridge_runtime::cli::{self, ConfigArgs};
use ossbridge_runtime::shutdown;
use ossbridge_transfer::sync::{
    DEFAULT_MAX_DELETE_PERCENT, DeleteLimits, Filter, Mode, ProgressDisplay, SyncOptions, run_sync,
};
use ossbridge_transfer::{Config, run};

const PROGRAM: &str = "ossbridge-transfer";
/// `sync` stopped by SIGTERM or Ctrl-C before finishing: run it again to
/// finish (0 done, 1 something failed, 2 usage, 3 interrupted).
const EXIT_INTERRUPTED: u8 = 3;

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drains the queue (the default without a subcommand).
    Run,
    /// Reconciles the destination bucket with the source: lists both,
    /// copies what is missing or different (docs/sync.md).
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
struct SyncArgs {
    /// Configuration file (also accepted before `sync`).
    #[arg(long, env = "OSSBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Put copy jobs on `queue_url` for the workers instead of copying here.
    #[arg(long)]
    enqueue: bool,
    /// Print what would be copied or deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete destination objects the source does not have (needs
    /// --yes-delete).
    #[arg(long)]
    delete: bool,
    /// Confirms --delete.
    #[arg(long)]
    yes_delete: bool,
    /// Refuse all deletes (before the first) if there would be more than N.
    #[arg(long, value_name = "N")]
    max_delete: Option<u64>,
    /// Refuse all deletes (before the first) if they would remove more than
    /// PERCENT of the destination's objects in scope.
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MAX_DELETE_PERCENT)]
    max_delete_percent: f64,
    /// Delete even when the source lists no objects at all.
    #[arg(long)]
    allow_empty_source: bool,
    /// Only keys starting with PREFIX (repeatable).
    #[arg(long, value_name = "PREFIX")]
    include: Vec<String>,
    /// Never keys starting with PREFIX (repeatable; wins over --include).
    #[arg(long, value_name = "PREFIX")]
    exclude: Vec<String>,
    /// Overrides `destination.prefix`.
    #[arg(long, value_name = "PREFIX")]
    destination_prefix: Option<String>,
    /// Copies at once [default: worker.concurrency].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Destination HEADs (recorded-ETag checks) at once.
    #[arg(long, default_value_t = 32)]
    head_concurrency: usize,
    /// Key ranges listed at once.
    #[arg(long, default_value_t = 4)]
    list_concurrency: usize,
    /// Progress: a bar on a terminal, log lines otherwise (auto), or force
    /// one.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bar", "log"])]
    progress: String,
    /// Seconds between `sync_progress` log lines.
    #[arg(long, default_value_t = 5)]
    progress_interval_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Run) => worker(cli.config).await,
        Some(Command::Sync(args)) => sync(cli.config, args).await,
    }
}

async fn worker(args: ConfigArgs) -> ExitCode {
    let config: Config = match cli::start(PROGRAM, &args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Err(e) = config.require_queue_url("by the worker") {
        eprintln!("{PROGRAM}: {e}");
        return ExitCode::from(cli::EXIT_CONFIG);
    }
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

async fn sync(top: ConfigArgs, args: SyncArgs) -> ExitCode {
    // Refuse before loading anything: the answer does not depend on it.
    if args.delete && !args.yes_delete && !args.dry_run {
        eprintln!(
            "{PROGRAM}: sync --delete deletes destination objects; add --yes-delete to confirm (or run with --dry-run first)"
        );
        return ExitCode::from(cli::EXIT_CONFIG);
    }
    let config_args = ConfigArgs {
        config: args.config.clone().or(top.config),
    };
    let config: Config = match cli::start(PROGRAM, &config_args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let options = SyncOptions {
        mode: if args.enqueue {
            Mode::Enqueue
        } else {
            Mode::InProcess
        },
        dry_run: args.dry_run,
        delete: args.delete,
        confirm_delete: args.yes_delete,
        delete_limits: DeleteLimits {
            max_count: args.max_delete,
            max_percent: args.max_delete_percent,
            allow_empty_source: args.allow_empty_source,
        },
        filter: Filter {
            include: args.include,
            exclude: args.exclude,
        },
        destination_prefix: args.destination_prefix,
        concurrency: args.concurrency,
        head_concurrency: args.head_concurrency,
        list_concurrency: args.list_concurrency,
        progress: match args.progress.as_str() {
            "bar" => ProgressDisplay::Bar,
            "log" => ProgressDisplay::Log,
            _ => ProgressDisplay::Auto,
        },
        progress_interval: Duration::from_secs(args.progress_interval_secs.max(1)),
    };
    match run_sync(config, options, shutdown::on_termination_signal()).await {
        Ok(summary) => {
            print!("{summary}");
            if summary.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            tracing::error!(event = "sync_failed", error = %e);
            eprintln!("{PROGRAM}: {e}");
            if e.is_usage() {
                ExitCode::from(cli::EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
