//! One oversized attribute never takes its batch with it. 300 spans with a 60 kB field each (as an
//! `#[instrument]` argument would carry) and one span with a 6 MB field go to the OpenTelemetry
//! Collector built for deploy/ (running `deploy/otel-collector/config.yaml`, whose gRPC receiver
//! takes at most 4 MiB per request, the default) and on to Jaeger. Before lookout split its export
//! requests, each batch of 512 spans was one ~18 MB request: refused, every span lost. Now every
//! span arrives, over gRPC and over HTTP, the huge one with its value cut to fit.

use std::time::Duration;

use lookout_e2e::run;
use lookout_e2e::stack::{SingleNode, poll};

#[test]
fn oversized_batches_are_split_and_an_oversized_span_is_cut_not_lost() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = SingleNode::start(dir.path(), &[]);
    let mut expected_at_collector = 0.0;
    for (protocol, endpoint, service) in [
        (
            "grpc",
            format!("http://{}", node.collector.otlp_grpc),
            "big-spans-grpc",
        ),
        (
            "http/protobuf",
            format!("http://{}", node.collector.otlp_http),
            "big-spans-http",
        ),
    ] {
        let out = run(
            &env!("CARGO_BIN_EXE_e2e-app").into(),
            &["big", "300", "60000", "6000000"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_SERVICE_NAME", service),
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
                ("LOOKOUT_SHUTDOWN_TIMEOUT", "20000"),
                ("E2E_FULL_STATS", "1"),
            ],
        );
        let full = out
            .stdout
            .lines()
            .find(|l| l.starts_with("FULL traces "))
            .unwrap_or_else(|| panic!("{protocol}: {}\n{}", out.stdout, out.stderr))
            .to_owned();
        assert!(
            full.contains("accepted=301 exported=301 failed=0 rejected=0 dropped=0"),
            "{protocol}: every span exported: {full}\n{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("RESULT ok"),
            "{protocol}: {}",
            out.stdout
        );

        // The collector took all of them and refused none.
        expected_at_collector += 301.0;
        poll(Duration::from_secs(30), "the collector's count", || {
            (node
                .collector
                .counter("otelcol_receiver_accepted_spans_total")
                >= expected_at_collector)
                .then_some(())
        });
        assert_eq!(
            node.collector
                .counter("otelcol_receiver_refused_spans_total"),
            0.0,
            "{protocol}"
        );

        // And they are in Jaeger: 300 + 1 traces, the huge span with its value cut to fit.
        let traces = poll(Duration::from_secs(60), "the spans in Jaeger", || {
            let traces = node.jaeger.traces_of(service, 1000);
            (traces.len() >= 301).then_some(traces)
        });
        assert_eq!(traces.len(), 301, "{protocol}");
        let huge = traces
            .iter()
            .find_map(|t| t.span("huge"))
            .unwrap_or_else(|| panic!("{protocol}: the huge span is in Jaeger"));
        let kept = huge.tags["payload"].len();
        assert!(
            kept > 1000 && kept < 4_000_000,
            "{protocol}: the 6 MB value was cut to fit, {kept} bytes kept"
        );
        let big = traces
            .iter()
            .find_map(|t| t.span("big"))
            .expect("a big span");
        assert_eq!(big.tags["payload"].len(), 60_000, "{protocol}: untouched");
    }
}
