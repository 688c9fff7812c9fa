//! The HTTP server layer on a real axum server on loopback, called with a real HTTP client;
//! spans and metrics captured in memory.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use lookout_testing::Capture;
use lookout_tower::HttpServerLayer;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use tower::ServiceExt as _;

fn propagators() {
    opentelemetry::global::set_text_map_propagator(lookout::propagator(&[
        lookout::Propagator::TraceContext,
        lookout::Propagator::Baggage,
    ]));
}

fn app(capture: &Capture) -> Router {
    Router::new()
        .route("/orders/{id}", get(load_order))
        .route(
            "/boom",
            get(|| async { if true { panic!("database on fire") } else { "" } }),
        )
        .route(
            "/fail",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route("/health/ready", get(|| async { "ok" }))
        .layer(
            HttpServerLayer::with_meter(capture.meter("lookout-tower"))
                .tracer(capture.tracer("lookout-tower"))
                .body_sizes(true)
                .capture_request_headers(["x-request-id", "authorization"]),
        )
}

#[tracing::instrument]
async fn load_order() -> &'static str {
    tracing::info!("loading");
    "order"
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn server_spans(capture: &Capture) -> Vec<SpanData> {
    capture
        .spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect()
}

/// The server's span ends just after the client has the response: wait for all `n`.
async fn wait_for_server_spans(capture: &Capture, n: usize) -> Vec<SpanData> {
    for _ in 0..200 {
        let spans = server_spans(capture);
        if spans.len() >= n {
            return spans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server_spans(capture)
}

// current_thread: the server's tasks run on the test's thread, where the capture is installed.
#[tokio::test(flavor = "current_thread")]
async fn a_request_with_traceparent_continues_that_trace() {
    propagators();
    let capture = Capture::start();
    let addr = serve(app(&capture)).await;
    let resp = client()
        .get(format!(
            "http://{addr}/orders/42?x=1&token=t0p&Access_Token=a"
        ))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-request-id", "req-7")
        .header("authorization", "Bearer secret")
        .header("user-agent", "probe/1.0")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let spans = wait_for_server_spans(&capture, 1).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let s = &spans[0];
    assert_eq!(s.name, "GET /orders/{id}");
    assert_eq!(
        s.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(s.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(s.parent_span_is_remote);
    assert_eq!(attr(s, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(s, "http.route").as_deref(), Some("/orders/{id}"));
    assert_eq!(attr(s, "url.path").as_deref(), Some("/orders/42"));
    assert_eq!(attr(s, "url.scheme").as_deref(), Some("http"));
    assert_eq!(attr(s, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(s, "server.port"),
        Some(addr.port().to_string()),
        "from the Host header"
    );
    assert_eq!(
        attr(s, "url.query").as_deref(),
        Some("x=1&token=REDACTED&Access_Token=REDACTED"),
        "recorded, with credentials redacted"
    );
    assert_eq!(attr(s, "network.protocol.version").as_deref(), Some("1.1"));
    assert_eq!(attr(s, "user_agent.original").as_deref(), Some("probe/1.0"));
    assert_eq!(attr(s, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(
        attr(s, "http.request.header.x-request-id").as_deref(),
        Some("[\"req-7\"]")
    );
    assert_eq!(
        attr(s, "http.request.header.authorization"),
        None,
        "never captured"
    );
    assert_eq!(s.status, Status::Unset);
    // What the handler does is inside the request's span: its `#[instrument]` span and its logs.
    let handler = capture.span("load_order").expect("handler span");
    assert_eq!(handler.parent_span_id, s.span_context.span_id());
    assert_eq!(handler.span_context.trace_id(), s.span_context.trace_id());
    let log = capture
        .logs()
        .into_iter()
        .find(|l| matches!(l.record.body(), Some(opentelemetry::logs::AnyValue::String(b)) if b.as_str() == "loading"))
        .expect("handler log");
    assert_eq!(
        log.record.trace_context().map(|t| t.span_id),
        Some(handler.span_context.span_id())
    );
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_traceparents_start_new_traces() {
    propagators();
    let capture = Capture::start();
    let addr = serve(app(&capture)).await;
    let c = client();
    // From the W3C trace-context test suite's invalid cases.
    let invalid = [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-42-1-01",
        "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 extra",
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    ];
    for header in invalid {
        let resp = c
            .get(format!("http://{addr}/orders/1"))
            .header("traceparent", header)
            .header("tracestate", "vendor=value")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "{header}");
    }
    // Valid, including a future version with extra fields.
    for header in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
    ] {
        c.get(format!("http://{addr}/orders/1"))
            .header("traceparent", header)
            .send()
            .await
            .expect("request");
    }
    let spans = wait_for_server_spans(&capture, invalid.len() + 2).await;
    assert_eq!(spans.len(), invalid.len() + 2);
    for (s, header) in spans.iter().zip(invalid) {
        assert_ne!(
            s.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "{header} must start a new trace"
        );
        assert!(
            !s.parent_span_is_remote && s.parent_span_id == opentelemetry::trace::SpanId::INVALID,
            "{header}"
        );
        assert!(
            s.span_context.trace_state().header().is_empty(),
            "tracestate dropped with {header}"
        );
    }
    for s in &spans[invalid.len()..] {
        assert_eq!(
            s.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_handler_gives_500_and_the_server_keeps_serving() {
    propagators();
    let capture = Capture::start();
    let addr = serve(app(&capture)).await;
    let c = client();
    let boom = c
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .expect("request");
    assert_eq!(boom.status(), 500);
    let fail = c
        .get(format!("http://{addr}/fail"))
        .send()
        .await
        .expect("request");
    assert_eq!(fail.status(), 503);
    let after = c
        .get(format!("http://{addr}/orders/9"))
        .send()
        .await
        .expect("request");
    assert_eq!(after.status(), 200, "still serving");
    let spans = wait_for_server_spans(&capture, 3).await;
    let boom = spans
        .iter()
        .find(|s| s.name == "GET /boom")
        .expect("boom span");
    assert!(
        matches!(boom.status, Status::Error { .. }),
        "{:?}",
        boom.status
    );
    assert_eq!(attr(boom, "error.type").as_deref(), Some("panic"));
    assert_eq!(
        attr(boom, "http.response.status_code").as_deref(),
        Some("500")
    );
    let logged = capture.logs().iter().any(|l| {
        matches!(l.record.body(), Some(opentelemetry::logs::AnyValue::String(s)) if s.as_str().contains("database on fire"))
            && l.record.trace_context().is_some_and(|t| t.span_id == boom.span_context.span_id())
    });
    assert!(logged, "the panic is logged inside the request's span");
    let fail = spans
        .iter()
        .find(|s| s.name == "GET /fail")
        .expect("fail span");
    assert_eq!(attr(fail, "error.type").as_deref(), Some("503"));
    assert!(matches!(fail.status, Status::Error { .. }));
    // The duration metric says the same, per route.
    let points = capture.points("http.server.request.duration");
    let route = |r: &str| {
        points
            .iter()
            .find(|p| p.attr("http.route") == Some(r))
            .unwrap_or_else(|| panic!("no series for {r}: {points:#?}"))
    };
    assert_eq!(route("/boom").attr("error.type"), Some("panic"));
    assert_eq!(
        route("/boom").attr("http.response.status_code"),
        Some("500")
    );
    assert_eq!(route("/fail").attr("error.type"), Some("503"));
    assert_eq!(route("/orders/{id}").attr("error.type"), None);
    assert_eq!(route("/orders/{id}").count, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn health_probes_are_skipped_and_unmatched_routes_have_no_route() {
    propagators();
    let capture = Capture::start();
    let router = app(&capture);
    for path in ["/health/ready", "/nowhere/1", "/nowhere/2"] {
        let req = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("request");
        router.clone().oneshot(req).await.expect("response");
    }
    let spans = server_spans(&capture);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        ["GET", "GET"],
        "the probe is skipped; 404s are named by method only"
    );
    assert!(spans.iter().all(|s| attr(s, "http.route").is_none()));
    let points = capture.points("http.server.request.duration");
    assert_eq!(points.len(), 1, "{points:#?}");
    assert_eq!(points[0].count, 2);
    assert_eq!(points[0].attr("http.response.status_code"), Some("404"));
    assert_eq!(points[0].attr("http.route"), None);
}

#[tokio::test(flavor = "current_thread")]
async fn ten_thousand_raw_paths_make_one_series_per_route() {
    let capture = Capture::start();
    let router = app(&capture);
    for i in 0..10_000 {
        let req = axum::http::Request::get(format!("/orders/{i}"))
            .body(axum::body::Body::empty())
            .expect("request");
        router.clone().oneshot(req).await.expect("response");
    }
    let points = capture.points("http.server.request.duration");
    assert_eq!(points.len(), 1, "one series, not 10,000");
    let p = &points[0];
    assert_eq!(p.count, 10_000);
    assert_eq!(p.attr("http.route"), Some("/orders/{id}"));
    assert_eq!(p.attr("http.request.method"), Some("GET"));
    assert_eq!(p.attr("http.response.status_code"), Some("200"));
    assert!(p.attributes.keys().all(|k| k != "url.path"), "{p:?}");
    let active = capture.points("http.server.active_requests");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].value, 0.0, "every request ended");
    let size = capture.points("http.server.response.body.size");
    assert_eq!(size[0].sum, 5.0 * 10_000.0, "\"order\" is 5 bytes");
}

#[tokio::test(flavor = "current_thread")]
async fn unknown_methods_are_recorded_as_other() {
    let capture = Capture::start();
    let router = Router::new()
        .route("/cache", axum::routing::any(|| async { "purged" }))
        .layer(
            HttpServerLayer::with_meter(capture.meter("lookout-tower"))
                .tracer(capture.tracer("lookout-tower")),
        );
    let req = axum::http::Request::builder()
        .method("PURGE")
        .uri("/cache")
        .body(axum::body::Body::empty())
        .expect("request");
    router.oneshot(req).await.expect("response");
    let s = &server_spans(&capture)[0];
    assert_eq!(
        s.name, "HTTP /cache",
        "semantic conventions: HTTP for an unknown method"
    );
    assert_eq!(attr(s, "http.request.method").as_deref(), Some("_OTHER"));
    assert_eq!(
        attr(s, "http.request.method_original").as_deref(),
        Some("PURGE")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_ipv6_host_is_parsed_as_an_authority() {
    let capture = Capture::start();
    let router = Router::new().route("/", get(|| async { "ok" })).layer(
        HttpServerLayer::with_meter(capture.meter("lookout-tower"))
            .tracer(capture.tracer("lookout-tower")),
    );
    for (host, address, port) in [
        ("[::1]", "::1", None),
        ("[::1]:8443", "::1", Some("8443")),
        ("example.com", "example.com", None),
    ] {
        let req = axum::http::Request::builder()
            .uri("/")
            .header("host", host)
            .body(axum::body::Body::empty())
            .expect("request");
        router.clone().oneshot(req).await.expect("response");
        let spans = server_spans(&capture);
        let s = spans.last().expect("a span");
        assert_eq!(
            attr(s, "server.address").as_deref(),
            Some(address),
            "{host}"
        );
        assert_eq!(attr(s, "server.port").as_deref(), port, "{host}");
    }
}

/// A 60 kB path and user agent are recorded cut to the request attribute limit (2048 characters
/// by default, here 100), so one hostile client cannot make span batches too large to export.
#[tokio::test(flavor = "current_thread")]
async fn request_attributes_are_cut_to_the_limit() {
    propagators();
    let capture = Capture::start();
    let app = Router::new().fallback(|| async { "anything" }).layer(
        HttpServerLayer::with_meter(capture.meter("lookout-tower"))
            .tracer(capture.tracer("lookout-tower"))
            .capture_request_headers(["x-note"])
            .request_attribute_limit(Some(100)),
    );
    let addr = serve(app).await;
    let resp = client()
        .get(format!("http://{addr}/{}", "a".repeat(60_000)))
        .header("user-agent", "u".repeat(60_000))
        .header("x-note", "n".repeat(5_000))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let spans = wait_for_server_spans(&capture, 1).await;
    let s = &spans[0];
    let path = attr(s, "url.path").expect("url.path");
    assert_eq!(path.chars().count(), 100);
    assert!(path.starts_with("/aaa"));
    assert_eq!(
        attr(s, "user_agent.original").map(|u| u.chars().count()),
        Some(100)
    );
    assert!(
        attr(s, "http.request.header.x-note").is_some_and(|h| h.len() < 200),
        "captured headers are cut too"
    );
}
