//! A layer built before `lookout::init` (the usual trap: the router is made, then telemetry is
//! started) records its metrics into the pipeline `init` starts, not into the no-op meter provider
//! of the time it was built; and a clone configured afterwards keeps its own settings.

use std::convert::Infallible;

use lookout::opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use lookout::{ConsoleFormat, ExporterKind, Signal};
use lookout_tower::{HttpClientLayer, HttpServerLayer};
use tower::{Layer as _, ServiceExt as _, service_fn};

/// The count of every data point of the histogram `name`.
fn count(snapshot: &ResourceMetrics, name: &str) -> u64 {
    snapshot
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .filter(|m| m.name() == name)
        .map(|m| match m.data() {
            AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                h.data_points().map(|p| p.count()).sum()
            }
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn layers_built_before_init_record_into_the_pipeline_init_starts() {
    let server_layer = HttpServerLayer::new();
    let client_layer = HttpClientLayer::new();
    // Configured after a clone: each value has its own settings (no WARN, nothing ignored).
    let other = server_layer.clone().skip_paths(["/orders"]);

    let telemetry = lookout::Telemetry::builder()
        .exporter(Signal::Traces, ExporterKind::None)
        .exporter(Signal::Metrics, ExporterKind::None)
        .exporter(Signal::Logs, ExporterKind::None)
        .console(ConsoleFormat::Off)
        .init()
        .expect("init");

    let handler = service_fn(|_: http::Request<String>| async {
        Ok::<_, Infallible>(http::Response::new(String::from("ok")))
    });
    let request = || {
        http::Request::builder()
            .uri("/orders/7")
            .body(String::new())
            .expect("request")
    };
    for _ in 0..3 {
        let response = server_layer
            .layer(handler)
            .oneshot(request())
            .await
            .expect("served");
        assert_eq!(response.status(), 200);
    }
    // `other` skips /orders: no metrics from it.
    let _ = other.layer(handler).oneshot(request()).await;
    let client = client_layer.layer(service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(()))
    }));
    client
        .oneshot(
            http::Request::builder()
                .uri("http://127.0.0.1:9/x")
                .body(())
                .expect("request"),
        )
        .await
        .expect("sent");

    let snapshot = telemetry
        .metrics()
        .expect("metrics")
        .collect()
        .expect("collect");
    assert_eq!(count(&snapshot, "http.server.request.duration"), 3);
    assert_eq!(count(&snapshot, "http.client.request.duration"), 1);
    telemetry.shutdown().await.expect("shutdown");
}
