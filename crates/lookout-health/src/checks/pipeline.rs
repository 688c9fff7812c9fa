use std::sync::Mutex;

use lookout::{Signal, SignalStats, Stats};

use crate::{CheckResult, HealthCheck};

/// lookout's own telemetry pipeline, from [`lookout::stats`]: Degraded while exports of a signal
/// are failing, or when items were lost since the previous run (in failed exports, or dropped
/// because the export queue was full: the exporter cannot keep up); Up otherwise. It never
/// reports Down: a service that cannot export telemetry still serves its users.
///
/// The observed value is the number of items lost since the previous run.
#[derive(Debug, Default)]
pub struct Pipeline {
    previous: Mutex<Option<Stats>>,
    read: Option<fn() -> Stats>,
}

impl Pipeline {
    /// Reads `lookout::stats()`.
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// Reads the counters from `read` instead (for tests and other pipelines).
    pub fn with_reader(read: fn() -> Stats) -> Pipeline {
        Pipeline {
            previous: Mutex::new(None),
            read: Some(read),
        }
    }
}

fn signals(s: &Stats) -> [(Signal, &SignalStats); 3] {
    [
        (Signal::Traces, &s.traces),
        (Signal::Metrics, &s.metrics),
        (Signal::Logs, &s.logs),
    ]
}

impl HealthCheck for Pipeline {
    async fn check(&self) -> CheckResult {
        let now = self.read.map_or_else(lookout::stats, |read| read());
        let previous = self
            .previous
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(now.clone());
        let mut problems = Vec::new();
        let mut lost_total = 0;
        for (i, (signal, stats)) in signals(&now).into_iter().enumerate() {
            let before = previous
                .as_ref()
                .map(|p| *signals(p)[i].1)
                .unwrap_or_default();
            let failed = stats.failed.saturating_sub(before.failed);
            let dropped = stats.dropped.saturating_sub(before.dropped);
            lost_total += failed + dropped;
            if stats.failing {
                problems.push(format!("{signal:?} exports are failing"));
            }
            if failed > 0 {
                problems.push(format!("{failed} {signal:?} items lost"));
            }
            if dropped > 0 {
                problems.push(format!(
                    "{dropped} {signal:?} items dropped: the export queue was full"
                ));
            }
        }
        let result = if let Some(why) = lookout::metrics::poisoned() {
            // Metrics are gone for good in this process: not degraded, down.
            CheckResult::down(format!("metrics cannot be collected: {why}"))
        } else if problems.is_empty() {
            CheckResult::up()
        } else {
            let mut message = problems.join("; ");
            if let Some(e) = now.last_error.as_ref().filter(|e| !e.resolved) {
                message.push_str(&format!(" (last error: {})", e.message));
            }
            CheckResult::degraded(message)
        };
        result
            .with_observed(lost_total, "{item}")
            .with_detail("tracesExported", now.traces.exported)
            .with_detail("metricsExported", now.metrics.exported)
            .with_detail("logsExported", now.logs.exported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use std::sync::atomic::{AtomicU64, Ordering};

    static FAILED: AtomicU64 = AtomicU64::new(0);
    static FAILING: AtomicU64 = AtomicU64::new(0);

    fn fake() -> Stats {
        Stats {
            traces: SignalStats {
                failed: FAILED.load(Ordering::SeqCst),
                failing: FAILING.load(Ordering::SeqCst) == 1,
                ..SignalStats::default()
            },
            metrics: SignalStats::default(),
            logs: SignalStats::default(),
            last_error: None,
            redacted: 0,
        }
    }

    #[tokio::test]
    async fn failing_exports_and_losses_degrade_and_recovery_clears() {
        let check = Pipeline::with_reader(fake);
        assert_eq!(check.check().await.status(), Status::Up);
        FAILED.store(5, Ordering::SeqCst);
        FAILING.store(1, Ordering::SeqCst);
        let r = check.check().await;
        assert_eq!(r.status(), Status::Degraded);
        assert_eq!(r.observed().map(|(v, _)| v.clone()), Some(5.into()));
        assert!(
            r.message()
                .is_some_and(|m| m.contains("Traces exports are failing"))
        );
        FAILING.store(0, Ordering::SeqCst);
        assert_eq!(check.check().await.status(), Status::Up, "no new losses");
    }

    static DROPPED: AtomicU64 = AtomicU64::new(0);

    fn dropping() -> Stats {
        Stats {
            logs: SignalStats {
                dropped: DROPPED.load(Ordering::SeqCst),
                ..SignalStats::default()
            },
            traces: SignalStats::default(),
            metrics: SignalStats::default(),
            last_error: None,
            redacted: 0,
        }
    }

    #[tokio::test]
    async fn a_full_export_queue_degrades_until_nothing_more_is_dropped() {
        let check = Pipeline::with_reader(dropping);
        assert_eq!(check.check().await.status(), Status::Up);
        DROPPED.store(40, Ordering::SeqCst);
        let r = check.check().await;
        assert_eq!(r.status(), Status::Degraded);
        assert_eq!(r.observed().map(|(v, _)| v.clone()), Some(40.into()));
        assert_eq!(
            r.message(),
            Some("40 Logs items dropped: the export queue was full")
        );
        assert_eq!(check.check().await.status(), Status::Up, "no new drops");
    }
}
