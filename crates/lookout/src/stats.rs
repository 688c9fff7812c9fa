//! The pipeline's own counters: what was exported, what failed, what was lost.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

use crate::config::{Signal, signal_index};

#[derive(Debug)]
pub(crate) struct SignalCounters {
    /// Spans ended (sampled) or log records emitted: handed to the batch processor.
    pub(crate) accepted: AtomicU64,
    /// Items in exports that succeeded.
    pub(crate) exported: AtomicU64,
    /// Items in exports that failed (lost).
    pub(crate) failed: AtomicU64,
    pub(crate) exports_ok: AtomicU64,
    pub(crate) exports_failed: AtomicU64,
}

impl SignalCounters {
    const fn new() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            exports_ok: AtomicU64::new(0),
            exports_failed: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    signals: [SignalCounters; 3],
    last_error: Mutex<Option<LastError>>,
}

pub(crate) static COUNTERS: Counters = Counters {
    signals: [
        SignalCounters::new(),
        SignalCounters::new(),
        SignalCounters::new(),
    ],
    last_error: Mutex::new(None),
};

impl Counters {
    pub(crate) fn signal(&self, signal: Signal) -> &SignalCounters {
        &self.signals[signal_index(signal)]
    }

    /// Records an export's outcome. Returns true when this failure follows a success (or is the
    /// first), so the caller says so once instead of on every failed batch.
    pub(crate) fn record_export(&self, signal: Signal, items: u64, error: Option<String>) -> bool {
        let c = self.signal(signal);
        match error {
            None => {
                c.exported.fetch_add(items, Relaxed);
                c.exports_ok.fetch_add(1, Relaxed);
                false
            }
            Some(message) => {
                c.failed.fetch_add(items, Relaxed);
                c.exports_failed.fetch_add(1, Relaxed);
                let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
                let first_in_a_row = last
                    .as_ref()
                    .is_none_or(|l| l.signal != signal || l.resolved);
                *last = Some(LastError {
                    signal,
                    message,
                    at: SystemTime::now(),
                    resolved: false,
                });
                first_in_a_row
            }
        }
    }

    /// Marks the last error of `signal` as resolved; true when it was unresolved.
    pub(crate) fn record_recovery(&self, signal: Signal) -> bool {
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match last.as_mut() {
            Some(l) if l.signal == signal && !l.resolved => {
                l.resolved = true;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let signal = |s: Signal| {
            let c = self.signal(s);
            let accepted = c.accepted.load(Relaxed);
            let exported = c.exported.load(Relaxed);
            let failed = c.failed.load(Relaxed);
            SignalStats {
                accepted,
                exported,
                failed,
                unexported: accepted.saturating_sub(exported + failed),
                exports_ok: c.exports_ok.load(Relaxed),
                exports_failed: c.exports_failed.load(Relaxed),
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
    /// Export requests that succeeded.
    pub exports_ok: u64,
    /// Export requests that failed.
    pub exports_failed: u64,
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
