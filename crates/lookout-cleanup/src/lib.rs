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
    DEFAULT_FAILURES_BEFORE_DOWN, DEFAULT_HISTORY, Job, JobBuilder, JobHealth, NotStarted, Overlap,
    ShutdownReport,
};
pub use crate::schedule::Schedule;
pub use crate::stats::{JobStats, Outcome, RunRecord, Stats};
pub use crate::task::CleanupTask;
pub use crate::telemetry::{ACTION, JOB_NAME, OUTCOME};
