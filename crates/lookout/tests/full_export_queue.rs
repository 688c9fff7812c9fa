//! Spans a full export queue turns away are counted, and the count is a metric.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use lookout::opentelemetry::trace::{Span as _, Tracer as _};
use lookout::opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use lookout::{BatchSettings, ConsoleFormat, ExporterKind, Signal};

#[test]
fn dropped_spans_are_counted_and_exposed_as_a_metric() {
    let telemetry = lookout::Telemetry::builder()
        .console(ConsoleFormat::Off)
        .exporter(Signal::Traces, ExporterKind::Console)
        .exporter(Signal::Metrics, ExporterKind::None)
        .exporter(Signal::Logs, ExporterKind::None)
        .span_batch(BatchSettings {
            max_queue_size: 4,
            max_export_batch_size: 4,
            scheduled_delay: Duration::from_secs(60),
            export_timeout: Duration::from_secs(5),
        })
        .init()
        .expect("init");
    let tracer = lookout::opentelemetry::global::tracer("queue");
    for _ in 0..200 {
        tracer.start("unit").end();
    }
    let dropped = lookout::stats().traces.dropped;
    assert!(
        dropped > 0,
        "a queue of 4 cannot hold 200 spans ended at once"
    );
    assert!(dropped <= 200 - 4, "the queue itself was used: {dropped}");

    let snapshot = telemetry.metrics().unwrap().collect().unwrap();
    let metric = snapshot
        .scope_metrics()
        .filter(|s| s.scope().name() == "lookout")
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == "lookout.spans.dropped")
        .expect("lookout.spans.dropped is registered at init");
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
        panic!("lookout.spans.dropped is a u64 counter");
    };
    assert!(sum.is_monotonic());
    let value: u64 = sum.data_points().map(|p| p.value()).sum();
    assert_eq!(value, dropped);

    let report = telemetry.blocking_shutdown().unwrap_err();
    assert_eq!(report.report().traces.lost, dropped, "{report}");
}
