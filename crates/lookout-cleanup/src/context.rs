//! What a run receives: its identity, cancellation, deadline and budget.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The schedule.
    Timer,
    /// [`Job::run_now`](crate::Job::run_now).
    Manual,
}

impl Trigger {
    /// `timer` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Timer => "timer",
            Trigger::Manual => "manual",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Given to each run: who it is, when to stop, and how much it may do.
///
/// Cancellation is cooperative: when the deadline passes, the job is shut down, or a newer run
/// replaces this one, [`is_cancelled`](Self::is_cancelled) turns true and
/// [`cancelled`](Self::cancelled) completes; a run should then stop and return what it did so
/// far (with `remaining` set). A run that ignores it is dropped at its next `.await` once the
/// grace period is over.
///
/// A budget splits a large backlog over several runs: loop while
/// [`should_continue`](Self::should_continue) says so, taking
/// [`batch_size`](Self::batch_size) items at a time, and report what is left in `remaining`.
#[derive(Clone)]
pub struct RunContext {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RunSettings,
    batches: AtomicU64,
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("job", &self.inner.settings.job)
            .field("run_id", &self.inner.settings.run_id)
            .field("trigger", &self.inner.settings.trigger)
            .field("cancelled", &self.is_cancelled())
            .field("item_budget", &self.inner.settings.item_budget)
            .field("time_budget", &self.inner.settings.time_budget)
            .finish_non_exhaustive()
    }
}

pub(crate) struct RunSettings {
    pub(crate) job: Arc<str>,
    pub(crate) run_id: u64,
    pub(crate) trigger: Trigger,
    pub(crate) cancel: CancellationToken,
    pub(crate) started: Instant,
    pub(crate) deadline: Option<Instant>,
    pub(crate) item_budget: Option<u64>,
    pub(crate) time_budget: Option<Duration>,
    pub(crate) span: tracing::Span,
}

impl RunContext {
    pub(crate) fn new(settings: RunSettings) -> RunContext {
        RunContext {
            inner: Arc::new(Inner {
                settings,
                batches: AtomicU64::new(0),
            }),
        }
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.inner.settings.job
    }

    /// This run's id (1, 2, ... within the job).
    pub fn run_id(&self) -> u64 {
        self.inner.settings.run_id
    }

    /// What started this run.
    pub fn trigger(&self) -> Trigger {
        self.inner.settings.trigger
    }

    /// Whether the run has been asked to stop (deadline, shutdown, or replaced).
    pub fn is_cancelled(&self) -> bool {
        self.inner.settings.cancel.is_cancelled()
    }

    /// Completes when the run is asked to stop.
    pub async fn cancelled(&self) {
        self.inner.settings.cancel.cancelled().await;
    }

    /// When the run will be asked to stop, if it has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.settings.deadline
    }

    /// At most this many items per run, if the job has an item budget.
    pub fn item_budget(&self) -> Option<u64> {
        self.inner.settings.item_budget
    }

    /// Whether to take another batch, having processed `items_done` items: false once the run is
    /// cancelled, its time budget is spent, or its item budget is reached.
    pub fn should_continue(&self, items_done: u64) -> bool {
        if self.is_cancelled() {
            return false;
        }
        if let Some(t) = self.inner.settings.time_budget
            && self.inner.settings.started.elapsed() >= t
        {
            return false;
        }
        self.inner
            .settings
            .item_budget
            .is_none_or(|b| items_done < b)
    }

    /// The next batch's size: `preferred`, or less when the item budget has less left.
    pub fn batch_size(&self, preferred: u64, items_done: u64) -> u64 {
        match self.inner.settings.item_budget {
            Some(b) => preferred.min(b.saturating_sub(items_done)),
            None => preferred,
        }
    }

    /// The run's span (`cleanup.run`); work done inside `.instrument(ctx.span().clone())` or
    /// `#[instrument]` functions called from the run is already its child.
    pub fn span(&self) -> &tracing::Span {
        &self.inner.settings.span
    }

    /// A child span `cleanup.batch` with the batch's index (0, 1, ...), for one batch of work:
    /// `async { ... }.instrument(ctx.batch_span())`.
    pub fn batch_span(&self) -> tracing::Span {
        let index = self.inner.batches.fetch_add(1, Ordering::Relaxed);
        tracing::info_span!(
            target: "lookout_cleanup",
            parent: &self.inner.settings.span,
            "cleanup.batch",
            cleanup.job.name = %self.inner.settings.job,
            cleanup.batch.index = index,
        )
    }
}
