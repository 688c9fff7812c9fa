//! A destination that answers every export, more slowly than spans come, takes every export place
//! and then the queue fills: the WARN about the drops names the destination's slow answers and
//! the setting that rides them out (`LOOKOUT_EXPORT_CONCURRENCY`), not an outage and not the CPU.

#[path = "support/slow_collector.rs"]
mod slow_collector;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slow_collector::{SlowCollector, spans_to};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// lookout's export WARNs, their messages, as a user's own layer beside lookout's sees them.
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() == tracing::Level::WARN && meta.target() == "lookout::export" {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().expect("warnings").push(message.0);
        }
    }
}

#[test]
fn drops_behind_a_slow_destination_name_it_and_the_export_concurrency() {
    // Answers within half a second: well inside the 2 s after which an export counts as hung.
    let (endpoint, state) = SlowCollector::start(Duration::from_millis(500));
    let (layer, telemetry) = lookout::Telemetry::builder()
        .env_vars(spans_to(
            &endpoint,
            &[
                ("OTEL_BSP_MAX_QUEUE_SIZE", "40"),
                ("LOOKOUT_EXPORT_CONCURRENCY", "2"),
            ],
        ))
        .console(lookout::ConsoleFormat::Off)
        .layer()
        .expect("init");
    let warnings = Arc::new(Mutex::new(Vec::new()));
    tracing_subscriber::registry()
        .with(layer)
        .with(Warnings(warnings.clone()))
        .init();

    // 10 spans every 30 ms, which the batch worker keeps up with; the destination takes 2
    // exports of 10 every half second: its places are taken after two batches, then the queue's
    // 40 (a margin for a batch worker a busy host keeps waiting), then spans are turned away.
    for i in 0..300 {
        tracing::info_span!("work", i).in_scope(|| {});
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let said = |warnings: &[String]| {
        warnings
            .iter()
            .find(|w| w.contains("export queue (40 items) was full"))
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let warning = loop {
        if let Some(w) = said(&warnings.lock().expect("warnings")) {
            break w;
        }
        assert!(
            Instant::now() < deadline,
            "no drop WARN: {:?}",
            warnings.lock()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        warning.contains("while all 2 exports in flight waited for the destination's answers")
            && warning.contains("LOOKOUT_EXPORT_CONCURRENCY"),
        "the slow destination and the setting are named: {warning}"
    );
    assert!(
        !warning.contains("CPU") && !warning.contains("outage"),
        "not blamed on the CPU nor an outage: {warning}"
    );

    let report = telemetry
        .blocking_shutdown()
        .expect_err("spans were dropped: shutdown reports a loss")
        .report()
        .clone();
    let dropped = lookout::stats().traces.dropped;
    assert!(dropped > 0, "{report}");
    assert_eq!(report.traces.exported + dropped, 300, "{report}");
    assert!(state.most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
}
