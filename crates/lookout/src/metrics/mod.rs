//! Metrics read back from the SDK: the pull side of the meter provider (what `/metrics` and the
//! monitoring JSON render), `#[measured]` and [`timer`], operation statistics,
//! process and tokio runtime metrics.
//!
//! There is one store: the OpenTelemetry SDK's aggregation. [`Metrics::collect`] asks the SDK for
//! a cumulative snapshot; when the OTLP exporter uses cumulative temporality (the default) the
//! snapshot is read from the exporter's own reader, so every measurement is aggregated once. With
//! delta temporality a second, cumulative reader is registered (each measurement then updates two
//! aggregations).

mod guarded;
mod operations;
mod pipeline;
mod process;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Stream,
    Temporality,
};

pub use crate::contain::contained;
pub use crate::current::Current;
pub(crate) use crate::contain::run_contained;
pub use crate::measure::{
    DURATION_BUCKETS, HTTP_DURATION_BUCKETS, LANE_CAPACITY, MAX_TIMER_NAMES, Timer, generation,
    timer,
};
/// OpenMetrics exemplars of lookout's duration histograms (`function.duration`,
/// `http.server.request.duration`): what `/metrics` prints after a bucket.
pub use lookout_exemplars as exemplars;
pub use operations::{Baseline, OperationStats, operations, operations_since};
pub(crate) use operations::quantile;
pub use process::PROCESS_SCOPE;
pub use process::ProcessMetricsError;

/// The OpenTelemetry specification's default: at most this many attribute sets per instrument;
/// further sets are aggregated into one series with `otel.metric.overflow = true`.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// The attribute the SDK puts on the series that collects measurements past the cardinality
/// limit.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// Instruments seen with an overflow series, in the order they were first seen.
static OVERFLOWING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The instruments that have reached their cardinality limit since the process started, as
/// seen in exports and pull collections. The OpenTelemetry SDK keeps no count of its own; the
/// overflow series itself (`otel.metric.overflow = true`) holds what did not fit, so
/// `count({otel_metric_overflow="true"}) > 0` in Prometheus alerts on the same condition.
pub fn overflowing() -> Vec<String> {
    OVERFLOWING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Notes the instruments in `rm` that have an overflow series; says so once per instrument.
pub(crate) fn note_overflows(rm: &ResourceMetrics) {
    fn overflowed<T>(data: &MetricData<T>) -> bool {
        // The SDK gives the overflow series that one attribute and no other.
        macro_rules! any_overflow {
            ($points:expr) => {
                $points.any(|p| {
                    p.attributes()
                        .next()
                        .is_some_and(|kv| kv.key.as_str() == OVERFLOW_ATTRIBUTE)
                })
            };
        }
        match data {
            MetricData::Gauge(g) => any_overflow!(g.data_points()),
            MetricData::Sum(s) => any_overflow!(s.data_points()),
            MetricData::Histogram(h) => any_overflow!(h.data_points()),
            MetricData::ExponentialHistogram(h) => any_overflow!(h.data_points()),
        }
    }
    for metric in rm.scope_metrics().flat_map(|s| s.metrics()) {
        let hit = match metric.data() {
            AggregatedMetrics::F64(d) => overflowed(d),
            AggregatedMetrics::U64(d) => overflowed(d),
            AggregatedMetrics::I64(d) => overflowed(d),
        };
        if !hit {
            continue;
        }
        let mut seen = OVERFLOWING.lock().unwrap_or_else(|e| e.into_inner());
        if seen.iter().any(|name| name == metric.name()) {
            continue;
        }
        seen.push(metric.name().to_owned());
        drop(seen);
        tracing::warn!(
            target: "lookout::metrics",
            instrument = %metric.name(),
            "metric {} has reached its cardinality limit: further attribute sets are aggregated into \
             one series with {OVERFLOW_ATTRIBUTE}=true. An attribute with unbounded values (ids, raw \
             paths, timestamps) is the usual cause; drop it with a view, or raise the limit with \
             TelemetryBuilder::cardinality_limit",
            metric.name(),
        );
    }
}

static POISONED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Why metrics can no longer be collected, once an observable instrument's callback has panicked
/// and poisoned the OpenTelemetry SDK's pipeline (opentelemetry-rust #3640): every later collection
/// and export of that meter provider fails. `None` while metrics work. Restarting the process (or
/// installing a new meter provider) is the way back.
pub fn poisoned() -> Option<String> {
    POISONED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The cause when a collection finds the pipeline poisoned by a panic it did not see.
const PANICKED_EARLIER: &str = "a metric callback panicked earlier";

/// Records the poisoning once (WARN, stats) and builds the error every collection returns.
fn poison(cause: &str) -> opentelemetry_sdk::error::OTelSdkError {
    let mut slot = POISONED.lock().unwrap_or_else(|e| e.into_inner());
    // Two collections can race (the local view samples on a thread of its own): the one that
    // met the panic names it, and wins over the one that only found the pipeline poisoned.
    let replace = slot
        .as_deref()
        .is_none_or(|old| old.starts_with(PANICKED_EARLIER) && cause != PANICKED_EARLIER);
    if replace {
        *slot = Some(format!(
            "{cause}; the OpenTelemetry SDK's metric pipeline is poisoned and collects nothing \
             more: no metric will be exported or scraped until the process restarts. Register \
             observable callbacks through lookout's global meter or lookout::metrics::contained \
             to keep a panic in one from taking all metrics down"
        ));
    }
    let message = slot.clone().unwrap_or_default();
    drop(slot);
    if crate::stats::COUNTERS.record_export(
        crate::config::Signal::Metrics,
        0,
        Some(message.clone()),
    ) == crate::stats::Transition::StartedFailing
    {
        tracing::warn!(target: "lookout", "{message}");
    }
    opentelemetry_sdk::error::OTelSdkError::InternalFailure(message)
}

/// A meter provider together with a pull reader: what [`crate::init`] builds, and what the admin
/// endpoints read. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    provider: SdkMeterProvider,
    pull: Arc<dyn MetricReader>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// How lookout shapes every instrument's stream: the cardinality limit, and base-2 exponential
/// histograms when asked for. Explicit buckets come from each instrument's advice (lookout's own
/// duration histograms all give the semantic conventions' seconds buckets).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamPolicy {
    pub(crate) cardinality_limit: usize,
    pub(crate) exponential_histograms: bool,
}

impl StreamPolicy {
    pub(crate) fn view(self) -> impl Fn(&Instrument) -> Option<Stream> + Send + Sync + 'static {
        move |i: &Instrument| {
            let mut stream = Stream::builder().with_cardinality_limit(self.cardinality_limit);
            if i.kind() == InstrumentKind::Histogram && self.exponential_histograms {
                stream = stream.with_aggregation(Aggregation::Base2ExponentialHistogram {
                    max_size: 160,
                    max_scale: 20,
                    record_min_max: true,
                });
            }
            stream.build().ok()
        }
    }
}

impl Default for StreamPolicy {
    fn default() -> Self {
        StreamPolicy {
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            exponential_histograms: false,
        }
    }
}

/// Shares one reader between the provider (which drives it) and the pull side.
#[derive(Debug, Clone)]
pub(crate) struct Shared<R>(pub(crate) Arc<R>);

impl<R: MetricReader> MetricReader for Shared<R> {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

impl Metrics {
    pub(crate) fn from_parts(provider: SdkMeterProvider, pull: Arc<dyn MetricReader>) -> Self {
        Metrics { provider, pull }
    }

    /// A provider with only a pull reader (nothing pushed anywhere), shaped like lookout's own
    /// (cardinality limit, seconds buckets). For tests, and for services that only want to be
    /// scraped. Install it with [`install`](Self::install) to make it the global meter provider.
    pub fn in_memory(resource: opentelemetry_sdk::Resource) -> Metrics {
        let reader = Arc::new(ManualReader::builder().build());
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_view(StreamPolicy::default().view())
            .with_reader(Shared(Arc::clone(&reader)))
            .build();
        Metrics {
            provider,
            pull: reader,
        }
    }

    /// The meter provider.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// A cumulative snapshot of every instrument, from the SDK's own aggregation.
    ///
    /// Never panics: an observable instrument's callback that panics during the collection (one
    /// registered on the SDK directly; lookout's own and those wrapped in [`contained`] cannot)
    /// leaves the SDK's pipeline lock poisoned, so that no metric can be collected or exported
    /// again by this provider. That is returned as an error naming the panic, said once in a WARN,
    /// reported by [`poisoned`], and counted as failing metric exports in [`crate::stats`].
    pub fn collect(&self) -> Result<ResourceMetrics, opentelemetry_sdk::error::OTelSdkError> {
        let mut rm = ResourceMetrics::default();
        // The collection's callbacks drain the call sites' lanes too, unless a view dropped
        // every observable `function.*` instrument: then this is what makes the snapshot exact.
        crate::measure::drain_all();
        let collected =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.pull.collect(&mut rm)));
        match collected {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // The SDK's words for a lock poisoned by an earlier panic (in this collection's
                // callbacks, or in the periodic exporter's thread).
                if e.to_string().contains("Failed to lock pipeline") {
                    return Err(poison(PANICKED_EARLIER));
                }
                return Err(e);
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                return Err(poison(&format!(
                    "a metric callback panicked during the collection: {what}"
                )));
            }
        }
        note_overflows(&rm);
        Ok(rm)
    }

    /// Makes this the global meter provider and the source [`global`] returns; `#[measured]`
    /// functions and [`timer`] record into it from their next call on.
    /// [`crate::init`] does this itself.
    pub fn install(&self) {
        // The SDK's provider, with every observable callback registered through the global
        // meter kept from poisoning it (see `guarded`).
        opentelemetry::global::set_meter_provider(guarded::GuardedProvider(self.provider.clone()));
        *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = Some(self.clone());
        crate::measure::GENERATION.fetch_add(1, Ordering::Release);
    }

    /// Registers process metrics (CPU time and utilisation, memory, file descriptors, threads,
    /// uptime) and, when called inside a tokio runtime, that runtime's metrics (workers, alive
    /// tasks, global queue depth, busy ratio). [`crate::TelemetryBuilder::process_metrics`] calls
    /// this at init.
    pub fn register_process_metrics(&self) -> Result<(), ProcessMetricsError> {
        process::register(&self.provider)
    }

    /// Registers `lookout.spans.dropped` and `lookout.logs.dropped`: items a full export queue
    /// turned away, from [`crate::stats`]. [`crate::init`] calls this.
    pub(crate) fn register_pipeline_metrics(&self) {
        pipeline::register(&self.provider);
    }
}

static GLOBAL: RwLock<Option<Metrics>> = RwLock::new(None);

/// The metrics installed by [`crate::init`] (or [`Metrics::install`]); `None` before that, after
/// shutdown, or when the SDK is disabled.
pub fn global() -> Option<Metrics> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

pub(crate) fn clear_global() {
    *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = None;
}
