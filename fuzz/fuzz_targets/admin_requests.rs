//! The admin router (metrics, monitoring JSON, health) with arbitrary request targets (paths and
//! query strings), methods, `Accept` and `Accept-Encoding` headers. Input: line 1 the method,
//! line 2 the target, line 3 Accept, line 4 Accept-Encoding.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use http::Request;
use libfuzzer_sys::fuzz_target;
use lookout::metrics::Metrics;
use lookout::opentelemetry::metrics::MeterProvider as _;
use tower::ServiceExt as _;

fn admin() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static ADMIN: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    ADMIN.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let metrics = Metrics::in_memory(
            lookout::opentelemetry_sdk::Resource::builder_empty().build(),
        );
        let meter = metrics.provider().meter("fuzz");
        meter.u64_counter("requests").build().add(1, &[]);
        let admin = lookout_admin::Admin::builder()
            .metrics(metrics)
            .reset_token("fuzz-token")
            .build()
            .expect("admin");
        let router = runtime.block_on(async { admin.router() });
        (runtime, router)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("GET");
    let target = lines.next().unwrap_or("/");
    let accept = lines.next();
    let encoding = lines.next();
    let mut request = Request::builder().method(method).uri(target);
    if let Some(a) = accept {
        request = request.header("accept", a);
    }
    if let Some(e) = encoding {
        request = request.header("accept-encoding", e);
    }
    let Ok(request) = request.body(Body::empty()) else {
        return;
    };
    let (runtime, router) = admin();
    let response = runtime
        .block_on(router.clone().oneshot(request))
        .expect("the router is infallible");
    assert!(
        response.status().as_u16() < 500 || response.status().as_u16() == 503,
        "{} for {method} {target}",
        response.status()
    );
});
