//! An observable instrument's callback that panics (registered on the SDK directly) poisons the
//! OpenTelemetry SDK's metric pipeline (opentelemetry-rust #3640). lookout's collect does not panic
//! with it: it returns an error naming the panic, now and at every later collection, reports it in
//! `lookout::metrics::poisoned()` and counts metrics as failing in `lookout::stats()`. A callback
//! wrapped in `lookout::metrics::contained` panics without taking the other metrics down.
//! (One test per file: the poisoned state is process-wide, like the SDK's.)
#![allow(clippy::unwrap_used)]

use lookout::metrics::Metrics;
use lookout::opentelemetry::metrics::MeterProvider as _;
use lookout::opentelemetry_sdk::Resource;

#[test]
fn contained_callbacks_keep_metrics_alive_and_a_poisoned_pipeline_is_an_error() {
    // Contained: the panic is caught, the other instruments are still collected.
    let metrics = Metrics::in_memory(Resource::builder_empty().build());
    let meter = metrics.provider().meter("app");
    meter.u64_counter("requests").build().add(3, &[]);
    let _contained = meter
        .u64_observable_gauge("contained.gauge")
        .with_callback(lookout::metrics::contained("contained.gauge", |_| {
            panic!("boom inside a contained callback")
        }))
        .build();
    for _ in 0..2 {
        let snapshot = metrics
            .collect()
            .expect("a contained panic does not fail the collection");
        let names: Vec<String> = snapshot
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .map(|m| m.name().to_owned())
            .collect();
        assert!(names.contains(&"requests".to_owned()), "{names:?}");
    }
    assert!(lookout::metrics::poisoned().is_none());
    assert!(!lookout::stats().metrics.failing);

    // Not contained: the SDK's pipeline is poisoned; collect says so instead of panicking.
    let metrics = Metrics::in_memory(Resource::builder_empty().build());
    let meter = metrics.provider().meter("app");
    meter.u64_counter("requests").build().add(3, &[]);
    let _bad = meter
        .u64_observable_gauge("bad.gauge")
        .with_callback(|_| panic!("boom in a raw callback"))
        .build();
    let first = metrics.collect().expect_err("the collection fails");
    assert!(
        first.to_string().contains("boom in a raw callback"),
        "names the panic: {first}"
    );
    let second = metrics.collect().expect_err("and keeps failing");
    assert!(second.to_string().contains("poisoned"), "{second}");
    let why = lookout::metrics::poisoned().expect("reported");
    assert!(why.contains("boom in a raw callback"), "{why}");
    let stats = lookout::stats();
    assert!(stats.metrics.failing, "{stats:?}");
    assert!(
        stats
            .last_error
            .is_some_and(|e| e.message.contains("poisoned")),
        "the last error says why"
    );
}
