//! Run with: `cargo run -p lookout-e2e --bin w3c-service -- 127.0.0.1:5000`
//!
//! The test service the W3C Trace Context test harness (github.com/w3c/trace-context, `test/`)
//! drives: `POST /test` with a JSON array of `{url, arguments}`; for each, it POSTs `arguments` to
//! `url` with lookout's traced HTTP client, from inside the server span lookout-tower made from the
//! harness's headers. lookout's tests run the same cases (`tests/tests/w3c_trace_context.rs`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use lookout_tower::{HttpClientLayer, HttpServerLayer};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt as _};

type Traced = lookout_tower::http::HttpClient<reqwest::Client>;

async fn test(State(client): State<Traced>, Json(calls): Json<Vec<Value>>) -> &'static str {
    for call in calls {
        let (Some(url), arguments) = (call["url"].as_str(), call["arguments"].clone()) else {
            continue;
        };
        let Ok(url) = url.parse() else { continue };
        let mut request = reqwest::Request::new(reqwest::Method::POST, url);
        request.headers_mut().insert(
            "content-type",
            "application/json".parse().expect("a header"),
        );
        *request.body_mut() = Some(arguments.to_string().into());
        let _ = client.clone().oneshot(request).await;
    }
    "ok"
}

#[tokio::main]
async fn main() {
    // reqwest is built without a default TLS provider in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5000".to_owned());
    let telemetry = lookout::Telemetry::builder()
        .console(lookout::ConsoleFormat::Off)
        .exporter(lookout::Signal::Traces, lookout::ExporterKind::None)
        .exporter(lookout::Signal::Metrics, lookout::ExporterKind::None)
        .exporter(lookout::Signal::Logs, lookout::ExporterKind::None)
        .init()
        .expect("init");
    let client: Traced = ServiceBuilder::new()
        .layer(HttpClientLayer::new())
        .service(reqwest::Client::new());
    let app = Router::new()
        .route("/test", post(test))
        .with_state(client)
        .layer(HttpServerLayer::new());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("LISTENING {}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
    drop(telemetry);
}
