//! Attribute limits the SDK does not apply itself.

use opentelemetry::{Array, KeyValue, StringValue, Value};

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
