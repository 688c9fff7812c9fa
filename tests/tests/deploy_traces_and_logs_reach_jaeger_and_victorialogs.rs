//! deploy/: the axum example exports to the collector running `deploy/otel-collector/config.yaml`,
//! which exports traces to Jaeger v2 and logs to VictoriaLogs (all real processes on loopback).
//! A request whose trace id the test chose (its `traceparent`) is one trace in Jaeger with the span
//! tree server span → handler → store function → SQLite statement, the service's resource, and, for
//! a failing request, the error status and the exception event; its log record is found in
//! VictoriaLogs by a word of its message, with the trace and span ids of that trace. The tonic
//! example's client call is one trace holding both services.

use std::time::{Duration, Instant};

use lookout_e2e::stack::{Service, SingleNode, example, http, new_traceparent, poll};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn traces_and_logs_reach_jaeger_and_victorialogs() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    let SingleNode {
        jaeger,
        logs,
        collector,
    } = SingleNode::start(dir, &[]);
    let api = Service::start(
        dir,
        "axum-service",
        "example-axum-service",
        Some(&collector),
        &[],
    );

    // A request that succeeds: the whole span tree, in one trace, with the caller as parent.
    let (traceparent, trace_id) = new_traceparent();
    let sent = Instant::now();
    let response = http()
        .post(format!("http://{}/sessions", api.listen))
        .header("traceparent", &traceparent)
        .body(r#"{"user":"alice"}"#)
        .send()
        .expect("POST /sessions");
    assert_eq!(response.status(), 201);
    let trace = jaeger.wait_for_trace(&trace_id, WAIT, |t| {
        t.span("INSERT sessions").is_some() && t.span("POST /sessions").is_some()
    });
    eprintln!(
        "request to trace visible in Jaeger: {} ms",
        sent.elapsed().as_millis()
    );
    let server = trace.span("POST /sessions").expect("the server span");
    assert_eq!(server.service, "axum-service");
    assert_eq!(server.tags["span.kind"], "server");
    assert_eq!(server.tags["http.route"], "/sessions");
    assert_eq!(server.tags["http.response.status_code"], "201");
    let caller_span = traceparent.split('-').nth(2).expect("a parent id");
    assert_eq!(
        server.parent.as_deref(),
        Some(caller_span),
        "continues the caller's trace"
    );
    let handler = trace.span("create_session").expect("the handler's span");
    assert_eq!(handler.parent.as_deref(), Some(server.id.as_str()));
    let create = trace.span("create").expect("Store::create's span");
    assert_eq!(create.parent.as_deref(), Some(handler.id.as_str()));
    let insert = trace
        .span("INSERT sessions")
        .expect("the SQLite statement's span");
    assert_eq!(insert.parent.as_deref(), Some(create.id.as_str()));
    assert_eq!(insert.tags["span.kind"], "client");
    assert_eq!(insert.tags["db.system.name"], "sqlite");
    assert_eq!(insert.tags["db.collection.name"], "sessions");
    assert!(insert.tags["db.query.text"].starts_with("INSERT INTO sessions"));
    assert!(
        trace.spans().iter().all(|s| s.service == "axum-service"),
        "one service in this trace"
    );
    let resource = trace.resource("axum-service");
    assert_eq!(resource["service.version"], "0.1.0");
    assert_eq!(resource["telemetry.sdk.language"], "rust");
    assert!(resource.contains_key("service.instance.id"), "{resource:?}");
    assert!(
        !server.tags.contains_key("otel.status_code"),
        "a 201 leaves the status unset"
    );

    // A request that fails (the database is down on purpose): error status and the exception.
    let failing = Service::start(
        dir,
        "axum-service-failing",
        "example-axum-service",
        Some(&collector),
        &[("SESSIONS_DB_FAIL", "true")],
    );
    let (traceparent, trace_id) = new_traceparent();
    let response = http()
        .post(format!("http://{}/sessions", failing.listen))
        .header("traceparent", &traceparent)
        .body(r#"{"user":"bob"}"#)
        .send()
        .expect("POST /sessions");
    assert_eq!(response.status(), 500);
    let trace = jaeger.wait_for_trace(&trace_id, WAIT, |t| {
        t.span("POST /sessions").is_some() && t.span("create").is_some()
    });
    let server = trace.span("POST /sessions").expect("the server span");
    assert_eq!(
        server.tags["otel.status_code"], "ERROR",
        "{:?}",
        server.tags
    );
    assert_eq!(server.tags["http.response.status_code"], "500");
    assert_eq!(server.tags["error.type"], "500");
    let create = trace.span("create").expect("Store::create's span");
    assert_eq!(
        create.tags["otel.status_code"], "ERROR",
        "{:?}",
        create.tags
    );
    let exception = create
        .events
        .iter()
        .find(|e| e.get("event").map(String::as_str) == Some("exception"))
        .unwrap_or_else(|| panic!("an exception event on `create`: {:?}", create.events));
    assert!(
        exception["exception.message"].contains("database unavailable"),
        "{exception:?}"
    );
    let insert = trace.span("INSERT sessions").expect("the statement's span");
    assert_eq!(insert.tags["otel.status_code"], "ERROR");
    assert_eq!(insert.tags["error.type"], "unavailable");
    let handler = trace.span("create_session").expect("the handler's span");

    // Its log record ("request failed", logged inside the handler) is searchable by a word of
    // the message and carries this trace's ids.
    let record = poll(WAIT, "the log record in VictoriaLogs", || {
        logs.query("\"request failed\"")
            .into_iter()
            .find(|r| r["trace_id"] == trace_id.as_str())
    });
    assert_eq!(record["span_id"], handler.id.as_str(), "{record}");
    assert!(
        record["_msg"]
            .as_str()
            .is_some_and(|m| m.contains("request failed")),
        "{record}"
    );
    assert_eq!(record["severity_text"], "ERROR", "{record}");
    assert_eq!(record["service.name"], "axum-service", "{record}");
    assert_eq!(
        record["_stream"], "{service.name=\"axum-service\"}",
        "streams by service (VL-Stream-Fields in the collector config)"
    );
    assert!(
        jaeger
            .trace(record["trace_id"].as_str().unwrap_or_default())
            .is_some(),
        "the log's trace is in Jaeger"
    );

    // The tonic example's `check` client calls its server through the client layer: one trace,
    // two services, the server span a child of the client's span.
    let server = Service::start(
        dir,
        "tonic-service",
        "example-tonic-service",
        Some(&collector),
        &[],
    );
    let out = std::process::Command::new(example("example-tonic-service"))
        .arg("check")
        .env("LISTEN_ADDR", server.listen.to_string())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", collector.otlp_grpc),
        )
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("LOOKOUT_CONSOLE", "off")
        .output()
        .expect("run the check client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SERVING"));
    let trace = poll(WAIT, "the tonic call as one trace in Jaeger", || {
        jaeger.traces_of("tonic-check", 20).into_iter().find(|t| {
            let spans = t.spans();
            spans.iter().any(|s| s.service == "tonic-service")
                && spans.iter().any(|s| s.service == "tonic-check")
        })
    });
    let spans = trace.spans();
    let server_span = spans
        .iter()
        .find(|s| s.service == "tonic-service" && s.tags["span.kind"] == "server")
        .expect("the server's span");
    let client_span = spans
        .iter()
        .find(|s| Some(&s.id) == server_span.parent.as_ref())
        .expect("the server span's parent is in the trace");
    assert_eq!(client_span.service, "tonic-check");
    assert_eq!(client_span.tags["span.kind"], "client");
    assert_eq!(server_span.tags["rpc.system"], "grpc");
    assert_eq!(server_span.tags["rpc.service"], "grpc.health.v1.Health");
}
