//! Run with: `cargo run -p example-axum-service`
//!
//! A sessions API (`POST /sessions`, `GET /sessions/{id}`, `DELETE /sessions/{id}`) on
//! `LISTEN_ADDR` (default 127.0.0.1:3000), its sessions in SQLite (`SESSIONS_DB`, default
//! in-memory), and the health routes on the admin address `LOOKOUT_ADMIN_ADDR` (default
//! 127.0.0.1:9464) with real checks: a database ping (readiness), lookout's telemetry pipeline
//! (optional) and process memory (liveness and readiness), Prometheus `/metrics` and the
//! `/monitoring/*` JSON (lookout-admin; `POST /monitoring/reset` with the admin token). The store's
//! functions are `#[lookout::measured]`; process and runtime metrics are on. The API is traced and measured by
//! lookout-tower's HTTP layer (a span per request continuing the caller's `traceparent`,
//! `http.server.request.duration` by route template).
//!
//! Open <http://127.0.0.1:9464/view/> for the local view (no collector needed: with
//! `OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none` nothing is
//! exported and everything is still shown there).
//!
//! Try: `curl -si localhost:9464/health/ready`, or with details:
//! `LOOKOUT_ADMIN_TOKEN=t cargo run -p example-axum-service` then
//! `curl -s -H 'authorization: Bearer t' -H 'accept: application/health+json' localhost:9464/health`.
//!
//! Expired sessions are deleted by a `lookout-cleanup` job every `SESSION_CLEANUP_INTERVAL`
//! (default `60s`), in batches, with its span, `cleanup.*` metrics and a readiness check.
//!
//! `SESSIONS_DB_FAIL=true` makes every database statement fail (error traces, alerts and a DOWN
//! readiness check on purpose; see deploy/RUNBOOK.md).
//!
//! On SIGINT/SIGTERM readiness turns OUT_OF_SERVICE, the service keeps serving for the drain delay
//! (`SHUTDOWN_DRAIN`, default `5s`), then stops: requests in progress get 5 s more, connections
//! still open then are closed (idle or slow clients cannot hold the exit), and the telemetry is
//! flushed.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lookout_health::http::{HttpOptions, ShowDetails};
use lookout_health::{Check, Health, checks};
use serde_json::json;

use example_axum_service::cleanup;
use example_axum_service::store::{self, Store};

const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = lookout::Telemetry::builder()
        .service_name("axum-service")
        .service_version(env!("CARGO_PKG_VERSION"))
        // CPU, memory, file descriptors, threads, uptime, and this tokio runtime's figures.
        .process_metrics()
        .init()?;

    let listen: SocketAddr = env_or("LISTEN_ADDR", "127.0.0.1:3000")?;
    let admin = lookout::admin_addr()?;
    let drain =
        humantime::parse_duration(&std::env::var("SHUTDOWN_DRAIN").unwrap_or_else(|_| "5s".into()))
            .map_err(|e| format!("SHUTDOWN_DRAIN: {e}: use a duration such as 5s or 500ms"))?;
    let db_path = std::env::var("SESSIONS_DB").unwrap_or_else(|_| ":memory:".into());
    let store = Store::open(&db_path)?;
    if std::env::var("SESSIONS_DB_FAIL").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        tracing::warn!("SESSIONS_DB_FAIL=true: every database statement will fail");
        store.set_failing(true);
    }

    let cleanup_interval = humantime::parse_duration(
        &std::env::var("SESSION_CLEANUP_INTERVAL").unwrap_or_else(|_| "60s".into()),
    )
    .map_err(|e| format!("SESSION_CLEANUP_INTERVAL: {e}: use a duration such as 60s, 2s or 5m"))?;
    let cleanup = cleanup::spawn(store.clone(), cleanup_interval)?;

    let health = health(&store, drain)?;
    // The cleanup job's dead man's switch, in readiness (optional: a late cleanup alerts but
    // does not take the service out of its load balancer).
    health.register(cleanup.check())?;
    let api = Router::new()
        .route("/sessions", post(create_session))
        .route("/sessions/{id}", get(get_session).delete(delete_session))
        .with_state(store)
        // Spans continuing the caller's trace, and http.server.* metrics by route template.
        .layer(lookout_tower::HttpServerLayer::new().capture_request_headers(["x-request-id"]));

    // The admin address also serves the local view (`/view/`): traces, logs, metrics, health and
    // this cleanup job (run now / pause / resume) in the browser.
    let mut admin_routes = lookout_admin::Admin::builder()
        .health_with(health.clone(), admin_options())
        .job(cleanup.clone());
    if let Some(token) = admin_token() {
        admin_routes = admin_routes.reset_token(token);
    }
    let admin_routes = admin_routes.build()?.router();

    // On SIGINT/SIGTERM: readiness out and a cleanup run in progress finishing (the drain delay),
    // servers stopped (5 s grace), telemetry flushed last.
    let mut service = lookout_admin::Lifecycle::new(telemetry)
        .health(health)
        .on_drain(async move {
            let report = cleanup.shutdown_within(drain).await;
            tracing::info!(cancelled = report.cancelled, "session cleanup stopped");
        });
    service.serve(listen, api).await?;
    service.serve(admin, admin_routes).await?;
    tracing::info!(%listen, %admin, "serving the API, and /metrics, /monitoring/* and the health routes on the admin address");
    if let Err(e) = service.run().await {
        eprintln!("{e}");
    }
    Ok(())
}

fn env_or<T: std::str::FromStr>(name: &str, default: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let value = value.as_deref().unwrap_or(default);
    value
        .trim()
        .parse()
        .map_err(|e| format!("{name}={value:?} is invalid: {e}"))
}

fn health(store: &Store, drain: Duration) -> Result<Health, lookout_health::BuildError> {
    let db = store.clone();
    Health::builder()
        .check(
            Check::new(
                "sqlite",
                lookout_health::check_fn(move || {
                    let db = db.clone();
                    async move { db.ping().await }
                }),
            )
            .external()
            .groups(["readiness", "startup"])
            .timeout(Duration::from_millis(500)),
        )
        .check(Check::new("telemetry", checks::Pipeline::new()).optional())
        .check(Check::new("memory", checks::Memory::new()).groups(["liveness", "readiness"]))
        .drain_delay(drain)
        .build()
}

/// Details only for `Authorization: Bearer $LOOKOUT_ADMIN_TOKEN`, and never when it is unset.
/// `LOOKOUT_ADMIN_TOKEN`: shows health details and allows `POST /monitoring/reset`.
fn admin_token() -> Option<String> {
    std::env::var("LOOKOUT_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
}

fn admin_options() -> HttpOptions {
    let token = admin_token();
    HttpOptions::default()
        .show_details(ShowDetails::WhenAuthorized)
        .authorizer(move |parts| {
            token
                .as_deref()
                .is_some_and(|t| lookout_admin::bearer_matches(&parts.headers, t))
        })
}

fn json_response(code: StatusCode, body: serde_json::Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn internal(e: store::StoreError) -> Response {
    tracing::error!(error = %e, "request failed");
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": "internal error"}),
    )
}

#[tracing::instrument(skip_all)]
async fn create_session(State(store): State<Store>, body: Bytes) -> Response {
    let user = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("user").and_then(|u| u.as_str()).map(str::to_owned))
        .filter(|u| !u.is_empty());
    let Some(user) = user else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "expected a JSON body like {\"user\": \"alice\"}"}),
        );
    };
    match store.create(user, SESSION_TTL).await {
        Ok((id, expires_at)) => json_response(
            StatusCode::CREATED,
            json!({"id": id, "expires_at": expires_at}),
        ),
        Err(e) => internal(e),
    }
}

#[tracing::instrument(skip(store))]
async fn get_session(State(store): State<Store>, Path(id): Path<String>) -> Response {
    match store.get(id).await {
        Ok(Some((user, expires_at))) => json_response(
            StatusCode::OK,
            json!({"user": user, "expires_at": expires_at}),
        ),
        Ok(None) => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "no such live session"}),
        ),
        Err(e) => internal(e),
    }
}

#[tracing::instrument(skip(store))]
async fn delete_session(State(store): State<Store>, Path(id): Path<String>) -> Response {
    match store.delete(id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => json_response(StatusCode::NOT_FOUND, json!({"error": "no such session"})),
        Err(e) => internal(e),
    }
}
