//! Readiness: is SQS answering? Batches and a periodic probe of every
//! queue (GetQueueAttributes) keep one flag up to date; `/readyz` reports
//! it, so a load balancer stops sending traffic while SQS is failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use ossbridge_runtime::error_chain;
use tokio_util::sync::CancellationToken;

use crate::telemetry;

#[derive(Debug)]
pub struct SqsHealth {
    ready: AtomicBool,
}

impl SqsHealth {
    pub fn new() -> Arc<SqsHealth> {
        Arc::new(SqsHealth {
            ready: AtomicBool::new(false),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set(&self, ready: bool) {
        let was = self.ready.swap(ready, Ordering::Relaxed);
        if was != ready {
            if ready {
                tracing::info!(event = "sqs_ready");
            } else {
                tracing::warn!(event = "sqs_not_ready");
            }
            telemetry::sqs_ready(ready);
        }
    }

    /// Probes every queue now and then every `interval` until `shutdown`.
    pub async fn probe(
        self: Arc<Self>,
        client: aws_sdk_sqs::Client,
        queues: Vec<String>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            let mut ok = true;
            for queue in &queues {
                let result = client
                    .get_queue_attributes()
                    .queue_url(queue)
                    .attribute_names(QueueAttributeName::QueueArn)
                    .send()
                    .await;
                if let Err(e) = result {
                    tracing::warn!(event = "sqs_probe_failed", queue = %queue, error = %error_chain(&e));
                    ok = false;
                }
            }
            self.set(ok);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
