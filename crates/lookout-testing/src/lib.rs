//! Test helpers for services instrumented with lookout (or plain `tracing` + OpenTelemetry).
//!
//! - [`Capture`]: spans, log records and metrics captured in memory on the test's thread.
//! - [`promtool_check_metrics`]: Prometheus's linter on a `/metrics` scrape.
//! - [`Collector`]: a real OpenTelemetry collector process (rotel) on free loopback ports, and
//!   what it received, parsed: for end-to-end tests of the export path.
//!   [`Collector::start_quiet`] starts one that receives and discards without printing, for
//!   benchmarks.
//!
//! The collector needs the `rotel-agent` binary: `python3 -m pip install rotel==0.0.1a15`, then
//! point `LOOKOUT_ROTEL_AGENT` at `site-packages/rotel/rotel-agent` (or put it on `PATH`).

mod capture;
mod collector;
mod promtool;

pub use capture::{Capture, Point};
pub use collector::{
    Attributes, Collector, CollectorError, LogRecord, MetricPoint, Received, Span, Value, free_port,
};
pub use promtool::promtool_check_metrics;
