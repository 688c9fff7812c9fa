//! Recent traces: the latest `traces`, every recent error trace, the slowest trace of each span
//! name; per span name, counts per latency bucket (zPages' tracez); spans running now, counted
//! only while someone looks.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;

use super::{ViewCounts, ViewOptions, text_bytes};
use crate::redact::Redaction;

/// The upper bounds of the span summary's latency buckets (zPages' tracez): under 10 µs,
/// 100 µs, 1 ms, 10 ms, 100 ms, 1 s, 10 s, 100 s, and above.
pub const LATENCY_BUCKETS: [Duration; 8] = [
    Duration::from_micros(10),
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(100),
];

/// Span names summarised; past this, new names are counted under `(other names)`.
const MAX_NAMES: usize = 500;
const OTHER_NAMES: &str = "(other names)";

/// A span's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanStatus {
    /// Not set.
    Unset,
    /// Set to OK.
    Ok,
    /// An error, with its description.
    Error(String),
}

/// One event of a span.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventRecord {
    /// Its name (`exception` for a recorded error).
    pub name: String,
    /// When.
    pub time: SystemTime,
    /// Its attributes, values as text (redacted).
    pub attributes: Vec<(String, String)>,
}

/// One span as the view keeps it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SpanRecord {
    /// Its trace.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent (`SpanId::INVALID` for a root).
    pub parent_span_id: SpanId,
    /// Its name.
    pub name: String,
    /// Its kind: `internal`, `server`, `client`, `producer` or `consumer`.
    pub kind: &'static str,
    /// Its instrumentation scope.
    pub scope: String,
    /// When it started.
    pub start: SystemTime,
    /// How long it lasted.
    pub duration: Duration,
    /// Its status.
    pub status: SpanStatus,
    /// Its attributes, values as text (redacted).
    pub attributes: Vec<(String, String)>,
    /// Its events.
    pub events: Vec<EventRecord>,
}

impl SpanRecord {
    /// Whether it ended in error.
    pub fn is_error(&self) -> bool {
        matches!(self.status, SpanStatus::Error(_))
    }

    fn bytes(&self) -> usize {
        let kv = |a: &[(String, String)]| -> usize {
            a.iter().map(|(k, v)| text_bytes(k) + text_bytes(v)).sum()
        };
        std::mem::size_of::<SpanRecord>()
            + text_bytes(&self.name)
            + text_bytes(&self.scope)
            + kv(&self.attributes)
            + self
                .events
                .iter()
                .map(|e| std::mem::size_of::<EventRecord>() + text_bytes(&e.name) + kv(&e.attributes))
                .sum::<usize>()
    }
}

/// One trace in a list.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TraceSummary {
    /// Its id.
    pub trace_id: TraceId,
    /// The root span's name, or the earliest span's when the root is not held (yet).
    pub name: String,
    /// The earliest start held.
    pub start: SystemTime,
    /// From the earliest start to the latest end held.
    pub duration: Duration,
    /// Spans held.
    pub spans: usize,
    /// Spans in error.
    pub errors: usize,
    /// Whether the root span is held.
    pub complete: bool,
    /// Spans of it that were not kept (`spans_per_trace`).
    pub spans_skipped: u64,
}

/// Which traces to list; every field left empty matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFilter {
    /// A span of the trace has a name containing this (case-insensitive).
    pub name: Option<String>,
    /// Only traces with a span in error.
    pub errors_only: bool,
    /// Only traces at least this long.
    pub min_duration: Option<Duration>,
    /// A span's attribute key or value, or an event's, contains this (case-insensitive).
    pub text: Option<String>,
    /// At most this many (default 100 when zero).
    pub limit: usize,
}

/// Per span name, what the summary page shows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SpanNameStats {
    /// The span name.
    pub name: String,
    /// Spans ended, per [`LATENCY_BUCKETS`] (the last: above the last bound).
    pub latency: [u64; 9],
    /// Spans ended in error.
    pub errors: u64,
    /// Spans started and not ended now (counted only while the summary page is watched).
    pub running: usize,
    /// The slowest span kept: its duration and trace.
    pub slowest: Option<(Duration, TraceId)>,
}

impl SpanNameStats {
    /// Spans ended.
    pub fn total(&self) -> u64 {
        self.latency.iter().sum()
    }
}

#[derive(Default)]
struct Entry {
    spans: Vec<SpanRecord>,
    bytes: usize,
    errors: usize,
    skipped: u64,
    /// Arrival, for the list order.
    seq: u64,
}

#[derive(Default)]
struct NameStats {
    latency: [u64; 9],
    errors: u64,
    slowest: Option<(Duration, TraceId)>,
}

pub(crate) struct Traces {
    max_traces: usize,
    max_errors: usize,
    max_spans: usize,
    max_bytes: usize,
    per_second: u32,
    map: HashMap<TraceId, Entry>,
    /// Arrival order of the traces held (ids may be stale: checked against `map`).
    recent: VecDeque<(u64, TraceId)>,
    /// Recent error traces, kept while `recent` moves on.
    errors: VecDeque<TraceId>,
    names: HashMap<Cow<'static, str>, NameStats>,
    bytes: usize,
    seq: u64,
    /// New traces admitted this second.
    window: (u64, u32),
    seen: u64,
    skipped: u64,
    version: u64,
}

impl Traces {
    pub(crate) fn new(o: &ViewOptions) -> Self {
        Traces {
            max_traces: o.traces.max(1),
            max_errors: o.error_traces,
            max_spans: o.spans_per_trace.max(1),
            max_bytes: o.trace_bytes,
            per_second: o.traces_per_second,
            map: HashMap::new(),
            recent: VecDeque::new(),
            errors: VecDeque::new(),
            names: HashMap::new(),
            bytes: 0,
            seq: 0,
            window: (0, 0),
            seen: 0,
            skipped: 0,
            version: 0,
        }
    }

    pub(crate) fn add(&mut self, batch: &[SpanData], redaction: &Redaction) {
        self.begin_batch();
        for span in batch {
            self.add_data(span, redaction);
        }
        self.end_batch();
    }

    /// A batch of spans encoded as they ended (lookout's OTLP/protobuf span processor): each is
    /// read for its summary, and decoded only when it is kept.
    #[cfg(any(feature = "grpc", feature = "http"))]
    pub(crate) fn add_encoded(&mut self, batch: &crate::export::EncodedSpans, redaction: &Redaction) {
        use crate::export::EncodedSpan;
        self.begin_batch();
        for (item, bytes) in batch.pieces() {
            match item {
                EncodedSpan::Whole(span) => self.add_data(span, redaction),
                EncodedSpan::Encoded { scope, .. } => {
                    let Some(glance) = crate::export::glance(bytes) else {
                        continue;
                    };
                    let duration = Duration::from_nanos(glance.end.saturating_sub(glance.start));
                    self.add_one(glance.name, duration, glance.error, glance.trace_id, || {
                        encoded::record(bytes, scope.name(), duration, redaction)
                    });
                }
            }
        }
        self.end_batch();
    }

    fn begin_batch(&mut self) {
        let second = unix_secs(SystemTime::now());
        if self.window.0 != second {
            self.window = (second, 0);
        }
    }

    fn end_batch(&mut self) {
        self.version += 1;
        self.evict();
    }

    fn add_data(&mut self, span: &SpanData, redaction: &Redaction) {
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let error = matches!(span.status, Status::Error { .. });
        let trace_id = span.span_context.trace_id();
        self.add_one(&span.name, duration, error, trace_id, || {
            Some(record(span, duration, redaction))
        });
    }

    /// Counts a span in the summary, and keeps its record (made only then) when it is admitted.
    fn add_one(
        &mut self,
        name: &str,
        duration: Duration,
        error: bool,
        trace_id: TraceId,
        record: impl FnOnce() -> Option<SpanRecord>,
    ) {
        self.seen += 1;
        let slowest = self.summarise(name, duration, error, trace_id);
        if !self.admit(trace_id, error, slowest) {
            self.skipped += 1;
            return;
        }
        if let Some(record) = record() {
            self.insert(record);
        }
    }

    /// Counts the span in its name's summary; whether it is the slowest of its name so far.
    fn summarise(&mut self, name: &str, d: Duration, error: bool, trace: TraceId) -> bool {
        let name = if self.names.len() >= MAX_NAMES && !self.names.contains_key(name) {
            OTHER_NAMES
        } else {
            name
        };
        if !self.names.contains_key(name) {
            self.names.insert(Cow::Owned(name.to_owned()), NameStats::default());
        }
        let Some(stats) = self.names.get_mut(name) else {
            return false;
        };
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| d < *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        stats.latency[bucket] += 1;
        stats.errors += u64::from(error);
        if stats.slowest.is_some_and(|(slowest, _)| d <= slowest) {
            return false;
        }
        let before = stats.slowest.replace((d, trace));
        if let Some((_, old)) = before.filter(|(_, old)| *old != trace) {
            self.release(old);
        }
        true
    }

    /// Whether the span is stored: its trace is held already, or it is an error, or the
    /// slowest of its name, or a new trace within this second's share.
    fn admit(&mut self, trace: TraceId, error: bool, slowest: bool) -> bool {
        if let Some(e) = self.map.get(&trace) {
            return e.spans.len() < self.max_spans;
        }
        if error || slowest {
            return true;
        }
        if self.window.1 < self.per_second {
            self.window.1 += 1;
            return true;
        }
        false
    }

    fn insert(&mut self, record: SpanRecord) {
        let id = record.trace_id;
        let bytes = record.bytes();
        let error = record.is_error();
        let entry = match self.map.entry(id) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                self.seq += 1;
                self.recent.push_back((self.seq, id));
                v.insert(Entry {
                    seq: self.seq,
                    ..Entry::default()
                })
            }
        };
        if entry.spans.len() >= self.max_spans {
            entry.skipped += 1;
            self.skipped += 1;
            return;
        }
        if error {
            if entry.errors == 0 {
                self.errors.push_back(id);
            }
            entry.errors += 1;
        }
        entry.bytes += bytes;
        entry.spans.push(record);
        self.bytes += bytes;
    }

    fn pinned(&self, id: TraceId) -> bool {
        self.errors.contains(&id) || self.names.values().any(|n| n.slowest.is_some_and(|(_, t)| t == id))
    }

    /// Whether a trace arrived among the latest `max_traces`.
    fn recent(&self, seq: u64) -> bool {
        seq > self.seq.saturating_sub(self.max_traces as u64)
    }

    /// Removes `id` unless it is recent or pinned.
    fn release(&mut self, id: TraceId) {
        let Some(seq) = self.map.get(&id).map(|e| e.seq) else { return };
        if !self.recent(seq) && !self.pinned(id) {
            self.remove(id);
        }
    }

    /// Applies the count and byte bounds: traces older than the latest `max_traces` go unless
    /// they are among the recent error traces or the slowest of a name; past the byte bound the
    /// oldest go whatever they are.
    fn evict(&mut self) {
        while self.errors.len() > self.max_errors {
            if let Some(id) = self.errors.pop_front() {
                self.release(id);
            }
        }
        while let Some(&(seq, id)) = self.recent.front() {
            if self.recent(seq) {
                break;
            }
            self.recent.pop_front();
            if self.map.get(&id).is_some_and(|e| e.seq == seq) {
                self.release(id);
            }
        }
        while self.bytes > self.max_bytes {
            let Some(oldest) = self.map.iter().min_by_key(|(_, e)| e.seq).map(|(id, _)| *id)
            else {
                break;
            };
            self.remove(oldest);
        }
    }

    fn remove(&mut self, id: TraceId) {
        if let Some(e) = self.map.remove(&id) {
            self.bytes = self.bytes.saturating_sub(e.bytes);
        }
        self.errors.retain(|t| *t != id);
    }

    pub(crate) fn list(&self, f: &TraceFilter) -> Vec<TraceSummary> {
        let limit = if f.limit == 0 { 100 } else { f.limit };
        let name = f.name.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
        let text = f.text.as_deref().map(str::to_lowercase).filter(|s| !s.is_empty());
        let mut entries: Vec<(&TraceId, &Entry)> = self.map.iter().collect();
        entries.sort_by_key(|(_, e)| std::cmp::Reverse(e.seq));
        entries
            .into_iter()
            .filter(|(_, e)| !f.errors_only || e.errors > 0)
            .filter(|(_, e)| {
                name.as_deref().is_none_or(|n| {
                    e.spans.iter().any(|s| s.name.to_lowercase().contains(n))
                })
            })
            .filter(|(_, e)| text.as_deref().is_none_or(|t| e.spans.iter().any(|s| mentions(s, t))))
            .map(|(id, e)| summary(*id, e))
            .filter(|s| f.min_duration.is_none_or(|m| s.duration >= m))
            .take(limit)
            .collect()
    }

    pub(crate) fn trace(&self, id: TraceId) -> Vec<SpanRecord> {
        let mut spans = self.map.get(&id).map(|e| e.spans.clone()).unwrap_or_default();
        spans.sort_by_key(|s| s.start);
        spans
    }

    pub(crate) fn names(&self, running: &HashMap<String, usize>) -> Vec<SpanNameStats> {
        let mut out: Vec<SpanNameStats> = self
            .names
            .iter()
            .map(|(name, s)| SpanNameStats {
                name: name.to_string(),
                latency: s.latency,
                errors: s.errors,
                running: running.get(name.as_ref()).copied().unwrap_or(0),
                slowest: s.slowest,
            })
            .collect();
        for (name, n) in running {
            if !self.names.contains_key(name.as_str()) {
                out.push(SpanNameStats {
                    name: name.clone(),
                    latency: [0; 9],
                    errors: 0,
                    running: *n,
                    slowest: None,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub(crate) fn count(&self, c: &mut ViewCounts) {
        c.spans_seen = self.seen;
        c.spans_skipped = self.skipped;
        c.traces = self.map.len();
        c.trace_bytes = self.bytes;
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

fn summary(id: TraceId, e: &Entry) -> TraceSummary {
    let start = e.spans.iter().map(|s| s.start).min().unwrap_or(SystemTime::UNIX_EPOCH);
    let end = e
        .spans
        .iter()
        .map(|s| s.start + s.duration)
        .max()
        .unwrap_or(start);
    let root = e.spans.iter().find(|s| s.parent_span_id == SpanId::INVALID);
    let name = root
        .or_else(|| e.spans.iter().min_by_key(|s| s.start))
        .map(|s| s.name.clone())
        .unwrap_or_default();
    TraceSummary {
        trace_id: id,
        name,
        start,
        duration: end.duration_since(start).unwrap_or_default(),
        spans: e.spans.len(),
        errors: e.errors,
        complete: root.is_some(),
        spans_skipped: e.skipped,
    }
}

fn mentions(s: &SpanRecord, text: &str) -> bool {
    let has = |a: &[(String, String)]| {
        a.iter()
            .any(|(k, v)| k.to_lowercase().contains(text) || v.to_lowercase().contains(text))
    };
    has(&s.attributes)
        || s.events
            .iter()
            .any(|e| e.name.to_lowercase().contains(text) || has(&e.attributes))
        || matches!(&s.status, SpanStatus::Error(d) if d.to_lowercase().contains(text))
}

fn record(span: &SpanData, duration: Duration, redaction: &Redaction) -> SpanRecord {
    let attributes = |kvs: &[opentelemetry::KeyValue]| -> Vec<(String, String)> {
        kvs.iter()
            .map(|kv| {
                let key = kv.key.as_str();
                (key.to_owned(), redaction.shown(key, kv.value.to_string()))
            })
            .collect()
    };
    SpanRecord {
        trace_id: span.span_context.trace_id(),
        span_id: span.span_context.span_id(),
        parent_span_id: span.parent_span_id,
        name: span.name.to_string(),
        kind: match span.span_kind {
            SpanKind::Client => "client",
            SpanKind::Server => "server",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Internal => "internal",
        },
        scope: span.instrumentation_scope.name().to_owned(),
        start: span.start_time,
        duration,
        status: match &span.status {
            Status::Unset => SpanStatus::Unset,
            Status::Ok => SpanStatus::Ok,
            Status::Error { description } => {
                SpanStatus::Error(redaction.shown("", description.to_string()))
            }
        },
        attributes: attributes(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| EventRecord {
                name: e.name.to_string(),
                time: e.timestamp,
                attributes: attributes(&e.attributes),
            })
            .collect(),
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Spans started and not ended, per name: tracked only while the summary page is watched, so a
/// span costs one relaxed load at start and one at end when no one looks.
pub(crate) struct Running {
    watching: AtomicBool,
    /// Spans in `spans`: non-zero makes span ends look them up.
    tracked: AtomicUsize,
    state: Mutex<RunningState>,
}

struct RunningState {
    until: Option<Instant>,
    /// Made at the first watch.
    spans: Option<HashMap<SpanId, String>>,
}

/// At most this many running spans are tracked.
const MAX_RUNNING: usize = 10_000;

pub(crate) static RUNNING: Running = Running {
    watching: AtomicBool::new(false),
    tracked: AtomicUsize::new(0),
    state: Mutex::new(RunningState {
        until: None,
        spans: None,
    }),
};

impl Running {
    pub(crate) fn watch(&self, for_how_long: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.until = Some(Instant::now() + for_how_long);
        self.watching.store(true, Relaxed);
    }

    /// At span start (application thread).
    #[inline]
    pub(crate) fn started(&self, span: &opentelemetry_sdk::trace::Span) {
        if !self.watching.load(Relaxed) {
            return;
        }
        self.start_slow(span);
    }

    #[cold]
    fn start_slow(&self, span: &opentelemetry_sdk::trace::Span) {
        let Some(data) = span.exported_data() else { return };
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.until.is_none_or(|u| Instant::now() > u) {
            s.until = None;
            self.watching.store(false, Relaxed);
            return;
        }
        let spans = s.spans.get_or_insert_with(HashMap::new);
        if spans.len() < MAX_RUNNING {
            spans.insert(data.span_context.span_id(), data.name.into_owned());
            self.tracked.store(spans.len(), Relaxed);
        }
    }

    /// At span end (application thread).
    #[inline]
    pub(crate) fn ended(&self, id: SpanId) {
        if self.tracked.load(Relaxed) == 0 {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(spans) = s.spans.as_mut() {
            spans.remove(&id);
            self.tracked.store(spans.len(), Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> HashMap<String, usize> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = HashMap::new();
        for name in s.spans.iter().flat_map(|m| m.values()) {
            *out.entry(name.clone()).or_default() += 1;
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};

    /// A sampled root span of `ms` milliseconds with one 1,000-byte attribute (also the span
    /// processor's tests' span).
    pub(crate) fn span(trace: u128, span: u64, name: &'static str, ms: u64, error: bool) -> SpanData {
        let start = SystemTime::now();
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: start + Duration::from_millis(ms),
            attributes: vec![KeyValue::new("payload", "x".repeat(1_000))],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: if error {
                Status::error("boom")
            } else {
                Status::Unset
            },
            instrumentation_scope: Default::default(),
        }
    }

    fn options() -> ViewOptions {
        ViewOptions {
            traces: 1_000,
            traces_per_second: 1_000,
            ..ViewOptions::default()
        }
    }

    #[test]
    fn the_byte_bound_holds_whatever_is_pinned() {
        let o = ViewOptions {
            trace_bytes: 20_000,
            ..options()
        };
        let mut t = Traces::new(&o);
        let redaction = Redaction::default();
        for i in 1..=100u64 {
            // Every one an error and a new slowest: all pinned, the bytes still rule.
            t.add(&[span(u128::from(i), i, "s", i, true)], &redaction);
            assert!(t.bytes <= 20_000, "{} bytes held", t.bytes);
        }
        assert!(!t.map.is_empty() && t.map.len() < 20, "{}", t.map.len());
        assert!(
            t.map.contains_key(&TraceId::from(100u128)),
            "the newest stays"
        );
    }

    #[test]
    fn spans_per_trace_and_new_traces_per_second_are_bounded_and_counted() {
        let o = ViewOptions {
            spans_per_trace: 3,
            traces_per_second: 2,
            ..options()
        };
        let mut t = Traces::new(&o);
        let redaction = Redaction::default();
        // One batch (the share is per second of arrival): five spans of trace 7, then ten fast,
        // ok traces, none the slowest of its name: only the second's share of new traces is kept.
        let batch: Vec<SpanData> = (1..=5)
            .map(|i| span(7, i, "child", 0, false))
            .chain((10..20u64).map(|i| span(u128::from(i), i, "child", 0, false)))
            .collect();
        t.add(&batch, &redaction);
        assert_eq!(t.trace(TraceId::from(7u128)).len(), 3);
        let mut c = ViewCounts::default();
        t.count(&mut c);
        assert_eq!(c.spans_seen, 15);
        // Trace 7 came in as the first (so slowest) `child`, outside the share; two more within.
        assert_eq!(c.traces, 3);
        assert_eq!(c.spans_skipped, 2 + 8);
        let names = t.names(&HashMap::new());
        assert_eq!(names[0].total(), 15, "the summary counts every span");
    }
}

/// The record of a span encoded as it ended (lookout's OTLP/protobuf span processor), decoded
/// with opentelemetry-proto's messages; its values were redacted when it was encoded, and are
/// shown as [`record`] shows the SDK's.
#[cfg(any(feature = "grpc", feature = "http"))]
mod encoded {
    use std::time::{Duration, UNIX_EPOCH};

    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry::{Array, StringValue, Value};
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message as _;

    use super::{EventRecord, SpanRecord, SpanStatus};
    use crate::redact::Redaction;

    pub(super) fn record(
        bytes: &[u8],
        scope: &str,
        duration: Duration,
        redaction: &Redaction,
    ) -> Option<SpanRecord> {
        let span = Span::decode(bytes).ok()?;
        let attributes = |kvs: &[KeyValue]| -> Vec<(String, String)> {
            kvs.iter()
                .map(|kv| (kv.key.clone(), redaction.shown(&kv.key, text(kv.value.as_ref()))))
                .collect()
        };
        let status = match span.status {
            Some(s) if s.code == 2 => SpanStatus::Error(redaction.shown("", s.message)),
            Some(s) if s.code == 1 => SpanStatus::Ok,
            _ => SpanStatus::Unset,
        };
        Some(SpanRecord {
            trace_id: TraceId::from_bytes(span.trace_id.as_slice().try_into().ok()?),
            span_id: SpanId::from_bytes(span.span_id.as_slice().try_into().ok()?),
            parent_span_id: span
                .parent_span_id
                .as_slice()
                .try_into()
                .map_or(SpanId::INVALID, SpanId::from_bytes),
            kind: match span.kind {
                2 => "server",
                3 => "client",
                4 => "producer",
                5 => "consumer",
                _ => "internal",
            },
            scope: scope.to_owned(),
            start: UNIX_EPOCH + Duration::from_nanos(span.start_time_unix_nano),
            duration,
            status,
            attributes: attributes(&span.attributes),
            events: span
                .events
                .iter()
                .map(|e| EventRecord {
                    name: e.name.clone(),
                    time: UNIX_EPOCH + Duration::from_nanos(e.time_unix_nano),
                    attributes: attributes(&e.attributes),
                })
                .collect(),
            name: span.name,
        })
    }

    /// A value as the SDK's `Value` displays it (the encoder writes only its kinds).
    fn text(value: Option<&AnyValue>) -> String {
        use any_value::Value as V;
        let value = match value.and_then(|v| v.value.as_ref()) {
            Some(V::StringValue(s)) => return s.clone(),
            Some(V::BoolValue(b)) => Value::Bool(*b),
            Some(V::IntValue(i)) => Value::I64(*i),
            Some(V::DoubleValue(f)) => Value::F64(*f),
            Some(V::ArrayValue(a)) => {
                let items = || a.values.iter().filter_map(|v| v.value.as_ref());
                match a.values.first().and_then(|v| v.value.as_ref()) {
                    Some(V::BoolValue(_)) => Value::Array(Array::Bool(
                        items().filter_map(|v| if let V::BoolValue(b) = v { Some(*b) } else { None }).collect(),
                    )),
                    Some(V::IntValue(_)) => Value::Array(Array::I64(
                        items().filter_map(|v| if let V::IntValue(i) = v { Some(*i) } else { None }).collect(),
                    )),
                    Some(V::DoubleValue(_)) => Value::Array(Array::F64(
                        items().filter_map(|v| if let V::DoubleValue(f) = v { Some(*f) } else { None }).collect(),
                    )),
                    _ => Value::Array(Array::String(
                        items()
                            .filter_map(|v| if let V::StringValue(s) = v { Some(StringValue::from(s.clone())) } else { None })
                            .collect(),
                    )),
                }
            }
            _ => return String::new(),
        };
        value.to_string()
    }
}
