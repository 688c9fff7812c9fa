//! Secrets never leave the process. The program plants every kind of secret (a password, an API
//! key, `Bearer` and `Basic` credentials, a card number, a JWT, an AWS access key id, a private-key
//! block, credentials in a URL, an e-mail address) in span attributes, span events, log records
//! and metric attributes; the test greps everything the real collector received, over gRPC and
//! HTTP: no planted secret, and the masked forms are there.

use std::time::Duration;

use lookout_e2e::run;
use lookout_testing::Collector;

fn received_text(protocol: &str, extra: &[(&str, &str)]) -> String {
    let collector = Collector::start().expect("collector starts");
    let endpoint = match protocol {
        "grpc" => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ];
    vars.extend_from_slice(extra);
    let out = run(&env!("CARGO_BIN_EXE_e2e-app").into(), &["secrets"], &vars);
    assert!(
        out.stdout.contains("RESULT ok"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans.iter().any(|s| s.name == "login")
                && r.logs.len() >= 2
                && !r.points("e2e.logins").is_empty()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    collector.output()
}

#[test]
fn no_planted_secret_reaches_the_collector_in_any_signal() {
    for protocol in ["grpc", "http/protobuf"] {
        let text = received_text(protocol, &[("LOOKOUT_REDACT_EMAILS", "true")]);
        for secret in [
            "PLANTED",
            "4111 1111 1111 1111",
            "hunter2",
            "planted.alice@example.com",
        ] {
            assert!(
                !text.contains(secret),
                "{protocol}: {secret:?} reached the collector:\n{text}"
            );
        }
        for masked in [
            "REDACTED:REDACTED@api.example.com",
            "token=REDACTED&page=2",
            "Bearer REDACTED",
            "Basic REDACTED",
            "paid with card REDACTED using jwt REDACTED",
        ] {
            assert!(
                text.contains(masked),
                "{protocol}: {masked:?} missing:\n{text}"
            );
        }
        assert!(text.contains("/login"), "other values are kept");
    }
}

#[test]
fn redaction_can_be_turned_off_and_emails_are_opt_in() {
    let text = received_text("grpc", &[]);
    assert!(
        text.contains("planted.alice@example.com"),
        "e-mails are kept by default"
    );
    assert!(!text.contains("PLANTED-hunter2"));
    let text = received_text("grpc", &[("LOOKOUT_REDACT", "off")]);
    assert!(text.contains("PLANTED-hunter2"), "off means off");
}
