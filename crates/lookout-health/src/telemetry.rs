//! The registry's own telemetry: metrics read from stored results (a scrape never runs a check),
//! a log event per state change, a span per failed or state-changing run, slow runs reported.

use std::borrow::Cow;
use std::fmt;
use std::sync::Weak;
use std::time::SystemTime;

use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry::{KeyValue, trace};

use crate::check::Check;
use crate::entry::Stored;
use crate::registry::Inner;
use crate::status::Status;

/// Attribute naming the check.
pub const CHECK_NAME: &str = "health.check.name";
/// Attribute of `health.check.status`: one series per status, 1 for the current one.
pub const STATUS: &str = "health.status";
/// Attribute of `health.check.runs`: the run's outcome (`up`, `degraded`, `down`, or the error
/// type `timeout`, `panic`).
pub const OUTCOME: &str = "health.check.outcome";

/// Seconds; the OpenTelemetry HTTP duration buckets, which suit checks bounded by ~1 s.
use lookout::metrics::HTTP_DURATION_BUCKETS as DURATION_BUCKETS;

pub(crate) struct Telemetry {
    /// Made again when lookout installs another meter provider: a registry built before
    /// `lookout::init` records into the pipeline `init` starts.
    metrics: lookout::metrics::Current<Instruments>,
    tracer: Option<BoxedTracer>,
}

struct Instruments {
    runs: Counter<u64>,
    duration: Histogram<f64>,
    _status: ObservableGauge<u64>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

pub(crate) fn lower(status: Status) -> &'static str {
    match status {
        Status::Up => "up",
        Status::Degraded => "degraded",
        Status::Unknown => "unknown",
        Status::OutOfService => "out_of_service",
        Status::Down => "down",
    }
}

impl Telemetry {
    pub(crate) fn new(
        meter: Option<Meter>,
        inner: Weak<Inner>,
        tracer: Option<BoxedTracer>,
    ) -> Self {
        Telemetry {
            metrics: lookout::metrics::Current::new("lookout-health", meter, move |m| {
                Instruments::new(m, inner.clone())
            }),
            tracer,
        }
    }
}

impl Instruments {
    fn new(meter: &Meter, inner: Weak<Inner>) -> Self {
        let status = meter
            .u64_observable_gauge("health.check.status")
            .with_unit("1")
            .with_description("1 for the check's current status, 0 for the others")
            .with_callback(move |observer| {
                // A panic here must not poison the SDK's metric pipeline (and with it every
                // metric of the process): it is caught, and this collection goes without it.
                let observed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let Some(inner) = inner.upgrade() else {
                        return;
                    };
                    for entry in inner.entries() {
                        let current = entry.status();
                        for s in Status::ALL {
                            observer.observe(
                                u64::from(s == current),
                                &[
                                    KeyValue::new(CHECK_NAME, entry.check.name.clone()),
                                    KeyValue::new(STATUS, lower(s)),
                                ],
                            );
                        }
                    }
                }));
                if observed.is_err() {
                    tracing::warn!(
                        target: "lookout_health",
                        "observing health.check.status panicked; left out of this collection"
                    );
                }
            })
            .build();
        Instruments {
            runs: meter
                .u64_counter("health.check.runs")
                .with_unit("{run}")
                .with_description("Runs of a health check, by outcome")
                .build(),
            duration: meter
                .f64_histogram("health.check.duration")
                .with_unit("s")
                .with_description("How long a health check run took")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            _status: status,
        }
    }
}

impl Telemetry {
    pub(crate) fn record_run(
        &self,
        check: &Check,
        changed_from: Option<Status>,
        stored: &Stored,
        start_time: SystemTime,
    ) {
        let name = check.name.clone();
        let outcome: Cow<'static, str> = match stored.result.error_type() {
            Some(t) => Cow::Owned(t.to_owned()),
            None => Cow::Borrowed(lower(stored.raw)),
        };
        let metrics = self.metrics.get();
        metrics.runs.add(
            1,
            &[
                KeyValue::new(CHECK_NAME, name.clone()),
                KeyValue::new(OUTCOME, outcome.clone()),
            ],
        );
        let secs = stored.duration.as_secs_f64();
        metrics
            .duration
            .record(secs, &[KeyValue::new(CHECK_NAME, name.clone())]);
        if stored.duration > check.slow_after {
            tracing::warn!(
                target: "lookout_health",
                check = %name,
                duration_ms = stored.duration.as_millis() as u64,
                timeout_ms = check.timeout.as_millis() as u64,
                "health check '{name}' is slow: took {} ms",
                stored.duration.as_millis()
            );
        }
        let now = stored.result.status;
        if let Some(prev) = changed_from {
            let message = stored.result.message().unwrap_or("");
            match now {
                Status::Up => tracing::info!(
                    target: "lookout_health", check = %name, from = %prev, to = %now,
                    "health check '{name}' is now {now} (was {prev})"
                ),
                Status::Degraded | Status::Unknown => tracing::warn!(
                    target: "lookout_health", check = %name, from = %prev, to = %now, output = message,
                    "health check '{name}' is now {now} (was {prev}): {message}"
                ),
                Status::Down | Status::OutOfService => tracing::error!(
                    target: "lookout_health", check = %name, from = %prev, to = %now, output = message,
                    "health check '{name}' is now {now} (was {prev}): {message}"
                ),
            }
        }
        if changed_from.is_some() || !stored.raw.is_serving() {
            self.span(check, changed_from, stored, start_time, &outcome);
        }
    }

    fn span(
        &self,
        check: &Check,
        changed_from: Option<Status>,
        stored: &Stored,
        start_time: SystemTime,
        outcome: &str,
    ) {
        let mut attributes = vec![
            KeyValue::new(CHECK_NAME, check.name.clone()),
            KeyValue::new(STATUS, lower(stored.result.status)),
            KeyValue::new(OUTCOME, outcome.to_owned()),
        ];
        if let Some(prev) = changed_from {
            attributes.push(KeyValue::new("health.status.previous", lower(prev)));
        }
        if let Some(t) = stored.result.error_type() {
            attributes.push(KeyValue::new(
                opentelemetry_semantic_conventions::attribute::ERROR_TYPE,
                t.to_owned(),
            ));
        }
        let builder = trace::SpanBuilder::from_name(format!("health.check {}", check.name))
            .with_kind(SpanKind::Internal)
            .with_start_time(start_time)
            .with_attributes(attributes);
        let end = start_time + stored.duration;
        let mut span = match &self.tracer {
            Some(t) => t.build(builder),
            None => opentelemetry::global::tracer("lookout-health").build(builder),
        };
        if !stored.raw.is_serving() {
            span.set_status(trace::Status::error(
                stored.result.message().unwrap_or("check failed").to_owned(),
            ));
        }
        span.end_with_timestamp(end);
    }
}
