//! A metric callback that panics poisons the OpenTelemetry SDK's pipeline for good: `/metrics`
//! answers 500 saying why (it used to drop the connection, its handler panicking), and the admin
//! server keeps serving its other routes. (One test per file: the state is process-wide.)
#![allow(clippy::unwrap_used)]

use lookout::metrics::Metrics;
use lookout::opentelemetry::metrics::MeterProvider as _;
use lookout_admin::Admin;

#[tokio::test]
async fn metrics_answers_500_with_the_cause_and_the_server_lives_on() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Metrics::in_memory(lookout::opentelemetry_sdk::Resource::builder_empty().build());
    let _bad = metrics
        .provider()
        .meter("app")
        .u64_observable_gauge("bad.gauge")
        .with_callback(|_| panic!("callback exploded"))
        .build();
    let admin = Admin::builder()
        .metrics(metrics)
        .build()
        .unwrap()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", admin.local_addr());
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 500);
        let body = response.text().await.unwrap();
        assert!(body.contains("callback exploded"), "{body}");
        assert!(body.contains("poisoned"), "{body}");
    }
    let live = client
        .get(format!("{base}/monitoring/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let _ = admin.shutdown().await;
}
