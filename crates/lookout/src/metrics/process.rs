//! Process metrics (OpenTelemetry semantic conventions, read from `/proc` with the `procfs`
//! crate) and tokio runtime metrics (tokio's stable metrics API), as observable instruments: they
//! cost nothing between collections.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_semantic_conventions::attribute::CPU_MODE;
use opentelemetry_semantic_conventions::metric::{
    PROCESS_CPU_TIME, PROCESS_CPU_UTILIZATION, PROCESS_MEMORY_USAGE, PROCESS_MEMORY_VIRTUAL,
    PROCESS_THREAD_COUNT, PROCESS_UNIX_FILE_DESCRIPTOR_COUNT, PROCESS_UPTIME,
};

/// Process metrics could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum ProcessMetricsError {
    /// This platform has no `/proc` to read process figures from.
    #[error(
        "process metrics need /proc (Linux), which this platform does not have; tokio runtime metrics were registered"
    )]
    Unsupported,
    /// `/proc/self` could not be read.
    #[error("cannot read /proc/self for process metrics: {0}; check that /proc is mounted")]
    Proc(String),
}

/// The instrumentation scope of the process and runtime metrics (what the admin endpoints read
/// them back by).
pub const PROCESS_SCOPE: &str = "lookout.process";

fn meter(provider: &SdkMeterProvider) -> Meter {
    provider.meter_with_scope(
        InstrumentationScope::builder(PROCESS_SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}

/// Registers the process instruments, and the current tokio runtime's when there is one.
pub(crate) fn register(provider: &SdkMeterProvider) -> Result<(), ProcessMetricsError> {
    let meter = meter(provider);
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        runtime(&meter, handle);
    }
    process(&meter)
}

#[cfg(not(target_os = "linux"))]
fn process(_: &Meter) -> Result<(), ProcessMetricsError> {
    Err(ProcessMetricsError::Unsupported)
}

#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy)]
struct Sample {
    user: f64,
    system: f64,
    rss: u64,
    virt: u64,
    threads: i64,
    uptime: f64,
}

#[cfg(target_os = "linux")]
fn sample() -> Result<Sample, ProcessMetricsError> {
    use procfs::process::Process;
    let err = |e: procfs::ProcError| ProcessMetricsError::Proc(e.to_string());
    let me = Process::myself().map_err(err)?;
    let stat = me.stat().map_err(err)?;
    let ticks = procfs::ticks_per_second() as f64;
    use procfs::Current as _;
    let boot = procfs::Uptime::current().map_err(err)?.uptime;
    Ok(Sample {
        user: stat.utime as f64 / ticks,
        system: stat.stime as f64 / ticks,
        rss: stat.rss.saturating_mul(procfs::page_size()),
        virt: stat.vsize,
        threads: stat.num_threads,
        uptime: (boot - stat.starttime as f64 / ticks).max(0.0),
    })
}

#[cfg(target_os = "linux")]
fn process(meter: &Meter) -> Result<(), ProcessMetricsError> {
    sample()?; // fail at registration, not silently at every collection
    let user = [KeyValue::new(CPU_MODE, "user")];
    let system = [KeyValue::new(CPU_MODE, "system")];
    let (u, s) = (user.clone(), system.clone());
    meter
        .f64_observable_counter(PROCESS_CPU_TIME)
        .with_description("Total CPU seconds of the process, by mode.")
        .with_unit("s")
        .with_callback(super::contained(PROCESS_CPU_TIME, move |o| {
            if let Ok(now) = sample() {
                o.observe(now.user, &u);
                o.observe(now.system, &s);
            }
        }))
        .build();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let last: Mutex<Option<(Instant, Sample)>> = Mutex::new(None);
    meter
        .f64_observable_gauge(PROCESS_CPU_UTILIZATION)
        .with_description(
            "CPU time used since the previous measurement over the time elapsed and the CPUs available, by mode.",
        )
        .with_unit("1")
        .with_callback(super::contained(PROCESS_CPU_UTILIZATION, move |o| {
            let Ok(now) = sample() else { return };
            let at = Instant::now();
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((then, before)) = *last {
                let wall = at.duration_since(then).as_secs_f64() * cpus;
                if wall > 0.0 {
                    o.observe(((now.user - before.user) / wall).max(0.0), &user);
                    o.observe(((now.system - before.system) / wall).max(0.0), &system);
                }
            }
            *last = Some((at, now));
        }))
        .build();
    meter
        .i64_observable_up_down_counter(PROCESS_MEMORY_USAGE)
        .with_description("Resident memory of the process (RSS).")
        .with_unit("By")
        .with_callback(super::contained(PROCESS_MEMORY_USAGE, |o| {
            if let Ok(now) = sample() {
                o.observe(i64::try_from(now.rss).unwrap_or(i64::MAX), &[]);
            }
        }))
        .build();
    meter
        .i64_observable_up_down_counter(PROCESS_MEMORY_VIRTUAL)
        .with_description("Virtual memory of the process.")
        .with_unit("By")
        .with_callback(super::contained(PROCESS_MEMORY_VIRTUAL, |o| {
            if let Ok(now) = sample() {
                o.observe(i64::try_from(now.virt).unwrap_or(i64::MAX), &[]);
            }
        }))
        .build();
    meter
        .i64_observable_up_down_counter(PROCESS_UNIX_FILE_DESCRIPTOR_COUNT)
        .with_description("File descriptors the process has open.")
        .with_unit("{file_descriptor}")
        .with_callback(super::contained(PROCESS_UNIX_FILE_DESCRIPTOR_COUNT, |o| {
            if let Ok(n) = procfs::process::Process::myself().and_then(|p| p.fd_count()) {
                o.observe(n as i64, &[]);
            }
        }))
        .build();
    meter
        .i64_observable_up_down_counter(PROCESS_THREAD_COUNT)
        .with_description("Threads of the process.")
        .with_unit("{thread}")
        .with_callback(super::contained(PROCESS_THREAD_COUNT, |o| {
            if let Ok(now) = sample() {
                o.observe(now.threads, &[]);
            }
        }))
        .build();
    meter
        .f64_observable_gauge(PROCESS_UPTIME)
        .with_description("Time since the process started.")
        .with_unit("s")
        .with_callback(super::contained(PROCESS_UPTIME, |o| {
            if let Ok(now) = sample() {
                o.observe(now.uptime, &[]);
            }
        }))
        .build();
    Ok(())
}

/// tokio has no semantic conventions; these are plain dotted names under `tokio.runtime.`.
fn runtime(meter: &Meter, handle: tokio::runtime::Handle) {
    let handle = Arc::new(handle);
    let h = Arc::clone(&handle);
    meter
        .i64_observable_gauge("tokio.runtime.workers")
        .with_description("Worker threads of the tokio runtime.")
        .with_unit("{thread}")
        .with_callback(super::contained("tokio.runtime.workers", move |o| {
            o.observe(h.metrics().num_workers() as i64, &[])
        }))
        .build();
    let h = Arc::clone(&handle);
    meter
        .i64_observable_gauge("tokio.runtime.tasks.alive")
        .with_description("Tasks alive in the tokio runtime.")
        .with_unit("{task}")
        .with_callback(super::contained("tokio.runtime.tasks.alive", move |o| {
            o.observe(h.metrics().num_alive_tasks() as i64, &[])
        }))
        .build();
    let h = Arc::clone(&handle);
    meter
        .i64_observable_gauge("tokio.runtime.global_queue.depth")
        .with_description("Tasks waiting in the tokio runtime's global queue.")
        .with_unit("{task}")
        .with_callback(super::contained(
            "tokio.runtime.global_queue.depth",
            move |o| o.observe(h.metrics().global_queue_depth() as i64, &[]),
        ))
        .build();
    busy(meter, handle);
}

#[cfg(target_has_atomic = "64")]
fn busy(meter: &Meter, handle: Arc<tokio::runtime::Handle>) {
    fn total(h: &tokio::runtime::Handle) -> (f64, usize) {
        let m = h.metrics();
        let workers = m.num_workers();
        let busy = (0..workers)
            .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
            .sum();
        (busy, workers)
    }
    let h = Arc::clone(&handle);
    meter
        .f64_observable_counter("tokio.runtime.worker.busy_time")
        .with_description("Time the tokio runtime's workers spent busy, summed over workers.")
        .with_unit("s")
        .with_callback(super::contained(
            "tokio.runtime.worker.busy_time",
            move |o| o.observe(total(&h).0, &[]),
        ))
        .build();
    let last: Mutex<Option<(Instant, f64)>> = Mutex::new(None);
    meter
        .f64_observable_gauge("tokio.runtime.busy_ratio")
        .with_description(
            "Share of the time since the previous measurement that the tokio runtime's workers were busy.",
        )
        .with_unit("1")
        .with_callback(super::contained("tokio.runtime.busy_ratio", move |o| {
            let (busy, workers) = total(&handle);
            let at = Instant::now();
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((then, before)) = *last {
                let wall = at.duration_since(then).as_secs_f64() * workers.max(1) as f64;
                if wall > 0.0 {
                    o.observe(((busy - before) / wall).clamp(0.0, 1.0), &[]);
                }
            }
            *last = Some((at, busy));
        }))
        .build();
}

#[cfg(not(target_has_atomic = "64"))]
fn busy(_: &Meter, _: Arc<tokio::runtime::Handle>) {}
