//! What the batch worker does to a batch of spans before it is exported, off the application
//! thread: the attribute value length limit, which the SDK does not apply
//! (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`), keys set twice (a field recorded again) kept once, and the batch taken
//! off lookout's count of the export queue.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::queue::Queue;

/// Fixes a batch of spans on the batch worker, off the application thread: keeps the last value
/// of a key set twice (a field recorded again) and applies the attribute value length limit, which the SDK
/// does not.
/// Also takes the batch off lookout's count of the export queue.
#[derive(Debug)]
pub(crate) struct SpanFixups<E> {
    inner: E,
    max_value_len: Option<usize>,
    queue: Arc<Queue>,
    /// The local view, given each batch after the fixes.
    view: Option<Arc<crate::view::Store>>,
}

impl<E> SpanFixups<E> {
    pub(crate) fn new(
        inner: E,
        max_value_len: Option<usize>,
        queue: Arc<Queue>,
        view: Option<Arc<crate::view::Store>>,
    ) -> Self {
        Self {
            inner,
            max_value_len,
            queue,
            view,
        }
    }
}

impl<E: SpanExporter> SpanExporter for SpanFixups<E> {
    fn export(&self, mut batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.queue.leave(batch.len());
        for span in &mut batch {
            crate::u64_fields::dedup_keep_last(&mut span.attributes);
            if let Some(limit) = self.max_value_len {
                truncate_values(&mut span.attributes, limit);
                for event in span.events.events.iter_mut() {
                    truncate_values(&mut event.attributes, limit);
                }
            }
        }
        if let Some(view) = &self.view {
            view.spans(&batch);
        }
        self.inner.export(batch)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Cuts string values (and strings inside string arrays) to at most `limit` characters, on a
/// character boundary.
pub(crate) fn truncate_values(attributes: &mut [KeyValue], limit: usize) {
    for kv in attributes {
        match &kv.value {
            Value::String(s) if s.as_str().chars().count() > limit => {
                kv.value = Value::String(cut(s.as_str(), limit));
            }
            Value::Array(Array::String(items))
                if items.iter().any(|s| s.as_str().chars().count() > limit) =>
            {
                let items = items.iter().map(|s| cut(s.as_str(), limit)).collect();
                kv.value = Value::Array(Array::String(items));
            }
            _ => {}
        }
    }
}

fn cut(s: &str, limit: usize) -> StringValue {
    match s.char_indices().nth(limit) {
        Some((end, _)) => StringValue::from(s[..end].to_owned()),
        None => StringValue::from(s.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_strings_on_char_boundaries_and_leaves_other_types() {
        let mut attrs = vec![
            KeyValue::new("s", "héllo wörld"),
            KeyValue::new("short", "ok"),
            KeyValue::new("n", 123_456_789_i64),
            KeyValue::new(
                "a",
                Value::Array(Array::String(vec!["abcdef".into(), "x".into()])),
            ),
        ];
        truncate_values(&mut attrs, 4);
        assert_eq!(attrs[0].value.as_str(), "héll");
        assert_eq!(attrs[1].value.as_str(), "ok");
        assert_eq!(attrs[2].value, Value::I64(123_456_789));
        assert_eq!(
            attrs[3].value,
            Value::Array(Array::String(vec!["abcd".into(), "x".into()]))
        );
    }
}
