//! The registry's own telemetry: metrics from stored results (collecting never runs a check), a
//! log event per state change, a span only for failed or state-changing runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use lookout_health::{Check, CheckResult, Health, Status, check_fn};
use lookout_testing::Capture;
use opentelemetry::trace::Status as SpanStatus;

fn point<'a>(
    points: &'a [lookout_testing::Point],
    attrs: &[(&str, &str)],
) -> Option<&'a lookout_testing::Point> {
    points
        .iter()
        .find(|p| attrs.iter().all(|(k, v)| p.attr(k) == Some(v)))
}

// current_thread: the checks' tasks run on the test's thread, where the capture is installed.
#[tokio::test(flavor = "current_thread")]
async fn metrics_logs_and_spans_follow_the_checks() {
    let capture = Capture::start();
    let up = Arc::new(AtomicBool::new(true));
    let runs = Arc::new(AtomicUsize::new(0));
    let (u, r) = (up.clone(), runs.clone());
    let health = Health::builder()
        .meter(capture.meter("lookout-health"))
        .tracer(capture.tracer("lookout-health"))
        .check(
            Check::new(
                "db",
                check_fn(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    let result = if u.load(Ordering::SeqCst) {
                        CheckResult::up()
                    } else {
                        CheckResult::down("connection refused")
                    };
                    async move { result }
                }),
            )
            .ttl(Duration::ZERO),
        )
        .build()
        .expect("valid");

    let status = capture.points("health.check.status");
    assert_eq!(
        point(
            &status,
            &[("health.check.name", "db"), ("health.status", "unknown")]
        )
        .map(|p| p.value),
        Some(1.0),
        "Unknown before the first run, and the gauge exists from the start"
    );

    health.report("readiness").await;
    health.report("readiness").await;
    up.store(false, Ordering::SeqCst);
    health.report("readiness").await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);

    // Collecting reads stored results: no run happens.
    let status = capture.points("health.check.status");
    let _ = capture.points("health.check.status");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "a scrape never runs a check"
    );
    for (s, v) in [
        ("up", 0.0),
        ("down", 1.0),
        ("degraded", 0.0),
        ("unknown", 0.0),
        ("out_of_service", 0.0),
    ] {
        assert_eq!(
            point(
                &status,
                &[("health.check.name", "db"), ("health.status", s)]
            )
            .map(|p| p.value),
            Some(v),
            "status {s}"
        );
    }
    let runs_metric = capture.points("health.check.runs");
    assert_eq!(
        point(&runs_metric, &[("health.check.outcome", "up")]).map(|p| p.value),
        Some(2.0)
    );
    assert_eq!(
        point(&runs_metric, &[("health.check.outcome", "down")]).map(|p| p.value),
        Some(1.0)
    );
    let duration = capture.points("health.check.duration");
    assert_eq!(
        point(&duration, &[("health.check.name", "db")]).map(|p| p.count),
        Some(3)
    );

    // Spans: the first result (Unknown -> Up) and the failure; not the unchanged second Up.
    let spans: Vec<_> = capture
        .spans()
        .into_iter()
        .filter(|s| s.name == "health.check db")
        .collect();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let failed = &spans[1];
    assert!(
        matches!(&failed.status, SpanStatus::Error { description } if description == "connection refused")
    );
    let attr = |k: &str| {
        failed
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("health.status.previous").as_deref(), Some("up"));
    assert_eq!(attr("health.status").as_deref(), Some("down"));

    // One log event per change: Unknown -> Up, Up -> Down.
    let logs: Vec<String> = capture
        .logs()
        .iter()
        .filter_map(|l| match l.record.body() {
            Some(opentelemetry::logs::AnyValue::String(s)) => Some(s.to_string()),
            _ => None,
        })
        .filter(|b| b.starts_with("health check 'db' is now"))
        .collect();
    assert_eq!(
        logs,
        [
            "health check 'db' is now UP (was UNKNOWN)",
            "health check 'db' is now DOWN (was UP): connection refused"
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn timeouts_and_slow_runs_are_reported() {
    let capture = Capture::start();
    let health = Health::builder()
        .meter(capture.meter("lookout-health"))
        .tracer(capture.tracer("lookout-health"))
        .check(
            Check::new(
                "slow",
                check_fn(|| async {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    Status::Up
                }),
            )
            .slow_after(Duration::from_millis(10)),
        )
        .check(
            Check::new("stuck", check_fn(std::future::pending::<Status>))
                .timeout(Duration::from_millis(50)),
        )
        .build()
        .expect("valid");
    health.report("").await;
    let runs = capture.points("health.check.runs");
    assert_eq!(
        point(
            &runs,
            &[
                ("health.check.name", "stuck"),
                ("health.check.outcome", "timeout")
            ]
        )
        .map(|p| p.value),
        Some(1.0)
    );
    let stuck = capture
        .span("health.check stuck")
        .expect("span of the timed-out run");
    assert!(
        stuck
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "error.type" && kv.value.as_str() == "timeout")
    );
    let slow_warnings = capture
        .logs()
        .iter()
        .filter(|l| {
            matches!(l.record.body(), Some(opentelemetry::logs::AnyValue::String(s)) if s.as_str().starts_with("health check 'slow' is slow"))
        })
        .count();
    assert_eq!(slow_warnings, 1);
}
