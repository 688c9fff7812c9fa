//! What `#[measured]` expands to, and [`timer`]: RED metrics per function or named operation.
//!
//! - `function.calls` (counter, `{call}`): `function`, `module`, `result` = `ok` | `error`, and
//!   `error.type` (the error's type name) when there is one;
//! - `function.duration` (histogram, `s`): `function`, `module`;
//! - `function.calls.concurrent` (up-down counter, `{call}`): `function`, `module`;
//! - `function.last_call.timestamp` (gauge, `s`, Unix time): when a call last finished.
//!
//! Each call site binds its attribute sets to the SDK's aggregation once (bound instruments), so
//! a call costs two clock reads and a few atomic updates, with no attribute lookup.

use std::any::type_name;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

// The TSC read raw: a call reads the clock twice, and the vDSO clock costs ~29 ns a read in a
// VM (BENCHMARKS.md); a raw TSC read is a few, converted to time only once per call.
use quanta::Clock;

use opentelemetry::InstrumentationScope;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};

use super::GENERATION;

pub(crate) const CALLS: &str = "function.calls";
pub(crate) const DURATION: &str = "function.duration";
pub(crate) const CONCURRENT: &str = "function.calls.concurrent";
pub(crate) const LAST_CALL: &str = "function.last_call.timestamp";

/// Buckets of `function.duration`, in seconds: from 10 µs (functions are often far quicker than
/// the HTTP conventions' 5 ms first bucket) to the conventions' 10 s.
pub const DURATION_BUCKETS: [f64; 19] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The instruments of one meter provider (one [`GENERATION`]).
#[derive(Debug)]
struct Instruments {
    generation: u64,
    calls: Counter<u64>,
    duration: Histogram<f64>,
}

static INSTRUMENTS: Mutex<Option<Arc<Instruments>>> = Mutex::new(None);

/// Every call site and timer that has recorded, for the last-call gauge.
static SITES: Mutex<Vec<&'static Callsite>> = Mutex::new(Vec::new());

fn instruments(generation: u64) -> Arc<Instruments> {
    let mut slot = INSTRUMENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = slot.as_ref().filter(|i| i.generation == generation) {
        return Arc::clone(i);
    }
    let meter = opentelemetry::global::meter_provider().meter_with_scope(
        InstrumentationScope::builder("lookout")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    let calls = meter
        .u64_counter(CALLS)
        .with_description("Calls of measured functions and timed operations, by result.")
        .with_unit("{call}")
        .build();
    let duration = meter
        .f64_histogram(DURATION)
        .with_description("Duration of measured functions and timed operations.")
        .with_unit("s")
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build();
    // In progress: a per-site atomic, observed at collection (one uncontended add per call edge
    // instead of two trips through the SDK's bound-instrument dispatch).
    meter
        .i64_observable_up_down_counter(CONCURRENT)
        .with_description("Calls of measured functions in progress.")
        .with_unit("{call}")
        .with_callback(|observer| {
            let sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
            for site in sites.iter() {
                observer.observe(site.in_progress.load(Ordering::Relaxed), &site.attributes());
            }
        })
        .build();
    meter
        .f64_observable_gauge(LAST_CALL)
        .with_description(
            "When a call of a measured function or timed operation last finished (Unix time).",
        )
        .with_unit("s")
        .with_callback(|observer| {
            let sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
            for site in sites.iter() {
                let raw = site.last_call.load(Ordering::Relaxed);
                if raw != 0 {
                    observer.observe(unix_seconds(raw), &site.attributes());
                }
            }
        })
        .build();
    let fresh = Arc::new(Instruments {
        generation,
        calls,
        duration,
    });
    *slot = Some(Arc::clone(&fresh));
    fresh
}

/// A call site's instruments, bound to its attribute sets.
#[derive(Debug)]
struct Bound {
    generation: u64,
    ok: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
    instruments: Arc<Instruments>,
}

impl Bound {
    fn new(site: &Callsite, generation: u64) -> Bound {
        let instruments = instruments(generation);
        let attributes = site.attributes();
        let mut with_result = attributes.clone();
        with_result.push(KeyValue::new("result", "ok"));
        Bound {
            generation,
            ok: instruments.calls.bind(&with_result),
            duration: instruments.duration.bind(&attributes),
            instruments,
        }
    }
}

/// Call sites bound again after the provider was replaced (tests that install several
/// providers). Leaked like the first binding: one per call site and provider installed.
static REBOUND: Mutex<Option<HashMap<usize, &'static Bound>>> = Mutex::new(None);

/// One `#[measured]` function (or one [`timer`] name). Made by the macro as a `static`.
///
/// Aligned to 128 bytes so that the counters of two call sites used by two threads never share
/// a cache line (or an adjacent-line prefetch pair).
#[doc(hidden)]
#[derive(Debug)]
#[repr(align(128))]
pub struct Callsite {
    function: &'static str,
    module: &'static str,
    current: OnceLock<Bound>,
    last_call: AtomicU64,
    in_progress: AtomicI64,
}

impl Callsite {
    /// A call site for `function` in `module` (`module_path!()`).
    pub const fn new(function: &'static str, module: &'static str) -> Callsite {
        Callsite {
            function,
            module,
            current: OnceLock::new(),
            last_call: AtomicU64::new(0),
            in_progress: AtomicI64::new(0),
        }
    }

    fn attributes(&self) -> Vec<KeyValue> {
        let mut attributes = vec![KeyValue::new("function", self.function)];
        if !self.module.is_empty() {
            attributes.push(KeyValue::new("module", self.module));
        }
        attributes
    }

    #[inline]
    fn bound(&'static self) -> Option<&'static Bound> {
        let generation = GENERATION.load(Ordering::Acquire);
        if generation == 0 {
            return None; // no provider installed: the global one is a no-op
        }
        // The first binding runs once per call site: that is when it joins the observed list.
        let current = self.current.get_or_init(|| {
            SITES.lock().unwrap_or_else(|e| e.into_inner()).push(self);
            Bound::new(self, generation)
        });
        if current.generation == generation {
            return Some(current);
        }
        self.rebound(generation)
    }

    #[cold]
    fn rebound(&'static self, generation: u64) -> Option<&'static Bound> {
        let mut rebound = REBOUND.lock().unwrap_or_else(|e| e.into_inner());
        let map = rebound.get_or_insert_with(HashMap::new);
        let key = self as *const Callsite as usize;
        let entry = map
            .entry(key)
            .or_insert_with(|| Box::leak(Box::new(Bound::new(self, generation))));
        if entry.generation != generation {
            *entry = Box::leak(Box::new(Bound::new(self, generation)));
        }
        Some(*entry)
    }

    #[cold]
    fn error(&self, b: &Bound, error_type: Option<&'static str>) {
        let mut attributes = self.attributes();
        attributes.push(KeyValue::new("result", "error"));
        if let Some(t) = error_type {
            attributes.push(KeyValue::new("error.type", t));
        }
        b.instruments.calls.add(1, &attributes);
    }

    /// Starts one call: counts it as in progress and starts the clock.
    #[inline]
    pub fn start(&'static self) -> Guard {
        let bound = self.bound();
        if bound.is_some() {
            self.in_progress.fetch_add(1, Ordering::Relaxed);
        }
        let clock = clock();
        Guard {
            site: self,
            bound,
            clock,
            start: clock.raw(),
        }
    }
}

/// How a call ended.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Counted with `result = ok`.
    Ok,
    /// Counted with `result = error` and, when known, `error.type`.
    Error(Option<&'static str>),
}

/// Wraps a return value for classification (autoref specialisation: `Result`s are told apart
/// from every other type where the type is known at the call site).
#[doc(hidden)]
#[derive(Debug)]
pub struct Probe<'a, T>(pub &'a T);

/// `Result::Err` is an error, with the error's type name.
#[doc(hidden)]
pub trait IsResult {
    /// The call's outcome by default.
    fn outcome(&self) -> Outcome;
    /// The error type when the value is an `Err`.
    fn error_type(&self) -> Option<&'static str>;
}

impl<T, E> IsResult for Probe<'_, Result<T, E>> {
    fn outcome(&self) -> Outcome {
        match self.0 {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error(Some(type_name::<E>())),
        }
    }
    fn error_type(&self) -> Option<&'static str> {
        self.0.as_ref().err().map(|_| type_name::<E>())
    }
}

/// Any other value is a success.
#[doc(hidden)]
pub trait NotResult {
    /// The call's outcome by default.
    fn outcome(&self) -> Outcome;
    /// No error type.
    fn error_type(&self) -> Option<&'static str>;
}

impl<T> NotResult for &Probe<'_, T> {
    fn outcome(&self) -> Outcome {
        Outcome::Ok
    }
    fn error_type(&self) -> Option<&'static str> {
        None
    }
}

/// One call in progress. Finish it with its outcome; dropped unfinished (a panic unwinding, or
/// an async call's future dropped), it counts as an error of type `panic` or `cancelled`.
#[doc(hidden)]
#[must_use]
pub struct Guard {
    site: &'static Callsite,
    bound: Option<&'static Bound>,
    clock: &'static Clock,
    start: u64,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("function", &self.site.function)
            .finish_non_exhaustive()
    }
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new)
}

/// A raw clock reading and the Unix time (ns) at that reading: to turn raw readings into times.
fn base() -> &'static (u64, u64) {
    static BASE: OnceLock<(u64, u64)> = OnceLock::new();
    BASE.get_or_init(|| {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (clock().raw(), unix)
    })
}

fn unix_seconds(raw: u64) -> f64 {
    let (base_raw, base_unix) = *base();
    let nanos = if raw >= base_raw {
        base_unix.saturating_add(clock().delta_as_nanos(base_raw, raw))
    } else {
        base_unix.saturating_sub(clock().delta_as_nanos(raw, base_raw))
    };
    nanos as f64 / 1e9
}

impl Guard {
    /// Records the call with `outcome`.
    #[inline(always)]
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    #[inline(always)]
    fn record(&mut self, outcome: Outcome) {
        let Some(b) = self.bound.take() else { return };
        let end = self.clock.raw();
        let nanos = self.clock.delta_as_nanos(self.start, end);
        b.duration.record(nanos as f64 * 1e-9);
        self.site.in_progress.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok => b.ok.add(1),
            Outcome::Error(error_type) => self.site.error(b, error_type),
        }
        self.site.last_call.store(end.max(1), Ordering::Relaxed);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.bound.is_some() {
            let why = if std::thread::panicking() {
                "panic"
            } else {
                "cancelled"
            };
            self.record(Outcome::Error(Some(why)));
        }
    }
}

/// Times a named operation that is not a function (a block, a loop body, a query): the same
/// metrics as `#[measured]`, with `function` = `name` and no `module`. Dropping the timer records
/// a success; [`Timer::error`] records a failure.
///
/// ```
/// fn import(rows: &[u32]) -> Result<(), std::io::Error> {
///     let timer = lookout::timer("import.batch");
///     if rows.is_empty() {
///         timer.error("empty");
///         return Ok(());
///     }
///     // ... work ...
///     Ok(()) // `timer` dropped here: recorded as ok
/// }
/// # import(&[1]).unwrap();
/// ```
pub fn timer(name: &str) -> Timer {
    Timer {
        guard: Some(named(name).start()),
    }
}

/// At most this many distinct [`timer`] names; further names share one site named `_other`.
pub const MAX_TIMER_NAMES: usize = 1000;

fn named(name: &str) -> &'static Callsite {
    static NAMED: Mutex<Option<HashMap<String, &'static Callsite>>> = Mutex::new(None);
    static OTHER: Callsite = Callsite::new("_other", "");
    let mut named = NAMED.lock().unwrap_or_else(|e| e.into_inner());
    let map = named.get_or_insert_with(HashMap::new);
    if let Some(site) = map.get(name) {
        return site;
    }
    if map.len() >= MAX_TIMER_NAMES {
        return &OTHER;
    }
    // Leaked once per distinct name (bounded above): call sites are `'static` like the macro's.
    let function: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let site: &'static Callsite = Box::leak(Box::new(Callsite::new(function, "")));
    map.insert(name.to_owned(), site);
    site
}

/// A running [`timer`].
#[must_use = "a timer records when it is dropped; bind it to a variable"]
pub struct Timer {
    guard: Option<Guard>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

impl Timer {
    /// Records the operation as failed, with `error_type` as its `error.type`.
    pub fn error(mut self, error_type: &'static str) {
        if let Some(g) = self.guard.take() {
            g.finish(Outcome::Error(Some(error_type)));
        }
    }

    /// Records the operation as succeeded (what dropping the timer does).
    pub fn ok(mut self) {
        if let Some(g) = self.guard.take() {
            g.finish(Outcome::Ok);
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            if std::thread::panicking() {
                g.finish(Outcome::Error(Some("panic")));
            } else {
                g.finish(Outcome::Ok);
            }
        }
    }
}
