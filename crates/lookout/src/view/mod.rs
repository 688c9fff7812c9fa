//! The local view's stores: recent traces, log records and metric time series of this process,
//! kept in memory so that lookout-admin's `/view/` pages can show what the service is doing with
//! no Jaeger, Grafana or collector in reach.
//!
//! **Fed off the request path.** Spans and log records reach the stores on the batch worker,
//! after the export queue (the same batch the exporter gets, after the attribute value length
//! limit); nothing is added to what a span or an event costs on the application's thread. Values
//! are redacted as an export would redact them (by the [`crate::Redaction`] settings) before they are
//! stored. Metric series are sampled from the pull reader's snapshot
//! ([`Metrics::collect`](crate::metrics::Metrics::collect)) on a thread of their own, every
//! `LOOKOUT_VIEW_METRIC_INTERVAL`.
//!
//! **Bounded.** Every store has a count bound and the trace and log stores a byte bound
//! ([`ViewOptions`], `LOOKOUT_VIEW_*`); what a bound turns away is counted
//! ([`View::counts`]). At high rates only a share of new traces is stored in full
//! (`LOOKOUT_VIEW_TRACES_PER_SECOND`), but every error trace and the slowest trace of each span
//! name are, and the per-name summary ([`View::span_names`]) counts every span. With the
//! defaults the stores hold at most about 48 MiB of spans, 16 MiB of log records and
//! 1,000 series of 180 points.
//!
//! **Off** with `LOOKOUT_VIEW=off` (or [`ViewOptions::off`]): no store, no sampling thread.
//!
//! Hand-written rather than taken from a crate: no maintained crate keeps OpenTelemetry data for
//! display (the SDK's `InMemorySpanExporter` grows without bound and keeps no per-trace order or
//! pins, and the zPages of OpenCensus were never ported).

mod logs;
mod series;
mod traces;

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, TraceId};

use crate::redact::Redaction;

pub use logs::{LogEntry, LogFilter};
pub use series::{Point, Red, Series, SeriesKind};
pub use traces::{
    EventRecord, LATENCY_BUCKETS, SpanNameStats, SpanRecord, SpanStatus, TraceFilter, TraceSummary,
};
#[cfg(test)]
pub(crate) use traces::tests::span as test_span;

/// How much the local view keeps (`LOOKOUT_VIEW_*`; see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "options do nothing until given to TelemetryBuilder::view"]
pub struct ViewOptions {
    /// The stores are kept (`LOOKOUT_VIEW`, default on).
    pub enabled: bool,
    /// Recent traces kept (`LOOKOUT_VIEW_TRACES`, default 500).
    pub traces: usize,
    /// Recent error traces kept beside them (`LOOKOUT_VIEW_ERROR_TRACES`, default 100).
    pub error_traces: usize,
    /// Spans kept of one trace (`LOOKOUT_VIEW_SPANS_PER_TRACE`, default 1,000).
    pub spans_per_trace: usize,
    /// New traces stored in full per second, error traces and the slowest per span name aside
    /// (`LOOKOUT_VIEW_TRACES_PER_SECOND`, default 200).
    pub traces_per_second: u32,
    /// Bytes of spans kept, estimated (`LOOKOUT_VIEW_TRACE_BYTES`, default 48 MiB).
    pub trace_bytes: usize,
    /// Log records kept (`LOOKOUT_VIEW_LOGS`, default 10,000).
    pub logs: usize,
    /// New log records stored per second, warnings and errors aside (`LOOKOUT_VIEW_LOGS_PER_SECOND`,
    /// default 1,000).
    pub logs_per_second: u32,
    /// Bytes of log records kept, estimated (`LOOKOUT_VIEW_LOG_BYTES`, default 16 MiB).
    pub log_bytes: usize,
    /// How often metric series are sampled (`LOOKOUT_VIEW_METRIC_INTERVAL`, default 5 s).
    pub metric_interval: Duration,
    /// How far back series go (`LOOKOUT_VIEW_METRIC_WINDOW`, default 15 min).
    pub metric_window: Duration,
    /// Series kept, RED groups included (`LOOKOUT_VIEW_SERIES`, default 1,000).
    pub series: usize,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            enabled: true,
            traces: 500,
            error_traces: 100,
            spans_per_trace: 1_000,
            traces_per_second: 200,
            trace_bytes: 48 << 20,
            logs: 10_000,
            logs_per_second: 1_000,
            log_bytes: 16 << 20,
            metric_interval: Duration::from_secs(5),
            metric_window: Duration::from_secs(15 * 60),
            series: 1_000,
        }
    }
}

impl ViewOptions {
    /// No local view.
    pub fn off() -> Self {
        ViewOptions {
            enabled: false,
            ..ViewOptions::default()
        }
    }

    /// Points kept per series.
    pub(crate) fn points(&self) -> usize {
        let interval = self.metric_interval.as_secs_f64().max(0.001);
        ((self.metric_window.as_secs_f64() / interval).ceil() as usize).clamp(2, 100_000)
    }
}

/// What the stores turned away, and what they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewCounts {
    /// Spans seen (every span the pipeline handed on).
    pub spans_seen: u64,
    /// Spans not stored in full: their trace was over `traces_per_second`, or over
    /// `spans_per_trace`.
    pub spans_skipped: u64,
    /// Traces held now.
    pub traces: usize,
    /// Estimated bytes of the traces held.
    pub trace_bytes: usize,
    /// Log records seen.
    pub logs_seen: u64,
    /// Log records not stored (over `logs_per_second`).
    pub logs_skipped: u64,
    /// Log records held now.
    pub logs: usize,
    /// Estimated bytes of the log records held.
    pub log_bytes: usize,
    /// Series held now.
    pub series: usize,
    /// Series not started because `series` was reached.
    pub series_skipped: u64,
}

/// The local view of a running pipeline: read its stores. Cheap to clone.
///
/// Get it from [`Telemetry::view`](crate::Telemetry::view) or [`global`] (what lookout-admin
/// reads).
#[derive(Clone)]
pub struct View {
    pub(crate) store: Arc<Store>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Store {
    pub(crate) options: ViewOptions,
    redaction: Redaction,
    traces: Mutex<traces::Traces>,
    logs: Mutex<logs::Logs>,
    series: Mutex<series::SeriesStore>,
    /// The service's name, for titles and Jaeger links.
    service: String,
    /// Set when the pipeline stops: the sampling thread ends.
    stopped: AtomicBool,
}

impl Store {
    pub(crate) fn new(options: ViewOptions, redaction: Redaction, service: String) -> Arc<Store> {
        Arc::new(Store {
            traces: Mutex::new(traces::Traces::new(&options)),
            logs: Mutex::new(logs::Logs::new(&options)),
            series: Mutex::new(series::SeriesStore::new(&options)),
            options,
            redaction,
            service,
            stopped: AtomicBool::new(false),
        })
    }

    /// A batch of spans on its way to the exporter (on the batch worker).
    pub(crate) fn spans(&self, batch: &[opentelemetry_sdk::trace::SpanData]) {
        lock(&self.traces).add(batch, &self.redaction);
    }

    /// A batch of spans encoded as they ended, on its way to the exporter (on lookout's span
    /// batch worker, or on the export runtime for a batch the worker was late for).
    #[cfg(any(feature = "grpc", feature = "http"))]
    pub(crate) fn encoded_spans(&self, batch: &crate::export::EncodedSpans) {
        lock(&self.traces).add_encoded(batch, &self.redaction);
    }

    /// A batch of log records on its way to the exporter (on the batch worker).
    pub(crate) fn logs(&self, batch: &opentelemetry_sdk::logs::LogBatch<'_>) {
        lock(&self.logs).add(batch, &self.redaction);
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Relaxed);
    }

    /// Samples `metrics` every interval on a thread of its own until the pipeline stops.
    pub(crate) fn sample(self: &Arc<Self>, metrics: crate::metrics::Metrics) {
        let store = Arc::downgrade(self);
        let interval = self.options.metric_interval.max(Duration::from_millis(100));
        let spawned = std::thread::Builder::new()
            .name("lookout-view".into())
            .spawn(move || {
                let step = Duration::from_millis(100).min(interval);
                let mut next = std::time::Instant::now();
                loop {
                    let Some(store) = store.upgrade() else { return };
                    if store.stopped.load(Relaxed) {
                        return;
                    }
                    if std::time::Instant::now() >= next {
                        next += interval;
                        if let Ok(snapshot) = metrics.collect() {
                            lock(&store.series).sample(&snapshot, SystemTime::now());
                        }
                    }
                    drop(store);
                    std::thread::sleep(step);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(target: "lookout", "the local view cannot sample metrics: no thread ({e}); its metrics page stays empty");
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl View {
    /// The options it was built with.
    pub fn options(&self) -> &ViewOptions {
        &self.store.options
    }

    /// The service's name (`service.name` of the resource).
    pub fn service_name(&self) -> &str {
        &self.store.service
    }

    /// The traces that match, newest first.
    pub fn traces(&self, filter: &TraceFilter) -> Vec<TraceSummary> {
        lock(&self.store.traces).list(filter)
    }

    /// The spans kept of one trace, in start order (empty when it is not held).
    pub fn trace(&self, id: TraceId) -> Vec<SpanRecord> {
        lock(&self.store.traces).trace(id)
    }

    /// Per span name: counts per latency bucket, errors, spans running now (zPages' tracez).
    pub fn span_names(&self) -> Vec<SpanNameStats> {
        let running = RUNNING.snapshot();
        lock(&self.store.traces).names(&running)
    }

    /// The log records that match, newest first.
    pub fn logs(&self, filter: &LogFilter) -> Vec<LogEntry> {
        lock(&self.store.logs).list(filter)
    }

    /// Every series held (points included), by name then attributes.
    pub fn series(&self) -> Vec<Series> {
        lock(&self.store.series).all()
    }

    /// One series by its [`Series::key`].
    pub fn series_by_key(&self, key: &str) -> Option<Series> {
        lock(&self.store.series).get(key)
    }

    /// The RED figures (rate, errors, latency quantiles) per HTTP route and per measured
    /// function, over the window.
    pub fn red(&self) -> Vec<Red> {
        lock(&self.store.series).red()
    }

    /// What the stores hold and turned away.
    pub fn counts(&self) -> ViewCounts {
        let mut c = ViewCounts::default();
        lock(&self.store.traces).count(&mut c);
        lock(&self.store.logs).count(&mut c);
        lock(&self.store.series).count(&mut c);
        c
    }

    /// A number that changes whenever a store changes: compare two readings to know whether to
    /// redraw.
    pub fn version(&self) -> [u64; 3] {
        [
            lock(&self.store.traces).version(),
            lock(&self.store.logs).version(),
            lock(&self.store.series).version(),
        ]
    }

    /// Counts spans started and not yet ended, per name, for the next `for_how_long` (the span
    /// summary page calls this while it is open; nothing is tracked when no one looks).
    pub fn watch_running(&self, for_how_long: Duration) {
        RUNNING.watch(for_how_long);
    }
}

/// The view of the running pipeline (set by `init`/`layer`, cleared at shutdown).
pub fn global() -> Option<View> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

static GLOBAL: RwLock<Option<View>> = RwLock::new(None);

pub(crate) fn set_global(view: Option<View>) {
    *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = view;
}

pub(crate) use traces::RUNNING;

/// An id as the view shows it (lower-case hex).
pub fn trace_id_hex(id: TraceId) -> String {
    format!("{id:032x}")
}

/// A span id as the view shows it (lower-case hex).
pub fn span_id_hex(id: SpanId) -> String {
    format!("{id:016x}")
}

/// For lookout's benchmarks: a view fed by hand, outside any pipeline. Not a public API.
#[doc(hidden)]
pub mod __bench {
    use super::*;

    /// A view attached to no pipeline.
    pub fn detached(options: ViewOptions) -> View {
        View {
            store: Store::new(options, Redaction::default(), "bench".into()),
        }
    }

    /// What the batch worker does with a batch of spans.
    pub fn feed_spans(view: &View, batch: &[opentelemetry_sdk::trace::SpanData]) {
        view.store.spans(batch);
    }

    /// What the batch worker does with a batch of log records.
    pub fn feed_logs(view: &View, batch: &opentelemetry_sdk::logs::LogBatch<'_>) {
        view.store.logs(batch);
    }
}

/// Estimated heap bytes of a string kept in a store.
fn text_bytes(s: &str) -> usize {
    s.len() + std::mem::size_of::<String>()
}
