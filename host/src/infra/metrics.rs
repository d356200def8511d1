//! The metrics registry behind `/metrics`: request counters and latency histograms by route,
//! and the process's own figures (CPU, memory, file descriptors, threads), kept by the
//! `metrics` facade and rendered as Prometheus text by `metrics-exporter-prometheus`.
//!
//! Each host state owns its recorder rather than installing a global one, so that several
//! hosts in one process (the tests, the benchmark) keep their figures apart.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_histogram, histogram, with_local_recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

const REQUESTS: &str = "nova_http_requests_total";
const LATENCY: &str = "nova_http_request_duration_seconds";
/// Latency buckets in seconds: from a cached read to a slow plugin call.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

pub struct Metrics {
    recorder: PrometheusRecorder,
    process: metrics_process::Collector,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LATENCY.into()), &BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            // The buckets are a non-empty constant, so this branch is never taken.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let process = metrics_process::Collector::new("nova_");
        with_local_recorder(&recorder, || {
            describe_counter!(REQUESTS, "HTTP requests by route and status.");
            describe_histogram!(
                LATENCY,
                metrics::Unit::Seconds,
                "HTTP request latency by route."
            );
            process.describe();
        });
        Self { recorder, process }
    }
}

impl Metrics {
    /// Counts one request under its route template; the caller keeps `method` and `path` to
    /// bounded sets so the label set cannot grow with the input.
    pub fn observe(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        let (method, path) = (method.to_owned(), path.to_owned());
        with_local_recorder(&self.recorder, || {
            counter!(REQUESTS, "method" => method.clone(), "path" => path.clone(), "status" => status.to_string())
                .increment(1);
            histogram!(LATENCY, "method" => method, "path" => path).record(elapsed.as_secs_f64());
        });
    }

    /// The Prometheus text exposition, with the process figures read now.
    pub fn render(&self) -> String {
        with_local_recorder(&self.recorder, || self.process.collect());
        self.recorder.handle().render()
    }
}
