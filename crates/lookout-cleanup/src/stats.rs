//! What a run reports (statistics and outcome), the record of a run, and a job's totals.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::context::Trigger;

/// What one run did, returned by the cleanup function.
///
/// ```
/// let mut stats = lookout_cleanup::Stats { scanned: 120, removed: 100, ..Default::default() };
/// stats.count("bytes_freed", 4096);
/// stats += lookout_cleanup::Stats { scanned: 5, removed: 5, ..Default::default() };
/// assert_eq!(stats.removed, 105);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items looked at.
    pub scanned: u64,
    /// Items deleted.
    pub removed: u64,
    /// Items that could not be deleted. More than zero makes the run `Partial`.
    pub failed: u64,
    /// Items left for a later run (a budget was reached, or the run was stopped).
    pub remaining: u64,
    /// Counts of the job's own (for example `bytes_freed`), recorded on the run's span as
    /// `cleanup.count.<name>`.
    pub custom: BTreeMap<String, u64>,
}

impl Stats {
    /// Adds `n` to the custom count `name`.
    pub fn count(&mut self, name: impl Into<String>, n: u64) -> &mut Self {
        *self.custom.entry(name.into()).or_default() += n;
        self
    }
}

impl std::ops::AddAssign for Stats {
    /// Adds a batch's counts; `remaining` is taken from the later batch.
    fn add_assign(&mut self, other: Stats) {
        self.scanned += other.scanned;
        self.removed += other.removed;
        self.failed += other.failed;
        self.remaining = other.remaining;
        for (name, n) in other.custom {
            *self.custom.entry(name).or_default() += n;
        }
    }
}

/// How a run ended. The words follow the CI/CD semantic conventions' pipeline results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Returned statistics with nothing failed.
    Success,
    /// Returned statistics with `failed > 0`.
    Partial,
    /// Returned an error, or panicked (`error.type = "panic"`).
    Failure,
    /// Passed its deadline (it returned late, or was dropped after the grace period).
    Timeout,
    /// Stopped by shutdown or by the `Replace` overlap policy.
    Cancelled,
    /// Not started: a run was already in progress (overlap policy) or the job was paused.
    Skipped,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::Partial,
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Skipped,
    ];

    /// The word used in metrics, spans and logs (`success`, `partial`, `failure`, `timeout`,
    /// `cancelled`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
        }
    }

    /// Whether this outcome counts as a failure for the health check.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Timeout)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run (or skipped tick), as kept in a job's history.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run's id, unique within the job (skipped ticks get one too).
    pub id: u64,
    /// What started it.
    pub trigger: Trigger,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// How long it ran (zero when skipped).
    pub duration: Duration,
    /// How late it started against its scheduled time.
    pub lag: Duration,
    /// What it reported (default when it returned no statistics).
    pub stats: Stats,
    /// The error's type (`panic`, `timeout`, or the error type's name) when it failed.
    pub error_type: Option<String>,
    /// The error's message when it failed, or why it was skipped or cancelled.
    pub message: Option<String>,
}

/// A job's statistics since it started, read in process with [`Job::stats`](crate::Job::stats).
#[derive(Debug, Clone, PartialEq)]
pub struct JobStats {
    /// The job's name.
    pub name: String,
    /// Runs that executed (every outcome but `Skipped`).
    pub total_runs: u64,
    /// Runs per outcome, `Skipped` included.
    pub runs_by_outcome: BTreeMap<Outcome, u64>,
    /// Items scanned over all runs.
    pub items_scanned: u64,
    /// Items removed over all runs.
    pub items_removed: u64,
    /// Items that failed over all runs.
    pub items_failed: u64,
    /// Mean duration of the runs that executed.
    pub mean_duration: Option<Duration>,
    /// Longest run.
    pub max_duration: Option<Duration>,
    /// `Success` runs over runs that executed (`None` before the first run).
    pub success_rate: Option<f64>,
    /// Failures (`Failure` or `Timeout`) since the last run that did not fail.
    pub consecutive_failures: u32,
    /// When the last `Success` or `Partial` run ended.
    pub last_success: Option<SystemTime>,
    /// When the last run ended.
    pub last_run: Option<SystemTime>,
    /// Runs in progress now.
    pub in_progress: usize,
    /// Whether the schedule is paused.
    pub paused: bool,
    /// `remaining` of the last run that reported statistics.
    pub backlog: u64,
    /// Timer ticks skipped because the scheduler was late (a stalled process or runtime), never
    /// run in a burst.
    pub missed_ticks: u64,
}
