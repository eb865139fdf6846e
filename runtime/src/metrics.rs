//! The process-wide Prometheus recorder both services expose on their
//! admin listener.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use, with histogram buckets per metric
/// name, and returns it. Later calls (tests running several services in
/// one process) get the first one.
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
        handle
    })
}
