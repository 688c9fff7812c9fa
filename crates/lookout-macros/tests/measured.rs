//! `#[measured]` records exactly what its functions did, read back through the SDK's pull reader.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use std::time::Duration;

use lookout::measured;
use lookout::metrics::{Metrics, OperationStats, operations};

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = Metrics::in_memory(lookout::opentelemetry_sdk::Resource::builder_empty().build());
        m.install();
        m
    })
}

fn op(name: &str) -> OperationStats {
    let snapshot = metrics().collect().unwrap();
    operations(&snapshot)
        .into_iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no operation {name}"))
}

#[derive(Debug)]
struct NotFound;

#[measured]
fn parse(input: &str) -> Result<u32, std::num::ParseIntError> {
    input.parse()
}

#[measured]
fn plain(x: u32) -> u32 {
    x + 1
}

#[measured]
async fn sleepy(ms: u64) -> Result<(), NotFound> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    if ms > 15 { Err(NotFound) } else { Ok(()) }
}

fn missing_is_fine(r: &Result<u32, NotFound>) -> bool {
    matches!(r, Ok(_) | Err(NotFound))
}

#[measured(ok_if = missing_is_fine)]
fn lookup(id: u32) -> Result<u32, NotFound> {
    if id == 0 { Err(NotFound) } else { Ok(id) }
}

fn is_negative(x: &i64) -> bool {
    *x < 0
}

#[measured(error_if = is_negative, name = "balance.check")]
fn balance(x: i64) -> i64 {
    x
}

struct Store<T> {
    items: Vec<T>,
}

impl<T: Clone + Send> Store<T> {
    #[measured]
    fn first(&self) -> Option<T> {
        self.items.first().cloned()
    }

    #[measured]
    #[tracing::instrument(skip(self))]
    async fn take(&mut self, n: usize) -> Result<Vec<T>, String> {
        if n > self.items.len() {
            return Err(format!("only {} items", self.items.len()));
        }
        Ok(self.items.drain(..n).collect())
    }

    #[tracing::instrument(skip(self, extra))]
    #[measured]
    fn len_of(&self, extra: impl Into<usize>) -> usize {
        self.items.len() + extra.into()
    }
}

#[measured]
fn panics(x: u32) -> u32 {
    if x > 0 {
        panic!("boom");
    }
    x
}

#[measured]
fn shared_work(x: u64) -> Result<u64, NotFound> {
    if x == 1002 {
        std::thread::sleep(Duration::from_millis(3));
    }
    if x.is_multiple_of(10) {
        Err(NotFound)
    } else {
        Ok(x)
    }
}

/// Several threads calling one function record through their own lanes; a collection while
/// those threads are still alive (with calls not yet passed to the SDK) is exact, and so is one
/// after they exit (each call counted once).
#[test]
fn calls_from_many_threads_are_exact_while_the_threads_run_and_after() {
    metrics();
    const THREADS: usize = 4;
    const CALLS: u64 = 1003; // errors at 0, 10, ..., 1000: 101 of them
    let called = std::sync::Barrier::new(THREADS + 1);
    let checked = std::sync::Barrier::new(THREADS + 1);
    let expect = |o: &OperationStats| {
        assert_eq!(o.calls, THREADS as u64 * CALLS);
        assert_eq!(o.errors, THREADS as u64 * 101);
        assert_eq!(o.in_progress, 0);
        // The last call of each thread slept 3 ms: it is in the histogram.
        assert!(o.max.unwrap() >= Duration::from_millis(3), "{:?}", o.max);
    };
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for x in 0..CALLS {
                    let _ = shared_work(x);
                }
                called.wait();
                checked.wait();
            });
        }
        called.wait();
        // Let the threads go whatever the check says (a failed check must not hang the scope).
        let while_running = std::panic::catch_unwind(|| expect(&op("shared_work")));
        checked.wait();
        if let Err(failure) = while_running {
            std::panic::resume_unwind(failure);
        }
    });
    expect(&op("shared_work"));
}

#[test]
fn counts_results_and_error_types() {
    metrics();
    assert_eq!(parse("12").unwrap(), 12);
    assert_eq!(parse("13").unwrap(), 13);
    assert!(parse("x").is_err());
    let p = op("parse");
    assert_eq!(p.module.as_deref(), Some("measured"));
    assert_eq!((p.calls, p.errors), (3, 1));
    assert_eq!(
        p.errors_by_type.get("core::num::error::ParseIntError"),
        Some(&1),
        "{:?}",
        p.errors_by_type
    );
    assert!((p.error_rate() - 1.0 / 3.0).abs() < 1e-9);
    assert!(p.last_call.is_some());
    assert_eq!(p.in_progress, 0);

    for i in 0..5 {
        assert_eq!(plain(i), i + 1);
    }
    let p = op("plain");
    assert_eq!((p.calls, p.errors), (5, 0));
}

#[test]
fn overrides_decide_the_result() {
    metrics();
    assert!(lookup(0).is_err());
    assert_eq!(lookup(4).unwrap(), 4);
    let l = op("lookup");
    assert_eq!((l.calls, l.errors), (2, 0), "ok_if said both are fine");

    assert_eq!(balance(5), 5);
    assert_eq!(balance(-5), -5);
    let b = op("balance.check");
    assert_eq!((b.calls, b.errors), (2, 1));
    assert_eq!(
        b.errors_by_type.get(""),
        Some(&1),
        "no error type for a non-Result"
    );
}

#[tokio::test]
async fn async_functions_record_their_whole_duration() {
    metrics();
    sleepy(10).await.unwrap();
    assert!(sleepy(20).await.is_err());
    // real time: each call lasts at least its sleep
    let s = op("sleepy");
    assert_eq!((s.calls, s.errors), (2, 1));
    assert!(s.min.unwrap() >= Duration::from_millis(10), "{s:?}");
    assert!(s.max.unwrap() >= Duration::from_millis(20), "{s:?}");
    assert!(s.avg.unwrap() >= Duration::from_millis(15), "{s:?}");

    // a dropped future counts as cancelled, and is no longer in progress
    let fut = sleepy(5);
    let mut fut = Box::pin(fut);
    assert!(futures_poll_once(fut.as_mut()).await.is_none());
    assert_eq!(op("sleepy").in_progress, 1);
    drop(fut);
    let s = op("sleepy");
    assert_eq!(s.in_progress, 0);
    assert_eq!(s.errors_by_type.get("cancelled"), Some(&1));
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = f => Some(out),
        () = std::future::ready(()) => None,
    }
}

#[tokio::test]
async fn methods_generics_and_instrument_in_either_order() {
    metrics();
    let mut store = Store {
        items: vec![1, 2, 3],
    };
    assert_eq!(store.first(), Some(1));
    assert_eq!(store.take(2).await.unwrap(), vec![1, 2]);
    assert!(store.take(5).await.is_err());
    assert_eq!(store.len_of(2u8), 3);
    assert_eq!(op("first").calls, 1);
    let t = op("take");
    assert_eq!((t.calls, t.errors), (2, 1));
    assert_eq!(t.errors_by_type.get("alloc::string::String"), Some(&1));
    assert_eq!(op("len_of").calls, 1);
}

#[test]
fn a_panic_is_an_error_and_propagates() {
    metrics();
    let r = std::panic::catch_unwind(|| panics(1));
    assert!(r.is_err());
    assert_eq!(panics(0), 0);
    let p = op("panics");
    assert_eq!((p.calls, p.errors), (2, 1));
    assert_eq!(p.errors_by_type.get("panic"), Some(&1));
    assert_eq!(p.in_progress, 0);
}

#[test]
fn timers_record_named_operations() {
    metrics();
    {
        let _t = lookout::timer("import.batch");
    }
    lookout::timer("import.batch").error("empty");
    let t = op("import.batch");
    assert_eq!(t.module, None);
    assert_eq!((t.calls, t.errors), (2, 1));
    assert_eq!(t.errors_by_type.get("empty"), Some(&1));
}
