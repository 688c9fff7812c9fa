//! The session-cleanup job: deletes expired sessions in batches, through lookout-cleanup (a span
//! per run and per batch, `cleanup.*` metrics, a health check that goes bad when it stops).

use std::time::Duration;

use lookout_cleanup::{BuildError, Job, RunContext, Stats};
use tracing::Instrument as _;

use crate::store::{Store, StoreError};

/// Sessions deleted per statement: each batch holds the database for a few milliseconds, so
/// API requests never wait long behind the cleanup (see BENCHMARKS.md).
pub const BATCH: u64 = 5_000;
/// Sessions deleted per run at most; the rest is the backlog, taken by the next runs.
pub const BUDGET: u64 = 50_000;

/// Starts the job on the current runtime, every `interval` (with up to 10 % jitter).
pub fn spawn(store: Store, interval: Duration) -> Result<Job, BuildError> {
    Job::builder("session-cleanup")
        .every(interval)
        .jitter(interval / 10)
        .item_budget(BUDGET)
        .spawn(move |ctx: RunContext| run(store.clone(), ctx))
}

/// One run: batches of [`BATCH`] until nothing is expired or the budget is spent.
pub async fn run(store: Store, ctx: RunContext) -> Result<Stats, StoreError> {
    let mut stats = Stats::default();
    while ctx.should_continue(stats.removed) {
        let limit = ctx.batch_size(BATCH, stats.removed);
        let (removed, left) = store
            .delete_expired(limit)
            .instrument(ctx.batch_span())
            .await?;
        stats.scanned += removed;
        stats.removed += removed;
        stats.remaining = left;
        if left == 0 || removed < limit {
            break;
        }
    }
    Ok(stats)
}
