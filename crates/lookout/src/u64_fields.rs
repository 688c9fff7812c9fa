//! tracing-opentelemetry 0.34 records `u64` span fields through `record_debug`, so they reach
//! OTLP as strings (tracing #3104). lookout sets them back to integers when the span ends, with no
//! work on the span itself:
//! - [`U64Fields`], placed *before* tracing-opentelemetry's layer, keeps a span's `u64` values in
//!   the span's extensions when they are recorded (only spans that have some), and when the span
//!   closes — just before tracing-opentelemetry's layer ends the OpenTelemetry span — hands them
//!   to the closing thread;
//! - lookout's span processor (`SpanIntake::on_end`, called by that layer's close, on the same
//!   thread) gives them back to the ended span's attributes ([`apply_closing`]): the string value
//!   of the key becomes the integer, in place;
//! - [`U64FieldsDone`], placed after it, clears what the close left (an unsampled span ends with no
//!   `on_end`), so nothing crosses to another span.
//!
//! This replaced setting them again on the OpenTelemetry span while the span was created
//! (`get_otel_context` and `set_attribute`, a second attribute to remove later): 2,600 instructions
//! a span with a `u64` field (BENCHMARKS.md, span cost against the peers).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use opentelemetry::{KeyValue, Value};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Keeps `u64` values and hands them over at close; placed before the span layer.
#[derive(Debug, Default)]
pub(crate) struct U64Fields;

/// Clears the hand-over after the span layer's close; placed after the span layer.
#[derive(Debug, Default)]
pub(crate) struct U64FieldsDone;

/// A span's `u64` values (key, value), the latest per key; in the span's extensions.
#[derive(Default)]
struct Kept(Vec<(&'static str, i64)>);

/// Spans with [`Kept`] values not closed yet: while there are none, a close costs nothing.
static OPEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The closing span's values, from its close to its `on_end` on this thread.
    static CLOSING: RefCell<Vec<(&'static str, i64)>> = const { RefCell::new(Vec::new()) };
}

impl Visit for Kept {
    fn record_u64(&mut self, field: &Field, value: u64) {
        // Values above i64::MAX have no OTLP integer form and stay strings.
        if let Ok(v) = i64::try_from(value) {
            match self.0.iter_mut().find(|(name, _)| *name == field.name()) {
                Some(kept) => kept.1 = v,
                None => self.0.push((field.name(), v)),
            }
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S> Layer<S> for U64Fields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut found = Kept::default();
        attrs.record(&mut found);
        if found.0.is_empty() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(found);
            OPEN.fetch_add(1, Relaxed);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut found = Kept::default();
        values.record(&mut found);
        if found.0.is_empty() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<Kept>() {
            Some(kept) => {
                for (name, value) in found.0 {
                    match kept.0.iter_mut().find(|(n, _)| *n == name) {
                        Some(old) => old.1 = value,
                        None => kept.0.push((name, value)),
                    }
                }
            }
            None => {
                extensions.insert(found);
                OPEN.fetch_add(1, Relaxed);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if OPEN.load(Relaxed) == 0 {
            return;
        }
        let Some(span) = ctx.span(&id) else {
            return;
        };
        if let Some(kept) = span.extensions_mut().remove::<Kept>() {
            OPEN.fetch_sub(1, Relaxed);
            let _ = CLOSING.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    *c = kept.0;
                }
            });
        }
    }
}

impl<S: Subscriber> Layer<S> for U64FieldsDone {
    fn on_close(&self, _: Id, _: Context<'_, S>) {
        // Left only when the span had values and ended without `on_end` (not sampled).
        let _ = CLOSING.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.clear();
            }
        });
    }
}

/// Gives the closing span's `u64` values back to its attributes: the last attribute of each key,
/// if it holds the value's decimal string (as tracing-opentelemetry wrote it), becomes the
/// integer. Called by the span processor's `on_end` on the closing thread.
pub(crate) fn apply_closing(attributes: &mut [KeyValue]) {
    let _ = CLOSING.try_with(|c| {
        let Ok(mut closing) = c.try_borrow_mut() else {
            return;
        };
        for (name, value) in closing.drain(..) {
            if let Some(kv) = attributes.iter_mut().rev().find(|kv| kv.key.as_str() == name)
                && let Value::String(s) = &kv.value
                && s.as_str().parse::<i64>() == Ok(value)
            {
                kv.value = Value::I64(value);
            }
        }
    });
}

/// Removes earlier attributes whose key appears again later, keeping the last value.
pub(crate) fn dedup_keep_last(attributes: &mut Vec<KeyValue>) {
    // In place, without allocating unless a key is repeated (a field recorded again: rare).
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
