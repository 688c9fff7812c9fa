use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{CheckResult, HealthCheck};

/// The error rate of an operation over a sliding window, recorded by the application and checked
/// against thresholds: Up below `degraded_at` (default 3 %), Degraded from there up to
/// `down_above` (default 5 %), Down above it. Below `min_calls` calls in the window (default 20)
/// it is Up: too few calls say nothing. Clones share the window.
///
/// ```
/// let checkout = lookout_health::checks::ErrorRate::new(std::time::Duration::from_secs(60));
/// checkout.record(true);
/// checkout.record(false);
/// assert_eq!(checkout.rate(), Some(0.5));
/// ```
#[derive(Debug, Clone)]
#[must_use = "a check does nothing until registered in a Health registry"]
pub struct ErrorRate {
    window: Arc<Mutex<Window>>,
    degraded_at: f64,
    down_above: f64,
    min_calls: u64,
}

/// Per-second buckets over the window.
#[derive(Debug)]
struct Window {
    start: Instant,
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: u64,
    calls: u64,
    errors: u64,
}

impl Window {
    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    fn totals(&self) -> (u64, u64) {
        let now = self.now();
        let len = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|b| now.saturating_sub(b.second) < len)
            .fold((0, 0), |(c, e), b| (c + b.calls, e + b.errors))
    }
}

impl ErrorRate {
    /// A window of `window` (rounded to whole seconds, at least 1).
    pub fn new(window: Duration) -> ErrorRate {
        let secs = window.as_secs().max(1) as usize;
        ErrorRate {
            window: Arc::new(Mutex::new(Window {
                start: Instant::now(),
                buckets: vec![Bucket::default(); secs],
            })),
            degraded_at: 0.03,
            down_above: 0.05,
            min_calls: 20,
        }
    }

    /// Degraded from this fraction (0.03 = 3 %).
    pub fn degraded_at(mut self, fraction: f64) -> ErrorRate {
        self.degraded_at = fraction;
        self
    }

    /// Down above this fraction.
    pub fn down_above(mut self, fraction: f64) -> ErrorRate {
        self.down_above = fraction;
        self
    }

    /// Fewer calls than this in the window report Up.
    pub fn min_calls(mut self, n: u64) -> ErrorRate {
        self.min_calls = n;
        self
    }

    /// Records one call: `true` if it succeeded.
    pub fn record(&self, ok: bool) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = w.now();
        let len = w.buckets.len();
        let bucket = &mut w.buckets[(now % len as u64) as usize];
        if bucket.second != now {
            *bucket = Bucket {
                second: now,
                ..Bucket::default()
            };
        }
        bucket.calls += 1;
        bucket.errors += u64::from(!ok);
    }

    /// Records a call from its result.
    pub fn record_result<T, E>(&self, result: &Result<T, E>) {
        self.record(result.is_ok());
    }

    /// Calls and errors in the window.
    pub fn totals(&self) -> (u64, u64) {
        self.window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .totals()
    }

    /// The error fraction in the window, `None` with no calls.
    pub fn rate(&self) -> Option<f64> {
        let (calls, errors) = self.totals();
        (calls > 0).then(|| errors as f64 / calls as f64)
    }
}

impl HealthCheck for ErrorRate {
    async fn check(&self) -> CheckResult {
        let (calls, errors) = self.totals();
        let rate = if calls == 0 {
            0.0
        } else {
            errors as f64 / calls as f64
        };
        let percent = rate * 100.0;
        let result = if calls < self.min_calls {
            CheckResult::up().with_message(format!(
                "{calls} calls in the window, fewer than the {} needed to judge",
                self.min_calls
            ))
        } else if rate > self.down_above {
            CheckResult::down(format!(
                "error rate {percent:.1} % is above {:.1} %",
                self.down_above * 100.0
            ))
        } else if rate >= self.degraded_at {
            CheckResult::degraded(format!(
                "error rate {percent:.1} % is at or above {:.1} %",
                self.degraded_at * 100.0
            ))
        } else {
            CheckResult::up()
        };
        result
            .with_observed(percent, "%")
            .with_detail("calls", calls)
            .with_detail("errors", errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    async fn status_with(errors: u64, calls: u64) -> Status {
        let rate = ErrorRate::new(Duration::from_secs(60));
        for i in 0..calls {
            rate.record(i >= errors);
        }
        rate.check().await.status()
    }

    #[tokio::test]
    async fn seeds_thresholds() {
        assert_eq!(status_with(2, 100).await, Status::Up, "2 %");
        assert_eq!(status_with(3, 100).await, Status::Degraded, "3 %");
        assert_eq!(status_with(5, 100).await, Status::Degraded, "5 %");
        assert_eq!(status_with(6, 100).await, Status::Down, "6 %");
        assert_eq!(status_with(10, 19).await, Status::Up, "too few calls");
    }

    #[test]
    fn old_calls_leave_the_window() {
        let rate = ErrorRate::new(Duration::from_secs(1));
        for _ in 0..50 {
            rate.record(false);
        }
        assert_eq!(rate.totals(), (50, 50));
        // The window is wall-clock seconds (std Instant), so only real time moves it.
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(rate.totals(), (0, 0));
        rate.record(true);
        assert_eq!(rate.rate(), Some(0.0));
    }
}
