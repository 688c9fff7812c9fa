//! A gRPC path is chosen by the client: its service and method, recorded as `rpc.service` and
//! `rpc.method` on the span and the duration metric, are cut to the request attribute limit (2048
//! characters) like the HTTP layer's request attributes.

use lookout_testing::Capture;
use lookout_tower::GrpcServerLayer;
use tower::{Layer as _, ServiceExt as _};

#[tokio::test(flavor = "current_thread")]
async fn a_long_grpc_path_is_recorded_cut() {
    let capture = Capture::start();
    let inner = tower::service_fn(|_req: http::Request<String>| async {
        let mut resp = http::Response::new(String::new());
        resp.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("0"));
        Ok::<_, std::convert::Infallible>(resp)
    });
    let service = GrpcServerLayer::with_meter(capture.meter("lookout-tower"))
        .tracer(capture.tracer("lookout-tower"))
        .layer(inner);
    let path = format!("/{}/{}", "s".repeat(5000), "m".repeat(5000));
    let req = http::Request::builder()
        .uri(path)
        .header("content-type", "application/grpc")
        .body(String::new())
        .expect("a request");
    let _ = service.oneshot(req).await.expect("served");
    let span = capture
        .spans()
        .into_iter()
        .find(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .expect("the server span");
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
            .unwrap_or_default()
    };
    assert_eq!(attr("rpc.service").chars().count(), 2048);
    assert_eq!(attr("rpc.method").chars().count(), 2048);
}
