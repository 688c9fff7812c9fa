//! The job's metrics, all registered at zero when the job starts.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

use crate::stats::Outcome;

/// Seconds, from 10 ms to 10 min: cleanup runs are longer than requests.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// The attribute naming the job on every metric and span.
pub const JOB_NAME: &str = "cleanup.job.name";
/// The attribute with a run's outcome on `cleanup.runs`.
pub const OUTCOME: &str = "cleanup.outcome";
/// The attribute with the action on `cleanup.items` (`scanned`, `removed`, `failed`).
pub const ACTION: &str = "cleanup.action";

#[derive(Debug)]
pub(crate) struct Instruments {
    job: KeyValue,
    runs: Counter<u64>,
    duration: Histogram<f64>,
    items: Counter<u64>,
    last_success: Gauge<f64>,
    last_run: Gauge<f64>,
    in_progress: Gauge<i64>,
    consecutive_failures: Gauge<i64>,
    backlog: Gauge<i64>,
    missed: Counter<u64>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter, job: &str) -> Instruments {
        let i = Instruments {
            job: KeyValue::new(JOB_NAME, job.to_owned()),
            runs: meter
                .u64_counter("cleanup.runs")
                .with_unit("{run}")
                .with_description("Cleanup runs by outcome (skipped ticks included)")
                .build(),
            duration: meter
                .f64_histogram("cleanup.run.duration")
                .with_unit("s")
                .with_description("Duration of cleanup runs")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            items: meter
                .u64_counter("cleanup.items")
                .with_unit("{item}")
                .with_description("Items scanned, removed and failed by cleanup runs")
                .build(),
            last_success: meter
                .f64_gauge("cleanup.last_success.timestamp")
                .with_unit("s")
                .with_description("When the last successful run ended (Unix seconds; 0: never)")
                .build(),
            last_run: meter
                .f64_gauge("cleanup.last_run.timestamp")
                .with_unit("s")
                .with_description("When the last run ended (Unix seconds; 0: never)")
                .build(),
            in_progress: meter
                .i64_gauge("cleanup.in_progress")
                .with_unit("{run}")
                .with_description("Cleanup runs in progress")
                .build(),
            consecutive_failures: meter
                .i64_gauge("cleanup.consecutive_failures")
                .with_unit("{run}")
                .with_description("Failed or timed-out runs since the last one that did not fail")
                .build(),
            backlog: meter
                .i64_gauge("cleanup.backlog")
                .with_unit("{item}")
                .with_description("Items the last run left for later")
                .build(),
            missed: meter
                .u64_counter("cleanup.ticks.missed")
                .with_unit("{tick}")
                .with_description("Timer ticks skipped because the scheduler was late")
                .build(),
        };
        // Every series exists from the start (Prometheus' advice: absent series break rates
        // and alerts).
        for outcome in Outcome::ALL {
            i.runs.add(
                0,
                &[i.job.clone(), KeyValue::new(OUTCOME, outcome.as_str())],
            );
        }
        for action in ["scanned", "removed", "failed"] {
            i.items
                .add(0, &[i.job.clone(), KeyValue::new(ACTION, action)]);
        }
        let job = std::slice::from_ref(&i.job);
        i.missed.add(0, job);
        i.last_success.record(0.0, job);
        i.last_run.record(0.0, job);
        i.in_progress.record(0, job);
        i.consecutive_failures.record(0, job);
        i.backlog.record(0, job);
        i
    }

    fn job(&self) -> &[KeyValue] {
        std::slice::from_ref(&self.job)
    }

    pub(crate) fn skipped(&self) {
        self.run(Outcome::Skipped);
    }

    fn run(&self, outcome: Outcome) {
        self.runs.add(
            1,
            &[self.job.clone(), KeyValue::new(OUTCOME, outcome.as_str())],
        );
    }

    pub(crate) fn missed(&self, n: u64) {
        self.missed.add(n, self.job());
    }

    pub(crate) fn in_progress(&self, n: usize) {
        self.in_progress
            .record(i64::try_from(n).unwrap_or(i64::MAX), self.job());
    }

    /// Records a run that executed.
    pub(crate) fn finished(&self, f: &Finished) {
        self.run(f.outcome);
        let job = self.job();
        self.duration.record(f.duration_secs, job);
        if let Some(stats) = f.stats {
            for (action, n) in [
                ("scanned", stats.scanned),
                ("removed", stats.removed),
                ("failed", stats.failed),
            ] {
                if n > 0 {
                    self.items
                        .add(n, &[self.job.clone(), KeyValue::new(ACTION, action)]);
                }
            }
            self.backlog
                .record(i64::try_from(stats.remaining).unwrap_or(i64::MAX), job);
        }
        self.last_run.record(f.ended_unix, job);
        if let Some(t) = f.last_success_unix {
            self.last_success.record(t, job);
        }
        self.consecutive_failures
            .record(i64::from(f.consecutive_failures), job);
    }
}

/// What [`Instruments::finished`] records.
pub(crate) struct Finished<'a> {
    pub(crate) outcome: Outcome,
    pub(crate) duration_secs: f64,
    pub(crate) stats: Option<&'a crate::Stats>,
    pub(crate) ended_unix: f64,
    pub(crate) last_success_unix: Option<f64>,
    pub(crate) consecutive_failures: u32,
}
