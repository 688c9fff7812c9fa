//! Sampler and histogram aggregation variables take effect end to end.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::Collector;

#[test]
fn always_off_sampler_exports_no_spans_but_keeps_logs() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    assert_eq!(app.counts("traces"), Some((0, 0)));
    assert_eq!(app.counts("logs"), Some((3, 0)));
    let r = collector
        .wait_for(Duration::from_secs(20), |r| r.logs.len() >= 3)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.spans.is_empty());
}

#[test]
fn exponential_histograms_when_asked_for() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                "base2_exponential_bucket_histogram",
            ),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            !r.points("e2e.latency").is_empty()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let latency = r.points("e2e.latency");
    assert_eq!(latency[0].data_type, "ExponentialHistogram");
    assert_eq!((latency[0].count, latency[0].sum), (Some(1), Some(0.25)));
}
