//! Metrics (at zero from the start, exact after runs) and the run spans as exported.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_cleanup::{Job, RunContext, Stats};
use lookout_testing::{Capture, Point};
use opentelemetry::trace::{SpanKind, Status};
use tracing::Instrument as _;

fn by(points: &[Point], key: &str, value: &str) -> f64 {
    points
        .iter()
        .find(|p| p.attr(key) == Some(value))
        .unwrap_or_else(|| panic!("no point with {key}={value}: {points:#?}"))
        .value
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn metrics_start_at_zero_and_are_exact_after_runs() {
    let capture = Capture::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let job = Job::builder("sessions")
        .every(Duration::from_secs(60))
        .initial_delay(Duration::from_secs(1))
        .meter(capture.meter("test"))
        .spawn(move |_ctx: RunContext| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(250)).await;
                match n {
                    0 => Ok(Stats {
                        scanned: 10,
                        removed: 8,
                        failed: 2,
                        remaining: 5,
                        ..Stats::default()
                    }),
                    1 => Err("locked".to_owned()),
                    _ => Ok(Stats {
                        scanned: 5,
                        removed: 5,
                        ..Stats::default()
                    }),
                }
            }
        })
        .unwrap();

    // Before any run: every series exists, at zero.
    let runs = capture.points("cleanup.runs");
    assert_eq!(runs.len(), 6, "{runs:#?}");
    for outcome in [
        "success",
        "partial",
        "failure",
        "timeout",
        "cancelled",
        "skipped",
    ] {
        assert_eq!(by(&runs, "cleanup.outcome", outcome), 0.0);
    }
    assert!(
        runs.iter()
            .all(|p| p.attr("cleanup.job.name") == Some("sessions"))
    );
    let items = capture.points("cleanup.items");
    assert_eq!(items.len(), 3);
    for action in ["scanned", "removed", "failed"] {
        assert_eq!(by(&items, "cleanup.action", action), 0.0);
    }
    for gauge in [
        "cleanup.last_success.timestamp",
        "cleanup.last_run.timestamp",
        "cleanup.in_progress",
        "cleanup.consecutive_failures",
        "cleanup.backlog",
        "cleanup.ticks.missed",
    ] {
        let p = capture.points(gauge);
        assert_eq!(p.len(), 1, "{gauge}");
        assert_eq!(p[0].value, 0.0, "{gauge}");
    }

    // A run in progress.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(capture.points("cleanup.in_progress")[0].value, 1.0);

    // Partial, failure, success.
    tokio::time::sleep(Duration::from_secs(121)).await;
    let runs = capture.points("cleanup.runs");
    assert_eq!(by(&runs, "cleanup.outcome", "partial"), 1.0);
    assert_eq!(by(&runs, "cleanup.outcome", "failure"), 1.0);
    assert_eq!(by(&runs, "cleanup.outcome", "success"), 1.0);
    assert_eq!(by(&runs, "cleanup.outcome", "skipped"), 0.0);
    let items = capture.points("cleanup.items");
    assert_eq!(by(&items, "cleanup.action", "scanned"), 15.0);
    assert_eq!(by(&items, "cleanup.action", "removed"), 13.0);
    assert_eq!(by(&items, "cleanup.action", "failed"), 2.0);
    let duration = capture.points("cleanup.run.duration");
    assert_eq!(duration[0].count, 3);
    assert!((duration[0].sum - 0.75).abs() < 1e-6, "{duration:?}");
    assert_eq!(capture.points("cleanup.in_progress")[0].value, 0.0);
    assert_eq!(capture.points("cleanup.consecutive_failures")[0].value, 0.0);
    assert_eq!(capture.points("cleanup.backlog")[0].value, 0.0);
    let last_success = capture.points("cleanup.last_success.timestamp")[0].value;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last_success).abs() < 60.0, "{last_success} vs {now}");

    // The same figures in process.
    let stats = job.stats();
    assert_eq!(stats.total_runs, 3);
    assert_eq!(stats.items_removed, 13);
    assert_eq!(stats.mean_duration, Some(Duration::from_millis(250)));
    assert_eq!(stats.max_duration, Some(Duration::from_millis(250)));
    assert_eq!(stats.success_rate, Some(1.0 / 3.0));
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn each_run_is_a_root_span_with_its_statistics_and_batch_children() {
    let capture = Capture::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let job = Job::builder("sessions")
        .every(Duration::from_secs(60))
        .spawn(move |ctx: RunContext| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 1 {
                    panic!("boom");
                }
                let mut stats = Stats::default();
                for _ in 0..2 {
                    async {
                        tracing::info!("deleting a batch");
                        stats.scanned += 3;
                        stats.removed += 3;
                    }
                    .instrument(ctx.batch_span())
                    .await;
                }
                stats.remaining = 4;
                stats.count("bytes_freed", 512);
                Ok::<_, String>(stats)
            }
        })
        .unwrap();
    // An unrelated span is current when the job runs: runs are roots all the same.
    let outer = tracing::info_span!("request");
    async {
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
    .instrument(outer)
    .await;
    job.shutdown_within(Duration::ZERO).await;

    let spans = capture.spans();
    let runs: Vec<_> = spans.iter().filter(|s| s.name == "cleanup.run").collect();
    assert_eq!(runs.len(), 2);
    let attr = |s: &opentelemetry_sdk::trace::SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    let ok = runs
        .iter()
        .find(|s| attr(s, "cleanup.run.id").as_deref() == Some("1"))
        .unwrap();
    assert_eq!(ok.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(ok.span_kind, SpanKind::Internal);
    for (k, v) in [
        ("cleanup.job.name", "sessions"),
        ("cleanup.trigger", "timer"),
        ("faas.trigger", "timer"),
        ("cleanup.outcome", "success"),
        ("cleanup.items.scanned", "6"),
        ("cleanup.items.removed", "6"),
        ("cleanup.items.failed", "0"),
        ("cleanup.items.remaining", "4"),
        ("cleanup.count.bytes_freed", "512"),
        ("cleanup.lag", "0"),
    ] {
        assert_eq!(attr(ok, k).as_deref(), Some(v), "{k}: {ok:#?}");
    }
    assert!(attr(ok, "cleanup.scheduled_at").is_some());
    assert_eq!(ok.status, Status::Unset);
    let batches: Vec<_> = spans.iter().filter(|s| s.name == "cleanup.batch").collect();
    assert_eq!(batches.len(), 2);
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b.parent_span_id, ok.span_context.span_id());
        assert_eq!(b.span_context.trace_id(), ok.span_context.trace_id());
        assert_eq!(attr(b, "cleanup.batch.index"), Some(i.to_string()));
    }
    // The batch's log carries the batch's ids.
    let log = capture
        .logs()
        .into_iter()
        .find(|l| {
            l.record
                .body()
                .map(|b| format!("{b:?}"))
                .unwrap_or_default()
                .contains("deleting a batch")
        })
        .unwrap();
    assert_eq!(
        log.record.trace_context().unwrap().trace_id,
        ok.span_context.trace_id()
    );

    let failed = runs
        .iter()
        .find(|s| attr(s, "cleanup.run.id").as_deref() == Some("2"))
        .unwrap();
    assert_eq!(attr(failed, "cleanup.outcome").as_deref(), Some("failure"));
    assert_eq!(attr(failed, "error.type").as_deref(), Some("panic"));
    assert_eq!(failed.status, Status::error("boom"));
    assert_ne!(failed.span_context.trace_id(), ok.span_context.trace_id());
}
