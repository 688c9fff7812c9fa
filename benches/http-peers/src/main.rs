//! Run with: `cd benches/http-peers && cargo run --release` (needs `wrk` and the rotel collector:
//! run `./scripts/test` once, or set `LOOKOUT_ROTEL_AGENT`).
//!
//! A hello-world axum handler served three ways, each in its own process with one Tokio worker,
//! exporting over OTLP to a real collector (rotel, blackhole exporter), with both stacks' default
//! protocol, `http/protobuf` (`BENCH_PROTOCOL=grpc` for gRPC):
//! - `bare`: no instrumentation;
//! - `lookout`: `lookout::init()` + `lookout_tower::HttpServerLayer` (span + metrics);
//! - `peer`: `init_tracing_opentelemetry::TracingConfig::production()` + axum-tracing-opentelemetry's
//!   `OtelAxumLayer` and `OtelInResponseLayer` (span only).
//!
//! Each is loaded with `wrk -t1 -c32 -d{SECS}s --latency` (wrk on the other core), in the order
//! bare, lookout, peer, repeated `ROUNDS` times; the table has requests/s and p99 per run and the
//! ratios to bare, first with every request sampled and exported, then with a 1 % parent-based
//! sample, then with every request sampled and no span exporter (`OTEL_TRACES_EXPORTER=none`:
//! the layer and span recording without the export pipeline). `BENCH_SECS` (default 10) and
//! `BENCH_ROUNDS` (default 2) change the run.
//!
//! The collector is started quiet (`Collector::start_quiet`): it receives and discards, as a
//! production collector with a blackhole exporter would, without printing every span (which
//! cost these 2 cores more than receiving them).
//!
//! Diagnostics (`micro sdk` installs lookout first): `serve layer-only ADDR` (the layer with no SDK installed), `serve init-only ADDR`
//! (`lookout::init()` with no layer), `serve noop-layer ADDR` (an identity tower layer) and `micro` (the layer's
//! cost per call on a `service_fn`, no network).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;

const MODES: [&str; 3] = ["bare", "lookout", "peer"];

fn app() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "Hello, world!" }))
}

async fn serve(mode: &str, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    match mode {
        "bare" => axum::serve(listener, app()).await?,
        "lookout" => {
            let telemetry = lookout::init()?;
            let router = app().layer(lookout_tower::HttpServerLayer::new());
            // Stopped with SIGINT by the harness: flush, then say how many spans were exported
            // and lost (a span dropped from a full queue would flatter the throughput).
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            let report = match telemetry.shutdown().await {
                Ok(report) => report,
                Err(
                    lookout::ShutdownError::DataLost { report }
                    | lookout::ShutdownError::DeadlineExceeded { report, .. },
                ) => report,
                Err(other) => return Err(other.into()),
            };
            println!(
                "spans exported {} lost {}",
                report.traces.exported, report.traces.lost
            );
        }
        // Diagnostic: lookout installed, no layer (what the SDK and subscriber cost by themselves).
        "init-only" => {
            let _telemetry = lookout::init()?;
            axum::serve(listener, app()).await?
        }
        // Diagnostic: the layer with no SDK installed (no-op tracer and meter).
        "layer-only" => {
            axum::serve(listener, app().layer(lookout_tower::HttpServerLayer::new())).await?
        }
        "noop-layer" => {
            let router = app().layer(tower::util::MapRequestLayer::new(
                |r: axum::extract::Request| r,
            ));
            axum::serve(listener, router).await?
        }
        "peer" => {
            let _guard =
                init_tracing_opentelemetry::TracingConfig::production().init_subscriber()?;
            let router = app()
                .layer(axum_tracing_opentelemetry::middleware::OtelInResponseLayer)
                .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default());
            axum::serve(listener, router).await?
        }
        other => return Err(format!("unknown mode {other}: use bare, lookout or peer").into()),
    }
    Ok(())
}

fn wait_for_port(addr: &str) {
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server on {addr} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the server with SIGINT and returns what it printed (the lookout server's span report),
/// killing it if it has not exited within 15 s.
fn interrupt(server: &mut Killed) -> String {
    let _ = Command::new("kill")
        .args(["-INT", &server.0.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(_)) = server.0.try_wait() {
            let mut out = String::new();
            if let Some(mut stdout) = server.0.stdout.take() {
                let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
            }
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    String::new()
}

fn field(report: &str, prefix: &str) -> Option<f64> {
    let line = report
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))?;
    let value = line
        .split_whitespace()
        .nth(prefix.split_whitespace().count())?;
    let (number, scale) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn run_all() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    // A collector that discards what it receives without printing it, as in production.
    let collector = lookout_testing::Collector::start_quiet()?;
    let exe = std::env::current_exe()?;
    // Both stacks' default protocol, unless BENCH_PROTOCOL=grpc.
    let protocol = std::env::var("BENCH_PROTOCOL").unwrap_or_else(|_| "http/protobuf".into());
    let endpoint = if protocol == "grpc" {
        collector.grpc_endpoint()
    } else {
        collector.http_endpoint()
    };
    println!("OTLP protocol: {protocol}");
    // Every request traced and exported, then a production-like 1 % sample (parent-based), then
    // every request traced with no span exporter: what the layer and span recording cost with
    // the export pipeline (batching, OTLP encoding, the collector) off these 2 cores.
    let scenarios = [
        ("every request sampled", "1.0", "otlp"),
        ("1 % sampled", "0.01", "otlp"),
        ("every request sampled, spans not exported", "1.0", "none"),
    ];
    for (scenario, ratio, exporter) in scenarios {
        let mut results: Vec<(String, f64, f64)> = Vec::new();
        let mut lost_spans = 0_u64;
        for round in 1..=rounds {
            for mode in MODES {
                let addr = format!("127.0.0.1:{}", lookout_testing::free_port());
                let child = Command::new(&exe)
                    .args(["serve", mode, &addr])
                    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
                    .env("OTEL_EXPORTER_OTLP_PROTOCOL", &protocol)
                    .env("OTEL_SERVICE_NAME", format!("bench-{mode}"))
                    .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
                    .env("OTEL_TRACES_SAMPLER_ARG", ratio)
                    .env("OTEL_TRACES_EXPORTER", exporter)
                    .env("LOOKOUT_CONSOLE", "off")
                    .env("RUST_LOG", "info")
                    .env("TOKIO_WORKER_THREADS", "1")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()?;
                let mut server = Killed(child);
                wait_for_port(&addr);
                let out = Command::new("wrk")
                    .args([
                        "-t1",
                        "-c32",
                        &format!("-d{secs}s"),
                        "--latency",
                        &format!("http://{addr}/hello/world"),
                    ])
                    .output()?;
                let report = String::from_utf8_lossy(&out.stdout);
                let rps = field(&report, "Requests/sec:").unwrap_or(f64::NAN);
                let p99 = field(&report, "99%").unwrap_or(f64::NAN);
                let said = interrupt(&mut server);
                let spans = said.lines().find(|l| l.starts_with("spans ")).unwrap_or("");
                eprintln!(
                    "{scenario}, round {round} {mode}: {rps:.0} req/s, p99 {p99:.2} ms {spans}"
                );
                if let Some(lost) = spans
                    .split_whitespace()
                    .nth(4)
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    lost_spans += lost;
                }
                results.push((mode.to_owned(), rps, p99));
            }
        }
        println!("\n{scenario}:\n");
        println!(
            "| run | bare req/s (p99) | lookout-tower req/s (p99) | peer req/s (p99) | lookout/bare | peer/bare |"
        );
        println!("|---|---|---|---|---|---|");
        for (i, chunk) in results.chunks(3).enumerate() {
            let [b, l, p] = [&chunk[0], &chunk[1], &chunk[2]];
            println!(
                "| {} | {:.0} ({:.2} ms) | {:.0} ({:.2} ms) | {:.0} ({:.2} ms) | {:.1} % | {:.1} % |",
                i + 1,
                b.1,
                b.2,
                l.1,
                l.2,
                p.1,
                p.2,
                100.0 * l.1 / b.1,
                100.0 * p.1 / b.1
            );
        }
        let total =
            |mode: &str| -> f64 { results.iter().filter(|r| r.0 == mode).map(|r| r.1).sum() };
        let mean_ratio = |mode: &str| -> f64 {
            let ratios: Vec<f64> = results
                .chunks(3)
                .filter_map(|c| {
                    let m = c.iter().find(|r| r.0 == mode)?;
                    Some(m.1 / c[0].1)
                })
                .collect();
            100.0 * ratios.iter().sum::<f64>() / ratios.len().max(1) as f64
        };
        println!(
            "\nOver the {rounds} rounds: lookout/bare {:.1} % (mean of the rounds' ratios; {:.1} % of the summed requests), peer/bare {:.1} % ({:.1} %), lookout/peer {:.2}x.",
            mean_ratio("lookout"),
            100.0 * total("lookout") / total("bare"),
            mean_ratio("peer"),
            100.0 * total("peer") / total("bare"),
            total("lookout") / total("peer"),
        );
        println!("Spans the lookout-tower server lost (queue full, failed exports): {lost_spans}.");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("micro") {
        // Diagnostic: the layer's own cost per call, no network.
        use tower::{Service, ServiceExt};
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        // `micro sdk`: with `lookout::init()` (configured by the OTEL_* environment).
        let _telemetry = match args.get(2).map(String::as_str) {
            Some("sdk") => Some(lookout::init()?),
            _ => None,
        };
        rt.block_on(async {
            let inner = tower::service_fn(|_req: axum::extract::Request| async {
                Ok::<_, std::convert::Infallible>(axum::response::Response::new(axum::body::Body::from("Hello, world!")))
            });
            let request = || {
                axum::http::Request::get("/hello/world")
                    .header("host", "127.0.0.1:8080")
                    .header("user-agent", "wrk")
                    .body(axum::body::Body::empty())
                    .unwrap()
            };
            let n = 1_000_000;
            // The same loop around the bare `service_fn` first: the layer's cost is the difference.
            let mut bare = inner.clone();
            let start = Instant::now();
            for _ in 0..n {
                let _ = bare.ready().await.unwrap().call(request()).await;
            }
            let bare_ns = start.elapsed().as_nanos() as f64 / n as f64;
            let mut svc = tower::Layer::layer(&lookout_tower::HttpServerLayer::new(), inner);
            let start = Instant::now();
            for _ in 0..n {
                let _ = svc.ready().await.unwrap().call(request()).await;
            }
            let layer_ns = start.elapsed().as_nanos() as f64 / n as f64;
            println!(
                "{layer_ns:.0} ns per call with the layer, {bare_ns:.0} ns without: the layer costs {:.0} ns",
                layer_ns - bare_ns
            );
        });
        return Ok(());
    }
    if args.get(1).map(String::as_str) == Some("serve") {
        let (mode, addr) = (args[2].clone(), args[3].clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        return rt.block_on(serve(&mode, &addr));
    }
    run_all()
}
