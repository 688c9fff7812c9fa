//! `/health/ready` with 20 checks under a probe flood from wrk, on loopback.
//!
//! Run with: `cargo bench -p lookout-health --bench probe_flood` (needs `wrk` on PATH:
//! `apt-get install -y wrk`). Prints requests/s, latency percentiles and how many times each check
//! actually ran, for the default 1 s TTL and for TTL 0 (every request wants a fresh result; only
//! single flight merges them). `PROBE_FLOOD_SECS` sets the duration of each run (default 10).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_health::{Check, Health, Status, check_fn};

const CHECKS: usize = 20;

fn registry(ttl: Duration, runs: &Arc<Vec<AtomicUsize>>) -> Health {
    let mut builder = Health::builder();
    for i in 0..CHECKS {
        let runs = runs.clone();
        builder = builder.check(
            Check::new(
                format!("dep{i:02}"),
                check_fn(move || {
                    runs[i].fetch_add(1, Ordering::Relaxed);
                    // A dependency round trip, e.g. a database ping.
                    async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Status::Up
                    }
                }),
            )
            .ttl(ttl),
        );
    }
    builder.build().expect("valid registry")
}

fn wrk(url: &str, secs: u64) -> String {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", url])
        .output()
        .expect("wrk on PATH (apt-get install -y wrk)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(report: &'a str, prefix: &str) -> &'a str {
    report
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_whitespace().nth(prefix.split_whitespace().count()))
        .unwrap_or("?")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; there are none to list.
    }
    let secs: u64 = std::env::var("PROBE_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "probe flood: wrk -t2 -c64 -d{secs}s on GET /health/ready, {CHECKS} checks of 2 ms each"
    );
    println!("| TTL | requests/s | p50 | p99 | runs per check (min-max) | requests |");
    println!("|---|---|---|---|---|---|");
    // Baseline: a static handler with the same body, to show what the registry itself costs.
    {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = axum::Router::new().route(
            "/health/ready",
            axum::routing::get(|| async {
                ([("content-type", "application/json")], r#"{"status":"UP"}"#)
            }),
        );
        let server = rt.spawn(async move { axum::serve(listener, router).await });
        let report = wrk(&format!("http://{addr}/health/ready"), secs);
        server.abort();
        println!(
            "| static handler (no checks) | {} | {} | {} | - | - |",
            field(&report, "Requests/sec:"),
            field(&report, "50%"),
            field(&report, "99%"),
        );
    }
    for ttl in [Duration::from_secs(1), Duration::ZERO] {
        let runs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..CHECKS).map(|_| AtomicUsize::new(0)).collect());
        let health = rt.block_on(async { registry(ttl, &runs) });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = rt.spawn(async move { axum::serve(listener, health.router()).await });
        let report = wrk(&format!("http://{addr}/health/ready"), secs);
        server.abort();
        let counts: Vec<usize> = runs.iter().map(|r| r.load(Ordering::Relaxed)).collect();
        let requests = report
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("?");
        println!(
            "| {} | {} | {} | {} | {}-{} | {} |",
            humantime::format_duration(ttl),
            field(&report, "Requests/sec:"),
            field(&report, "50%"),
            field(&report, "99%"),
            counts.iter().min().unwrap_or(&0),
            counts.iter().max().unwrap_or(&0),
            requests,
        );
        if report.contains("Non-2xx") {
            println!(
                "  (wrk saw non-2xx answers: {})",
                report.lines().find(|l| l.contains("Non-2xx")).unwrap_or("")
            );
        }
    }
}
