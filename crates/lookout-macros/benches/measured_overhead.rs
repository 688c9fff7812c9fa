//! Per-call cost of `#[measured]`: against a bare function, against the OTel SDK's counter and
//! histogram called directly (the same recording done by hand), on one thread and on two.
//!
//! `cargo bench -p lookout-macros --bench measured_overhead`

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lookout::measured;
use lookout::metrics::Metrics;
use lookout::opentelemetry::KeyValue;
use lookout::opentelemetry::metrics::MeterProvider as _;

#[inline(never)]
fn bare(x: u64) -> Result<u64, std::fmt::Error> {
    Ok(black_box(x).wrapping_mul(3))
}

#[measured]
#[inline(never)]
fn measured_a(x: u64) -> Result<u64, std::fmt::Error> {
    Ok(black_box(x).wrapping_mul(3))
}

#[measured]
#[inline(never)]
fn measured_b(x: u64) -> Result<u64, std::fmt::Error> {
    Ok(black_box(x).wrapping_mul(3))
}

/// Runs `f` `iters` times on each of `threads` threads at once; the time per call on one thread.
fn per_call(threads: usize, iters: u64, f: fn(usize, u64)) -> Duration {
    let barrier = Barrier::new(threads);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        f(t, i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    // criterion divides by iters: report the mean thread's time.
    times.iter().sum::<Duration>() / threads as u32
}

fn bench(c: &mut Criterion) {
    let metrics = Metrics::in_memory(lookout::opentelemetry_sdk::Resource::builder_empty().build());
    metrics.install();
    let meter = metrics.provider().meter("direct");
    let counter = meter.u64_counter("direct.calls").build();
    let histogram = meter
        .f64_histogram("direct.duration")
        .with_unit("s")
        .with_boundaries(lookout::metrics::DURATION_BUCKETS.to_vec())
        .build();
    static DIRECT: std::sync::OnceLock<(
        lookout::opentelemetry::metrics::Counter<u64>,
        lookout::opentelemetry::metrics::Histogram<f64>,
    )> = std::sync::OnceLock::new();
    let _ = DIRECT.set((counter, histogram));

    fn direct(x: u64) -> Result<u64, std::fmt::Error> {
        let (counter, histogram) = DIRECT.get().expect("set above");
        let start = Instant::now();
        let r = bare(x);
        let attrs = [
            KeyValue::new("function", "direct"),
            KeyValue::new("module", "measured_overhead"),
        ];
        histogram.record(start.elapsed().as_secs_f64(), &attrs);
        let result = if r.is_ok() { "ok" } else { "error" };
        counter.add(
            1,
            &[
                KeyValue::new("function", "direct"),
                KeyValue::new("module", "measured_overhead"),
                KeyValue::new("result", result),
            ],
        );
        r
    }

    // The floor of recording through the SDK: two clock reads and the bound histogram and counter
    // that #[measured] uses, with nothing else.
    let bound_histogram = DIRECT
        .get()
        .expect("set")
        .1
        .bind(&[KeyValue::new("function", "floor")]);
    let bound_counter = DIRECT
        .get()
        .expect("set")
        .0
        .bind(&[KeyValue::new("function", "floor")]);
    let clock = quanta::Clock::new();

    let mut g = c.benchmark_group("one_thread");
    g.bench_function("sdk_bound_floor", |b| {
        b.iter(|| {
            let start = clock.raw();
            let r = bare(black_box(7));
            let end = clock.raw();
            bound_histogram.record(clock.delta_as_nanos(start, end) as f64 * 1e-9);
            bound_counter.add(1);
            r
        })
    });
    g.bench_function("bare", |b| b.iter(|| bare(black_box(7))));
    g.bench_function("measured", |b| b.iter(|| measured_a(black_box(7))));
    g.bench_function("sdk_direct", |b| b.iter(|| direct(black_box(7))));
    g.finish();

    let mut g = c.benchmark_group("two_threads");
    g.bench_function("bare", |b| {
        b.iter_custom(|n| {
            per_call(2, n, |_, i| {
                let _ = black_box(bare(i));
            })
        })
    });
    g.bench_function("measured_same_fn", |b| {
        b.iter_custom(|n| {
            per_call(2, n, |_, i| {
                let _ = black_box(measured_a(i));
            })
        })
    });
    g.bench_function("measured_own_fn", |b| {
        b.iter_custom(|n| {
            per_call(2, n, |t, i| {
                if t == 0 {
                    {
                        let _ = black_box(measured_a(i));
                    };
                } else {
                    {
                        let _ = black_box(measured_b(i));
                    };
                }
            })
        })
    });
    g.bench_function("sdk_direct", |b| {
        b.iter_custom(|n| {
            per_call(2, n, |_, i| {
                let _ = black_box(direct(i));
            })
        })
    });
    g.finish();

    // Keep the metrics alive (and prove something was recorded) until the end.
    let snapshot = metrics.collect().expect("collect");
    let ops = lookout::metrics::operations(&snapshot);
    assert!(ops.iter().any(|o| o.name == "measured_a" && o.calls > 0));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
