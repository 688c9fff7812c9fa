//! The exporter wrapper that counts what is accepted, exported and lost, bounds every
//! export in time, and say once when exporting starts failing (and once when it recovers).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::runtime::ExportRuntime;
use crate::config::Signal;
use crate::stats::{COUNTERS, Transition};

/// Wraps one signal's exporter.
#[derive(Debug)]
pub(crate) struct Counted<E> {
    inner: E,
    signal: Signal,
    destination: String,
    timeout: Duration,
    runtime: Arc<ExportRuntime>,
    /// Whether this wrapper counts and bounds the exports; not when the exporter does it itself
    /// (lookout's OTLP client, which knows the parts and partial successes of each).
    counts: bool,
}

impl<E> Counted<E> {
    pub(crate) fn new(
        inner: E,
        signal: Signal,
        destination: String,
        timeout: Duration,
        runtime: Arc<ExportRuntime>,
    ) -> Self {
        Self {
            inner,
            signal,
            destination,
            timeout,
            runtime,
            counts: true,
        }
    }

    /// The exporter bounds, counts and reports its exports itself.
    pub(crate) fn counted_by_client(mut self) -> Self {
        self.counts = false;
        self
    }

    async fn finish(
        &self,
        items: u64,
        export: impl Future<Output = OTelSdkResult> + Send,
    ) -> OTelSdkResult {
        if !self.counts {
            return export.await;
        }
        let in_flight = &COUNTERS.signal(self.signal).in_flight;
        in_flight.fetch_add(items, Relaxed);
        let result = self.runtime.run(self.timeout, export).await;
        in_flight.fetch_sub(items, Relaxed);
        let error = result.as_ref().err().map(ToString::to_string);
        match COUNTERS.record_export(self.signal, items, error.clone()) {
            Transition::StartedFailing => tracing::warn!(
                target: "lookout::export",
                signal = %self.signal,
                destination = %self.destination,
                error = error.as_deref().unwrap_or_default(),
                "exporting {} failed; data is dropped (and counted in lookout::stats()) until the destination is reachable",
                self.signal,
            ),
            Transition::Recovered => tracing::info!(
                target: "lookout::export",
                signal = %self.signal,
                destination = %self.destination,
                "exporting {} works again",
                self.signal,
            ),
            Transition::None => {}
        }
        result
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let items = batch.len() as u64;
        let export = self.inner.export(batch);
        self.finish(items, export)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for Counted<E> {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        let items = batch.iter().count() as u64;
        let export = self.inner.export(batch);
        self.finish(items, export)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        let items = count_points(metrics);
        crate::metrics::note_overflows(metrics);
        let export = self.inner.export(metrics);
        self.finish(items, export)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

fn count_points(metrics: &ResourceMetrics) -> u64 {
    fn points<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .map(|metric| match metric.data() {
            AggregatedMetrics::F64(d) => points(d),
            AggregatedMetrics::U64(d) => points(d),
            AggregatedMetrics::I64(d) => points(d),
        })
        .sum::<usize>() as u64
}
