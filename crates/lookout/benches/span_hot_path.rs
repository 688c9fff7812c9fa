//! Run with: `cargo bench -p lookout --bench span_hot_path`
//!
//! The cost of one span (created with one attribute, entered, exited, closed) through:
//! - `tracing_opentelemetry_defaults`: the tracing-opentelemetry layer as most setups use it, with
//!   its optional location, thread and busy/idle attributes on (their defaults);
//! - `tracing_opentelemetry_lean`: the same layer with those three off;
//! - `lean_with_env_filter`, `lean_with_per_layer_filter`: the lean layer behind a global
//!   `EnvFilter("info")`, or behind a per-layer level filter: what each kind of filter costs;
//! - `lookout`: lookout's whole pipeline as `init` installs it (filter, console off, the span
//!   layer, the u64 fix, the log bridge).
//!
//! Spans go to a tracer provider with no exporter in every case, so what is measured is the
//! span hot path in the application thread, not export.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lookout::opentelemetry::trace::TracerProvider as _;
use lookout::opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use lookout::{ConsoleFormat, ExporterKind, Signal};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;

/// tracing-opentelemetry's layer with its optional per-span attributes off.
fn lean_layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("bench"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

fn one_span() {
    tracing::info_span!("work", id = 7_i64).in_scope(|| black_box(1));
}

fn spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");
    let provider = SdkTracerProvider::builder().build();

    let defaults = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(defaults, || {
        group.bench_function("tracing_opentelemetry_defaults", |b| b.iter(one_span));
    });

    let lean = tracing_subscriber::registry().with(lean_layer(&provider));
    tracing::subscriber::with_default(lean, || {
        group.bench_function("tracing_opentelemetry_lean", |b| b.iter(one_span));
    });

    let lean_filtered = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(lean_layer(&provider));
    tracing::subscriber::with_default(lean_filtered, || {
        group.bench_function("lean_with_env_filter", |b| b.iter(one_span));
    });

    let lean_layer_filter = tracing_subscriber::registry()
        .with(lean_layer(&provider).with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    tracing::subscriber::with_default(lean_layer_filter, || {
        group.bench_function("lean_with_per_layer_filter", |b| b.iter(one_span));
    });

    let telemetry = lookout::Telemetry::builder()
        .console(ConsoleFormat::Off)
        .exporter(Signal::Traces, ExporterKind::None)
        .exporter(Signal::Metrics, ExporterKind::None)
        .exporter(Signal::Logs, ExporterKind::None)
        // No batch processor, as in the other rows: the local view (on by default) would feed
        // one even with every exporter off.
        .env_vars([("LOOKOUT_VIEW", "off")])
        .init()
        .expect("init");
    group.bench_function("lookout", |b| b.iter(one_span));
    group.finish();
    drop(telemetry.blocking_shutdown());
}

/// The export side's redaction (lookout's OTLP client, on the export thread): a batch of 512
/// spans copied, with and without redaction; the difference over 512 is its cost per span.
fn redaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("redaction_512_spans");
    let mut copy_only = lookout::__fuzz::redaction_batch(512, false, false);
    group.bench_function("copy", |b| b.iter(&mut copy_only));
    let mut clean = lookout::__fuzz::redaction_batch(512, true, false);
    group.bench_function("copy_and_redact_no_secrets", |b| b.iter(&mut clean));
    let mut redacted = lookout::__fuzz::redaction_batch(512, true, true);
    group.bench_function("copy_and_redact_two_secrets_a_span", |b| {
        b.iter(&mut redacted)
    });
    group.finish();
}

criterion_group!(benches, spans, redaction);
criterion_main!(benches);
