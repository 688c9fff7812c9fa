#![doc = include_str!("../README.md")]

mod contain;
mod current;
mod measure;

/// Items of the pipeline: compiled with the `sdk` feature only.
macro_rules! sdk {
    ($($item:item)*) => { $( #[cfg(feature = "sdk")] $item )* };
}

sdk! {
    mod admin_addr;
    mod config;
    mod console;
    mod error;
    mod export;
    mod filter;
    pub mod metrics;
    mod propagation;
    mod redact;
    mod resource;
    mod stats;
    mod telemetry;
    mod u64_fields;
    pub mod view;
    mod w3c;

    pub use admin_addr::{AdminAddrError, DEFAULT_ADMIN_ADDR, admin_addr};
    pub use config::{
        BatchSettings, Compression, ConfigWarning, ConsoleFormat, ExporterKind,
        HistogramAggregation, Limits, OtlpOptions, Propagator, Protocol, SamplerConfig, Signal,
        TemporalityPreference,
    };
    pub use error::{InitError, ShutdownError};
    pub use propagation::propagator;
    pub use redact::{REDACTED, Redaction};
    pub use stats::{LastError, SignalStats, Stats, stats};
    pub use telemetry::{ShutdownReport, SignalReport, Telemetry, TelemetryBuilder, init};
}

/// What a library records through (without the `sdk` feature): the application's pipeline
/// collects and exports it.
#[cfg(not(feature = "sdk"))]
pub mod metrics {
    pub use crate::contain::contained;
    pub use crate::current::Current;
    pub use crate::measure::{
        DURATION_BUCKETS, HTTP_DURATION_BUCKETS, LANE_CAPACITY, MAX_TIMER_NAMES, Timer, generation,
        timer,
    };
}

pub use contain::{contained, panic_message};
pub use measure::{Timer, timer};

#[cfg(feature = "macros")]
pub use lookout_macros::measured;

/// Pieces lookout's own crates share (lookout-admin, lookout-health); not a public API.
#[doc(hidden)]
pub mod __shared {
    /// The items of an HTTP weighted list (`Accept`, `Accept-Encoding`: RFC 9110 §12.4.2), each
    /// with its weight: `text/plain;q=0.5, */*` gives `("text/plain", 0.5)`, `("*/*", 1.0)`.
    /// The item is trimmed, its parameters other than `q` dropped; a weight that is not a number
    /// counts as 1. Written here rather than taken from a crate: `headers` 0.4 dropped its
    /// `Accept`, and no maintained crate parses both lists without pulling a framework.
    pub fn weighted(list: &str) -> impl Iterator<Item = (&str, f32)> {
        list.split(',').filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let value = parts.next().filter(|v| !v.is_empty())?;
            let q = parts
                .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((value, q))
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn items_come_with_their_weight() {
            let items: Vec<_> =
                super::weighted("text/plain;version=0.0.4;q=0.5, */* ,, gzip;q=x").collect();
            assert_eq!(items, [("text/plain", 0.5), ("*/*", 1.0), ("gzip", 1.0)]);
        }
    }
}

/// What `#[measured]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::measure::{Callsite, Guard, IsResult, NotResult, Outcome, Probe};
}

/// Entry points for the fuzz targets in `fuzz/` (the parsers of outside input) and the span
/// benchmark (the export side's redaction); not a public API.
#[doc(hidden)]
#[cfg(feature = "sdk")]
pub mod __fuzz {
    /// `OTEL_RESOURCE_ATTRIBUTES` / `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,...`,
    /// percent-decoded), then each pair as an HTTP header the way the OTLP clients build them.
    /// Returns the pairs and how many could be headers.
    pub fn key_values(text: &str) -> (Vec<(String, String)>, usize) {
        let source = crate::config::EnvSource::Map(Default::default());
        let mut reader = crate::config::EnvReader::new(&source);
        let pairs = crate::config::parse_key_values(&mut reader, "OTEL_RESOURCE_ATTRIBUTES", text);
        let headers = pairs
            .iter()
            .filter(|(k, v)| {
                ::http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).is_ok()
                    && ::http::HeaderValue::from_str(v).is_ok()
            })
            .count();
        (pairs, headers)
    }

    /// A batch of `spans` spans of the `#[instrument]` shape (five attributes, one with a secret
    /// key, one event whose message holds a card number), as the OTLP client sends them, and the
    /// redaction it applies, for the export-side cost in the span benchmark.
    #[cfg(any(feature = "grpc", feature = "http"))]
    /// With `redact` false the closure only copies the batch (the baseline to subtract); with
    /// `secrets` false the spans hold none (the common case: every value scanned, none changed).
    pub fn redaction_batch(spans: usize, redact: bool, secrets: bool) -> impl FnMut() -> usize {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};
        let kv = |k: &str, v: &str| KeyValue {
            key: k.to_owned(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.to_owned())),
            }),
            key_strindex: 0,
        };
        let span = Span {
            name: "handle".into(),
            attributes: vec![
                kv("order.id", "o-12345"),
                kv("customer", "c-42"),
                kv("region", "eu-west-1"),
                kv("http.route", "/orders/{id}"),
                if secrets {
                    kv("password", "hunter2")
                } else {
                    kv("retry", "false")
                },
            ],
            events: vec![Event {
                name: if secrets {
                    "paid with 4111 1111 1111 1111".into()
                } else {
                    "order checked".into()
                },
                attributes: vec![kv("step", "validated")],
                ..Event::default()
            }],
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span; spans],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let r = crate::redact::Redaction::default();
        move || {
            use crate::export::OtlpMessage as _;
            let mut batch = request.clone();
            if redact {
                batch.redact(&r);
            }
            batch.resource_spans[0].scope_spans[0].spans.len()
        }
    }
}

// The exact versions lookout is built with, so users never mix incompatible ones.
pub use opentelemetry;
#[cfg(feature = "sdk")]
pub use opentelemetry_appender_tracing;
#[cfg(feature = "sdk")]
pub use opentelemetry_sdk;
pub use tracing_opentelemetry;
