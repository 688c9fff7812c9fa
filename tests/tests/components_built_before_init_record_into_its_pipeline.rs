//! A health registry and a cleanup job built before `lookout::init` (the order a service's
//! `main` often has: its parts made, then telemetry started) record their metrics into the
//! pipeline `init` starts, not into the no-op meter provider of the time they were built.
//! (lookout-tower's layers: crates/lookout-tower/tests/layers_built_before_init_record_into_its_pipeline.rs.)

use std::time::Duration;

use lookout::opentelemetry_sdk::metrics::data::ResourceMetrics;
use lookout::{ConsoleFormat, ExporterKind, Signal};
use lookout_cleanup::{Job, RunContext, Stats};
use lookout_health::{Check, Health, Status};

fn names(snapshot: &ResourceMetrics) -> Vec<String> {
    snapshot
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| m.name().to_owned())
        .collect()
}

#[tokio::test]
async fn health_and_cleanup_built_before_init_record_into_its_pipeline() {
    let health = Health::builder()
        .check(Check::new(
            "always",
            lookout_health::check_fn(|| async { Ok::<_, std::io::Error>(()) }),
        ))
        .build()
        .expect("health");
    let job = Job::builder("early")
        .every(Duration::from_secs(3600))
        .spawn(|_ctx: RunContext| async { Ok::<_, String>(Stats::default()) })
        .expect("job");

    let telemetry = lookout::Telemetry::builder()
        .exporter(Signal::Traces, ExporterKind::None)
        .exporter(Signal::Metrics, ExporterKind::None)
        .exporter(Signal::Logs, ExporterKind::None)
        .console(ConsoleFormat::Off)
        .init()
        .expect("init");

    // A probe runs the check; a run of the job finishes.
    let report = health.report("").await.expect("every check");
    assert_eq!(report.status(), Status::Up);
    job.run_now().expect("run");
    let mut finished = false;
    for _ in 0..100 {
        if job.stats().total_runs >= 1 {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(finished, "the job's run finished");

    let snapshot = telemetry
        .metrics()
        .expect("metrics")
        .collect()
        .expect("collect");
    let names = names(&snapshot);
    for name in ["health.check.runs", "health.check.status", "cleanup.runs"] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    job.shutdown().await;
    telemetry.shutdown().await.expect("shutdown");
}
