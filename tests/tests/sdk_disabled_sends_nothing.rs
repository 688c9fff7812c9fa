//! `OTEL_SDK_DISABLED=true` exports nothing at all, yet the program runs normally.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::{Collector, Value};

#[test]
fn disabled_program_sends_nothing_while_an_enabled_one_does() {
    let collector = Collector::start().expect("collector starts");
    let app = env!("CARGO_BIN_EXE_e2e-app").into();
    let endpoint = collector.http_endpoint();
    let disabled = run(
        &app,
        &["tree"],
        &[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_SERVICE_NAME", "disabled"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ],
    );
    assert_eq!(disabled.result(), Some("ok"), "{}", disabled.stdout);
    assert_eq!(disabled.counts("traces"), Some((0, 0)));

    // A control run after it: once its data has arrived, anything the disabled run sent would
    // have arrived too (same collector, earlier).
    let control = run(
        &app,
        &["tree"],
        &[
            ("OTEL_SERVICE_NAME", "control"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ],
    );
    assert_eq!(control.result(), Some("ok"), "{}", control.stdout);
    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans.len() >= 3 && r.logs.len() >= 3 && r.metrics.len() >= 2
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let control_name = Value::Str("control".into());
    assert!(
        r.spans
            .iter()
            .all(|s| s.resource["service.name"] == control_name)
    );
    assert!(
        r.logs
            .iter()
            .all(|l| l.resource["service.name"] == control_name)
    );
    assert!(
        r.metrics
            .iter()
            .all(|m| m.resource["service.name"] == control_name)
    );
}
