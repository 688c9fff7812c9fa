//! The handle of a running job: run now, pause, resume, shutdown, statistics, history, health.

use super::*;

/// A running cleanup job: control it, read its statistics and history, and watch its health.
///
/// Cloning gives another handle to the same job. The scheduler runs until
/// [`shutdown`](Self::shutdown) (or until its runtime stops), whether handles remain or not.
#[derive(Clone)]
pub struct Job {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.shared.name)
            .field("schedule", &self.shared.schedule)
            .field("overlap", &self.shared.overlap)
            .field("deadline", &self.shared.deadline)
            .finish_non_exhaustive()
    }
}

/// Why [`Job::run_now`] did not start a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotStarted {
    /// The overlap policy refused it (counted as a `skipped` run).
    #[error(
        "cleanup job {job:?}: not started, {running} run(s) in progress and the overlap policy \
         is {overlap:?}; wait for it to finish, or configure Overlap::Replace or Overlap::Allow"
    )]
    Overlap {
        /// The job.
        job: String,
        /// Runs in progress.
        running: usize,
        /// The policy.
        overlap: Overlap,
    },
    /// The job is shutting down.
    #[error("cleanup job {job:?}: not started, the job is shutting down")]
    ShuttingDown {
        /// The job.
        job: String,
    },
    /// The job is paused (timer ticks only; manual runs still start).
    #[error("cleanup job {job:?}: paused")]
    Paused {
        /// The job.
        job: String,
    },
}

/// What [`Job::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs in progress that finished within the drain timeout.
    pub drained: usize,
    /// Runs still in progress at the drain timeout, cancelled (outcome `cancelled`).
    pub cancelled: usize,
}

impl Job {
    /// Starts configuring a job named `name` (the `cleanup.job.name` of its metrics and spans).
    pub fn builder(name: impl Into<String>) -> JobBuilder {
        JobBuilder {
            name: name.into(),
            schedule: None,
            problems: Vec::new(),
            initial_delay: Duration::ZERO,
            jitter: Duration::ZERO,
            overlap: Overlap::Forbid,
            deadline: None,
            grace: None,
            drain: DEFAULT_DRAIN,
            item_budget: None,
            time_budget: None,
            failures_before_down: DEFAULT_FAILURES_BEFORE_DOWN,
            history: DEFAULT_HISTORY,
            meter: None,
        }
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Starts a run now (trigger `manual`), subject to the overlap policy; returns its id.
    /// Manual runs start while the job is paused.
    ///
    /// # Errors
    /// Refused by the overlap policy, or the job is shutting down.
    pub fn run_now(&self) -> Result<u64, NotStarted> {
        self.shared.try_start(Trigger::Manual, Instant::now())
    }

    /// Stops timer ticks from starting runs until [`resume`](Self::resume). Runs in progress go
    /// on. The health check says Degraded while paused.
    pub fn pause(&self) {
        self.shared.lock().paused = true;
        tracing::info!(target: "lookout_cleanup", job = %self.shared.name, "cleanup job paused");
    }

    /// Lets timer ticks start runs again.
    pub fn resume(&self) {
        self.shared.lock().paused = false;
        tracing::info!(target: "lookout_cleanup", job = %self.shared.name, "cleanup job resumed");
    }

    /// Whether the job is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.lock().paused
    }

    /// The last runs (and skipped ticks), newest first.
    pub fn history(&self) -> Vec<RunRecord> {
        self.shared.lock().history.iter().rev().cloned().collect()
    }

    /// The job's statistics since it started.
    pub fn stats(&self) -> JobStats {
        let st = self.shared.lock();
        let executed: u64 = Outcome::ALL
            .iter()
            .filter(|o| **o != Outcome::Skipped)
            .map(|o| st.runs_by_outcome[o.index()])
            .sum();
        JobStats {
            name: self.shared.name.to_string(),
            total_runs: executed,
            runs_by_outcome: Outcome::ALL
                .iter()
                .map(|o| (*o, st.runs_by_outcome[o.index()]))
                .collect(),
            items_scanned: st.scanned,
            items_removed: st.removed,
            items_failed: st.failed,
            mean_duration: (executed > 0)
                .then(|| st.duration_total / u32::try_from(executed).unwrap_or(u32::MAX)),
            max_duration: st.duration_max,
            success_rate: (executed > 0)
                .then(|| st.runs_by_outcome[Outcome::Success.index()] as f64 / executed as f64),
            consecutive_failures: st.consecutive_failures,
            last_success: st.last_success.map(|(t, _)| t),
            last_run: st.last_run,
            in_progress: st.running.len(),
            paused: st.paused,
            backlog: st.backlog,
            missed_ticks: st.missed_ticks,
        }
    }

    /// The job's dead man's switch, to register in a [`lookout_health::Health`] registry.
    /// It runs nothing: it reads the job's state (see [`JobHealth`]).
    pub fn health_check(&self) -> JobHealth {
        JobHealth {
            shared: self.shared.clone(),
        }
    }

    /// [`health_check`](Self::health_check) as a registration: named after the job, in the
    /// readiness group (never liveness), optional (a failing job makes readiness Degraded, not
    /// Down: a late cleanup should alert, not take the service out of its load balancer),
    /// re-assessed on every probe. Adjust it with `Check`'s methods, or build your own with
    /// `Check::new(job.name(), job.health_check())`.
    pub fn check(&self) -> lookout_health::Check {
        lookout_health::Check::new(self.shared.name.to_string(), self.health_check())
            .groups([lookout_health::group::READINESS])
            .optional()
            .ttl(Duration::ZERO)
    }

    /// Stops scheduling, waits up to the job's drain time ([`JobBuilder::drain`], default 10 s)
    /// for runs in progress, then cancels those still running (outcome `cancelled`). Safe to
    /// call more than once.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.shutdown_within(self.shared.drain).await
    }

    /// [`shutdown`](Self::shutdown), waiting up to `drain` instead of the job's drain time.
    pub async fn shutdown_within(&self, drain: Duration) -> ShutdownReport {
        let shared = &self.shared;
        let at_start = {
            let mut st = shared.lock();
            st.shutting_down = true;
            st.running.len()
        };
        shared.stop.cancel();
        let until = Instant::now() + drain;
        let all_done = shared
            .wait_until(|st| st.running.is_empty(), Some(until))
            .await;
        let mut cancelled = 0;
        if !all_done {
            for r in shared.lock().running.values() {
                let _ = r
                    .reason
                    .set("cancelled at shutdown: the drain timeout passed");
                r.cancel.cancel();
                r.kill.cancel();
                cancelled += 1;
            }
            // A cancelled run ends at its next `.await`; one blocked in synchronous code cannot
            // be stopped from here, so this wait is bounded.
            shared
                .wait_until(
                    |st| st.running.is_empty(),
                    Some(Instant::now() + Duration::from_secs(1)),
                )
                .await;
        }
        tracing::info!(
            target: "lookout_cleanup",
            job = %shared.name,
            drained = at_start.saturating_sub(cancelled),
            cancelled,
            "cleanup job stopped"
        );
        ShutdownReport {
            drained: at_start.saturating_sub(cancelled),
            cancelled,
        }
    }
}
