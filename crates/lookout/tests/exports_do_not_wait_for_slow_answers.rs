//! With several exports allowed in flight (`LOOKOUT_EXPORT_CONCURRENCY`, 16 by default; 4 here), the batch
//! worker sends the next batch while a slow collector has not answered the last, and the
//! accounting stays exact: every span created is exported once the answers come.

#[path = "support/slow_collector.rs"]
mod slow_collector;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use slow_collector::{SlowCollector, spans_to};

#[test]
fn batches_go_out_while_earlier_ones_wait_for_their_answer() {
    let (endpoint, state) = SlowCollector::start(Duration::from_millis(400));

    let telemetry = lookout::Telemetry::builder()
        .env_vars(spans_to(&endpoint, &[("LOOKOUT_EXPORT_CONCURRENCY", "4")]))
        .console(lookout::ConsoleFormat::Off)
        .init()
        .expect("init");
    for i in 0..100 {
        tracing::info_span!("work", i).in_scope(|| {});
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let report = telemetry.blocking_shutdown().expect("nothing lost");
    assert!(
        state.most.load(SeqCst) >= 2,
        "one export at a time: the worker waited for each slow answer ({} requests)",
        state.requests.load(SeqCst)
    );
    assert!(
        state.most.load(SeqCst) <= 4,
        "more in flight than allowed: {}",
        state.most.load(SeqCst)
    );
    assert_eq!(report.traces.exported, 100, "{report}");
    assert_eq!(lookout::stats().traces.dropped, 0);
}
