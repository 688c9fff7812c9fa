//! The loop that starts a job's runs on its schedule, with its overlap policy and jitter.

use super::*;

pub(super) async fn schedule_loop(shared: Arc<Shared>) {
    let first = Instant::now() + shared.initial_delay;
    match &shared.schedule {
        Schedule::Every(period) => {
            let mut clock = RateClock::new(first, *period);
            loop {
                let due = clock.due();
                tokio::select! {
                    () = shared.stop.cancelled() => return,
                    () = tokio::time::sleep_until(due + jitter(shared.jitter)) => {}
                }
                let missed = clock.advance(Instant::now());
                if missed > 0 {
                    shared.missed(missed);
                }
                let _ = shared.try_start(Trigger::Timer, due);
            }
        }
        Schedule::AfterEach(delay) => {
            let mut due = first;
            loop {
                tokio::select! {
                    () = shared.stop.cancelled() => return,
                    () = tokio::time::sleep_until(due + jitter(shared.jitter)) => {}
                }
                if let Ok(id) = shared.try_start(Trigger::Timer, due) {
                    tokio::select! {
                        () = shared.stop.cancelled() => return,
                        _ = shared.wait_until(|st| !st.running.contains_key(&id), None) => {}
                    }
                }
                due = Instant::now() + *delay;
            }
        }
        #[cfg(feature = "cron")]
        Schedule::Cron(schedule) => {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                () = tokio::time::sleep_until(first) => {}
            }
            let mut previous = None;
            loop {
                let Some((due_wall, due)) = crate::schedule::next_cron(schedule, previous) else {
                    tracing::warn!(
                        target: "lookout_cleanup",
                        job = %shared.name,
                        "the cron expression has no future firing; the job's timer stops"
                    );
                    return;
                };
                previous = Some(due_wall);
                tokio::select! {
                    () = shared.stop.cancelled() => return,
                    () = tokio::time::sleep_until(due + jitter(shared.jitter)) => {}
                }
                // Firings that passed while this one was late (a stall): skipped and counted.
                let now = chrono::Utc::now();
                let missed = schedule
                    .after(&due_wall)
                    .take(10_000)
                    .take_while(|t| *t + chrono::Duration::seconds(1) <= now)
                    .count() as u64;
                if missed > 0 {
                    shared.missed(missed);
                    previous = Some(now);
                }
                let _ = shared.try_start(Trigger::Timer, due);
            }
        }
    }
}
