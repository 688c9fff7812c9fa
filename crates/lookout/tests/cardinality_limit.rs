//! The per-instrument cardinality limit: 10,000 distinct attribute sets make at most the limit
//! plus one overflow series, and nothing recorded is lost.
#![allow(clippy::unwrap_used)]

use lookout::metrics::{DEFAULT_CARDINALITY_LIMIT, Metrics, OVERFLOW_ATTRIBUTE};
use lookout::opentelemetry::KeyValue;
use lookout::opentelemetry::metrics::MeterProvider as _;
use lookout::opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, SumDataPoint};
use lookout::{ConsoleFormat, ExporterKind, Signal};

/// The data points of the u64 counter `name`, and the values of its overflow series.
fn points(metrics: &Metrics, name: &str) -> (Vec<SumDataPoint<u64>>, Vec<u64>) {
    let snapshot = metrics.collect().unwrap();
    let metric = snapshot
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)
        .unwrap();
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
        panic!("not a u64 sum");
    };
    let points: Vec<_> = sum.data_points().cloned().collect();
    let overflow = points
        .iter()
        .filter(|p| {
            p.attributes()
                .any(|kv| kv.key.as_str() == OVERFLOW_ATTRIBUTE)
        })
        .map(|p| p.value())
        .collect();
    (points, overflow)
}

/// `TelemetryBuilder::cardinality_limit` reaches the provider `init` builds.
#[test]
fn the_builder_limit_reaches_the_provider_init_builds() {
    // The local view samples metrics on a thread of its own from the start; off here, so the
    // only collections are this test's and "not collected yet" holds.
    let mut builder = lookout::Telemetry::builder()
        .console(ConsoleFormat::Off)
        .view(lookout::view::ViewOptions::off())
        .cardinality_limit(10);
    for signal in [Signal::Traces, Signal::Metrics, Signal::Logs] {
        builder = builder.exporter(signal, ExporterKind::None);
    }
    let telemetry = builder.init().expect("init");
    let metrics = telemetry.metrics().expect("metrics are on");
    let counter = lookout::opentelemetry::global::meter("cardinality")
        .u64_counter("jobs")
        .build();
    for i in 0..100 {
        counter.add(1, &[KeyValue::new("job.id", i)]);
    }
    let noted = || {
        lookout::metrics::overflowing()
            .iter()
            .filter(|name| *name == "jobs")
            .count()
    };
    assert_eq!(noted(), 0, "not collected yet");
    let (points, overflow) = points(&metrics, "jobs");
    assert_eq!(noted(), 1, "{:?}", lookout::metrics::overflowing());
    metrics.collect().unwrap();
    assert_eq!(noted(), 1, "noted once, not at every collection");
    assert!(
        points.len() <= 11,
        "{} series with a limit of 10",
        points.len()
    );
    assert_eq!(overflow.len(), 1);
    assert_eq!(points.iter().map(|p| p.value()).sum::<u64>(), 100);
    drop(telemetry.blocking_shutdown());
}

#[test]
fn ten_thousand_paths_make_at_most_the_limit_plus_overflow() {
    let metrics = Metrics::in_memory(lookout::opentelemetry_sdk::Resource::builder_empty().build());
    let counter = metrics
        .provider()
        .meter("cardinality")
        .u64_counter("requests")
        .build();
    for i in 0..10_000 {
        counter.add(1, &[KeyValue::new("url.path", format!("/item/{i}"))]);
    }
    let (points, overflow) = points(&metrics, "requests");
    assert!(
        points.len() <= DEFAULT_CARDINALITY_LIMIT + 1,
        "{} series",
        points.len()
    );
    assert_eq!(overflow.len(), 1, "one overflow series");
    let total: u64 = points.iter().map(|p| p.value()).sum();
    assert_eq!(total, 10_000, "nothing lost, nothing counted twice");
    assert!(overflow[0] >= 10_000 - DEFAULT_CARDINALITY_LIMIT as u64);
}
