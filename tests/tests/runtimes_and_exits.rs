//! However the program runs and ends, lookout neither hangs nor panics, and delivers what
//! RELIABILITY.md says: inside a current-thread or multi-thread runtime with the guard dropped
//! (no `shutdown()`), with the runtime shut down before telemetry, with no runtime at all, and
//! with `std::process::exit` (no destructors: only what was already exported arrives).

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::Collector;

const SPANS: usize = 300;

fn spans_arrive(collector: &Collector, n: usize) {
    collector
        .wait_for(Duration::from_secs(20), |r| r.spans.len() >= n)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_guard_dropped_inside_a_runtime_flushes_everything() {
    for (runtime, protocol) in [
        ("current", "grpc"),
        ("multi", "http/protobuf"),
        ("current", "http/protobuf"),
        ("multi", "grpc"),
    ] {
        let collector = Collector::start().expect("collector starts");
        let endpoint = match protocol {
            "grpc" => collector.grpc_endpoint(),
            _ => collector.http_endpoint(),
        };
        let app = run(
            &env!("CARGO_BIN_EXE_e2e-app").into(),
            &["spans", &SPANS.to_string()],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("E2E_RUNTIME", runtime),
                ("E2E_DROP_GUARD", "1"),
            ],
        );
        assert_eq!(
            app.code,
            Some(0),
            "{runtime}/{protocol}: {}{}",
            app.stdout,
            app.stderr
        );
        assert!(app.stdout.contains("DROPPED"), "{}", app.stdout);
        spans_arrive(&collector, SPANS);
    }
}

#[test]
fn a_runtime_shut_down_before_telemetry_does_not_lose_anything() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", &SPANS.to_string()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("E2E_RUNTIME", "ended"),
        ],
    );
    assert_eq!(app.code, Some(0), "{}{}", app.stdout, app.stderr);
    assert!(app.stdout.contains("RUNTIME_ENDED"), "{}", app.stdout);
    assert!(app.stdout.contains("RESULT ok"), "{}", app.stdout);
    spans_arrive(&collector, SPANS);
}

#[test]
fn process_exit_without_shutdown_neither_hangs_nor_panics() {
    for runtime in ["none", "current", "multi"] {
        let collector = Collector::start().expect("collector starts");
        let app = run(
            &env!("CARGO_BIN_EXE_e2e-app").into(),
            &["spans", &SPANS.to_string()],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.grpc_endpoint()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("E2E_RUNTIME", runtime),
                ("E2E_EXIT", "1"),
            ],
        );
        assert_eq!(app.code, Some(0), "{runtime}: {}{}", app.stdout, app.stderr);
        assert!(app.stdout.contains("EXITING"), "{}", app.stdout);
        assert!(!app.stderr.contains("panicked"), "{}", app.stderr);
        // Nothing was flushed: the spans were still queued (5 s schedule delay) when the process
        // ended. RELIABILITY.md says so: call shutdown() before exit.
        std::thread::sleep(Duration::from_millis(500));
        let received = collector.received().spans.len();
        assert!(received < SPANS, "{runtime}: {received}");
    }
}
