//! The handlers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lookout::metrics::{Baseline, OperationStats, operations_since};
use lookout::opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_semantic_conventions as semconv;
use serde_json::{Map, Value as Json, json};

use crate::Admin;
use crate::prometheus::{Format, render};

pub(crate) fn router(admin: Admin) -> Router {
    let mut router = Router::new()
        // gzip when the scraper accepts it (Prometheus does): tower-http's negotiation
        // (q-values, `identity`, `Vary`), compressed as it streams.
        .route(
            "/metrics",
            get(metrics).layer(tower_http::compression::CompressionLayer::new().gzip(true)),
        )
        .route("/monitoring/metrics", get(all_operations))
        .route("/monitoring/operation", get(one_operation))
        .route("/monitoring/system", get(system))
        .route("/monitoring/live", get(live))
        .route("/monitoring/ready", get(ready))
        .route("/monitoring/health", get(health));
    if admin.inner.reset_token.is_some() {
        router = router.route("/monitoring/reset", post(reset));
    }
    #[cfg(feature = "health")]
    let health = admin.inner.health.clone();
    #[cfg(feature = "view")]
    let view = crate::view::router(admin.clone());
    let router = router.with_state(admin);
    #[cfg(feature = "view")]
    let router = router.merge(view);
    #[cfg(feature = "health")]
    let router = match health {
        Some(h) => router.merge(h),
        None => router,
    };
    router
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn unavailable() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": "no metrics: lookout is not initialised (or was shut down, or OTEL_SDK_DISABLED is set)"}),
    )
}

// The error is the response to send, built once per failed request.
#[allow(clippy::result_large_err)]
fn collect(admin: &Admin) -> Result<ResourceMetrics, Response> {
    let metrics = admin.metrics().ok_or_else(unavailable)?;
    metrics.collect().map_err(|e| {
        // A poisoned SDK pipeline will not come back by waiting: an internal error, not a 503.
        let status = if lookout::metrics::poisoned().is_some() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(
            status,
            &json!({"error": format!("metrics could not be collected: {e}")}),
        )
    })
}

async fn metrics(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let snapshot = match collect(&admin) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let text = render(&snapshot, format);
    let content_type = HeaderValue::from_static(format.content_type());
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

fn ms(d: Option<Duration>) -> Json {
    d.map_or(Json::Null, |d| json!(d.as_secs_f64() * 1000.0))
}

fn time(t: SystemTime) -> Json {
    json!(humantime::format_rfc3339_millis(t).to_string())
}

fn operation_json(o: &OperationStats) -> Json {
    json!({
        "name": o.name,
        "module": o.module,
        "calls": o.calls,
        "errors": o.errors,
        "error_rate": o.error_rate(),
        "errors_by_type": o.errors_by_type,
        "in_progress": o.in_progress,
        "duration_ms": {
            "min": ms(o.min), "avg": ms(o.avg), "max": ms(o.max),
            "p50": ms(o.p50), "p95": ms(o.p95), "p99": ms(o.p99),
        },
        "last_call": o.last_call.map_or(Json::Null, time),
    })
}

fn operations(admin: &Admin, snapshot: &ResourceMetrics) -> (Vec<OperationStats>, Json) {
    let baseline = admin
        .inner
        .baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ops = operations_since(snapshot, baseline.as_ref().map(|(_, b)| b));
    let since = baseline.map_or(Json::Null, |(t, _)| time(t));
    (ops, since)
}

async fn all_operations(State(admin): State<Admin>) -> Response {
    let snapshot = match collect(&admin) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (ops, since) = operations(&admin, &snapshot);
    let list: Vec<Json> = ops.iter().map(operation_json).collect();
    json_response(
        StatusCode::OK,
        &json!({"operations": list, "since_reset": since}),
    )
}

async fn one_operation(State(admin): State<Admin>, RawQuery(query): RawQuery) -> Response {
    let name = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.into_owned())
    });
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "missing the operation name: use /monitoring/operation?name=<function or timer name>"}),
        );
    };
    let snapshot = match collect(&admin) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (ops, since) = operations(&admin, &snapshot);
    let found: Vec<Json> = ops
        .iter()
        .filter(|o| o.name == name)
        .map(operation_json)
        .collect();
    match found.len() {
        0 => json_response(
            StatusCode::NOT_FOUND,
            &json!({
                "error": format!("no operation named '{name}' has been recorded"),
                "known": ops.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            }),
        ),
        1 => {
            let mut one = found.into_iter().next().unwrap_or(Json::Null);
            if let Json::Object(m) = &mut one {
                m.insert("since_reset".into(), since);
            }
            json_response(StatusCode::OK, &one)
        }
        // the same name in several modules
        _ => json_response(
            StatusCode::OK,
            &json!({"operations": found, "since_reset": since}),
        ),
    }
}

/// Each instrument of `scope_prefix` scopes, summed over its series (keyed by the attribute
/// values when several), e.g. `process.cpu.time` by `cpu.mode`.
fn figures(snapshot: &ResourceMetrics, scope: &str) -> Map<String, Json> {
    let mut out = Map::new();
    for s in snapshot
        .scope_metrics()
        .filter(|s| s.scope().name() == scope)
    {
        for m in s.metrics() {
            let mut points: Vec<(String, f64)> = Vec::new();
            macro_rules! take {
                ($pts:expr) => {
                    for p in $pts {
                        let key = p
                            .attributes()
                            .map(|kv| kv.value.as_str().into_owned())
                            .collect::<Vec<_>>()
                            .join(",");
                        points.push((key, p.value() as f64));
                    }
                };
            }
            match m.data() {
                AggregatedMetrics::F64(MetricData::Sum(d)) => take!(d.data_points()),
                AggregatedMetrics::I64(MetricData::Sum(d)) => take!(d.data_points()),
                AggregatedMetrics::U64(MetricData::Sum(d)) => take!(d.data_points()),
                AggregatedMetrics::F64(MetricData::Gauge(d)) => take!(d.data_points()),
                AggregatedMetrics::I64(MetricData::Gauge(d)) => take!(d.data_points()),
                AggregatedMetrics::U64(MetricData::Gauge(d)) => take!(d.data_points()),
                _ => continue,
            }
            let value = if points.len() == 1 && points[0].0.is_empty() {
                json!(points[0].1)
            } else {
                Json::Object(points.into_iter().map(|(k, v)| (k, json!(v))).collect())
            };
            out.insert(m.name().to_owned(), value);
        }
    }
    out
}

/// Series per instrument, and the instruments that hit the cardinality limit (noted by
/// `Metrics::collect` as it took the snapshot).
fn series(snapshot: &ResourceMetrics) -> Json {
    let mut instruments = 0usize;
    let mut total = 0usize;
    for s in snapshot.scope_metrics() {
        for m in s.metrics() {
            instruments += 1;
            total += match m.data() {
                AggregatedMetrics::F64(MetricData::Sum(d)) => d.data_points().count(),
                AggregatedMetrics::I64(MetricData::Sum(d)) => d.data_points().count(),
                AggregatedMetrics::U64(MetricData::Sum(d)) => d.data_points().count(),
                AggregatedMetrics::F64(MetricData::Gauge(d)) => d.data_points().count(),
                AggregatedMetrics::I64(MetricData::Gauge(d)) => d.data_points().count(),
                AggregatedMetrics::U64(MetricData::Gauge(d)) => d.data_points().count(),
                AggregatedMetrics::F64(MetricData::Histogram(d)) => d.data_points().count(),
                AggregatedMetrics::I64(MetricData::Histogram(d)) => d.data_points().count(),
                AggregatedMetrics::U64(MetricData::Histogram(d)) => d.data_points().count(),
                _ => 0,
            };
        }
    }
    let overflowing = lookout::metrics::overflowing();
    json!({"instruments": instruments, "series": total, "overflowing": overflowing})
}

fn pipeline() -> Json {
    let s = lookout::stats();
    let signal = |x: &lookout::SignalStats| {
        json!({
            "accepted": x.accepted, "exported": x.exported, "failed": x.failed,
            "unexported": x.unexported, "dropped": x.dropped, "in_flight": x.in_flight,
            "failing": x.failing,
        })
    };
    json!({
        "traces": signal(&s.traces),
        "metrics": signal(&s.metrics),
        "logs": signal(&s.logs),
        "last_error": s.last_error.map(|e| json!({
            "signal": e.signal.as_str(), "message": e.message, "at": time(e.at), "resolved": e.resolved,
        })),
    })
}

async fn system(State(admin): State<Admin>) -> Response {
    let snapshot = match collect(&admin) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (ops, since) = operations(&admin, &snapshot);
    let calls: u64 = ops.iter().map(|o| o.calls).sum();
    let errors: u64 = ops.iter().map(|o| o.errors).sum();
    let weighted: f64 = ops
        .iter()
        .filter_map(|o| o.avg.map(|a| a.as_secs_f64() * o.calls as f64))
        .sum();
    let avg = (calls > 0).then(|| Duration::from_secs_f64(weighted / calls as f64));
    let process = figures(&snapshot, lookout::metrics::PROCESS_SCOPE);
    let uptime = process
        .get(semconv::metric::PROCESS_UPTIME)
        .and_then(Json::as_f64)
        .unwrap_or_else(|| admin.inner.started.elapsed().as_secs_f64());
    let (process, runtime): (Map<_, _>, Map<_, _>) = process
        .into_iter()
        .partition(|(k, _)| !k.starts_with("tokio."));
    let service = snapshot
        .resource()
        .get(&lookout::opentelemetry::Key::from_static_str(
            semconv::attribute::SERVICE_NAME,
        ))
        .map(|v| v.as_str().into_owned());
    let now = SystemTime::now();
    json_response(
        StatusCode::OK,
        &json!({
            "service": service,
            "time": time(now),
            "unix_time": now.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            "uptime_seconds": uptime,
            "since_reset": since,
            "operations": {
                "count": ops.len(),
                "calls": calls,
                "errors": errors,
                "error_rate": if calls == 0 { 0.0 } else { errors as f64 / calls as f64 },
                "in_progress": ops.iter().map(|o| o.in_progress).sum::<i64>(),
                "latency_ms": {
                    "avg": ms(avg),
                    "max": ms(ops.iter().filter_map(|o| o.max).max()),
                    "worst_p99": ms(ops.iter().filter_map(|o| o.p99).max()),
                },
            },
            "process": process,
            "runtime": runtime,
            "pipeline": pipeline(),
            "metrics": series(&snapshot),
        }),
    )
}

#[cfg_attr(not(feature = "health"), allow(unused_variables))]
async fn forward_health(admin: Admin, path: &'static str, req: Request) -> Response {
    #[cfg(feature = "health")]
    if let Some(mut routes) = admin.inner.health.clone() {
        let (mut parts, body) = req.into_parts();
        parts.uri = axum::http::Uri::from_static(path);
        return match tower_service::Service::call(&mut routes, Request::from_parts(parts, body))
            .await
        {
            Ok(r) => r,
            Err(never) => match never {},
        };
    }
    json_response(
        StatusCode::OK,
        &json!({"status": "pass", "description": "no health checks registered"}),
    )
}

async fn live(State(admin): State<Admin>, req: Request) -> Response {
    forward_health(admin, "/health/live", req).await
}

async fn ready(State(admin): State<Admin>, req: Request) -> Response {
    forward_health(admin, "/health/ready", req).await
}

async fn health(State(admin): State<Admin>, req: Request) -> Response {
    forward_health(admin, "/health", req).await
}

async fn reset(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    let Some(token) = admin.inner.reset_token.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !crate::auth::bearer_matches(&headers, token) {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "reset needs Authorization: Bearer <the admin reset token>"}),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let snapshot = match collect(&admin) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let at = SystemTime::now();
    *admin
        .inner
        .baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some((at, Baseline::of(&snapshot)));
    tracing::info!(target: "lookout_admin", "monitoring statistics reset");
    json_response(
        StatusCode::OK,
        &json!({
            "reset": time(at),
            "cleared": "operation statistics of /monitoring/metrics, /monitoring/operation and /monitoring/system now count from this time; /metrics and OTLP export are not reset",
        }),
    )
}
