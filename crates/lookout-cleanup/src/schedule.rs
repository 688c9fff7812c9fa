//! When runs start: fixed rate, fixed delay, or a cron expression.

use std::time::Duration;

use tokio::time::Instant;

/// When a job's timer runs it.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Fixed rate: ticks every period from the first one, whatever the runs' length. Ticks the
    /// scheduler could not honour in time (the process or runtime stalled) are skipped and
    /// counted, never run in a burst (unlike `tokio::time::interval`'s default).
    Every(Duration),
    /// Fixed delay: the next run starts this long after the previous one ended.
    AfterEach(Duration),
    /// A cron expression (6 or 7 fields, seconds first, UTC), with the `cron` feature.
    #[cfg(feature = "cron")]
    Cron(Box<cron::Schedule>),
}

impl Schedule {
    /// How often a run is expected: the period, the delay, or the gap between the next two cron
    /// firings. The health check calls a job late when no run succeeded for this plus the grace.
    pub(crate) fn expected_period(&self) -> Duration {
        match self {
            Schedule::Every(p) | Schedule::AfterEach(p) => *p,
            #[cfg(feature = "cron")]
            Schedule::Cron(s) => {
                let mut upcoming = s.upcoming(chrono::Utc);
                match (upcoming.next(), upcoming.next()) {
                    (Some(a), Some(b)) => (b - a).to_std().unwrap_or(Duration::from_secs(60)),
                    _ => Duration::MAX / 4,
                }
            }
        }
    }
}

/// A fixed-rate clock: where the next tick falls, and how many were missed.
#[derive(Debug)]
pub(crate) struct RateClock {
    next: Instant,
    period: Duration,
}

impl RateClock {
    pub(crate) fn new(first: Instant, period: Duration) -> RateClock {
        RateClock {
            next: first,
            period,
        }
    }

    /// The tick due next (without jitter).
    pub(crate) fn due(&self) -> Instant {
        self.next
    }

    /// Called when the tick due has been acted on at `now`: returns how many later ticks also
    /// passed (missed, to be skipped) and moves to the first tick after `now`.
    pub(crate) fn advance(&mut self, now: Instant) -> u64 {
        let behind = now.saturating_duration_since(self.next);
        let missed = (behind.as_nanos() / self.period.as_nanos().max(1)) as u64;
        let steps = u32::try_from(missed.saturating_add(1)).unwrap_or(u32::MAX);
        self.next += self.period.saturating_mul(steps);
        missed
    }
}

/// The cron schedule's next firing after now and after `previous` (so that one firing is never
/// taken twice), as wall-clock time and as the instant to sleep until.
#[cfg(feature = "cron")]
pub(crate) fn next_cron(
    schedule: &cron::Schedule,
    previous: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<(chrono::DateTime<chrono::Utc>, Instant)> {
    let now = chrono::Utc::now();
    let from = previous.map_or(now, |p| p.max(now));
    let next = schedule.after(&from).next()?;
    let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
    Some((next, Instant::now() + wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_time_ticks_miss_nothing_and_late_ones_skip_whole_periods() {
        let t0 = Instant::now();
        let p = Duration::from_secs(10);
        let mut clock = RateClock::new(t0, p);
        assert_eq!(clock.advance(t0 + Duration::from_millis(3)), 0);
        assert_eq!(clock.due(), t0 + p);
        // Woken 35 s after the tick due at 10 s: the ticks at 20, 30 and 40 s... 20 and 30 passed.
        assert_eq!(clock.advance(t0 + Duration::from_secs(45)), 3);
        assert_eq!(clock.due(), t0 + Duration::from_secs(50));
    }
}
