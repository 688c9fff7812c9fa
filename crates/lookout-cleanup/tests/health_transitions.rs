//! The job's dead man's switch: on time, late, failing, down, stuck, recovered.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use lookout_cleanup::{Job, RunContext, Stats};
use lookout_health::{Health, Status};
use tokio::time::{Instant, sleep, sleep_until};

const OK: u8 = 0;
const FAIL: u8 = 1;
const HANG: u8 = 2;
const PARTIAL: u8 = 3;

fn job(mode: Arc<AtomicU8>) -> Job {
    Job::builder("sessions")
        .every(Duration::from_secs(10))
        .grace(Duration::from_secs(2))
        .deadline(Duration::from_secs(30))
        .failures_before_down(2)
        .spawn(move |_ctx: RunContext| {
            let mode = mode.load(Ordering::SeqCst);
            async move {
                match mode {
                    FAIL => Err("database is locked".to_owned()),
                    HANG => {
                        sleep(Duration::from_secs(3600)).await;
                        Ok(Stats::default())
                    }
                    PARTIAL => Ok(Stats {
                        scanned: 10,
                        removed: 7,
                        failed: 3,
                        ..Stats::default()
                    }),
                    _ => Ok(Stats::default()),
                }
            }
        })
        .unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn health_follows_the_job_on_time_late_failing_down_and_recovered() {
    let mode = Arc::new(AtomicU8::new(OK));
    let t0 = Instant::now();
    let job = job(mode.clone());
    let health = Health::builder().check(job.check()).build().unwrap();
    let at = |s: u64, ms: u64| t0 + Duration::from_secs(s) + Duration::from_millis(ms);
    let status = || job.health_check().assess();

    sleep_until(at(1, 0)).await;
    assert_eq!(status().status(), Status::Up, "{:?}", status());
    // In readiness (optional), never in liveness.
    let ready = health.report("readiness").await.unwrap();
    assert_eq!(ready.check("sessions").unwrap().status(), Status::Up);
    assert!(!ready.check("sessions").unwrap().critical());
    let live = health.report("liveness").await.unwrap();
    assert!(live.check("sessions").is_none());

    // The run at 10 s hangs: the ticks at 20 s and 30 s are skipped; after 12 s with no
    // success the job is late.
    mode.store(HANG, Ordering::SeqCst);
    sleep_until(at(11, 0)).await;
    assert_eq!(status().status(), Status::Up);
    sleep_until(at(12, 500)).await;
    let late = status();
    assert_eq!(late.status(), Status::Degraded, "{late:?}");
    assert_eq!(late.error_type(), Some("late"));
    assert!(late.message().unwrap().starts_with("late:"), "{late:?}");
    assert_eq!(
        health.report("readiness").await.unwrap().status(),
        Status::Degraded
    );

    // Dropped at 10 + 30 + 2 s: one timeout, Degraded.
    sleep_until(at(42, 500)).await;
    let failed_once = status();
    assert_eq!(failed_once.status(), Status::Degraded, "{failed_once:?}");
    assert!(
        failed_once.message().unwrap().contains("1 of 2"),
        "{failed_once:?}"
    );

    // The run at 50 s fails too: two in a row, Down.
    mode.store(FAIL, Ordering::SeqCst);
    sleep_until(at(50, 500)).await;
    let down = status();
    assert_eq!(down.status(), Status::Down, "{down:?}");
    assert!(
        down.message().unwrap().contains("database is locked"),
        "{down:?}"
    );

    // Recovered by one good run.
    mode.store(OK, Ordering::SeqCst);
    job.run_now().unwrap();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(status().status(), Status::Up);

    // A partial run degrades; pausing degrades.
    mode.store(PARTIAL, Ordering::SeqCst);
    sleep_until(at(60, 500)).await;
    let partial = status();
    assert_eq!(partial.status(), Status::Degraded);
    assert!(
        partial.message().unwrap().contains("3 item(s)"),
        "{partial:?}"
    );
    mode.store(OK, Ordering::SeqCst);
    sleep_until(at(70, 500)).await;
    assert_eq!(status().status(), Status::Up);
    job.pause();
    assert_eq!(status().status(), Status::Degraded);
    job.resume();
    assert_eq!(status().status(), Status::Up);
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn before_its_first_success_a_job_is_late_only_after_its_period_and_grace() {
    let t0 = Instant::now();
    let job = Job::builder("first")
        .every(Duration::from_secs(10))
        .initial_delay(Duration::from_secs(60))
        .grace(Duration::from_secs(2))
        .deadline(Duration::from_secs(3600))
        .spawn(|_ctx: RunContext| async {
            sleep(Duration::from_secs(1800)).await;
            Ok::<_, String>(Stats::default())
        })
        .unwrap();
    // Counted from the first tick (60 s): late after 60 + 10 + 2 s.
    sleep_until(t0 + Duration::from_secs(71)).await;
    assert_eq!(job.health_check().assess().status(), Status::Up);
    sleep_until(t0 + Duration::from_secs(73)).await;
    let late = job.health_check().assess();
    assert_eq!(late.status(), Status::Degraded, "{late:?}");
    assert_eq!(late.error_type(), Some("late"));
    job.shutdown_within(Duration::ZERO).await;
}

/// A run blocked in synchronous code cannot be dropped; the health check sees it stuck. Real
/// time, on a multi-thread runtime (the blocked run holds one worker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stuck_past_its_deadline_and_grace_is_down() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let job = Job::builder("stuck")
        .every(Duration::from_secs(3600))
        .deadline(Duration::from_millis(100))
        .grace(Duration::from_millis(100))
        .spawn(move |_ctx: RunContext| {
            let rx = rx.clone();
            async move {
                // Synchronous work that never yields until the test releases it
                // (`block_in_place` keeps the rest of the runtime going meanwhile).
                tokio::task::block_in_place(|| {
                    let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
                });
                Ok::<_, String>(Stats::default())
            }
        })
        .unwrap();
    let health = job.health_check();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = health.assess();
    while last.status() != Status::Down && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        last = health.assess();
    }
    assert_eq!(last.status(), Status::Down, "{last:?}");
    assert_eq!(last.error_type(), Some("stuck"));
    assert!(last.message().unwrap().contains("stuck"), "{last:?}");
    tx.send(()).unwrap();
    // Released, it returns late: a timeout, and no longer stuck.
    while job.history().is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(job.history()[0].outcome, lookout_cleanup::Outcome::Timeout);
    assert_eq!(health.assess().status(), Status::Degraded);
    job.shutdown_within(Duration::ZERO).await;
}
