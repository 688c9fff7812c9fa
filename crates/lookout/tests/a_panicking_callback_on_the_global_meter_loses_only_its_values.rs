//! The case: an observable gauge whose callback panics, registered on the global meter
//! (`opentelemetry::global::meter`, as libraries do). Through lookout's global meter provider the
//! panic is caught: that gauge's values are left out, every other metric is still collected and
//! exported, and the SDK's pipeline is not poisoned (opentelemetry-rust #3640).
//! (One test per file: the global meter provider is process-wide.)
#![allow(clippy::unwrap_used)]

use lookout::opentelemetry::global;
use lookout::{ConsoleFormat, ExporterKind, Signal};

#[test]
fn a_panicking_callback_on_the_global_meter_loses_only_its_own_values() {
    let telemetry = lookout::Telemetry::builder()
        .console(ConsoleFormat::Off)
        .exporter(Signal::Traces, ExporterKind::None)
        .exporter(Signal::Metrics, ExporterKind::None)
        .exporter(Signal::Logs, ExporterKind::None)
        .init()
        .expect("init");
    let meter = global::meter("library");
    let requests = meter.u64_counter("requests").with_unit("1").build();
    let _bad = meter
        .u64_observable_gauge("bad.gauge")
        .with_callback(|_| panic!("the gauge's source is gone"))
        .build();
    let _good = meter
        .f64_observable_gauge("good.gauge")
        .with_description("still observed")
        .with_callback(|o| o.observe(1.5, &[]))
        .build();
    let latency = meter
        .f64_histogram("latency")
        .with_boundaries(vec![0.1, 1.0])
        .build();

    for round in 1..=3_u64 {
        requests.add(1, &[]);
        latency.record(0.5, &[]);
        let snapshot = telemetry
            .metrics()
            .unwrap()
            .collect()
            .unwrap_or_else(|e| panic!("collection {round} fails: {e}"));
        let names: Vec<String> = snapshot
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .map(|m| m.name().to_owned())
            .collect();
        for name in ["requests", "good.gauge", "latency"] {
            assert!(names.contains(&name.to_owned()), "round {round}: {names:?}");
        }
        assert!(!names.contains(&"bad.gauge".to_owned()), "{names:?}");
        let histogram = snapshot
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == "latency")
            .unwrap();
        match histogram.data() {
            lookout::opentelemetry_sdk::metrics::data::AggregatedMetrics::F64(
                lookout::opentelemetry_sdk::metrics::data::MetricData::Histogram(h),
            ) => {
                let point = h.data_points().next().unwrap();
                assert_eq!(
                    point.bounds().collect::<Vec<_>>(),
                    [0.1, 1.0],
                    "advice kept"
                );
                assert_eq!(point.count(), round);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(lookout::metrics::poisoned().is_none());
    assert!(!lookout::stats().metrics.failing);
    telemetry.blocking_shutdown().expect("a clean shutdown");
}
