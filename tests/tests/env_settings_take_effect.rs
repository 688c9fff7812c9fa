//! Sampler, filter, limits, metric interval and histogram aggregation variables take effect end
//! to end.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::{Collector, Value};

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

#[test]
fn rust_log_filters_what_is_exported() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("RUST_LOG", "warn"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    // Only the WARN event is a log record; INFO spans are filtered out as well.
    assert_eq!(app.counts("logs"), Some((1, 0)), "{}", app.stdout);
    assert_eq!(app.counts("traces"), Some((0, 0)), "{}", app.stdout);
    let r = collector
        .wait_for(Duration::from_secs(20), |r| !r.logs.is_empty())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.logs[0].body, "slow query");
}

#[test]
fn attribute_limits_cut_values_and_counts() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "4"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    let r = collector
        .wait_for(Duration::from_secs(20), |r| r.span("checkout").is_some())
        .unwrap_or_else(|e| panic!("{e}"));
    let root = r.span("checkout").expect("root");
    assert!(root.attributes.len() <= 4, "{:?}", root.attributes);
    for value in root.attributes.values() {
        if let Value::Str(s) = value {
            assert!(s.chars().count() <= 3, "{s:?} was not cut");
        }
    }
}

#[test]
fn metrics_are_exported_at_the_configured_interval() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["trickle", "20"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    // 20 ticks of 100 ms with a 300 ms interval: several exports while running, each a
    // cumulative total, and the last one (at shutdown) equal to 20. The default interval of 60 s
    // would give a single export.
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.points("e2e.ticks").iter().any(|p| p.value == Some(20.0))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let values: Vec<f64> = r
        .points("e2e.ticks")
        .iter()
        .filter_map(|p| p.value)
        .collect();
    assert!(values.len() >= 3, "{values:?}");
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {values:?}"
    );
}

#[test]
fn console_exporters_print_every_signal_to_stdout() {
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_TRACES_EXPORTER", "console"),
            ("OTEL_METRICS_EXPORTER", "console"),
            ("OTEL_LOGS_EXPORTER", "console"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    assert_eq!(app.counts("traces"), Some((3, 0)));
    assert_eq!(app.counts("logs"), Some((3, 0)));
    // The app's two points, and lookout's own lookout.spans.dropped, lookout.logs.dropped and
    // lookout.redacted.
    assert_eq!(app.counts("metrics"), Some((5, 0)));
    let name_lines = |name: &str| {
        app.stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("Name") && l.trim_end().ends_with(name))
            .count()
    };
    assert_eq!(name_lines(": checkout"), 1, "{}", app.stdout);
    assert_eq!(name_lines(": db.query"), 1, "{}", app.stdout);
    assert_eq!(name_lines(": e2e.requests"), 1, "{}", app.stdout);
    assert_eq!(name_lines(": lookout.spans.dropped"), 1, "{}", app.stdout);
    assert!(app.stdout.contains("\"slow query\""), "{}", app.stdout);
}
