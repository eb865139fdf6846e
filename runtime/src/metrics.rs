//! The process-wide Prometheus recorder both services expose on their
//! admin listener.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets: the
/// interval the exporter's own `build()`/`install()` use.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the recorder on first use, with histogram buckets per metric
/// name, and returns it. Later calls (tests running several services in
/// one process) get the first one.
///
/// The recorder keeps every histogram sample until they are folded into
/// buckets, which only a scrape or an upkeep does: "when using
/// `build_recorder` ... this upkeep task is not spawned automatically"
/// (metrics-exporter-prometheus, "Upkeep and maintenance"). A deployment
/// nobody scrapes would grow by a few samples per event for ever, so a
/// thread runs the upkeep every [`UPKEEP_INTERVAL`].
pub fn prometheus(buckets: &[(&str, &[f64])]) -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for (name, values) in buckets {
            builder = match builder
                .set_buckets_for_metric(Matcher::Full((*name).to_owned()), values)
            {
                Ok(b) => b,
                Err(e) => unreachable!("histogram buckets for {name} are static and valid: {e}"),
            };
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        spawn_upkeep(handle.clone());
        handle
    })
}

/// A plain thread, not a task: the recorder may be installed before (or
/// outlive) any runtime, and the upkeep must not wait behind busy workers.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        // Metrics still work; only an unscraped histogram grows.
        tracing::warn!(event = "metrics_upkeep_not_started", error = %e);
    }
}
