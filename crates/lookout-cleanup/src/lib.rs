#![doc = include_str!("../README.md")]

mod context;
mod error;
mod job;
mod schedule;
mod stats;
mod task;
mod telemetry;

pub use crate::context::{RunContext, Trigger};
pub use crate::error::BuildError;
pub use crate::job::{
    DEFAULT_DRAIN, DEFAULT_FAILURES_BEFORE_DOWN, DEFAULT_HISTORY, Job, JobBuilder, JobHealth,
    NotStarted, Overlap, ShutdownReport,
};
pub use crate::schedule::Schedule;
pub use crate::stats::{JobStats, Outcome, RunRecord, Stats};
pub use crate::task::CleanupTask;
pub use crate::telemetry::{ACTION, JOB_NAME, OUTCOME};

/// Entry points of the parsers of outside input, for the fuzz targets in `fuzz/`; not a public
/// API.
#[doc(hidden)]
#[cfg(feature = "cron")]
pub mod __fuzz {
    /// A cron expression as [`JobBuilder::cron`](crate::JobBuilder::cron) takes it, and its next three firings as the
    /// scheduler computes them. Returns how many firings there were.
    pub fn cron(expression: &str) -> usize {
        use std::str::FromStr as _;
        let Ok(schedule) = cron::Schedule::from_str(expression) else {
            return 0;
        };
        let mut previous = None;
        let mut firings = 0;
        for _ in 0..3 {
            let Some((next, _)) = crate::schedule::next_cron(&schedule, previous) else {
                break;
            };
            previous = Some(next);
            firings += 1;
        }
        firings
    }
}
