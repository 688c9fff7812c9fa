//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 text of a collected snapshot, per the
//! OpenTelemetry "Prometheus and OpenMetrics compatibility" rules:
//!
//! - names: characters outside `[a-zA-Z0-9_:]` become `_`, runs of `_` collapse, a leading digit
//!   gets a `_` prefix; the unit follows as a word (`s` → `_seconds`, `By` → `_bytes`,
//!   `By/s` → `_bytes_per_second`; `{annotations}` are dropped; `1` on a gauge → `_ratio`) unless
//!   the name already ends with it;
//! - monotonic sums are counters with `_total`; other sums and gauges are gauges; explicit-bucket
//!   histograms are histograms (`_bucket` with `le`, `_sum`, `_count`); exponential histograms
//!   have no classic text form and are left out (OTLP carries them);
//! - attributes become labels (sanitised like names; keys that collide are joined with `;`), plus
//!   `otel_scope_name` and `otel_scope_version`; the resource becomes one `target_info` series;
//! - a gauge whose name would end in a suffix reserved for histograms (`_count`, `_sum`,
//!   `_bucket`) gets its unit annotation as a word (`process.thread.count` `{thread}` →
//!   `process_thread_count_threads`), or `_value`, so no scraper reads it as part of a histogram.
//!
//! Families with one name from several scopes are merged; a name reused with another type is
//! left out of the later scope, never emitted twice.
//!
//! Rendered here rather than with opentelemetry-prometheus (0.33.1): that exporter is a meter
//! reader of its own (every measurement would be aggregated a second time, beside the OTLP
//! reader this reads from), it goes through the `prometheus` crate's registry, and it writes no
//! OpenMetrics exemplars (its source: "consider supporting exemplars when `prometheus` crate has
//! the feature"), which lookout's latency histograms carry.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lookout::metrics::exemplars;
use lookout::opentelemetry::{KeyValue, Value};
use lookout::opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Metric, MetricData, ResourceMetrics,
};

/// The two text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it is accepted with a weight at
    /// least that of plain text, else the 0.0.4 text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut open = None::<f32>;
        let mut text = None::<f32>;
        for (media, q) in lookout::__shared::weighted(accept) {
            let slot = match media.to_ascii_lowercase().as_str() {
                "application/openmetrics-text" => &mut open,
                "text/plain" | "*/*" => &mut text,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |s| s.max(q)));
        }
        match (open, text) {
            (Some(o), t) if o > 0.0 && o >= t.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family: samples already formatted, one line each without the name.
#[derive(Debug)]
struct Family {
    kind: Kind,
    help: String,
    unit: Option<String>,
    samples: Vec<String>,
}

/// Renders `snapshot` in `format`.
pub fn render(snapshot: &ResourceMetrics, format: Format) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for scope in snapshot.scope_metrics() {
        let mut scope_labels = vec![(
            "otel_scope_name".to_owned(),
            scope.scope().name().to_owned(),
        )];
        if let Some(v) = scope.scope().version() {
            scope_labels.push(("otel_scope_version".to_owned(), v.to_owned()));
        }
        for metric in scope.metrics() {
            add(&mut families, metric, &scope_labels, format);
        }
    }
    let mut out = String::with_capacity(4096);
    for (name, family) in &families {
        write_family(&mut out, name, family, format);
    }
    target_info(&mut out, snapshot, format);
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn target_info(out: &mut String, snapshot: &ResourceMetrics, format: Format) {
    let labels: Vec<(String, String)> = snapshot
        .resource()
        .iter()
        .map(|(k, v)| (label_name(k.as_str()), value_text(v)))
        .collect();
    if labels.is_empty() {
        return;
    }
    let sample = format!("{} 1", label_set(&merge_labels(labels)));
    match format {
        Format::Text => {
            out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
        }
        // OpenMetrics has an info type: family `target`, sample `target_info`.
        Format::OpenMetrics => {
            out.push_str("# HELP target Target metadata\n# TYPE target info\n");
        }
    }
    let _ = writeln!(out, "target_info{sample}");
}

fn write_family(out: &mut String, name: &str, family: &Family, format: Format) {
    let base = match (format, family.kind) {
        (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    let _ = writeln!(out, "# HELP {base} {}", escape_help(&family.help));
    let _ = writeln!(out, "# TYPE {base} {}", family.kind.as_str());
    if format == Format::OpenMetrics
        && let Some(unit) = &family.unit
    {
        let _ = writeln!(out, "# UNIT {base} {unit}");
    }
    for sample in &family.samples {
        let _ = writeln!(out, "{name}{sample}");
    }
}

fn add(
    families: &mut BTreeMap<String, Family>,
    metric: &Metric,
    scope: &[(String, String)],
    format: Format,
) {
    let Some((kind, unit_word)) = classify(metric) else {
        return;
    };
    let name = prometheus_name(metric.name(), metric.unit(), kind);
    let mut samples = Vec::new();
    let labels = |attrs: &mut dyn Iterator<Item = &KeyValue>| -> Vec<(String, String)> {
        let mut l: Vec<(String, String)> = attrs
            .map(|kv| (label_name(kv.key.as_str()), value_text(&kv.value)))
            .collect();
        l.extend(scope.iter().cloned());
        merge_labels(l)
    };
    macro_rules! scalar {
        ($points:expr) => {
            for p in $points {
                let l = labels(&mut p.attributes());
                samples.push(format!("{} {}", label_set(&l), p.value().text()));
            }
        };
    }
    macro_rules! histogram {
        ($points:expr) => {
            for p in $points {
                let l = labels(&mut p.attributes());
                let mut cumulative = 0u64;
                let bounds: Vec<f64> = p.bounds().collect();
                // Exemplars exist in OpenMetrics only, and only where lookout kept them.
                let exemplars = (format == Format::OpenMetrics)
                    .then(|| exemplars::find(metric.name(), p.attributes()))
                    .flatten()
                    .filter(|r| r.bounds() == bounds.as_slice());
                for (i, n) in p.bucket_counts().enumerate() {
                    cumulative += n;
                    let le = bounds.get(i).map_or("+Inf".to_owned(), |b| float(*b));
                    let mut with_le = l.clone();
                    with_le.push(("le".to_owned(), le));
                    let mut sample = format!("_bucket{} {cumulative}", label_set(&with_le));
                    if let Some(e) = exemplars.as_ref().and_then(|r| r.exemplar(i)) {
                        let _ = write!(
                            sample,
                            " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {:.3}",
                            e.trace_id,
                            e.span_id,
                            float(e.value),
                            e.unix_seconds
                        );
                    }
                    samples.push(sample);
                }
                samples.push(format!("_sum{} {}", label_set(&l), p.sum().text()));
                samples.push(format!("_count{} {}", label_set(&l), p.count()));
            }
        };
    }
    match metric.data() {
        AggregatedMetrics::F64(MetricData::Sum(s)) => scalar!(s.data_points()),
        AggregatedMetrics::U64(MetricData::Sum(s)) => scalar!(s.data_points()),
        AggregatedMetrics::I64(MetricData::Sum(s)) => scalar!(s.data_points()),
        AggregatedMetrics::F64(MetricData::Gauge(g)) => scalar!(g.data_points()),
        AggregatedMetrics::U64(MetricData::Gauge(g)) => scalar!(g.data_points()),
        AggregatedMetrics::I64(MetricData::Gauge(g)) => scalar!(g.data_points()),
        AggregatedMetrics::F64(MetricData::Histogram(h)) => histogram!(h.data_points()),
        AggregatedMetrics::U64(MetricData::Histogram(h)) => histogram!(h.data_points()),
        AggregatedMetrics::I64(MetricData::Histogram(h)) => histogram!(h.data_points()),
        _ => return,
    }
    match families.get_mut(&name) {
        Some(f) if f.kind == kind => f.samples.extend(samples),
        Some(_) => {} // same name, other type: never emit a name twice
        None => {
            families.insert(
                name,
                Family {
                    kind,
                    help: if metric.description().is_empty() {
                        metric.name().to_owned()
                    } else {
                        metric.description().to_owned()
                    },
                    unit: unit_word,
                    samples,
                },
            );
        }
    }
}

/// The Prometheus type and the unit word of a metric (`None`: not representable).
fn classify(metric: &Metric) -> Option<(Kind, Option<String>)> {
    let kind = match metric.data() {
        AggregatedMetrics::F64(MetricData::Sum(s)) => sum_kind(s.is_monotonic()),
        AggregatedMetrics::U64(MetricData::Sum(s)) => sum_kind(s.is_monotonic()),
        AggregatedMetrics::I64(MetricData::Sum(s)) => sum_kind(s.is_monotonic()),
        AggregatedMetrics::F64(MetricData::Gauge(_))
        | AggregatedMetrics::U64(MetricData::Gauge(_))
        | AggregatedMetrics::I64(MetricData::Gauge(_)) => Kind::Gauge,
        AggregatedMetrics::F64(MetricData::Histogram(_))
        | AggregatedMetrics::U64(MetricData::Histogram(_))
        | AggregatedMetrics::I64(MetricData::Histogram(_)) => Kind::Histogram,
        _ => return None,
    };
    Some((kind, unit_word(metric.unit(), kind)))
}

fn sum_kind(monotonic: bool) -> Kind {
    if monotonic {
        Kind::Counter
    } else {
        Kind::Gauge
    }
}

fn unit_name(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_name(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The unit as a name suffix word, `None` for no suffix.
fn unit_word(unit: &str, kind: Kind) -> Option<String> {
    // `{request}`-style annotations carry no unit.
    let mut unit = unit.to_owned();
    while let (Some(a), Some(b)) = (unit.find('{'), unit.find('}')) {
        if b < a {
            break;
        }
        unit.replace_range(a..=b, "");
    }
    let unit = unit.trim();
    if unit.is_empty() {
        return None;
    }
    if unit == "1" {
        return (kind == Kind::Gauge).then(|| "ratio".to_owned());
    }
    let word = match unit.split_once('/') {
        Some((num, per)) => {
            let num = if num.is_empty() {
                String::new()
            } else {
                unit_name(num).map_or_else(|| num.to_owned(), str::to_owned)
            };
            let per = per_unit_name(per).map_or_else(|| per.to_owned(), str::to_owned);
            if num.is_empty() {
                format!("per_{per}")
            } else {
                format!("{num}_per_{per}")
            }
        }
        None => unit_name(unit).map_or_else(|| unit.to_owned(), str::to_owned),
    };
    let word = sanitize(&word);
    (!word.is_empty()).then_some(word)
}

fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Prometheus name of an OpenTelemetry metric.
fn prometheus_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut out = sanitize(name);
    if let Some(word) = unit_word(unit, kind)
        && !out.ends_with(&format!("_{word}"))
        && out != word
    {
        out = format!("{out}_{word}");
    }
    if kind != Kind::Histogram
        && ["_count", "_sum", "_bucket"]
            .iter()
            .any(|s| out.ends_with(s))
    {
        out.push('_');
        out.push_str(&annotation_word(unit).unwrap_or_else(|| "value".to_owned()));
    }
    if kind == Kind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

/// `{thread}` → `threads`.
fn annotation_word(unit: &str) -> Option<String> {
    let a = unit.find('{')?;
    let b = unit[a..].find('}')? + a;
    let word = sanitize(&unit[a + 1..b]);
    (!word.is_empty()).then(|| {
        if word.ends_with('s') {
            word
        } else {
            format!("{word}s")
        }
    })
}

fn label_name(key: &str) -> String {
    let s = sanitize(key);
    if s.starts_with('_') && !s.starts_with("__") && key.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key{s}")
    } else {
        s
    }
}

/// Sorted, with colliding keys joined by `;` (values in the order of their original keys).
fn merge_labels(mut labels: Vec<(String, String)>) -> Vec<(String, String)> {
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(labels.len());
    for (k, v) in labels {
        match out.last_mut() {
            Some((lk, lv)) if *lk == k => {
                lv.push(';');
                lv.push_str(&v);
            }
            _ => out.push((k, v)),
        }
    }
    out
}

fn label_set(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    out.push('}');
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn value_text(v: &Value) -> String {
    v.as_str().into_owned()
}

trait Num: Copy {
    fn text(self) -> String;
}
impl Num for u64 {
    fn text(self) -> String {
        self.to_string()
    }
}
impl Num for i64 {
    fn text(self) -> String {
        self.to_string()
    }
}
impl Num for f64 {
    fn text(self) -> String {
        float(self)
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_rules() {
        assert_eq!(
            prometheus_name("http.server.request.duration", "s", Kind::Histogram),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            prometheus_name("function.calls", "{call}", Kind::Counter),
            "function_calls_total"
        );
        assert_eq!(
            prometheus_name("process.memory.usage", "By", Kind::Gauge),
            "process_memory_usage_bytes"
        );
        assert_eq!(
            prometheus_name("process.cpu.utilization", "1", Kind::Gauge),
            "process_cpu_utilization_ratio"
        );
        assert_eq!(
            prometheus_name("net.io", "By/s", Kind::Gauge),
            "net_io_bytes_per_second"
        );
        assert_eq!(
            prometheus_name("process.thread.count", "{thread}", Kind::Gauge),
            "process_thread_count_threads"
        );
        assert_eq!(
            prometheus_name("weird..name--x", "", Kind::Gauge),
            "weird_name_x"
        );
        assert_eq!(prometheus_name("2xx", "", Kind::Counter), "_2xx_total");
        assert_eq!(prometheus_name("x.seconds", "s", Kind::Gauge), "x_seconds");
        assert_eq!(
            prometheus_name("requests_total", "", Kind::Counter),
            "requests_total"
        );
    }

    #[test]
    fn exemplars_follow_their_bucket_in_openmetrics_only() {
        use lookout::opentelemetry::metrics::MeterProvider as _;
        use lookout::opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let metrics = lookout::metrics::Metrics::in_memory(
            lookout::opentelemetry_sdk::Resource::builder_empty().build(),
        );
        let histogram = metrics
            .provider()
            .meter("test")
            .f64_histogram("exemplar.test.duration")
            .with_unit("s")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        let attributes = [KeyValue::new("route", "/x")];
        histogram.record(0.5, &attributes);
        let reservoir =
            exemplars::reservoir("exemplar.test.duration", &attributes, &[0.1, 1.0]).expect("room");
        let span = SpanContext::new(
            TraceId::from_bytes([0xab; 16]),
            SpanId::from_bytes([0xcd; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        reservoir.offer(0.5, 1, || Some(span));
        let snapshot = metrics.collect().expect("collect");
        let open = render(&snapshot, Format::OpenMetrics);
        let bucket = open
            .lines()
            .find(|l| {
                l.starts_with("exemplar_test_duration_seconds_bucket") && l.contains("le=\"1.0\"")
            })
            .expect("the 1.0 bucket");
        assert!(
            bucket.contains(&format!(
                "1 # {{trace_id=\"{}\",span_id=\"{}\"}} 0.5 ",
                "ab".repeat(16),
                "cd".repeat(8)
            )),
            "{bucket}"
        );
        assert_eq!(
            open.matches("trace_id").count(),
            1,
            "one bucket has one:\n{open}"
        );
        assert!(
            !render(&snapshot, Format::Text).contains("trace_id"),
            "0.0.4 text has no exemplars"
        );
    }

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        // what Prometheus 2.x sends
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0.2, text/plain")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    #[test]
    fn labels_are_escaped_and_merged() {
        let l = merge_labels(vec![
            ("b".into(), "x\"y\\z\n".into()),
            ("a".into(), "1".into()),
            ("a".into(), "2".into()),
        ]);
        assert_eq!(label_set(&l), "{a=\"1;2\",b=\"x\\\"y\\\\z\\n\"}");
        assert_eq!(label_name("http.route"), "http_route");
        assert_eq!(label_name("0day"), "key_0day");
        assert_eq!(float(0.005), "0.005");
        assert_eq!(float(1.0), "1.0");
    }
}
