//! `OTEL_PROPAGATORS`: W3C trace context and baggage from the SDK, B3 and Jaeger here (no crate
//! offers them for opentelemetry 0.33). Extraction never fails: a malformed header is ignored.

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
    text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

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
                Propagator::TraceContext => {
                    Box::new(StrictTraceContext(TraceContextPropagator::new()))
                }
                Propagator::Baggage => Box::new(BaggagePropagator::new()),
                Propagator::B3 => Box::new(B3 { multi: false }),
                Propagator::B3Multi => Box::new(B3 { multi: true }),
                Propagator::Jaeger => Box::new(Jaeger),
            }
        })
        .collect();
    TextMapCompositePropagator::new(propagators)
}

/// The SDK's W3C propagator behind a strict `traceparent` check: opentelemetry-rust 0.33 accepts
/// `00-42-1-01`, `+`-prefixed ids and one-digit flags. An invalid header is ignored together with
/// its `tracestate`, and a new trace starts.
#[derive(Debug)]
struct StrictTraceContext(TraceContextPropagator);

/// W3C Trace Context §3.2: version, trace-id, parent-id and flags, lowercase hex.
fn valid_traceparent(header: &str) -> bool {
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let fields: Vec<&str> = header.trim().split('-').collect();
    let [version, trace, parent, flags, ..] = *fields.as_slice() else {
        return false;
    };
    let field_count_ok = if version == "00" {
        fields.len() == 4
    } else {
        // Later versions may append fields; the first four keep their meaning.
        fields.len() >= 4
    };
    field_count_ok
        && lower_hex(version, 2)
        && version != "ff"
        && lower_hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && lower_hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && lower_hex(flags, 2)
}

/// Drops an empty `tracestate`, which the SDK writes and W3C says to omit.
struct OmitEmptyTraceState<'a>(&'a mut dyn Injector);

impl Injector for OmitEmptyTraceState<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !(key == "tracestate" && value.is_empty()) {
            self.0.set(key, value);
        }
    }
}

impl TextMapPropagator for StrictTraceContext {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.0
            .inject_context(cx, &mut OmitEmptyTraceState(injector));
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get("traceparent") {
            Some(header) if valid_traceparent(header) => {
                limit_tracestate(self.0.extract_with_context(cx, extractor))
            }
            _ => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.0.fields()
    }
}

/// The most tracestate characters propagated (W3C Trace Context §3.3.1.5 asks for at least 512).
const TRACESTATE_MAX_LEN: usize = 512;
/// Entries longer than this go first when the tracestate is too long.
const TRACESTATE_LONG_ENTRY: usize = 128;

/// Truncates an over-long tracestate the way W3C says: whole entries only, first those over 128
/// characters, then from the right. opentelemetry-rust caps the entry count but not the length.
fn limit_tracestate(cx: Context) -> Context {
    let sc = cx.span().span_context().clone();
    let header = sc.trace_state().header();
    if header.len() <= TRACESTATE_MAX_LEN {
        return cx;
    }
    let mut entries: Vec<&str> = header
        .split(',')
        .filter(|e| e.len() <= TRACESTATE_LONG_ENTRY)
        .collect();
    while !entries.is_empty()
        && entries.iter().map(|e| e.len() + 1).sum::<usize>() - 1 > TRACESTATE_MAX_LEN
    {
        entries.pop();
    }
    let pairs = entries.iter().filter_map(|e| e.split_once('='));
    let state = TraceState::from_key_value(pairs).unwrap_or_default();
    cx.with_remote_span_context(SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags(),
        true,
        state,
    ))
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
    fn traceparent_is_checked_strictly() {
        let p = StrictTraceContext(TraceContextPropagator::new());
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = extract(&p, &[("traceparent", ok)]).expect("valid traceparent");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(
            extract(
                &p,
                &[(
                    "traceparent",
                    "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"
                )]
            )
            .is_some()
        );
        for bad in [
            "00-42-1-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(
                extract(&p, &[("traceparent", bad), ("tracestate", "a=b")]).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_tracestate_is_truncated_by_whole_entries() {
        let p = StrictTraceContext(TraceContextPropagator::new());
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let long = format!("big={}", "x".repeat(200));
        // 31 entries of 20 characters (641 with commas) and one over 128.
        let mut entries: Vec<String> = (0..31)
            .map(|i| format!("k{i:02}={}", "v".repeat(16)))
            .collect();
        entries.insert(3, long);
        let header = entries.join(",");
        let sc = extract(&p, &[("traceparent", tp), ("tracestate", &header)]).expect("valid");
        let kept = sc.trace_state().header();
        assert!(kept.len() <= 512, "{}", kept.len());
        assert!(
            !kept.contains("big="),
            "the entry over 128 characters goes first"
        );
        assert!(
            kept.starts_with("k00="),
            "entries are dropped from the right: {kept}"
        );
        assert!(
            kept.split(',').all(|e| e.len() == 20),
            "only whole entries: {kept}"
        );
        let short = extract(&p, &[("traceparent", tp), ("tracestate", "a=1,b=2")]).expect("valid");
        assert_eq!(short.trace_state().header(), "a=1,b=2");
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
