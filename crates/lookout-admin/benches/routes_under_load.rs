//! How fast every admin route answers while the service it watches is under load.
//!
//! Run with: `cargo bench -p lookout-admin --bench routes_under_load` (needs `wrk` on PATH:
//! `apt-get install -y wrk`). A hello-world API whose handler is `#[measured]` is loaded by
//! `wrk -t2 -c64` on loopback for the whole run; meanwhile each admin route is requested 200
//! times, one after another, by a real HTTP client, and its latency percentiles are printed.
//! The metrics hold 300 timed operations besides (about 8,000 exposition lines) so `/metrics` and
//! the JSON views do real work. The seeds' target: every route within 100 ms.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use lookout::measured;
use lookout::metrics::Metrics;
use lookout_admin::Admin;

#[measured]
async fn hello() -> &'static str {
    "hello"
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Metrics::in_memory(
        lookout::opentelemetry_sdk::Resource::builder_empty()
            .with_service_name("bench")
            .build(),
    );
    metrics.install();
    metrics.register_process_metrics().expect("process metrics");
    for i in 0..300 {
        let name = format!("operation.{i}");
        for _ in 0..3 {
            let _t = lookout::timer(&name);
        }
    }
    let api = serve(Router::new().route("/", get(hello))).await;
    let admin = Admin::builder()
        .metrics(metrics.clone())
        .reset_token("bench")
        .build()
        .expect("admin");
    let admin_addr = serve(admin.router()).await;

    let secs = 40;
    let url = format!("http://{api}/");
    let load = std::thread::spawn(move || {
        Command::new("wrk")
            .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", &url])
            .output()
            .expect("wrk on PATH (apt-get install -y wrk)")
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let routes = [
        ("GET", "/metrics"),
        ("GET", "/metrics (gzip)"),
        ("GET", "/metrics (openmetrics)"),
        ("GET", "/monitoring/metrics"),
        ("GET", "/monitoring/operation?name=hello"),
        ("GET", "/monitoring/system"),
        ("GET", "/monitoring/live"),
        ("GET", "/monitoring/ready"),
        ("GET", "/monitoring/health"),
        ("POST", "/monitoring/reset"),
    ];
    println!("admin routes while wrk -t2 -c64 loads the API ({secs} s), 200 requests each:");
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "route", "p50 ms", "p99 ms", "max ms", "bytes", "status"
    );
    let mut worst = Duration::ZERO;
    for (method, route) in routes {
        let path = route.split(' ').next().unwrap_or(route);
        let mut times = Vec::with_capacity(200);
        let mut bytes = 0;
        let mut status = 0;
        for _ in 0..200 {
            let mut req = if method == "POST" {
                client
                    .post(format!("http://{admin_addr}{path}"))
                    .bearer_auth("bench")
            } else {
                client.get(format!("http://{admin_addr}{path}"))
            };
            if route.ends_with("(gzip)") {
                req = req.header("accept-encoding", "gzip");
            }
            if route.ends_with("(openmetrics)") {
                req = req.header("accept", "application/openmetrics-text;version=1.0.0");
            }
            let start = Instant::now();
            let resp = req.send().await.expect("admin request");
            status = resp.status().as_u16();
            let body = resp.bytes().await.expect("body");
            times.push(start.elapsed());
            bytes = body.len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        worst = worst.max(times[times.len() - 1]);
        println!(
            "{:<36} {:>9.2} {:>9.2} {:>9.2} {:>9} {:>8}",
            format!("{method} {route}"),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(times[times.len() - 1]),
            bytes,
            status
        );
    }
    let out = load.join().expect("wrk thread");
    let report = String::from_utf8_lossy(&out.stdout);
    let rps = report
        .lines()
        .find(|l| l.starts_with("Requests/sec"))
        .unwrap_or("Requests/sec: ?");
    println!("API under load meanwhile: {}", rps.trim());
    println!(
        "slowest admin answer: {:.2} ms (target: 100 ms)",
        worst.as_secs_f64() * 1000.0
    );
}
