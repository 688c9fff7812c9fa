//! Incoming trace headers: traceparent, tracestate, baggage, b3 (single and multi), uber-trace-id,
//! through lookout's composite propagator (all five), extracted and injected again. Input: lines
//! of `name: value`; a name may repeat (several header lines).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use lookout::Propagator;
use lookout::opentelemetry::propagation::{Extractor, TextMapPropagator};
use lookout::opentelemetry::trace::TraceContextExt;

/// Header lines as a server sees them: lowercase names, repeated names kept in order.
struct Headers(Vec<(String, String)>);

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let headers = Headers(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
    );
    let propagator = lookout::propagator(&[
        Propagator::TraceContext,
        Propagator::Baggage,
        Propagator::B3,
        Propagator::B3Multi,
        Propagator::Jaeger,
    ]);
    let cx = propagator.extract(&headers);
    let mut out: HashMap<String, String> = HashMap::new();
    propagator.inject_context(&cx, &mut out);
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        // What was continued is propagated on, in W3C form.
        let traceparent = out.get("traceparent").expect("a valid context is injected");
        assert!(traceparent.contains(&sc.trace_id().to_string()));
    }
    if let Some(baggage) = out.get("baggage") {
        assert!(baggage.len() <= 8192, "baggage kept within the W3C limit");
    }
});
