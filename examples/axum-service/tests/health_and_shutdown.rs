//! The example service as a user runs it: a real process, real HTTP, real SQLite, a signal.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout_testing::free_port;
use reqwest::StatusCode;
use serde_json::Value;

struct Service {
    child: Child,
    api: String,
    admin: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    let (api, admin, dead) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_example-axum-service"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{api}"))
        .env("LOOKOUT_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("LOOKOUT_ADMIN_TOKEN", "t0ken")
        .env("SHUTDOWN_DRAIN", "2s")
        // Nothing listens here: the pipeline check must notice the failing export.
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{dead}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
        .env("LOOKOUT_SHUTDOWN_TIMEOUT", "1000")
        .env("LOOKOUT_CONSOLE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start example-axum-service");
    Service {
        child,
        api: format!("http://127.0.0.1:{api}"),
        admin: format!("http://127.0.0.1:{admin}"),
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn details(c: &reqwest::Client, admin: &str) -> Option<Value> {
    let resp = c
        .get(format!("{admin}/health"))
        .header("authorization", "Bearer t0ken")
        .header("accept", "application/health+json")
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

#[tokio::test]
async fn serves_sessions_and_health_then_drains_on_sigterm() {
    let mut svc = start();
    // The workspace builds reqwest with rustls and no crypto provider: install ring first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::new();
    eventually(Duration::from_secs(60), "the admin server", || async {
        let r = c
            .get(format!("{}/health/live", svc.admin))
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;

    // The API works against the real database.
    let created: Value = c
        .post(format!("{}/sessions", svc.api))
        .body(r#"{"user":"alice"}"#)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let got = c
        .get(format!("{}/sessions/{id}", svc.api))
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.json::<Value>().await.expect("json")["user"], "alice");
    let bad = c
        .post(format!("{}/sessions", svc.api))
        .body("nope")
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Real checks, details only with the token.
    let anonymous: Value = c
        .get(format!("{}/health/ready", svc.admin))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert!(anonymous.get("checks").is_none(), "{anonymous}");
    let body = details(&c, &svc.admin).await.expect("details");
    assert_eq!(body["checks"]["sqlite"][0]["status"], "pass", "{body}");
    assert_eq!(body["checks"]["memory"][0]["observedUnit"], "By", "{body}");
    // The collector is down: the pipeline check says so, and readiness still passes (optional).
    let telemetry = eventually(
        Duration::from_secs(30),
        "the pipeline check to degrade",
        || async {
            let body = details(&c, &svc.admin).await?;
            let t = body["checks"]["telemetry"][0].clone();
            (t["status"] == "warn").then_some(t)
        },
    )
    .await;
    assert!(
        telemetry["output"]
            .as_str()
            .is_some_and(|o| o.contains("exports are failing")),
        "{telemetry}"
    );
    let ready = c
        .get(format!("{}/health/ready", svc.admin))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), StatusCode::OK, "Degraded is still ready");

    // SIGTERM: readiness drains while liveness and the API keep answering, then a clean exit.
    let pid = svc.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let body: Value = eventually(Duration::from_secs(10), "readiness to drain", || async {
        let r = c
            .get(format!("{}/health/ready", svc.admin))
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(r.json().await.ok()?)
    })
    .await;
    assert_eq!(body["status"], "OUT_OF_SERVICE");
    let live = c
        .get(format!("{}/health/live", svc.admin))
        .send()
        .await
        .expect("live");
    assert_eq!(
        live.status(),
        StatusCode::OK,
        "liveness stays up while draining"
    );
    let api = c
        .get(format!("{}/sessions/{id}", svc.api))
        .send()
        .await
        .expect("API while draining");
    assert_eq!(api.status(), StatusCode::OK);
    let status = eventually(Duration::from_secs(20), "the process to exit", || {
        let s = svc.child.try_wait().expect("try_wait");
        async move { s }
    })
    .await;
    // Telemetry was lost (no collector), which main reports on stderr; the exit is still clean.
    assert!(status.success(), "{status:?}");
}
