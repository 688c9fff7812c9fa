//! N spans created before shutdown means N spans received, and the report says so.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::{Collector, Value};

#[test]
fn two_thousand_spans_all_arrive() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", "2000"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);
    assert_eq!(app.counts("traces"), Some((2000, 0)));
    let r = collector
        .wait_for(Duration::from_secs(30), |r| r.spans.len() >= 2000)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut indexes = indexes(&r.spans);
    indexes.dedup();
    assert_eq!(indexes, (0..2000).collect::<Vec<i64>>());
}

/// The indexes of the `unit` spans received, sorted (a repeat shows twice).
fn indexes(spans: &[lookout_testing::Span]) -> Vec<i64> {
    let mut indexes: Vec<i64> = spans
        .iter()
        .filter_map(|s| match s.attributes.get("index") {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        })
        .collect();
    indexes.sort_unstable();
    indexes
}

/// `e2e-app spans <n> <threads>` over HTTP into `collector`, with a queue of `queue` spans exported
/// `queue` at a time and a delay too long to matter.
fn spans_through_a_queue(
    collector: &Collector,
    n: &str,
    threads: &str,
    queue: &str,
) -> lookout_e2e::Run {
    run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", n, threads],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", queue),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", queue),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ],
    )
}

#[test]
fn spans_ended_on_eight_threads_at_once_all_arrive_once() {
    // Each sending thread queues its spans apart from the others (lookout's span processor keeps
    // a shard per thread, which takes its places in the queue a few at a time); shutdown gathers
    // every shard. 2,000 spans fit the default queue (2,048) whichever threads end them.
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", "2000", "8"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);
    assert_eq!(app.counts("traces"), Some((2000, 0)));
    let r = collector
        .wait_for(Duration::from_secs(30), |r| r.spans.len() >= 2000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.spans.len(), 2000, "each span once");
    assert_eq!(indexes(&r.spans), (0..2000).collect::<Vec<i64>>());
}

#[test]
fn a_queue_of_64_holds_64_spans_ended_on_three_threads() {
    // The threads take places a few at a time (4 on two cores), and end 22, 21 and 21 spans: the
    // last places taken are fewer than asked, and places a thread holds unused are given back
    // when another needs them. Nothing is exported before the queue holds a batch of 64.
    let collector = Collector::start().expect("collector starts");
    let app = spans_through_a_queue(&collector, "64", "3", "64");
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);
    assert_eq!(app.counts("traces"), Some((64, 0)));
}

#[test]
fn a_full_queue_on_eight_threads_counts_every_span_once() {
    // Eight threads ending spans into a queue of 10: what is queued and what is dropped is decided
    // per thread, and still adds up to what was created, with the queue's bound held.
    let collector = Collector::start().expect("collector starts");
    let app = spans_through_a_queue(&collector, "2000", "8", "10");
    assert_eq!(app.result(), Some("lost"), "{}\n{}", app.stdout, app.stderr);
    let (exported, lost) = app.counts("traces").expect("counts");
    assert_eq!(exported + lost, 2000);
    assert!(lost > 0 && exported > 0, "exported {exported}, lost {lost}");
    assert_eq!(app.traces_dropped(), Some(lost), "{}", app.stdout);
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans.len() as u64 >= exported
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.spans.len() as u64, exported);
    let mut got = indexes(&r.spans);
    got.dedup();
    assert_eq!(got.len() as u64, exported, "no span twice");
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    // A queue of 10 with a long delay: most of 500 spans cannot be queued. Span end must not
    // block, and the report must count exactly what was lost.
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", "500"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
            ("LOOKOUT_CONSOLE", "compact"),
        ],
    );
    assert_eq!(app.result(), Some("lost"), "{}\n{}", app.stdout, app.stderr);
    let (exported, lost) = app.counts("traces").expect("counts");
    assert_eq!(exported + lost, 500);
    assert!(lost > 0 && exported > 0, "exported {exported}, lost {lost}");
    // Every loss was a drop at the full queue, counted as such before shutdown, and said.
    assert_eq!(app.traces_dropped(), Some(lost), "{}", app.stdout);
    let said = format!("{}{}", app.stdout, app.stderr);
    assert!(
        said.contains("export queue (10 items) was full")
            && said.contains("OTEL_BSP_MAX_QUEUE_SIZE"),
        "a WARN names the full queue and the setting:\n{said}"
    );
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans.len() as u64 >= exported
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.spans.len() as u64, exported);
}

#[test]
fn a_full_log_queue_drops_and_counts_too() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["chatty", "500"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "60000"),
        ],
    );
    let (exported, lost) = app.counts("logs").expect("counts");
    assert!(lost > 0 && exported > 0, "exported {exported}, lost {lost}");
    assert_eq!(app.logs_dropped(), Some(lost), "{}", app.stdout);
    let r = collector
        .wait_for(Duration::from_secs(20), |r| r.logs.len() as u64 >= exported)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.logs.len() as u64, exported);
}

#[test]
fn dropping_the_guard_flushes_like_shutdown() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", "300"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("E2E_DROP_GUARD", "1"),
        ],
    );
    assert!(app.stdout.contains("DROPPED"), "{}", app.stdout);
    assert_eq!(app.result(), None, "no explicit shutdown ran");
    collector
        .wait_for(Duration::from_secs(20), |r| r.spans.len() >= 300)
        .unwrap_or_else(|e| panic!("{e}"));
}
