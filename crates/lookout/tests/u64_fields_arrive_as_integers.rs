//! `u64` span fields reach the exporter as integers, once per key, whether recorded when the span
//! is created or later (tracing-opentelemetry 0.34 writes them as strings; lookout gives the
//! integer back when the span ends), while a `u64` above `i64::MAX` and a string that reads as a
//! number stay strings, an unsampled span's values never reach the next span, spans on several
//! threads keep their own values, a callsite shared by a generic function's instantiations gives
//! each span its own type, and a `u64` recorded again as text stays text.

use std::sync::{Arc, Mutex};

use lookout::opentelemetry::{KeyValue, Value};
use lookout::opentelemetry_sdk::error::OTelSdkResult;
use lookout::opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[derive(Debug, Clone, Default)]
struct Kept(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Kept {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().expect("lock").extend(batch);
        Ok(())
    }
}

fn attributes<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a [KeyValue]> {
    spans
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.attributes.as_slice())
        .collect()
}

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Vec<&'a Value> {
    attributes
        .iter()
        .filter(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
        .collect()
}

#[test]
fn u64_fields_are_integers_once_per_key() {
    let kept = Kept::default();
    let telemetry = lookout::Telemetry::builder()
        .span_exporter(kept.clone())
        .console(lookout::ConsoleFormat::Off)
        .env_vars([
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("LOOKOUT_VIEW", "off"),
        ])
        .init()
        .expect("init");

    {
        let span = tracing::info_span!(
            "created",
            count = 42_u64,
            big = u64::MAX,
            text = "7",
            signed = -3_i64,
            later = tracing::field::Empty,
            again = tracing::field::Empty,
        );
        span.record("later", 9_u64);
        span.record("again", 1_u64);
        span.record("again", 2_u64);
        span.in_scope(|| tracing::info!("inside"));
    }
    // A span with no u64 field after one that had some.
    tracing::info_span!("plain", text = "42").in_scope(|| {});
    // One callsite whose field is a `u64` in one span and text in another: a generic function's
    // callsite is shared by every instantiation.
    fn generic<T: tracing::Value>(name: &'static str, v: T) {
        tracing::info_span!("generic", which = name, v = v).in_scope(|| {});
    }
    generic("first", 5_u64);
    generic("text", "6");
    generic("after", 7_u64);
    generic("text again", "8");
    // A `u64` field recorded again as text that reads as a number: the text is the last value.
    {
        let span = tracing::info_span!("rerecorded", id = 5_u64);
        span.record("id", "77");
    }
    tracing::info_span!("rerecorded", id = 6_u64).in_scope(|| {});
    // An unsampled span (its remote parent is not sampled: parent-based sampling, the default)
    // with a u64 value, then an OpenTelemetry API span with the same key and text.
    {
        use lookout::opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        };
        use lookout::tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let parent = SpanContext::new(
            TraceId::from(7_u128),
            SpanId::from(7_u64),
            TraceFlags::default(),
            true,
            TraceState::default(),
        );
        let span = tracing::info_span!("unsampled", count = 42_u64);
        let _ = span
            .set_parent(lookout::opentelemetry::Context::new().with_remote_span_context(parent));
        span.in_scope(|| {});
    }
    {
        use lookout::opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
        let provider = telemetry.tracer_provider().expect("a tracer provider");
        let mut span = provider.tracer("api").start("api");
        span.set_attribute(KeyValue::new("count", "42"));
        span.end();
    }
    // Two threads at once, each span with its own value.
    let threads: Vec<_> = (0..2_u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..500_u64 {
                    tracing::info_span!("threaded", n = t * 1_000 + i, t = t).in_scope(|| {});
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    telemetry.blocking_shutdown().expect("nothing lost");

    let spans = kept.0.lock().expect("lock");
    let created = attributes(&spans, "created");
    assert_eq!(created.len(), 1);
    let a = created[0];
    assert_eq!(value(a, "count"), [&Value::I64(42)]);
    assert_eq!(value(a, "later"), [&Value::I64(9)]);
    assert_eq!(
        value(a, "again"),
        [&Value::I64(2)],
        "the last value, once: {a:?}"
    );
    assert_eq!(value(a, "signed"), [&Value::I64(-3)]);
    assert_eq!(
        value(a, "big"),
        [&Value::String(u64::MAX.to_string().into())],
        "above i64::MAX: no OTLP integer, a string"
    );
    assert_eq!(value(a, "text"), [&Value::String("7".into())]);

    assert!(
        attributes(&spans, "unsampled").is_empty(),
        "not sampled, not exported"
    );
    let generic: Vec<(String, Vec<&Value>)> = attributes(&spans, "generic")
        .iter()
        .map(|a| (value(a, "which")[0].as_str().into_owned(), value(a, "v")))
        .collect();
    assert_eq!(
        generic,
        [
            ("first".to_owned(), vec![&Value::I64(5)]),
            ("text".to_owned(), vec![&Value::String("6".into())]),
            ("after".to_owned(), vec![&Value::I64(7)]),
            ("text again".to_owned(), vec![&Value::String("8".into())]),
        ],
        "each span's own type, though the callsite is one"
    );
    let rerecorded: Vec<Vec<&Value>> = attributes(&spans, "rerecorded")
        .iter()
        .map(|a| value(a, "id"))
        .collect();
    assert_eq!(
        rerecorded,
        [vec![&Value::String("77".into())], vec![&Value::I64(6)]],
        "the last value's type, and the callsite's positions still serve the next span"
    );
    let plain = attributes(&spans, "plain");
    assert_eq!(value(plain[0], "text"), [&Value::String("42".into())]);
    let api = attributes(&spans, "api");
    assert_eq!(
        value(api[0], "count"),
        [&Value::String("42".into())],
        "the unsampled span's value did not reach the next span to end"
    );

    let threaded = attributes(&spans, "threaded");
    assert_eq!(threaded.len(), 1_000);
    let mut seen: Vec<i64> = threaded
        .iter()
        .map(|a| {
            let [Value::I64(n)] = value(a, "n")[..] else {
                panic!("n is one integer: {a:?}");
            };
            let [Value::I64(t)] = value(a, "t")[..] else {
                panic!("t is one integer: {a:?}");
            };
            assert_eq!(*n / 1_000, *t, "a span kept its own thread's values");
            *n
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 1_000, "every value once");
}
