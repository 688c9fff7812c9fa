//! Run with: `cargo run --release -p lookout-e2e --bin e2e-load -- <spans per second> <seconds>`
//!
//! Load for the reliability scenarios (`scripts/reliability`): spans of the `#[instrument]` shape
//! (5 attributes, 1 event) at a fixed rate, configured through the environment like a service.
//! Prints a line per second, `SEC <s> created=.. exported=.. failed=.. dropped=.. rss_mb=..`, and
//! at the end `SUMMARY created=.. exported=.. failed=.. dropped=.. unaccounted=.. p50_us=..
//! p99_us=.. max_us=.. max_rss_mb=.. shutdown_ms=.. cpu_ms=.. seconds=..`: the time each span took
//! to create and end on the application thread, the pipeline's exact accounting, and the process's
//! CPU time (every thread, user + system, shutdown included) — `scripts/export-ladder` divides its
//! growth over a base rung by the spans exported. A rate of `0` sends as fast as one thread can.

use std::time::{Duration, Instant};

use tracing::{info, info_span};

fn rss_mb() -> f64 {
    memory_stats::memory_stats().map_or(0.0, |m| m.physical_mem as f64 / 1_048_576.0)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rate = args.first().copied().unwrap_or(10_000);
    let unthrottled = rate == 0;
    let rate = if unthrottled { 1_000_000 } else { rate };
    let seconds = args.get(1).copied().unwrap_or(10).max(1);
    let cpu_start = cpu_time::ProcessTime::now();
    let telemetry = lookout::init().expect("init");

    let per_tick = (rate / 1000).max(1);
    let tick = Duration::from_secs_f64(per_tick as f64 / rate as f64);
    let mut durations: Vec<u32> = Vec::with_capacity((rate * seconds) as usize);
    let start = Instant::now();
    let mut next = start;
    let mut second = 1;
    let mut max_rss: f64 = 0.0;
    let mut n: u64 = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..per_tick {
            let t = Instant::now();
            let span = info_span!(
                "handle",
                order.id = n,
                customer = "c-42",
                amount = 12.5,
                retry = false,
                region = "eu-west-1"
            );
            span.in_scope(|| info!(step = "validated", "order checked"));
            drop(span);
            durations.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
            n += 1;
        }
        next += tick;
        if unthrottled {
            next = Instant::now();
        } else if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if start.elapsed() >= Duration::from_secs(second) {
            let s = lookout::stats().traces;
            let rss = rss_mb();
            max_rss = max_rss.max(rss);
            println!(
                "SEC {second} created={n} exported={} failed={} dropped={} rss_mb={rss:.1}",
                s.exported, s.failed, s.dropped
            );
            second += 1;
        }
    }
    let sending = start.elapsed().as_secs_f64();
    let shutdown = Instant::now();
    let report = match telemetry.blocking_shutdown() {
        Ok(r) => r,
        Err(e) => e.report().clone(),
    };
    let shutdown_ms = shutdown.elapsed().as_millis();
    let s = lookout::stats().traces;
    durations.sort_unstable();
    let pct = |p: f64| {
        durations
            .get(((durations.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "SUMMARY created={n} exported={} failed={} dropped={} unaccounted={} p50_us={:.1} p99_us={:.1} max_us={:.1} max_rss_mb={max_rss:.1} shutdown_ms={shutdown_ms} lost={} cpu_ms={:.0} seconds={sending:.2}",
        s.exported,
        s.failed,
        s.dropped,
        n.saturating_sub(s.exported + s.failed + s.dropped),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        report.traces.lost,
        cpu_start.elapsed().as_secs_f64() * 1000.0,
    );
}
