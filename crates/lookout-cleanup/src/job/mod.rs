//! A job: its settings ([`JobBuilder`]) and the state its parts share. The parts, a module each:
//! the handle that controls it (`handle`), the scheduler (`scheduler`), one run (`run`), the
//! dead man's switch (`health`).

mod handle;
mod health;
mod run;
mod scheduler;

pub use handle::{Job, NotStarted, ShutdownReport};
pub use health::JobHealth;
use run::{Run, execute};
use scheduler::schedule_loop;

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
/// How long [`Job::shutdown`] waits for runs in progress by default.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);
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
    drain: Duration,
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

    /// How long [`Job::shutdown`] waits for runs in progress before it cancels them (default
    /// [`DEFAULT_DRAIN`], 10 s).
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
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
        // Made again when lookout installs another meter provider: a job spawned before
        // `lookout::init` records into the pipeline `init` starts.
        let job_name = name.clone();
        let instruments = lookout::metrics::Current::new("lookout-cleanup", self.meter, move |m| {
            Instruments::new(m, &job_name)
        });
        let shared = Arc::new(Shared {
            instruments,
            name: name.into(),
            deadline: self.deadline.unwrap_or(period),
            grace: self.grace.unwrap_or_else(|| {
                (period / 2).clamp(Duration::from_secs(1), Duration::from_secs(300))
            }),
            drain: self.drain,
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

struct Shared {
    name: Arc<str>,
    schedule: Schedule,
    period: Duration,
    initial_delay: Duration,
    jitter: Duration,
    overlap: Overlap,
    deadline: Duration,
    grace: Duration,
    drain: Duration,
    item_budget: Option<u64>,
    time_budget: Option<Duration>,
    failures_before_down: u32,
    history_len: usize,
    task: Arc<dyn DynTask>,
    instruments: lookout::metrics::Current<Instruments>,
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
            return Err(self.skip(st, id, trigger, scheduled));
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
        self.instruments.get().in_progress(st.running.len());
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

    /// Records run `id` as skipped (a run is in progress and the overlap policy forbids another),
    /// and says so.
    fn skip(
        &self,
        mut st: MutexGuard<'_, State>,
        id: u64,
        trigger: Trigger,
        scheduled: Instant,
    ) -> NotStarted {
        let running = st.running.len();
        st.runs_by_outcome[Outcome::Skipped.index()] += 1;
        let record = RunRecord {
            id,
            trigger,
            outcome: Outcome::Skipped,
            started_at: SystemTime::now(),
            duration: Duration::ZERO,
            lag: Instant::now().saturating_duration_since(scheduled),
            stats: Stats::default(),
            error_type: None,
            message: Some(format!(
                "{running} run(s) in progress (overlap: {:?})",
                self.overlap
            )),
        };
        self.push_history(&mut st, record);
        drop(st);
        self.instruments.get().skipped();
        tracing::debug!(
            target: "lookout_cleanup",
            job = %self.name,
            running,
            "cleanup run skipped: a run is in progress"
        );
        NotStarted::Overlap {
            job: self.name.to_string(),
            running,
            overlap: self.overlap,
        }
    }

    fn missed(&self, n: u64) {
        self.lock().missed_ticks += n;
        self.instruments.get().missed(n);
        tracing::warn!(
            target: "lookout_cleanup",
            job = %self.name,
            missed = n,
            "cleanup scheduler was late: {n} tick(s) skipped, not run in a burst"
        );
    }
}
