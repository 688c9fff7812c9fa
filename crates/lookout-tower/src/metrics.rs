//! The instruments: made from the global meter when a layer is built, and again whenever lookout
//! installs another meter provider ([`Current`]); or once, from the meter a layer is given.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use lookout_exemplars::Reservoir;
use opentelemetry::Context;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundHistogram, BoundUpDownCounter, Histogram, Meter, UpDownCounter};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_semantic_conventions::attribute;
use opentelemetry_semantic_conventions::metric as semconv;

use crate::http::{HttpMethod, METHODS};

/// Seconds: the semantic conventions' advice for HTTP and RPC durations.
pub(crate) use lookout::metrics::HTTP_DURATION_BUCKETS as DURATION_BUCKETS;

/// Bytes: powers of 4 from 64 B to 64 MiB.
const SIZE_BUCKETS: [f64; 11] = [
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// A layer's instruments, current with the meter provider (see [`lookout::metrics::Current`]):
/// a layer built before `lookout::init` records into the pipeline `init` starts.
pub(crate) type Current<T> = lookout::metrics::Current<T>;

/// The scope of every layer's instruments made from the global meter.
pub(crate) const SCOPE: &str = "lookout-tower";

pub(crate) fn duration(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build()
}

/// What a finished request's duration is recorded with, but the route (each [`Route`] keeps its
/// own series): all `'static` or small, so a lookup hashes a few words and builds no attribute
/// list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RequestKind {
    pub(crate) method: HttpMethod,
    pub(crate) scheme: &'static str,
    pub(crate) version: &'static str,
    /// `None` when the request failed before a response (`error_type` then says why).
    pub(crate) status: Option<u16>,
    /// Why the request failed when it is not just a 5xx: `panic`, or the service's error type.
    pub(crate) error_type: Option<&'static str>,
}

impl RequestKind {
    /// The metric attributes, in the semantic conventions' terms.
    pub(crate) fn attributes(&self, route: Option<&Arc<str>>) -> Vec<KeyValue> {
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new(
            attribute::HTTP_REQUEST_METHOD,
            self.method.as_str(),
        ));
        attributes.push(KeyValue::new(attribute::URL_SCHEME, self.scheme));
        attributes.push(KeyValue::new(
            attribute::NETWORK_PROTOCOL_VERSION,
            self.version,
        ));
        if let Some(r) = route {
            attributes.push(KeyValue::new(attribute::HTTP_ROUTE, Arc::clone(r)));
        }
        if let Some(code) = self.status {
            attributes.push(KeyValue::new(
                attribute::HTTP_RESPONSE_STATUS_CODE,
                i64::from(code),
            ));
        }
        if let Some(t) = self.error_type() {
            attributes.push(KeyValue::new(attribute::ERROR_TYPE, t));
        }
        attributes
    }

    /// `error.type`: the failure's own type (`panic`, the service's error type), else the status
    /// code of a 5xx.
    pub(crate) fn error_type(&self) -> Option<Cow<'static, str>> {
        match (self.error_type, self.status) {
            (Some(t), _) => Some(t.into()),
            (None, Some(code)) if code >= 500 => Some(code.to_string().into()),
            _ => None,
        }
    }
}

/// At most this many route templates are interned per layer (axum's are as many as the app's
/// routes; a `route` hook could return anything). Past it, a request's route is used as it is:
/// its span name and metric attributes are built per request and recorded through the SDK's
/// attribute lookup (and its cardinality limit), as for any unbounded attribute.
pub(crate) const MAX_ROUTES: usize = 1024;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// One route template, interned: its text shared (no copy per request), its span names made once
/// per method, and its `http.server.request.duration` series bound once per request kind (a
/// request then costs a small hash lookup and the histogram update, no attribute list and no
/// lookup in the SDK).
#[derive(Debug)]
pub(crate) struct Route {
    /// The template, `""` for "no route matched".
    pub(crate) template: Arc<str>,
    interned: bool,
    /// `{method} {template}`, leaked once per method and interned route (bounded by
    /// [`MAX_ROUTES`]): span names are `Cow<'static, str>`.
    names: [OnceLock<&'static str>; METHODS.len()],
    durations: RwLock<FastMap<RequestKind, BoundSeries>>,
}

/// One bound `http.server.request.duration` series and its exemplars (the trace of a sampled
/// request per bucket, for `/metrics`).
#[derive(Debug)]
struct BoundSeries {
    histogram: BoundHistogram<f64>,
    exemplars: Option<Arc<Reservoir>>,
}

impl BoundSeries {
    fn record(&self, seconds: f64, cx: &Context) {
        self.histogram.record(seconds);
        if let Some(r) = &self.exemplars {
            r.offer(seconds, now_ms(), || Some(cx.span().span_context().clone()));
        }
    }
}

/// Milliseconds since the first call: the exemplars' rate-limiting clock.
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl Route {
    fn new(template: Arc<str>, interned: bool) -> Self {
        Route {
            template,
            interned,
            names: Default::default(),
            durations: RwLock::new(FastMap::default()),
        }
    }

    /// `None` when no route matched.
    pub(crate) fn template(&self) -> Option<&Arc<str>> {
        (!self.template.is_empty()).then_some(&self.template)
    }

    /// The default span name: `{method} {route}`, or the method alone with no route.
    pub(crate) fn span_name(&self, method: HttpMethod) -> Cow<'static, str> {
        // An unknown method names the span `HTTP` (semantic conventions), not `_OTHER`.
        let name = if method == HttpMethod::OTHER {
            "HTTP"
        } else {
            method.as_str()
        };
        if self.template.is_empty() {
            return Cow::Borrowed(name);
        }
        if !self.interned {
            return Cow::Owned(format!("{name} {}", self.template));
        }
        Cow::Borrowed(
            self.names[method.index()]
                .get_or_init(|| Box::leak(format!("{name} {}", self.template).into_boxed_str())),
        )
    }
}

/// The route templates a layer has seen.
#[derive(Debug)]
pub(crate) struct Routes {
    interned: RwLock<FastMap<Box<str>, Arc<Route>>>,
    none: Arc<Route>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            interned: RwLock::new(FastMap::default()),
            none: Arc::new(Route::new(Arc::from(""), true)),
        }
    }
}

impl Routes {
    /// The route for `template` (`None`: no route matched).
    pub(crate) fn get(&self, template: Option<&str>) -> Arc<Route> {
        let Some(template) = template.filter(|t| !t.is_empty()) else {
            return Arc::clone(&self.none);
        };
        if let Some(route) = self
            .interned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(template)
        {
            return Arc::clone(route);
        }
        let mut interned = self.interned.write().unwrap_or_else(|e| e.into_inner());
        if interned.len() >= MAX_ROUTES {
            return Arc::new(Route::new(Arc::from(template), false));
        }
        let route = interned
            .entry(template.into())
            .or_insert_with(|| Arc::new(Route::new(Arc::from(template), true)));
        Arc::clone(route)
    }
}

/// At most this many duration series are bound per layer (twice the SDK's default cardinality
/// limit, past which the SDK sends bindings to its overflow series anyway); further ones are
/// recorded the ordinary way.
const MAX_BOUND_SERIES: usize = 4096;

/// `http.server.request.duration`.
#[derive(Debug)]
pub(crate) struct Durations {
    histogram: Histogram<f64>,
    bound: std::sync::atomic::AtomicUsize,
}

impl Durations {
    fn new(histogram: Histogram<f64>) -> Self {
        Durations {
            histogram,
            bound: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Records `seconds` for a request of `kind` on `route`, served in the span of `cx` (an
    /// exemplar when the span is sampled and the bucket is due; bound series only).
    pub(crate) fn record(&self, kind: RequestKind, route: &Route, seconds: f64, cx: &Context) {
        if route.interned {
            {
                let bound = route.durations.read().unwrap_or_else(|e| e.into_inner());
                if let Some(b) = bound.get(&kind) {
                    b.record(seconds, cx);
                    return;
                }
            }
            use std::sync::atomic::Ordering::Relaxed;
            if self.bound.load(Relaxed) < MAX_BOUND_SERIES {
                let mut bound = route.durations.write().unwrap_or_else(|e| e.into_inner());
                bound
                    .entry(kind)
                    .or_insert_with(|| {
                        self.bound.fetch_add(1, Relaxed);
                        let attributes = kind.attributes(route.template());
                        BoundSeries {
                            histogram: self.histogram.bind(&attributes),
                            exemplars: lookout_exemplars::reservoir(
                                semconv::HTTP_SERVER_REQUEST_DURATION,
                                &attributes,
                                &DURATION_BUCKETS,
                            ),
                        }
                    })
                    .record(seconds, cx);
                return;
            }
        }
        self.histogram
            .record(seconds, &kind.attributes(route.template()));
    }
}

/// `http.server.active_requests` by method and scheme, bound on first use.
#[derive(Debug)]
pub(crate) struct Active {
    counter: UpDownCounter<i64>,
    /// By method (index in [`METHODS`]), then scheme (`http`, `https`); a custom scheme is
    /// recorded unbound.
    bound: [[OnceLock<BoundUpDownCounter<i64>>; 2]; METHODS.len()],
}

impl Active {
    fn new(counter: UpDownCounter<i64>) -> Self {
        Active {
            counter,
            bound: Default::default(),
        }
    }

    /// Adds `n` to the requests in progress with `method` and `scheme`.
    pub(crate) fn add(&self, method: HttpMethod, scheme: &'static str, n: i64) {
        let s = match scheme {
            "http" => Some(0),
            "https" => Some(1),
            _ => None,
        };
        let attributes = || {
            [
                KeyValue::new(attribute::HTTP_REQUEST_METHOD, method.as_str()),
                KeyValue::new(attribute::URL_SCHEME, scheme),
            ]
        };
        match s {
            Some(s) => self.bound[method.index()][s]
                .get_or_init(|| self.counter.bind(&attributes()))
                .add(n),
            None => self.counter.add(n, &attributes()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct HttpServerInstruments {
    pub(crate) duration: Durations,
    pub(crate) active: Active,
    pub(crate) request_size: Histogram<u64>,
    pub(crate) response_size: Histogram<u64>,
}

impl HttpServerInstruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        let size = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(SIZE_BUCKETS.to_vec())
                .build()
        };
        HttpServerInstruments {
            duration: Durations::new(duration(
                meter,
                semconv::HTTP_SERVER_REQUEST_DURATION,
                "Duration of HTTP server requests",
            )),
            active: Active::new(
                meter
                    .i64_up_down_counter(semconv::HTTP_SERVER_ACTIVE_REQUESTS)
                    .with_unit("{request}")
                    .with_description("Number of active HTTP server requests")
                    .build(),
            ),
            request_size: size(
                semconv::HTTP_SERVER_REQUEST_BODY_SIZE,
                "Size of HTTP server request bodies",
            ),
            response_size: size(
                semconv::HTTP_SERVER_RESPONSE_BODY_SIZE,
                "Size of HTTP server response bodies",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_interned_up_to_the_limit_then_used_as_they_are() {
        let routes = Routes::default();
        let a = routes.get(Some("/a/{id}"));
        assert!(Arc::ptr_eq(&a, &routes.get(Some("/a/{id}"))), "one entry");
        assert!(matches!(
            a.span_name(HttpMethod::of(&http::Method::GET)),
            Cow::Borrowed("GET /a/{id}")
        ));
        let none = routes.get(None);
        assert!(none.template().is_none());
        assert_eq!(none.span_name(HttpMethod::of(&http::Method::POST)), "POST");
        for i in 1..MAX_ROUTES {
            routes.get(Some(&format!("/r{i}")));
        }
        let late = routes.get(Some("/late"));
        assert!(!late.interned, "past the limit");
        assert!(!Arc::ptr_eq(&late, &routes.get(Some("/late"))));
        assert!(
            matches!(late.span_name(HttpMethod::of(&http::Method::GET)), Cow::Owned(ref n) if n == "GET /late")
        );
        assert_eq!(late.template().map(|t| &**t), Some("/late"));
    }
}
