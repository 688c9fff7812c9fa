//! Schedules, overlap policies, missed ticks, manual control and settings validation.
//! Tokio's paused clock makes the timings exact; nothing here waits in real time but the cron test.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_cleanup::{BuildError, Job, NotStarted, Outcome, Overlap, RunContext, Stats};
use tokio::time::{Instant, sleep, sleep_until};

/// A task that sleeps `work` per run and records how many runs were in flight at once.
#[derive(Clone, Default)]
struct Probe {
    current: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
    dropped_unfinished: Arc<AtomicUsize>,
}

struct Unfinished(Arc<AtomicUsize>, bool);
impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Probe {
    fn task(
        &self,
        work: Duration,
    ) -> impl Fn(RunContext) -> std::pin::Pin<Box<dyn Future<Output = Result<Stats, String>> + Send>>
    + Send
    + Sync
    + 'static {
        let p = self.clone();
        move |_ctx| {
            let p = p.clone();
            Box::pin(async move {
                p.started.fetch_add(1, Ordering::SeqCst);
                let now = p.current.fetch_add(1, Ordering::SeqCst) + 1;
                p.max.fetch_max(now, Ordering::SeqCst);
                let mut guard = Unfinished(p.dropped_unfinished.clone(), false);
                sleep(work).await;
                guard.1 = true;
                p.current.fetch_sub(1, Ordering::SeqCst);
                Ok(Stats::default())
            })
        }
    }
}

fn count(job: &Job, outcome: Outcome) -> u64 {
    job.stats().runs_by_outcome[&outcome]
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn forbid_skips_and_counts_ticks_while_a_run_is_in_progress() {
    let probe = Probe::default();
    let t0 = Instant::now();
    let job = Job::builder("forbid")
        .every(Duration::from_millis(100))
        .deadline(Duration::from_secs(10))
        .spawn(probe.task(Duration::from_millis(250)))
        .unwrap();
    // Ticks at 0, 100, ..., 1000 ms: runs start at 0, 300, 600, 900; the ticks between are
    // skipped.
    sleep_until(t0 + Duration::from_millis(1050)).await;
    assert_eq!(probe.max.load(Ordering::SeqCst), 1, "runs overlapped");
    assert_eq!(probe.started.load(Ordering::SeqCst), 4);
    assert_eq!(count(&job, Outcome::Skipped), 7);
    let skipped = job
        .history()
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .count();
    assert_eq!(skipped, 7);
    // A manual run is refused the same way while one is in progress.
    assert!(matches!(
        job.run_now(),
        Err(NotStarted::Overlap { running: 1, .. })
    ));
    job.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn allow_n_runs_up_to_n_at_once() {
    let probe = Probe::default();
    let t0 = Instant::now();
    let job = Job::builder("allow")
        .every(Duration::from_millis(100))
        .overlap(Overlap::Allow(2))
        .deadline(Duration::from_secs(10))
        .spawn(probe.task(Duration::from_millis(250)))
        .unwrap();
    sleep_until(t0 + Duration::from_millis(1050)).await;
    assert_eq!(probe.max.load(Ordering::SeqCst), 2);
    assert!(count(&job, Outcome::Skipped) > 0);
    assert!(count(&job, Outcome::Success) >= 4);
    job.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn replace_cancels_the_running_one_and_drops_its_future() {
    let probe = Probe::default();
    let t0 = Instant::now();
    let job = Job::builder("replace")
        .every(Duration::from_millis(100))
        .overlap(Overlap::Replace)
        .deadline(Duration::from_secs(10))
        .spawn(probe.task(Duration::from_secs(3600)))
        .unwrap();
    sleep_until(t0 + Duration::from_millis(450)).await;
    // Ticks at 0..400: each replaced the previous one.
    assert_eq!(probe.started.load(Ordering::SeqCst), 5);
    assert_eq!(count(&job, Outcome::Cancelled), 4);
    assert_eq!(probe.dropped_unfinished.load(Ordering::SeqCst), 4);
    assert_eq!(job.stats().in_progress, 1);
    let cancelled = job
        .history()
        .into_iter()
        .find(|r| r.outcome == Outcome::Cancelled)
        .unwrap();
    assert!(cancelled.message.unwrap().contains("replaced"));
    job.shutdown_within(Duration::ZERO).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_stall_skips_the_missed_ticks_instead_of_bursting() {
    let probe = Probe::default();
    let job = Job::builder("stall")
        .every(Duration::from_secs(1))
        .spawn(probe.task(Duration::from_millis(10)))
        .unwrap();
    sleep(Duration::from_millis(50)).await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 1);
    // The scheduler is not polled for 10.5 s (as in a stalled process): the tick due at 1 s
    // fires late, once.
    tokio::time::advance(Duration::from_millis(10_500)).await;
    sleep(Duration::from_millis(50)).await;
    assert_eq!(
        probe.started.load(Ordering::SeqCst),
        2,
        "missed ticks ran in a burst"
    );
    let stats = job.stats();
    assert_eq!(stats.missed_ticks, 9, "ticks due at 2..=10 s were skipped");
    // The schedule keeps its rate: the next tick is at 11 s.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 3);
    let lagged = &job.history()[1];
    assert!(lagged.lag >= Duration::from_millis(9_500), "{lagged:?}");
    job.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn after_each_waits_for_the_previous_run_then_the_delay() {
    let probe = Probe::default();
    let t0 = Instant::now();
    let job = Job::builder("delay")
        .after_each(Duration::from_millis(100))
        .initial_delay(Duration::from_millis(50))
        .spawn(probe.task(Duration::from_millis(200)))
        .unwrap();
    // Runs at 50-250, 350-550, 650-850, 950-...
    sleep_until(t0 + Duration::from_millis(1000)).await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 4);
    assert_eq!(count(&job, Outcome::Skipped), 0);
    assert_eq!(probe.max.load(Ordering::SeqCst), 1);
    job.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn pause_stops_timer_runs_and_manual_runs_still_go() {
    let probe = Probe::default();
    let t0 = Instant::now();
    let job = Job::builder("pause")
        .every(Duration::from_millis(100))
        .spawn(probe.task(Duration::from_millis(1)))
        .unwrap();
    sleep_until(t0 + Duration::from_millis(250)).await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 3);
    job.pause();
    assert!(job.is_paused());
    sleep_until(t0 + Duration::from_millis(750)).await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 3);
    let id = job.run_now().unwrap();
    sleep(Duration::from_millis(10)).await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 4);
    assert_eq!(job.history()[0].id, id);
    assert_eq!(job.history()[0].trigger, lookout_cleanup::Trigger::Manual);
    job.resume();
    sleep_until(t0 + Duration::from_millis(950)).await;
    assert_eq!(probe.started.load(Ordering::SeqCst), 6);
    job.shutdown_within(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_settings_are_all_reported_at_once() {
    let err = Job::builder(" ")
        .every(Duration::from_millis(100))
        .jitter(Duration::from_millis(100))
        .overlap(Overlap::Allow(0))
        .item_budget(0)
        .failures_before_down(0)
        .spawn(|_ctx: RunContext| async { Ok::<_, String>(Stats::default()) })
        .unwrap_err();
    let BuildError::Invalid { problems, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 5, "{problems:#?}");
    let text = err.to_string();
    for needle in [
        "name is empty",
        "jitter",
        "Allow(0)",
        "item budget",
        "failures_before_down",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let err = Job::builder("x")
        .spawn(|_ctx: RunContext| async { Ok::<_, String>(Stats::default()) })
        .unwrap_err();
    assert!(err.to_string().contains("no schedule"), "{err}");
}

#[test]
fn spawning_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Job::builder("x")
        .every(Duration::from_secs(1))
        .spawn(|_ctx: RunContext| async { Ok::<_, String>(Stats::default()) })
        .unwrap_err();
    assert!(matches!(err, BuildError::NoRuntime { .. }), "{err}");
    assert!(err.to_string().contains("Tokio runtime"));
}

#[cfg(feature = "cron")]
#[tokio::test(flavor = "current_thread")]
async fn a_cron_schedule_fires_on_its_seconds() {
    let err = Job::builder("bad-cron")
        .cron("every minute please")
        .spawn(|_ctx: RunContext| async { Ok::<_, String>(Stats::default()) })
        .unwrap_err();
    assert!(err.to_string().contains("cron expression"), "{err}");
    assert!(!err.to_string().contains("no schedule"), "{err}");

    let probe = Probe::default();
    let job = Job::builder("cron")
        .cron("* * * * * *")
        .spawn(probe.task(Duration::from_millis(1)))
        .unwrap();
    // Real time: wait for two runs (bounded), which must fall in two different seconds.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while job.history().len() < 2 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let history = job.history();
    assert!(history.len() >= 2, "{history:?}");
    let second = |r: &lookout_cleanup::RunRecord| {
        r.started_at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    assert!(history.iter().all(|r| r.outcome == Outcome::Success));
    assert!(second(&history[0]) > second(&history[1]), "{history:?}");
    job.shutdown_within(Duration::from_secs(1)).await;
}
