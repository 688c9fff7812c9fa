//! What lookout-cleanup costs per run, the user's work excluded.
//!
//! Run with: `cargo bench -p lookout-cleanup --bench run_overhead`. `RUNS` (default 20,000) sets
//! the number of runs per measurement.
//!
//! A job whose task does nothing is started `RUNS` times with `run_now` (overlap allowed, so none
//! is refused) on a current-thread runtime, and the time until every run has been recorded is
//! divided by `RUNS`. The baseline does what any scheduler must: `tokio::spawn` of the same empty
//! task, and awaiting it. Measured twice: with no telemetry SDK (the crate's bookkeeping: state,
//! history, statistics; spans and metrics are no-ops), and with an OpenTelemetry SDK capturing
//! spans, logs and metrics in memory (lookout-testing's `Capture`; spans exported synchronously).

use std::time::{Duration, Instant};

use lookout_cleanup::{Job, Overlap, RunContext, Stats};

fn runs() -> u64 {
    std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

async fn baseline(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let handle = tokio::spawn(async { Ok::<_, String>(Stats::default()) });
        let _ = handle.await;
    }
    start.elapsed()
}

async fn job(n: u64, meter: Option<opentelemetry::metrics::Meter>) -> Duration {
    let mut builder = Job::builder("bench")
        .every(Duration::from_secs(3600))
        .initial_delay(Duration::from_secs(3600))
        .overlap(Overlap::Allow(usize::MAX))
        .history(50);
    if let Some(m) = meter {
        builder = builder.meter(m);
    }
    let job = builder
        .spawn(|_ctx: RunContext| async { Ok::<_, String>(Stats::default()) })
        .expect("job");
    let start = Instant::now();
    for _ in 0..n {
        let _ = job.run_now();
        // One run at a time, as a scheduler would: let it finish before the next.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
    }
    while job.stats().total_runs < n {
        tokio::task::yield_now().await;
    }
    let elapsed = start.elapsed();
    job.shutdown_within(Duration::ZERO).await;
    elapsed
}

fn main() {
    let n = runs();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let per = |d: Duration| d.as_nanos() as f64 / n as f64 / 1000.0;
    rt.block_on(async {
        // Warm up.
        let _ = baseline(n / 10).await;
        let _ = job(n / 10, None).await;
        let base = per(baseline(n).await);
        let bare = per(job(n, None).await);
        let capture = lookout_testing::Capture::start();
        let sdk = per(job(n, Some(capture.meter("bench"))).await);
        let spans = capture.spans().len();
        println!("{n} runs each, current-thread runtime:");
        println!("  tokio::spawn + await (baseline)      {base:8.2} µs per run");
        println!(
            "  lookout-cleanup, no SDK              {bare:8.2} µs per run ({:+.2} µs over the baseline)",
            bare - base
        );
        println!(
            "  lookout-cleanup, in-memory SDK       {sdk:8.2} µs per run ({:+.2} µs over the baseline; {spans} spans captured)",
            sdk - base
        );
    });
}
