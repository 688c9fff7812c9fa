//! End-to-end session cleanup: 100,000 expired sessions among 1,000,000 in the example's SQLite
//! store (a file, WAL mode, as `SESSIONS_DB` would give).
//!
//! Run with: `cargo bench -p example-axum-service --bench session_cleanup`. `SESSIONS` (default
//! 1,000,000) and `EXPIRED` (default 100,000) change the sizes.
//!
//! Prints: the duration of each run of the real session-cleanup job (budget 10,000 per run,
//! batches of 5,000) until the backlog is gone; the time of each 5,000-row batch (how long one
//! batch holds the connection, i.e. the longest an API request waits behind the cleanup); and, for
//! comparison, deleting all expired sessions in one unbatched statement.

use std::time::{Duration, Instant};

use example_axum_service::cleanup::{self, BATCH, BUDGET};
use example_axum_service::store::{Store, unix_now};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

async fn populate(store: &Store, live: u64, expired: u64) {
    let t = Instant::now();
    store
        .insert_many(live, unix_now() + 3_600)
        .await
        .expect("live");
    store
        .insert_many(expired, unix_now() - 60)
        .await
        .expect("expired");
    eprintln!("populated {} rows in {:.1?}", live + expired, t.elapsed());
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let total = env("SESSIONS", 1_000_000);
    let expired = env("EXPIRED", 100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sessions.db");
        let store = Store::open(path.to_str().expect("path")).expect("open");
        populate(&store, total - expired, expired).await;

        // 1. The service's job (first run at start), its next runs started as soon as the
        //    previous one ends, until the backlog is gone.
        let job = cleanup::spawn(store.clone(), Duration::from_secs(3600)).expect("job");
        let start = Instant::now();
        while job.stats().items_removed < expired && start.elapsed() < Duration::from_secs(600) {
            if job.stats().in_progress == 0 && job.stats().total_runs > 0 {
                let _ = job.run_now();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        job.shutdown_within(Duration::from_secs(5)).await;
        let mut runs = job.history();
        runs.reverse();
        println!(
            "session-cleanup job, {expired} expired among {total}, budget {BUDGET} per run, batches of {BATCH}:"
        );
        let mut sum = Duration::ZERO;
        for r in runs.iter().filter(|r| r.stats.removed > 0 || r.stats.remaining > 0) {
            sum += r.duration;
            println!(
                "  run {}: {:?}, removed {}, remaining {}, {:.1} ms",
                r.id,
                r.outcome,
                r.stats.removed,
                r.stats.remaining,
                ms(r.duration)
            );
        }
        println!("  total run time {:.1} ms; sessions left: {}", ms(sum), store.count().await.expect("count"));

        // 2. Batches alone: how long each holds the database.
        store.insert_many(expired, unix_now() - 60).await.expect("expired");
        let mut batches = Vec::new();
        loop {
            let t = Instant::now();
            let removed = store.delete_expired(BATCH).await.expect("batch");
            batches.push(t.elapsed());
            if removed < BATCH {
                break;
            }
        }
        batches.sort();
        println!(
            "  {} batches of {BATCH}: median {:.1} ms, max {:.1} ms",
            batches.len(),
            ms(batches[batches.len() / 2]),
            ms(*batches.last().expect("a batch"))
        );

        // 3. One unbatched statement, for comparison.
        store.insert_many(expired, unix_now() - 60).await.expect("expired");
        let t = Instant::now();
        let removed = store.delete_expired(u64::MAX / 2).await.expect("unbatched");
        println!(
            "  unbatched: {removed} rows in one statement, {:.1} ms (the connection held throughout)",
            ms(t.elapsed())
        );
    });
}
