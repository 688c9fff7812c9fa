//! With every target enabled (`RUST_LOG=trace`), what the exporters' own transport does — tonic,
//! h2, hyper, reqwest, rustls, the SDK, lookout's export diagnostics, on lookout's export threads
//! and the SDK's batch workers — never becomes exported telemetry: otherwise each export would
//! produce spans and log records that are exported in turn. Exports happen every 100 ms while the
//! program runs, over gRPC and over HTTP, into a real collector; what arrives is the program's own
//! spans and a handful of log records, not hundreds of transport events.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::Collector;

fn check(protocol: &str) {
    let collector = Collector::start().expect("collector starts");
    let endpoint = if protocol == "grpc" {
        collector.grpc_endpoint()
    } else {
        collector.http_endpoint()
    };
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["trickle", "15"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", "e2e-quiet"),
            ("RUST_LOG", "trace"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("LOOKOUT_CONSOLE", "off"),
        ],
    );
    assert_eq!(
        app.result(),
        Some("ok"),
        "{protocol}: {}\n{}",
        app.stdout,
        app.stderr
    );
    assert_eq!(
        app.counts("traces"),
        Some((15, 0)),
        "{protocol}: the program's 15 spans, nothing else: {}",
        app.stdout
    );
    let (logs, lost) = app.counts("logs").expect("a COUNTS logs line");
    assert_eq!(lost, 0, "{protocol}");
    // The program's own: lookout's start message and its debug lines on the main thread. The
    // transport alone logs hundreds of trace events over 15 exports of each signal.
    assert!(
        logs <= 20,
        "{protocol}: {logs} log records exported; the transport's events feed the export: {}",
        app.stdout
    );

    let r = collector
        .wait_for(Duration::from_secs(20), |r| r.spans.len() >= 15)
        .unwrap_or_else(|e| panic!("{protocol}: {e}\n{}", collector.output()));
    assert!(
        r.spans.iter().all(|s| s.name == "tick"),
        "{protocol}: only the program's spans: {:?}",
        r.spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

#[test]
fn over_grpc() {
    check("grpc");
}

#[test]
fn over_http() {
    check("http/protobuf");
}
