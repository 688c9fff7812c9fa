//! Every console line of an event inside a span carries the ids the collector received.

use std::time::Duration;

use lookout_e2e::{NO_EXPORT, run};
use lookout_testing::Collector;

#[test]
fn json_console_lines_match_the_exported_span() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            ("LOOKOUT_CONSOLE", "json"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    let lines: Vec<serde_json::Value> = app
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("each console line is one JSON object"))
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no console line {message:?} in {}", app.stdout))
    };
    let r = collector
        .wait_for(Duration::from_secs(20), |r| r.spans.len() >= 3)
        .unwrap_or_else(|e| panic!("{e}"));
    let root = r.span("checkout").expect("root");
    let query = r.span("db.query").expect("grandchild");

    let started = line("checkout started");
    assert_eq!(started["trace_id"], root.trace_id.as_str());
    assert_eq!(started["span_id"], root.span_id.as_str());
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["step"], 1);
    let slow = line("slow query");
    assert_eq!(slow["span_id"], query.span_id.as_str());
    assert_eq!(
        slow["spans"],
        serde_json::json!(["checkout", "reserve", "db.query"])
    );
    assert_eq!(slow["table"], "stock");
}

#[test]
fn compact_console_lines_end_with_the_ids() {
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("LOOKOUT_CONSOLE", "compact"),
            NO_EXPORT[0],
            NO_EXPORT[1],
            NO_EXPORT[2],
        ],
    );
    let line = app
        .stdout
        .lines()
        .find(|l| l.contains("checkout started"))
        .unwrap_or_else(|| panic!("{}", app.stdout));
    let ids: Vec<&str> = line.split_whitespace().rev().take(2).collect();
    assert!(
        ids[0].starts_with("span_id=") && ids[0].len() == "span_id=".len() + 16,
        "{line}"
    );
    assert!(
        ids[1].starts_with("trace_id=") && ids[1].len() == "trace_id=".len() + 32,
        "{line}"
    );
    assert!(
        !line.contains('\u{1b}'),
        "no colour when not a terminal: {line}"
    );
    // The span's fields next to its name, once; the event's own after the message.
    assert!(
        line.contains(
            "checkout{int_attr=-42 uint_attr=42 float_attr=2.5 bool_attr=true str_attr=\"hello\"}: \
             e2e_app: checkout started step=1 trace_id="
        ),
        "{line}"
    );
    assert_eq!(line.matches("str_attr=").count(), 1, "{line}");
}

#[test]
fn pretty_console_shows_events_with_ids_and_span_closings() {
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("LOOKOUT_CONSOLE", "pretty"),
            NO_EXPORT[0],
            NO_EXPORT[1],
            NO_EXPORT[2],
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
    let event = app
        .stdout
        .split("\n\n")
        .find(|block| block.contains("checkout started"))
        .unwrap_or_else(|| panic!("{}", app.stdout));
    assert!(event.contains("trace_id="), "{event}");
    assert!(
        event.contains("in e2e_app::checkout"),
        "pretty shows the span scope: {event}"
    );
    assert!(
        app.stdout.contains("close"),
        "span closings are shown: {}",
        app.stdout
    );
}
