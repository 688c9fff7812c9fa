//! `OTEL_PROPAGATORS` decides which headers go out and which come in; an invalid `traceparent`
//! starts a new trace.

use std::time::Duration;

use lookout_e2e::{NO_EXPORT, run};
use lookout_testing::Collector;

fn headers(propagators: &str) -> Vec<String> {
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["propagate"],
        &[
            ("OTEL_PROPAGATORS", propagators),
            NO_EXPORT[0],
            NO_EXPORT[1],
            NO_EXPORT[2],
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    app.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("HEADER "))
        .filter_map(|h| h.split_once('=').map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn injected_headers_follow_the_variable() {
    assert_eq!(headers("tracecontext,baggage"), ["traceparent"]);
    assert_eq!(headers("b3"), ["b3"]);
    assert_eq!(
        headers("b3multi"),
        ["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]
    );
    assert_eq!(headers("jaeger"), ["uber-trace-id"]);
    assert_eq!(
        headers("tracecontext,jaeger"),
        ["traceparent", "uber-trace-id"]
    );
    assert!(headers("none").is_empty());
}

#[test]
fn incoming_context_becomes_the_parent_and_bad_headers_start_a_new_trace() {
    let collector = Collector::start().expect("collector starts");
    let endpoint = collector.grpc_endpoint();
    let app = env!("CARGO_BIN_EXE_e2e-app").into();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    for (service, incoming) in [
        (
            "good",
            format!("traceparent=00-{trace}-00f067aa0ba902b7-01"),
        ),
        ("bad", "traceparent=00-42-1-01".to_owned()),
        ("b3", format!("b3={trace}-00f067aa0ba902b8-1")),
    ] {
        let propagators = if service == "b3" {
            "b3"
        } else {
            "tracecontext"
        };
        let run = run(
            &app,
            &["propagate"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_SERVICE_NAME", service),
                ("OTEL_PROPAGATORS", propagators),
                ("E2E_INCOMING", &incoming),
            ],
        );
        assert_eq!(run.result(), Some("ok"), "{}", run.stdout);
    }
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans.iter().filter(|s| s.name == "incoming").count() == 3
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let incoming = |service: &str| {
        r.spans
            .iter()
            .find(|s| s.name == "incoming" && s.resource["service.name"].as_str() == Some(service))
            .unwrap_or_else(|| panic!("no incoming span of {service}"))
    };
    let good = incoming("good");
    assert_eq!(good.trace_id, trace);
    assert_eq!(good.parent_id.as_deref(), Some("00f067aa0ba902b7"));
    let bad = incoming("bad");
    assert_ne!(bad.trace_id, trace);
    assert_eq!(bad.parent_id, None);
    let b3 = incoming("b3");
    assert_eq!(b3.trace_id, trace);
    assert_eq!(b3.parent_id.as_deref(), Some("00f067aa0ba902b8"));
}
