//! In-memory capture of spans, log records and metrics inside a test, with no exporter and no
//! global state: the subscriber is installed for the current thread only.

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::logs::in_memory_exporter::LogDataWithResource;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::collections::BTreeMap;

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;

/// Captures what the current thread's `tracing` spans and events produce, and what meters from
/// [`Capture::meter`] record. Dropping it uninstalls the subscriber.
///
/// ```
/// let capture = lookout_testing::Capture::start();
/// tracing::info_span!("work", items = 3_i64).in_scope(|| tracing::info!("done"));
/// let work = capture.span("work").unwrap();
/// assert!(work.attributes.iter().any(|kv| kv.key.as_str() == "items"));
/// assert_eq!(capture.logs()[0].record.trace_context().unwrap().span_id,
///            work.span_context.span_id());
/// ```
#[derive(Debug)]
pub struct Capture {
    spans: InMemorySpanExporter,
    logs: InMemoryLogExporter,
    metrics: InMemoryMetricExporter,
    tracer_provider: SdkTracerProvider,
    logger_provider: SdkLoggerProvider,
    meter_provider: SdkMeterProvider,
    _guard: DefaultGuard,
}

impl Capture {
    /// Starts capturing on this thread.
    pub fn start() -> Capture {
        let spans = InMemorySpanExporter::default();
        let logs = InMemoryLogExporter::default();
        let metrics = InMemoryMetricExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let logger_provider = SdkLoggerProvider::builder()
            .with_simple_exporter(logs.clone())
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("capture")))
            .with(
                opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
                    &logger_provider,
                ),
            );
        let guard = tracing::subscriber::set_default(subscriber);
        Capture {
            spans,
            logs,
            metrics,
            tracer_provider,
            logger_provider,
            meter_provider,
            _guard: guard,
        }
    }

    /// A meter whose measurements [`metrics`](Self::metrics) returns.
    pub fn meter(&self, name: &'static str) -> Meter {
        self.meter_provider.meter(name)
    }

    /// A tracer whose spans [`spans`](Self::spans) returns, for code that uses the OpenTelemetry
    /// tracing API directly.
    pub fn tracer(&self, name: &'static str) -> opentelemetry_sdk::trace::SdkTracer {
        self.tracer_provider.tracer(name)
    }

    /// The points of the metric named `name` in a fresh collection (cumulative), with their
    /// attributes as text: sums and gauges give `value`, histograms `count` and `sum`.
    pub fn points(&self, name: &str) -> Vec<Point> {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics as A, MetricData as D};
        fn attrs<'a>(
            kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>,
        ) -> BTreeMap<String, String> {
            kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        }
        fn points<T: AsF64>(data: &D<T>) -> Vec<Point> {
            match data {
                D::Gauge(g) => g
                    .data_points()
                    .map(|p| Point {
                        attributes: attrs(p.attributes()),
                        value: p.value().as_f64(),
                        count: 0,
                        sum: 0.0,
                    })
                    .collect(),
                D::Sum(s) => s
                    .data_points()
                    .map(|p| Point {
                        attributes: attrs(p.attributes()),
                        value: p.value().as_f64(),
                        count: 0,
                        sum: 0.0,
                    })
                    .collect(),
                D::Histogram(h) => h
                    .data_points()
                    .map(|p| Point {
                        attributes: attrs(p.attributes()),
                        value: 0.0,
                        count: p.count(),
                        sum: p.sum().as_f64(),
                    })
                    .collect(),
                D::ExponentialHistogram(h) => h
                    .data_points()
                    .map(|p| Point {
                        attributes: attrs(p.attributes()),
                        value: 0.0,
                        count: p.count() as u64,
                        sum: p.sum().as_f64(),
                    })
                    .collect(),
            }
        }
        let mut out = Vec::new();
        for rm in self.metrics() {
            for m in rm
                .scope_metrics()
                .flat_map(|sm| sm.metrics())
                .filter(|m| m.name() == name)
            {
                out.extend(match m.data() {
                    A::F64(d) => points(d),
                    A::U64(d) => points(d),
                    A::I64(d) => points(d),
                });
            }
        }
        out
    }

    /// Every span that has ended.
    pub fn spans(&self) -> Vec<SpanData> {
        let _ = self.tracer_provider.force_flush();
        self.spans.get_finished_spans().unwrap_or_default()
    }

    /// The first ended span named `name`.
    pub fn span(&self, name: &str) -> Option<SpanData> {
        self.spans().into_iter().find(|s| s.name == name)
    }

    /// Every log record emitted (from `tracing` events).
    pub fn logs(&self) -> Vec<LogDataWithResource> {
        let _ = self.logger_provider.force_flush();
        self.logs.get_emitted_logs().unwrap_or_default()
    }

    /// Collects and returns the metrics recorded so far.
    pub fn metrics(&self) -> Vec<ResourceMetrics> {
        self.metrics.reset();
        let _ = self.meter_provider.force_flush();
        self.metrics.get_finished_metrics().unwrap_or_default()
    }
}

/// One metric point from [`Capture::points`].
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Attribute keys and values, as text.
    pub attributes: BTreeMap<String, String>,
    /// A sum's or gauge's value.
    pub value: f64,
    /// A histogram's count.
    pub count: u64,
    /// A histogram's sum.
    pub sum: f64,
}

impl Point {
    /// The attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// Metric values as f64 (exact below 2^53, which test values are).
trait AsF64: Copy {
    fn as_f64(self) -> f64;
}
impl AsF64 for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}
impl AsF64 for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl AsF64 for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_span_tree_logs_and_metrics() {
        let capture = Capture::start();
        tracing::info_span!("parent").in_scope(|| {
            tracing::info_span!("child").in_scope(|| tracing::warn!(n = 2_i64, "inside"));
        });
        capture.meter("test").u64_counter("c").build().add(5, &[]);

        let parent = capture.span("parent").expect("parent captured");
        let child = capture.span("child").expect("child captured");
        assert_eq!(child.parent_span_id, parent.span_context.span_id());
        let logs = capture.logs();
        assert_eq!(logs.len(), 1);
        let cx = logs[0].record.trace_context().expect("log carries ids");
        assert_eq!(cx.span_id, child.span_context.span_id());
        let metrics = capture.metrics();
        let names: Vec<String> = metrics
            .iter()
            .flat_map(|rm| rm.scope_metrics())
            .flat_map(|sm| sm.metrics())
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(names, ["c"]);
    }
}
