//! deploy/: one agent collector (`agent.yaml`: the load-balancing exporter with a static resolver,
//! routing by trace id) in front of two gateway collectors (`gateway.yaml`: tail sampling) that
//! export to Jaeger. Every span of a trace reaches one gateway (the gateways' own count of the new
//! trace ids they saw adds up to the traces sent, where a split trace would be counted twice), both
//! gateways get a share, every trace with an error reaches Jaeger, and the other traces are kept at
//! about the configured percentage.

use std::time::Duration;

use lookout_e2e::stack::{
    Jaeger, OtelCollector, Service, VictoriaLogs, http, new_traceparent, poll,
};

const WAIT: Duration = Duration::from_secs(90);
const NEW_TRACES: &str = "otelcol_processor_tail_sampling_new_trace_id_received_total";
const PERCENT: f64 = 25.0;

#[test]
fn agent_routes_whole_traces_to_gateways_that_tail_sample() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    let jaeger = Jaeger::start(dir);
    let logs = VictoriaLogs::start(dir);
    let gateway_env = [
        ("JAEGER_OTLP_GRPC_ENDPOINT", jaeger.otlp_grpc.to_string()),
        ("VICTORIALOGS_URL", logs.url()),
        ("OTELCOL_TAIL_DECISION_WAIT", "2s".to_owned()),
        ("OTELCOL_TAIL_PERCENT", PERCENT.to_string()),
    ];
    let gateways = [
        OtelCollector::start(dir, "gateway-1", "gateway.yaml", &gateway_env),
        OtelCollector::start(dir, "gateway-2", "gateway.yaml", &gateway_env),
    ];
    let agent = OtelCollector::start(
        dir,
        "agent",
        "agent.yaml",
        &[(
            "OTELCOL_GATEWAYS",
            format!("[{}, {}]", gateways[0].otlp_grpc, gateways[1].otlp_grpc),
        )],
    );
    // Few background traces: the cleanup job runs once in 24 h, its first run (jittered by up to
    // 10 % of that) rarely in the test's seconds: at most one per service.
    let quiet = [("SESSION_CLEANUP_INTERVAL", "24h")];
    let ok = Service::start(
        dir,
        "axum-service",
        "example-axum-service",
        Some(&agent),
        &quiet,
    );
    let failing = Service::start(
        dir,
        "axum-service-failing",
        "example-axum-service",
        Some(&agent),
        &[
            ("SESSION_CLEANUP_INTERVAL", "1h"),
            ("SESSIONS_DB_FAIL", "true"),
        ],
    );
    let new_traces = || gateways.iter().map(|g| g.counter(NEW_TRACES)).sum::<f64>();
    // What the services send on their own at start (a first cleanup run) is counted before.
    let settled = || {
        let mut last = new_traces();
        loop {
            std::thread::sleep(Duration::from_millis(1500));
            let now = new_traces();
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let before = settled();

    // 200 traces that succeed and 40 that fail, each of 4 spans (server, handler, store, SQL).
    let client = http();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for i in 0..240 {
        let (target, ids) = if i % 6 == 5 {
            (failing.listen, &mut bad)
        } else {
            (ok.listen, &mut good)
        };
        let (traceparent, trace_id) = new_traceparent();
        client
            .post(format!("http://{target}/sessions"))
            .header("traceparent", traceparent)
            .body(r#"{"user":"scale"}"#)
            .send()
            .expect("POST /sessions");
        ids.push(trace_id);
    }
    assert_eq!((good.len(), bad.len()), (200, 40));

    // Each trace reached exactly one gateway.
    let counted = poll(WAIT, "the gateways to see 240 new traces", || {
        let n = new_traces() - before;
        (n >= 240.0).then_some(n)
    });
    let settled = settled() - before;
    // A trace split over two gateways would be counted by both: about 480 if routing ignored the
    // trace id. Up to 2 more are the services' own cleanup runs (see above).
    assert!(
        (240.0..=242.0).contains(&settled),
        "{settled} trace ids counted by the gateways for 240 traces; first {counted}"
    );
    let shares: Vec<f64> = gateways.iter().map(|g| g.counter(NEW_TRACES)).collect();
    assert!(
        shares.iter().all(|s| *s >= 40.0),
        "both gateways get a share of the traces: {shares:?}"
    );
    eprintln!("traces per gateway: {shares:?}");

    // Every error trace is kept, whole.
    for id in &bad {
        let trace = jaeger.wait_for_trace(id, WAIT, |t| t.spans().len() >= 4);
        assert!(trace.span("POST /sessions").is_some());
    }
    std::thread::sleep(Duration::from_secs(3));
    // About PERCENT % of the others. The probabilistic policy hashes the trace id: for 200 random
    // ids the kept count is binomial (mean 50, sd about 6); the bounds are 4 sd either side.
    let kept = good.iter().filter(|id| jaeger.trace(id).is_some()).count();
    eprintln!("successful traces kept: {kept} of 200 at {PERCENT} %");
    assert!(
        (25..=75).contains(&kept),
        "{kept} of 200 kept at {PERCENT} %"
    );
}
