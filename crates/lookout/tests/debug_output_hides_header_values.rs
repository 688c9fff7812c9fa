//! Header values (API keys) never appear in any output, including `{:?}` of the guard.

use lookout::{ConsoleFormat, Protocol, Signal};

#[test]
fn debug_of_the_running_pipeline_shows_no_header_value() {
    let telemetry = lookout::Telemetry::builder()
        .console(ConsoleFormat::Off)
        .otlp(|o| {
            o.endpoint("http://127.0.0.1:9")
                .header("x-api-key", "s3cr3t-general")
        })
        .otlp_for(Signal::Traces, |o| {
            o.protocol(Protocol::Grpc)
                .header("authorization", "Bearer s3cr3t-traces")
        })
        .init()
        .expect("init");
    let debug = format!("{telemetry:?}");
    assert!(debug.contains("http://127.0.0.1:9/v1/logs"), "{debug}");
    assert!(debug.contains("http://127.0.0.1:9/ (grpc)"), "{debug}");
    assert!(!debug.contains("s3cr3t"), "{debug}");
    drop(telemetry.blocking_shutdown());
}
