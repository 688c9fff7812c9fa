//! One registered check: its state, single-flight runs, timeouts, panics and hysteresis.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::check::Check;
use crate::registry::Inner;
use crate::status::{CheckResult, Status};

/// The last finished run of a check, as reported (hysteresis applied).
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// What the registry reports: the run's result with the status after hysteresis.
    pub(crate) result: CheckResult,
    /// What the run itself returned.
    pub(crate) raw: Status,
    pub(crate) at: Instant,
    pub(crate) duration: Duration,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Arc<Stored>>,
    running_since: Option<Instant>,
    counts: Streaks,
}

/// Consecutive outcomes, for hysteresis.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Streaks {
    pub(crate) failures: u32,
    pub(crate) successes: u32,
    pub(crate) ever_up: bool,
}

pub(crate) struct Entry {
    pub(crate) check: Check,
    state: Mutex<State>,
    /// Bumped when a run finishes; waiters of a single-flight run subscribe to it.
    done: watch::Sender<u64>,
    pub(crate) registered_at: Instant,
    pub(crate) background: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl Entry {
    pub(crate) fn new(check: Check) -> Entry {
        Entry {
            check,
            state: Mutex::new(State::default()),
            done: watch::Sender::new(0),
            registered_at: Instant::now(),
            background: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last result without running anything.
    pub(crate) fn peek(&self) -> Option<Arc<Stored>> {
        self.lock().last.clone()
    }

    /// The reported status without running anything (Unknown before the first result).
    pub(crate) fn status(&self) -> Status {
        self.peek().map_or(Status::Unknown, |s| s.result.status)
    }

    /// A result no older than the TTL: the cached one, or that of a run started now or already
    /// under way (never two runs at once). Background checks only read.
    pub(crate) async fn current(self: &Arc<Self>, inner: &Arc<Inner>) -> Option<Arc<Stored>> {
        if self.check.period.is_some() {
            return self.peek();
        }
        let mut rx = {
            let mut st = self.lock();
            if let Some(last) = &st.last
                && last.at.elapsed() < self.check.ttl
            {
                return Some(last.clone());
            }
            let rx = self.done.subscribe();
            if st.running_since.is_none() {
                st.running_since = Some(Instant::now());
                // Its own task: a prober that disconnects does not cancel the run others wait for.
                tokio::spawn(run(self.clone(), Arc::downgrade(inner)));
            }
            rx
        };
        let _ = rx.changed().await;
        self.peek()
    }

    /// Runs the check now unless a run is under way (background mode).
    pub(crate) async fn run_now(self: &Arc<Self>, inner: Weak<Inner>) {
        {
            let mut st = self.lock();
            if st.running_since.is_some() {
                return;
            }
            st.running_since = Some(Instant::now());
        }
        run(self.clone(), inner).await;
    }

    fn finish(&self, raw: CheckResult, duration: Duration) -> (Option<Status>, Arc<Stored>) {
        let mut st = self.lock();
        let prev = st
            .last
            .as_ref()
            .map_or(Status::Unknown, |s| s.result.status);
        let in_grace = self.registered_at.elapsed() < self.check.startup_grace;
        let raw_status = raw.status;
        let reported = next_status(prev, raw_status, &mut st.counts, &self.check, in_grace);
        let mut result = raw;
        result.status = reported;
        if reported != raw_status {
            let why = match reported {
                Status::Unknown => "starting: within its start-up grace period",
                _ => "held by hysteresis",
            };
            result.details.insert("reported".into(), why.into());
            result
                .details
                .insert("observedStatus".into(), raw_status.as_str().into());
        }
        let stored = Arc::new(Stored {
            result,
            raw: raw_status,
            at: Instant::now(),
            duration,
        });
        st.last = Some(stored.clone());
        st.running_since = None;
        drop(st);
        self.done.send_modify(|n| *n += 1);
        ((prev != reported).then_some(prev), stored)
    }
}

/// The reported status after a run that returned `raw`, given the previous reported status.
pub(crate) fn next_status(
    prev: Status,
    raw: Status,
    streaks: &mut Streaks,
    check: &Check,
    in_grace: bool,
) -> Status {
    if raw == Status::Down {
        streaks.failures = streaks.failures.saturating_add(1);
        streaks.successes = 0;
        if prev == Status::Down {
            Status::Down
        } else if in_grace && !streaks.ever_up {
            Status::Unknown
        } else if streaks.failures >= check.failures_before_down {
            Status::Down
        } else {
            prev
        }
    } else {
        streaks.successes = streaks.successes.saturating_add(1);
        streaks.failures = 0;
        if raw.is_serving() {
            streaks.ever_up = true;
        }
        if prev == Status::Down && streaks.successes < check.successes_before_up {
            Status::Down
        } else {
            raw
        }
    }
}

/// One run: the check on its own task, bounded by its timeout, a panic caught.
async fn run(entry: Arc<Entry>, inner: Weak<Inner>) {
    let started = Instant::now();
    let start_time = SystemTime::now();
    let timeout = entry.check.timeout;
    let mut task = tokio::spawn(entry.check.check.clone().run());
    let raw = match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) if e.is_panic() => {
            let cause = lookout::panic_message(&*e.into_panic());
            CheckResult::down(format!("the check panicked: {cause}")).with_error_type("panic")
        }
        Ok(Err(_)) => CheckResult::down("the check was cancelled").with_error_type("cancelled"),
        Err(_) => {
            // Dropping the future is what cancels it; abort makes the runtime drop it now.
            task.abort();
            CheckResult::down(format!(
                "the check did not finish within its timeout of {} ms",
                timeout.as_millis()
            ))
            .with_error_type("timeout")
        }
    };
    let duration = started.elapsed();
    let (changed_from, stored) = entry.finish(raw, duration);
    if let Some(inner) = inner.upgrade() {
        inner.after_run(&entry, changed_from, &stored, start_time);
    }
}

/// The background loop of a check with a period.
pub(crate) async fn background(entry: Arc<Entry>, inner: Weak<Inner>) {
    let Some(period) = entry.check.period else {
        return;
    };
    let jitter = |max: Duration| {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(if ms == 0 { 0 } else { fastrand::u64(0..=ms) })
    };
    tokio::time::sleep(entry.check.initial_delay + jitter(entry.check.jitter)).await;
    loop {
        if inner.strong_count() == 0 {
            return;
        }
        entry.run_now(inner.clone()).await;
        tokio::time::sleep(period + jitter(entry.check.jitter)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_fn;

    fn check(failures: u32, successes: u32) -> Check {
        Check::new("c", check_fn(|| async { Status::Up }))
            .failures_before_down(failures)
            .successes_before_up(successes)
    }

    fn feed(check: &Check, raws: &[Status], in_grace: bool) -> Vec<Status> {
        let mut streaks = Streaks::default();
        let mut prev = Status::Unknown;
        raws.iter()
            .map(|&raw| {
                prev = next_status(prev, raw, &mut streaks, check, in_grace);
                prev
            })
            .collect()
    }

    #[test]
    fn one_failure_is_down_by_default() {
        use Status::*;
        assert_eq!(feed(&check(1, 1), &[Up, Down, Up], false), [Up, Down, Up]);
    }

    #[test]
    fn hysteresis_needs_consecutive_failures_and_successes() {
        use Status::*;
        let c = check(3, 2);
        assert_eq!(
            feed(
                &c,
                &[Up, Down, Down, Up, Down, Down, Down, Up, Down, Up, Up, Up],
                false
            ),
            [Up, Up, Up, Up, Up, Up, Down, Down, Down, Down, Up, Up]
        );
    }

    #[test]
    fn degraded_counts_as_success_but_is_reported() {
        use Status::*;
        assert_eq!(
            feed(&check(1, 1), &[Degraded, Down, Degraded], false),
            [Degraded, Down, Degraded]
        );
    }

    #[test]
    fn grace_period_reports_unknown_until_first_success() {
        use Status::*;
        assert_eq!(
            feed(&check(1, 1), &[Down, Down, Up, Down], true),
            [Unknown, Unknown, Up, Down]
        );
    }
}
