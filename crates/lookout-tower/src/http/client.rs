//! The HTTP client layer: a CLIENT span, the context injected into the outgoing headers, and
//! `http.client.request.duration`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry_http::HeaderInjector;
use opentelemetry_semantic_conventions::{attribute as semconv, metric};
use tower_layer::Layer;
use tower_service::Service;

use super::{method_attr, redacted_url};
use crate::metrics::Current;

/// What the client layer needs from a request: implemented for `http::Request<B>` and, with the
/// `reqwest` feature, `reqwest::Request`.
pub trait ClientRequest {
    /// The method.
    fn method(&self) -> &Method;
    /// The full URL.
    fn url(&self) -> String;
    /// The host.
    fn host(&self) -> Option<String>;
    /// The port, explicit or the scheme's default.
    fn port(&self) -> Option<u16>;
    /// The headers, to inject the trace context into.
    fn headers_mut(&mut self) -> &mut HeaderMap;
}

/// What the client layer needs from a response.
pub trait ClientResponse {
    /// The status code.
    fn status(&self) -> StatusCode;
}

impl<B> ClientRequest for http::Request<B> {
    fn method(&self) -> &Method {
        self.method()
    }
    fn url(&self) -> String {
        self.uri().to_string()
    }
    fn host(&self) -> Option<String> {
        self.uri().host().map(str::to_owned)
    }
    fn port(&self) -> Option<u16> {
        let uri = self.uri();
        uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}

impl<B> ClientResponse for http::Response<B> {
    fn status(&self) -> StatusCode {
        self.status()
    }
}

#[cfg(feature = "reqwest")]
impl ClientRequest for reqwest::Request {
    fn method(&self) -> &Method {
        self.method()
    }
    fn url(&self) -> String {
        self.url().to_string()
    }
    fn host(&self) -> Option<String> {
        self.url().host_str().map(str::to_owned)
    }
    fn port(&self) -> Option<u16> {
        self.url().port_or_known_default()
    }
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}

#[cfg(feature = "reqwest")]
impl ClientResponse for reqwest::Response {
    fn status(&self) -> StatusCode {
        self.status()
    }
}

/// A tower layer for HTTP clients: any `Service` of `http::Request<B>` (hyper-util's client,
/// tower stacks) or, with the `reqwest` feature, `reqwest::Client` itself.
///
/// Each request gets a CLIENT span (`{method}`, with `http.request.method`, `server.address`,
/// `server.port`, `url.full` without credentials or signatures, `http.response.status_code`,
/// `error.type`), the current context injected with the global propagators, and
/// `http.client.request.duration` (s).
///
/// With reqwest (feature `reqwest`):
/// `ServiceBuilder::new().layer(HttpClientLayer::new()).service(reqwest::Client::new())`, then
/// `client.oneshot(reqwest::Request::new(Method::GET, url))`. With any tower HTTP client:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// // Stands in for a real client (hyper-util's, a tower stack): echoes the traceparent header.
/// let inner = service_fn(|req: http::Request<()>| async move {
///     let sent = req.headers().contains_key("traceparent");
///     Ok::<_, std::convert::Infallible>(http::Response::new(sent))
/// });
/// let client = ServiceBuilder::new().layer(lookout_tower::HttpClientLayer::new()).service(inner);
/// let response = client.oneshot(http::Request::new(())).await.unwrap();
/// # let _ = response;
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct HttpClientLayer {
    duration: Arc<Current<Histogram<f64>>>,
}

impl fmt::Debug for HttpClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientLayer").finish_non_exhaustive()
    }
}

impl Default for HttpClientLayer {
    fn default() -> Self {
        HttpClientLayer::new()
    }
}

impl HttpClientLayer {
    /// The layer recording on the global meter `lookout-tower` (built before `lookout::init`,
    /// it records into the pipeline `init` starts).
    pub fn new() -> Self {
        Self::build(None)
    }

    /// The layer recording on `meter`.
    pub fn with_meter(meter: Meter) -> Self {
        Self::build(Some(meter))
    }

    fn build(meter: Option<Meter>) -> Self {
        HttpClientLayer {
            duration: Arc::new(Current::new(crate::metrics::SCOPE, meter, |m| {
                crate::metrics::duration(
                    m,
                    metric::HTTP_CLIENT_REQUEST_DURATION,
                    "Duration of HTTP client requests",
                )
            })),
        }
    }
}

impl<S> Layer<S> for HttpClientLayer {
    type Service = HttpClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClient {
            inner,
            duration: Arc::clone(&self.duration),
        }
    }
}

/// The service [`HttpClientLayer`] wraps around a client.
#[derive(Clone)]
pub struct HttpClient<S> {
    inner: S,
    duration: Arc<Current<Histogram<f64>>>,
}

impl<S: fmt::Debug> fmt::Debug for HttpClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, Req> Service<Req> for HttpClient<S>
where
    Req: ClientRequest,
    S: Service<Req>,
    S::Response: ClientResponse,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        use opentelemetry::trace::{
            FutureExt as _, SpanKind, Status, TraceContextExt as _, Tracer as _,
        };
        let start = Instant::now();
        let method = method_attr(req.method());
        let host = req.host();
        let port = req.port();
        // The span is built with the OpenTelemetry API, in the scope `lookout-tower` like the
        // server's, as the child of the caller's context (its tracing span, or an OTel context).
        let parent = super::caller_context();
        let mut span_attributes = endpoint_attributes(method, host.as_deref(), port);
        if method == "_OTHER" {
            span_attributes.push(KeyValue::new(
                semconv::HTTP_REQUEST_METHOD_ORIGINAL,
                req.method().as_str().to_owned(),
            ));
        }
        span_attributes.push(KeyValue::new(semconv::URL_FULL, redacted_url(&req.url())));
        let name = if method == "_OTHER" { "HTTP" } else { method };
        let span = opentelemetry::global::tracer("lookout-tower").build_with_context(
            opentelemetry::trace::SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_attributes(span_attributes),
            &parent,
        );
        let cx = parent.with_span(span);
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(req.headers_mut()))
        });
        let fut = {
            let _attached = cx.clone().attach();
            self.inner.call(req)
        };
        let duration = self.duration.get();
        Box::pin(async move {
            let result = fut.with_context(cx.clone()).await;
            let (status, error_type) = match &result {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    (Some(code), (code >= 400).then(|| code.to_string()))
                }
                Err(_) => (None, Some(std::any::type_name::<S::Error>().to_owned())),
            };
            let span = cx.span();
            if let Some(code) = status {
                span.set_attribute(KeyValue::new(
                    semconv::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(code),
                ));
            }
            if let Some(t) = &error_type {
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, t.clone()));
                span.set_status(Status::error(t.clone()));
            }
            span.end();
            let mut attributes = endpoint_attributes(method, host.as_deref(), port);
            if let Some(code) = status {
                attributes.push(KeyValue::new(
                    semconv::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(code),
                ));
            }
            if let Some(t) = error_type {
                attributes.push(KeyValue::new(semconv::ERROR_TYPE, t));
            }
            duration.record(start.elapsed().as_secs_f64(), &attributes);
            result
        })
    }
}

/// `http.request.method`, `server.address` and `server.port`: what the span and the duration
/// metric both carry.
fn endpoint_attributes(
    method: &'static str,
    host: Option<&str>,
    port: Option<u16>,
) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(6);
    attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method));
    if let Some(h) = host {
        attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, h.to_owned()));
    }
    if let Some(p) = port {
        attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(p)));
    }
    attributes
}
