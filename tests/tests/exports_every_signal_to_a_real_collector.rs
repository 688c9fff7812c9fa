//! Traces, metrics and logs reach a real collector over gRPC, HTTP/protobuf and HTTP/JSON, with
//! the trace tree, attribute types, resource and log correlation intact.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::{Collector, Received, Value};

fn complete(r: &Received) -> bool {
    r.spans.len() >= 3 && r.logs.len() >= 2 && !r.points("e2e.requests").is_empty()
}

fn check(protocol: &str, runtime: &str) {
    check_with(protocol, runtime, &[]);
}

/// `Telemetry::builder().layer()` in the program's own registry, beside a layer of its own: the
/// exports are exactly those of `init()` (every assertion of `check_with`), and the program's layer
/// sees every span and event, the debug one lookout's filter keeps from lookout's layers included.
#[test]
fn from_lookouts_layer_in_a_registry_with_a_second_layer() {
    for protocol in ["grpc", "http/protobuf"] {
        let app = check_with(protocol, "none", &[("E2E_OWN_REGISTRY", "1")]);
        let seen = app
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("USER_LAYER "))
            .unwrap_or_else(|| panic!("no USER_LAYER line:\n{}", app.stdout));
        // The program's 3 spans; its 2 events lookout exports and the debug one lookout's filter
        // keeps from lookout's layers; lookout's "telemetry started", said through this registry.
        assert_eq!(seen, "spans=3 events=3 lookout=1", "{}", app.stdout);
    }
}

fn check_with(protocol: &str, runtime: &str, extra: &[(&str, &str)]) -> lookout_e2e::Run {
    // rotel 0.0.1a15's OTLP/JSON decoder rejects 64-bit integers written as strings
    // (`"asInt":"3"`), which the protobuf JSON mapping prescribes and opentelemetry-proto writes;
    // over http/json only the metric names can be checked against it.
    let metric_values = protocol != "http/json";
    let collector = Collector::start().expect("collector starts");
    let endpoint = if protocol == "grpc" {
        collector.grpc_endpoint()
    } else {
        collector.http_endpoint()
    };
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_SERVICE_NAME", "e2e-checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test,team=pay%20ments",
        ),
        ("E2E_RUNTIME", runtime),
    ];
    vars.extend_from_slice(extra);
    let app = run(&env!("CARGO_BIN_EXE_e2e-app").into(), &["tree"], &vars);
    assert_eq!(
        app.result(),
        Some("ok"),
        "{protocol}: {}\n{}",
        app.stdout,
        app.stderr
    );
    assert_eq!(app.counts("traces"), Some((3, 0)), "{}", app.stdout);
    // Two events of the app, and lookout's own "telemetry started".
    assert_eq!(app.counts("logs"), Some((3, 0)), "{}", app.stdout);

    let r = collector
        .wait_for(Duration::from_secs(20), complete)
        .unwrap_or_else(|e| panic!("{protocol}: {e}\n{}", collector.output()));

    // Trace tree: checkout -> reserve -> db.query, one trace.
    let root = r.span("checkout").expect("root span");
    let reserve = r.span("reserve").expect("child span");
    let query = r.span("db.query").expect("grandchild span");
    assert_eq!(root.parent_id, None);
    assert_eq!(reserve.parent_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(query.parent_id.as_deref(), Some(reserve.span_id.as_str()));
    assert!(r.spans.iter().all(|s| s.trace_id == root.trace_id));

    // Attribute types survive as OTLP types (u64 included: it is not turned into a string).
    assert_eq!(root.attributes["int_attr"], Value::Int(-42));
    assert_eq!(root.attributes["uint_attr"], Value::Int(42));
    assert_eq!(root.attributes["float_attr"], Value::Double(2.5));
    assert_eq!(root.attributes["bool_attr"], Value::Bool(true));
    assert_eq!(root.attributes["str_attr"], Value::Str("hello".into()));
    // Optional per-span costs stay off by default.
    assert!(!root.attributes.contains_key("thread.id"));
    assert!(!root.attributes.contains_key("code.lineno"));

    // Resource: env name, decoded OTEL_RESOURCE_ATTRIBUTES, detected attributes.
    let res = &root.resource;
    assert_eq!(res["service.name"], Value::Str("e2e-checkout".into()));
    assert_eq!(res["team"], Value::Str("pay ments".into()));
    assert_eq!(
        res["deployment.environment.name"],
        Value::Str("test".into())
    );
    assert_eq!(res["telemetry.sdk.language"], Value::Str("rust".into()));
    assert_eq!(res["telemetry.distro.name"], Value::Str("lookout".into()));
    for key in ["service.instance.id", "host.name", "process.pid", "os.type"] {
        assert!(
            res.contains_key(key),
            "{protocol}: resource lacks {key}: {res:?}"
        );
    }

    // Logs carry the ids of the span they were emitted in.
    let started = r
        .logs
        .iter()
        .find(|l| l.body == "checkout started")
        .expect("log");
    assert_eq!(started.trace_id.as_deref(), Some(root.trace_id.as_str()));
    assert_eq!(started.span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(started.attributes["step"], Value::Int(1));
    let slow = r.logs.iter().find(|l| l.body == "slow query").expect("log");
    assert_eq!(slow.span_id.as_deref(), Some(query.span_id.as_str()));
    assert_eq!(slow.severity_text, "WARN");
    assert_eq!(
        slow.resource["service.name"],
        Value::Str("e2e-checkout".into())
    );

    if !metric_values {
        return app;
    }
    // Metric points.
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            !r.points("e2e.latency").is_empty()
        })
        .unwrap_or_else(|e| panic!("{protocol}: {e}"));
    let requests = r.points("e2e.requests");
    assert_eq!(requests[0].value, Some(3.0));
    assert_eq!(
        requests[0].attributes["route"],
        Value::Str("/checkout".into())
    );
    assert_eq!(requests[0].unit, "{request}");
    let latency = r.points("e2e.latency");
    assert_eq!((latency[0].count, latency[0].sum), (Some(1), Some(0.25)));
    app
}

#[test]
fn over_grpc() {
    check("grpc", "none");
}

#[test]
fn over_http_protobuf() {
    check("http/protobuf", "none");
}

#[test]
fn over_http_json() {
    check("http/json", "none");
}

#[test]
fn from_a_current_thread_runtime_over_grpc() {
    check("grpc", "current");
}

#[test]
fn from_a_multi_thread_runtime_over_http() {
    check("http/protobuf", "multi");
}

#[test]
fn over_grpc_with_gzip() {
    check_with(
        "grpc",
        "none",
        &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
    );
}

#[test]
fn over_http_with_gzip_per_signal_settings() {
    check_with(
        "http/protobuf",
        "none",
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
        ],
    );
}

/// The quiet collector the benchmarks use accepts every export (none fails) and prints none of it.
#[test]
fn a_quiet_collector_accepts_exports_without_printing_them() {
    let collector = Collector::start_quiet().expect("collector starts");
    let endpoint = collector.grpc_endpoint();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("E2E_RUNTIME", "none"),
    ];
    let app = run(&env!("CARGO_BIN_EXE_e2e-app").into(), &["tree"], &vars);
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);
    assert_eq!(app.counts("traces"), Some((3, 0)), "{}", app.stdout);
    assert_eq!(app.counts("logs"), Some((3, 0)), "{}", app.stdout);
    let received = collector.received();
    assert!(
        received.spans.is_empty() && received.logs.is_empty(),
        "a quiet collector prints nothing it receives:\n{}",
        collector.output()
    );
}
