//! gRPC (tonic): server and client layers with `rpc.*` attributes, the status from the response
//! headers or trailers, and the context carried across the hop.
//!
//! Names follow the RPC semantic conventions the issue tracker and most dashboards use:
//! `rpc.system = "grpc"`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, and the
//! `rpc.server.duration` / `rpc.client.duration` histograms in milliseconds, as those conventions
//! define them. (Newer conventions rename them `rpc.*.call.duration`, in seconds.)

mod body;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use opentelemetry::KeyValue;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::trace::{
    FutureExt as _, SpanBuilder, SpanKind, TraceContextExt as _, Tracer as _,
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tower_layer::Layer;
use tower_service::Service;

use crate::metrics::Current;
use body::Finish;
pub use body::GrpcBody;

// The attribute names as these conventions spell them (the crate marks them deprecated in favour
// of `rpc.system.name` and a combined `rpc.method`).
#[allow(deprecated)]
mod names {
    use opentelemetry_semantic_conventions::{attribute, metric};
    pub(crate) const RPC_SYSTEM: &str = attribute::RPC_SYSTEM;
    pub(crate) const RPC_SERVICE: &str = attribute::RPC_SERVICE;
    pub(crate) const RPC_METHOD: &str = attribute::RPC_METHOD;
    pub(crate) const RPC_GRPC_STATUS_CODE: &str = attribute::RPC_GRPC_STATUS_CODE;
    pub(crate) const RPC_SERVER_DURATION: &str = metric::RPC_SERVER_DURATION;
    pub(crate) const RPC_CLIENT_DURATION: &str = metric::RPC_CLIENT_DURATION;
}
use names::*;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Milliseconds, the unit of `rpc.*.duration`.
const MS_BUCKETS: [f64; 14] = [
    5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

fn histogram(meter: &Meter, name: &'static str, description: &'static str) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("ms")
        .with_description(description)
        .with_boundaries(MS_BUCKETS.to_vec())
        .build()
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The `grpc-status` header (trailers-only responses carry it there).
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

/// A tower layer for tonic servers: `Server::builder().layer(GrpcServerLayer::new())`.
///
/// Each call gets a SERVER span `package.Service/Method`, child of the caller's context, with
/// `rpc.system`, `rpc.service`, `rpc.method` and `rpc.grpc.status_code` (read from the trailers,
/// or the headers of a trailers-only error), marked as an error for a non-OK status; and
/// `rpc.server.duration` until the response stream ends.
#[derive(Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct GrpcServerLayer {
    duration: Arc<Current<Histogram<f64>>>,
    tracer: Option<Arc<BoxedTracer>>,
}

/// A tower layer for tonic clients: wrap the `Channel`, e.g.
/// `GreeterClient::new(ServiceBuilder::new().layer(GrpcClientLayer::new()).service(channel))`.
///
/// Each call gets a CLIENT span, the context injected into the request metadata, and
/// `rpc.client.duration`.
#[derive(Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct GrpcClientLayer {
    duration: Arc<Current<Histogram<f64>>>,
    tracer: Option<Arc<BoxedTracer>>,
}

macro_rules! layer_common {
    ($layer:ident, $service:ident, $side:expr, $metric:expr, $description:expr) => {
        impl fmt::Debug for $layer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($layer)).finish_non_exhaustive()
            }
        }
        impl Default for $layer {
            fn default() -> Self {
                Self::new()
            }
        }
        impl $layer {
            /// The layer recording on the global meter `lookout-tower` (built before
            /// `lookout::init`, it records into the pipeline `init` starts).
            pub fn new() -> Self {
                $layer {
                    duration: Arc::new(Current::new(crate::metrics::SCOPE, None, |m| {
                        histogram(m, $metric, $description)
                    })),
                    tracer: None,
                }
            }
            /// The layer recording on `meter`.
            pub fn with_meter(meter: Meter) -> Self {
                $layer {
                    duration: Arc::new(Current::new(crate::metrics::SCOPE, Some(meter), |m| {
                        histogram(m, $metric, $description)
                    })),
                    tracer: None,
                }
            }
            /// The tracer for the call spans (default: the global tracer provider's, scope
            /// `lookout-tower`).
            pub fn tracer<T>(mut self, tracer: T) -> Self
            where
                T: opentelemetry::trace::Tracer + Send + Sync + 'static,
                T::Span: Send + Sync + 'static,
            {
                self.tracer = Some(Arc::new(BoxedTracer::new(Box::new(tracer))));
                self
            }
        }
        impl<S> Layer<S> for $layer {
            type Service = $service<S>;
            fn layer(&self, inner: S) -> Self::Service {
                $service {
                    inner,
                    duration: Arc::clone(&self.duration),
                    tracer: self.tracer.clone(),
                }
            }
        }
        /// The service its layer wraps around a gRPC service or channel.
        #[derive(Clone)]
        pub struct $service<S> {
            inner: S,
            duration: Arc<Current<Histogram<f64>>>,
            tracer: Option<Arc<BoxedTracer>>,
        }
        impl<S: fmt::Debug> fmt::Debug for $service<S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($service))
                    .field("inner", &self.inner)
                    .finish_non_exhaustive()
            }
        }
        impl<S, ReqB, ResB> Service<Request<ReqB>> for $service<S>
        where
            S: Service<Request<ReqB>, Response = Response<ResB>>,
            S::Future: Send + 'static,
            ResB: http_body::Body,
        {
            type Response = Response<GrpcBody<ResB>>;
            type Error = S::Error;
            type Future = BoxFuture<Result<Self::Response, S::Error>>;

            fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, req: Request<ReqB>) -> Self::Future {
                call(
                    &mut self.inner,
                    self.duration.get(),
                    self.tracer.as_deref(),
                    $side,
                    req,
                )
            }
        }
    };
}

layer_common!(
    GrpcServerLayer,
    GrpcServer,
    Side::Server,
    RPC_SERVER_DURATION,
    "Duration of inbound gRPC calls"
);
layer_common!(
    GrpcClientLayer,
    GrpcClient,
    Side::Client,
    RPC_CLIENT_DURATION,
    "Duration of outbound gRPC calls"
);

/// The call's span, in the context the call then runs in. Built with the OpenTelemetry API in the
/// scope `lookout-tower`, like the HTTP layers' (one mechanism for all four): a server span
/// continues the caller's trace from the headers; a client span is the child of the caller's
/// context (its tracing span, or an OTel context) and its context is injected into the headers.
fn call_span<B>(
    req: &mut Request<B>,
    tracer: Option<&BoxedTracer>,
    side: Side,
    service: &str,
    method: &str,
) -> opentelemetry::Context {
    let (kind, parent) = match side {
        Side::Server => (
            SpanKind::Server,
            opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&HeaderExtractor(req.headers()))
            }),
        ),
        Side::Client => (SpanKind::Client, crate::http::caller_context()),
    };
    let builder = SpanBuilder::from_name(format!("{service}/{method}"))
        .with_kind(kind)
        .with_attributes([
            KeyValue::new(RPC_SYSTEM, "grpc"),
            KeyValue::new(RPC_SERVICE, service.to_owned()),
            KeyValue::new(RPC_METHOD, method.to_owned()),
        ]);
    let span = match tracer {
        Some(t) => t.build_with_context(builder, &parent),
        None => opentelemetry::global::tracer("lookout-tower").build_with_context(builder, &parent),
    };
    let cx = parent.with_span(span);
    if side == Side::Client {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(req.headers_mut()))
        });
    }
    cx
}

fn call<S, ReqB, ResB>(
    inner: &mut S,
    duration: Arc<Histogram<f64>>,
    tracer: Option<&BoxedTracer>,
    side: Side,
    mut req: Request<ReqB>,
) -> BoxFuture<Result<Response<GrpcBody<ResB>>, S::Error>>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    ResB: http_body::Body,
{
    let start = Instant::now();
    let (service, method) = split_path(req.uri().path()).unwrap_or(("_OTHER", "_OTHER"));
    // The path comes from the client: bounded like the HTTP layer's request attributes.
    let limit = crate::http::default_request_attribute_limit();
    let (service, method) = (
        crate::http::bounded(service, limit),
        crate::http::bounded(method, limit),
    );
    let cx = call_span(&mut req, tracer, side, &service, &method);
    let fut = {
        let _attached = cx.clone().attach();
        inner.call(req)
    };
    Box::pin(async move {
        let result = fut.with_context(cx.clone()).await;
        let finish = Finish {
            server: side == Side::Server,
            cx,
            start,
            duration,
            attributes: vec![
                KeyValue::new(RPC_SYSTEM, "grpc"),
                KeyValue::new(RPC_SERVICE, service),
                KeyValue::new(RPC_METHOD, method),
            ],
        };
        match result {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let body = match grpc_status(&parts.headers) {
                    // Trailers-only: the call is over.
                    Some(code) => {
                        finish.finish(code);
                        GrpcBody::done(body)
                    }
                    None => GrpcBody::new(body, finish),
                };
                Ok(Response::from_parts(parts, body))
            }
            Err(e) => {
                // Transport failure: gRPC UNAVAILABLE (14) as clients report it.
                finish.finish(14);
                Err(e)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/grpc.health.v1.Health/Check"),
            Some(("grpc.health.v1.Health", "Check"))
        );
        assert_eq!(split_path("/nope"), None);
        assert_eq!(split_path("//x"), None);
        assert_eq!(split_path("/a/b/c"), None);
    }
}
