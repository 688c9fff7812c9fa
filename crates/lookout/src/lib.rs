#![doc = include_str!("../README.md")]

mod admin_addr;
mod config;
mod console;
mod error;
mod export;
mod limits;
pub mod metrics;
mod propagation;
mod resource;
mod stats;
mod telemetry;
mod u64_fields;

pub use admin_addr::{AdminAddrError, DEFAULT_ADMIN_ADDR, admin_addr};
pub use config::{
    BatchSettings, Compression, ConfigWarning, ConsoleFormat, ExporterKind, HistogramAggregation,
    Limits, OtlpOptions, Propagator, Protocol, SamplerConfig, Signal, TemporalityPreference,
};
pub use error::{InitError, ShutdownError};
pub use metrics::{Timer, timer};
pub use propagation::propagator;
pub use stats::{LastError, SignalStats, Stats, stats};
pub use telemetry::{ShutdownReport, SignalReport, Telemetry, TelemetryBuilder, init};

#[cfg(feature = "macros")]
pub use lookout_macros::measured;

/// What `#[measured]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::metrics::measure::{Callsite, Guard, IsResult, NotResult, Outcome, Probe};
}

// The exact versions lookout is built with, so users never mix incompatible ones.
pub use opentelemetry;
pub use opentelemetry_appender_tracing;
pub use opentelemetry_otlp;
pub use opentelemetry_sdk;
pub use tracing_opentelemetry;
