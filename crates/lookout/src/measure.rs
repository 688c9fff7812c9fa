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
//!
//! Calls of one function from several threads must not queue on one lock: the SDK keeps one
//! mutex per series. So each thread has a *lane* per call site: its own in-progress count and
//! last-call time, and a small ring of successful calls' durations that reaches the SDK in
//! batches ([`LANE_CAPACITY`] at a time, while the thread keeps the series' cache line). Every
//! lane is drained into the SDK at the start of every collection (the observable instruments'
//! callback, which the SDK runs before it reads any aggregation) and when its thread exits, so
//! what a reader or exporter sees is exact: the lanes are a write buffer, not a second store of
//! statistics. Errors are rare and recorded directly.

use std::any::type_name;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

// The TSC read raw: a call reads the clock twice, and the vDSO clock costs ~29 ns a read in a
// VM (BENCHMARKS.md); a raw TSC read is a few, converted to time only once per call.
use quanta::Clock;

use opentelemetry::InstrumentationScope;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};
use opentelemetry_semantic_conventions::attribute::ERROR_TYPE;

/// Bumped whenever the global meter provider changes, so instruments bound by `#[measured]`
/// call sites are rebound to the new provider.
pub(crate) static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Changes each time lookout installs a global meter provider ([`crate::init`],
/// `Metrics::install`); 0 before the first. Instruments taken from
/// `opentelemetry::global::meter` record into the provider of the time they were made: compare
/// the generation and make them again when it changed, as `#[measured]` call sites and
/// lookout-tower's layers do (so a layer built before `init` records into the pipeline `init`
/// starts).
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

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

/// Seconds: the semantic conventions' advice for `http.server.request.duration`,
/// `http.client.request.duration` and the RPC durations (lookout-tower's layers), also used for
/// health check durations (lookout-health): checks are bounded by about a second.
pub const HTTP_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
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
        .with_callback(crate::contain::contained(CONCURRENT, |observer| {
            // Runs before the SDK reads any aggregation: the lanes' pending calls go in first.
            drain_all();
            let sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
            for site in sites.iter() {
                observer.observe(site.in_progress(), &site.attributes());
            }
        }))
        .build();
    meter
        .f64_observable_gauge(LAST_CALL)
        .with_description(
            "When a call of a measured function or timed operation last finished (Unix time).",
        )
        .with_unit("s")
        .with_callback(crate::contain::contained(LAST_CALL, |observer| {
            let sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
            for site in sites.iter() {
                let raw = site.last_call();
                if raw != 0 {
                    observer.observe(unix_seconds(raw), &site.attributes());
                }
            }
        }))
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
    /// The trace of a sampled call per `function.duration` bucket, for `/metrics`.
    exemplars: Option<Arc<lookout_exemplars::Reservoir>>,
    /// `lookout_exemplars::MIN_INTERVAL_MS` in raw clock ticks (calls compare raw readings).
    exemplar_interval: u64,
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
            exemplars: lookout_exemplars::reservoir(DURATION, &attributes, &DURATION_BUCKETS),
            exemplar_interval: ticks_per_ms() * lookout_exemplars::MIN_INTERVAL_MS,
            instruments,
        }
    }
}

/// Call sites bound again after the provider was replaced (tests that install several
/// providers). Leaked like the first binding: one per call site and provider installed.
/// Keyed by call site and generation: a lane's pending calls go to the binding they were made
/// with, even after the provider was replaced.
static REBOUND: Mutex<Option<HashMap<(usize, u64), &'static Bound>>> = Mutex::new(None);

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
    /// Position in [`SITES`], and in each thread's lanes; set with the first binding.
    index: AtomicUsize,
    /// Every live thread's lane for this site.
    lanes: Mutex<Vec<Arc<Lane>>>,
    /// Held while any of this site's lanes is drained, so that two threads' batches reach the
    /// SDK one after the other instead of taking turns at the series lock value by value.
    /// Taken before `lanes` when both are. On a cache line of its own: taking it must not
    /// evict the fields every call reads.
    draining: Padded<Mutex<()>>,
    /// What exited threads' lanes (and calls made while a thread was exiting) left.
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
            index: AtomicUsize::new(usize::MAX),
            lanes: Mutex::new(Vec::new()),
            draining: Padded(Mutex::new(())),
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
            let mut sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
            self.index.store(sites.len(), Ordering::Relaxed);
            sites.push(self);
            drop(sites);
            Bound::new(self, generation)
        });
        if current.generation == generation {
            return Some(current);
        }
        self.rebound(generation)
    }

    #[cold]
    fn rebound(&'static self, generation: u64) -> Option<&'static Bound> {
        if let Some(entry) = self.bound_of(generation) {
            return Some(entry);
        }
        // Bound with no lock of ours held: binding registers instruments, which waits on the
        // SDK's pipeline lock, and a collection holding that lock may be draining call sites
        // (which reads `REBOUND`).
        let fresh: &'static Bound = Box::leak(Box::new(Bound::new(self, generation)));
        let mut rebound = REBOUND.lock().unwrap_or_else(|e| e.into_inner());
        let entry = rebound
            .get_or_insert_with(HashMap::new)
            .entry((self as *const Callsite as usize, generation))
            .or_insert(fresh);
        Some(*entry)
    }

    /// The binding made for `generation`, if there is one; never binds (this runs inside the
    /// SDK's collection, where making instruments would wait on the SDK's own lock).
    fn bound_of(&'static self, generation: u64) -> Option<&'static Bound> {
        let first = self.current.get()?;
        if first.generation == generation {
            return Some(first);
        }
        let rebound = REBOUND.lock().unwrap_or_else(|e| e.into_inner());
        rebound
            .as_ref()?
            .get(&(self as *const Callsite as usize, generation))
            .copied()
    }

    fn in_progress(&self) -> i64 {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes
            .iter()
            .fold(self.in_progress.load(Ordering::Relaxed), |sum, lane| {
                sum + lane.in_progress.load(Ordering::Relaxed)
            })
    }

    fn last_call(&self) -> u64 {
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes
            .iter()
            .fold(self.last_call.load(Ordering::Relaxed), |last, lane| {
                last.max(lane.last_call.load(Ordering::Relaxed))
            })
    }

    /// Moves every lane's pending calls into the SDK.
    fn drain(&'static self) {
        let _draining = self.draining.lock().unwrap_or_else(|e| e.into_inner());
        let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        for lane in lanes.iter() {
            lane.drain_locked();
        }
    }

    /// A thread's lane, made on the thread's first call of this site. `None` while the thread
    /// is exiting (its lanes are gone): the caller records directly.
    #[inline]
    fn with_lane<R>(&'static self, f: impl FnOnce(&Lane) -> R) -> Option<R> {
        let index = self.index.load(Ordering::Relaxed);
        LANES
            .try_with(|cell| {
                if let Some(Some(lane)) = cell.borrow().0.get(index) {
                    return f(lane);
                }
                let lane = self.new_lane();
                let result = f(&lane);
                let mut lanes = cell.borrow_mut();
                if lanes.0.len() <= index {
                    lanes.0.resize(index + 1, None);
                }
                lanes.0[index] = Some(lane);
                result
            })
            .ok()
    }

    #[cold]
    fn new_lane(&'static self) -> Arc<Lane> {
        let lane = Arc::new(Lane::new(self));
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&lane));
        lane
    }

    /// A lane whose thread exits: its pending calls go to the SDK, its counts to the site.
    fn retire(&'static self, lane: &Arc<Lane>) {
        let _draining = self.draining.lock().unwrap_or_else(|e| e.into_inner());
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lane.drain_locked();
        self.in_progress
            .fetch_add(lane.in_progress.load(Ordering::Relaxed), Ordering::Relaxed);
        self.last_call
            .fetch_max(lane.last_call.load(Ordering::Relaxed), Ordering::Relaxed);
        lanes.retain(|l| !Arc::ptr_eq(l, lane));
    }

    #[cold]
    fn error(&self, b: &Bound, error_type: Option<&'static str>) {
        let mut attributes = self.attributes();
        attributes.push(KeyValue::new("result", "error"));
        if let Some(t) = error_type {
            attributes.push(KeyValue::new(ERROR_TYPE, t));
        }
        b.instruments.calls.add(1, &attributes);
    }

    /// Starts one call: counts it as in progress and starts the clock.
    #[inline]
    pub fn start(&'static self) -> Guard {
        let bound = self.bound();
        if bound.is_some()
            && self
                .with_lane(|lane| lane.in_progress.add_owned(1))
                .is_none()
        {
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

/// Successful calls a lane can hold. From half full on, its thread passes them to the SDK when no
/// other thread is doing so for the same function; when full, it waits its turn.
///
/// A lane takes ~1.1 kB, made on a thread's first call of a function and freed when the thread
/// exits: at most threads × measured functions of them at once.
pub const LANE_CAPACITY: usize = 128;

/// One thread's calls of one call site (see the module docs). Only the owning thread writes
/// `in_progress`, `last_call`, `head` and the ring; a drain (the owner, or a collection) reads the
/// ring up to `head` and moves `tail`, under the site's `draining` lock.
#[derive(Debug)]
#[repr(align(128))]
struct Lane {
    site: &'static Callsite,
    in_progress: AtomicI64,
    last_call: AtomicU64,
    head: AtomicUsize,
    tail: AtomicUsize,
    /// The provider generation the queued calls were bound to (changed only by the owner, with
    /// the ring empty and the site's `draining` lock held).
    generation: AtomicU64,
    /// Durations in seconds, as `f64` bits.
    ring: [AtomicU64; LANE_CAPACITY],
}

/// Adds to a counter only one thread writes: a load and a store, no locked instruction.
trait AddOwned {
    fn add_owned(&self, n: i64);
}

impl AddOwned for AtomicI64 {
    #[inline(always)]
    fn add_owned(&self, n: i64) {
        self.store(self.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

impl Lane {
    fn new(site: &'static Callsite) -> Lane {
        Lane {
            site,
            in_progress: AtomicI64::new(0),
            last_call: AtomicU64::new(0),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            ring: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Queues one successful call (owner only).
    #[inline(always)]
    fn push(&self, b: &Bound, seconds: f64) {
        if self.generation.load(Ordering::Relaxed) != b.generation {
            self.rebind(b.generation);
        }
        let head = self.head.load(Ordering::Relaxed);
        let queued = head.wrapping_sub(self.tail.load(Ordering::Acquire));
        // Half full: try every sixteenth call (a failed try still takes the lock's cache line).
        let full = queued >= LANE_CAPACITY;
        if full || (queued >= LANE_CAPACITY / 2 && queued.is_multiple_of(16)) {
            self.drain(full);
        }
        self.ring[head % LANE_CAPACITY].store(seconds.to_bits(), Ordering::Relaxed);
        self.head.store(head.wrapping_add(1), Ordering::Release);
    }

    /// The provider changed: what is queued goes to the old one, what follows to the new one.
    #[cold]
    fn rebind(&self, generation: u64) {
        let _draining = self.site.draining.lock().unwrap_or_else(|e| e.into_inner());
        self.drain_locked();
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// The owner's drain: waits for the site's lock only when `full`.
    #[cold]
    fn drain(&self, full: bool) {
        let _draining = match self.site.draining.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if full => {
                self.site.draining.lock().unwrap_or_else(|e| e.into_inner())
            }
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        self.drain_locked();
    }

    /// Records the queued calls into the SDK, into the binding they were made with; the caller
    /// holds the site's `draining` lock.
    fn drain_locked(&self) {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let pending = head.wrapping_sub(tail);
        if pending == 0 {
            return;
        }
        let Some(b) = self.site.bound_of(self.generation.load(Ordering::Relaxed)) else {
            // Unreachable: calls are queued only after their binding exists. The ring is
            // emptied all the same, so that the owner never writes over queued calls.
            self.tail.store(head, Ordering::Release);
            return;
        };
        for i in 0..pending {
            let bits = self.ring[tail.wrapping_add(i) % LANE_CAPACITY].load(Ordering::Relaxed);
            b.duration.record(f64::from_bits(bits));
        }
        b.ok.add(pending as u64);
        // Release: the reads above happen before the owner reuses these slots.
        self.tail.store(head, Ordering::Release);
    }
}

/// This thread's lanes, by call-site index.
struct Lanes(Vec<Option<Arc<Lane>>>);

impl Drop for Lanes {
    fn drop(&mut self) {
        for lane in self.0.drain(..).flatten() {
            lane.site.retire(&lane);
        }
    }
}

thread_local! {
    static LANES: RefCell<Lanes> = const { RefCell::new(Lanes(Vec::new())) };
}

/// Moves every thread's pending calls into the SDK. Runs at the start of each collection.
pub(crate) fn drain_all() {
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for site in sites {
        site.drain();
    }
}

/// A value alone on its (adjacent-line-prefetch pair of) cache lines.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
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

/// Raw clock ticks per millisecond (at least 1).
fn ticks_per_ms() -> u64 {
    const PROBE: u64 = 1 << 32;
    let nanos = clock().delta_as_nanos(0, PROBE).max(1);
    (u128::from(PROBE) * 1_000_000 / u128::from(nanos)).clamp(1, u128::from(u64::MAX)) as u64
}

/// The OpenTelemetry span context of the current `tracing` span (asked only when an exemplar
/// bucket is due).
#[cold]
fn current_span_context() -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = tracing::Span::current().context();
    Some(cx.span().span_context().clone())
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
        let seconds = self.clock.delta_as_nanos(self.start, end) as f64 * 1e-9;
        let end = end.max(1);
        if let Some(r) = &b.exemplars {
            r.offer_every(seconds, end, b.exemplar_interval, current_span_context);
        }
        let ok = outcome == Outcome::Ok;
        let laned = self.site.with_lane(|lane| {
            lane.in_progress.add_owned(-1);
            lane.last_call.store(end, Ordering::Relaxed);
            if ok {
                lane.push(b, seconds);
            }
        });
        if laned.is_none() {
            self.site.in_progress.fetch_sub(1, Ordering::Relaxed);
            self.site.last_call.fetch_max(end, Ordering::Relaxed);
        }
        if let Outcome::Error(error_type) = outcome {
            b.duration.record(seconds);
            self.site.error(b, error_type);
        } else if laned.is_none() {
            b.duration.record(seconds);
            b.ok.add(1);
        }
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

#[cfg(all(test, feature = "sdk"))]
mod tests {
    use super::*;

    static SITE: Callsite = Callsite::new("lanes_test", "lookout::metrics::measure::tests");
    static REBOUND_SITE: Callsite = Callsite::new("rebound_test", "");

    /// These tests install global providers: one at a time.
    static GLOBAL_PROVIDER: Mutex<()> = Mutex::new(());

    fn calls(metrics: &crate::metrics::Metrics, name: &str) -> u64 {
        let snapshot = metrics.collect().expect("collect");
        crate::metrics::operations(&snapshot)
            .into_iter()
            .find(|o| o.name == name)
            .map_or(0, |o| o.calls)
    }

    #[test]
    fn a_replaced_provider_gets_the_calls_after_it_and_its_collection_drains_them() {
        let _one_at_a_time = GLOBAL_PROVIDER.lock().unwrap_or_else(|e| e.into_inner());
        let resource = || opentelemetry_sdk::Resource::builder_empty().build();
        let first = crate::metrics::Metrics::in_memory(resource());
        first.install();
        REBOUND_SITE.start().finish(Outcome::Ok);
        let second = crate::metrics::Metrics::in_memory(resource());
        second.install();
        // A collection of the new provider runs its callbacks (which drain every call site)
        // while this thread binds the site to it: neither waits for the other.
        std::thread::scope(|s| {
            let collector = s.spawn(|| {
                for _ in 0..50 {
                    let _ = second.collect();
                }
            });
            for _ in 0..3 {
                REBOUND_SITE.start().finish(Outcome::Ok);
            }
            collector.join().expect("collector");
        });
        assert_eq!(calls(&first, "rebound_test"), 1);
        assert_eq!(calls(&second, "rebound_test"), 3);
    }

    #[test]
    fn exited_threads_leave_no_lanes_and_keep_their_counts() {
        let _one_at_a_time = GLOBAL_PROVIDER.lock().unwrap_or_else(|e| e.into_inner());
        let metrics = crate::metrics::Metrics::in_memory(
            opentelemetry_sdk::Resource::builder_empty().build(),
        );
        metrics.install();
        // 200 threads, one after another; each makes a lane, and one call stays in progress
        // (its guard leaked) so that what a lane counted must survive the lane.
        for i in 0..200 {
            std::thread::spawn(move || {
                SITE.start().finish(Outcome::Ok);
                if i == 0 {
                    std::mem::forget(SITE.start());
                }
            })
            .join()
            .expect("thread");
        }
        let lanes = SITE.lanes.lock().map(|l| l.len()).unwrap_or(usize::MAX);
        assert_eq!(lanes, 0, "an exited thread's lane is removed");
        assert_eq!(SITE.in_progress(), 1);
        assert_ne!(SITE.last_call(), 0);
        // This thread's lane stays while the thread lives, and counts with the retired ones.
        let guard = SITE.start();
        assert_eq!(SITE.in_progress(), 2);
        guard.finish(Outcome::Ok);
        assert_eq!(SITE.lanes.lock().map(|l| l.len()).unwrap_or(usize::MAX), 1);
        assert_eq!(SITE.in_progress(), 1);
    }
}
