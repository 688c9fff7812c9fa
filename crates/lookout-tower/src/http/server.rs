//! The HTTP server layer: a SERVER span continuing the caller's trace, and the semconv metrics.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderName, Request, Response, StatusCode, request::Parts};
use http_body::Body;
use opentelemetry::KeyValue;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::Meter;
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_semantic_conventions::attribute as semconv;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{HttpMethod, capture_list, header_attributes, protocol_version};
use crate::metrics::{Current, HttpServerInstruments, RequestKind, Route, Routes};

type Hook = Arc<dyn Fn(&Parts, &mut Vec<KeyValue>) + Send + Sync>;
type NameHook = Arc<dyn Fn(&Parts, Option<&str>) -> String + Send + Sync>;
type RouteHook = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// Paths skipped by default: health probes, which would drown the real traffic.
pub const DEFAULT_SKIP: [&str; 4] = ["/health", "/healthz", "/livez", "/readyz"];

#[derive(Clone)]
struct Config {
    metrics: Current<ServerMetrics>,
    skip: Vec<String>,
    request_headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
    on_request: Option<Hook>,
    span_name: Option<NameHook>,
    route: Option<RouteHook>,
    scheme: &'static str,
    body_sizes: bool,
    /// Characters kept of attribute values taken from the request (`None`: no limit of ours).
    attribute_limit: Option<usize>,
    tracer: Tracer,
}

/// The instruments and the route cache of one meter provider (its series are bound to them).
struct ServerMetrics {
    instruments: HttpServerInstruments,
    routes: Routes,
}

impl ServerMetrics {
    fn new(meter: &Meter) -> Self {
        ServerMetrics {
            instruments: HttpServerInstruments::new(meter),
            routes: Routes::default(),
        }
    }
}

/// The tracer given, or the global one as of the first request (a clone of the layer resolves
/// its own).
enum Tracer {
    Given(Arc<BoxedTracer>),
    Global(std::sync::OnceLock<BoxedTracer>),
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::Global(std::sync::OnceLock::new())
    }
}

impl Clone for Tracer {
    fn clone(&self) -> Self {
        match self {
            Tracer::Given(t) => Tracer::Given(Arc::clone(t)),
            Tracer::Global(_) => Tracer::default(),
        }
    }
}

impl Config {
    /// The tracer given, or the global one as of the first request (so a layer built before
    /// `lookout::init` still traces).
    fn tracer(&self) -> &BoxedTracer {
        match &self.tracer {
            Tracer::Given(t) => t,
            Tracer::Global(t) => t.get_or_init(|| opentelemetry::global::tracer("lookout-tower")),
        }
    }
}

/// A tower layer for HTTP servers (axum, hyper, any `Service<http::Request<B>>`).
///
/// For each request: the incoming trace context is extracted with the global propagators
/// (`OTEL_PROPAGATORS`, strict W3C parsing with lookout); a SERVER span `{method} {route}` with the
/// HTTP semantic-convention attributes is its child and the parent of everything the handler does;
/// `http.server.request.duration` (s), `http.server.active_requests` and the body sizes are
/// recorded with low-cardinality attributes (the route template, never the raw path). A 5xx marks
/// the span as an error; a panic in the handler becomes a 500, is recorded, and the server keeps
/// serving.
///
/// ```
/// use axum::{Router, routing::get};
/// let app: Router = Router::new()
///     .route("/orders/{id}", get(|| async { "ok" }))
///     .layer(lookout_tower::HttpServerLayer::new());
/// ```
///
/// Add it with `Router::layer` so that the matched route is known; requests that match no route
/// are recorded without `http.route`.
#[derive(Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct HttpServerLayer {
    config: Arc<Config>,
}

impl fmt::Debug for HttpServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer")
            .field("skip", &self.config.skip)
            .field("request_headers", &self.config.request_headers)
            .field("response_headers", &self.config.response_headers)
            .finish_non_exhaustive()
    }
}

impl Default for HttpServerLayer {
    fn default() -> Self {
        HttpServerLayer::new()
    }
}

impl HttpServerLayer {
    /// The layer with the defaults: global meter `lookout-tower`, health probe paths skipped, no
    /// headers captured.
    /// Built before `lookout::init`, it records into the pipeline `init` starts (its
    /// instruments are made again when lookout installs a meter provider).
    pub fn new() -> Self {
        Self::build(None)
    }

    /// The layer recording on `meter`.
    pub fn with_meter(meter: Meter) -> Self {
        Self::build(Some(meter))
    }

    fn build(meter: Option<Meter>) -> Self {
        HttpServerLayer {
            config: Arc::new(Config {
                metrics: Current::new(crate::metrics::SCOPE, meter, ServerMetrics::new),
                skip: DEFAULT_SKIP.iter().map(|s| (*s).to_owned()).collect(),
                request_headers: Vec::new(),
                response_headers: Vec::new(),
                on_request: None,
                span_name: None,
                route: None,
                scheme: "http",
                body_sizes: false,
                attribute_limit: super::default_request_attribute_limit(),
                tracer: Tracer::default(),
            }),
        }
    }

    /// A setting applies to this value (a clone made before keeps its own settings), like
    /// tower-http's layers.
    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Paths with no span and no metrics: each matches itself and everything below it
    /// (`/health` skips `/health/ready`). Replaces the default list.
    pub fn skip_paths<I, S>(self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let paths = paths.into_iter().map(Into::into).collect();
        self.edit(|c| c.skip = paths)
    }

    /// Request headers recorded as `http.request.header.<name>` (opt-in). `Authorization`,
    /// `Proxy-Authorization`, `Cookie` and `Set-Cookie` are never recorded.
    pub fn capture_request_headers<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = capture_list(names);
        self.edit(|c| c.request_headers = names)
    }

    /// Response headers recorded as `http.response.header.<name>` (opt-in), with the same
    /// exclusions.
    pub fn capture_response_headers<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = capture_list(names);
        self.edit(|c| c.response_headers = names)
    }

    /// Called with the request head before the span starts: push attributes to add to it.
    pub fn on_request(
        self,
        f: impl Fn(&Parts, &mut Vec<KeyValue>) + Send + Sync + 'static,
    ) -> Self {
        self.edit(|c| c.on_request = Some(Arc::new(f)))
    }

    /// Names the span from the request head and the route template (default `{method} {route}`,
    /// or `{method}` when no route matched).
    pub fn span_name(
        self,
        f: impl Fn(&Parts, Option<&str>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.edit(|c| c.span_name = Some(Arc::new(f)))
    }

    /// Finds the route template for routers other than axum's (with axum, `MatchedPath` is used).
    pub fn route(self, f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        self.edit(|c| c.route = Some(Arc::new(f)))
    }

    /// Also records `http.server.request.body.size` and `http.server.response.body.size` (opt-in
    /// in the conventions) when the sizes are known.
    pub fn body_sizes(self, on: bool) -> Self {
        self.edit(|c| c.body_sizes = on)
    }

    /// The length limit, in characters, of span attributes taken from the request: `url.path`,
    /// `user_agent.original`, `server.address`, `http.request.method_original` and captured
    /// headers. Default [`DEFAULT_REQUEST_ATTRIBUTE_LIMIT`](super::DEFAULT_REQUEST_ATTRIBUTE_LIMIT)
    /// (2048), or none of the layer's own when `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` or
    /// `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT` is set: that limit then applies to these as to
    /// every attribute. `None` keeps values whole.
    pub fn request_attribute_limit(self, limit: Option<usize>) -> Self {
        self.edit(|c| c.attribute_limit = limit)
    }

    /// The tracer for the request spans (default: the global tracer provider's).
    pub fn tracer<T>(self, tracer: T) -> Self
    where
        T: opentelemetry::trace::Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        let tracer = Arc::new(BoxedTracer::new(Box::new(tracer)));
        self.edit(|c| c.tracer = Tracer::Given(tracer))
    }

    /// The `url.scheme` to record when the request URI has none (default `http`; `https` behind
    /// TLS termination in this process).
    pub fn scheme(self, scheme: &'static str) -> Self {
        self.edit(|c| c.scheme = scheme)
    }
}

/// The builder methods run before the layer is cloned into services.
impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServer {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`HttpServerLayer`] wraps around an HTTP service.
#[derive(Clone)]
pub struct HttpServer<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for HttpServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn skipped(skip: &[String], path: &str) -> bool {
    skip.iter().any(|s| {
        path.strip_prefix(s.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The SERVER span's attributes, as the HTTP server span conventions have them, the captured
/// request headers, and what the `on_request` hook adds. Values taken from the request are cut to
/// the layer's attribute limit.
fn span_attributes(
    config: &Config,
    parts: &Parts,
    method: HttpMethod,
    route: &Route,
    scheme: &'static str,
    version: &'static str,
) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(10 + config.request_headers.len());
    attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method.as_str()));
    if method == HttpMethod::OTHER {
        attributes.push(KeyValue::new(
            semconv::HTTP_REQUEST_METHOD_ORIGINAL,
            super::bounded(parts.method.as_str(), config.attribute_limit),
        ));
    }
    if let Some(r) = route.template() {
        attributes.push(KeyValue::new(semconv::HTTP_ROUTE, Arc::clone(r)));
    }
    let limit = config.attribute_limit;
    attributes.push(KeyValue::new(
        semconv::URL_PATH,
        super::bounded(parts.uri.path(), limit),
    ));
    attributes.push(KeyValue::new(semconv::URL_SCHEME, scheme));
    attributes.push(KeyValue::new(semconv::NETWORK_PROTOCOL_VERSION, version));
    // The request target's authority (HTTP/2 `:authority`, absolute-form), else `Host`.
    let authority = parts
        .uri
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| parts.headers.get(http::header::HOST)?.to_str().ok());
    if let Some((host, port)) = authority.and_then(super::host_and_port) {
        attributes.push(KeyValue::new(
            semconv::SERVER_ADDRESS,
            super::bounded(&host, limit),
        ));
        if let Some(port) = port {
            attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
        }
    }
    if let Some(query) = parts.uri.query() {
        attributes.push(KeyValue::new(
            semconv::URL_QUERY,
            super::bounded(&super::redacted_query(query), limit),
        ));
    }
    if let Some(ua) = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new(
            semconv::USER_AGENT_ORIGINAL,
            super::bounded(ua, limit),
        ));
    }
    header_attributes(
        &mut attributes,
        semconv::HTTP_REQUEST_HEADER,
        &config.request_headers,
        &parts.headers,
        limit,
    );
    if let Some(hook) = &config.on_request {
        hook(parts, &mut attributes);
    }
    attributes
}

/// The request body's size: exact from the body, else `Content-Length`.
fn request_size<B: Body>(parts: &Parts, body: &B) -> Option<u64> {
    body.size_hint().exact().or_else(|| {
        parts
            .headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    })
}

fn route_of(config: &Config, routes: &Routes, parts: &Parts) -> Arc<Route> {
    #[cfg(feature = "axum")]
    if let Some(m) = parts.extensions.get::<axum::extract::MatchedPath>() {
        return routes.get(Some(m.as_str()));
    }
    match &config.route {
        Some(f) => routes.get(f(parts).as_deref()),
        None => routes.get(None),
    }
}

/// What a tracked request carries from `call` to its end: the span's context and the metric
/// attributes. Dropping it (the request finished or was dropped) decrements
/// `http.server.active_requests`.
struct Tracked {
    config: Arc<Config>,
    /// The instruments of the request's start (its `active` decrement goes to the same ones).
    metrics: Arc<ServerMetrics>,
    cx: opentelemetry::Context,
    start: Instant,
    method: HttpMethod,
    scheme: &'static str,
    version: &'static str,
    route: Arc<Route>,
    request_size: Option<u64>,
}

impl Tracked {
    /// Ends the span and records the metrics for a finished request (`None`: the handler
    /// panicked, answered with a 500).
    fn finish<ResB, E>(
        self,
        outcome: Option<Result<Response<ResB>, E>>,
    ) -> Result<Response<ResB>, E>
    where
        ResB: Body + Default,
    {
        let config = &*self.config;
        let span = self.cx.span();
        let (result, status, error_type) = match outcome {
            Some(Ok(resp)) => {
                let code = resp.status().as_u16();
                if !config.response_headers.is_empty() && span.is_recording() {
                    let mut attrs = Vec::new();
                    header_attributes(
                        &mut attrs,
                        semconv::HTTP_RESPONSE_HEADER,
                        &config.response_headers,
                        resp.headers(),
                        config.attribute_limit,
                    );
                    span.set_attributes(attrs);
                }
                (Ok(resp), Some(code), None)
            }
            Some(Err(e)) => (Err(e), None, Some(std::any::type_name::<E>())),
            None => {
                let mut resp = Response::new(ResB::default());
                *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                (Ok(resp), Some(500), Some("panic"))
            }
        };
        let kind = RequestKind {
            method: self.method,
            scheme: self.scheme,
            version: self.version,
            status,
            error_type,
        };
        if span.is_recording() {
            if let Some(code) = status {
                span.set_attribute(KeyValue::new(
                    semconv::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(code),
                ));
            }
            if let Some(t) = kind.error_type() {
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, t.clone()));
                span.set_status(Status::error(t));
            }
        }
        span.end();
        let instruments = &self.metrics.instruments;
        instruments.duration.record(
            kind,
            &self.route,
            self.start.elapsed().as_secs_f64(),
            &self.cx,
        );
        if config.body_sizes {
            let attributes = kind.attributes(self.route.template());
            if let Some(n) = self.request_size {
                instruments.request_size.record(n, &attributes);
            }
            if let Ok(resp) = &result
                && let Some(n) = resp.body().size_hint().exact()
            {
                instruments.response_size.record(n, &attributes);
            }
        }
        result
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.metrics
            .instruments
            .active
            .add(self.method, self.scheme, -1);
    }
}

pin_project! {
    /// The response future of [`HttpServer`]: the inner service's future, polled inside the
    /// request's context, with its panics caught.
    ///
    /// Written by hand rather than as a boxed `async` block: it is the inner future plus two words
    /// (the request's state is one small allocation). The boxed `async` block it replaced was
    /// 1,160 bytes around axum's 320-byte route future, and moving it cost 3 µs per request.
    pub struct HttpServerFuture<F> {
        #[pin]
        inner: F,
        state: State,
    }
}

enum State {
    /// A skipped path: the inner future as it is.
    Skipped,
    Tracked(Box<Tracked>),
    Done,
}

impl<F> fmt::Debug for HttpServerFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for HttpServerFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: Body + Default,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let tracked = match this.state {
            State::Tracked(t) => t,
            State::Skipped | State::Done => return this.inner.poll(task),
        };
        let outcome = {
            // The handler's spans and logs find the request's span as their parent; a panic is
            // logged inside the same context, so the log record carries the request's ids.
            let _attached = tracked.cx.clone().attach();
            match std::panic::catch_unwind(AssertUnwindSafe(|| this.inner.poll(task))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(r)) => Some(r),
                Err(panic) => {
                    let message = lookout::panic_message(&*panic);
                    tracing::error!(
                        target: "lookout_tower",
                        panic = %message,
                        "the handler panicked; answering 500: {message}"
                    );
                    None
                }
            }
        };
        match std::mem::replace(this.state, State::Done) {
            State::Tracked(t) => Poll::Ready(t.finish(outcome)),
            // Unreachable: the state was `Tracked` above.
            State::Skipped | State::Done => Poll::Pending,
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpServer<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ReqB: Body,
    ResB: Body + Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = HttpServerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        if skipped(&self.config.skip, req.uri().path()) {
            return HttpServerFuture {
                inner: self.inner.call(req),
                state: State::Skipped,
            };
        }
        let config = self.config.clone();
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let method = HttpMethod::of(&parts.method);
        let metrics = config.metrics.get();
        let route = route_of(&config, &metrics.routes, &parts);
        let scheme: &'static str = match parts.uri.scheme_str() {
            Some("https") => "https",
            Some("http") => "http",
            _ => config.scheme,
        };
        let version = protocol_version(parts.version);
        let name = match &config.span_name {
            Some(f) => Cow::Owned(f(&parts, route.template().map(|t| &**t))),
            None => route.span_name(method),
        };
        // The span is built with the OpenTelemetry API directly: one allocation for its
        // attributes instead of a tracing span's per-field visits. Handler spans
        // (`#[instrument]`) and logs find it as the current context while the handler runs.
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(&parts.headers))
        });
        let attributes = span_attributes(&config, &parts, method, &route, scheme, version);
        let span = config.tracer().build_with_context(
            SpanBuilder::from_name(name)
                .with_kind(SpanKind::Server)
                .with_attributes(attributes),
            &parent,
        );
        let cx = parent.with_span(span);
        let request_size = if config.body_sizes {
            request_size(&parts, &body)
        } else {
            None
        };
        let tracked = Box::new(Tracked {
            config,
            metrics,
            cx,
            start,
            method,
            scheme,
            version,
            route,
            request_size,
        });
        tracked
            .metrics
            .instruments
            .active
            .add(tracked.method, tracked.scheme, 1);
        let inner = {
            let _attached = tracked.cx.clone().attach();
            self.inner.call(Request::from_parts(parts, body))
        };
        HttpServerFuture {
            inner,
            state: State::Tracked(tracked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_matches_the_path_and_below_only() {
        let skip: Vec<String> = DEFAULT_SKIP.iter().map(|s| (*s).to_owned()).collect();
        assert!(skipped(&skip, "/health"));
        assert!(skipped(&skip, "/health/ready"));
        assert!(!skipped(&skip, "/healthcare"));
        assert!(!skipped(&skip, "/orders"));
    }
}
