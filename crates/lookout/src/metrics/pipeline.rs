//! lookout's own pipeline figures as metrics (`lookout.spans.dropped`, `lookout.logs.dropped`),
//! read from the counters behind [`crate::stats`] at each collection: what a full export queue
//! turned away shows on `/metrics` and in OTLP, where an alert can see it.

use std::sync::atomic::Ordering::Relaxed;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::config::Signal;
use crate::stats::COUNTERS;

/// Registers the observable counters on `provider`.
pub(crate) fn register(provider: &SdkMeterProvider) {
    let meter = provider.meter_with_scope(
        InstrumentationScope::builder("lookout")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    let dropped = [
        (
            Signal::Traces,
            "lookout.spans.dropped",
            "{span}",
            "Spans dropped because the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE)",
        ),
        (
            Signal::Logs,
            "lookout.logs.dropped",
            "{log_record}",
            "Log records dropped because the export queue was full (OTEL_BLRP_MAX_QUEUE_SIZE)",
        ),
    ];
    meter
        .u64_observable_counter("lookout.redacted")
        .with_unit("{value}")
        .with_description("Attribute values and log bodies redacted before export")
        .with_callback(super::contained("lookout.redacted", |o| {
            o.observe(crate::redact::REDACTED_COUNT.load(Relaxed), &[])
        }))
        .build();
    for (signal, name, unit, description) in dropped {
        meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(super::contained(name, move |o| {
                o.observe(COUNTERS.signal(signal).dropped.load(Relaxed), &[])
            }))
            .build();
    }
}
