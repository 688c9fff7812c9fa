//! Exporters given in code ([`crate::TelemetryBuilder::span_exporter`], `log_exporter`,
//! `metric_exporter`): for a backend without OTLP, for tests, for benchmarks with a discarding
//! exporter. Each goes through the same pipeline as lookout's own (batch processor with lookout's
//! bounded, counted queue; the span fixes; export timeouts; `stats()`; the WARN when exporting
//! fails), only the last step is the user's.
//!
//! The SDK's exporter traits return `impl Future` and are not object safe, so each exporter is kept
//! as the step that puts it into its signal's pipeline, typed when it is given.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::logs::{BatchLogProcessor, LogExporter};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, Temporality};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanExporter};

use super::queue::{LogIntake, SpanIntake};
use super::{ExportRuntime, Wrap, log_processor, span_processor, with_pushed};
use crate::config::BatchSettings;

pub(super) type SpanStep = Box<
    dyn for<'a> FnOnce(
            &Wrap<'a>,
            &BatchSettings,
            Option<usize>,
            &ExportRuntime,
        ) -> SpanIntake<BatchSpanProcessor>
        + Send,
>;
pub(super) type LogStep = Box<
    dyn for<'a> FnOnce(&Wrap<'a>, &BatchSettings, &ExportRuntime) -> LogIntake<BatchLogProcessor>
        + Send,
>;
pub(super) type MetricStep = Box<
    dyn for<'a> FnOnce(
            MeterProviderBuilder,
            &Wrap<'a>,
            Duration,
        ) -> (MeterProviderBuilder, Arc<dyn MetricReader>)
        + Send,
>;

/// The exporters given in code, one per signal at most.
#[derive(Default)]
pub(crate) struct Custom {
    pub(crate) spans: Option<SpanStep>,
    pub(crate) logs: Option<LogStep>,
    pub(crate) metrics: Option<MetricStep>,
}

impl fmt::Debug for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custom")
            .field("spans", &self.spans.is_some())
            .field("logs", &self.logs.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Custom {
    pub(crate) fn spans<E: SpanExporter + 'static>(&mut self, exporter: E) {
        self.spans = Some(Box::new(move |wrap, batch, value_limit, runtime| {
            span_processor(wrap.it(exporter), batch, value_limit, runtime)
        }));
    }

    pub(crate) fn logs<E: LogExporter + 'static>(&mut self, exporter: E) {
        self.logs = Some(Box::new(move |wrap, batch, runtime| {
            log_processor(wrap.it(exporter), batch, runtime)
        }));
    }

    pub(crate) fn metrics<E: PushMetricExporter + 'static>(&mut self, exporter: E) {
        self.metrics = Some(Box::new(move |builder, wrap, interval| {
            let cumulative = exporter.temporality() == Temporality::Cumulative;
            let reader = PeriodicReader::builder(wrap.it(exporter))
                .with_interval(interval)
                .build();
            with_pushed(builder, reader, cumulative)
        }));
    }
}
