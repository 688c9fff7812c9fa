//! Deadlines, budgets, panics and shutdown.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_cleanup::{Job, NotStarted, Outcome, RunContext, Stats};
use tokio::time::{Instant, sleep, sleep_until};

struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_run_that_stops_at_its_deadline_keeps_its_statistics() {
    let t0 = Instant::now();
    let job = Job::builder("deadline")
        .every(Duration::from_secs(60))
        .deadline(Duration::from_secs(1))
        .grace(Duration::from_millis(500))
        .spawn(|ctx: RunContext| async move {
            let mut stats = Stats::default();
            // Works in 150 ms steps until told to stop (asked at 1 s, stops at 1.05 s).
            while !ctx.is_cancelled() {
                sleep(Duration::from_millis(150)).await;
                stats.scanned += 10;
                stats.removed += 10;
            }
            stats.remaining = 42;
            Ok::<_, String>(stats)
        })
        .unwrap();
    sleep_until(t0 + Duration::from_secs(2)).await;
    let run = &job.history()[0];
    assert_eq!(run.outcome, Outcome::Timeout);
    assert_eq!(run.error_type.as_deref(), Some("timeout"));
    assert_eq!(run.stats.removed, 70);
    assert_eq!(run.stats.remaining, 42);
    assert_eq!(run.duration, Duration::from_millis(1050));
    let stats = job.stats();
    assert_eq!(stats.consecutive_failures, 1);
    assert_eq!(stats.backlog, 42);
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_run_that_ignores_its_deadline_is_dropped_after_the_grace() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let t0 = Instant::now();
    let job = Job::builder("hung")
        .every(Duration::from_secs(60))
        .deadline(Duration::from_secs(1))
        .grace(Duration::from_millis(500))
        .spawn(move |_ctx: RunContext| {
            let guard = DropCount(d.clone());
            async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
                Ok::<_, String>(Stats::default())
            }
        })
        .unwrap();
    sleep_until(t0 + Duration::from_millis(1400)).await;
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "dropped before the grace ended"
    );
    assert_eq!(job.stats().in_progress, 1);
    sleep_until(t0 + Duration::from_millis(1600)).await;
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the hung future was not dropped"
    );
    let run = &job.history()[0];
    assert_eq!(run.outcome, Outcome::Timeout);
    assert!(
        run.message.as_deref().unwrap().contains("dropped"),
        "{run:?}"
    );
    assert_eq!(job.stats().in_progress, 0);
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_item_budget_deletes_in_batches_and_reports_the_rest() {
    let backlog = Arc::new(AtomicU64::new(1_000));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let (b, log) = (backlog.clone(), batches.clone());
    let job = Job::builder("budget")
        .every(Duration::from_secs(60))
        .item_budget(250)
        .spawn(move |ctx: RunContext| {
            let (b, log) = (b.clone(), log.clone());
            async move {
                let mut stats = Stats::default();
                while ctx.should_continue(stats.removed) {
                    let n = ctx
                        .batch_size(100, stats.removed)
                        .min(b.load(Ordering::SeqCst));
                    if n == 0 {
                        break;
                    }
                    b.fetch_sub(n, Ordering::SeqCst);
                    log.lock().unwrap().push(n);
                    stats.scanned += n;
                    stats.removed += n;
                }
                stats.remaining = b.load(Ordering::SeqCst);
                Ok::<_, String>(stats)
            }
        })
        .unwrap();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(*batches.lock().unwrap(), vec![100, 100, 50]);
    let run = &job.history()[0];
    assert_eq!(run.outcome, Outcome::Success);
    assert_eq!((run.stats.removed, run.stats.remaining), (250, 750));
    assert_eq!(job.stats().backlog, 750);
    // The next runs take the rest, 250 at a time.
    for _ in 0..3 {
        sleep(Duration::from_secs(60)).await;
    }
    assert_eq!(backlog.load(Ordering::SeqCst), 0);
    assert_eq!(job.stats().items_removed, 1_000);
    assert_eq!(job.stats().backlog, 0);
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_time_budget_stops_taking_batches() {
    let job = Job::builder("time-budget")
        .every(Duration::from_secs(60))
        .time_budget(Duration::from_millis(350))
        .spawn(|ctx: RunContext| async move {
            let mut stats = Stats::default();
            while ctx.should_continue(stats.removed) {
                sleep(Duration::from_millis(100)).await;
                stats.removed += 1;
            }
            stats.remaining = 1;
            Ok::<_, String>(stats)
        })
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    let run = &job.history()[0];
    assert_eq!(run.outcome, Outcome::Success);
    assert_eq!(run.stats.removed, 4, "batches start at 0, 100, 200, 300 ms");
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panicking_run_is_a_failure_and_the_schedule_goes_on() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let job = Job::builder("panics")
        .every(Duration::from_secs(1))
        .spawn(move |_ctx: RunContext| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("the session table is gone");
                }
                Ok::<_, String>(Stats {
                    removed: 1,
                    ..Stats::default()
                })
            }
        })
        .unwrap();
    sleep(Duration::from_millis(1500)).await;
    let history = job.history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].outcome, Outcome::Failure);
    assert_eq!(history[1].error_type.as_deref(), Some("panic"));
    assert_eq!(
        history[1].message.as_deref(),
        Some("the session table is gone")
    );
    assert_eq!(history[0].outcome, Outcome::Success);
    assert_eq!(job.stats().consecutive_failures, 0);
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_error_is_a_failure_named_by_its_type() {
    let job = Job::builder("errors")
        .every(Duration::from_secs(60))
        .spawn(|_ctx: RunContext| async { Err::<Stats, _>(std::io::Error::other("disk full")) })
        .unwrap();
    sleep(Duration::from_millis(10)).await;
    let run = &job.history()[0];
    assert_eq!(run.outcome, Outcome::Failure);
    assert_eq!(run.error_type.as_deref(), Some("Error"));
    assert_eq!(run.message.as_deref(), Some("disk full"));
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_waits_for_a_run_within_the_drain_timeout() {
    let job = Job::builder("drain")
        .every(Duration::from_secs(60))
        .spawn(|_ctx: RunContext| async {
            sleep(Duration::from_millis(300)).await;
            Ok::<_, String>(Stats {
                removed: 5,
                ..Stats::default()
            })
        })
        .unwrap();
    sleep(Duration::from_millis(10)).await;
    let report = job.shutdown_within(Duration::from_secs(1)).await;
    assert_eq!((report.drained, report.cancelled), (1, 0));
    assert_eq!(job.history()[0].outcome, Outcome::Success);
    assert!(matches!(
        job.run_now(),
        Err(NotStarted::ShuttingDown { .. })
    ));
    // No more ticks either.
    sleep(Duration::from_secs(300)).await;
    assert_eq!(job.stats().total_runs, 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_cancels_runs_still_going_after_the_drain_timeout() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let job = Job::builder("cancel")
        .every(Duration::from_secs(60))
        .deadline(Duration::from_secs(3600))
        .spawn(move |_ctx: RunContext| {
            let guard = DropCount(d.clone());
            async move {
                let _guard = guard;
                sleep(Duration::from_secs(600)).await;
                Ok::<_, String>(Stats::default())
            }
        })
        .unwrap();
    sleep(Duration::from_millis(10)).await;
    let t = Instant::now();
    let report = job.shutdown_within(Duration::from_secs(2)).await;
    assert_eq!(t.elapsed(), Duration::from_secs(2));
    assert_eq!((report.drained, report.cancelled), (0, 1));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let run = &job.history()[0];
    assert_eq!(run.outcome, Outcome::Cancelled);
    assert!(
        run.message.as_deref().unwrap().contains("shutdown"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_waits_the_drain_the_builder_set_and_is_repeatable() {
    let job = Job::builder("builder-drain")
        .every(Duration::from_secs(60))
        .deadline(Duration::from_secs(3600))
        .drain(Duration::from_secs(3))
        .spawn(|_ctx: RunContext| async {
            sleep(Duration::from_secs(600)).await;
            Ok::<_, String>(Stats::default())
        })
        .unwrap();
    sleep(Duration::from_millis(10)).await;
    let t = Instant::now();
    let report = job.shutdown().await;
    assert_eq!(t.elapsed(), Duration::from_secs(3), "the builder's drain");
    assert_eq!((report.drained, report.cancelled), (0, 1));
    // A second call finds nothing running and returns at once.
    let t = Instant::now();
    let again = job.shutdown().await;
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!((again.drained, again.cancelled), (0, 0));
}
