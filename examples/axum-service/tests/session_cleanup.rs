//! The session-cleanup job in the real service: expired sessions go, live ones stay, and the
//! job's health check is on the admin address.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use example_axum_service::store::{Store, unix_now};
use lookout_testing::free_port;
use serde_json::Value;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn expired_sessions_go_and_live_ones_stay() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("sessions.db");
    let db = db.to_str().expect("utf-8 path");
    // 12,000 expired sessions (more than two batches) and 500 live ones, written before the
    // service starts, through the service's own store.
    let store = Store::open(db).expect("open the database");
    store
        .insert_many(12_000, unix_now() - 60)
        .await
        .expect("insert expired");
    store
        .insert_many(500, unix_now() + 3_600)
        .await
        .expect("insert live");
    assert_eq!(store.count().await.expect("count"), 12_500);

    let (api, admin) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_example-axum-service"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{api}"))
        .env("LOOKOUT_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("LOOKOUT_ADMIN_TOKEN", "t0ken")
        .env("SESSIONS_DB", db)
        .env("SESSION_CLEANUP_INTERVAL", "1s")
        // Nothing exported (no collector here), but metrics are kept for /metrics.
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("LOOKOUT_CONSOLE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start example-axum-service");
    let _svc = Killed(child);
    let c = reqwest::Client::new();

    // A session created through the API while the service runs.
    let start = Instant::now();
    let created: Value = loop {
        if let Ok(resp) = c
            .post(format!("http://127.0.0.1:{api}/sessions"))
            .body(r#"{"user":"ada"}"#)
            .send()
            .await
        {
            break resp.json().await.expect("created session json");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "service did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = created["id"].as_str().expect("session id").to_owned();

    // The job's first run is at start: 12,000 expired sessions in batches of 5,000.
    let start = Instant::now();
    while store.count().await.expect("count") > 501 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "expired sessions not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        store.count().await.expect("count"),
        501,
        "a live session was deleted"
    );
    let resp = c
        .get(format!("http://127.0.0.1:{api}/sessions/{id}"))
        .send()
        .await
        .expect("get session");
    assert_eq!(resp.status(), 200);

    // The job's health check, with details for the admin token.
    let health: Value = c
        .get(format!("http://127.0.0.1:{admin}/health/ready"))
        .header("authorization", "Bearer t0ken")
        .header("accept", "application/health+json")
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("health json");
    let check = &health["checks"]["session-cleanup"][0];
    assert_eq!(check["status"], "pass", "{health:#}");
    assert_eq!(check["observedValue"], 0, "{health:#}");
    assert_eq!(check["observedUnit"], "{item}", "{health:#}");

    // The admin server: #[measured] store functions, the cleanup job's metrics, process and
    // runtime metrics, all in one Prometheus scrape that promtool finds nothing wrong with.
    let op: Value = c
        .get(format!(
            "http://127.0.0.1:{admin}/monitoring/operation?name=sessions.create"
        ))
        .send()
        .await
        .expect("operation")
        .json()
        .await
        .expect("operation json");
    assert_eq!(op["calls"], 1, "{op:#}");
    assert_eq!(op["errors"], 0, "{op:#}");
    let scrape = c
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for needle in [
        "function_calls_total{function=\"sessions.create\"",
        "cleanup_runs_total{",
        "http_server_request_duration_seconds_bucket{",
        "process_memory_usage_bytes{",
        "tokio_runtime_workers{",
    ] {
        assert!(scrape.contains(needle), "no {needle} in\n{scrape}");
    }
    if let Err(said) = lookout_testing::promtool_check_metrics(&scrape) {
        panic!("{said}");
    }
}
