//! Run with: `cargo bench -p lookout --bench view_cost`
//!
//! What the local view's stores cost per span and per log record, against what a span (and a log
//! record) costs through lookout's whole pipeline, in one run:
//!
//! - **The whole pipeline** (`LOOKOUT_VIEW=off`): one process per repeat (lookout's pipeline is
//!   global) sends N spans of 5 attributes and 1 event (each its own trace; the event is also a log
//!   record, as lookout's log bridge makes it), then N log records of 3 fields, through `init()`
//!   with a discarding span and log exporter given in code, and measures the CPU time of every
//!   thread of the process (`/proc/self/task/*/schedstat`) until the batch processors have flushed
//!   the last: the application thread and the batch workers. Nothing is dropped (checked).
//! - **The stores**: the same spans and records, in batches of 512, fed to a view as the batch
//!   worker feeds it (`lookout::view::__bench`), timed in this process: with the default bounds
//!   (new traces stored in full at most 200 a second, records 1,000; every span counted in the
//!   span summary), and with every item stored (no rate share: each converted, redacted, stored,
//!   and the oldest evicted), the worst case.

use std::time::Duration;

use lookout::opentelemetry_sdk::error::OTelSdkResult;
use lookout::opentelemetry_sdk::logs::{LogBatch, LogExporter};
use lookout::opentelemetry_sdk::trace::{SpanData, SpanExporter};

const N: u64 = 100_000;
const REPEATS: usize = 7;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

impl LogExporter for Discard {
    async fn export(&self, _: LogBatch<'_>) -> OTelSdkResult {
        Ok(())
    }
}

/// CPU time of every live thread of this process.
fn cpu() -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

fn span(i: u64) {
    let span = tracing::info_span!(
        "handle",
        http.request.method = "GET",
        http.route = "/users/{id}",
        user.id = i,
        region = "eu-west-1",
        attempt = 1_i64
    );
    span.in_scope(|| tracing::info!(target: "bench::span", rows = 3, "queried"));
}

/// Runs one case in this process: prints `spans_ns logs_ns` per item.
fn child() {
    let options = lookout::view::ViewOptions::off();
    let telemetry = lookout::Telemetry::builder()
        .env_vars([
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000000"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "1000000"),
            // The events of the spans are span events, not log records.
            ("RUST_LOG", "info,bench::span=info"),
        ])
        .span_exporter(Discard)
        .log_exporter(Discard)
        .view(options)
        .console(lookout::ConsoleFormat::Off)
        .init()
        .expect("init");
    let tracer = telemetry.tracer_provider().expect("a tracer provider");
    let logger = telemetry.logger_provider().expect("a logger provider");
    for i in 0..10_000 {
        span(i);
    }
    let _ = tracer.force_flush();
    let start = cpu();
    for i in 0..N {
        span(i);
    }
    let _ = tracer.force_flush();
    let spans = cpu() - start;
    let start = cpu();
    for i in 0..N {
        tracing::info!(target: "bench::log", order = i, user = "u-7", amount = 12.5, "order placed");
    }
    let _ = logger.force_flush();
    let logs = cpu() - start;
    let stats = lookout::stats();
    assert_eq!(stats.traces.dropped + stats.logs.dropped, 0, "{stats:?}");
    println!(
        "{} {}",
        spans.as_nanos() / u128::from(N),
        logs.as_nanos() / u128::from(N)
    );
    let _ = telemetry.blocking_shutdown();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per span and per log record through the whole pipeline, ns: the median of REPEATS processes.
fn whole_pipeline() -> (f64, f64) {
    let exe = std::env::current_exe().expect("this bench");
    let (mut spans, mut logs) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let out = std::process::Command::new(&exe)
            .env("LOOKOUT_VIEW_BENCH_CHILD", "1")
            .output()
            .expect("run the pipeline");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text
            .split_whitespace()
            .map(|n| n.parse::<f64>().expect("ns"));
        spans.push(parts.next().expect("span ns"));
        logs.push(parts.next().expect("log ns"));
    }
    (median(spans), median(logs))
}

const BATCH: usize = 512;
const BATCHES: usize = 40;

/// Spans shaped like `span()`'s, each its own trace, ids from `first`.
fn span_batches(first: u64) -> Vec<Vec<SpanData>> {
    use lookout::opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use lookout::opentelemetry::{InstrumentationScope, KeyValue};
    use lookout::opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    let now = std::time::SystemTime::now();
    (0..BATCHES)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let n = first + (b * BATCH + i) as u64;
                    let mut events = SpanEvents::default();
                    events
                        .events
                        .push(lookout::opentelemetry::trace::Event::new(
                            "queried",
                            now,
                            vec![KeyValue::new("rows", 3_i64)],
                            0,
                        ));
                    SpanData {
                        span_context: SpanContext::new(
                            TraceId::from(u128::from(n) + 1),
                            SpanId::from(n + 1),
                            TraceFlags::SAMPLED,
                            false,
                            TraceState::default(),
                        ),
                        parent_span_id: SpanId::INVALID,
                        parent_span_is_remote: false,
                        span_kind: SpanKind::Internal,
                        name: "handle".into(),
                        start_time: now,
                        end_time: now + Duration::from_micros(50),
                        attributes: vec![
                            KeyValue::new("http.request.method", "GET"),
                            KeyValue::new("http.route", "/users/{id}"),
                            KeyValue::new("user.id", n as i64),
                            KeyValue::new("region", "eu-west-1"),
                            KeyValue::new("attempt", 1_i64),
                        ],
                        dropped_attributes_count: 0,
                        events,
                        links: SpanLinks::default(),
                        status: Status::Unset,
                        instrumentation_scope: InstrumentationScope::builder("bench").build(),
                    }
                })
                .collect()
        })
        .collect()
}

/// The stores' cost per span and per log record, ns: the median of REPEATS fresh views.
fn stores(options: &lookout::view::ViewOptions) -> (f64, f64) {
    use lookout::opentelemetry::InstrumentationScope;
    use lookout::opentelemetry::logs::{
        AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
    };
    use lookout::view::__bench::{detached, feed_logs, feed_spans};
    let provider = lookout::opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
    let logger = provider.logger("bench");
    let records: Vec<_> = (0..BATCH)
        .map(|i| {
            let mut r = logger.create_log_record();
            r.set_body(AnyValue::from("order placed"));
            r.set_severity_number(Severity::Info);
            r.set_timestamp(std::time::SystemTime::now());
            r.add_attribute("order", i as i64);
            r.add_attribute("user", "u-7");
            r.add_attribute("amount", 12.5);
            r
        })
        .collect();
    let scope = InstrumentationScope::builder("bench").build();
    let batch: Vec<_> = records.iter().map(|r| (r, &scope)).collect();
    let (mut spans, mut logs) = (Vec::new(), Vec::new());
    for rep in 0..REPEATS {
        let view = detached(options.clone());
        let batches = span_batches((rep * BATCH * BATCHES) as u64);
        let start = std::time::Instant::now();
        for b in &batches {
            feed_spans(&view, b);
        }
        spans.push(start.elapsed().as_nanos() as f64 / (BATCH * BATCHES) as f64);
        let start = std::time::Instant::now();
        for _ in 0..BATCHES {
            feed_logs(&view, &LogBatch::new(&batch));
        }
        logs.push(start.elapsed().as_nanos() as f64 / (BATCH * BATCHES) as f64);
    }
    (median(spans), median(logs))
}

fn main() {
    if std::env::var("LOOKOUT_VIEW_BENCH_CHILD").is_ok() {
        child();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (span, log) = whole_pipeline();
    let defaults = lookout::view::ViewOptions::default();
    let mut all = lookout::view::ViewOptions::default();
    all.traces_per_second = u32::MAX;
    all.logs_per_second = u32::MAX;
    let rows = [
        ("default bounds", stores(&defaults)),
        ("every item stored", stores(&all)),
    ];
    println!(
        "whole pipeline, view off: {:.2} µs per span (with its event and log record), {:.2} µs per log record \
         (CPU of every thread, median of {REPEATS} processes of {N} items)",
        span / 1e3,
        log / 1e3
    );
    println!(
        "| stores | per span | of the span's pipeline cost | per log record | of the record's pipeline cost |"
    );
    println!("|---|---|---|---|---|");
    for (name, (s, l)) in rows {
        println!(
            "| {name} | {:.0} ns | {:.1} % | {:.0} ns | {:.1} % |",
            s,
            s / span * 100.0,
            l,
            l / log * 100.0
        );
    }
}
