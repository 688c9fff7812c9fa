//! Builds the three SDK providers with their exporters: OTLP (gRPC or HTTP), console, or none.

mod counted;
mod custom;
mod fixups;
mod queue;
#[cfg(any(feature = "grpc", feature = "http"))]
mod otlp;
mod runtime;
#[cfg(all(feature = "tls", any(feature = "grpc", feature = "http")))]
pub(crate) mod tls;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    ManualReader, MeterProviderBuilder, PeriodicReader, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracerProvider, SpanExporter, SpanLimits,
};

use crate::config::{
    BatchSettings, ExporterKind, HistogramAggregation, OtlpSettings, SamplerConfig, Settings,
    Signal, TemporalityPreference, signal_index,
};
use crate::error::InitError;
use crate::metrics::{Metrics, Shared, StreamPolicy};
use counted::Counted;
use fixups::SpanFixups;
use queue::{LogDequeue, LogIntake, Queue, SpanIntake};
#[cfg(any(feature = "grpc", feature = "http"))]
pub(crate) use otlp::Message as OtlpMessage;
#[cfg(any(feature = "grpc", feature = "http"))]
pub(crate) use otlp::encode::{Encoded as EncodedSpans, Item as EncodedSpan, glance};
pub(crate) use custom::Custom;
pub(crate) use runtime::ExportRuntime;

/// The SDK providers of a running pipeline.
#[derive(Debug)]
pub(crate) struct Providers {
    pub(crate) tracer: Option<SdkTracerProvider>,
    pub(crate) meter: Option<SdkMeterProvider>,
    /// The meter provider with its pull reader (built even when no metrics are exported).
    pub(crate) metrics: Metrics,
    pub(crate) logger: Option<SdkLoggerProvider>,
    pub(crate) runtime: Arc<ExportRuntime>,
    /// The local view's stores (`None` when it is off).
    pub(crate) view: Option<crate::view::View>,
}

pub(crate) fn build(
    settings: &Settings,
    resource: &Resource,
    custom: Custom,
) -> Result<Providers, InitError> {
    let view = settings.view.enabled.then(|| {
        let service = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        crate::view::Store::new(settings.view.clone(), settings.redaction.clone(), service)
    });
    let runtime = Arc::new(
        ExportRuntime::start(view.clone(), settings.export_concurrency)
            .map_err(InitError::Runtime)?,
    );
    let exports_metrics =
        custom.metrics.is_some() || exporter_of(settings, Signal::Metrics).0 != ExporterKind::None;
    let tracer = Some(tracer_provider(settings, resource, &runtime, custom.spans)?);
    let metrics = meter_provider(settings, resource, &runtime, custom.metrics)?;
    let meter = exports_metrics.then(|| metrics.provider().clone());
    let logger = logger_provider(settings, resource, &runtime, custom.logs)?;
    if let Some(store) = &view {
        store.sample(metrics.clone());
    }
    Ok(Providers {
        view: view.map(|store| crate::view::View { store }),
        tracer,
        meter,
        metrics,
        logger,
        runtime,
    })
}

/// What every exporter of one signal is wrapped with.
pub(crate) struct Wrap<'a> {
    signal: Signal,
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    redaction: &'a crate::redact::Redaction,
    destination: String,
    timeout: Duration,
    runtime: &'a Arc<ExportRuntime>,
}

impl Wrap<'_> {
    pub(crate) fn it<E>(&self, exporter: E) -> Counted<E> {
        Counted::new(
            exporter,
            self.signal,
            self.destination.clone(),
            self.timeout,
            self.runtime.clone(),
        )
    }

    /// For an exporter that bounds, counts and reports its own exports (lookout's OTLP client).
    fn counted_by_client<E>(&self, exporter: E) -> Counted<E> {
        self.it(exporter).counted_by_client()
    }
}

fn exporter_of(settings: &Settings, signal: Signal) -> (ExporterKind, &OtlpSettings) {
    let i = signal_index(signal);
    (settings.exporters[i], &settings.otlp[i])
}

fn tracer_provider(
    settings: &Settings,
    resource: &Resource,
    runtime: &Arc<ExportRuntime>,
    custom: Option<custom::SpanStep>,
) -> Result<SdkTracerProvider, InitError> {
    let limits = &settings.limits;
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(sampler(settings.sampler))
        .with_span_limits(SpanLimits {
            max_events_per_span: limits.span_event_count,
            max_attributes_per_span: limits.span_attribute_count,
            max_links_per_span: limits.span_link_count,
            max_attributes_per_event: limits.event_attribute_count,
            max_attributes_per_link: limits.link_attribute_count,
        });
    let (kind, otlp) = exporter_of(settings, Signal::Traces);
    let batch = &settings.span_batch;
    let wrap = Wrap {
        redaction: &settings.redaction,
        signal: Signal::Traces,
        destination: settings.destination(Signal::Traces),
        timeout: batch.export_timeout,
        runtime,
    };
    let value_limit = limits.span_attribute_value_length;
    if let Some(step) = custom {
        let processor = step(&wrap, batch, value_limit, runtime);
        return Ok(builder.with_span_processor(processor).build());
    }
    builder = match kind {
        ExporterKind::Otlp => {
            let exporter = otlp_spans(otlp, &wrap)?;
            match encoding_processor(exporter, batch, value_limit, runtime)? {
                Ok(processor) => builder.with_span_processor(processor),
                Err(exporter) => builder.with_span_processor(span_processor(
                    wrap.counted_by_client(exporter),
                    batch,
                    value_limit,
                    runtime,
                )),
            }
        }
        ExporterKind::Console => builder.with_span_processor(span_processor(
            wrap.it(opentelemetry_stdout::SpanExporter::default()),
            batch,
            value_limit,
            runtime,
        )),
        // Only the local view: a batch processor whose exporter keeps nothing else.
        ExporterKind::None if runtime.view().is_some() => builder.with_span_processor(
            span_processor(wrap.it(Discard), batch, value_limit, runtime),
        ),
        // No processor: spans still get ids (so logs stay correlated) and go nowhere.
        ExporterKind::None => builder,
    };
    Ok(builder.build())
}

/// A span exporter's batch processor, behind lookout's bounded queue and the span fixes.
pub(crate) fn span_processor<E: SpanExporter + 'static>(
    exporter: E,
    batch: &BatchSettings,
    value_limit: Option<usize>,
    runtime: &ExportRuntime,
) -> SpanIntake<BatchSpanProcessor> {
    let queue = Queue::new(Signal::Traces, batch.max_queue_size);
    runtime.watch(&queue);
    let bsp =
        BatchSpanProcessor::builder(SpanFixups::new(
            exporter,
            value_limit,
            queue.clone(),
            runtime.view(),
        ))
            .with_batch_config(span_batch_config(batch))
            .build();
    SpanIntake::new(bsp, queue, runtime.flight(Signal::Traces), batch.export_timeout)
}

/// Spans to OTLP over protobuf: encoded as they end, batched by lookout ([`otlp::batch`], which
/// says why). Otherwise (`http/json`) the exporter back, for the SDK's batch processor.
#[cfg(any(feature = "grpc", feature = "http"))]
fn encoding_processor(
    exporter: otlp::OtlpExporter,
    batch: &BatchSettings,
    value_limit: Option<usize>,
    runtime: &Arc<ExportRuntime>,
) -> Result<Result<SpanIntake<otlp::batch::EncodingBatch>, otlp::OtlpExporter>, InitError> {
    if !exporter.protobuf() {
        return Ok(Err(exporter));
    }
    let queue = Queue::new(Signal::Traces, batch.max_queue_size);
    runtime.watch(&queue);
    let processor =
        otlp::batch::EncodingBatch::new(exporter, batch, value_limit, queue.clone(), runtime.clone())
            .map_err(InitError::Runtime)?;
    Ok(Ok(SpanIntake::new(
        processor,
        queue,
        runtime.flight(Signal::Traces),
        batch.export_timeout,
    )
    .counting_inside()))
}

/// Without an OTLP transport the exporter is the console's stand-in: the SDK's processor.
#[cfg(not(any(feature = "grpc", feature = "http")))]
fn encoding_processor<E>(
    exporter: E,
    _: &BatchSettings,
    _: Option<usize>,
    _: &Arc<ExportRuntime>,
) -> Result<Result<SpanIntake<BatchSpanProcessor>, E>, InitError> {
    Ok(Err(exporter))
}

/// The pull side reads the exporter's own reader when it aggregates cumulatively (one
/// aggregation per measurement); otherwise a cumulative reader of its own.
pub(crate) fn with_pushed<E>(
    builder: MeterProviderBuilder,
    reader: PeriodicReader<E>,
    cumulative: bool,
) -> (MeterProviderBuilder, Arc<dyn MetricReader>)
where
    E: opentelemetry_sdk::metrics::exporter::PushMetricExporter,
{
    if cumulative {
        let shared = Arc::new(reader);
        let pull: Arc<dyn MetricReader> = shared.clone();
        (builder.with_reader(Shared(shared)), pull)
    } else {
        let manual = Arc::new(ManualReader::builder().build());
        let pull: Arc<dyn MetricReader> = manual.clone();
        (
            builder.with_reader(reader).with_reader(Shared(manual)),
            pull,
        )
    }
}

/// A log exporter's batch processor, behind lookout's bounded queue.
pub(crate) fn log_processor<E: LogExporter + 'static>(
    exporter: E,
    batch: &BatchSettings,
    runtime: &ExportRuntime,
) -> LogIntake<BatchLogProcessor> {
    let queue = Queue::new(Signal::Logs, batch.max_queue_size);
    runtime.watch(&queue);
    LogIntake::new(
        BatchLogProcessor::builder(LogDequeue::new(exporter, queue.clone(), runtime.view()))
            .with_batch_config(log_batch_config(batch))
            .build(),
        queue,
        runtime.flight(Signal::Logs),
        batch.export_timeout,
    )
}

fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

fn span_batch_config(b: &BatchSettings) -> opentelemetry_sdk::trace::BatchConfig {
    // Every field is set, so the SDK's own (unvalidated) reading of OTEL_BSP_* never applies.
    // lookout bounds the queue itself at `max_queue_size` and counts what it drops (`Queue`).
    opentelemetry_sdk::trace::BatchConfigBuilder::default()
        .with_max_queue_size(Queue::sdk_capacity(
            b.max_queue_size,
            b.max_export_batch_size,
        ))
        .with_max_export_batch_size(b.max_export_batch_size)
        .with_scheduled_delay(b.scheduled_delay)
        .build()
}

fn log_batch_config(b: &BatchSettings) -> opentelemetry_sdk::logs::BatchConfig {
    opentelemetry_sdk::logs::BatchConfigBuilder::default()
        .with_max_queue_size(Queue::sdk_capacity(
            b.max_queue_size,
            b.max_export_batch_size,
        ))
        .with_max_export_batch_size(b.max_export_batch_size)
        .with_scheduled_delay(b.scheduled_delay)
        .build()
}

fn meter_provider(
    settings: &Settings,
    resource: &Resource,
    runtime: &Arc<ExportRuntime>,
    custom: Option<custom::MetricStep>,
) -> Result<Metrics, InitError> {
    let (kind, otlp) = exporter_of(settings, Signal::Metrics);
    let temporality = match settings.temporality {
        TemporalityPreference::Cumulative => Temporality::Cumulative,
        TemporalityPreference::Delta => Temporality::Delta,
        TemporalityPreference::LowMemory => Temporality::LowMemory,
    };
    let policy = StreamPolicy {
        cardinality_limit: settings.cardinality_limit,
        exponential_histograms: settings.histogram_aggregation
            == HistogramAggregation::Base2Exponential,
    };
    let builder = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(policy.view());
    let wrap = Wrap {
        redaction: &settings.redaction,
        signal: Signal::Metrics,
        destination: settings.destination(Signal::Metrics),
        timeout: settings.metric_timeout,
        runtime,
    };
    let interval = settings.metric_interval;
    if let Some(step) = custom {
        let (builder, pull) = step(builder, &wrap, interval);
        return Ok(Metrics::from_parts(builder.build(), pull));
    }
    let cumulative = temporality == Temporality::Cumulative;
    let (builder, pull) = match kind {
        ExporterKind::Otlp => with_pushed(
            builder,
            PeriodicReader::builder(wrap.counted_by_client(otlp_metrics(
                otlp,
                temporality,
                &wrap,
            )?))
            .with_interval(interval)
            .build(),
            cumulative,
        ),
        ExporterKind::Console => {
            let exporter = opentelemetry_stdout::MetricExporter::builder()
                .with_temporality(temporality)
                .build();
            with_pushed(
                builder,
                PeriodicReader::builder(wrap.it(exporter))
                    .with_interval(interval)
                    .build(),
                cumulative,
            )
        }
        ExporterKind::None => {
            let manual = Arc::new(ManualReader::builder().build());
            let pull: Arc<dyn MetricReader> = manual.clone();
            (builder.with_reader(Shared(manual)), pull)
        }
    };
    Ok(Metrics::from_parts(builder.build(), pull))
}

fn logger_provider(
    settings: &Settings,
    resource: &Resource,
    runtime: &Arc<ExportRuntime>,
    custom: Option<custom::LogStep>,
) -> Result<Option<SdkLoggerProvider>, InitError> {
    let (kind, otlp) = exporter_of(settings, Signal::Logs);
    let batch = &settings.log_batch;
    let wrap = Wrap {
        redaction: &settings.redaction,
        signal: Signal::Logs,
        destination: settings.destination(Signal::Logs),
        timeout: batch.export_timeout,
        runtime,
    };
    let builder = SdkLoggerProvider::builder().with_resource(resource.clone());
    if let Some(step) = custom {
        let processor = step(&wrap, batch, runtime);
        return Ok(Some(builder.with_log_processor(processor).build()));
    }
    let builder = match kind {
        ExporterKind::Otlp => builder.with_log_processor(log_processor(
            wrap.counted_by_client(otlp_logs(otlp, &wrap)?),
            batch,
            runtime,
        )),
        ExporterKind::Console => builder.with_log_processor(log_processor(
            wrap.it(opentelemetry_stdout::LogExporter::default()),
            batch,
            runtime,
        )),
        ExporterKind::None if runtime.view().is_some() => {
            builder.with_log_processor(log_processor(wrap.it(Discard), batch, runtime))
        }
        ExporterKind::None => return Ok(None),
    };
    Ok(Some(builder.build()))
}

/// The exporter of a signal whose exporter is `none` while the local view is on: the batch
/// processor feeds the view, and this drops the batch.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

impl LogExporter for Discard {
    async fn export(&self, _: opentelemetry_sdk::logs::LogBatch<'_>) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn build_error(signal: Signal) -> impl Fn(String) -> InitError {
    move |reason| InitError::Exporter {
        signal: signal.as_str(),
        reason,
    }
}

/// The OTLP client of one signal, on the configured protocol.
#[cfg(any(feature = "grpc", feature = "http"))]
fn otlp_client(
    s: &OtlpSettings,
    signal: Signal,
    wrap: &Wrap<'_>,
) -> Result<otlp::Client, InitError> {
    let error = build_error(signal);
    // The export timeout: the batch processor's and the exporter's, whichever is shorter.
    let timeout = match (wrap.timeout.is_zero(), s.timeout.is_zero()) {
        (true, _) => s.timeout,
        (_, true) => wrap.timeout,
        _ => wrap.timeout.min(s.timeout),
    };
    let (destination, runtime) = (wrap.destination.clone(), wrap.runtime.clone());
    let client = match s.protocol {
        #[cfg(feature = "grpc")]
        crate::Protocol::Grpc => otlp::Client::grpc(s, signal, destination, timeout, runtime),
        #[cfg(feature = "http")]
        crate::Protocol::HttpProtobuf | crate::Protocol::HttpJson => {
            otlp::Client::http(s, signal, destination, timeout, runtime)
        }
        #[allow(unreachable_patterns)]
        other => Err(format!("protocol {} is not compiled in", other.as_str())),
    }
    .map_err(error)?;
    Ok(client.with_redaction((*wrap.redaction).clone()))
}

#[cfg(any(feature = "grpc", feature = "http"))]
fn otlp_spans(s: &OtlpSettings, wrap: &Wrap<'_>) -> Result<otlp::OtlpExporter, InitError> {
    Ok(otlp::OtlpExporter::new(otlp_client(
        s,
        Signal::Traces,
        wrap,
    )?))
}
#[cfg(any(feature = "grpc", feature = "http"))]
fn otlp_logs(s: &OtlpSettings, wrap: &Wrap<'_>) -> Result<otlp::OtlpExporter, InitError> {
    Ok(otlp::OtlpExporter::new(otlp_client(s, Signal::Logs, wrap)?))
}
#[cfg(any(feature = "grpc", feature = "http"))]
fn otlp_metrics(
    s: &OtlpSettings,
    temporality: Temporality,
    wrap: &Wrap<'_>,
) -> Result<otlp::OtlpMetrics, InitError> {
    Ok(otlp::OtlpMetrics::new(
        otlp_client(s, Signal::Metrics, wrap)?,
        temporality,
    ))
}

/// Built without an OTLP transport: say which feature or variable fixes it.
#[cfg(not(any(feature = "grpc", feature = "http")))]
fn no_transport<T>(signal: Signal) -> Result<T, InitError> {
    Err(build_error(signal)(format!(
        "lookout was built without an OTLP transport; enable its `grpc` or `http` feature, or set OTEL_{}_EXPORTER=console or none",
        signal.as_str().to_ascii_uppercase()
    )))
}
#[cfg(not(any(feature = "grpc", feature = "http")))]
fn otlp_spans(
    _: &OtlpSettings,
    _: &Wrap<'_>,
) -> Result<opentelemetry_stdout::SpanExporter, InitError> {
    no_transport(Signal::Traces)
}
#[cfg(not(any(feature = "grpc", feature = "http")))]
fn otlp_logs(
    _: &OtlpSettings,
    _: &Wrap<'_>,
) -> Result<opentelemetry_stdout::LogExporter, InitError> {
    no_transport(Signal::Logs)
}
#[cfg(not(any(feature = "grpc", feature = "http")))]
fn otlp_metrics(
    _: &OtlpSettings,
    _: Temporality,
    _: &Wrap<'_>,
) -> Result<opentelemetry_stdout::MetricExporter, InitError> {
    no_transport(Signal::Metrics)
}
