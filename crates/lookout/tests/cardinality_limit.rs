//! The per-instrument cardinality limit: 10,000 distinct attribute sets make at most the limit
//! plus one overflow series, and nothing recorded is lost.
#![allow(clippy::unwrap_used)]

use lookout::metrics::{DEFAULT_CARDINALITY_LIMIT, Metrics, OVERFLOW_ATTRIBUTE};
use lookout::opentelemetry::KeyValue;
use lookout::opentelemetry::metrics::MeterProvider as _;
use lookout::opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

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
    let snapshot = metrics.collect().unwrap();
    let metric = snapshot
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == "requests")
        .unwrap();
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
        panic!("not a u64 sum");
    };
    let points: Vec<_> = sum.data_points().collect();
    assert!(
        points.len() <= DEFAULT_CARDINALITY_LIMIT + 1,
        "{} series",
        points.len()
    );
    let overflow: Vec<_> = points
        .iter()
        .filter(|p| {
            p.attributes()
                .any(|kv| kv.key.as_str() == OVERFLOW_ATTRIBUTE)
        })
        .collect();
    assert_eq!(overflow.len(), 1, "one overflow series");
    let total: u64 = points.iter().map(|p| p.value()).sum();
    assert_eq!(total, 10_000, "nothing lost, nothing counted twice");
    assert!(overflow[0].value() >= 10_000 - DEFAULT_CARDINALITY_LIMIT as u64);
}
