//! A job: its settings, its scheduler, its runs, and the handle that controls it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;

use opentelemetry_semantic_conventions::attribute as semconv;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use opentelemetry::metrics::Meter;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::context::{RunContext, RunSettings, Trigger};
use crate::error::{BuildError, fmt_duration};
use crate::schedule::{RateClock, Schedule};
use crate::stats::{JobStats, Outcome, RunRecord, Stats};
use crate::task::{CleanupTask, DynTask, RunError};
use crate::telemetry::{Finished, Instruments};

/// What happens when a run is due while another is still in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Skip the new run and count it as `skipped` (the default).
    #[default]
    Forbid,
    /// Cancel the running one (outcome `cancelled`) and start the new one.
    Replace,
    /// Run up to this many at once; skip beyond.
    Allow(usize),
}

/// The default number of runs kept in [`Job::history`].
pub const DEFAULT_HISTORY: usize = 50;
/// The default number of consecutive failures that make the health check Down.
pub const DEFAULT_FAILURES_BEFORE_DOWN: u32 = 3;

/// Settings of a job; see [`Job::builder`].
#[derive(Debug)]
#[must_use = "a job builder does nothing until .spawn() is called"]
pub struct JobBuilder {
    name: String,
    schedule: Option<Schedule>,
    problems: Vec<String>,
    initial_delay: Duration,
    jitter: Duration,
    overlap: Overlap,
    deadline: Option<Duration>,
    grace: Option<Duration>,
    item_budget: Option<u64>,
    time_budget: Option<Duration>,
    failures_before_down: u32,
    history: usize,
    meter: Option<Meter>,
}

impl JobBuilder {
    /// Fixed rate: a run every `period`, timed from the first; late ticks are skipped and
    /// counted, never run in a burst.
    pub fn every(mut self, period: Duration) -> Self {
        self.schedule = Some(Schedule::Every(period));
        self
    }

    /// Fixed delay: the next run starts `delay` after the previous one ended.
    pub fn after_each(mut self, delay: Duration) -> Self {
        self.schedule = Some(Schedule::AfterEach(delay));
        self
    }

    /// A cron expression, seconds first, in UTC (`"0 */5 * * * *"`: every 5 minutes). An invalid
    /// expression is reported by [`spawn`](Self::spawn).
    #[cfg(feature = "cron")]
    pub fn cron(mut self, expression: &str) -> Self {
        use std::str::FromStr as _;
        match cron::Schedule::from_str(expression) {
            Ok(s) => self.schedule = Some(Schedule::Cron(Box::new(s))),
            Err(e) => self.problems.push(format!(
                "the cron expression {expression:?} is invalid ({e}): use 6 or 7 fields, seconds \
                 first, such as \"0 */5 * * * *\""
            )),
        }
        self
    }

    /// Waits this long before the first tick (default none).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Delays each tick by a random amount up to `jitter`, so that replicas do not all clean up
    /// at the same moment (default none; must be shorter than the period).
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// What to do when a run is due while one is in progress (default [`Overlap::Forbid`]).
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// After this long a run is asked to stop (its context is cancelled) and, if it returns,
    /// its outcome is `timeout` (default: the schedule's period).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// How long past its deadline a run may take to stop before it is dropped, and how long
    /// past its period a job may go without success before its health check says it is late
    /// (default: half the period, between 1 s and 5 min).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// At most this many items per run ([`RunContext::should_continue`],
    /// [`RunContext::batch_size`]); the rest is reported as `remaining` and left for the next
    /// run.
    pub fn item_budget(mut self, items: u64) -> Self {
        self.item_budget = Some(items);
        self
    }

    /// At most this much time per run spent starting new batches
    /// ([`RunContext::should_continue`]).
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }

    /// Consecutive failed or timed-out runs that make the health check Down (default 3; fewer
    /// make it Degraded).
    pub fn failures_before_down(mut self, n: u32) -> Self {
        self.failures_before_down = n;
        self
    }

    /// How many runs [`Job::history`] keeps (default 50).
    pub fn history(mut self, runs: usize) -> Self {
        self.history = runs;
        self
    }

    /// Records metrics on `meter` (default: the global meter provider's `lookout-cleanup`).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Checks the settings and starts the job's scheduler on the current Tokio runtime.
    ///
    /// # Errors
    /// Every invalid setting at once ([`BuildError::Invalid`]), or no runtime.
    pub fn spawn(mut self, task: impl CleanupTask) -> Result<Job, BuildError> {
        let name = self.name.trim().to_owned();
        let mut problems = std::mem::take(&mut self.problems);
        // Only `cron` adds problems before `spawn`: an invalid expression is its own report.
        let cron_rejected = !problems.is_empty();
        if name.is_empty() {
            problems.push(
                "the name is empty: give the job a name such as \"session-cleanup\"".to_owned(),
            );
        }
        let schedule = self.schedule.take();
        if schedule.is_none() && !cron_rejected {
            problems.push(
                "no schedule: call .every(period), .after_each(delay) or .cron(expr)".to_owned(),
            );
        }
        if let Some(Schedule::Every(p) | Schedule::AfterEach(p)) = &schedule {
            if p.is_zero() {
                problems.push("the period is zero: give a period such as 60s".to_owned());
            } else if matches!(schedule, Some(Schedule::Every(_))) && self.jitter >= *p {
                problems.push(format!(
                    "the jitter ({}) must be shorter than the period ({})",
                    fmt_duration(self.jitter),
                    fmt_duration(*p)
                ));
            }
        }
        if self.overlap == Overlap::Allow(0) {
            problems.push(
                "Overlap::Allow(0) would never run: allow at least 1, or use Overlap::Forbid"
                    .to_owned(),
            );
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            problems.push("the deadline is zero: give the run time to work".to_owned());
        }
        if self.item_budget == Some(0) {
            problems.push("the item budget is 0: allow at least 1 item per run".to_owned());
        }
        if self.failures_before_down == 0 {
            problems.push("failures_before_down is 0: it must be at least 1".to_owned());
        }
        let Some(schedule) = schedule.filter(|_| problems.is_empty()) else {
            return Err(BuildError::Invalid {
                job: name,
                problems,
            });
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BuildError::NoRuntime { job: name });
        }
        let period = schedule.expected_period();
        let meter = self
            .meter
            .unwrap_or_else(|| opentelemetry::global::meter("lookout-cleanup"));
        let shared = Arc::new(Shared {
            instruments: Instruments::new(&meter, &name),
            name: name.into(),
            deadline: self.deadline.unwrap_or(period),
            grace: self.grace.unwrap_or_else(|| {
                (period / 2).clamp(Duration::from_secs(1), Duration::from_secs(300))
            }),
            period,
            schedule,
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            overlap: self.overlap,
            item_budget: self.item_budget,
            time_budget: self.time_budget,
            failures_before_down: self.failures_before_down,
            history_len: self.history,
            task: Arc::new(task),
            state: Mutex::new(State::default()),
            finished: Notify::new(),
            stop: CancellationToken::new(),
            created: Instant::now(),
        });
        tokio::spawn(schedule_loop(shared.clone()));
        Ok(Job { shared })
    }
}

/// A running cleanup job: control it, read its statistics and history, and watch its health.
///
/// Cloning gives another handle to the same job. The scheduler runs until
/// [`shutdown`](Self::shutdown) (or until its runtime stops), whether handles remain or not.
#[derive(Clone)]
pub struct Job {
    shared: Arc<Shared>,
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

    /// Stops scheduling, waits up to `drain` for runs in progress, then cancels those still
    /// running (outcome `cancelled`). Safe to call more than once.
    pub async fn shutdown(&self, drain: Duration) -> ShutdownReport {
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

struct Shared {
    name: Arc<str>,
    schedule: Schedule,
    period: Duration,
    initial_delay: Duration,
    jitter: Duration,
    overlap: Overlap,
    deadline: Duration,
    grace: Duration,
    item_budget: Option<u64>,
    time_budget: Option<Duration>,
    failures_before_down: u32,
    history_len: usize,
    task: Arc<dyn DynTask>,
    instruments: Instruments,
    state: Mutex<State>,
    /// Signalled whenever a run ends.
    finished: Notify,
    /// Stops the scheduler.
    stop: CancellationToken,
    created: Instant,
}

#[derive(Default)]
struct State {
    paused: bool,
    shutting_down: bool,
    next_id: u64,
    running: BTreeMap<u64, Running>,
    history: VecDeque<RunRecord>,
    runs_by_outcome: [u64; 6],
    scanned: u64,
    removed: u64,
    failed: u64,
    duration_total: Duration,
    duration_max: Option<Duration>,
    consecutive_failures: u32,
    last_success: Option<(SystemTime, Instant)>,
    last_run: Option<SystemTime>,
    /// The last executed run's outcome, failed items and message.
    last: Option<(Outcome, u64, Option<String>)>,
    backlog: u64,
    missed_ticks: u64,
}

struct Running {
    cancel: CancellationToken,
    kill: CancellationToken,
    started: Instant,
    deadline: Instant,
    reason: Arc<OnceLock<&'static str>>,
}

enum End {
    Returned(std::thread::Result<Result<Stats, RunError>>),
    Killed,
    Abandoned,
}

fn jitter(max: Duration) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(if ms == 0 { 0 } else { fastrand::u64(0..ms) })
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held; if one did, the state is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `done(state)` holds (true) or `until` passes (false).
    async fn wait_until(&self, done: impl Fn(&State) -> bool, until: Option<Instant>) -> bool {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.lock()) {
                return true;
            }
            match until {
                Some(t) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(t) => return done(&self.lock()),
                    }
                }
                None => notified.await,
            }
        }
    }

    fn push_history(&self, st: &mut State, record: RunRecord) {
        if self.history_len == 0 {
            return;
        }
        while st.history.len() >= self.history_len {
            st.history.pop_front();
        }
        st.history.push_back(record);
    }

    fn try_start(
        self: &Arc<Self>,
        trigger: Trigger,
        scheduled: Instant,
    ) -> Result<u64, NotStarted> {
        let mut st = self.lock();
        if st.shutting_down {
            return Err(NotStarted::ShuttingDown {
                job: self.name.to_string(),
            });
        }
        if trigger == Trigger::Timer && st.paused {
            return Err(NotStarted::Paused {
                job: self.name.to_string(),
            });
        }
        let refuse = match self.overlap {
            Overlap::Forbid => !st.running.is_empty(),
            Overlap::Allow(n) => st.running.len() >= n,
            Overlap::Replace => {
                for r in st.running.values() {
                    let _ = r.reason.set("replaced by a newer run (overlap: replace)");
                    r.cancel.cancel();
                    r.kill.cancel();
                }
                false
            }
        };
        st.next_id += 1;
        let id = st.next_id;
        if refuse {
            let running = st.running.len();
            st.runs_by_outcome[Outcome::Skipped.index()] += 1;
            let now = Instant::now();
            let record = RunRecord {
                id,
                trigger,
                outcome: Outcome::Skipped,
                started_at: SystemTime::now(),
                duration: Duration::ZERO,
                lag: now.saturating_duration_since(scheduled),
                stats: Stats::default(),
                error_type: None,
                message: Some(format!(
                    "{running} run(s) in progress (overlap: {:?})",
                    self.overlap
                )),
            };
            self.push_history(&mut st, record);
            drop(st);
            self.instruments.skipped();
            tracing::debug!(
                target: "lookout_cleanup",
                job = %self.name,
                running,
                "cleanup run skipped: a run is in progress"
            );
            return Err(NotStarted::Overlap {
                job: self.name.to_string(),
                running,
                overlap: self.overlap,
            });
        }
        let started = Instant::now();
        let running = Running {
            cancel: CancellationToken::new(),
            kill: CancellationToken::new(),
            started,
            deadline: started + self.deadline,
            reason: Arc::new(OnceLock::new()),
        };
        let (cancel, kill, reason) = (
            running.cancel.clone(),
            running.kill.clone(),
            running.reason.clone(),
        );
        st.running.insert(id, running);
        self.instruments.in_progress(st.running.len());
        drop(st);
        tokio::spawn(execute(
            self.clone(),
            Run {
                id,
                trigger,
                scheduled,
                started,
                cancel,
                kill,
                reason,
            },
        ));
        Ok(id)
    }

    fn missed(&self, n: u64) {
        self.lock().missed_ticks += n;
        self.instruments.missed(n);
        tracing::warn!(
            target: "lookout_cleanup",
            job = %self.name,
            missed = n,
            "cleanup scheduler was late: {n} tick(s) skipped, not run in a burst"
        );
    }
}

struct Run {
    id: u64,
    trigger: Trigger,
    scheduled: Instant,
    started: Instant,
    cancel: CancellationToken,
    kill: CancellationToken,
    reason: Arc<OnceLock<&'static str>>,
}

async fn execute(shared: Arc<Shared>, run: Run) {
    let started_at = SystemTime::now();
    let lag = run.started.saturating_duration_since(run.scheduled);
    let span = tracing::info_span!(
        target: "lookout_cleanup",
        parent: None,
        "cleanup.run",
        cleanup.job.name = %shared.name,
        cleanup.run.id = run.id,
        cleanup.trigger = run.trigger.as_str(),
        faas.trigger = if run.trigger == Trigger::Timer { "timer" } else { "other" },
        cleanup.scheduled_at = unix_secs(started_at) - lag.as_secs_f64(),
        cleanup.lag = lag.as_secs_f64(),
        cleanup.outcome = Empty,
        cleanup.items.scanned = Empty,
        cleanup.items.removed = Empty,
        cleanup.items.failed = Empty,
        cleanup.items.remaining = Empty,
        error.type = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    let deadline = run.started + shared.deadline;
    let ctx = RunContext::new(RunSettings {
        job: shared.name.clone(),
        run_id: run.id,
        trigger: run.trigger,
        cancel: run.cancel.clone(),
        started: run.started,
        deadline: Some(deadline),
        item_budget: shared.item_budget,
        time_budget: shared.time_budget,
        span: span.clone(),
    });
    let mut timed_out = false;
    let end = {
        let fut =
            AssertUnwindSafe(shared.task.clone().run(ctx).instrument(span.clone())).catch_unwind();
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                r = &mut fut => break End::Returned(r),
                () = run.kill.cancelled() => break End::Killed,
                () = tokio::time::sleep_until(deadline), if !timed_out => {
                    timed_out = true;
                    run.cancel.cancel();
                    span.in_scope(|| tracing::warn!(
                        target: "lookout_cleanup",
                        job = %shared.name,
                        deadline = %fmt_duration(shared.deadline),
                        "cleanup run passed its deadline; asking it to stop"
                    ));
                }
                () = tokio::time::sleep_until(deadline + shared.grace), if timed_out => {
                    break End::Abandoned;
                }
            }
        }
        // The run's future is dropped here if it did not finish.
    };
    let duration = run.started.elapsed();
    let (outcome, stats, error): (Outcome, Option<Stats>, Option<(String, String)>) = match end {
        End::Returned(Ok(Ok(stats))) => {
            if run.kill.is_cancelled() {
                let why = run.reason.get().copied().unwrap_or("cancelled");
                (
                    Outcome::Cancelled,
                    Some(stats),
                    Some(("cancelled".into(), why.into())),
                )
            } else if timed_out || Instant::now() > deadline {
                // (Past the deadline without having been told: the run never yielded.)
                let message = format!(
                    "returned after its deadline of {}",
                    fmt_duration(shared.deadline)
                );
                (
                    Outcome::Timeout,
                    Some(stats),
                    Some(("timeout".into(), message)),
                )
            } else if stats.failed > 0 {
                (Outcome::Partial, Some(stats), None)
            } else {
                (Outcome::Success, Some(stats), None)
            }
        }
        End::Returned(Ok(Err(e))) => (Outcome::Failure, None, Some((e.error_type, e.message))),
        End::Returned(Err(panic)) => (
            Outcome::Failure,
            None,
            Some(("panic".into(), lookout::panic_message(panic.as_ref()))),
        ),
        End::Killed => {
            let why = run.reason.get().copied().unwrap_or("cancelled");
            (
                Outcome::Cancelled,
                None,
                Some(("cancelled".into(), why.into())),
            )
        }
        End::Abandoned => (
            Outcome::Timeout,
            None,
            Some((
                "timeout".into(),
                format!(
                    "did not stop within {} after its deadline of {}; dropped",
                    fmt_duration(shared.grace),
                    fmt_duration(shared.deadline)
                ),
            )),
        ),
    };

    span.record("cleanup.outcome", outcome.as_str());
    if let Some(s) = &stats {
        span.record("cleanup.items.scanned", s.scanned);
        span.record("cleanup.items.removed", s.removed);
        span.record("cleanup.items.failed", s.failed);
        span.record("cleanup.items.remaining", s.remaining);
        for (name, n) in &s.custom {
            span.set_attribute(
                format!("cleanup.count.{name}"),
                i64::try_from(*n).unwrap_or(i64::MAX),
            );
        }
    }
    let is_error = outcome.is_failure() || outcome == Outcome::Partial;
    if let Some((error_type, message)) = &error {
        if outcome != Outcome::Cancelled {
            span.record(semconv::ERROR_TYPE, error_type.as_str());
        }
        if outcome.is_failure() {
            span.record(semconv::OTEL_STATUS_CODE, "ERROR");
            span.record(semconv::OTEL_STATUS_DESCRIPTION, message.as_str());
        }
    }

    let ended_at = SystemTime::now();
    let (last_success_unix, consecutive_failures) = {
        let mut st = shared.lock();
        st.running.remove(&run.id);
        st.runs_by_outcome[outcome.index()] += 1;
        st.duration_total += duration;
        st.duration_max = Some(st.duration_max.map_or(duration, |m| m.max(duration)));
        if let Some(s) = &stats {
            st.scanned += s.scanned;
            st.removed += s.removed;
            st.failed += s.failed;
            st.backlog = s.remaining;
        }
        match outcome {
            Outcome::Success | Outcome::Partial => {
                st.consecutive_failures = 0;
                st.last_success = Some((ended_at, Instant::now()));
            }
            Outcome::Failure | Outcome::Timeout => st.consecutive_failures += 1,
            Outcome::Cancelled | Outcome::Skipped => {}
        }
        st.last_run = Some(ended_at);
        st.last = Some((
            outcome,
            stats.as_ref().map_or(0, |s| s.failed),
            error.as_ref().map(|(_, m)| m.clone()),
        ));
        let record = RunRecord {
            id: run.id,
            trigger: run.trigger,
            outcome,
            started_at,
            duration,
            lag,
            stats: stats.clone().unwrap_or_default(),
            error_type: error.as_ref().map(|(t, _)| t.clone()),
            message: error.as_ref().map(|(_, m)| m.clone()),
        };
        shared.push_history(&mut st, record);
        shared.instruments.in_progress(st.running.len());
        (
            st.last_success.map(|(t, _)| unix_secs(t)),
            st.consecutive_failures,
        )
    };
    shared.instruments.finished(&Finished {
        outcome,
        duration_secs: duration.as_secs_f64(),
        stats: stats.as_ref(),
        ended_unix: unix_secs(ended_at),
        last_success_unix,
        consecutive_failures,
    });
    shared.finished.notify_waiters();

    let s = stats.unwrap_or_default();
    span.in_scope(|| match &error {
        Some((error_type, message)) if outcome.is_failure() => tracing::error!(
            target: "lookout_cleanup",
            job = %shared.name,
            outcome = outcome.as_str(),
            error.type = error_type.as_str(),
            duration = %fmt_duration(duration),
            "cleanup run failed: {message}"
        ),
        _ if is_error || outcome == Outcome::Cancelled => tracing::warn!(
            target: "lookout_cleanup",
            job = %shared.name,
            outcome = outcome.as_str(),
            scanned = s.scanned,
            removed = s.removed,
            failed = s.failed,
            remaining = s.remaining,
            duration = %fmt_duration(duration),
            "cleanup run ended: {}",
            error.as_ref().map_or("some items failed", |(_, m)| m.as_str())
        ),
        _ => tracing::info!(
            target: "lookout_cleanup",
            job = %shared.name,
            outcome = outcome.as_str(),
            scanned = s.scanned,
            removed = s.removed,
            remaining = s.remaining,
            duration = %fmt_duration(duration),
            "cleanup run finished"
        ),
    });
}

async fn schedule_loop(shared: Arc<Shared>) {
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

/// A job's dead man's switch, as a [`lookout_health::HealthCheck`]. It reads the job's state and
/// runs nothing:
///
/// - **Down**: a run is stuck past its deadline plus the grace, or `failures_before_down`
///   consecutive runs failed or timed out;
/// - **Degraded**: the job is paused, the last run failed (fewer times than that), the last
///   run was `Partial`, or it is late: no successful run for the period plus the grace (counted
///   from the first tick before the first run);
/// - **Up** otherwise.
///
/// The observed value is the backlog (`{item}`); details: consecutive failures, runs in progress,
/// the last success's age.
#[derive(Clone)]
pub struct JobHealth {
    shared: Arc<Shared>,
}

impl fmt::Debug for JobHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHealth")
            .field("job", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl JobHealth {
    /// The job's health now.
    pub fn assess(&self) -> lookout_health::CheckResult {
        use lookout_health::CheckResult;
        let shared = &self.shared;
        let st = shared.lock();
        let now = Instant::now();
        let stuck = st
            .running
            .iter()
            .find(|(_, r)| now > r.deadline + shared.grace)
            .map(|(id, r)| (*id, now - r.started));
        let since_success = st.last_success.map(|(_, at)| now - at);
        let reference = st
            .last_success
            .map_or(shared.created + shared.initial_delay, |(_, at)| at);
        let without_success = now.saturating_duration_since(reference);
        let late = without_success > shared.period + shared.grace;
        let result = if let Some((id, running_for)) = stuck {
            CheckResult::down(format!(
                "run {id} stuck: running for {}, past its deadline of {} plus grace {}",
                fmt_duration(round_ms(running_for)),
                fmt_duration(shared.deadline),
                fmt_duration(shared.grace)
            ))
            .with_error_type("stuck")
        } else if st.consecutive_failures >= shared.failures_before_down {
            let last = st.last.as_ref().and_then(|(_, _, m)| m.clone());
            CheckResult::down(format!(
                "{} consecutive failed runs; last: {}",
                st.consecutive_failures,
                last.unwrap_or_default()
            ))
            .with_error_type("failing")
        } else if st.paused {
            CheckResult::degraded("paused by an operator")
        } else if st.consecutive_failures > 0 {
            let last = st.last.as_ref().and_then(|(_, _, m)| m.clone());
            CheckResult::degraded(format!(
                "the last run failed ({} of {} before down): {}",
                st.consecutive_failures,
                shared.failures_before_down,
                last.unwrap_or_default()
            ))
        } else if let Some((Outcome::Partial, failed, _)) = &st.last {
            CheckResult::degraded(format!("the last run could not remove {failed} item(s)"))
        } else if late {
            CheckResult::degraded(format!(
                "late: no successful run for {} (expected every {}, grace {})",
                fmt_duration(round_ms(without_success)),
                fmt_duration(shared.period),
                fmt_duration(shared.grace)
            ))
            .with_error_type("late")
        } else {
            CheckResult::up()
        };
        let mut result = result
            .with_observed(st.backlog, "{item}")
            .with_detail("consecutive_failures", st.consecutive_failures)
            .with_detail("backlog", st.backlog)
            .with_detail("in_progress", st.running.len());
        if let Some(age) = since_success {
            result = result.with_detail("last_success_age", fmt_duration(round_ms(age)));
        }
        result
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl lookout_health::HealthCheck for JobHealth {
    async fn check(&self) -> lookout_health::CheckResult {
        self.assess()
    }
}
