//! A callback registered on the SDK's meter provider directly (not through lookout's global
//! meter) that panics poisons the SDK's metric pipeline; the shutdown report then says metrics
//! were lost, and shutdown returns `DataLost`, instead of reporting a clean exit.
//! (One test per file: the poisoned state is process-wide, like the SDK's.)
#![allow(clippy::unwrap_used)]

use lookout::opentelemetry::metrics::MeterProvider as _;
use lookout::{ConsoleFormat, ExporterKind, ShutdownError, Signal};

#[test]
fn a_poisoned_metric_pipeline_makes_shutdown_report_the_loss() {
    let telemetry = lookout::Telemetry::builder()
        .console(ConsoleFormat::Off)
        .exporter(Signal::Traces, ExporterKind::None)
        .exporter(Signal::Metrics, ExporterKind::None)
        .exporter(Signal::Logs, ExporterKind::None)
        .init()
        .expect("init");
    let metrics = telemetry.metrics().unwrap();
    let _raw = metrics
        .provider()
        .meter("raw")
        .u64_observable_gauge("raw.gauge")
        .with_callback(|_| panic!("raw callback exploded"))
        .build();
    metrics.collect().expect_err("the pipeline is poisoned");

    match telemetry.blocking_shutdown() {
        Err(ShutdownError::DataLost { report }) => {
            let why = report.metrics_poisoned.as_deref().unwrap();
            assert!(why.contains("raw callback exploded"), "{why}");
            let text = report.to_string();
            assert!(text.contains("poisoned"), "{text}");
        }
        other => panic!("shutdown must report the loss: {other:?}"),
    }
}
