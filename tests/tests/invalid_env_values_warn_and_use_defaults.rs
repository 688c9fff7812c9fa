//! Bad configuration values give one warning naming the variable and use the default; the program
//! still exports. Header values never appear in any output.

use std::time::Duration;

use lookout_e2e::{NO_EXPORT, run};
use lookout_testing::Collector;

#[test]
fn bad_values_warn_once_each_and_export_still_works() {
    let collector = Collector::start().expect("collector starts");
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["tree"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.http_endpoint()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=sup3rs3cret,broken-entry",
            ),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "-5"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "often"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_PROPAGATORS", "tracecontext,xray"),
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_SERVICE_NAME", ""),
            ("LOOKOUT_CONSOLE", "json"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);
    let mut warned = app.warnings();
    warned.sort_unstable();
    assert_eq!(
        warned,
        [
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_PROPAGATORS",
            "OTEL_SDK_DISABLED",
            "OTEL_TRACES_SAMPLER",
        ]
    );
    // The console (JSON here) shows each warning once, as a WARN from lookout::config.
    let console_warnings: Vec<&str> = app
        .stdout
        .lines()
        .filter(|l| l.contains("\"target\":\"lookout::config\""))
        .collect();
    assert_eq!(console_warnings.len(), 7, "{}", app.stdout);
    assert!(
        console_warnings
            .iter()
            .all(|l| l.contains("\"level\":\"WARN\""))
    );
    assert!(!app.stdout.contains("sup3rs3cret") && !app.stderr.contains("sup3rs3cret"));
    // Defaults applied: an empty OTEL_SERVICE_NAME is unset, and spans still arrive.
    let r = collector
        .wait_for(Duration::from_secs(20), |r| r.spans.len() >= 3)
        .unwrap_or_else(|e| panic!("{e}"));
    let name = r.spans[0].resource["service.name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(name.starts_with("unknown_service:"), "{name}");
}

#[test]
fn an_invalid_endpoint_in_env_warns_and_uses_the_default() {
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["spans", "1"],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url"),
            NO_EXPORT[0],
            NO_EXPORT[1],
            NO_EXPORT[2],
        ],
    );
    assert_eq!(app.warnings(), ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
    assert_eq!(app.result(), Some("ok"), "{}", app.stdout);
}
