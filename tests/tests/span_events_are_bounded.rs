//! tracing-opentelemetry puts no limit on events per span (tracing #2500): a long-lived, chatty
//! span would grow without bound. lookout's span limits cap it.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::Collector;

fn events_of_chatty_span(limit: Option<&str>) -> usize {
    let collector = Collector::start().expect("collector starts");
    let endpoint = collector.http_endpoint();
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_LOGS_EXPORTER", "none"),
    ];
    if let Some(limit) = limit {
        vars.push(("OTEL_SPAN_EVENT_COUNT_LIMIT", limit));
    }
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["chatty", "1000"],
        &vars,
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    let r = collector
        .wait_for(Duration::from_secs(20), |r| r.span("chatty").is_some())
        .unwrap_or_else(|e| panic!("{e}"));
    let span = r.span("chatty").expect("span");
    assert!(span.events.iter().all(|e| e == "step"), "{:?}", span.events);
    span.events.len()
}

#[test]
fn a_thousand_events_keep_the_default_128() {
    assert_eq!(events_of_chatty_span(None), 128);
}

#[test]
fn the_event_limit_variable_is_honoured() {
    assert_eq!(events_of_chatty_span(Some("10")), 10);
}
