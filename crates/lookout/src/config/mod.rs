//! Resolved configuration: builder settings first, then `OTEL_*`/`LOOKOUT_*` variables, then the
//! specification's defaults.

mod env;
mod otlp;

use std::time::Duration;

pub use env::ConfigWarning;
pub(crate) use env::{EnvReader, EnvSource, parse_key_values};
pub use otlp::{Compression, OtlpOptions, Protocol};
pub(crate) use otlp::{OtlpSettings, resolve_otlp};

use crate::error::InitError;

/// One of the three OpenTelemetry signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// All three, in the order reports list them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// `traces`, `metrics` or `logs`, as in variable names and OTLP paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a signal goes (`OTEL_{TRACES,METRICS,LOGS}_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterKind {
    /// OTLP to a collector (the default).
    Otlp,
    /// Printed to standard output by the OpenTelemetry stdout exporter.
    Console,
    /// Not exported. Spans still get ids, so logs stay correlated.
    None,
}

/// How the console shows events and spans (`LOOKOUT_CONSOLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleFormat {
    /// Multi-line, for people; colour when standard output is a terminal.
    Pretty,
    /// One line an event, for people (the default): time, level, the spans it is in with their
    /// fields (`checkout{order=7}:charge:`), target, message, the event's fields, and the trace and
    /// span ids.
    Compact,
    /// One JSON object a line, with `trace_id` and `span_id`, for log shippers.
    Json,
    /// Nothing on the console.
    Off,
}

/// A context propagator (`OTEL_PROPAGATORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagator {
    /// W3C `traceparent`/`tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// Zipkin B3, single `b3` header.
    B3,
    /// Zipkin B3, `X-B3-*` headers.
    B3Multi,
    /// Jaeger `uber-trace-id`.
    Jaeger,
}

/// The trace sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// Record and export every span.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Keep this fraction of traces, by trace id.
    TraceIdRatio(f64),
    /// Follow the parent's decision; root spans always on (the default).
    ParentBasedAlwaysOn,
    /// Follow the parent's decision; root spans off.
    ParentBasedAlwaysOff,
    /// Follow the parent's decision; root spans by trace-id ratio.
    ParentBasedTraceIdRatio(f64),
}

/// Metric temporality (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalityPreference {
    /// Running totals (the default; what Prometheus expects).
    Cumulative,
    /// Changes since the last export.
    Delta,
    /// Delta for synchronous counters and histograms, cumulative otherwise.
    LowMemory,
}

/// Batch processor settings (`OTEL_BSP_*` for spans, `OTEL_BLRP_*` for log records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "settings do nothing until given to the builder"]
pub struct BatchSettings {
    /// Items held before new ones are dropped (counted).
    pub max_queue_size: usize,
    /// Time between two exports.
    pub scheduled_delay: Duration,
    /// Items in one export; at most `max_queue_size`.
    pub max_export_batch_size: usize,
    /// Time one export may take; zero means no limit.
    pub export_timeout: Duration,
}

impl BatchSettings {
    /// The specification's span batch defaults (`OTEL_BSP_*`).
    pub const SPANS: BatchSettings = BatchSettings {
        max_queue_size: 2048,
        scheduled_delay: Duration::from_millis(5000),
        max_export_batch_size: 512,
        export_timeout: Duration::from_millis(30_000),
    };
    /// The specification's log record batch defaults (`OTEL_BLRP_*`).
    pub const LOGS: BatchSettings = BatchSettings {
        max_queue_size: 2048,
        scheduled_delay: Duration::from_millis(1000),
        max_export_batch_size: 512,
        export_timeout: Duration::from_millis(30_000),
    };
}

/// Attribute and span limits (`OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`, `OTEL_LOGRECORD_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "settings do nothing until given to the builder"]
pub struct Limits {
    /// Longest string attribute value on spans and span events; longer ones are cut.
    pub span_attribute_value_length: Option<usize>,
    /// Attributes a span keeps.
    pub span_attribute_count: u32,
    /// Events a span keeps (tracing-opentelemetry applies none of its own).
    pub span_event_count: u32,
    /// Links a span keeps.
    pub span_link_count: u32,
    /// Attributes an event keeps.
    pub event_attribute_count: u32,
    /// Attributes a link keeps.
    pub link_attribute_count: u32,
}

impl Default for Limits {
    /// The specification's defaults: 128 of everything, no value length limit.
    fn default() -> Self {
        Limits {
            span_attribute_value_length: None,
            span_attribute_count: 128,
            span_event_count: 128,
            span_link_count: 128,
            event_attribute_count: 128,
            link_attribute_count: 128,
        }
    }
}

/// The default aggregation of histogram instruments
/// (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramAggregation {
    /// Fixed bucket boundaries (the default).
    ExplicitBuckets,
    /// Base-2 exponential buckets (160 buckets, scale up to 20).
    Base2Exponential,
}

/// Every setting after resolution.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) disabled: bool,
    pub(crate) service_name: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) exporters: [ExporterKind; 3],
    /// An exporter given in code, by type name: it replaces `exporters` for its signal.
    pub(crate) custom: [Option<&'static str>; 3],
    pub(crate) otlp: [OtlpSettings; 3],
    pub(crate) span_batch: BatchSettings,
    pub(crate) log_batch: BatchSettings,
    pub(crate) metric_interval: Duration,
    pub(crate) metric_timeout: Duration,
    pub(crate) temporality: TemporalityPreference,
    pub(crate) histogram_aggregation: HistogramAggregation,
    pub(crate) cardinality_limit: usize,
    pub(crate) redaction: crate::redact::Redaction,
    pub(crate) process_metrics: bool,
    pub(crate) sampler: SamplerConfig,
    pub(crate) propagators: Vec<Propagator>,
    pub(crate) limits: Limits,
    pub(crate) console: ConsoleFormat,
    pub(crate) console_spans: bool,
    pub(crate) filter: String,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) view: crate::view::ViewOptions,
    /// Span and log exports in flight at once (`LOOKOUT_EXPORT_CONCURRENCY`).
    pub(crate) export_concurrency: usize,
}

impl Settings {
    /// Where `signal` goes, for messages: `http://host:4318/v1/traces (http/protobuf)`.
    pub(crate) fn destination(&self, signal: Signal) -> String {
        let i = signal_index(signal);
        if let Some(name) = self.custom[i] {
            return format!("custom exporter {name}");
        }
        match self.exporters[i] {
            ExporterKind::Otlp => format!(
                "{} ({})",
                self.otlp[i].endpoint,
                self.otlp[i].protocol.as_str()
            ),
            ExporterKind::Console => "stdout".to_owned(),
            ExporterKind::None => "none".to_owned(),
        }
    }
}

pub(crate) fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// What the builder set; `None` falls through to the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) disabled: Option<bool>,
    pub(crate) service_name: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) exporters: [Option<ExporterKind>; 3],
    pub(crate) otlp: OtlpOptions,
    pub(crate) signal_otlp: [OtlpOptions; 3],
    pub(crate) span_batch: Option<BatchSettings>,
    pub(crate) log_batch: Option<BatchSettings>,
    pub(crate) metric_interval: Option<Duration>,
    pub(crate) metric_timeout: Option<Duration>,
    pub(crate) temporality: Option<TemporalityPreference>,
    pub(crate) histogram_aggregation: Option<HistogramAggregation>,
    pub(crate) cardinality_limit: Option<usize>,
    pub(crate) redaction: Option<crate::redact::Redaction>,
    pub(crate) process_metrics: bool,
    pub(crate) sampler: Option<SamplerConfig>,
    pub(crate) propagators: Option<Vec<Propagator>>,
    pub(crate) limits: Option<Limits>,
    pub(crate) console: Option<ConsoleFormat>,
    pub(crate) console_spans: Option<bool>,
    pub(crate) filter: Option<String>,
    pub(crate) shutdown_timeout: Option<Duration>,
    /// The type name of each signal's exporter given in code (`TelemetryBuilder::span_exporter`,
    /// ...), which replaces the configured one.
    pub(crate) custom: [Option<&'static str>; 3],
    pub(crate) view: Option<crate::view::ViewOptions>,
}

const EXPORTERS: &[(&str, ExporterKind)] = &[
    ("otlp", ExporterKind::Otlp),
    ("console", ExporterKind::Console),
    ("none", ExporterKind::None),
];

impl Settings {
    /// Resolves every setting. Bad environment values become warnings; bad values given in code
    /// (which cannot be fixed by the operator) become one error listing all of them.
    pub(crate) fn resolve(
        o: &Overrides,
        source: &EnvSource,
    ) -> Result<(Settings, Vec<ConfigWarning>), InitError> {
        let mut env = EnvReader::new(source);
        let mut problems = Vec::new();

        let disabled = o
            .disabled
            .or_else(|| env.bool("OTEL_SDK_DISABLED"))
            .unwrap_or(false);

        let mut resource_attributes = env
            .raw("OTEL_RESOURCE_ATTRIBUTES")
            .map(|text| parse_key_values(&mut env, "OTEL_RESOURCE_ATTRIBUTES", &text))
            .unwrap_or_default();
        resource_attributes.extend(o.resource_attributes.iter().cloned());

        let exporters = exporters_of(o, &mut env);

        let otlp = Signal::ALL.map(|signal| {
            resolve_otlp(
                signal,
                &o.otlp,
                &o.signal_otlp[signal_index(signal)],
                &mut env,
                &mut problems,
            )
        });

        let span_batch = match o.span_batch {
            Some(b) => validate_batch_in_code("span_batch", b, &mut problems),
            None => batch_from_env(&mut env, "OTEL_BSP", BatchSettings::SPANS),
        };
        let log_batch = match o.log_batch {
            Some(b) => validate_batch_in_code("log_batch", b, &mut problems),
            None => batch_from_env(&mut env, "OTEL_BLRP", BatchSettings::LOGS),
        };

        let metric_interval = metric_interval_of(o, &mut env, &mut problems);
        let metric_timeout = o
            .metric_timeout
            .or_else(|| env.millis("OTEL_METRIC_EXPORT_TIMEOUT", Duration::from_secs(30), true))
            .unwrap_or(Duration::from_secs(30));

        let temporality = o
            .temporality
            .or_else(|| temporality_from_env(&mut env))
            .unwrap_or(TemporalityPreference::Cumulative);

        let histogram_aggregation = o
            .histogram_aggregation
            .or_else(|| histogram_aggregation_from_env(&mut env))
            .unwrap_or(HistogramAggregation::ExplicitBuckets);
        warn_unsupported(&mut env);

        let sampler = sampler_of(o, &mut env, &mut problems);

        let propagators = match &o.propagators {
            Some(p) => p.clone(),
            None => propagators_from_env(&mut env),
        };

        let limits = o.limits.unwrap_or_else(|| limits_from_env(&mut env));

        let console = o
            .console
            .or_else(|| console_from_env(&mut env))
            .unwrap_or(ConsoleFormat::Compact);
        let console_spans = o
            .console_spans
            .or_else(|| env.bool("LOOKOUT_CONSOLE_SPANS"))
            .unwrap_or(console != ConsoleFormat::Json);

        let filter = filter_from(o.filter.as_deref(), &mut env, &mut problems);

        let shutdown_timeout = o
            .shutdown_timeout
            .or_else(|| env.millis("LOOKOUT_SHUTDOWN_TIMEOUT", Duration::from_secs(5), false))
            .unwrap_or(Duration::from_secs(5));

        let redaction = o
            .redaction
            .clone()
            .unwrap_or_else(|| redaction_from_env(&mut env));

        let cardinality_limit = o
            .cardinality_limit
            .or_else(|| cardinality_limit_from_env(&mut env))
            .unwrap_or(crate::metrics::DEFAULT_CARDINALITY_LIMIT);

        let view = o.view.clone().unwrap_or_else(|| view_from_env(&mut env));
        let export_concurrency = env
            .number("LOOKOUT_EXPORT_CONCURRENCY", 1, 64, "16")
            .map_or(DEFAULT_EXPORT_CONCURRENCY, |n| n as usize);

        if !problems.is_empty() {
            // The same problem found for each signal is said once.
            let mut seen = std::collections::HashSet::new();
            problems.retain(|p| seen.insert(p.clone()));
            return Err(InitError::InvalidConfig { problems });
        }

        let service_name = o
            .service_name
            .clone()
            .or_else(|| env.raw("OTEL_SERVICE_NAME"));
        let service_version = o
            .service_version
            .clone()
            .or_else(|| env.raw("OTEL_SERVICE_VERSION"));

        let settings = Settings {
            disabled,
            service_name,
            service_version,
            resource_attributes,
            exporters,
            otlp,
            span_batch,
            log_batch,
            metric_interval,
            metric_timeout,
            temporality,
            histogram_aggregation,
            cardinality_limit,
            redaction,
            process_metrics: o.process_metrics,
            sampler,
            propagators,
            limits,
            console,
            console_spans,
            filter,
            shutdown_timeout,
            custom: o.custom,
            view,
            export_concurrency,
        };
        Ok((settings, env.warnings))
    }
}

/// Exports in flight at once by default: a collector that answers each export when it cuts its own
/// batch (rotel's gRPC receiver: tens of milliseconds) is kept busy at 100,000 spans a second with
/// batches of 512; the OpenTelemetry Collector's own exporters default to 10 consumers. Each
/// holds one batch: encoded spans are about 200 bytes each, so 16 in flight is some 1.6 MB.
pub(crate) const DEFAULT_EXPORT_CONCURRENCY: usize = 16;

/// The local view's bounds from `LOOKOUT_VIEW*`; a bad value warns and keeps the default.
fn view_from_env(env: &mut EnvReader<'_>) -> crate::view::ViewOptions {
    let mut v = crate::view::ViewOptions::default();
    if let Some(value) = env.raw("LOOKOUT_VIEW") {
        match value.to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "none" => v.enabled = false,
            "on" | "true" | "1" => {}
            _ => env.warn(
                "LOOKOUT_VIEW",
                format!("{value:?} is not `on` or `off`; the local view stays on"),
            ),
        }
    }
    let count = |env: &mut EnvReader<'_>, name: &str, field: &mut usize, max: u64| {
        if let Some(n) = env.number(name, 1, max, &field.to_string()) {
            *field = usize::try_from(n).unwrap_or(usize::MAX);
        }
    };
    count(env, "LOOKOUT_VIEW_TRACES", &mut v.traces, 1_000_000);
    count(env, "LOOKOUT_VIEW_ERROR_TRACES", &mut v.error_traces, 1_000_000);
    count(env, "LOOKOUT_VIEW_SPANS_PER_TRACE", &mut v.spans_per_trace, 1_000_000);
    count(env, "LOOKOUT_VIEW_TRACE_BYTES", &mut v.trace_bytes, 1 << 40);
    count(env, "LOOKOUT_VIEW_LOGS", &mut v.logs, 10_000_000);
    count(env, "LOOKOUT_VIEW_LOG_BYTES", &mut v.log_bytes, 1 << 40);
    count(env, "LOOKOUT_VIEW_SERIES", &mut v.series, 1_000_000);
    let rate = |env: &mut EnvReader<'_>, name: &str, field: &mut u32| {
        if let Some(n) = env.number(name, 0, u64::from(u32::MAX), &field.to_string()) {
            *field = u32::try_from(n).unwrap_or(u32::MAX);
        }
    };
    rate(env, "LOOKOUT_VIEW_TRACES_PER_SECOND", &mut v.traces_per_second);
    rate(env, "LOOKOUT_VIEW_LOGS_PER_SECOND", &mut v.logs_per_second);
    if let Some(d) = env.millis("LOOKOUT_VIEW_METRIC_INTERVAL", v.metric_interval, false) {
        v.metric_interval = d.max(Duration::from_millis(100));
    }
    if let Some(d) = env.millis("LOOKOUT_VIEW_METRIC_WINDOW", v.metric_window, false) {
        v.metric_window = d;
    }
    v
}

/// The exporter of each signal: the builder's, else `OTEL_<SIGNAL>_EXPORTER`, else `otlp`.
fn exporters_of(o: &Overrides, env: &mut EnvReader<'_>) -> [ExporterKind; 3] {
    Signal::ALL.map(|signal| {
        let name = format!("OTEL_{}_EXPORTER", signal.upper());
        o.exporters[signal_index(signal)]
            .or_else(|| env.choice(&name, EXPORTERS, "otlp"))
            .unwrap_or(ExporterKind::Otlp)
    })
}

/// The metric export interval: the builder's (zero is a problem), else
/// `OTEL_METRIC_EXPORT_INTERVAL`, else 60 s.
fn metric_interval_of(
    o: &Overrides,
    env: &mut EnvReader<'_>,
    problems: &mut Vec<String>,
) -> Duration {
    let interval = o
        .metric_interval
        .or_else(|| {
            env.millis(
                "OTEL_METRIC_EXPORT_INTERVAL",
                Duration::from_secs(60),
                false,
            )
        })
        .unwrap_or(Duration::from_secs(60));
    if interval.is_zero() {
        problems.push("metric_interval must be greater than zero".to_owned());
    }
    interval
}

/// The sampler: the builder's (a ratio outside 0..=1 is a problem), else `OTEL_TRACES_SAMPLER`.
fn sampler_of(o: &Overrides, env: &mut EnvReader<'_>, problems: &mut Vec<String>) -> SamplerConfig {
    match o.sampler {
        Some(s) => {
            if let SamplerConfig::TraceIdRatio(r) | SamplerConfig::ParentBasedTraceIdRatio(r) = s
                && !(0.0..=1.0).contains(&r)
            {
                problems.push(format!("sampler ratio {r} is not between 0 and 1"));
            }
            s
        }
        None => sampler_from_env(env),
    }
}

/// `LOOKOUT_METRICS_CARDINALITY_LIMIT`.
fn cardinality_limit_from_env(env: &mut EnvReader<'_>) -> Option<usize> {
    env.number(
        "LOOKOUT_METRICS_CARDINALITY_LIMIT",
        1,
        1 << 24,
        &crate::metrics::DEFAULT_CARDINALITY_LIMIT.to_string(),
    )
    .map(|n| n as usize)
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
fn temporality_from_env(env: &mut EnvReader<'_>) -> Option<TemporalityPreference> {
    env.choice(
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            &[
                ("cumulative", TemporalityPreference::Cumulative),
                ("delta", TemporalityPreference::Delta),
                ("lowmemory", TemporalityPreference::LowMemory),
            ],
            "cumulative",
        )
}

/// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`.
fn histogram_aggregation_from_env(env: &mut EnvReader<'_>) -> Option<HistogramAggregation> {
    env.choice(
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            &[
                (
                    "explicit_bucket_histogram",
                    HistogramAggregation::ExplicitBuckets,
                ),
                (
                    "base2_exponential_bucket_histogram",
                    HistogramAggregation::Base2Exponential,
                ),
            ],
            "explicit_bucket_histogram",
        )
}

/// Variables lookout reads only to say what it does not do with them.
fn warn_unsupported(env: &mut EnvReader<'_>) {
    // Read so a typo is reported; the 0.33 SDK records no exemplars, whatever the filter.
    let _ = env.choice(
        "OTEL_METRICS_EXEMPLAR_FILTER",
        &[("trace_based", ()), ("always_on", ()), ("always_off", ())],
        "trace_based",
    );
    if env.raw("OTEL_CONFIG_FILE").is_some() {
        env.warn(
            "OTEL_CONFIG_FILE",
            "declarative configuration files are not supported yet; it is ignored and the \
             environment and builder settings are used",
        );
    }
}

/// `LOOKOUT_CONSOLE`.
fn console_from_env(env: &mut EnvReader<'_>) -> Option<ConsoleFormat> {
    env.choice(
            "LOOKOUT_CONSOLE",
            &[
                ("pretty", ConsoleFormat::Pretty),
                ("compact", ConsoleFormat::Compact),
                ("json", ConsoleFormat::Json),
                ("off", ConsoleFormat::Off),
            ],
            "compact",
        )
}

/// `LOOKOUT_REDACT`, `LOOKOUT_REDACT_KEYS`, `LOOKOUT_REDACT_ALLOW`, `LOOKOUT_REDACT_EMAILS`.
fn redaction_from_env(env: &mut EnvReader<'_>) -> crate::redact::Redaction {
    let list = |env: &EnvReader<'_>, name: &str| -> Vec<String> {
        env.raw(name)
            .map(|v| {
                v.split(',')
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let enabled = match env.raw("LOOKOUT_REDACT").as_deref().map(str::trim) {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("false") => {
            false
        }
        Some(v) => {
            env.warn(
                "LOOKOUT_REDACT",
                format!("{v:?} is not `on` or `off`; redaction stays on"),
            );
            true
        }
    };
    let redaction = if enabled {
        crate::redact::Redaction::new()
    } else {
        crate::redact::Redaction::off()
    };
    redaction
        .extra_keys(list(env, "LOOKOUT_REDACT_KEYS"))
        .allow_only(list(env, "LOOKOUT_REDACT_ALLOW"))
        .emails(env.bool("LOOKOUT_REDACT_EMAILS").unwrap_or(false))
}

fn batch_from_env(env: &mut EnvReader<'_>, prefix: &str, d: BatchSettings) -> BatchSettings {
    let max = (u32::MAX / 2) as u64;
    let queue_name = format!("{prefix}_MAX_QUEUE_SIZE");
    let max_queue_size = env
        .number(&queue_name, 1, max, &d.max_queue_size.to_string())
        .map_or(d.max_queue_size, |n| n as usize);
    let batch_name = format!("{prefix}_MAX_EXPORT_BATCH_SIZE");
    let mut max_export_batch_size = env
        .number(&batch_name, 1, max, &d.max_export_batch_size.to_string())
        .map_or(d.max_export_batch_size, |n| n as usize);
    if max_export_batch_size > max_queue_size {
        env.warn(
            &batch_name,
            format!(
                "{max_export_batch_size} is larger than {queue_name} ({max_queue_size}); using {max_queue_size}"
            ),
        );
        max_export_batch_size = max_queue_size;
    }
    let scheduled_delay = env
        .millis(
            &format!("{prefix}_SCHEDULE_DELAY"),
            d.scheduled_delay,
            false,
        )
        .unwrap_or(d.scheduled_delay);
    let export_timeout = env
        .millis(&format!("{prefix}_EXPORT_TIMEOUT"), d.export_timeout, true)
        .unwrap_or(d.export_timeout);
    BatchSettings {
        max_queue_size,
        scheduled_delay,
        max_export_batch_size,
        export_timeout,
    }
}

fn validate_batch_in_code(
    what: &str,
    b: BatchSettings,
    problems: &mut Vec<String>,
) -> BatchSettings {
    if b.max_queue_size == 0 {
        problems.push(format!(
            "{what}.max_queue_size is 0, which would drop every item; use at least 1"
        ));
    }
    if b.max_export_batch_size == 0 || b.max_export_batch_size > b.max_queue_size {
        problems.push(format!(
            "{what}.max_export_batch_size must be from 1 to max_queue_size ({})",
            b.max_queue_size
        ));
    }
    if b.scheduled_delay.is_zero() {
        problems.push(format!("{what}.scheduled_delay must be greater than zero"));
    }
    b
}

fn sampler_from_env(env: &mut EnvReader<'_>) -> SamplerConfig {
    #[derive(Clone, Copy)]
    enum Kind {
        On,
        Off,
        Ratio,
        POn,
        POff,
        PRatio,
    }
    let kind = env.choice(
        "OTEL_TRACES_SAMPLER",
        &[
            ("always_on", Kind::On),
            ("always_off", Kind::Off),
            ("traceidratio", Kind::Ratio),
            ("parentbased_always_on", Kind::POn),
            ("parentbased_always_off", Kind::POff),
            ("parentbased_traceidratio", Kind::PRatio),
        ],
        "parentbased_always_on",
    );
    match kind.unwrap_or(Kind::POn) {
        Kind::On => SamplerConfig::AlwaysOn,
        Kind::Off => SamplerConfig::AlwaysOff,
        Kind::POn => SamplerConfig::ParentBasedAlwaysOn,
        Kind::POff => SamplerConfig::ParentBasedAlwaysOff,
        Kind::Ratio => SamplerConfig::TraceIdRatio(env.ratio("OTEL_TRACES_SAMPLER_ARG", 1.0)),
        Kind::PRatio => {
            SamplerConfig::ParentBasedTraceIdRatio(env.ratio("OTEL_TRACES_SAMPLER_ARG", 1.0))
        }
    }
}

fn propagators_from_env(env: &mut EnvReader<'_>) -> Vec<Propagator> {
    let default = vec![Propagator::TraceContext, Propagator::Baggage];
    let Some(text) = env.raw("OTEL_PROPAGATORS") else {
        return default;
    };
    let mut out = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let p = match word.to_ascii_lowercase().as_str() {
            "tracecontext" => Propagator::TraceContext,
            "baggage" => Propagator::Baggage,
            "b3" => Propagator::B3,
            "b3multi" => Propagator::B3Multi,
            "jaeger" => Propagator::Jaeger,
            "none" => return Vec::new(),
            _ => {
                env.warn(
                    "OTEL_PROPAGATORS",
                    format!(
                        "{word:?} is not one of tracecontext, baggage, b3, b3multi, jaeger, none; it is ignored"
                    ),
                );
                continue;
            }
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn limits_from_env(env: &mut EnvReader<'_>) -> Limits {
    let count = |env: &mut EnvReader<'_>, specific: &str, general: Option<&str>| -> u32 {
        let max = u64::from(u32::MAX);
        env.number(specific, 0, max, "128")
            .or_else(|| general.and_then(|g| env.number(g, 0, max, "128")))
            .map_or(128, |n| n as u32)
    };
    let span_attribute_count = count(
        env,
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        Some("OTEL_ATTRIBUTE_COUNT_LIMIT"),
    );
    let span_event_count = count(env, "OTEL_SPAN_EVENT_COUNT_LIMIT", None);
    let span_link_count = count(env, "OTEL_SPAN_LINK_COUNT_LIMIT", None);
    let event_attribute_count = count(
        env,
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        Some("OTEL_ATTRIBUTE_COUNT_LIMIT"),
    );
    let link_attribute_count = count(
        env,
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        Some("OTEL_ATTRIBUTE_COUNT_LIMIT"),
    );
    let max = u64::from(u32::MAX);
    let span_attribute_value_length = env
        .number("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", 0, max, "no limit")
        .or_else(|| env.number("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", 0, max, "no limit"))
        .map(|n| n as usize);
    // Log record limits are validated like the others so a typo is reported, and documented as
    // not enforced: the 0.33 SDK gives processors no way to change a record's attributes.
    let _ = env.number("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", 0, max, "128");
    let _ = env.number(
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        0,
        max,
        "no limit",
    );
    Limits {
        span_attribute_value_length,
        span_attribute_count,
        span_event_count,
        span_link_count,
        event_attribute_count,
        link_attribute_count,
    }
}

fn filter_from(
    in_code: Option<&str>,
    env: &mut EnvReader<'_>,
    problems: &mut Vec<String>,
) -> String {
    use tracing_subscriber::EnvFilter;
    if let Some(f) = in_code {
        if let Err(e) = EnvFilter::builder().parse(f) {
            problems.push(format!("filter {f:?} is not a valid filter directive: {e}"));
        }
        return f.to_owned();
    }
    if let Some(f) = env.raw("RUST_LOG") {
        match EnvFilter::builder().parse(&f) {
            Ok(_) => return f,
            Err(e) => env.warn(
                "RUST_LOG",
                format!("{f:?} is not a valid filter ({e}); using `info`"),
            ),
        }
    }
    let level = env.choice(
        "OTEL_LOG_LEVEL",
        &[
            ("error", "error"),
            ("warn", "warn"),
            ("info", "info"),
            ("debug", "debug"),
            ("trace", "trace"),
            ("none", "off"),
            ("off", "off"),
        ],
        "info",
    );
    level.unwrap_or("info").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> (Settings, Vec<ConfigWarning>) {
        let source = EnvSource::Map(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        Settings::resolve(&Overrides::default(), &source).expect("env never fails init")
    }

    #[test]
    fn defaults_follow_the_spec() {
        let (s, w) = resolve(&[]);
        assert!(w.is_empty(), "{w:?}");
        assert!(!s.disabled);
        assert_eq!(s.span_batch, BatchSettings::SPANS);
        assert_eq!(s.log_batch, BatchSettings::LOGS);
        assert_eq!(s.metric_interval, Duration::from_secs(60));
        assert_eq!(s.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(
            s.propagators,
            vec![Propagator::TraceContext, Propagator::Baggage]
        );
        assert_eq!(s.exporters, [ExporterKind::Otlp; 3]);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(s.limits, Limits::default());
        assert_eq!(
            s.histogram_aggregation,
            HistogramAggregation::ExplicitBuckets
        );
    }

    #[test]
    fn exemplar_filter_and_config_file_are_read_and_reported() {
        let (s, w) = resolve(&[
            ("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes"),
            ("OTEL_CONFIG_FILE", "/etc/otel.yaml"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                "base2_exponential_bucket_histogram",
            ),
        ]);
        assert_eq!(
            s.histogram_aggregation,
            HistogramAggregation::Base2Exponential
        );
        let vars: Vec<&str> = w.iter().map(|w| w.variable.as_str()).collect();
        assert_eq!(vars, ["OTEL_METRICS_EXEMPLAR_FILTER", "OTEL_CONFIG_FILE"]);
    }

    #[test]
    fn bsp_queue_size_zero_is_rejected_not_silently_accepted() {
        let (s, w) = resolve(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ]);
        assert_eq!(s.span_batch.max_queue_size, 2048);
        assert_eq!(s.span_batch.scheduled_delay, Duration::from_millis(5000));
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].variable, "OTEL_BSP_MAX_QUEUE_SIZE");
        assert_eq!(w[1].variable, "OTEL_BSP_SCHEDULE_DELAY");
    }

    #[test]
    fn cardinality_limit_from_env_then_builder() {
        let (s, w) = resolve(&[("LOOKOUT_METRICS_CARDINALITY_LIMIT", "50")]);
        assert_eq!(s.cardinality_limit, 50);
        assert!(w.is_empty());
        let (s, w) = resolve(&[("LOOKOUT_METRICS_CARDINALITY_LIMIT", "0")]);
        assert_eq!(
            s.cardinality_limit,
            crate::metrics::DEFAULT_CARDINALITY_LIMIT
        );
        assert_eq!(w[0].variable, "LOOKOUT_METRICS_CARDINALITY_LIMIT");
        let o = Overrides {
            cardinality_limit: Some(7),
            ..Overrides::default()
        };
        let source = EnvSource::Map(
            [(
                "LOOKOUT_METRICS_CARDINALITY_LIMIT".to_owned(),
                "50".to_owned(),
            )]
            .into_iter()
            .collect(),
        );
        let (s, _) = Settings::resolve(&o, &source).expect("valid");
        assert_eq!(s.cardinality_limit, 7, "the builder wins");
    }

    #[test]
    fn batch_larger_than_queue_is_capped_with_a_warning() {
        let (s, w) = resolve(&[
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "500"),
        ]);
        assert_eq!(s.log_batch.max_export_batch_size, 100);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn unknown_enums_warn_and_are_ignored() {
        let (s, w) = resolve(&[
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_PROPAGATORS", "b3,xray,tracecontext"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
        ]);
        assert_eq!(s.exporters[0], ExporterKind::Otlp);
        assert_eq!(
            s.propagators,
            vec![Propagator::B3, Propagator::TraceContext]
        );
        assert_eq!(s.sampler, SamplerConfig::ParentBasedAlwaysOn);
        let vars: Vec<&str> = w.iter().map(|w| w.variable.as_str()).collect();
        assert_eq!(
            vars,
            [
                "OTEL_TRACES_EXPORTER",
                "OTEL_TRACES_SAMPLER",
                "OTEL_PROPAGATORS"
            ]
        );
    }

    #[test]
    fn sampler_arg_is_validated() {
        let (s, w) = resolve(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ]);
        assert_eq!(s.sampler, SamplerConfig::TraceIdRatio(1.0));
        assert_eq!(w.len(), 1);
        let (s, _) = resolve(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        assert_eq!(s.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.25));
    }

    #[test]
    fn propagators_none_means_none() {
        let (s, _) = resolve(&[("OTEL_PROPAGATORS", "tracecontext,none")]);
        assert!(s.propagators.is_empty());
    }

    #[test]
    fn builder_wins_over_env() {
        let source = EnvSource::Map(
            [
                ("OTEL_SERVICE_NAME", "from-env"),
                ("LOOKOUT_CONSOLE", "json"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        );
        let o = Overrides {
            service_name: Some("from-code".into()),
            console: Some(ConsoleFormat::Off),
            ..Overrides::default()
        };
        let (s, _) = Settings::resolve(&o, &source).expect("valid");
        assert_eq!(s.service_name.as_deref(), Some("from-code"));
        assert_eq!(s.console, ConsoleFormat::Off);
    }

    #[test]
    fn invalid_values_in_code_are_all_reported_at_once() {
        let o = Overrides {
            span_batch: Some(BatchSettings {
                max_queue_size: 0,
                ..BatchSettings::SPANS
            }),
            sampler: Some(SamplerConfig::TraceIdRatio(2.0)),
            filter: Some("[[[".into()),
            ..Overrides::default()
        };
        let err = Settings::resolve(&o, &EnvSource::Map(Default::default()))
            .expect_err("invalid in code");
        let InitError::InvalidConfig { problems } = err else {
            panic!("wrong error: {err}");
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn rust_log_then_otel_log_level_then_info() {
        assert_eq!(resolve(&[]).0.filter, "info");
        assert_eq!(resolve(&[("OTEL_LOG_LEVEL", "debug")]).0.filter, "debug");
        assert_eq!(
            resolve(&[("RUST_LOG", "warn,app=trace"), ("OTEL_LOG_LEVEL", "debug")])
                .0
                .filter,
            "warn,app=trace"
        );
    }
}
