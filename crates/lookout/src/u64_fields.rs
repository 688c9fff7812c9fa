//! tracing-opentelemetry 0.34 records `u64` span fields through `record_debug`, so they reach
//! OTLP as strings (tracing #3104). This layer, placed after it, sets them again as integers;
//! [`dedup_keep_last`] then keeps only the integer.

use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;
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
    // In place, without allocating unless a key is repeated (the u64 fix's keys, few).
    fn replaced(attributes: &[KeyValue], i: usize) -> bool {
        let key = attributes[i].key.as_str();
        attributes[i + 1..].iter().any(|later| later.key.as_str() == key)
    }
    let Some(first) = (0..attributes.len()).find(|&i| replaced(attributes, i)) else {
        return;
    };
    let drop: Vec<bool> = (0..attributes.len())
        .map(|i| i >= first && replaced(attributes, i))
        .collect();
    let mut i = 0;
    attributes.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
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

    #[test]
    fn several_repeated_keys_and_none() {
        let mut attrs = vec![
            KeyValue::new("a", "1"),
            KeyValue::new("b", "2"),
            KeyValue::new("a", 1_i64),
            KeyValue::new("c", "3"),
            KeyValue::new("b", 2_i64),
        ];
        dedup_keep_last(&mut attrs);
        assert_eq!(
            attrs,
            vec![
                KeyValue::new("a", 1_i64),
                KeyValue::new("c", "3"),
                KeyValue::new("b", 2_i64)
            ]
        );
        let mut unique = vec![KeyValue::new("x", 1_i64), KeyValue::new("y", 2_i64)];
        dedup_keep_last(&mut unique);
        assert_eq!(unique.len(), 2);
    }
}
