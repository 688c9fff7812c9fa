//! `OTEL_PROPAGATORS`: W3C trace context (lookout's own, `crate::w3c`), W3C baggage (the SDK's,
//! fed every `baggage` line), B3 and Jaeger here. Extraction never fails: a malformed header is
//! ignored.
//!
//! B3 and Jaeger are written here rather than taken from a crate: opentelemetry-zipkin 0.33 has
//! a B3 propagator, but the crate is deprecated (the Zipkin exporter is) and pulls reqwest with
//! native-tls by default; opentelemetry-jaeger-propagator's latest release (0.32) is deprecated
//! and built on opentelemetry 0.32, a second, incompatible copy of the API.

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
    text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::BaggagePropagator;

use crate::config::Propagator;

/// The propagators `OTEL_PROPAGATORS` names, as `init` installs them globally: W3C trace context
/// (strict `traceparent` parsing, tracestate truncated to 512 characters by whole entries), W3C
/// baggage, B3 (single and multi header) and Jaeger. For servers and clients that do not use
/// `init`, or tests that set the global propagator themselves.
///
/// ```
/// use lookout::Propagator;
/// let p = lookout::propagator(&[Propagator::TraceContext, Propagator::Baggage]);
/// lookout::opentelemetry::global::set_text_map_propagator(p);
/// ```
pub fn propagator(list: &[Propagator]) -> TextMapCompositePropagator {
    composite(list)
}

pub(crate) fn composite(list: &[Propagator]) -> TextMapCompositePropagator {
    let propagators = list
        .iter()
        .map(|p| -> Box<dyn TextMapPropagator + Send + Sync> {
            match p {
                Propagator::TraceContext => Box::new(crate::w3c::TraceContext::new()),
                Propagator::Baggage => Box::new(AllBaggageLines(BaggagePropagator::new())),
                Propagator::B3 => Box::new(B3 { multi: false }),
                Propagator::B3Multi => Box::new(B3 { multi: true }),
                Propagator::Jaeger => Box::new(Jaeger),
            }
        })
        .collect();
    TextMapCompositePropagator::new(propagators)
}

/// The SDK's W3C baggage propagator, given every `baggage` line as one list (HTTP list
/// semantics; the SDK reads the first line only). Its limits (64 members, 8192 bytes) then count
/// over all of them.
#[derive(Debug)]
struct AllBaggageLines(BaggagePropagator);

/// An extractor that answers `baggage` with all its lines joined by `,`.
struct JoinedBaggage<'a> {
    inner: &'a dyn Extractor,
    joined: Option<String>,
}

impl Extractor for JoinedBaggage<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key == "baggage" {
            return self.joined.as_deref();
        }
        self.inner.get(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.inner.keys()
    }
}

impl TextMapPropagator for AllBaggageLines {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.0.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let lines = extractor
            .get_all("baggage")
            .or_else(|| extractor.get("baggage").map(|v| vec![v]))
            .unwrap_or_default();
        let joined = lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        let joined = JoinedBaggage {
            inner: extractor,
            joined: (!joined.is_empty()).then_some(joined),
        };
        self.0.extract_with_context(cx, &joined)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.0.fields()
    }
}

fn trace_id(hex: &str) -> Option<TraceId> {
    // 64-bit ids (16 hex) are left-padded to 128 bits, as B3 and Jaeger allow.
    let valid = matches!(hex.len(), 16 | 32) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let id = TraceId::from_hex(&format!("{hex:0>32}")).ok()?;
    (valid && id != TraceId::INVALID).then_some(id)
}

fn span_id(hex: &str) -> Option<SpanId> {
    let valid = hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let id = SpanId::from_hex(hex).ok()?;
    (valid && id != SpanId::INVALID).then_some(id)
}

fn remote(cx: &Context, trace: TraceId, span: SpanId, sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
    cx.with_remote_span_context(sc)
        .with_value(crate::w3c::RemoteOrigin {
            trace_id: trace,
            random: false,
        })
}

/// Zipkin B3, single header (`b3`) or multiple (`X-B3-*`).
#[derive(Debug)]
struct B3 {
    multi: bool,
}

const B3_SINGLE: &[&str] = &["b3"];
const B3_MULTI: &[&str] = &["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"];

impl TextMapPropagator for B3 {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        if self.multi {
            injector.set("x-b3-traceid", sc.trace_id().to_string());
            injector.set("x-b3-spanid", sc.span_id().to_string());
            injector.set("x-b3-sampled", sampled.to_owned());
        } else {
            injector.set(
                "b3",
                format!("{}-{}-{sampled}", sc.trace_id(), sc.span_id()),
            );
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let parsed = if let Some(single) = extractor.get("b3") {
            let parts: Vec<&str> = single.trim().split('-').collect();
            match parts.as_slice() {
                [t, s] | [t, s, _] | [t, s, _, _] => {
                    let sampled = matches!(parts.get(2), Some(&"1") | Some(&"d") | None);
                    trace_id(t).zip(span_id(s)).map(|(t, s)| (t, s, sampled))
                }
                _ => None,
            }
        } else {
            let t = extractor
                .get("x-b3-traceid")
                .and_then(|v| trace_id(v.trim()));
            let s = extractor.get("x-b3-spanid").and_then(|v| span_id(v.trim()));
            let debug = extractor.get("x-b3-flags").is_some_and(|f| f.trim() == "1");
            let sampled = debug
                || extractor
                    .get("x-b3-sampled")
                    .is_none_or(|v| matches!(v.trim(), "1" | "true"));
            t.zip(s).map(|(t, s)| (t, s, sampled))
        };
        match parsed {
            Some((t, s, sampled)) => remote(cx, t, s, sampled),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static SINGLE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        static MULTI: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let (cell, names) = if self.multi {
            (&MULTI, B3_MULTI)
        } else {
            (&SINGLE, B3_SINGLE)
        };
        FieldIter::new(cell.get_or_init(|| names.iter().map(|s| (*s).to_owned()).collect()))
    }
}

/// Jaeger `uber-trace-id: {trace}:{span}:{parent}:{flags}`.
#[derive(Debug)]
struct Jaeger;

impl TextMapPropagator for Jaeger {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let flags = u8::from(sc.is_sampled());
            injector.set(
                "uber-trace-id",
                format!("{}:{}:0:{flags}", sc.trace_id(), sc.span_id()),
            );
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(header) = extractor.get("uber-trace-id") else {
            return cx.clone();
        };
        let header = header.replace("%3A", ":").replace("%3a", ":");
        let parts: Vec<&str> = header.trim().split(':').collect();
        let [t, s, _parent, flags] = parts.as_slice() else {
            return cx.clone();
        };
        let padded_trace = if t.len() < 16 {
            format!("{t:0>16}")
        } else {
            (*t).to_owned()
        };
        let padded_span = format!("{s:0>16}");
        let flags = u8::from_str_radix(flags, 16).ok();
        match (trace_id(&padded_trace), span_id(&padded_span), flags) {
            (Some(t), Some(s), Some(f)) => remote(cx, t, s, f & 1 == 1),
            _ => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| vec!["uber-trace-id".to_owned()]))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn extract(p: &dyn TextMapPropagator, headers: &[(&str, &str)]) -> Option<SpanContext> {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cx = p.extract(&map);
        let span = cx.span();
        let sc = span.span_context().clone();
        sc.is_valid().then_some(sc)
    }

    #[test]
    fn baggage_lines_are_one_list_with_the_limits_over_all_of_them() {
        use opentelemetry::baggage::BaggageExt;
        struct Lines(Vec<String>);
        impl Extractor for Lines {
            fn get(&self, key: &str) -> Option<&str> {
                (key == "baggage")
                    .then(|| self.0.first().map(String::as_str))
                    .flatten()
            }
            fn keys(&self) -> Vec<&str> {
                vec!["baggage"]
            }
            fn get_all(&self, key: &str) -> Option<Vec<&str>> {
                (key == "baggage").then(|| self.0.iter().map(String::as_str).collect())
            }
        }
        let p = AllBaggageLines(BaggagePropagator::new());
        let lines: Vec<String> = (0..90).map(|i| format!("k{i}=v{i}")).collect();
        let cx = p.extract(&Lines(lines[..3].to_vec()));
        assert_eq!(cx.baggage().len(), 3, "three lines, three entries");
        let cx = p.extract(&Lines(lines));
        assert!(cx.baggage().len() <= 64, "{}", cx.baggage().len());
        assert!(!cx.baggage().is_empty());
    }

    #[test]
    fn b3_single_round_trips_and_rejects_garbage() {
        let p = B3 { multi: false };
        let sc = extract(
            &p,
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        )
        .expect("valid b3");
        assert_eq!(
            sc.trace_id().to_string(),
            "80f198ee56343ba864fe8b2a57d3eff7"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        let mut out = HashMap::new();
        p.inject_context(&Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(
            out["b3"],
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
        );
        assert!(extract(&p, &[("b3", "+0f198ee56343ba8-e457b5a2e4d86bd1-1")]).is_none());
        assert!(extract(&p, &[("b3", "0")]).is_none());
    }

    #[test]
    fn b3_multi_pads_64_bit_ids_and_reads_sampled() {
        let p = B3 { multi: true };
        let sc = extract(
            &p,
            &[
                ("x-b3-traceid", "64fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "0"),
            ],
        )
        .expect("valid");
        assert_eq!(
            sc.trace_id().to_string(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert!(!sc.is_sampled());
    }

    #[test]
    fn jaeger_round_trips_and_ignores_bad_headers() {
        let sc = extract(
            &Jaeger,
            &[(
                "uber-trace-id",
                "6309ab92c95468edea0dc1a9772ae2dc:409423a204bc17a8:0:1",
            )],
        )
        .expect("valid");
        let mut out = HashMap::new();
        Jaeger.inject_context(&Context::new().with_remote_span_context(sc), &mut out);
        assert_eq!(
            out["uber-trace-id"],
            "6309ab92c95468edea0dc1a9772ae2dc:409423a204bc17a8:0:1"
        );
        assert!(extract(&Jaeger, &[("uber-trace-id", "zz:409423a204bc17a8:0:1")]).is_none());
        assert!(extract(&Jaeger, &[("uber-trace-id", "1:2:3")]).is_none());
    }
}
