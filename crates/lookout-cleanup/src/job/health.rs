//! A job's dead man's switch, as a health check.

use super::*;

/// A job's dead man's switch, as a [`lookout_health::HealthCheck`]. It reads the job's state and
/// runs nothing:
///
/// - **Down**: a run is stuck past its deadline plus the grace, or `failures_before_down`
///   consecutive runs failed or timed out;
/// - **Degraded**: the job is paused, the last run failed (fewer times than that), the last
///   run was `Partial`, or it is late: no successful run for the period plus the grace (counted
///   from the first tick before the first run);
/// - **Up** otherwise.
///
/// The observed value is the backlog (`{item}`); details: consecutive failures, runs in progress,
/// the last success's age.
#[derive(Clone)]
pub struct JobHealth {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for JobHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHealth")
            .field("job", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl JobHealth {
    /// The job's health now.
    pub fn assess(&self) -> lookout_health::CheckResult {
        use lookout_health::CheckResult;
        let shared = &self.shared;
        let st = shared.lock();
        let now = Instant::now();
        let stuck = st
            .running
            .iter()
            .find(|(_, r)| now > r.deadline + shared.grace)
            .map(|(id, r)| (*id, now - r.started));
        let since_success = st.last_success.map(|(_, at)| now - at);
        let reference = st
            .last_success
            .map_or(shared.created + shared.initial_delay, |(_, at)| at);
        let without_success = now.saturating_duration_since(reference);
        let late = without_success > shared.period + shared.grace;
        let result = if let Some((id, running_for)) = stuck {
            CheckResult::down(format!(
                "run {id} stuck: running for {}, past its deadline of {} plus grace {}",
                fmt_duration(round_ms(running_for)),
                fmt_duration(shared.deadline),
                fmt_duration(shared.grace)
            ))
            .with_error_type("stuck")
        } else if st.consecutive_failures >= shared.failures_before_down {
            let last = st.last.as_ref().and_then(|(_, _, m)| m.clone());
            CheckResult::down(format!(
                "{} consecutive failed runs; last: {}",
                st.consecutive_failures,
                last.unwrap_or_default()
            ))
            .with_error_type("failing")
        } else if st.paused {
            CheckResult::degraded("paused by an operator")
        } else if st.consecutive_failures > 0 {
            let last = st.last.as_ref().and_then(|(_, _, m)| m.clone());
            CheckResult::degraded(format!(
                "the last run failed ({} of {} before down): {}",
                st.consecutive_failures,
                shared.failures_before_down,
                last.unwrap_or_default()
            ))
        } else if let Some((Outcome::Partial, failed, _)) = &st.last {
            CheckResult::degraded(format!("the last run could not remove {failed} item(s)"))
        } else if late {
            CheckResult::degraded(format!(
                "late: no successful run for {} (expected every {}, grace {})",
                fmt_duration(round_ms(without_success)),
                fmt_duration(shared.period),
                fmt_duration(shared.grace)
            ))
            .with_error_type("late")
        } else {
            CheckResult::up()
        };
        let mut result = result
            .with_observed(st.backlog, "{item}")
            .with_detail("consecutive_failures", st.consecutive_failures)
            .with_detail("backlog", st.backlog)
            .with_detail("in_progress", st.running.len());
        if let Some(age) = since_success {
            result = result.with_detail("last_success_age", fmt_duration(round_ms(age)));
        }
        result
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl lookout_health::HealthCheck for JobHealth {
    async fn check(&self) -> lookout_health::CheckResult {
        self.assess()
    }
}
