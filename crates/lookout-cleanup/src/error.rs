//! Errors found when a job is built.

use std::time::Duration;

/// What is wrong with a job's settings. Every problem found is reported at once.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// One or more settings are invalid.
    #[error("cleanup job {job:?} was not started: {}", .problems.join("; "))]
    Invalid {
        /// The job's name.
        job: String,
        /// Each problem, saying what to change.
        problems: Vec<String>,
    },
    /// `spawn` was called outside a Tokio runtime.
    #[error(
        "cleanup job {job:?} was not started: no Tokio runtime; call `spawn` from inside one \
         (for example in `#[tokio::main] async fn main`)"
    )]
    NoRuntime {
        /// The job's name.
        job: String,
    },
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
