//! The local view: pages under `/view/` showing the recent traces, spans, logs, metrics, health,
//! cleanup jobs and export pipeline of this process, from [`lookout::view`]'s stores.
//!
//! **Who may look.** On a loopback address the pages are open to requests whose `Host` is a
//! loopback name (`localhost`, `127.0.0.1`, `[::1]`), so that a web page elsewhere cannot read
//! them through DNS rebinding. On any other address, or when the address is not known (the
//! router served by something other than lookout-admin's [`serve`](crate::serve)), the view
//! token is required: `?token=` once (it is then kept in an `HttpOnly`, `SameSite=Strict`
//! cookie scoped to `/view/`) or `Authorization: Bearer`. The token is `LOOKOUT_VIEW_TOKEN`,
//! [`AdminBuilder::view_token`](crate::AdminBuilder::view_token), or made at random and printed
//! on standard error (never into the exported logs) when a server starts on an address beyond
//! loopback, as the .NET Aspire dashboard prints its browser token. `LOOKOUT_VIEW_REQUIRE_TOKEN=true`
//! ([`AdminBuilder::view_token_always`](crate::AdminBuilder::view_token_always)) asks for it on
//! loopback too, for machines shared with other users.
//!
//! **Actions** (run now, pause, resume a job) are `POST`s from the pages' own forms: allowed as
//! the pages are, and only from the same origin (`Origin` matching `Host`, or no `Origin` and
//! no `Sec-Fetch-Site` beyond `same-origin`), so another site cannot make a browser press them.
//!
//! **Live.** Every page works as plain HTML (filters are forms, spans are `<details>`). With
//! JavaScript on, `/view/events` (server-sent events) says when a store changed, and the page
//! replaces its live part without a reload. The CSS and script are compiled into the crate; no
//! CDN, no build step.

mod chart;
mod pages;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::Admin;

/// Where a request came in: set by lookout-admin's [`serve`](crate::serve) on every request.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) local: SocketAddr,
    /// Turns true when the server starts draining: the event streams end, so that an open page
    /// does not hold the shutdown for the whole grace period.
    pub(crate) draining: Option<tokio::sync::watch::Receiver<bool>>,
}

const COOKIE: &str = "lookout_view";

/// The token of the latest admin built, and whether it was made at random (then it is printed).
static TOKEN: std::sync::Mutex<Option<(String, bool)>> = std::sync::Mutex::new(None);

/// The view's token: the one given, or one made at random.
pub(crate) fn token(given: Option<String>) -> String {
    let made = given.is_none();
    let token = given.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    *TOKEN.lock().unwrap_or_else(|e| e.into_inner()) = Some((token.clone(), made));
    token
}

/// Says on standard error (never in the exported logs) how to open the view of a server started
/// beyond loopback.
pub(crate) fn announce(local: SocketAddr) {
    if local.ip().is_loopback() {
        return;
    }
    let Some((token, made)) = TOKEN.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return;
    };
    if made {
        eprintln!(
            "lookout-admin: the local view on {local} (when this server serves Admin::router) needs its token: \
             open http://{local}/view/?token={token} (replace the address with one clients reach; \
             set LOOKOUT_VIEW_TOKEN to choose the token)"
        );
    } else {
        eprintln!(
            "lookout-admin: the local view on {local} (when this server serves Admin::router) needs the token set in \
             LOOKOUT_VIEW_TOKEN: open http://{local}/view/?token=<token>"
        );
    }
}
const CSS: &str = include_str!("assets/view.css");
const JS: &str = include_str!("assets/view.js");

pub(crate) fn router(admin: Admin) -> Router {
    Router::new()
        .route("/view", get(|| async { Redirect::to("/view/traces") }))
        .route("/view/", get(|| async { Redirect::to("/view/traces") }))
        .route("/view/traces", get(pages::traces))
        .route("/view/traces/{id}", get(pages::trace))
        .route("/view/spans", get(pages::spans))
        .route("/view/logs", get(pages::logs))
        .route("/view/metrics", get(pages::metrics))
        .route("/view/metrics/series", get(pages::series))
        .route("/view/health", get(pages::health))
        .route("/view/jobs", get(pages::jobs))
        .route("/view/jobs/{name}/{action}", post(pages::job_action))
        .route("/view/pipeline", get(pages::pipeline))
        .route("/view/events", get(events))
        .route(
            "/view/assets/view.css",
            get(|| asset(CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/view/assets/view.js",
            get(|| asset(JS, "text/javascript; charset=utf-8")),
        )
        .layer(axum::middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Whether the request's `Host` names this machine's loopback.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "::1"
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Token, Host and same-origin checks for every `/view/` request.
async fn guard(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let token = admin.view_token();
    let headers = request.headers();
    let on_loopback = request
        .extensions()
        .get::<Served>()
        .is_some_and(|s| s.local.ip().is_loopback());
    let open = on_loopback && loopback_host(headers) && !admin.view_token_always();
    let by_header = crate::bearer_matches(headers, token);
    let by_cookie = cookie_token(headers).is_some_and(|c| crate::auth::token_matches(c, token));
    let by_query =
        query_token(request.uri().query()).filter(|q| crate::auth::token_matches(q, token));
    if request.method() == axum::http::Method::POST && !same_origin(headers) {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin request refused: the local view's actions are taken from its own pages",
        )
            .into_response();
    }
    if by_query.is_some() {
        // Keep it in a cookie and drop it from the address bar (and from history).
        let rest: Vec<(String, String)> =
            url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k != "token")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let mut path = request.uri().path().to_owned();
        if !rest.is_empty() {
            path.push('?');
            path.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(rest)
                    .finish(),
            );
        }
        let cookie = format!("{COOKIE}={token}; Path=/view; HttpOnly; SameSite=Strict");
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, path), (header::SET_COOKIE, cookie)],
        )
            .into_response();
    }
    if open || by_header || by_cookie {
        return next.run(request).await;
    }
    pages::token_required()
}

/// `Origin` (when a browser sent one) names the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            authority.is_some() && authority == host
        }
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "same-origin" || v == "none"),
    }
}

/// Server-sent events: `change` with what changed (`traces`, `logs`, `metrics`, `jobs`,
/// `health`), checked every 500 ms, and a comment every 15 s to keep proxies from closing it.
async fn events(State(admin): State<Admin>, request: Request) -> impl IntoResponse {
    let draining = request
        .extensions()
        .get::<Served>()
        .and_then(|s| s.draining.clone());
    let stream = futures_util::stream::unfold(
        (admin, None::<pages::Fingerprint>, draining),
        |(admin, last, mut draining)| async move {
            loop {
                if draining.as_ref().is_some_and(|d| *d.borrow()) {
                    return None;
                }
                let now = pages::fingerprint(&admin).await;
                let changed = match &last {
                    None => Vec::new(),
                    Some(before) => before.changed(&now),
                };
                if last.is_none() || !changed.is_empty() {
                    let data = serde_json::json!({ "changed": changed }).to_string();
                    let event = Event::default().event("change").data(data);
                    return Some((Ok::<_, Infallible>(event), (admin, Some(now), draining)));
                }
                let pause = tokio::time::sleep(Duration::from_millis(500));
                match draining.as_mut() {
                    Some(d) => {
                        tokio::select! {
                            () = pause => {}
                            _ = d.changed() => {}
                        }
                    }
                    None => pause.await,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Method;
    use tower::ServiceExt as _;

    const TOKEN: &str = "t0ken-for-tests";

    /// `local`: the address the request came in on, as lookout-admin's `serve` records it (no
    /// socket is opened: addresses beyond loopback are only named here).
    async fn status(
        method: Method,
        uri: &str,
        local: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap) {
        let admin = crate::Admin::builder()
            .view_token(TOKEN)
            .build()
            .expect("admin");
        let mut request = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut request = request.body(Body::empty()).expect("request");
        if let Some(local) = local {
            request.extensions_mut().insert(Served {
                local: local.parse().expect("an address"),
                draining: None,
            });
        }
        let response = admin.router().oneshot(request).await.expect("infallible");
        (response.status(), response.headers().clone())
    }

    async fn get(uri: &str, local: Option<&str>, headers: &[(&str, &str)]) -> StatusCode {
        status(Method::GET, uri, local, headers).await.0
    }

    #[tokio::test]
    async fn beyond_loopback_the_token_is_required() {
        let host = [("host", "203.0.113.7:9464")];
        let beyond = Some("0.0.0.0:9464");
        assert_eq!(
            get("/view/traces", beyond, &host).await,
            StatusCode::UNAUTHORIZED
        );
        let bearer = format!("Bearer {TOKEN}");
        let with = [
            ("host", "203.0.113.7:9464"),
            ("authorization", bearer.as_str()),
        ];
        assert_eq!(get("/view/traces", beyond, &with).await, StatusCode::OK);
        let wrong = [
            ("host", "203.0.113.7:9464"),
            ("authorization", "Bearer nope"),
        ];
        assert_eq!(
            get("/view/traces", beyond, &wrong).await,
            StatusCode::UNAUTHORIZED
        );
        // ?token= once: a cookie, and the token out of the address.
        let (code, headers) = status(
            Method::GET,
            &format!("/view/logs?token={TOKEN}"),
            beyond,
            &host,
        )
        .await;
        assert_eq!(code, StatusCode::SEE_OTHER);
        assert_eq!(headers[header::LOCATION], "/view/logs");
        let (_, headers) = status(
            Method::GET,
            &format!("/view/logs?q=payment+failed&token={TOKEN}&level=WARN"),
            beyond,
            &host,
        )
        .await;
        assert_eq!(
            headers[header::LOCATION],
            "/view/logs?q=payment+failed&level=WARN",
            "the other parameters stay"
        );
        let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().expect("name=value");
        let with_cookie = [("host", "203.0.113.7:9464"), ("cookie", cookie)];
        assert_eq!(
            get("/view/logs", beyond, &with_cookie).await,
            StatusCode::OK
        );
        // Not served by lookout-admin: the address is unknown, so the token is asked for.
        assert_eq!(
            get("/view/traces", None, &[("host", "localhost:9464")]).await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn on_loopback_it_is_open_to_loopback_names_only() {
        let local = Some("127.0.0.1:9464");
        for host in [
            "localhost:9464",
            "127.0.0.1:9464",
            "[::1]:9464",
            "LOCALHOST",
        ] {
            assert_eq!(
                get("/view/traces", local, &[("host", host)]).await,
                StatusCode::OK,
                "{host}"
            );
        }
        // DNS rebinding: another site's name pointing at 127.0.0.1.
        assert_eq!(
            get("/view/traces", local, &[("host", "evil.example:9464")]).await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn actions_are_refused_from_other_origins() {
        let local = Some("127.0.0.1:9464");
        let run = "/view/jobs/none/run";
        let cross = [
            ("host", "localhost:9464"),
            ("origin", "http://evil.example"),
        ];
        assert_eq!(
            status(Method::POST, run, local, &cross).await.0,
            StatusCode::FORBIDDEN
        );
        let site = [("host", "localhost:9464"), ("sec-fetch-site", "cross-site")];
        assert_eq!(
            status(Method::POST, run, local, &site).await.0,
            StatusCode::FORBIDDEN
        );
        // Same origin: it reaches the handler (no such job here).
        let same = [
            ("host", "localhost:9464"),
            ("origin", "http://localhost:9464"),
        ];
        assert_eq!(
            status(Method::POST, run, local, &same).await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn hostile_parameters_get_an_answer_not_a_panic() {
        let local = Some("127.0.0.1:9464");
        let host = [("host", "localhost")];
        for uri in [
            "/view/traces?min_ms=1e300",
            "/view/traces?min_ms=inf&name=%3Cscript%3E",
            "/view/traces?min_ms=-5&errors=1&text=%00%FF",
            "/view/traces/not-hex",
            "/view/traces/00000000000000000000000000000000",
            "/view/logs?level=%3Cb%3E&trace=zz&q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
            "/view/metrics/series?key=%3Cscript%3E",
        ] {
            let code = get(uri, local, &host).await;
            assert!(code == StatusCode::OK, "{uri}: {code}");
        }
        let (code, _) = status(Method::GET, "/view/metrics/series", local, &host).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "the key is required");
        // What a user typed comes back escaped.
        let admin = crate::Admin::builder().build().expect("admin");
        let mut request = Request::get("/view/traces?name=%3Cscript%3Ealert(1)%3C/script%3E")
            .header("host", "localhost")
            .body(Body::empty())
            .expect("request");
        request.extensions_mut().insert(Served {
            local: "127.0.0.1:9464".parse().expect("an address"),
            draining: None,
        });
        let response = admin.router().oneshot(request).await.expect("infallible");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("&lt;script&gt;alert(1)") && !body.contains("<script>alert"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn pages_forbid_framing_and_inline_scripts() {
        let (code, headers) = status(
            Method::GET,
            "/view/metrics",
            Some("127.0.0.1:1"),
            &[("host", "localhost")],
        )
        .await;
        assert_eq!(code, StatusCode::OK);
        let csp = headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
}
