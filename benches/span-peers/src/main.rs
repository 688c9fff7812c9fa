//! Run with: `cargo run --release -p bench-span-peers` (`SPANS=<per thread>`, default 200,000;
//! `ROUNDS=<n>`, default 1).
//!
//! What one span costs the service in five stacks, each case in a process of its own (so no
//! stack inherits another's warm caches, global subscriber or threads), one after the other in
//! one run:
//! - `lookout`: `lookout::init`'s whole pipeline (its `RUST_LOG` filter, the span layer, the u64
//!   fix, the log bridge's layer, lookout's counted queue and span fixes) with a discarding span
//!   exporter plugged in (`TelemetryBuilder::span_exporter`); metrics, logs, console, view off;
//! - `tracing-otel`: the stock stack as most services set it up: `EnvFilter("info")` and
//!   tracing-opentelemetry's layer with its defaults (location, thread and busy/idle attributes);
//! - `tracing-otel-lean`: the same layer with those three off, as lookout sets it;
//! - `otel-sdk`: the OpenTelemetry API used directly (no tracing);
//! - `fastrace`: fastrace's spans, properties and events, its own collector thread;
//! - `lookout-otlp`: lookout's pipeline as users run it, with its own OTLP span processor (each
//!   span encoded on the thread that ends it) sending `http/protobuf` to a discarding endpoint in
//!   the same process (an axum route on 127.0.0.1 that reads each request and answers 200). Its
//!   CPU figure includes that endpoint's; its ratio is to the same baseline.
//!
//! `STACKS=<comma-separated>` runs some of them (default: all).
//!
//! Every OpenTelemetry stack has the SDK's batch span processor with its default settings (a
//! 2,048-span queue) and a discarding exporter that counts what it gets; fastrace a discarding
//! reporter, called every 10 ms (its channel holds 10,240 spans). A thread sending spans as fast
//! as it can outruns the batch worker at times: what was dropped from a full queue shows in
//! `exported` (a dropped span costs less than an exported one, so a low figure flatters that
//! row's CPU). A queue large enough to hold a whole run was tried and measures something else:
//! hundreds of megabytes of spans waiting, every span in fresh memory (2-3× slower in every
//! stack). Two span shapes:
//! `bare` (a span, entered and closed) and `rich` (the `#[instrument]` shape of
//! `tests/src/bin/e2e-load`: 5 attributes, one of them a `u64`, and one event), on 1 and 2 threads
//! each sending `SPANS` spans after a tenth as many to warm up.
//!
//! Per case: the time per span on the sending thread (`span ns`, wall clock, mean of the
//! threads; on 2 threads it includes the time the batch worker and exporter took the sending
//! threads' cores, and on a shared host the time the hypervisor did), the sending thread's own
//! CPU time per span (what it spent, contention for shared cache lines and locks included, its
//! waits for a core not), the process's CPU time per span (`CPU ns`: every thread — the batch worker and
//! exporter included — from the first span to the end of shutdown, over every span sent), and
//! the spans the exporter got. Read the ratios (to `tracing-otel-lean`, same shape and threads;
//! 2 threads over 1): the absolute figures move with the machine and its neighbours.

use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;

const STACKS: [&str; 6] = [
    "lookout",
    "tracing-otel",
    "tracing-otel-lean",
    "otel-sdk",
    "fastrace",
    "lookout-otlp",
];
const SHAPES: [&str; 2] = ["bare", "rich"];
const BASELINE: &str = "tracing-otel-lean";

/// Spans the exporter (or reporter) was given.
static EXPORTED: AtomicU64 = AtomicU64::new(0);

/// Discards spans, counting them.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        EXPORTED.fetch_add(batch.len() as u64, Relaxed);
        drop(black_box(batch));
        Ok(())
    }
}

/// An OTLP/HTTP endpoint on 127.0.0.1 that reads each request whole and answers 200 with an
/// empty `ExportTraceServiceResponse`, on a thread of its own; its address.
fn discarding_endpoint() -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the discarding endpoint");
        runtime.block_on(async move {
            let listener =
                tokio::net::TcpListener::from_std(listener).expect("the endpoint's listener");
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(|body: axum::body::Bytes| async move {
                    drop(black_box(body));
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(format!("http://{addr}"))
}

struct DiscardReporter;

impl fastrace::collector::Reporter for DiscardReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        // Properties and events are records of their own; count the spans.
        let spans_only = spans.iter().filter(|s| s.name == "handle").count();
        EXPORTED.fetch_add(spans_only as u64, Relaxed);
        drop(black_box(spans));
    }
}

fn tracing_bare() {
    tracing::info_span!("handle").in_scope(|| black_box(()));
}

fn tracing_rich(n: u64) {
    let span = tracing::info_span!(
        "handle",
        order.id = n,
        customer = "c-42",
        amount = 12.5,
        retry = false,
        region = "eu-west-1"
    );
    span.in_scope(|| tracing::info!(step = "validated", "order checked"));
}

/// How one stack makes one span of a shape.
#[derive(Clone)]
enum Maker {
    Tracing,
    Sdk(opentelemetry_sdk::trace::SdkTracer),
    Fastrace,
}

impl Maker {
    fn span(&self, rich: bool, n: u64) {
        match (self, rich) {
            (Maker::Tracing, false) => tracing_bare(),
            (Maker::Tracing, true) => tracing_rich(n),
            (Maker::Sdk(tracer), false) => {
                let mut span = tracer.start("handle");
                black_box(&mut span);
                span.end();
            }
            (Maker::Sdk(tracer), true) => {
                let mut span = tracer
                    .span_builder("handle")
                    .with_attributes([
                        KeyValue::new("order.id", n as i64),
                        KeyValue::new("customer", "c-42"),
                        KeyValue::new("amount", 12.5),
                        KeyValue::new("retry", false),
                        KeyValue::new("region", "eu-west-1"),
                    ])
                    .start(tracer);
                span.add_event("order checked", vec![KeyValue::new("step", "validated")]);
                span.end();
            }
            (Maker::Fastrace, false) => {
                let root = fastrace::Span::root("handle", fastrace::prelude::SpanContext::random());
                let _guard = root.set_local_parent();
                black_box(&root);
            }
            (Maker::Fastrace, true) => {
                let root = fastrace::Span::root("handle", fastrace::prelude::SpanContext::random())
                    .with_properties(|| {
                        [
                            ("order.id", n.to_string()),
                            ("customer", "c-42".to_owned()),
                            ("amount", 12.5.to_string()),
                            ("retry", false.to_string()),
                            ("region", "eu-west-1".to_owned()),
                        ]
                    });
                let _guard = root.set_local_parent();
                fastrace::local::LocalSpan::add_event(
                    fastrace::Event::new("order checked").with_property(|| ("step", "validated")),
                );
            }
        }
    }
}

/// Shuts lookout down; what it exported is the count (lookout's own: with the `Discard` exporter
/// plugged in, the same figure).
fn shut_down(telemetry: lookout::Telemetry) -> Box<dyn FnOnce()> {
    Box::new(move || {
        let _ = telemetry.blocking_shutdown();
        EXPORTED.store(lookout::stats().traces.exported, Relaxed);
    })
}

/// One case, in this process: prints a `CASE` line.
fn case(stack: &str, shape: &str, threads: usize, spans: u64) -> Result<(), String> {
    let rich = match shape {
        "bare" => false,
        "rich" => true,
        other => return Err(format!("unknown shape {other:?}: bare or rich")),
    };
    let lean = |provider: &SdkTracerProvider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("bench"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
    };
    let provider = || {
        SdkTracerProvider::builder()
            .with_batch_exporter(Discard)
            .build()
    };
    // What ends the pipeline once every span is sent: flushes and stops it.
    let (maker, end): (Maker, Box<dyn FnOnce()>) = match stack {
        "lookout" => {
            let telemetry = lookout::Telemetry::builder()
                .span_exporter(Discard)
                .console(lookout::ConsoleFormat::Off)
                .init()
                .map_err(|e| e.to_string())?;
            (Maker::Tracing, shut_down(telemetry))
        }
        "lookout-otlp" => {
            let endpoint = discarding_endpoint()?;
            let telemetry = lookout::Telemetry::builder()
                // In place of the process environment: the same quiet pipeline as the other
                // cases (spans only), sent to the discarding endpoint.
                .env_vars(
                    [
                        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
                        ("OTEL_METRICS_EXPORTER", "none".to_owned()),
                        ("OTEL_LOGS_EXPORTER", "none".to_owned()),
                        ("LOOKOUT_CONSOLE", "off".to_owned()),
                        ("LOOKOUT_VIEW", "off".to_owned()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    // The batch settings may be given (`scripts/span-instructions` sets a queue
                    // that holds every span: under valgrind the worker runs late).
                    .chain(std::env::vars().filter(|(k, _)| k.starts_with("OTEL_BSP_"))),
                )
                .console(lookout::ConsoleFormat::Off)
                .init()
                .map_err(|e| e.to_string())?;
            (Maker::Tracing, shut_down(telemetry))
        }
        "tracing-otel" | "tracing-otel-lean" => {
            let provider = provider();
            let registry =
                tracing_subscriber::registry().with(tracing_subscriber::EnvFilter::new("info"));
            if stack == "tracing-otel" {
                let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
                tracing::subscriber::set_global_default(registry.with(layer))
            } else {
                tracing::subscriber::set_global_default(registry.with(lean(&provider)))
            }
            .map_err(|e| e.to_string())?;
            (
                Maker::Tracing,
                Box::new(move || {
                    let _ = provider.shutdown();
                }),
            )
        }
        "otel-sdk" => {
            let provider = provider();
            (
                Maker::Sdk(provider.tracer("bench")),
                Box::new(move || {
                    let _ = provider.shutdown();
                }),
            )
        }
        "fastrace" => {
            fastrace::set_reporter(
                DiscardReporter,
                fastrace::collector::Config::default().report_interval(Duration::from_millis(10)),
            );
            (Maker::Fastrace, Box::new(fastrace::flush))
        }
        other => return Err(format!("unknown stack {other:?}: one of {STACKS:?}")),
    };

    let warm_up = spans / 10;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let cpu = cpu_time::ProcessTime::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let maker = maker.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut n = t as u64 * 1_000_000_000;
                for _ in 0..warm_up {
                    maker.span(rich, n);
                    n += 1;
                }
                barrier.wait();
                let start = Instant::now();
                let thread_cpu = cpu_time::ThreadTime::now();
                for _ in 0..spans {
                    maker.span(rich, n);
                    n += 1;
                }
                (start.elapsed(), thread_cpu.elapsed())
            })
        })
        .collect();
    barrier.wait();
    let mut elapsed = Duration::ZERO;
    let mut thread_cpu = Duration::ZERO;
    for worker in workers {
        let (wall, cpu) = worker.join().map_err(|_| "a sending thread panicked")?;
        elapsed += wall;
        thread_cpu += cpu;
    }
    end();
    let cpu = cpu.elapsed();
    let sent = (spans + warm_up) * threads as u64;
    println!(
        "CASE stack={stack} shape={shape} threads={threads} span_ns={:.0} thread_cpu_ns={:.0} cpu_ns={:.0} exported={} sent={sent}",
        elapsed.as_nanos() as f64 / threads as f64 / spans as f64,
        thread_cpu.as_nanos() as f64 / threads as f64 / spans as f64,
        cpu.as_nanos() as f64 / sent as f64,
        EXPORTED.load(Relaxed),
    );
    Ok(())
}

struct Row {
    stack: String,
    shape: String,
    threads: usize,
    span_ns: f64,
    thread_cpu_ns: f64,
    cpu_ns: f64,
    exported: u64,
    sent: u64,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn run_case(stack: &str, shape: &str, threads: usize, spans: u64) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args([
            "case",
            stack,
            shape,
            &threads.to_string(),
            &spans.to_string(),
        ])
        // The same quiet pipeline for every stack: spans only, nothing printed.
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("LOOKOUT_CONSOLE", "off")
        .env("LOOKOUT_VIEW", "off")
        .env_remove("RUST_LOG")
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("CASE "))
        .ok_or_else(|| {
            format!(
                "{stack} {shape} {threads}: no result\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let num = |name: &str| -> Result<f64, String> {
        field(line, name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} missing in {line}"))
    };
    Ok(Row {
        stack: stack.to_owned(),
        shape: shape.to_owned(),
        threads,
        span_ns: num("span_ns")?,
        thread_cpu_ns: num("thread_cpu_ns")?,
        cpu_ns: num("cpu_ns")?,
        exported: num("exported")? as u64,
        sent: num("sent")? as u64,
    })
}

fn compare(spans: u64, rounds: usize, stacks: &[&str]) -> Result<(), String> {
    let mut rows: Vec<Row> = Vec::new();
    for round in 0..rounds {
        for shape in SHAPES {
            for threads in [1, 2] {
                for &stack in stacks {
                    let row = run_case(stack, shape, threads, spans)?;
                    eprintln!(
                        "round {} {stack} {shape} {threads}: {:.0} ns per span, {:.0} ns sending thread CPU, {:.0} ns process CPU",
                        round + 1,
                        row.span_ns,
                        row.thread_cpu_ns,
                        row.cpu_ns
                    );
                    rows.push(row);
                }
            }
        }
    }
    // Medians over rounds.
    let median = |stack: &str, shape: &str, threads: usize, f: fn(&Row) -> f64| -> f64 {
        let mut v: Vec<f64> = rows
            .iter()
            .filter(|r| r.stack == stack && r.shape == shape && r.threads == threads)
            .map(f)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "| shape | threads | stack | span ns (sending thread, wall) | × {BASELINE} | span ns (sending thread, CPU) | × {BASELINE} | CPU ns per span (process) | × {BASELINE} | 2 threads ÷ 1 (wall) | 2 threads ÷ 1 (sending thread CPU) | 2 threads ÷ 1 (process CPU) | exported |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let figures: [fn(&Row) -> f64; 3] = [|r| r.span_ns, |r| r.thread_cpu_ns, |r| r.cpu_ns];
    for shape in SHAPES {
        for threads in [1, 2] {
            for &stack in stacks {
                let mut cells = Vec::new();
                for figure in figures {
                    let value = median(stack, shape, threads, figure);
                    let base = median(BASELINE, shape, threads, figure);
                    cells.push(format!("{value:.0} | {:.2}", value / base));
                }
                let scaling = figures
                    .iter()
                    .map(|&figure| {
                        if threads == 2 {
                            let one = median(stack, shape, 1, figure);
                            format!("{:.2}", median(stack, shape, 2, figure) / one)
                        } else {
                            String::new()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" | ");
                let exported = rows
                    .iter()
                    .filter(|r| r.stack == stack && r.shape == shape && r.threads == threads)
                    .map(|r| format!("{:.1} %", 100.0 * r.exported as f64 / r.sent as f64))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "| {shape} | {threads} | {stack} | {} | {scaling} | {exported} |",
                    cells.join(" | "),
                );
            }
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("case") if args.len() == 5 => match (args[3].parse(), args[4].parse()) {
            (Ok(threads), Ok(spans)) => case(&args[1], &args[2], threads, spans),
            _ => Err("usage: span-peers case <stack> <shape> <threads> <spans>".to_owned()),
        },
        None => {
            let env = |name: &str, default: u64| {
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default)
            };
            let chosen = std::env::var("STACKS").unwrap_or_default();
            let stacks: Vec<&str> = if chosen.trim().is_empty() {
                STACKS.to_vec()
            } else {
                chosen.split(',').map(str::trim).collect()
            };
            match stacks.iter().find(|s| !STACKS.contains(s)) {
                Some(unknown) => Err(format!("unknown stack {unknown:?} in STACKS: some of {STACKS:?}")),
                None => compare(
                    env("SPANS", 200_000).max(1),
                    env("ROUNDS", 1).max(1) as usize,
                    &stacks,
                ),
            }
        }
        _ => Err("usage: span-peers (compare every case) | span-peers case <stack> <shape> <threads> <spans>".to_owned()),
    };
    if let Err(e) = result {
        eprintln!("span-peers: {e}");
        std::process::exit(1);
    }
}
