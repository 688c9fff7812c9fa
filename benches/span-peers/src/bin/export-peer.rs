//! Run with: `cargo run --release -p bench-span-peers --bin export-peer -- <stack> <spans per
//! second> <seconds>`, the destination in `OTEL_EXPORTER_OTLP_ENDPOINT` and
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`).
//!
//! The export ladder's peers (`scripts/export-ladder`, `STACKS`): the spans of
//! `tests/src/bin/e2e-load` (the `#[instrument]` shape: 5 attributes, 1 event) at a fixed rate,
//! through a stock stack into a real collector, so that lookout's CPU per exported span has
//! something to be read against on the same host in the same run:
//! - `tracing-otel-lean`: tracing, tracing-opentelemetry's layer with lookout's options (no
//!   location, thread or busy/idle attributes), the SDK's batch span processor and
//!   opentelemetry-otlp's exporter (tonic or reqwest's blocking client), all at their defaults;
//! - `otel-sdk`: the OpenTelemetry API used directly, same processor and exporter.
//!
//! Prints `SUMMARY created=.. exported=.. failed=.. dropped=.. cpu_ms=.. seconds=..` like
//! e2e-load: `exported` is what the exporter reported sent, `failed` what it reported failing,
//! `dropped` the rest (the SDK's processor drops from a full queue without counting).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;

/// Counts what the stock exporter reports.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    exported: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.exported.fetch_add(n, Relaxed),
            Err(_) => self.failed.fetch_add(n, Relaxed),
        };
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

fn exporter() -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").unwrap_or_else(|_| "grpc".into());
    let built = match protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build(),
        "http/protobuf" => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build(),
        other => return Err(format!("protocol {other:?}: grpc or http/protobuf")),
    };
    built.map_err(|e| e.to_string())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("export-peer: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: export-peer <tracing-otel-lean|otel-sdk> <spans per second> <seconds>";
    let stack = args.first().ok_or(usage)?.clone();
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).ok_or(usage)?;
    let seconds: u64 = args
        .get(2)
        .and_then(|a| a.parse::<u64>().ok())
        .ok_or(usage)?
        .max(1);
    let unthrottled = rate == 0;
    let rate = if unthrottled { 1_000_000 } else { rate };
    let cpu_start = cpu_time::ProcessTime::now();
    // The workspace builds reqwest without a TLS crypto provider; it wants one even for http://.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // tonic's channel runs its connection on a Tokio runtime: one worker, as lookout's export
    // runtime has. (reqwest's blocking client makes its own, outside any runtime.)
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let grpc = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").map_or(true, |p| p == "grpc");
    let inner = if grpc {
        let _entered = runtime.enter();
        exporter()?
    } else {
        exporter()?
    };
    let (exported, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let exporter = Counting {
        inner,
        exported: exported.clone(),
        failed: failed.clone(),
    };
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_service_name("export-peer")
                .build(),
        )
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("export-peer");
    let tracing_stack = match stack.as_str() {
        "tracing-otel-lean" => true,
        "otel-sdk" => false,
        other => return Err(format!("unknown stack {other:?}; {usage}")),
    };
    let _subscriber = tracing_stack.then(|| {
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false);
        tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
    });

    let per_tick = (rate / 1000).max(1);
    let tick = Duration::from_secs_f64(per_tick as f64 / rate as f64);
    let start = Instant::now();
    let mut next = start;
    let mut n: u64 = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..per_tick {
            if tracing_stack {
                let span = tracing::info_span!(
                    "handle",
                    order.id = n,
                    customer = "c-42",
                    amount = 12.5,
                    retry = false,
                    region = "eu-west-1"
                );
                span.in_scope(|| tracing::info!(step = "validated", "order checked"));
            } else {
                let mut span = tracer
                    .span_builder("handle")
                    .with_attributes([
                        KeyValue::new("order.id", n as i64),
                        KeyValue::new("customer", "c-42"),
                        KeyValue::new("amount", 12.5),
                        KeyValue::new("retry", false),
                        KeyValue::new("region", "eu-west-1"),
                    ])
                    .start(&tracer);
                span.add_event("order checked", vec![KeyValue::new("step", "validated")]);
                span.end();
            }
            n += 1;
        }
        next += tick;
        if unthrottled {
            next = Instant::now();
        } else if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let sending = start.elapsed().as_secs_f64();
    drop(_subscriber);
    let _ = provider.shutdown();
    let cpu_ms = cpu_start.elapsed().as_millis();
    let (exported, failed) = (exported.load(Relaxed), failed.load(Relaxed));
    println!(
        "SUMMARY created={n} exported={exported} failed={failed} dropped={} cpu_ms={cpu_ms} seconds={sending:.2}",
        n.saturating_sub(exported + failed)
    );
    Ok(())
}
