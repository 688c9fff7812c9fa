//! Errors from starting and stopping the pipeline.

use std::time::Duration;

use crate::ShutdownReport;

/// Why [`crate::init`] or [`crate::TelemetryBuilder::init`] could not start telemetry.
///
/// Bad environment values never cause this: they are warnings and the defaults are used. These are
/// problems in code, which only a code change fixes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// Settings given to the builder are invalid; every problem found is listed.
    #[error("invalid telemetry configuration: {}", problems.join("; "))]
    InvalidConfig {
        /// One sentence per problem, each saying what to change.
        problems: Vec<String>,
    },
    /// A global `tracing` subscriber was already installed (by an earlier `init` or another
    /// library). Call `init` once, first thing in `main`, or use `TelemetryBuilder::install(false)`.
    #[error(
        "a global tracing subscriber is already set; call lookout::init() once, before anything else installs one"
    )]
    AlreadyInitialized,
    /// An exporter could not be built (for example an unreadable TLS certificate).
    #[error("could not build the {signal} exporter: {reason}")]
    Exporter {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// What went wrong and what to do.
        reason: String,
    },
    /// The export runtime's thread could not be started.
    #[error("could not start lookout's export thread: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Why [`crate::Telemetry::shutdown`] did not deliver everything.
///
/// Each variant carries the full report, so the caller can still log what was exported.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The deadline passed before every signal was flushed.
    #[error("telemetry shutdown did not finish within {deadline:?}: {report}")]
    DeadlineExceeded {
        /// The deadline that passed.
        deadline: Duration,
        /// What was exported and lost by then.
        report: ShutdownReport,
    },
    /// Shutdown finished in time, but some telemetry never reached its exporter's destination.
    #[error("telemetry was lost: {report}")]
    DataLost {
        /// What was exported and lost.
        report: ShutdownReport,
    },
}

impl ShutdownError {
    /// The report of what was exported and lost.
    pub fn report(&self) -> &ShutdownReport {
        match self {
            ShutdownError::DeadlineExceeded { report, .. } | ShutdownError::DataLost { report } => {
                report
            }
        }
    }
}
