//! tracing-opentelemetry 0.34 records `u64` span fields through `record_debug`, so they reach
//! OTLP as strings (tracing #3104). This layer, placed after it, sets them again as integers;
//! [`dedup_keep_last`] then keeps only the integer.

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Key, KeyValue};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Default)]
pub(crate) struct U64Fields;

#[derive(Default)]
struct Collect(Vec<(&'static str, i64)>);

impl Visit for Collect {
    fn record_u64(&mut self, field: &Field, value: u64) {
        // Values above i64::MAX have no OTLP integer form and stay strings.
        if let Ok(v) = i64::try_from(value) {
            self.0.push((field.name(), v));
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

fn fix(id: &Id, record: impl FnOnce(&mut Collect)) {
    let mut found = Collect::default();
    record(&mut found);
    if found.0.is_empty() {
        return;
    }
    tracing::dispatcher::get_default(|dispatch| {
        if let Some(cx) = tracing_opentelemetry::get_otel_context(id, dispatch) {
            let span = cx.span();
            for (name, value) in found.0.drain(..) {
                span.set_attribute(KeyValue::new(name, value));
            }
        }
    });
}

impl<S> Layer<S> for U64Fields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        fix(id, |c| attrs.record(c));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        fix(id, |c| values.record(c));
    }
}

/// Removes earlier attributes whose key appears again later, keeping the last value.
pub(crate) fn dedup_keep_last(attributes: &mut Vec<KeyValue>) {
    let has_duplicate = attributes
        .iter()
        .enumerate()
        .any(|(i, kv)| attributes[i + 1..].iter().any(|later| later.key == kv.key));
    if !has_duplicate {
        return;
    }
    let mut seen: Vec<Key> = Vec::with_capacity(attributes.len());
    let mut kept: Vec<KeyValue> = Vec::with_capacity(attributes.len());
    for kv in attributes.drain(..).rev() {
        if !seen.contains(&kv.key) {
            seen.push(kv.key.clone());
            kept.push(kv);
        }
    }
    kept.reverse();
    *attributes = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_value_of_each_key_in_order() {
        let mut attrs = vec![
            KeyValue::new("a", "1"),
            KeyValue::new("b", true),
            KeyValue::new("a", 1_i64),
        ];
        dedup_keep_last(&mut attrs);
        assert_eq!(
            attrs,
            vec![KeyValue::new("b", true), KeyValue::new("a", 1_i64)]
        );
    }
}
