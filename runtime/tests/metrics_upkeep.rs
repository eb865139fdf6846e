//! Histogram samples must not pile up in a process nobody scrapes: the
//! recorder folds them into buckets on its own (see `metrics::prometheus`).
//! Its own test binary, so no other test's allocations move the RSS.

use std::time::Duration;

use ossbridge_runtime::metrics::{UPKEEP_INTERVAL, prometheus};

/// Samples per round: 24 MB of `f64`s, far above the allocator's noise.
const SAMPLES: usize = 3_000_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[test]
fn unscraped_histograms_stay_bounded() {
    prometheus(&[("upkeep_test_seconds", &[0.5, 1.0])]);
    let histogram = metrics::histogram!("upkeep_test_seconds");
    let mut after_round = Vec::new();
    for round in 0..4 {
        for i in 0..SAMPLES {
            histogram.record((i % 7) as f64 / 7.0);
        }
        // Past one upkeep: the samples are folded and their memory is
        // free for the next round.
        std::thread::sleep(UPKEEP_INTERVAL + Duration::from_secs(1));
        after_round.push(rss_kib());
        eprintln!("round {round}: VmRSS {} KiB", after_round[round]);
    }
    // Kept samples would add 24 MB a round (72 MB over the last three).
    let grown = after_round[3].saturating_sub(after_round[0]);
    assert!(
        grown < 20 * 1024,
        "RSS grew by {grown} KiB over three rounds: {after_round:?}"
    );
    // And the samples are all counted.
    let text = prometheus(&[]).render();
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix("upkeep_test_seconds_count "))
        .map(str::trim)
        .and_then(|v| v.parse::<usize>().ok());
    assert_eq!(count, Some(4 * SAMPLES), "{text}");
}
