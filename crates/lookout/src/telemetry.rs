//! `Telemetry::builder()`, the pipeline it installs, and the guard that shuts it down.

use std::fmt;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::config::{
    BatchSettings, ConfigWarning, ConsoleFormat, EnvSource, ExporterKind, HistogramAggregation,
    Limits, OtlpOptions, Overrides, Propagator, SamplerConfig, Settings, Signal,
    TemporalityPreference, signal_index,
};
use crate::error::{InitError, ShutdownError};
use crate::export::{self, Providers};
use crate::stats::COUNTERS;

/// Configures and starts telemetry. Every setting has an environment twin (see the crate docs);
/// a setting made here wins over the environment.
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until .init() is called"]
pub struct TelemetryBuilder {
    o: Overrides,
    env: EnvSource,
    span_location: bool,
    span_threads: bool,
    span_busy_idle: bool,
    custom: export::Custom,
}

impl TelemetryBuilder {
    /// Records process metrics (CPU time and utilisation, memory, file descriptors, threads,
    /// uptime, per the semantic conventions) and, when `init` runs inside a tokio runtime, that
    /// runtime's metrics (workers, alive tasks, global queue depth, busy time and ratio). Off by
    /// default. If `/proc` cannot be read, init warns and goes on without the process figures.
    pub fn process_metrics(mut self) -> Self {
        self.o.process_metrics = true;
        self
    }

    /// Attribute sets per metric instrument (default 2000, the specification's); measurements
    /// with further sets go to one series with `otel.metric.overflow = true`, so a label with
    /// unbounded values cannot exhaust memory. Values below 1 are raised to 1. Overrides
    /// `LOOKOUT_METRICS_CARDINALITY_LIMIT`.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.o.cardinality_limit = Some(limit.max(1));
        self
    }

    /// How exported values are redacted (on by default; see [`crate::Redaction`]). Overrides
    /// `LOOKOUT_REDACT`, `LOOKOUT_REDACT_KEYS`, `LOOKOUT_REDACT_ALLOW` and
    /// `LOOKOUT_REDACT_EMAILS`.
    pub fn redaction(mut self, redaction: crate::Redaction) -> Self {
        self.o.redaction = Some(redaction);
        self
    }

    /// `service.name` (`OTEL_SERVICE_NAME`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.o.service_name = Some(name.into());
        self
    }
    /// `service.version` (`OTEL_SERVICE_VERSION`).
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.o.service_version = Some(version.into());
        self
    }
    /// A resource attribute (`OTEL_RESOURCE_ATTRIBUTES`); these win over the variable's.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.o.resource_attributes.push((key.into(), value.into()));
        self
    }
    /// Turns every signal off, or back on (`OTEL_SDK_DISABLED`). Propagation and the console
    /// still work.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.o.disabled = Some(disabled);
        self
    }
    /// Where `signal` goes (`OTEL_{TRACES,METRICS,LOGS}_EXPORTER`).
    pub fn exporter(mut self, signal: Signal, kind: ExporterKind) -> Self {
        self.o.exporters[signal_index(signal)] = Some(kind);
        self
    }
    /// Sends spans to `exporter` instead of the configured exporter (`OTEL_TRACES_EXPORTER` is
    /// then ignored): a backend without OTLP, an in-memory exporter in tests, a discarding one in
    /// a benchmark. It gets what lookout's own exporters get: the batch processor behind
    /// lookout's bounded and counted queue (`OTEL_BSP_*`), the attribute value limit, the export
    /// timeout, the counts in [`crate::stats`] and the WARN when exporting fails. (Redaction is
    /// part of lookout's OTLP client and does not apply: the spans arrive as the SDK has them.)
    ///
    /// ```
    /// use lookout::opentelemetry_sdk::error::OTelSdkResult;
    /// use lookout::opentelemetry_sdk::trace::{SpanData, SpanExporter};
    ///
    /// #[derive(Debug)]
    /// struct Discard;
    /// impl SpanExporter for Discard {
    ///     async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let telemetry = lookout::Telemetry::builder()
    ///     .span_exporter(Discard)
    ///     .console(lookout::ConsoleFormat::Off)
    ///     .init()?;
    /// # let _ = telemetry.blocking_shutdown();
    /// # Ok::<(), lookout::InitError>(())
    /// ```
    pub fn span_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::trace::SpanExporter + 'static,
    {
        self.o.custom[signal_index(Signal::Traces)] = Some(std::any::type_name::<E>());
        self.custom.spans(exporter);
        self
    }

    /// Sends log records to `exporter` instead of the configured exporter (`OTEL_LOGS_EXPORTER`
    /// is then ignored), through lookout's batch processor and queue (`OTEL_BLRP_*`), counted
    /// like lookout's own exporters.
    pub fn log_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::logs::LogExporter + 'static,
    {
        self.o.custom[signal_index(Signal::Logs)] = Some(std::any::type_name::<E>());
        self.custom.logs(exporter);
        self
    }

    /// Sends metrics to `exporter` every metric interval (`OTEL_METRIC_EXPORT_INTERVAL`) instead
    /// of the configured exporter (`OTEL_METRICS_EXPORTER` is then ignored), with the temporality
    /// the exporter asks for; `/metrics` and [`crate::metrics::global`] keep reading the same
    /// aggregation.
    pub fn metric_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::metrics::exporter::PushMetricExporter + 'static,
    {
        self.o.custom[signal_index(Signal::Metrics)] = Some(std::any::type_name::<E>());
        self.custom.metrics(exporter);
        self
    }

    /// OTLP settings for every signal (`OTEL_EXPORTER_OTLP_*`).
    pub fn otlp(mut self, options: impl FnOnce(OtlpOptions) -> OtlpOptions) -> Self {
        self.o.otlp = options(std::mem::take(&mut self.o.otlp));
        self
    }
    /// OTLP settings for one signal (`OTEL_EXPORTER_OTLP_{SIGNAL}_*`); these win over
    /// [`otlp`](Self::otlp).
    pub fn otlp_for(
        mut self,
        signal: Signal,
        options: impl FnOnce(OtlpOptions) -> OtlpOptions,
    ) -> Self {
        let slot = &mut self.o.signal_otlp[signal_index(signal)];
        *slot = options(std::mem::take(slot));
        self
    }
    /// The default histogram aggregation
    /// (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`).
    pub fn histogram_aggregation(mut self, aggregation: HistogramAggregation) -> Self {
        self.o.histogram_aggregation = Some(aggregation);
        self
    }
    /// The trace sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
    pub fn sampler(mut self, sampler: SamplerConfig) -> Self {
        self.o.sampler = Some(sampler);
        self
    }
    /// Context propagators (`OTEL_PROPAGATORS`); an empty list means none.
    pub fn propagators(mut self, propagators: impl IntoIterator<Item = Propagator>) -> Self {
        self.o.propagators = Some(propagators.into_iter().collect());
        self
    }
    /// The span batch processor (`OTEL_BSP_*`).
    pub fn span_batch(mut self, batch: BatchSettings) -> Self {
        self.o.span_batch = Some(batch);
        self
    }
    /// The log record batch processor (`OTEL_BLRP_*`).
    pub fn log_batch(mut self, batch: BatchSettings) -> Self {
        self.o.log_batch = Some(batch);
        self
    }
    /// Time between metric exports (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub fn metric_interval(mut self, interval: Duration) -> Self {
        self.o.metric_interval = Some(interval);
        self
    }
    /// Time one metric export may take, zero for no limit (`OTEL_METRIC_EXPORT_TIMEOUT`).
    pub fn metric_timeout(mut self, timeout: Duration) -> Self {
        self.o.metric_timeout = Some(timeout);
        self
    }
    /// Metric temporality (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
    pub fn temporality(mut self, temporality: TemporalityPreference) -> Self {
        self.o.temporality = Some(temporality);
        self
    }
    /// Span and attribute limits (`OTEL_SPAN_*_LIMIT`, `OTEL_ATTRIBUTE_*_LIMIT`, ...).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.o.limits = Some(limits);
        self
    }
    /// The console format (`LOOKOUT_CONSOLE`).
    pub fn console(mut self, format: ConsoleFormat) -> Self {
        self.o.console = Some(format);
        self
    }
    /// Whether the console shows a line when a span closes, with its duration
    /// (`LOOKOUT_CONSOLE_SPANS`).
    pub fn console_spans(mut self, show: bool) -> Self {
        self.o.console_spans = Some(show);
        self
    }
    /// The event and span filter, in `RUST_LOG` syntax (`RUST_LOG`, then `OTEL_LOG_LEVEL`).
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.o.filter = Some(directives.into());
        self
    }
    /// The local view's bounds (instead of `LOOKOUT_VIEW*`);
    /// [`ViewOptions::off`](crate::view::ViewOptions::off) turns it off.
    pub fn view(mut self, options: crate::view::ViewOptions) -> Self {
        self.o.view = Some(options);
        self
    }
    /// How long shutdown may take in all (`LOOKOUT_SHUTDOWN_TIMEOUT`, default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.o.shutdown_timeout = Some(timeout);
        self
    }
    /// Adds `code.*` source location attributes to spans. Off by default: it costs time on every
    /// span.
    pub fn span_location(mut self, on: bool) -> Self {
        self.span_location = on;
        self
    }
    /// Adds `thread.id`/`thread.name` to spans. Off by default.
    pub fn span_threads(mut self, on: bool) -> Self {
        self.span_threads = on;
        self
    }
    /// Adds `busy_ns`/`idle_ns` to spans. Off by default.
    pub fn span_busy_idle(mut self, on: bool) -> Self {
        self.span_busy_idle = on;
        self
    }
    /// Reads variables from `vars` instead of the process environment (for tests and embedding).
    pub fn env_vars<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.env = EnvSource::Map(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Starts telemetry and installs it as the global `tracing` subscriber, tracer, meter and
    /// propagator. Call once, first thing in `main`; keep the guard until the end.
    ///
    /// Needs no async runtime: exports run on lookout's own thread. To keep your own subscriber
    /// (other layers beside lookout's), use [`layer`](Self::layer) instead.
    pub fn init(self) -> Result<Telemetry, InitError> {
        let mut started = self.start()?;
        // The filter is the subscriber's global filter here: no per-layer bookkeeping on any span.
        let subscriber = Registry::default().with(started.filter.take());
        let subscriber = subscriber.with(started.console());
        let subscriber = subscriber.with(started.export());
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| InitError::AlreadyInitialized)?;
        let mut telemetry = started.telemetry;
        telemetry.install().say();
        Ok(telemetry)
    }

    /// Starts telemetry like [`init`](Self::init) (the global tracer, meter and propagator are
    /// lookout's) but leaves the `tracing` subscriber to you: returns lookout's layers as one
    /// [`Layer`] — the console output and the span and log export, behind lookout's filter
    /// (`RUST_LOG` / [`filter`](Self::filter)) — and the guard. Put the layer into your own
    /// registry beside tokio-console, Sentry, a file appender or your own fmt layer:
    ///
    /// ```no_run
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// use tracing_subscriber::util::SubscriberInitExt as _;
    ///
    /// let (lookout_layer, telemetry) = lookout::Telemetry::builder()
    ///     .console(lookout::ConsoleFormat::Off)
    ///     .layer()?;
    /// tracing_subscriber::registry()
    ///     .with(lookout_layer)
    ///     .with(tracing_subscriber::fmt::layer()) // yours, unfiltered by lookout
    ///     .init();
    /// // ...
    /// let _ = telemetry.blocking_shutdown();
    /// # Ok::<(), lookout::InitError>(())
    /// ```
    ///
    /// lookout's filter applies to lookout's layers only (a per-layer filter), so your layers see
    /// what their own filters let through. The spans and logs exported are the same as with
    /// [`init`](Self::init). Call it once: the global tracer and meter are replaced by a second
    /// call.
    pub fn layer<S>(self) -> Result<(impl Layer<S> + Send + Sync + 'static, Telemetry), InitError>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let mut started = self.start()?;
        let filter = started.filter.take();
        let (console, export) = (started.console(), started.export());
        let mut telemetry = started.telemetry;
        let announce = Announce {
            pending: Mutex::new(Some(telemetry.install())),
            saying: telemetry.inner.announcing.clone(),
        };
        // One per-layer filter around all of it: tracing-subscriber combines the interest of a
        // filtered layer nested beside an unfiltered one wrongly (the user's layers then miss
        // what lookout's filter rejects).
        let layer = Layer::and_then(announce, Layer::and_then(console, export)).with_filter(filter);
        Ok((layer, telemetry))
    }

    /// What [`init`](Self::init) and [`layer`](Self::layer) share: the settings resolved, the
    /// pipeline built, lookout's layers made. Nothing is installed yet.
    fn start(self) -> Result<Started, InitError> {
        let (settings, warnings) = Settings::resolve(&self.o, &self.env)?;

        let filter = crate::filter::LookoutFilter::new(&settings.filter);

        let providers = if settings.disabled {
            None
        } else {
            let resource = crate::resource::build(&settings, &self.env);
            Some(export::build(&settings, &resource, self.custom)?)
        };

        let tracer = providers
            .as_ref()
            .and_then(|p| p.tracer.as_ref())
            .map(|tp| tp.tracer("lookout"));
        let logger = providers.as_ref().and_then(|p| p.logger.clone());
        let console = (settings.console, settings.console_spans);

        let telemetry = Telemetry {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    providers,
                    outcome: None,
                }),
                announcing: Arc::default(),
                shutdown_timeout: settings.shutdown_timeout,
                warnings,
                destinations: Signal::ALL.map(|s| {
                    if settings.disabled {
                        "disabled".to_owned()
                    } else {
                        settings.destination(s)
                    }
                }),
            }),
            settings: Some(settings),
        };
        Ok(Started {
            filter: Some(filter),
            console,
            tracer,
            logger,
            span_location: self.span_location,
            span_threads: self.span_threads,
            span_busy_idle: self.span_busy_idle,
            telemetry,
        })
    }
}

/// What lookout says when it starts: the destinations, every configuration warning, a failure
/// to register process metrics.
#[derive(Debug, Default)]
struct Announcement {
    settings: Option<Settings>,
    warnings: Vec<ConfigWarning>,
    process_metrics: Option<String>,
}

impl Announcement {
    /// Says it through the current subscriber.
    fn say(self) {
        if let Some(e) = &self.process_metrics {
            tracing::warn!(target: "lookout", "{e}");
        }
        for w in &self.warnings {
            tracing::warn!(target: "lookout::config", variable = %w.variable, "{}", w.message);
        }
        if let Some(settings) = &self.settings {
            log_start(settings);
        }
    }
}

/// Part of the layer [`TelemetryBuilder::layer`] returns: says the [`Announcement`] through the
/// user's subscriber once it is built. Not from `on_register_dispatch` itself, which runs while
/// tracing holds its dispatcher list locked (a first event there would deadlock on it), but from
/// a thread, once the subscriber is the global default (`set_global_default` returns right after
/// registering it). A scoped `with_default` on that thread is the last resort, after a second:
/// while one is active anywhere, every thread's nested dispatcher lookups (tracing-opentelemetry's
/// `get_otel_context` inside a layer callback) see no subscriber. [`Telemetry`]'s shutdown waits
/// for the thread.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(1);

struct Announce {
    pending: Mutex<Option<Announcement>>,
    saying: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl<S: tracing::Subscriber> Layer<S> for Announce {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let Some(announcement) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let dispatch = subscriber.clone();
        let spawned = std::thread::Builder::new()
            .name("lookout-announce".into())
            .spawn(move || {
                let waited = Instant::now();
                while !tracing::dispatcher::has_been_set() && waited.elapsed() < ANNOUNCE_WAIT {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if tracing::dispatcher::has_been_set() {
                    announcement.say();
                } else {
                    tracing::dispatcher::with_default(&dispatch, || announcement.say());
                }
            });
        if let Ok(handle) = spawned {
            *self.saying.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
    }
}

/// The pipeline started and the guard made, before anything is installed; makes lookout's layers
/// for whichever subscriber they go into.
struct Started {
    /// `RUST_LOG` / the builder's directives (taken by the composition).
    filter: Option<crate::filter::LookoutFilter>,
    console: (ConsoleFormat, bool),
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
    logger: Option<SdkLoggerProvider>,
    span_location: bool,
    span_threads: bool,
    span_busy_idle: bool,
    telemetry: Telemetry,
}

impl Started {
    /// The console lines (`None` when off).
    fn console<S>(&self) -> impl Layer<S> + Send + Sync + 'static + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        crate::console::layer(self.console.0, self.console.1)
    }

    /// The span and log export. No per-layer filter: one costs a registry lookup in every span
    /// callback (BENCHMARKS.md). What the exporters' own transport does is kept out of the export
    /// where it happens, on the exporting threads (`export::runtime::on_export_thread`).
    fn export<S>(&self) -> impl Layer<S> + Send + Sync + 'static + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let span_layer = self.tracer.clone().map(|tracer| {
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(self.span_location)
                .with_threads(self.span_threads)
                .with_tracked_inactivity(self.span_busy_idle)
        });
        // The u64 fix around the span layer (see `u64_fields`): its values kept before, the
        // hand-over cleared after.
        let u64_keep = span_layer.is_some().then_some(crate::u64_fields::U64Fields);
        let u64_done = span_layer.is_some().then_some(crate::u64_fields::U64FieldsDone);
        let log_layer = self
            .logger
            .as_ref()
            .map(opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new);
        let spans = Layer::and_then(Layer::and_then(u64_keep, span_layer), u64_done);
        Layer::and_then(spans, log_layer)
    }
}

fn log_start(settings: &Settings) {
    if settings.disabled {
        tracing::info!(target: "lookout", "telemetry export disabled (OTEL_SDK_DISABLED)");
        return;
    }
    tracing::info!(
        target: "lookout",
        traces = %settings.destination(Signal::Traces),
        metrics = %settings.destination(Signal::Metrics),
        logs = %settings.destination(Signal::Logs),
        "telemetry started"
    );
}

#[derive(Debug)]
struct State {
    providers: Option<Providers>,
    outcome: Option<Result<ShutdownReport, ShutdownError>>,
}

/// The running pipeline. Keep it until the end of `main`: [`shutdown`](Self::shutdown) (or
/// dropping it) flushes every signal within the shutdown deadline.
#[must_use = "dropping the guard shuts telemetry down at once; keep it until the end of main"]
pub struct Telemetry {
    inner: Arc<Inner>,
    /// Until [`installed`](Self::installed): what it says when it starts.
    settings: Option<Settings>,
}

struct Inner {
    state: Mutex<State>,
    /// The thread saying the start through the user's subscriber ([`Announce`]).
    announcing: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    shutdown_timeout: Duration,
    warnings: Vec<ConfigWarning>,
    /// Where each signal goes, for `Debug` (never with header values).
    destinations: [String; 3],
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let this = &self.inner;
        let state = this.lock();
        let running = state.providers.is_some();
        f.debug_struct("Telemetry")
            .field("traces", &this.destinations[0])
            .field("metrics", &this.destinations[1])
            .field("logs", &this.destinations[2])
            .field("running", &running)
            .field("shutdown_timeout", &this.shutdown_timeout)
            .field("warnings", &this.warnings.len())
            .finish()
    }
}

impl Telemetry {
    /// A builder, to set what the environment does not.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    /// Installs the global propagator, tracer and meter providers. Returns what is to be said
    /// about the start (through the subscriber lookout's layers are in, once it exists).
    fn install(&mut self) -> Announcement {
        let Some(settings) = self.settings.take() else {
            return Announcement::default();
        };
        opentelemetry::global::set_text_map_propagator(crate::propagation::composite(
            &settings.propagators,
        ));
        let mut process_metrics = None;
        if let Some(p) = &self.inner.lock().providers {
            if let Some(tp) = &p.tracer {
                opentelemetry::global::set_tracer_provider(tp.clone());
            }
            p.metrics.install();
            crate::view::set_global(p.view.clone());
            p.metrics.register_pipeline_metrics();
            if settings.process_metrics
                && let Err(e) = p.metrics.register_process_metrics()
            {
                process_metrics = Some(e.to_string());
            }
        }
        Announcement {
            settings: Some(settings),
            warnings: self.inner.warnings.clone(),
            process_metrics,
        }
    }

    /// The configuration values that were unusable and replaced by defaults.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.inner.warnings
    }

    /// The tracer provider (`None` when disabled or after shutdown).
    pub fn tracer_provider(&self) -> Option<SdkTracerProvider> {
        self.inner
            .lock()
            .providers
            .as_ref()
            .and_then(|p| p.tracer.clone())
    }

    /// The meter provider (`None` when metrics are disabled or after shutdown).
    pub fn meter_provider(&self) -> Option<SdkMeterProvider> {
        self.inner
            .lock()
            .providers
            .as_ref()
            .and_then(|p| p.meter.clone())
    }

    /// The meter provider with its pull reader, for reading metrics back (`None` when the SDK is
    /// disabled or after shutdown). Built even when no metrics are exported.
    pub fn metrics(&self) -> Option<crate::metrics::Metrics> {
        self.inner
            .lock()
            .providers
            .as_ref()
            .map(|p| p.metrics.clone())
    }

    /// The local view's stores (`None` when `LOOKOUT_VIEW=off`, the SDK is disabled, or after
    /// shutdown): what lookout-admin's `/view/` pages read.
    pub fn view(&self) -> Option<crate::view::View> {
        self.inner.lock().providers.as_ref().and_then(|p| p.view.clone())
    }

    /// The logger provider (`None` when logs are disabled or after shutdown).
    pub fn logger_provider(&self) -> Option<SdkLoggerProvider> {
        self.inner
            .lock()
            .providers
            .as_ref()
            .and_then(|p| p.logger.clone())
    }

    /// Flushes and stops every signal, within the shutdown deadline (default 5 s), without
    /// blocking the async runtime it is awaited on: the flush runs on a thread of its own.
    /// In an async `main`, call this before the guard is dropped (dropping it shuts down too,
    /// but blocks the thread that drops it until the deadline at most).
    ///
    /// Returns what was exported; an error when the deadline passed or anything was lost (the
    /// error carries the same report). Safe to call more than once, and from several tasks:
    /// later calls return the first outcome. Works with any executor.
    pub async fn shutdown(&self) -> Result<ShutdownReport, ShutdownError> {
        if let Some(outcome) = &self.inner.lock().outcome {
            return outcome.clone();
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("lookout-shutdown".into())
            .spawn(move || {
                let _ = tx.send(inner.shutdown());
            });
        match spawned {
            Ok(_) => match rx.await {
                Ok(outcome) => outcome,
                // The thread panicked (it does not): say so as the deadline it could not keep.
                Err(_) => Err(ShutdownError::DeadlineExceeded {
                    deadline: self.inner.shutdown_timeout,
                    report: ShutdownReport::now(Duration::ZERO),
                }),
            },
            // No thread to be had: block this one rather than lose the flush.
            Err(_) => self.inner.shutdown(),
        }
    }

    /// [`shutdown`](Self::shutdown) for synchronous code: blocks the calling thread until every
    /// signal is flushed or the deadline passes. In an async `main`, `.await` [`shutdown`]
    /// instead.
    ///
    /// [`shutdown`]: Self::shutdown
    pub fn blocking_shutdown(&self) -> Result<ShutdownReport, ShutdownError> {
        self.inner.shutdown()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The work of [`Telemetry::blocking_shutdown`].
    fn shutdown(&self) -> Result<ShutdownReport, ShutdownError> {
        // What lookout said at the start goes out with the rest (it only logs: quick).
        let announcing = self
            .announcing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = announcing {
            let _ = thread.join();
        }
        let mut state = self.lock();
        if let Some(outcome) = &state.outcome {
            return outcome.clone();
        }
        let started = Instant::now();
        let deadline = started + self.shutdown_timeout;
        let mut finished_in_time = true;
        if let Some(p) = state.providers.take() {
            p.runtime.set_deadline(deadline);
            let (done, results) = mpsc::channel::<()>();
            let mut pending = 0;
            let mut run = |name: &str, work: Box<dyn FnOnce() + Send>| {
                let done = done.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("lookout-shutdown-{name}"))
                    .spawn(move || {
                        // The last exports' transport, as on the export threads.
                        let _suppressed = opentelemetry::Context::enter_telemetry_suppressed_scope();
                        work();
                        let _ = done.send(());
                    });
                if spawned.is_ok() {
                    pending += 1;
                }
            };
            let limit = self.shutdown_timeout;
            if let Some(tp) = p.tracer.clone() {
                run(
                    "traces",
                    Box::new(move || drop(tp.shutdown_with_timeout(limit))),
                );
            }
            if let Some(lp) = p.logger.clone() {
                run(
                    "logs",
                    Box::new(move || drop(lp.shutdown_with_timeout(limit))),
                );
            }
            let mp = p.metrics.provider().clone();
            run(
                "metrics",
                Box::new(move || drop(mp.shutdown_with_timeout(limit))),
            );
            for _ in 0..pending {
                let left = deadline.saturating_duration_since(Instant::now());
                if results.recv_timeout(left).is_err() {
                    finished_in_time = false;
                    break;
                }
            }
            p.runtime.stop();
            crate::metrics::clear_global();
            if let Some(view) = &p.view {
                view.store.stop();
                crate::view::set_global(None);
            }
        }
        let report = ShutdownReport::now(started.elapsed());
        let outcome = if !finished_in_time {
            Err(ShutdownError::DeadlineExceeded {
                deadline: self.shutdown_timeout,
                report,
            })
        } else if report.anything_lost() {
            Err(ShutdownError::DataLost { report })
        } else {
            Ok(report)
        };
        state.outcome = Some(outcome.clone());
        outcome
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if self.inner.lock().outcome.is_none()
            && let Err(e) = self.inner.shutdown()
        {
            tracing::warn!(target: "lookout", "{e}");
        }
    }
}

/// What one signal exported and lost by shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignalReport {
    /// Items the destination accepted.
    pub exported: u64,
    /// Items that never got there: failed exports, full queues, the deadline.
    pub lost: u64,
}

/// What [`Telemetry::shutdown`] exported and lost, per signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Spans.
    pub traces: SignalReport,
    /// Metric data points.
    pub metrics: SignalReport,
    /// Log records.
    pub logs: SignalReport,
    /// How long shutdown took.
    pub elapsed: Duration,
    /// Why metrics stopped being collected, when an observable callback registered on the SDK
    /// directly panicked and poisoned its pipeline ([`crate::metrics::poisoned`]): every metric
    /// since then is lost, in numbers no one can count. Shutdown then returns
    /// [`crate::ShutdownError::DataLost`].
    pub metrics_poisoned: Option<String>,
}

impl ShutdownReport {
    fn now(elapsed: Duration) -> Self {
        let stats = COUNTERS.snapshot();
        let queued = |s: crate::SignalStats| SignalReport {
            exported: s.exported,
            lost: s.accepted.saturating_sub(s.exported).max(s.failed),
        };
        ShutdownReport {
            traces: queued(stats.traces),
            // Metric points are not queued, so the loss is what failed plus what an export
            // abandoned at the deadline was carrying.
            metrics: SignalReport {
                exported: stats.metrics.exported,
                lost: stats.metrics.failed + stats.metrics.in_flight,
            },
            logs: queued(stats.logs),
            elapsed,
            metrics_poisoned: crate::metrics::poisoned(),
        }
    }

    /// Whether anything was lost: items, or metrics to a poisoned pipeline.
    pub fn anything_lost(&self) -> bool {
        self.lost() > 0 || self.metrics_poisoned.is_some()
    }

    /// Items lost over all signals.
    pub fn lost(&self) -> u64 {
        self.traces.lost + self.metrics.lost + self.logs.lost
    }

    /// The report of one signal.
    pub fn signal(&self, signal: Signal) -> SignalReport {
        match signal {
            Signal::Traces => self.traces,
            Signal::Metrics => self.metrics,
            Signal::Logs => self.logs,
        }
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, signal) in Signal::ALL.iter().enumerate() {
            let r = self.signal(*signal);
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{signal}: {} exported, {} lost", r.exported, r.lost)?;
            if *signal == Signal::Metrics && self.metrics_poisoned.is_some() {
                write!(f, " and every metric since the SDK's pipeline was poisoned")?;
            }
        }
        write!(f, " (in {} ms)", self.elapsed.as_millis())
    }
}

/// Starts telemetry from the environment alone; see [`TelemetryBuilder`] for settings in code.
pub fn init() -> Result<Telemetry, InitError> {
    Telemetry::builder().init()
}
