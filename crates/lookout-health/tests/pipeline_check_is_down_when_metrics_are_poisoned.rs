//! The telemetry pipeline check turns DOWN (not degraded) once a metric callback has poisoned the
//! OpenTelemetry SDK's metric pipeline: metrics will not come back without a restart.
//! (One test per file: the poisoned state is process-wide.)
#![cfg(feature = "pipeline")]
#![allow(clippy::unwrap_used)]

use lookout::metrics::Metrics;
use lookout::opentelemetry::metrics::MeterProvider as _;
use lookout_health::checks::Pipeline;
use lookout_health::{HealthCheck as _, Status};

#[tokio::test]
async fn pipeline_check_is_down_with_the_cause() {
    let check = Pipeline::new();
    assert_eq!(check.check().await.status(), Status::Up);
    let metrics = Metrics::in_memory(lookout::opentelemetry_sdk::Resource::builder_empty().build());
    let _bad = metrics
        .provider()
        .meter("app")
        .u64_observable_gauge("bad.gauge")
        .with_callback(|_| panic!("gauge callback failed"))
        .build();
    assert!(metrics.collect().is_err());
    let result = check.check().await;
    assert_eq!(result.status(), Status::Down);
    assert!(
        result
            .message()
            .is_some_and(|m| m.contains("gauge callback failed")),
        "{:?}",
        result.message()
    );
}
