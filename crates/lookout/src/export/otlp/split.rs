//! The three OTLP export requests, and how one is cut into parts under the request size limit.
//!
//! A request is resource → scope → items (spans, log records, metrics). Items are packed in their
//! order into parts, each carrying its items' resource and scope, so that no part is larger than
//! the limit. An item that alone would exceed it has its string and byte values cut (longest
//! first, to a bound that halves until it fits): its identity, timing, status and every key stay.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics, metric};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

/// A request cut into parts, each with the number of items it carries.
#[derive(Debug)]
pub(crate) struct Split<M> {
    pub(crate) parts: Vec<(M, u64)>,
    /// Items whose values were cut so they fit.
    pub(crate) cut: u64,
}

/// An OTLP export request.
pub(crate) trait Message:
    prost::Message + serde::Serialize + Default + Clone + Send + Sync + 'static
{
    /// The collector's answer.
    type Response: prost::Message + Default + serde::de::DeserializeOwned + Send + Sync + 'static;
    /// The gRPC method.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    const GRPC_PATH: &'static str;
    /// Items the answer's partial success rejected, and the reason given.
    fn rejected(response: &Self::Response) -> (u64, String);
    /// Cuts the request into parts of at most `limit` encoded bytes.
    fn split(self, limit: usize) -> Split<Self>;
    /// Redacts secrets in every attribute value and log body (`crate::redact`).
    fn redact(&mut self, redaction: &crate::redact::Redaction);
}

/// Bytes a field adds around its message of `len` bytes: a tag and a length prefix.
fn framed(len: usize) -> usize {
    len + 1 + prost::length_delimiter_len(len)
}

/// Cuts every string or byte value in `values` longer than `max` bytes (at a char boundary).
fn cut_values(values: &mut [KeyValue], max: usize) {
    for kv in values {
        if let Some(v) = kv.value.as_mut() {
            cut_value(v, max);
        }
    }
}

fn cut_value(value: &mut AnyValue, max: usize) {
    match value.value.as_mut() {
        Some(any_value::Value::StringValue(s)) if s.len() > max => {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        Some(any_value::Value::BytesValue(b)) if b.len() > max => b.truncate(max),
        Some(any_value::Value::ArrayValue(a)) => {
            for v in &mut a.values {
                cut_value(v, max);
            }
        }
        Some(any_value::Value::KvlistValue(l)) => cut_values(&mut l.values, max),
        _ => {}
    }
}

/// Cuts an item's values with a bound halving from 64 KiB until it fits in `room` bytes.
/// Returns whether it fits.
fn shrink<T: prost::Message>(item: &mut T, room: usize, cut: impl Fn(&mut T, usize)) -> bool {
    let mut max = 64 * 1024;
    while item.encoded_len() > room {
        if max < 16 {
            return false;
        }
        cut(item, max);
        max /= 2;
    }
    true
}

macro_rules! splittable {
    (
        $request:ident { $resources:ident: $resource_ty:ident { $scopes:ident: $scope_ty:ident { $items:ident: $item:ty } } },
        $response:ident, $path:literal,
        rejected: |$r:ident| $rejected:expr,
        count: |$c:ident| $count:expr,
        cut: |$i:ident, $max:ident| $cut:block,
        redact: |$ri:ident, $rr:ident| $redact:block
    ) => {
        impl Message for $request {
            type Response = $response;
            const GRPC_PATH: &'static str = $path;

            fn rejected($r: &$response) -> (u64, String) {
                $rejected
            }

            fn redact(&mut self, redaction: &crate::redact::Redaction) {
                fn one($ri: &mut $item, $rr: &crate::redact::Redaction) {
                    $redact
                }
                if !redaction.enabled {
                    return;
                }
                for item in self
                    .$resources
                    .iter_mut()
                    .flat_map(|r| r.$scopes.iter_mut())
                    .flat_map(|s| s.$items.iter_mut())
                {
                    one(item, redaction);
                }
            }

            fn split(self, limit: usize) -> Split<Self> {
                fn count($c: &$item) -> u64 {
                    $count
                }
                fn cut($i: &mut $item, $max: usize) {
                    $cut
                }
                if self.encoded_len() <= limit {
                    let items = self
                        .$resources
                        .iter()
                        .flat_map(|r| &r.$scopes)
                        .flat_map(|s| &s.$items)
                        .map(count)
                        .sum();
                    return Split {
                        parts: vec![(self, items)],
                        cut: 0,
                    };
                }
                let mut parts = Vec::new();
                let mut cut_items = 0;
                // The part being filled, its encoded size, and its item count.
                let mut part = $request::default();
                let mut size = 0;
                let mut items = 0;
                for resource in self.$resources {
                    let resource_shell = $resource_ty {
                        $scopes: Vec::new(),
                        ..resource.clone()
                    };
                    let resource_len = framed(resource_shell.encoded_len());
                    for scope in resource.$scopes {
                        let scope_shell = $scope_ty {
                            $items: Vec::new(),
                            ..scope.clone()
                        };
                        // Whatever a part starting with this item carries besides it.
                        let shells = resource_len + framed(scope_shell.encoded_len()) + 8;
                        // Whether this scope (and resource) is open in the current part.
                        let mut open = false;
                        for mut item in scope.$items {
                            let mut len = framed(item.encoded_len());
                            if shells + len > limit {
                                // Alone it would not fit: cut its values (never drop it).
                                shrink(&mut item, limit.saturating_sub(shells + 8), cut);
                                cut_items += 1;
                                len = framed(item.encoded_len());
                            }
                            let extra = if open { len } else { len + shells };
                            if items > 0 && size + extra > limit {
                                parts.push((std::mem::take(&mut part), items));
                                size = 0;
                                items = 0;
                                open = false;
                            }
                            if !open {
                                let resource_open = part.$resources.last().is_some_and(|r| {
                                    r.resource == resource_shell.resource
                                        && r.schema_url == resource_shell.schema_url
                                });
                                if !resource_open {
                                    part.$resources.push(resource_shell.clone());
                                }
                                if let Some(r) = part.$resources.last_mut() {
                                    r.$scopes.push(scope_shell.clone());
                                }
                                size += shells;
                                open = true;
                            }
                            size += len;
                            items += count(&item);
                            if let Some(s) = part
                                .$resources
                                .last_mut()
                                .and_then(|r| r.$scopes.last_mut())
                            {
                                s.$items.push(item);
                            }
                        }
                    }
                }
                if items > 0 {
                    parts.push((part, items));
                }
                Split {
                    parts,
                    cut: cut_items,
                }
            }
        }
    };
}

splittable!(
    ExportTraceServiceRequest { resource_spans: ResourceSpans { scope_spans: ScopeSpans { spans: Span } } },
    ExportTraceServiceResponse,
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    rejected: |r| r.partial_success.as_ref().map_or((0, String::new()), |p| {
        (u64::try_from(p.rejected_spans).unwrap_or(0), p.error_message.clone())
    }),
    count: |_s| 1,
    cut: |span, max| {
        cut_values(&mut span.attributes, max);
        for event in &mut span.events {
            cut_values(&mut event.attributes, max);
        }
        for link in &mut span.links {
            cut_values(&mut link.attributes, max);
        }
        if let Some(status) = span.status.as_mut()
            && status.message.len() > max
        {
            let mut end = max;
            while !status.message.is_char_boundary(end) {
                end -= 1;
            }
            status.message.truncate(end);
        }
    },
    redact: |span, r| {
        r.attributes(&mut span.attributes);
        for event in &mut span.events {
            r.attributes(&mut event.attributes);
            // tracing-opentelemetry names an event after its message.
            if let Some(new) = r.text(&event.name) {
                event.name = new;
            }
        }
        for link in &mut span.links {
            r.attributes(&mut link.attributes);
        }
        if let Some(status) = span.status.as_mut()
            && let Some(new) = r.text(&status.message)
        {
            status.message = new;
        }
    }
);

splittable!(
    ExportLogsServiceRequest { resource_logs: ResourceLogs { scope_logs: ScopeLogs { log_records: LogRecord } } },
    ExportLogsServiceResponse,
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    rejected: |r| r.partial_success.as_ref().map_or((0, String::new()), |p| {
        (u64::try_from(p.rejected_log_records).unwrap_or(0), p.error_message.clone())
    }),
    count: |_l| 1,
    cut: |record, max| {
        cut_values(&mut record.attributes, max);
        if let Some(body) = record.body.as_mut() {
            cut_value(body, max);
        }
    },
    redact: |record, r| {
        r.attributes(&mut record.attributes);
        if let Some(body) = record.body.as_mut() {
            r.value(body);
        }
    }
);

splittable!(
    ExportMetricsServiceRequest { resource_metrics: ResourceMetrics { scope_metrics: ScopeMetrics { metrics: Metric } } },
    ExportMetricsServiceResponse,
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    rejected: |r| r.partial_success.as_ref().map_or((0, String::new()), |p| {
        (u64::try_from(p.rejected_data_points).unwrap_or(0), p.error_message.clone())
    }),
    count: |m| match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len() as u64,
        Some(metric::Data::Sum(s)) => s.data_points.len() as u64,
        Some(metric::Data::Histogram(h)) => h.data_points.len() as u64,
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len() as u64,
        Some(metric::Data::Summary(s)) => s.data_points.len() as u64,
        None => 0,
    },
    cut: |metric, max| {
        // A metric too large for one request has too many points; its attribute values are
        // what can be cut.
        match metric.data.as_mut() {
            Some(metric::Data::Gauge(g)) => g.data_points.iter_mut().for_each(|p| cut_values(&mut p.attributes, max)),
            Some(metric::Data::Sum(s)) => s.data_points.iter_mut().for_each(|p| cut_values(&mut p.attributes, max)),
            Some(metric::Data::Histogram(h)) => h.data_points.iter_mut().for_each(|p| cut_values(&mut p.attributes, max)),
            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.iter_mut().for_each(|p| cut_values(&mut p.attributes, max)),
            Some(metric::Data::Summary(s)) => s.data_points.iter_mut().for_each(|p| cut_values(&mut p.attributes, max)),
            None => {}
        }
    },
    redact: |metric, r| {
        match metric.data.as_mut() {
            Some(metric::Data::Gauge(g)) => g.data_points.iter_mut().for_each(|p| r.attributes(&mut p.attributes)),
            Some(metric::Data::Sum(s)) => s.data_points.iter_mut().for_each(|p| r.attributes(&mut p.attributes)),
            Some(metric::Data::Histogram(h)) => h.data_points.iter_mut().for_each(|p| r.attributes(&mut p.attributes)),
            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.iter_mut().for_each(|p| r.attributes(&mut p.attributes)),
            Some(metric::Data::Summary(s)) => s.data_points.iter_mut().for_each(|p| r.attributes(&mut p.attributes)),
            None => {}
        }
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: String) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value)),
            }),
            key_strindex: 0,
        }
    }

    fn span(name: &str, attribute_len: usize) -> Span {
        Span {
            name: name.to_owned(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: vec![kv("url.path", "x".repeat(attribute_len))],
            ..Span::default()
        }
    }

    fn request(spans: Vec<Span>, scopes: usize) -> ExportTraceServiceRequest {
        let per_scope = spans.len().div_ceil(scopes);
        let mut spans = spans.into_iter();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "svc".to_owned())],
                    ..Resource::default()
                }),
                scope_spans: (0..scopes)
                    .map(|i| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("scope{i}"),
                            ..InstrumentationScope::default()
                        }),
                        spans: spans.by_ref().take(per_scope).collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            }],
        }
    }

    fn names(parts: &[(ExportTraceServiceRequest, u64)]) -> Vec<String> {
        parts
            .iter()
            .flat_map(|(p, _)| &p.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.iter().map(|sp| sp.name.clone()))
            .collect()
    }

    #[test]
    fn a_small_request_is_sent_whole() {
        let r = request(vec![span("a", 10), span("b", 10)], 1);
        let split = r.clone().split(1 << 20);
        assert_eq!(split.parts.len(), 1);
        assert_eq!(split.parts[0], (r, 2));
        assert_eq!(split.cut, 0);
    }

    #[test]
    fn a_large_request_is_cut_into_parts_under_the_limit_keeping_order_resource_and_scope() {
        let spans: Vec<Span> = (0..40).map(|i| span(&format!("s{i}"), 1000)).collect();
        let split = request(spans, 3).split(5_000);
        assert!(split.parts.len() >= 8, "{} parts", split.parts.len());
        for (part, items) in &split.parts {
            assert!(part.encoded_len() <= 5_000, "{}", part.encoded_len());
            let counted: usize = part.resource_spans[0]
                .scope_spans
                .iter()
                .map(|s| s.spans.len())
                .sum();
            assert_eq!(counted as u64, *items);
            assert_eq!(part.resource_spans.len(), 1);
            let resource = part.resource_spans[0].resource.as_ref().expect("resource");
            assert_eq!(resource.attributes[0].key, "service.name");
            for scope in &part.resource_spans[0].scope_spans {
                let name = &scope.scope.as_ref().expect("scope").name;
                assert!(name.starts_with("scope"), "{name}");
                assert!(!scope.spans.is_empty());
            }
        }
        let expected: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        assert_eq!(names(&split.parts), expected, "every span once, in order");
        assert_eq!(split.cut, 0);
    }

    #[test]
    fn one_oversized_span_is_cut_to_fit_and_its_neighbours_are_untouched() {
        let spans = vec![
            span("small", 100),
            span("huge", 200_000),
            span("small2", 100),
        ];
        let split = request(spans, 1).split(50_000);
        assert_eq!(split.cut, 1);
        assert_eq!(names(&split.parts), ["small", "huge", "small2"]);
        for (part, _) in &split.parts {
            assert!(part.encoded_len() <= 50_000, "{}", part.encoded_len());
        }
        let all: Vec<&Span> = split
            .parts
            .iter()
            .flat_map(|(p, _)| &p.resource_spans[0].scope_spans[0].spans)
            .collect();
        let value_len =
            |s: &Span| match &s.attributes[0].value.as_ref().and_then(|v| v.value.clone()) {
                Some(any_value::Value::StringValue(v)) => v.len(),
                _ => 0,
            };
        assert_eq!(value_len(all[0]), 100);
        assert!(value_len(all[1]) < 50_000 && value_len(all[1]) > 0);
        assert_eq!(all[1].attributes[0].key, "url.path", "keys stay");
        assert_eq!(value_len(all[2]), 100);
    }

    #[test]
    fn values_are_cut_at_a_char_boundary() {
        let mut v = vec![kv("k", "é".repeat(10))];
        cut_values(&mut v, 5);
        match &v[0].value.as_ref().and_then(|v| v.value.clone()) {
            Some(any_value::Value::StringValue(s)) => assert_eq!(s, "éé"),
            other => panic!("{other:?}"),
        }
    }
}
