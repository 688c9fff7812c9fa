//! The pipeline's own counters: what was exported, what failed, what was lost.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::SystemTime;

use crate::config::{Signal, signal_index};

/// How many stripes a [`Striped`] counter has (and at most how many shards lookout's span
/// processor keeps, `export::otlp::batch`): threads beyond it share one.
pub(crate) const STRIPES: usize = 16;

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe, below [`STRIPES`]: threads are given one each in turn, on first use.
#[inline]
pub(crate) fn stripe() -> usize {
    STRIPE
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES;
                s.set(i);
            }
            i
        })
        .unwrap_or(0)
}

/// One counter's share on a cache line (two: the adjacent-line prefetcher pairs them) of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A counter written on every span's path by many threads at once: each thread adds to its own
/// stripe ([`stripe`]), so no two threads write one cache line; read as the sum. (One shared
/// counter is a line every ending span takes from the other cores: the dominant cost of a span's
/// end on two threads, BENCHMARKS.md.)
#[derive(Debug)]
pub(crate) struct Striped([Padded; STRIPES]);

impl Striped {
    const fn new() -> Self {
        Self([const { Padded(AtomicU64::new(0)) }; STRIPES])
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.add_at(stripe(), n);
    }

    /// [`add`](Self::add) for a caller that has its thread's [`stripe`] already.
    #[inline]
    pub(crate) fn add_at(&self, stripe: usize, n: u64) {
        self.0[stripe % STRIPES].0.fetch_add(n, Relaxed);
    }

    pub(crate) fn load(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Relaxed)).sum()
    }
}

#[derive(Debug)]
pub(crate) struct SignalCounters {
    /// Spans ended (sampled) or log records emitted: handed to the batch processor. Striped: it
    /// is written at every span's end.
    pub(crate) accepted: Striped,
    /// Items in exports that succeeded.
    pub(crate) exported: AtomicU64,
    /// Items in exports that failed (lost).
    pub(crate) failed: AtomicU64,
    pub(crate) exports_ok: AtomicU64,
    pub(crate) exports_failed: AtomicU64,
    /// Items in export requests that have not finished.
    pub(crate) in_flight: AtomicU64,
    /// Items turned away because the export queue was full.
    pub(crate) dropped: AtomicU64,
    /// Items the destination refused (a rejected request, or a partial success). Included in
    /// `failed`.
    pub(crate) rejected: AtomicU64,
    /// Whether the last export failed.
    failing: AtomicBool,
    /// Whether the current outage (failures, or an export not answered) has been said.
    announced: AtomicBool,
}

/// What an export's outcome changed, so each change is said once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Same state as before.
    None,
    /// The first failure after a success (or at start).
    StartedFailing,
    /// The first success after failures.
    Recovered,
}

impl SignalCounters {
    const fn new() -> Self {
        Self {
            accepted: Striped::new(),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            exports_ok: AtomicU64::new(0),
            exports_failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            announced: AtomicBool::new(false),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    signals: [SignalCounters; 3],
    last_error: Mutex<Option<LastError>>,
}

pub(crate) static COUNTERS: Counters = Counters::new();

impl Counters {
    const fn new() -> Self {
        Counters {
            signals: [
                SignalCounters::new(),
                SignalCounters::new(),
                SignalCounters::new(),
            ],
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn signal(&self, signal: Signal) -> &SignalCounters {
        &self.signals[signal_index(signal)]
    }

    /// Records an export's outcome and says whether it changed the signal's state.
    pub(crate) fn record_export(
        &self,
        signal: Signal,
        items: u64,
        error: Option<String>,
    ) -> Transition {
        let c = self.signal(signal);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match error {
            None => {
                c.exported.fetch_add(items, Relaxed);
                c.exports_ok.fetch_add(1, Relaxed);
                let was_failing = c.failing.swap(false, Relaxed);
                let was_announced = c.announced.swap(false, Relaxed);
                if !was_failing && !was_announced {
                    return Transition::None;
                }
                if let Some(l) = last.as_mut().filter(|l| l.signal == signal) {
                    l.resolved = true;
                }
                Transition::Recovered
            }
            Some(message) => {
                c.failed.fetch_add(items, Relaxed);
                c.exports_failed.fetch_add(1, Relaxed);
                *last = Some(LastError {
                    signal,
                    message,
                    at: SystemTime::now(),
                    resolved: false,
                });
                c.failing.store(true, Relaxed);
                if c.announced.swap(true, Relaxed) {
                    Transition::None
                } else {
                    Transition::StartedFailing
                }
            }
        }
    }

    /// Whether exports of `signal` are failing or hanging now.
    pub(crate) fn in_outage(&self, signal: Signal) -> bool {
        let c = self.signal(signal);
        c.failing.load(Relaxed) || c.announced.load(Relaxed)
    }

    /// Marks the current outage of `signal` as said; `true` the first time (say it then).
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn announce(&self, signal: Signal) -> bool {
        !self.signal(signal).announced.swap(true, Relaxed)
    }

    /// `items` were refused by the destination: counted as rejected, and as failed when
    /// `partial` (a partial success: the export itself is recorded as a success of the rest;
    /// a rejected request counts its items as failed in `record_export`). The reason is kept as
    /// the last error.
    #[cfg_attr(not(any(feature = "grpc", feature = "http")), allow(dead_code))]
    pub(crate) fn record_rejected(&self, signal: Signal, items: u64, partial: bool, why: String) {
        let c = self.signal(signal);
        c.rejected.fetch_add(items, Relaxed);
        if partial {
            c.failed.fetch_add(items, Relaxed);
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastError {
            signal,
            message: format!("rejected {items} items: {why}"),
            at: SystemTime::now(),
            resolved: false,
        });
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let signal = |s: Signal| {
            let c = self.signal(s);
            let accepted = c.accepted.load();
            let exported = c.exported.load(Relaxed);
            let failed = c.failed.load(Relaxed);
            SignalStats {
                accepted,
                exported,
                failed,
                unexported: accepted.saturating_sub(exported + failed),
                exports_ok: c.exports_ok.load(Relaxed),
                exports_failed: c.exports_failed.load(Relaxed),
                in_flight: c.in_flight.load(Relaxed),
                dropped: c.dropped.load(Relaxed),
                rejected: c.rejected.load(Relaxed),
                failing: c.failing.load(Relaxed),
            }
        };
        Stats {
            traces: signal(Signal::Traces),
            metrics: signal(Signal::Metrics),
            logs: signal(Signal::Logs),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            redacted: crate::redact::REDACTED_COUNT.load(Relaxed),
        }
    }
}

/// A snapshot of the pipeline's own counters, from [`crate::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Spans.
    pub traces: SignalStats,
    /// Metric data points.
    pub metrics: SignalStats,
    /// Log records.
    pub logs: SignalStats,
    /// The most recent export error of any signal.
    pub last_error: Option<LastError>,
    /// Attribute values and log bodies redacted before export (a secret-looking key masked, or a
    /// secret found in a value), since start-up.
    pub redacted: u64,
}

/// Counters of one signal since start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignalStats {
    /// Items handed to the batch processor (sampled spans that ended, log records emitted). Always
    /// 0 for metrics, which are aggregated rather than queued.
    pub accepted: u64,
    /// Items the destination accepted.
    pub exported: u64,
    /// Items in export requests that failed; they are lost.
    pub failed: u64,
    /// `accepted - exported - failed`: items still queued, or dropped because the queue was full.
    /// After shutdown has flushed, all of these were dropped.
    pub unexported: u64,
    /// Items dropped because the export queue was full (`OTEL_BSP_MAX_QUEUE_SIZE` /
    /// `OTEL_BLRP_MAX_QUEUE_SIZE`): the exporter could not keep up. Included in `unexported`.
    pub dropped: u64,
    /// Items the destination refused: in a request it rejected (a non-retryable error, such as
    /// invalid data or a request too large), or listed as rejected in a partial success. Included
    /// in `failed`.
    pub rejected: u64,
    /// Export requests that succeeded.
    pub exports_ok: u64,
    /// Export requests that failed.
    pub exports_failed: u64,
    /// Items in export requests under way. After shutdown, these were abandoned at the deadline.
    pub in_flight: u64,
    /// Whether the most recent export of this signal failed (cleared by the next success).
    pub failing: bool,
}

/// The last export error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// The signal whose export failed.
    pub signal: Signal,
    /// What the exporter said.
    pub message: String,
    /// When it happened.
    pub at: SystemTime,
    /// Whether an export of that signal has succeeded since.
    pub resolved: bool,
}

/// A snapshot of the pipeline's own counters: exports that succeeded and failed, items lost, and
/// the last error. Health checks and dashboards build on this.
pub fn stats() -> Stats {
    COUNTERS.snapshot()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_is_announced_once_and_recovery_once() {
        use Transition::*;
        let c = Counters::new();
        let fail = |s, n| c.record_export(s, n, Some("refused".into()));
        assert_eq!(fail(Signal::Traces, 5), StartedFailing);
        assert_eq!(fail(Signal::Logs, 1), StartedFailing);
        assert_eq!(
            fail(Signal::Traces, 5),
            None,
            "interleaved signals do not repeat it"
        );
        assert_eq!(c.record_export(Signal::Traces, 7, Option::None), Recovered);
        assert_eq!(c.record_export(Signal::Traces, 0, Option::None), None);
        assert_eq!(
            c.record_export(Signal::Traces, 1, Some("again".into())),
            StartedFailing
        );

        c.signal(Signal::Traces).accepted.add(20);
        let s = c.snapshot();
        assert_eq!(
            s.traces,
            SignalStats {
                accepted: 20,
                exported: 7,
                failed: 11,
                unexported: 2,
                exports_ok: 2,
                exports_failed: 3,
                in_flight: 0,
                dropped: 0,
                rejected: 0,
                failing: true,
            }
        );
        let last = s.last_error.expect("last error");
        assert_eq!((last.message.as_str(), last.resolved), ("again", false));
        assert_eq!(s.logs.exports_failed, 1);
    }

    #[test]
    fn a_striped_count_is_the_sum_of_every_threads_adds() {
        let c = Counters::new();
        let accepted = &c.signal(Signal::Logs).accepted;
        std::thread::scope(|scope| {
            for _ in 0..(STRIPES + 3) {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        accepted.add(1);
                    }
                });
            }
        });
        accepted.add(5);
        assert_eq!(c.snapshot().logs.accepted, (STRIPES as u64 + 3) * 1_000 + 5);
        assert_eq!(c.snapshot().traces.accepted, 0, "signals counted apart");
        assert!(stripe() < STRIPES);
    }
}
