//! The instruments, created once per layer.

use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};
use opentelemetry_semantic_conventions::metric as semconv;

/// Seconds: the semantic conventions' advice for HTTP and RPC durations.
pub(crate) const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Bytes: powers of 4 from 64 B to 64 MiB.
const SIZE_BUCKETS: [f64; 11] = [
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

pub(crate) fn meter(meter: Option<Meter>) -> Meter {
    meter.unwrap_or_else(|| opentelemetry::global::meter("lookout-tower"))
}

pub(crate) fn duration(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build()
}

#[derive(Debug, Clone)]
pub(crate) struct HttpServerInstruments {
    pub(crate) duration: Histogram<f64>,
    pub(crate) active: UpDownCounter<i64>,
    pub(crate) request_size: Histogram<u64>,
    pub(crate) response_size: Histogram<u64>,
}

impl HttpServerInstruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        let size = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build()
        };
        HttpServerInstruments {
            duration: duration(
                meter,
                semconv::HTTP_SERVER_REQUEST_DURATION,
                "Duration of HTTP server requests",
            ),
            active: meter
                .i64_up_down_counter(semconv::HTTP_SERVER_ACTIVE_REQUESTS)
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests")
                .build(),
            request_size: size(
                semconv::HTTP_SERVER_REQUEST_BODY_SIZE,
                "Size of HTTP server request bodies",
            ),
            response_size: size(
                semconv::HTTP_SERVER_RESPONSE_BODY_SIZE,
                "Size of HTTP server response bodies",
            ),
        }
    }
}
