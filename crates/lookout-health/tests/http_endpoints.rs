//! The axum routes, served on loopback and called with a real HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_health::http::{HttpOptions, ShowDetails, StatusCodes};
use lookout_health::{Check, CheckResult, Health, Status, check_fn};
use reqwest::StatusCode;
use serde_json::Value;

/// A reqwest client. The workspace builds reqwest with rustls but no crypto provider (lookout's
/// `tls` feature brings its own), so the test installs ring as the process default first.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn sample() -> Health {
    Health::builder()
        .group("payments")
        .check(
            Check::new("core", check_fn(|| async { Status::Up })).groups(["liveness", "readiness"]),
        )
        .check(
            Check::new(
                "cache",
                check_fn(|| async {
                    CheckResult::degraded("hit ratio low").with_observed(0.2, "1")
                }),
            )
            .optional(),
        )
        .check(
            Check::new(
                "psp",
                check_fn(|| async { CheckResult::down("connection refused") }),
            )
            .external()
            .groups(["payments"]),
        )
        .build()
        .expect("valid")
}

async fn get(
    client: &reqwest::Client,
    url: String,
    accept: Option<&str>,
) -> (StatusCode, String, Value, reqwest::header::HeaderMap) {
    let mut req = client.get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("JSON body");
    (status, ctype, body, headers)
}

#[tokio::test]
async fn status_codes_and_the_minimal_body() {
    let addr = serve(sample().router()).await;
    let c = client();
    let (code, ctype, body, headers) =
        get(&c, format!("http://{addr}/health/ready"), Some("*/*")).await;
    assert_eq!(code, StatusCode::OK, "Degraded is 200");
    assert_eq!(ctype, "application/json");
    assert_eq!(
        body,
        serde_json::json!({"status": "DEGRADED"}),
        "no details by default"
    );
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("max-age=1")
    );
    let (code, _, body, _) = get(&c, format!("http://{addr}/health/live"), None).await;
    assert_eq!(
        (code, body),
        (StatusCode::OK, serde_json::json!({"status": "UP"}))
    );
    let (code, _, body, _) = get(&c, format!("http://{addr}/health/payments"), None).await;
    assert_eq!(
        (code, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "DOWN"})
        )
    );
    let (code, _, body, _) = get(&c, format!("http://{addr}/health"), None).await;
    assert_eq!(
        (code, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "DOWN"})
        )
    );
    let (code, _, _, _) = get(&c, format!("http://{addr}/health/liveness"), None).await;
    assert_eq!(code, StatusCode::OK, "groups by full name too");
    let head = c
        .head(format!("http://{addr}/health/live"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_json_when_asked_with_ietf_fields() {
    let addr =
        serve(sample().router_with(HttpOptions::default().show_details(ShowDetails::Always))).await;
    let c = client();
    let (code, ctype, body, _) = get(
        &c,
        format!("http://{addr}/health/ready"),
        Some("text/html;q=0.5, application/health+json"),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ctype, "application/health+json");
    assert_eq!(body["status"], "warn");
    let cache = &body["checks"]["cache"][0];
    assert_eq!(cache["componentId"], "cache");
    assert_eq!(cache["status"], "warn");
    assert_eq!(cache["observedValue"], 0.2);
    assert_eq!(cache["observedUnit"], "1");
    assert_eq!(cache["output"], "hit ratio low");
    assert!(
        cache["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{cache}"
    );
    let (code, _, body, _) = get(
        &c,
        format!("http://{addr}/health/payments"),
        Some("application/health+json"),
    )
    .await;
    assert_eq!(
        (code, body["status"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("fail"))
    );
}

#[tokio::test]
async fn details_only_for_authorised_requests() {
    let options = HttpOptions::default()
        .show_details(ShowDetails::WhenAuthorized)
        .authorizer(|parts| {
            parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                == Some("Bearer s3cret")
        });
    let addr = serve(sample().router_with(options)).await;
    let c = client();
    let anonymous = c
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .expect("req");
    let anonymous: Value = anonymous.json().await.expect("json");
    assert!(anonymous.get("checks").is_none(), "{anonymous}");
    let authorised = c
        .get(format!("http://{addr}/health"))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .expect("req");
    let body: Value = authorised.json().await.expect("json");
    assert_eq!(body["checks"]["psp"]["status"], "DOWN");
    assert_eq!(body["checks"]["psp"]["message"], "connection refused");
    assert_eq!(body["checks"]["cache"]["critical"], false);
    assert!(body["checks"]["core"]["durationMs"].is_number(), "{body}");
}

#[tokio::test]
async fn bad_requests_get_clear_answers() {
    let addr = serve(sample().router()).await;
    let c = client();
    let (code, _, body, _) = get(&c, format!("http://{addr}/health/nope"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown health group 'nope'");
    assert_eq!(
        body["groups"],
        serde_json::json!(["liveness", "readiness", "startup", "payments"])
    );
    let post = c
        .post(format!("http://{addr}/health/ready"))
        .send()
        .await
        .expect("POST");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = post
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(allow.contains("GET"), "{allow}");
    // Bytes that are not valid header text: the minimal body, not an error.
    let weird = reqwest::header::HeaderValue::from_bytes(b"application/health+json\xfe;;=,")
        .expect("opaque header bytes");
    let resp = c
        .get(format!("http://{addr}/health/live"))
        .header("accept", weird)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        serde_json::json!({"status": "UP"})
    );
}

#[tokio::test]
async fn status_codes_are_configurable_and_zero_ttl_is_not_cached() {
    let health = Health::builder()
        .check(
            Check::new("c", check_fn(|| async { CheckResult::degraded("slow") }))
                .ttl(Duration::ZERO),
        )
        .build()
        .expect("valid");
    let codes = StatusCodes {
        degraded: http::StatusCode::from_u16(299).expect("code"),
        ..StatusCodes::default()
    };
    let addr = serve(health.router_with(HttpOptions::default().status_codes(codes))).await;
    let resp = client()
        .get(format!("http://{addr}/health/ready"))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 299);
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_flood_over_http_runs_the_check_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let health = Health::builder()
        .check(
            Check::new(
                "db",
                check_fn(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    async {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Status::Up
                    }
                }),
            )
            .ttl(Duration::from_secs(30)),
        )
        .build()
        .expect("valid");
    let addr = serve(health.router()).await;
    let client = client();
    // 1,000 concurrent requests, each on its own connection while the first run is under way.
    let requests = (0..1000).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .get(format!("http://{addr}/health/ready"))
                .send()
                .await
                .map(|r| r.status())
        })
    });
    let codes = futures_util::future::join_all(requests).await;
    assert!(codes.iter().all(|c| matches!(c, Ok(Ok(StatusCode::OK)))));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_drains_readiness_while_liveness_stays_up() {
    let health = Health::builder()
        .check(
            Check::new("core", check_fn(|| async { Status::Up })).groups(["liveness", "readiness"]),
        )
        .build()
        .expect("valid");
    let addr = serve(health.router()).await;
    let c = client();
    health.begin_shutdown();
    let (code, _, body, _) = get(&c, format!("http://{addr}/health/ready"), None).await;
    assert_eq!(
        (code, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "OUT_OF_SERVICE"})
        )
    );
    let (code, _, body, _) = get(
        &c,
        format!("http://{addr}/health/ready"),
        Some("application/health+json"),
    )
    .await;
    assert_eq!(
        (code, body["status"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("fail"))
    );
    let (code, _, _, _) = get(&c, format!("http://{addr}/health/live"), None).await;
    assert_eq!(code, StatusCode::OK);
}
