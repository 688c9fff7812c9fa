//! One run of a job: its span, its deadline and budget, its outcome recorded.

use super::*;

pub(super) struct Run {
    pub(super) id: u64,
    pub(super) trigger: Trigger,
    pub(super) scheduled: Instant,
    pub(super) started: Instant,
    pub(super) cancel: CancellationToken,
    pub(super) kill: CancellationToken,
    pub(super) reason: Arc<OnceLock<&'static str>>,
}

/// How a run ended: its outcome, the statistics it returned, and the error type and message.
struct Verdict {
    outcome: Outcome,
    stats: Option<Stats>,
    error: Option<(String, String)>,
}

/// Runs the job's task once: under its span, until it returns, its deadline and grace pass, or it
/// is killed; then records what happened on the span, in the job's state and metrics, and in a
/// log line.
pub(super) async fn execute(shared: Arc<Shared>, run: Run) {
    let started_at = SystemTime::now();
    let lag = run.started.saturating_duration_since(run.scheduled);
    let span = run_span(&shared, &run, started_at, lag);
    let deadline = run.started + shared.deadline;
    let (end, timed_out) = drive(&shared, &run, &span, deadline).await;
    let duration = run.started.elapsed();
    let verdict = judge(&shared, &run, end, timed_out, deadline);
    record_on_span(&span, &verdict);
    let ended_at = SystemTime::now();
    let (last_success_unix, consecutive_failures) =
        record_in_state(&shared, &run, &verdict, started_at, lag, duration, ended_at);
    shared.instruments.get().finished(&Finished {
        outcome: verdict.outcome,
        duration_secs: duration.as_secs_f64(),
        stats: verdict.stats.as_ref(),
        ended_unix: unix_secs(ended_at),
        last_success_unix,
        consecutive_failures,
    });
    shared.finished.notify_waiters();
    say(&shared, &span, &verdict, duration);
}

/// The run's root span, `cleanup.run`, with what is known at its start.
fn run_span(shared: &Shared, run: &Run, started_at: SystemTime, lag: Duration) -> tracing::Span {
    tracing::info_span!(
        target: "lookout_cleanup",
        parent: None,
        "cleanup.run",
        cleanup.job.name = %shared.name,
        cleanup.run.id = run.id,
        cleanup.trigger = run.trigger.as_str(),
        faas.trigger = if run.trigger == Trigger::Timer { "timer" } else { "other" },
        cleanup.scheduled_at = unix_secs(started_at) - lag.as_secs_f64(),
        cleanup.lag = lag.as_secs_f64(),
        cleanup.outcome = Empty,
        cleanup.items.scanned = Empty,
        cleanup.items.removed = Empty,
        cleanup.items.failed = Empty,
        cleanup.items.remaining = Empty,
        error.type = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// Polls the task until it returns, or until it is killed, or until its deadline (it is asked to
/// stop) and grace (it is dropped) pass. Returns how it ended and whether the deadline passed.
async fn drive(shared: &Shared, run: &Run, span: &tracing::Span, deadline: Instant) -> (End, bool) {
    let ctx = RunContext::new(RunSettings {
        job: shared.name.clone(),
        run_id: run.id,
        trigger: run.trigger,
        cancel: run.cancel.clone(),
        started: run.started,
        deadline: Some(deadline),
        item_budget: shared.item_budget,
        time_budget: shared.time_budget,
        span: span.clone(),
    });
    let mut timed_out = false;
    let fut =
        AssertUnwindSafe(shared.task.clone().run(ctx).instrument(span.clone())).catch_unwind();
    tokio::pin!(fut);
    let end = loop {
        tokio::select! {
            biased;
            r = &mut fut => break End::Returned(r),
            () = run.kill.cancelled() => break End::Killed,
            () = tokio::time::sleep_until(deadline), if !timed_out => {
                timed_out = true;
                run.cancel.cancel();
                span.in_scope(|| tracing::warn!(
                    target: "lookout_cleanup",
                    job = %shared.name,
                    deadline = %fmt_duration(shared.deadline),
                    "cleanup run passed its deadline; asking it to stop"
                ));
            }
            () = tokio::time::sleep_until(deadline + shared.grace), if timed_out => {
                break End::Abandoned;
            }
        }
    };
    // The run's future is dropped here if it did not finish.
    (end, timed_out)
}

/// The outcome of a run from how it ended.
fn judge(shared: &Shared, run: &Run, end: End, timed_out: bool, deadline: Instant) -> Verdict {
    let cancelled = || {
        let why = run.reason.get().copied().unwrap_or("cancelled");
        Some(("cancelled".to_owned(), why.to_owned()))
    };
    let (outcome, stats, error) = match end {
        End::Returned(Ok(Ok(stats))) => {
            if run.kill.is_cancelled() {
                (Outcome::Cancelled, Some(stats), cancelled())
            } else if timed_out || Instant::now() > deadline {
                // (Past the deadline without having been told: the run never yielded.)
                let message = format!(
                    "returned after its deadline of {}",
                    fmt_duration(shared.deadline)
                );
                (
                    Outcome::Timeout,
                    Some(stats),
                    Some(("timeout".into(), message)),
                )
            } else if stats.failed > 0 {
                (Outcome::Partial, Some(stats), None)
            } else {
                (Outcome::Success, Some(stats), None)
            }
        }
        End::Returned(Ok(Err(e))) => (Outcome::Failure, None, Some((e.error_type, e.message))),
        End::Returned(Err(panic)) => (
            Outcome::Failure,
            None,
            Some(("panic".into(), lookout::panic_message(panic.as_ref()))),
        ),
        End::Killed => (Outcome::Cancelled, None, cancelled()),
        End::Abandoned => (
            Outcome::Timeout,
            None,
            Some((
                "timeout".into(),
                format!(
                    "did not stop within {} after its deadline of {}; dropped",
                    fmt_duration(shared.grace),
                    fmt_duration(shared.deadline)
                ),
            )),
        ),
    };
    Verdict {
        outcome,
        stats,
        error,
    }
}

/// The outcome, the item counts and the error on the run's span.
fn record_on_span(span: &tracing::Span, verdict: &Verdict) {
    let outcome = verdict.outcome;
    span.record("cleanup.outcome", outcome.as_str());
    if let Some(s) = &verdict.stats {
        span.record("cleanup.items.scanned", s.scanned);
        span.record("cleanup.items.removed", s.removed);
        span.record("cleanup.items.failed", s.failed);
        span.record("cleanup.items.remaining", s.remaining);
        for (name, n) in &s.custom {
            span.set_attribute(
                format!("cleanup.count.{name}"),
                i64::try_from(*n).unwrap_or(i64::MAX),
            );
        }
    }
    if let Some((error_type, message)) = &verdict.error {
        if outcome != Outcome::Cancelled {
            span.record(semconv::ERROR_TYPE, error_type.as_str());
        }
        if outcome.is_failure() {
            span.record(semconv::OTEL_STATUS_CODE, "ERROR");
            span.record(semconv::OTEL_STATUS_DESCRIPTION, message.as_str());
        }
    }
}

/// The run in the job's state: totals, last success, consecutive failures, history. Returns the
/// last success (Unix seconds) and the consecutive failures, for the metrics.
fn record_in_state(
    shared: &Shared,
    run: &Run,
    verdict: &Verdict,
    started_at: SystemTime,
    lag: Duration,
    duration: Duration,
    ended_at: SystemTime,
) -> (Option<f64>, u32) {
    let Verdict {
        outcome,
        stats,
        error,
    } = verdict;
    let outcome = *outcome;
    let mut st = shared.lock();
    st.running.remove(&run.id);
    st.runs_by_outcome[outcome.index()] += 1;
    st.duration_total += duration;
    st.duration_max = Some(st.duration_max.map_or(duration, |m| m.max(duration)));
    if let Some(s) = stats {
        st.scanned += s.scanned;
        st.removed += s.removed;
        st.failed += s.failed;
        st.backlog = s.remaining;
    }
    match outcome {
        Outcome::Success | Outcome::Partial => {
            st.consecutive_failures = 0;
            st.last_success = Some((ended_at, Instant::now()));
        }
        Outcome::Failure | Outcome::Timeout => st.consecutive_failures += 1,
        Outcome::Cancelled | Outcome::Skipped => {}
    }
    st.last_run = Some(ended_at);
    st.last = Some((
        outcome,
        stats.as_ref().map_or(0, |s| s.failed),
        error.as_ref().map(|(_, m)| m.clone()),
    ));
    let record = RunRecord {
        id: run.id,
        trigger: run.trigger,
        outcome,
        started_at,
        duration,
        lag,
        stats: stats.clone().unwrap_or_default(),
        error_type: error.as_ref().map(|(t, _)| t.clone()),
        message: error.as_ref().map(|(_, m)| m.clone()),
    };
    shared.push_history(&mut st, record);
    shared.instruments.get().in_progress(st.running.len());
    (
        st.last_success.map(|(t, _)| unix_secs(t)),
        st.consecutive_failures,
    )
}

/// One log line for the run, inside its span: ERROR for a failure, WARN for a partial or
/// cancelled run, INFO otherwise.
fn say(shared: &Shared, span: &tracing::Span, verdict: &Verdict, duration: Duration) {
    let outcome = verdict.outcome;
    let error = &verdict.error;
    let is_error = outcome.is_failure() || outcome == Outcome::Partial;
    let s = verdict.stats.clone().unwrap_or_default();
    span.in_scope(|| match error {
        Some((error_type, message)) if outcome.is_failure() => tracing::error!(
            target: "lookout_cleanup",
            job = %shared.name,
            outcome = outcome.as_str(),
            error.type = error_type.as_str(),
            duration = %fmt_duration(duration),
            "cleanup run failed: {message}"
        ),
        _ if is_error || outcome == Outcome::Cancelled => tracing::warn!(
            target: "lookout_cleanup",
            job = %shared.name,
            outcome = outcome.as_str(),
            scanned = s.scanned,
            removed = s.removed,
            failed = s.failed,
            remaining = s.remaining,
            duration = %fmt_duration(duration),
            "cleanup run ended: {}",
            error.as_ref().map_or("some items failed", |(_, m)| m.as_str())
        ),
        _ => tracing::info!(
            target: "lookout_cleanup",
            job = %shared.name,
            outcome = outcome.as_str(),
            scanned = s.scanned,
            removed = s.removed,
            remaining = s.remaining,
            duration = %fmt_duration(duration),
            "cleanup run finished"
        ),
    });
}
