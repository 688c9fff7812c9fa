//! A `#[measured]` function's calls, errors and durations are exactly what the real collector
//! received over OTLP and what `/metrics` renders from the pull reader.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::{Collector, Value};

#[test]
fn measured_calls_are_the_same_in_the_collector_and_in_prometheus_text() {
    let collector = Collector::start().expect("collector starts");
    let endpoint = collector.grpc_endpoint();
    let app = run(
        &env!("CARGO_BIN_EXE_e2e-app").into(),
        &["measured"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "e2e-measured"),
        ],
    );
    assert_eq!(app.result(), Some("ok"), "{}\n{}", app.stdout, app.stderr);

    let r = collector
        .wait_for(Duration::from_secs(20), |r| {
            !r.points("function.duration").is_empty()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", collector.output()));
    let calls = r.points("function.calls");
    let call = |function: &str, result: &str| {
        calls
            .iter()
            .find(|p| {
                p.attributes.get("function") == Some(&Value::Str(function.into()))
                    && p.attributes.get("result") == Some(&Value::Str(result.into()))
            })
            .unwrap_or_else(|| panic!("no {function}/{result} in {calls:?}"))
    };
    let pay = |result: &str| call("pay", result);
    assert_eq!(pay("ok").value, Some(3.0));
    assert_eq!(pay("ok").unit, "{call}");
    assert_eq!(pay("error").value, Some(1.0));
    assert_eq!(
        pay("error").attributes["error.type"],
        Value::Str("e2e_app::Declined".into())
    );
    assert_eq!(pay("ok").attributes["module"], Value::Str("e2e_app".into()));
    let duration = r
        .points("function.duration")
        .into_iter()
        .find(|p| p.attributes.get("function") == Some(&Value::Str("pay".into())))
        .expect("pay duration");
    assert_eq!(duration.count, Some(4));
    assert_eq!(duration.unit, "s");
    let sum = duration.sum.expect("sum");
    assert!(sum >= 0.012, "four calls of at least 3 ms: {sum}");

    // A library that depends on lookout without its pipeline records into the application's.
    let quote = |result: &str| call("quote", result);
    assert_eq!(quote("ok").value, Some(1.0));
    assert_eq!(quote("error").value, Some(1.0));
    assert_eq!(
        quote("ok").attributes["module"],
        Value::Str("example_pricing_library".into())
    );
    assert_eq!(
        quote("error").attributes["error.type"],
        Value::Str("example_pricing_library::QuoteError".into())
    );
    let block = r
        .points("function.calls")
        .into_iter()
        .find(|p| p.attributes.get("function") == Some(&Value::Str("e2e.block".into())))
        .expect("timer");
    assert_eq!(block.value, Some(1.0));

    // The same figures in the Prometheus text the admin endpoint serves.
    let prom: Vec<&str> = app
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PROM "))
        .collect();
    let line = |prefix: &str, needles: &[&str]| {
        prom.iter()
            .find(|l| l.starts_with(prefix) && needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no {prefix} {needles:?} in {prom:#?}"))
            .rsplit(' ')
            .next()
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert_eq!(
        line(
            "function_calls_total{",
            &["function=\"pay\"", "result=\"ok\""]
        ),
        "3"
    );
    assert_eq!(
        line(
            "function_calls_total{",
            &["function=\"pay\"", "result=\"error\""]
        ),
        "1"
    );
    assert_eq!(
        line("function_duration_seconds_count{", &["function=\"pay\""]),
        "4"
    );
    let prom_sum: f64 = line("function_duration_seconds_sum{", &["function=\"pay\""])
        .parse()
        .expect("a number");
    assert!((prom_sum - sum).abs() < 1e-9, "{prom_sum} vs {sum}");
}
