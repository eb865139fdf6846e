//! Counters shared by the listing, the checks and the copies, and how they
//! are shown while the sync runs: a progress bar when stderr is a terminal,
//! otherwise a `sync_progress` log line every few seconds (CI, ECS, cron).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything counted during one sync.
#[derive(Debug, Default)]
pub struct Counters {
    pub source_objects: AtomicU64,
    pub source_bytes: AtomicU64,
    pub destination_objects: AtomicU64,
    /// Destination keys the source does not have (in scope).
    pub extra: AtomicU64,
    pub to_copy: AtomicU64,
    pub to_copy_bytes: AtomicU64,
    /// Destination HEADs made to compare recorded ETags.
    pub checked: AtomicU64,
    pub already_current: AtomicU64,
    pub copied: AtomicU64,
    pub copied_bytes: AtomicU64,
    /// Same bytes; headers, metadata and records rewritten server-side.
    pub metadata_updated: AtomicU64,
    /// Same bytes written by another tool (e.g. Data Transfer Hub):
    /// recorded server-side, not downloaded.
    pub adopted: AtomicU64,
    pub enqueued: AtomicU64,
    pub to_delete: AtomicU64,
    pub deleted: AtomicU64,
    /// Not deleted: the source had the key again when the delete ran.
    pub delete_skipped: AtomicU64,
    /// Listed at the source but gone when its copy ran.
    pub vanished: AtomicU64,
    pub failed: AtomicU64,
}

/// Adds `n` to a counter (relaxed: these are statistics, nothing is
/// ordered by them).
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    /// Objects whose work is over (copied, enqueued, deleted, found
    /// current after all, vanished or failed), against those planned.
    fn done_and_planned(&self) -> (u64, u64) {
        let done = get(&self.copied)
            + get(&self.enqueued)
            + get(&self.deleted)
            + get(&self.vanished)
            + get(&self.failed);
        (done, get(&self.to_copy) + get(&self.to_delete))
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    Bar,
    Log,
}

/// Shows progress until `stop` is cancelled.
pub fn spawn(
    counters: std::sync::Arc<Counters>,
    display: Display,
    interval: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let bar = match display {
        Display::Bar => true,
        Display::Log => false,
        Display::Auto => std::io::stderr().is_terminal(),
    };
    if bar {
        tokio::spawn(bar_loop(counters, stop))
    } else {
        tokio::spawn(log_loop(counters, interval, stop))
    }
}

async fn bar_loop(counters: std::sync::Arc<Counters>, stop: CancellationToken) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} objects {msg} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let started = Instant::now();
    loop {
        let (done, planned) = counters.done_and_planned();
        bar.set_length(planned);
        bar.set_position(done);
        let bytes = get(&counters.copied_bytes);
        let rate = bytes as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{} of {} ({}/s), listed {} / {}",
            HumanBytes(bytes),
            HumanBytes(get(&counters.to_copy_bytes)),
            HumanBytes(rate as u64),
            get(&counters.source_objects),
            get(&counters.destination_objects),
        ));
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    bar.finish_and_clear();
}

async fn log_loop(counters: std::sync::Arc<Counters>, interval: Duration, stop: CancellationToken) {
    let started = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let (done, planned) = counters.done_and_planned();
        let rate = done as f64 / elapsed;
        // The plan grows while the listing runs, so this ETA is a lower
        // bound until listing is over.
        let eta_secs = if rate > 0.0 {
            (planned.saturating_sub(done) as f64 / rate).round() as u64
        } else {
            0
        };
        tracing::info!(
            event = "sync_progress",
            listed_source = get(&counters.source_objects),
            listed_destination = get(&counters.destination_objects),
            checked = get(&counters.checked),
            to_copy = get(&counters.to_copy),
            copied = get(&counters.copied),
            enqueued = get(&counters.enqueued),
            bytes_copied = get(&counters.copied_bytes),
            already_current = get(&counters.already_current),
            deleted = get(&counters.deleted),
            failed = get(&counters.failed),
            objects_per_second = rate,
            bytes_per_second = get(&counters.copied_bytes) as f64 / elapsed,
            eta_secs,
        );
    }
}
