#![doc = include_str!("../README.md")]

mod admin_addr;
mod config;
mod console;
mod error;
mod export;
mod limits;
pub mod metrics;
mod propagation;
mod redact;
mod resource;
mod stats;
mod telemetry;
mod u64_fields;
mod w3c;

pub use admin_addr::{AdminAddrError, DEFAULT_ADMIN_ADDR, admin_addr};
pub use config::{
    BatchSettings, Compression, ConfigWarning, ConsoleFormat, ExporterKind, HistogramAggregation,
    Limits, OtlpOptions, Propagator, Protocol, SamplerConfig, Signal, TemporalityPreference,
};
pub use error::{InitError, ShutdownError};
pub use metrics::{Timer, timer};
pub use propagation::propagator;
pub use redact::{REDACTED, Redaction};
pub use stats::{LastError, SignalStats, Stats, stats};
pub use telemetry::{ShutdownReport, SignalReport, Telemetry, TelemetryBuilder, init};

#[cfg(feature = "macros")]
pub use lookout_macros::measured;

/// What `#[measured]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::metrics::measure::{Callsite, Guard, IsResult, NotResult, Outcome, Probe};
}

/// Entry points of the parsers of outside input, for the fuzz targets in `fuzz/`; not a public
/// API.
#[doc(hidden)]
pub mod __fuzz {
    /// `OTEL_RESOURCE_ATTRIBUTES` / `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,...`,
    /// percent-decoded), then each pair as an HTTP header the way the OTLP clients build them.
    /// Returns the pairs and how many could be headers.
    pub fn key_values(text: &str) -> (Vec<(String, String)>, usize) {
        let source = crate::config::EnvSource::Map(Default::default());
        let mut reader = crate::config::EnvReader::new(&source);
        let pairs = crate::config::parse_key_values(&mut reader, "OTEL_RESOURCE_ATTRIBUTES", text);
        let headers = pairs
            .iter()
            .filter(|(k, v)| {
                ::http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).is_ok()
                    && ::http::HeaderValue::from_str(v).is_ok()
            })
            .count();
        (pairs, headers)
    }
}

// The exact versions lookout is built with, so users never mix incompatible ones.
pub use opentelemetry;
pub use opentelemetry_appender_tracing;
pub use opentelemetry_otlp;
pub use opentelemetry_sdk;
pub use tracing_opentelemetry;
