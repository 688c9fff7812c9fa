//! Run with: `cargo run -p lookout-e2e --bin e2e-app -- tree`
//!
//! A small instrumented program configured only through the environment, as a service would be.
//! The end-to-end tests run it against a real collector. It prints machine-readable lines:
//! `WARNING <variable>`, `TICK <i>`, `STATS traces <exports ok> <exports failed> <last error> <dropped>`,
//! `STATS logs dropped <n>`, with `E2E_FULL_STATS` set `FULL <signal> accepted=.. exported=.. ...` and
//! `LAST_ERROR <message>`
//! (from `lookout::stats()`), and at the end `RESULT ok|deadline|lost <report>` and
//! `COUNTS <signal> <exported> <lost>` for each signal.

use std::time::Duration;

use lookout::opentelemetry::{KeyValue, global};
use tracing::{info, info_span, warn};

fn main() {
    // Like `#[tokio::main]`: the whole program, init and shutdown included, runs inside the
    // runtime when one is asked for. `ended`: init and the work run inside a runtime that is then
    // shut down; telemetry is shut down after it, outside any runtime.
    match std::env::var("E2E_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async { program() }),
        Ok("multi") => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async { program() }),
        Ok("ended") => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let telemetry = runtime.block_on(async { start_and_work() });
            drop(runtime);
            println!("RUNTIME_ENDED");
            finish(telemetry);
        }
        _ => program(),
    }
}

fn program() {
    let telemetry = start_and_work();
    finish(telemetry);
}

/// Starts telemetry and runs the scenario.
fn start_and_work() -> lookout::Telemetry {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("tree");

    let started = if std::env::var_os("E2E_OWN_REGISTRY").is_some() {
        own_registry()
    } else {
        lookout::init()
    };
    let telemetry = match started {
        Ok(t) => t,
        Err(e) => {
            println!("INIT_ERROR {e}");
            println!("INIT_ERROR_DEBUG {e:?}");
            std::process::exit(2);
        }
    };
    for w in telemetry.warnings() {
        println!("WARNING {}", w.variable);
    }

    match scenario {
        "tree" => tree(),
        "spans" => {
            // N spans (index 0..N), ended on THREADS threads at once (index i on thread i % THREADS).
            let n: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100);
            let threads: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
            std::thread::scope(|scope| {
                for t in 0..threads {
                    scope.spawn(move || {
                        for i in (t..n).step_by(threads as usize) {
                            info_span!("unit", index = i).in_scope(|| {});
                        }
                    });
                }
            });
        }
        "trickle" => {
            let n: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(50);
            let ticks = global::meter("e2e").u64_counter("e2e.ticks").build();
            for i in 0..n {
                info_span!("tick", index = i).in_scope(|| {});
                ticks.add(1, &[]);
                println!("TICK {i}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        "chatty" => {
            let n: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
            info_span!("chatty").in_scope(|| {
                for i in 0..n {
                    info!(i, "step");
                }
            });
        }
        "big" => {
            // N spans carrying a SIZE-byte field (as an `#[instrument]` argument would), then
            // one span whose field alone is HUGE bytes.
            let arg = |i: usize, d: usize| args.get(i).and_then(|n| n.parse().ok()).unwrap_or(d);
            let (n, size, huge) = (arg(1, 300), arg(2, 60_000), arg(3, 0));
            let payload = "p".repeat(size);
            for i in 0..n {
                info_span!("big", index = i, payload = %payload).in_scope(|| {});
            }
            if huge > 0 {
                info_span!("huge", payload = %"h".repeat(huge)).in_scope(|| {});
            }
        }
        "secrets" => secrets(),
        "propagate" => propagate(),
        "measured" => measured_calls(),
        other => println!("UNKNOWN_SCENARIO {other}"),
    }
    telemetry
}

/// What a user's own layer saw (`E2E_OWN_REGISTRY`).
static USER_SPANS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static USER_EVENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static USER_LOOKOUT_INFO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A user's layer of its own, with no filter: counts the spans and events of this program it sees
/// (it sees the transport crates' too), and lookout's INFO events.
struct Counting;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counting {
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attributes.metadata().target() == "e2e_app" {
            USER_SPANS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() == "e2e_app" {
            USER_EVENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else if meta.target() == "lookout" && *meta.level() == tracing::Level::INFO {
            USER_LOOKOUT_INFO.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// lookout's layer in a registry the program builds, beside a layer of its own.
fn own_registry() -> Result<lookout::Telemetry, lookout::InitError> {
    use tracing_subscriber::layer::SubscriberExt as _;
    let (layer, telemetry) = lookout::Telemetry::builder().layer()?;
    let subscriber = tracing_subscriber::registry().with(layer).with(Counting);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| lookout::InitError::AlreadyInitialized)?;
    Ok(telemetry)
}

/// Ends the program as configured: `E2E_EXIT` (std::process::exit, no destructors),
/// `E2E_DROP_GUARD` (the guard dropped without shutdown), else shutdown and its report.
fn finish(telemetry: lookout::Telemetry) {
    if std::env::var_os("E2E_EXIT").is_some() {
        println!("EXITING");
        std::process::exit(0);
    }

    if std::env::var_os("E2E_DROP_GUARD").is_some() {
        // No explicit shutdown: dropping the guard must flush, within the deadline.
        drop(telemetry);
        println!("DROPPED");
        return;
    }

    let stats = lookout::stats();
    let last_error = match &stats.last_error {
        None => "none",
        Some(e) if e.resolved => "resolved",
        Some(_) => "unresolved",
    };
    println!(
        "STATS traces {} {} {last_error} {}",
        stats.traces.exports_ok, stats.traces.exports_failed, stats.traces.dropped
    );
    println!("STATS logs dropped {}", stats.logs.dropped);
    if std::env::var_os("E2E_FULL_STATS").is_some() {
        // After a flush, so that every export has finished.
        if let Some(p) = telemetry.tracer_provider() {
            let _ = p.force_flush();
        }
        if let Some(p) = telemetry.logger_provider() {
            let _ = p.force_flush();
        }
        let s = lookout::stats();
        for (signal, c) in [("traces", s.traces), ("logs", s.logs)] {
            println!(
                "FULL {signal} accepted={} exported={} failed={} rejected={} dropped={} exports_ok={} exports_failed={}",
                c.accepted,
                c.exported,
                c.failed,
                c.rejected,
                c.dropped,
                c.exports_ok,
                c.exports_failed
            );
        }
        if let Some(e) = &s.last_error {
            println!("LAST_ERROR {}", e.message);
        }
    }

    let (word, report) = match telemetry.blocking_shutdown() {
        Ok(r) => ("ok", r),
        Err(e @ lookout::ShutdownError::DeadlineExceeded { .. }) => {
            ("deadline", e.report().clone())
        }
        Err(e) => ("lost", e.report().clone()),
    };
    // After shutdown: what lookout said at its start (through the program's registry) included.
    if std::env::var_os("E2E_OWN_REGISTRY").is_some() {
        println!(
            "USER_LAYER spans={} events={} lookout={}",
            USER_SPANS.load(std::sync::atomic::Ordering::Relaxed),
            USER_EVENTS.load(std::sync::atomic::Ordering::Relaxed),
            USER_LOOKOUT_INFO.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    println!("RESULT {word} {report}");
    for signal in lookout::Signal::ALL {
        let r = report.signal(signal);
        println!("COUNTS {signal} {} {}", r.exported, r.lost);
    }
}

#[derive(Debug)]
struct Declined;

#[lookout::measured]
fn pay(amount: u32) -> Result<u32, Declined> {
    std::thread::sleep(Duration::from_millis(3));
    if amount > 100 {
        Err(Declined)
    } else {
        Ok(amount)
    }
}

/// Four measured calls (one an error) and one timed block; prints what `/metrics` would show of
/// them (`PROM <line>`), read from the same pull reader the admin endpoints use.
fn measured_calls() {
    for amount in [10, 20, 500, 30] {
        let _ = pay(amount);
    }
    // A library's measured function (lookout without default features there): two calls, one
    // refused.
    let _ = example_pricing_library::quote(3, 250);
    let _ = example_pricing_library::quote(0, 250);
    {
        let _t = lookout::timer("e2e.block");
        std::thread::sleep(Duration::from_millis(1));
    }
    let Some(metrics) = lookout::metrics::global() else {
        println!("NO_METRICS");
        return;
    };
    let snapshot = metrics.collect().expect("collect");
    let text = lookout_admin::prometheus::render(&snapshot, lookout_admin::Format::Text);
    for line in text.lines().filter(|l| l.starts_with("function_")) {
        println!("PROM {line}");
    }
}

/// Injects the current span with the global propagator (`HEADER name=value` lines), and starts
/// span `incoming` under the context extracted from `E2E_INCOMING` (`name=value;...`).
fn propagate() {
    use lookout::tracing_opentelemetry::OpenTelemetrySpanExt;
    use std::collections::HashMap;

    let outgoing = info_span!("outgoing");
    let mut headers = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&outgoing.context(), &mut headers));
    let mut names: Vec<_> = headers.into_iter().collect();
    names.sort();
    for (name, value) in names {
        println!("HEADER {name}={value}");
    }
    drop(outgoing);

    let incoming: HashMap<String, String> = std::env::var("E2E_INCOMING")
        .unwrap_or_default()
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let parent = global::get_text_map_propagator(|p| p.extract(&incoming));
    let span = info_span!("incoming");
    let _ = span.set_parent(parent);
    span.in_scope(|| info!("handled"));
}

fn tree() {
    let meter = global::meter("e2e");
    let requests = meter
        .u64_counter("e2e.requests")
        .with_unit("{request}")
        .build();
    let latency = meter.f64_histogram("e2e.latency").with_unit("s").build();

    let root = info_span!(
        "checkout",
        int_attr = -42_i64,
        uint_attr = 42_u64,
        float_attr = 2.5_f64,
        bool_attr = true,
        str_attr = "hello",
    );
    root.in_scope(|| {
        info!(step = 1_i64, "checkout started");
        // Below lookout's default filter (info): neither exported nor on the console.
        tracing::debug!("checkout details");
        info_span!("reserve").in_scope(|| {
            info_span!("db.query", rows = 3_i64).in_scope(|| {
                warn!(table = "stock", "slow query");
            });
        });
    });
    drop(root);
    requests.add(3, &[KeyValue::new("route", "/checkout")]);
    latency.record(0.25, &[KeyValue::new("route", "/checkout")]);
}

/// Every kind of secret, planted in every signal: span attributes (as `#[instrument]` arguments
/// would be), span events, log records (message and fields), metric attributes. Each secret
/// holds `PLANTED` so a test can grep for any that got out.
fn secrets() {
    let card = "4111 1111 1111 1111"; // a test Visa number (Luhn-valid); "PLANTED" cannot be in it
    let span = info_span!(
        "login",
        password = "PLANTED-hunter2",
        api_key = "PLANTED-key-1",
        user_email = "planted.alice@example.com",
        note = "header was Bearer PLANTEDtoken123",
        url.full = "https://bob:PLANTEDpw@api.example.com/x?token=PLANTEDt&page=2",
        aws = "AKIAPLANTED000000000",
    );
    span.in_scope(|| {
        info!(
            session_id = "PLANTED-session",
            "paid with card {card} using jwt eyJhbGciOiJIUzI1NiJ9.eyJQTEFOVEVEIjoxfQ.PLANTEDsig_123"
        );
        warn!(
            authorization = "Basic PLANTEDdXNlcjpwYXNz",
            upstream_header = "Basic PLANTEDdXNlcjpwYXNz",
            "-----BEGIN PRIVATE KEY-----\nPLANTEDMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
        );
    });
    drop(span);
    let meter = global::meter("e2e");
    meter.u64_counter("e2e.logins").build().add(
        1,
        &[
            KeyValue::new("api_key", "PLANTED-metric-key"),
            KeyValue::new("route", "/login"),
        ],
    );
    if let Some(m) = lookout::metrics::global() {
        let _ = m.collect();
    }
}
