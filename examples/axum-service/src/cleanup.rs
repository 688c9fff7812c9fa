//! The session-cleanup job: deletes expired sessions in batches, through lookout-cleanup (a span
//! per run and per batch, `cleanup.*` metrics, a health check that goes bad when it stops).

use std::time::Duration;

use lookout_cleanup::{BuildError, Job, RunContext, Stats};
use tracing::Instrument as _;

use crate::store::{Store, StoreError};

/// Sessions deleted per statement. Each batch holds the database connection while it runs, so
/// its size bounds how long an API request waits behind the cleanup (about 200 ms for 5,000
/// among 1,000,000 sessions; see BENCHMARKS.md).
pub const BATCH: u64 = 5_000;
/// Sessions deleted per run at most (two batches), so that a run stays under 500 ms even with a
/// huge backlog; the rest is reported as `remaining` (the `cleanup.backlog` gauge) and taken by
/// the next runs.
pub const BUDGET: u64 = 10_000;

/// Starts the job on the current runtime, every `interval` (with up to 10 % jitter).
pub fn spawn(store: Store, interval: Duration) -> Result<Job, BuildError> {
    Job::builder("session-cleanup")
        .every(interval)
        .jitter(interval / 10)
        .item_budget(BUDGET)
        .spawn(move |ctx: RunContext| run(store.clone(), ctx))
}

/// One run: batches of [`BATCH`] until nothing is expired or the budget is spent; what is left
/// is counted once, at the end (counting after every batch cost more than the batch).
pub async fn run(store: Store, ctx: RunContext) -> Result<Stats, StoreError> {
    let mut stats = Stats::default();
    let mut drained = false;
    while ctx.should_continue(stats.removed) {
        let limit = ctx.batch_size(BATCH, stats.removed);
        let removed = store
            .delete_expired(limit)
            .instrument(ctx.batch_span())
            .await?;
        stats.scanned += removed;
        stats.removed += removed;
        if removed < limit {
            drained = true;
            break;
        }
    }
    if !drained {
        stats.remaining = store.count_expired().await?;
    }
    Ok(stats)
}
