//! One trace across real hops, checked in what a real collector (rotel) received:
//! client -> axum A -> (reqwest + HttpClientLayer) -> axum B, and a tonic client -> tonic server.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use lookout::{ConsoleFormat, Protocol};
use lookout_health::grpc::pb::HealthCheckRequest;
use lookout_health::grpc::pb::health_client::HealthClient;
use lookout_testing::{Collector, Span};
use lookout_tower::{GrpcClientLayer, GrpcServerLayer, HttpClientLayer, HttpServerLayer};
use tower::{ServiceBuilder, ServiceExt as _};
use tracing::Instrument as _;

type Traced = lookout_tower::http::HttpClient<reqwest::Client>;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn outer(State((client, b)): State<(Traced, SocketAddr)>) -> String {
    let url = format!("http://{b}/inner/7").parse().expect("url");
    let req = reqwest::Request::new(reqwest::Method::GET, url);
    let resp = client.oneshot(req).await.expect("call B");
    resp.text().await.expect("body")
}

fn one<'a>(spans: &'a [Span], name: &str, kind: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == name && s.kind == kind)
        .collect();
    assert_eq!(found.len(), 1, "{name} {kind}: {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_http_and_grpc_hops() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let collector = Collector::start().expect("collector (run ./scripts/test to install rotel)");
    let telemetry = lookout::Telemetry::builder()
        .service_name("hops")
        .console(ConsoleFormat::Off)
        .otlp(|o| {
            o.endpoint(collector.grpc_endpoint())
                .protocol(Protocol::Grpc)
        })
        .init()
        .expect("init");

    let b = serve(
        Router::new()
            .route("/inner/{id}", get(|| async { "from B" }))
            .layer(HttpServerLayer::new()),
    )
    .await;
    let client: Traced = ServiceBuilder::new()
        .layer(HttpClientLayer::new())
        .service(reqwest::Client::new());
    let a = serve(
        Router::new()
            .route("/outer", get(outer))
            .with_state((client, b))
            .layer(HttpServerLayer::new()),
    )
    .await;
    let body = reqwest::Client::new()
        .get(format!("http://{a}/outer"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .expect("call A")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "from B");

    // gRPC: a real tonic service (gRPC health) behind the server layer.
    let health = lookout_health::Health::builder().build().expect("registry");
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
    let grpc_addr = incoming.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(health.grpc_service())
            .serve_with_incoming(incoming),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = HealthClient::new(
        ServiceBuilder::new()
            .layer(GrpcClientLayer::new())
            .service(channel),
    );
    async {
        grpc.check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("Check");
        let missing = grpc
            .check(HealthCheckRequest {
                service: "nope".into(),
            })
            .await;
        assert_eq!(
            missing.expect_err("NOT_FOUND").code(),
            tonic::Code::NotFound
        );
    }
    .instrument(tracing::info_span!("grpc caller"))
    .await;

    telemetry.shutdown().await.expect("flushed");
    let received = collector
        .wait_for(Duration::from_secs(20), |r| {
            r.spans.len() >= 8 && !r.points("rpc.server.duration").is_empty()
        })
        .expect("spans received");
    let spans = &received.spans;

    let a_server = one(spans, "GET /outer", "SPAN_KIND_SERVER");
    let a_client = one(spans, "GET", "SPAN_KIND_CLIENT");
    let b_server = one(spans, "GET /inner/{id}", "SPAN_KIND_SERVER");
    for s in [a_server, a_client, b_server] {
        assert_eq!(s.trace_id, "0af7651916cd43dd8448eb211c80319c", "{s:#?}");
    }
    assert_eq!(a_server.parent_id.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(
        a_client.parent_id.as_deref(),
        Some(a_server.span_id.as_str())
    );
    assert_eq!(
        b_server.parent_id.as_deref(),
        Some(a_client.span_id.as_str())
    );
    assert_eq!(
        b_server
            .attributes
            .get("http.route")
            .and_then(|v| v.as_str()),
        Some("/inner/{id}")
    );
    assert_eq!(
        a_client.attributes.get("url.full").and_then(|v| v.as_str()),
        Some(format!("http://{b}/inner/7").as_str())
    );

    let caller = one(spans, "grpc caller", "SPAN_KIND_INTERNAL");
    let calls: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "grpc.health.v1.Health/Check")
        .collect();
    assert_eq!(calls.len(), 4, "two calls, each a client and a server span");
    for client in calls.iter().filter(|s| s.kind == "SPAN_KIND_CLIENT") {
        assert_eq!(client.parent_id.as_deref(), Some(caller.span_id.as_str()));
        let server = calls
            .iter()
            .find(|s| {
                s.kind == "SPAN_KIND_SERVER"
                    && s.parent_id.as_deref() == Some(client.span_id.as_str())
            })
            .expect("the server span is the client span's child");
        assert_eq!(server.trace_id, caller.trace_id);
        assert_eq!(
            server.attributes.get("rpc.system").and_then(|v| v.as_str()),
            Some("grpc")
        );
        assert_eq!(
            server
                .attributes
                .get("rpc.service")
                .and_then(|v| v.as_str()),
            Some("grpc.health.v1.Health")
        );
        assert_eq!(
            server.attributes.get("rpc.method").and_then(|v| v.as_str()),
            Some("Check")
        );
    }
    let codes = |kind: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| {
                format!(
                    "{:?}/{}",
                    s.attributes.get("rpc.grpc.status_code"),
                    s.status_code
                )
            })
            .collect()
    };
    let server_codes = codes("SPAN_KIND_SERVER");
    assert!(
        server_codes.iter().any(|c| c.contains("Int(0)")),
        "{server_codes:?}"
    );
    // NOT_FOUND is an answer, not a server failure: the server span is no error (semantic
    // conventions); the client span, whose call failed, is.
    assert!(
        server_codes
            .iter()
            .any(|c| c.contains("Int(5)") && !c.ends_with("STATUS_CODE_ERROR")),
        "NOT_FOUND on the server: {server_codes:?}"
    );
    let client_codes = codes("SPAN_KIND_CLIENT");
    assert!(
        client_codes
            .iter()
            .any(|c| c.contains("Int(5)") && c.ends_with("STATUS_CODE_ERROR")),
        "NOT_FOUND on the client: {client_codes:?}"
    );

    // Metrics as exported: the route template and the gRPC status, in the conventions' units.
    let http = received.points("http.server.request.duration");
    let inner = http
        .iter()
        .find(|p| p.attributes.get("http.route").and_then(|v| v.as_str()) == Some("/inner/{id}"))
        .expect("B's duration by route");
    assert_eq!((inner.unit.as_str(), inner.count), ("s", Some(1)));
    let client = received.points("http.client.request.duration");
    assert_eq!(client.iter().map(|p| p.count.unwrap_or(0)).sum::<u64>(), 1);
    let rpc = received.points("rpc.server.duration");
    assert!(rpc.iter().all(|p| p.unit == "ms"));
    assert_eq!(rpc.iter().map(|p| p.count.unwrap_or(0)).sum::<u64>(), 2);
}
