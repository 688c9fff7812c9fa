//! The HTTP endpoints, as an axum [`Router`].
//!
//! | route | group |
//! |---|---|
//! | `GET /health` | every check |
//! | `GET /health/live` | `liveness` |
//! | `GET /health/ready` | `readiness` |
//! | `GET /health/startup` | `startup` |
//! | `GET /health/{group}` | a built-in or custom group |
//!
//! Up and Degraded answer 200, Down, OutOfService and Unknown 503 (see [`StatusCodes`]). The body
//! is `{"status":"UP"}` unless the client asks for `application/health+json` (the IETF draft's
//! `pass`/`warn`/`fail`), and each check's details are shown only as [`ShowDetails`] allows.
//! `Cache-Control: max-age` is the shortest TTL among the group's checks. An unknown group is 404
//! with the known groups listed; methods other than GET and HEAD are 405.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::get;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, StatusCode, request::Parts};
use serde_json::{Map, Value, json};

use crate::group;
use crate::registry::Health;
use crate::report::Report;
use crate::status::Status;

/// When each check's details (messages, observed values, timings) are in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShowDetails {
    /// Only the aggregate status (the default: probes need nothing more, and details can leak).
    #[default]
    Never,
    /// When the [authoriser](HttpOptions::authorizer) accepts the request.
    WhenAuthorized,
    /// Always; for endpoints bound to a private address.
    Always,
}

/// The HTTP status code for each aggregate status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCodes {
    /// For Up (default 200).
    pub up: StatusCode,
    /// For Degraded (default 200: still serving).
    pub degraded: StatusCode,
    /// For Unknown (default 503: not ready until the first result).
    pub unknown: StatusCode,
    /// For OutOfService (default 503).
    pub out_of_service: StatusCode,
    /// For Down (default 503).
    pub down: StatusCode,
}

impl Default for StatusCodes {
    fn default() -> Self {
        StatusCodes {
            up: StatusCode::OK,
            degraded: StatusCode::OK,
            unknown: StatusCode::SERVICE_UNAVAILABLE,
            out_of_service: StatusCode::SERVICE_UNAVAILABLE,
            down: StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl StatusCodes {
    /// The code for `status`.
    pub fn for_status(&self, status: Status) -> StatusCode {
        match status {
            Status::Up => self.up,
            Status::Degraded => self.degraded,
            Status::Unknown => self.unknown,
            Status::OutOfService => self.out_of_service,
            Status::Down => self.down,
        }
    }
}

type Authorizer = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// How the router answers.
#[derive(Clone, Default)]
#[must_use = "options do nothing until given to a router"]
pub struct HttpOptions {
    show_details: ShowDetails,
    authorizer: Option<Authorizer>,
    status_codes: StatusCodes,
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("show_details", &self.show_details)
            .field("authorizer", &self.authorizer.as_ref().map(|_| "<fn>"))
            .field("status_codes", &self.status_codes)
            .finish()
    }
}

impl HttpOptions {
    /// When details are shown (default [`ShowDetails::Never`]).
    pub fn show_details(mut self, show: ShowDetails) -> Self {
        self.show_details = show;
        self
    }

    /// Decides from the request head whether details may be shown, with
    /// [`ShowDetails::WhenAuthorized`]. Without one, nobody is authorised.
    pub fn authorizer(mut self, f: impl Fn(&Parts) -> bool + Send + Sync + 'static) -> Self {
        self.authorizer = Some(Arc::new(f));
        self
    }

    /// The status code for each aggregate status.
    pub fn status_codes(mut self, codes: StatusCodes) -> Self {
        self.status_codes = codes;
        self
    }

    fn details_allowed(&self, parts: &Parts) -> bool {
        match self.show_details {
            ShowDetails::Never => false,
            ShowDetails::Always => true,
            ShowDetails::WhenAuthorized => self.authorizer.as_ref().is_some_and(|f| f(parts)),
        }
    }
}

#[derive(Debug)]
struct Routes {
    health: Health,
    options: HttpOptions,
}

impl Health {
    /// The health routes with the default options.
    pub fn router(&self) -> Router {
        self.router_with(HttpOptions::default())
    }

    /// The health routes, answering as `options` say.
    pub fn router_with(&self, options: HttpOptions) -> Router {
        let state = Arc::new(Routes {
            health: self.clone(),
            options,
        });
        Router::new()
            .route(
                "/health",
                get(|State(s): State<Arc<Routes>>, req: Request| async move {
                    s.answer("", req).await
                }),
            )
            .route(
                "/health/live",
                get(|State(s): State<Arc<Routes>>, req: Request| async move {
                    s.answer(group::LIVENESS, req).await
                }),
            )
            .route(
                "/health/ready",
                get(|State(s): State<Arc<Routes>>, req: Request| async move {
                    s.answer(group::READINESS, req).await
                }),
            )
            .route(
                "/health/startup",
                get(|State(s): State<Arc<Routes>>, req: Request| async move {
                    s.answer(group::STARTUP, req).await
                }),
            )
            .route(
                "/health/{group}",
                get(
                    |State(s): State<Arc<Routes>>, Path(group): Path<String>, req: Request| async move {
                        s.answer(&group, req).await
                    },
                ),
            )
            .with_state(state)
    }
}

const HEALTH_JSON: &str = "application/health+json";

impl Routes {
    async fn answer(&self, group: &str, req: Request) -> Response {
        let (parts, _) = req.into_parts();
        let Some(report) = self.health.report(group).await else {
            let body = json!({
                "error": format!("unknown health group '{group}'"),
                "groups": self.health.groups(),
            });
            return respond(StatusCode::NOT_FOUND, "application/json", &body, None);
        };
        let details = self.options.details_allowed(&parts);
        let code = self.options.status_codes.for_status(report.status());
        let max_age = report.max_age().map(|d| d.as_secs());
        if wants_health_json(&parts.headers) {
            respond(code, HEALTH_JSON, &health_json(&report, details), max_age)
        } else {
            respond(
                code,
                "application/json",
                &plain_json(&report, details),
                max_age,
            )
        }
    }
}

fn respond(code: StatusCode, content_type: &str, body: &Value, max_age: Option<u64>) -> Response {
    let cache = match max_age {
        Some(secs) if secs > 0 => format!("max-age={secs}"),
        _ => "no-store".to_owned(),
    };
    Response::builder()
        .status(code)
        .header(CONTENT_TYPE, content_type)
        .header(CACHE_CONTROL, cache)
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Whether the Accept header asks for `application/health+json`. A header that is not valid
/// text counts as not asking (the minimal body is the fallback).
fn wants_health_json(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().any(|value| {
        let Ok(text) = value.to_str() else {
            return false;
        };
        lookout::__shared::weighted(text)
            .any(|(media, q)| media.eq_ignore_ascii_case(HEALTH_JSON) && q > 0.0)
    })
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn plain_json(report: &Report, details: bool) -> Value {
    let mut body = Map::new();
    body.insert("status".into(), report.status().as_str().into());
    if details {
        let mut checks = Map::new();
        for c in report.checks() {
            let r = c.result();
            let mut check = Map::new();
            check.insert("status".into(), r.status().as_str().into());
            check.insert("critical".into(), c.critical().into());
            if let Some(m) = r.message() {
                check.insert("message".into(), m.into());
            }
            if let Some((value, unit)) = r.observed() {
                check.insert("observedValue".into(), value.clone());
                check.insert("observedUnit".into(), unit.into());
            }
            if let Some(d) = c.duration() {
                check.insert("durationMs".into(), (d.as_secs_f64() * 1000.0).into());
                check.insert("time".into(), rfc3339(r.time()).into());
            }
            if let Some(t) = r.error_type() {
                check.insert("errorType".into(), t.into());
            }
            if !r.details().is_empty() {
                check.insert("details".into(), Value::Object(r.details().clone()));
            }
            checks.insert(c.name().to_owned(), Value::Object(check));
        }
        body.insert("checks".into(), Value::Object(checks));
    }
    Value::Object(body)
}

/// The IETF draft "Health Check Response Format for HTTP APIs" body.
fn health_json(report: &Report, details: bool) -> Value {
    let mut body = Map::new();
    body.insert("status".into(), report.status().health_json().into());
    if report.status() == Status::OutOfService {
        body.insert("output".into(), "shutting down".into());
    }
    if details {
        let mut checks = Map::new();
        for c in report.checks() {
            let r = c.result();
            let mut item = Map::new();
            item.insert("componentId".into(), c.name().into());
            item.insert("status".into(), r.status().health_json().into());
            if let Some((value, unit)) = r.observed() {
                item.insert("observedValue".into(), value.clone());
                item.insert("observedUnit".into(), unit.into());
            }
            if let Some(m) = r.message() {
                item.insert("output".into(), m.into());
            }
            if c.duration().is_some() {
                item.insert("time".into(), rfc3339(r.time()).into());
            }
            checks.insert(c.name().to_owned(), Value::Array(vec![Value::Object(item)]));
        }
        body.insert("checks".into(), Value::Object(checks));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT, HeaderValue::from_bytes(v).expect("header bytes"));
        }
        h
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_health_json(&accept(&[b"application/health+json"])));
        assert!(wants_health_json(&accept(&[
            b"text/html, Application/Health+JSON;q=0.9"
        ])));
        assert!(wants_health_json(&accept(&[
            b"*/*",
            b"application/health+json"
        ])));
        assert!(!wants_health_json(&accept(&[b"*/*"])), "kubelet sends */*");
        assert!(!wants_health_json(&accept(&[
            b"application/health+json;q=0"
        ])));
        assert!(!wants_health_json(&accept(&[
            b"application/health+json\xff"
        ])));
        assert!(!wants_health_json(&accept(&[b";;;,,,=q"])));
        assert!(!wants_health_json(&HeaderMap::new()));
    }
}
