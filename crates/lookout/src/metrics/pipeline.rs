//! lookout's own pipeline figures as metrics (`lookout.spans.dropped`, `lookout.logs.dropped`),
//! read from [`crate::stats`] at each collection: what a full export queue turned away shows on
//! `/metrics` and in OTLP, where an alert can see it.

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// Registers the observable counters on `provider`.
pub(crate) fn register(provider: &SdkMeterProvider) {
    let meter = provider.meter_with_scope(
        InstrumentationScope::builder("lookout")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    meter
        .u64_observable_counter("lookout.spans.dropped")
        .with_unit("{span}")
        .with_description(
            "Spans dropped because the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE)",
        )
        .with_callback(|o| o.observe(crate::stats().traces.dropped, &[]))
        .build();
    meter
        .u64_observable_counter("lookout.logs.dropped")
        .with_unit("{log_record}")
        .with_description(
            "Log records dropped because the export queue was full (OTEL_BLRP_MAX_QUEUE_SIZE)",
        )
        .with_callback(|o| o.observe(crate::stats().logs.dropped, &[]))
        .build();
}
