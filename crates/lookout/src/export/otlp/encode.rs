//! Spans straight from the SDK's `SpanData` to the protobuf bytes of an OTLP
//! `ExportTraceServiceRequest`: redacted on the way and cut into parts under the request size
//! limit, in one walk over the batch.
//!
//! Why not opentelemetry-proto's messages, which the other signals and `http/json` still go
//! through: the conversion allocates a `String` for every key and string value and a `Vec` for
//! every id, event and attribute list of every span; then the request is walked again to redact,
//! measured again to be split, cloned for each gRPC attempt, and measured once more per nesting
//! level while prost encodes it. At 25,000 spans a second that was most of the service's CPU time
//! per exported span (BENCHMARKS.md, "CPU per exported span"). Here each span is written once,
//! from borrowed data, with prost's wire-format primitives (`prost::encoding`); the fields and
//! their values are opentelemetry-proto's conversion's (`transform::trace::tonic`), and the tests
//! decode what is written with opentelemetry-proto's messages and compare it with that conversion,
//! redaction and splitting included.
//!
//! A span that alone would not fit in a request (a value of megabytes) takes the old road:
//! converted, redacted and cut by [`super::split`].

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::Message as _;
use crate::redact::{REDACTED, REDACTED_COUNT, Redaction};
use crate::u64_fields::same_key;

/// An export request's parts, encoded, each with the number of spans it carries.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) parts: Vec<(Bytes, u64)>,
    /// Spans whose values were cut so that they fit.
    pub(crate) cut: u64,
}

/// The exporter's resource, encoded once (when the SDK hands it over), not for every batch.
#[derive(Debug, Clone)]
pub(crate) struct EncodedResource {
    /// The `Resource` message's bytes (field 1 of `ResourceSpans`).
    message: Vec<u8>,
    schema_url: String,
    /// For the rare span that takes the road through opentelemetry-proto's messages.
    resource: Resource,
}

impl EncodedResource {
    pub(crate) fn new(resource: &Resource) -> Self {
        let mut message = Vec::new();
        for (key, value) in resource.iter() {
            plain_attribute(&mut message, 1, key.as_str(), value);
        }
        Self {
            message,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
            resource: resource.clone(),
        }
    }
}

/// Encodes `batch` as export requests of at most `limit` bytes: one resource, the spans grouped by
/// instrumentation scope in the order each scope first appears, spans in their order. The tests'
/// reference for [`assemble`] (what lookout's span processor sends), checked itself against
/// opentelemetry-proto's conversion.
#[cfg(test)]
pub(crate) fn spans(
    batch: &[SpanData],
    resource: &EncodedResource,
    redaction: &Redaction,
    limit: usize,
) -> Parts {
    // Scopes in first-seen order, each with its spans (a batch has one or a few scopes).
    let mut groups: Vec<(&InstrumentationScope, Vec<&SpanData>)> = Vec::new();
    for span in batch {
        match groups
            .iter_mut()
            .find(|(scope, _)| **scope == span.instrumentation_scope)
        {
            Some((_, spans)) => spans.push(span),
            None => groups.push((&span.instrumentation_scope, vec![span])),
        }
    }
    let mut out = Writer {
        limit,
        resource,
        parts: Vec::new(),
        cut: 0,
        buf: Vec::with_capacity(batch.len().saturating_mul(256).min(limit)),
        items: 0,
        resource_spans: None,
        scope_spans: None,
    };
    let mut scratch = Vec::with_capacity(512);
    let mut keys = Keys::default();
    let mut redactor = Redactor {
        rules: redaction,
        count: 0,
        keys: &mut keys,
    };
    let mut redacted = 0;
    for (scope, spans) in groups {
        let scope_message = scope_message(scope);
        let scope_schema = scope.schema_url().unwrap_or_default();
        out.begin_scope(&scope_message, scope_schema);
        for span in spans {
            scratch.clear();
            redactor.count = 0;
            write_span(&mut scratch, span, &mut redactor);
            if out.fits_alone(scratch.len(), scope_message.len(), scope_schema) {
                out.push_span(&scratch, &scope_message, scope_schema);
                redacted += redactor.count;
            } else {
                out.oversized(span, redaction);
                out.begin_scope(&scope_message, scope_schema);
            }
        }
        out.end_scope();
    }
    out.end_part();
    if redacted > 0 {
        REDACTED_COUNT.fetch_add(redacted, Relaxed);
    }
    Parts {
        parts: out.parts,
        cut: out.cut,
    }
}

/// A span on its way to the exporter, encoded on the thread that ended it
/// ([`SpanEncoder::encode`]).
#[derive(Debug)]
pub(crate) enum Item {
    /// The next `len` bytes of the batch's buffer are the span's `Span` message, redacted.
    Encoded {
        scope: InstrumentationScope,
        len: usize,
    },
    /// A span too large to share a request: kept whole, for the road through [`super::split`].
    Whole(Box<SpanData>),
}

/// Spans encoded as they ended: their bytes one after another in one buffer (no allocation per
/// span), and what each is.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) items: Vec<Item>,
}

impl Encoded {
    pub(crate) fn with_capacity(items: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            items: Vec::with_capacity(items),
        }
    }

    /// Encodes `span` after these spans, with `scope` (taken only when it is added); `false`,
    /// nothing added, when it is too large to share a request ([`SpanEncoder::encode`]).
    pub(crate) fn push_span(
        &mut self,
        encoder: &SpanEncoder,
        span: &SpanData,
        scope: impl FnOnce() -> InstrumentationScope,
    ) -> bool {
        let Some(len) = encoder.encode(span, &mut self.bytes) else {
            return false;
        };
        self.items.push(Item::Encoded {
            scope: scope(),
            len,
        });
        true
    }

    /// Appends a span's bytes.
    #[cfg(test)]
    pub(crate) fn push_bytes(&mut self, scope: InstrumentationScope, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.items.push(Item::Encoded {
            scope,
            len: bytes.len(),
        });
    }

    /// Moves `other`'s spans after these, leaving it empty (its buffers kept).
    pub(crate) fn append(&mut self, other: &mut Encoded) {
        if self.items.is_empty() {
            std::mem::swap(self, other);
            return;
        }
        self.bytes.extend_from_slice(&other.bytes);
        other.bytes.clear();
        self.items.append(&mut other.items);
    }

    /// Takes the first `n` spans off into a batch of their own (keeping these buffers: the rest,
    /// usually the smaller part, is what is copied).
    pub(crate) fn split_off_front(&mut self, n: usize) -> Encoded {
        let n = n.min(self.items.len());
        let cut: usize = self.items[..n]
            .iter()
            .map(|item| match item {
                Item::Encoded { len, .. } => *len,
                Item::Whole(_) => 0,
            })
            .sum();
        let rest = Encoded {
            bytes: self.bytes.split_off(cut),
            items: self.items.split_off(n),
        };
        std::mem::replace(self, rest)
    }

    /// Each span with its bytes (empty for a whole span).
    pub(crate) fn pieces(&self) -> impl Iterator<Item = (&Item, &[u8])> {
        let mut at = 0;
        self.items.iter().map(move |item| match item {
            Item::Encoded { len, .. } => {
                let bytes = self.bytes.get(at..at + len).unwrap_or_default();
                at += len;
                (item, bytes)
            }
            Item::Whole(_) => (item, &[][..]),
        })
    }
}

/// Encodes spans one at a time, on the thread that ends them: the span's data is freed where it
/// was allocated (an allocator's fast path), and only its bytes cross to the exporter.
#[derive(Debug)]
pub(crate) struct SpanEncoder {
    /// Tells this encoder's remembered keys from another's on a thread (rules may differ).
    id: u64,
    redaction: Redaction,
    /// A span whose bytes exceed this is kept whole ([`Item::Whole`]).
    whole_above: usize,
}

/// What a thread keeps between the spans it encodes: the keys judged.
struct Local {
    owner: u64,
    keys: Keys,
}

thread_local! {
    static LOCAL: std::cell::RefCell<Local> = const {
        std::cell::RefCell::new(Local { owner: 0, keys: Keys { judged: Vec::new(), next: 0 } })
    };
}

static ENCODER_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl SpanEncoder {
    pub(crate) fn new(redaction: Redaction, request_limit: usize) -> Self {
        Self {
            id: ENCODER_IDS.fetch_add(1, Relaxed),
            redaction,
            whole_above: request_limit / 2,
        }
    }

    /// Writes `span` (its `Span` message, redacted; what was redacted is counted) at the end of
    /// `out` and says how many bytes it took; `None`, with `out` as it was, when the span is too
    /// large to share a request (it is then sent whole, [`Item::Whole`]). Written in place: the
    /// span's bytes are not copied again (a copy of each span cost ~1 % of the sending thread).
    pub(crate) fn encode(&self, span: &SpanData, out: &mut Vec<u8>) -> Option<usize> {
        let done = LOCAL.try_with(|local| {
            local
                .try_borrow_mut()
                .ok()
                .map(|mut local| self.encode_with(&mut local, span, out))
        });
        match done {
            Ok(Some(len)) => len,
            // The thread is ending, or this runs inside an encoding: keys of its own.
            _ => {
                let mut local = Local {
                    owner: self.id,
                    keys: Keys::default(),
                };
                self.encode_with(&mut local, span, out)
            }
        }
    }

    fn encode_with(&self, local: &mut Local, span: &SpanData, out: &mut Vec<u8>) -> Option<usize> {
        if local.owner != self.id {
            local.owner = self.id;
            local.keys = Keys::default();
        }
        let start = out.len();
        let mut redactor = Redactor {
            rules: &self.redaction,
            count: 0,
            keys: &mut local.keys,
        };
        write_span(out, span, &mut redactor);
        let redacted = redactor.count;
        let len = out.len() - start;
        if len > self.whole_above {
            // Redacted again (and counted) on the road it takes.
            out.truncate(start);
            return None;
        }
        if redacted > 0 {
            REDACTED_COUNT.fetch_add(redacted, Relaxed);
        }
        Some(len)
    }
}

/// Export requests of at most `limit` bytes from spans encoded already: one resource, the spans
/// grouped by instrumentation scope in the order each scope first appears, spans in their order.
pub(crate) fn assemble(
    batch: &Encoded,
    resource: &EncodedResource,
    redaction: &Redaction,
    limit: usize,
) -> Parts {
    /// A scope and its spans, with their bytes.
    type Group<'a> = (&'a InstrumentationScope, Vec<(&'a Item, &'a [u8])>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (item, bytes) in batch.pieces() {
        let scope = match item {
            Item::Encoded { scope, .. } => scope,
            Item::Whole(span) => &span.instrumentation_scope,
        };
        match groups.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, members)) => members.push((item, bytes)),
            None => groups.push((scope, vec![(item, bytes)])),
        }
    }
    let mut out = Writer {
        limit,
        resource,
        parts: Vec::new(),
        cut: 0,
        buf: Vec::with_capacity((batch.bytes.len() + 4 * batch.items.len() + 1024).min(limit)),
        items: 0,
        resource_spans: None,
        scope_spans: None,
    };
    for (scope, members) in groups {
        let scope_message = scope_message(scope);
        let scope_schema = scope.schema_url().unwrap_or_default();
        out.begin_scope(&scope_message, scope_schema);
        for (item, bytes) in members {
            match item {
                Item::Encoded { .. } => out.push_span(bytes, &scope_message, scope_schema),
                Item::Whole(span) => {
                    out.oversized(span, redaction);
                    out.begin_scope(&scope_message, scope_schema);
                }
            }
        }
        out.end_scope();
    }
    out.end_part();
    Parts {
        parts: out.parts,
        cut: out.cut,
    }
}

/// What the local view reads first of an encoded span, without decoding it.
#[derive(Debug)]
pub(crate) struct Glance<'a> {
    pub(crate) trace_id: opentelemetry::trace::TraceId,
    pub(crate) name: &'a str,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) error: bool,
}

/// The trace, name, times and error status of a `Span` message's bytes; `None` when they are
/// not one.
pub(crate) fn glance(mut buf: &[u8]) -> Option<Glance<'_>> {
    use prost::encoding::{DecodeContext, decode_key, decode_varint, skip_field};
    let mut glance = Glance {
        trace_id: opentelemetry::trace::TraceId::INVALID,
        name: "",
        start: 0,
        end: 0,
        error: false,
    };
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).ok()?;
        match (tag, wire) {
            (1 | 5 | 15, WireType::LengthDelimited) => {
                let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
                let (field, rest) = buf.split_at_checked(len)?;
                buf = rest;
                match tag {
                    1 => glance.trace_id = opentelemetry::trace::TraceId::from_bytes(field.try_into().ok()?),
                    5 => glance.name = std::str::from_utf8(field).ok()?,
                    _ => glance.error = status_code(field)? == 2,
                }
            }
            (7 | 8, WireType::SixtyFourBit) => {
                let (field, rest) = buf.split_at_checked(8)?;
                buf = rest;
                let v = u64::from_le_bytes(field.try_into().ok()?);
                if tag == 7 {
                    glance.start = v;
                } else {
                    glance.end = v;
                }
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default()).ok()?,
        }
    }
    Some(glance)
}

/// The code of a `Status` message's bytes.
fn status_code(mut buf: &[u8]) -> Option<u64> {
    use prost::encoding::{DecodeContext, decode_key, decode_varint, skip_field};
    let mut code = 0;
    while !buf.is_empty() {
        match decode_key(&mut buf).ok()? {
            (3, WireType::Varint) => code = decode_varint(&mut buf).ok()?,
            (tag, wire) => skip_field(wire, tag, &mut buf, DecodeContext::default()).ok()?,
        }
    }
    Some(code)
}

/// Fills parts: `ResourceSpans { resource, scope_spans: [ScopeSpans { scope, spans, schema_url }],
/// schema_url }` inside an `ExportTraceServiceRequest`.
struct Writer<'a> {
    limit: usize,
    resource: &'a EncodedResource,
    parts: Vec<(Bytes, u64)>,
    cut: u64,
    /// The part being filled.
    buf: Vec<u8>,
    items: u64,
    /// Where the open `ResourceSpans` and `ScopeSpans` start (see [`open`]), and the scope's
    /// schema URL, written when it closes.
    resource_spans: Option<usize>,
    scope_spans: Option<(usize, String)>,
}

impl Writer<'_> {
    fn begin_part(&mut self) {
        let at = open(&mut self.buf, 1);
        bytes_always(&mut self.buf, 1, &self.resource.message);
        self.resource_spans = Some(at);
    }

    fn begin_scope(&mut self, scope_message: &[u8], schema_url: &str) {
        if self.resource_spans.is_none() {
            self.begin_part();
        }
        let at = open(&mut self.buf, 2);
        bytes_always(&mut self.buf, 1, scope_message);
        self.scope_spans = Some((at, schema_url.to_owned()));
    }

    fn end_scope(&mut self) {
        if let Some((at, schema_url)) = self.scope_spans.take() {
            string(&mut self.buf, 3, &schema_url);
            close(&mut self.buf, at);
        }
    }

    fn end_part(&mut self) {
        self.end_scope();
        if let Some(at) = self.resource_spans.take() {
            string(&mut self.buf, 3, &self.resource.schema_url);
            close(&mut self.buf, at);
            if self.items > 0 {
                let part = std::mem::take(&mut self.buf);
                self.parts.push((Bytes::from(part), self.items));
            }
            self.buf.clear();
            self.items = 0;
        }
    }

    /// What closing the open part adds at most: two schema URLs and their framing, and the
    /// length prefixes growing.
    fn tail(&self, scope_schema: &str) -> usize {
        framed(scope_schema.len()) + framed(self.resource.schema_url.len()) + 16
    }

    /// Whether a span of `len` bytes fits in a part of its own.
    #[cfg(test)]
    fn fits_alone(&self, len: usize, scope_len: usize, scope_schema: &str) -> bool {
        let shells = 2 * 6 + framed(self.resource.message.len()) + framed(scope_len);
        shells + framed(len) + self.tail(scope_schema) <= self.limit
    }

    fn push_span(&mut self, span: &[u8], scope_message: &[u8], scope_schema: &str) {
        if self.items > 0 && self.buf.len() + framed(span.len()) + self.tail(scope_schema) > self.limit
        {
            self.end_part();
            self.begin_scope(scope_message, scope_schema);
        }
        bytes_always(&mut self.buf, 2, span);
        self.items += 1;
    }

    /// A span too large for any request: the part so far is sent first, then this span in parts
    /// of its own, through opentelemetry-proto's messages and [`super::split`], which cuts its
    /// longest values until it fits.
    fn oversized(&mut self, span: &SpanData, redaction: &Redaction) {
        self.end_part();
        let resource = ResourceAttributesWithSchema::from(&self.resource.resource);
        let scope = opentelemetry_proto::tonic::common::v1::InstrumentationScope::from((
            &span.instrumentation_scope,
            None,
        ));
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: resource.attributes.0,
                    dropped_attributes_count: 0,
                    entity_refs: vec![],
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope),
                    spans: vec![span.clone().into()],
                    schema_url: span
                        .instrumentation_scope
                        .schema_url()
                        .unwrap_or_default()
                        .to_owned(),
                }],
                schema_url: resource.schema_url.unwrap_or_default(),
            }],
        };
        request.redact(redaction);
        let split = request.split(self.limit);
        self.cut += split.cut;
        for (part, items) in split.parts {
            self.parts.push((Bytes::from(part.encode_to_vec()), items));
        }
    }
}

fn scope_message(scope: &InstrumentationScope) -> Vec<u8> {
    let mut m = Vec::new();
    string(&mut m, 1, scope.name());
    string(&mut m, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        plain_attribute(&mut m, 3, kv.key.as_str(), &kv.value);
    }
    m
}

/// Redaction while spans are written: the rules, the values redacted in the span being written,
/// and the keys judged so far.
struct Redactor<'a> {
    rules: &'a Redaction,
    count: u64,
    keys: &'a mut Keys,
}

/// Keys judged already, by their text: a service's keys are mostly the same few field names, in
/// the same order span after span, so the entry after the last one found is tried first. Saves
/// the shared key cache's lock and hash for each attribute.
#[derive(Debug, Default)]
struct Keys {
    judged: Vec<(Box<str>, bool)>,
    next: usize,
}

/// At most this many keys are remembered per batch or per thread.
const REMEMBERED_KEYS: usize = 64;

impl Redactor<'_> {
    fn hides(&mut self, key: &str) -> bool {
        if !self.rules.enabled {
            return false;
        }
        let keys = &mut *self.keys;
        let found = match keys.judged.get(keys.next) {
            Some((k, _)) if same_key(k, key) => Some(keys.next),
            _ => keys.judged.iter().position(|(k, _)| same_key(k, key)),
        };
        if let Some(i) = found {
            keys.next = i + 1;
            return keys.judged[i].1;
        }
        let hidden = self.rules.hides_key(key);
        if keys.judged.len() < REMEMBERED_KEYS {
            keys.judged.push((key.into(), hidden));
            keys.next = keys.judged.len();
        }
        hidden
    }
}

/// One span (the `Span` message's bytes), redacted as [`Redaction::attributes`] and the span
/// request's redaction do; each redacted value adds one to `red.count`.
fn write_span(buf: &mut Vec<u8>, span: &SpanData, red: &mut Redactor<'_>) {
    let cx = &span.span_context;
    bytes_always(buf, 1, &cx.trace_id().to_bytes());
    bytes_always(buf, 2, &cx.span_id().to_bytes());
    string(buf, 3, &cx.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        bytes_always(buf, 4, &span.parent_span_id.to_bytes());
    }
    string(buf, 5, &span.name);
    varint(buf, 6, kind(&span.span_kind));
    fixed64(buf, 7, nanos(span.start_time));
    fixed64(buf, 8, nanos(span.end_time));
    for kv in &span.attributes {
        attribute(buf, 9, kv, red);
    }
    varint(buf, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        let at = open(buf, 11);
        fixed64(buf, 1, nanos(event.timestamp));
        // tracing-opentelemetry names an event after its message.
        string(buf, 2, &text(red, &event.name));
        for kv in &event.attributes {
            attribute(buf, 3, kv, red);
        }
        varint(buf, 4, u64::from(event.dropped_attributes_count));
        close(buf, at);
    }
    varint(buf, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let at = open(buf, 13);
        let lcx = &link.span_context;
        bytes_always(buf, 1, &lcx.trace_id().to_bytes());
        bytes_always(buf, 2, &lcx.span_id().to_bytes());
        string(buf, 3, &lcx.trace_state().header());
        for kv in &link.attributes {
            attribute(buf, 4, kv, red);
        }
        varint(buf, 5, u64::from(link.dropped_attributes_count));
        fixed32(buf, 6, flags(lcx, lcx.is_remote()));
        close(buf, at);
    }
    varint(buf, 14, u64::from(span.links.dropped_count));
    let at = open(buf, 15);
    let (code, message) = match &span.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    };
    string(buf, 2, &text(red, message));
    varint(buf, 3, code);
    close(buf, at);
    fixed32(buf, 16, flags(cx, span.parent_span_is_remote));
}

fn text<'a>(red: &mut Redactor<'_>, s: &'a str) -> Cow<'a, str> {
    red.rules
        .free_text(s, &mut red.count)
        .map_or(Cow::Borrowed(s), Cow::Owned)
}

/// The OTLP span flags: the W3C trace flags, "has is-remote" and "is remote".
fn flags(cx: &SpanContext, remote: bool) -> u32 {
    u32::from(cx.trace_flags().to_u8()) | 0x100 | if remote { 0x200 } else { 0 }
}

fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A `KeyValue` of a span, an event or a link, its value redacted.
fn attribute(buf: &mut Vec<u8>, field: u32, kv: &KeyValue, red: &mut Redactor<'_>) {
    let key = kv.key.as_str();
    let at = open(buf, field);
    string(buf, 1, key);
    let v = open(buf, 2);
    if red.hides(key) {
        if !matches!(&kv.value, Value::String(s) if s.as_str() == REDACTED) {
            red.count += 1;
        }
        string_always(buf, 1, REDACTED);
    } else {
        match &kv.value {
            Value::String(s) => match red.rules.string_value(key, s.as_str(), &mut red.count) {
                Some(new) => string_always(buf, 1, &new),
                None => string_always(buf, 1, s.as_str()),
            },
            Value::Array(Array::String(items)) if red.rules.scans_arrays_of(key) => {
                let array = open(buf, 5);
                for item in items {
                    let one = open(buf, 1);
                    string_always(buf, 1, &text(red, item.as_str()));
                    close(buf, one);
                }
                close(buf, array);
            }
            value => any_value(buf, value),
        }
    }
    close(buf, v);
    close(buf, at);
}

/// A `KeyValue` as it is (the resource's and the scope's).
fn plain_attribute(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let at = open(buf, field);
    string(buf, 1, key);
    let v = open(buf, 2);
    any_value(buf, value);
    close(buf, v);
    close(buf, at);
}

/// The fields of an `AnyValue` (its one-of: always written, even when zero or empty).
fn any_value(buf: &mut Vec<u8>, value: &Value) {
    fn array<T>(buf: &mut Vec<u8>, items: &[T], one: impl Fn(&mut Vec<u8>, &T)) {
        let at = open(buf, 5);
        for item in items {
            let v = open(buf, 1);
            one(buf, item);
            close(buf, v);
        }
        close(buf, at);
    }
    match value {
        Value::String(s) => string_always(buf, 1, s.as_str()),
        Value::Bool(b) => {
            key(buf, 2, WireType::Varint);
            uvarint(buf, u64::from(*b));
        }
        Value::I64(i) => {
            key(buf, 3, WireType::Varint);
            uvarint(buf, *i as u64);
        }
        Value::F64(f) => {
            key(buf, 4, WireType::SixtyFourBit);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Array(Array::Bool(items)) => array(buf, items, |buf, b| any_value(buf, &Value::Bool(*b))),
        Value::Array(Array::I64(items)) => array(buf, items, |buf, i| any_value(buf, &Value::I64(*i))),
        Value::Array(Array::F64(items)) => array(buf, items, |buf, f| any_value(buf, &Value::F64(*f))),
        Value::Array(Array::String(items)) => {
            array(buf, items, |buf, s| string_always(buf, 1, s.as_str()));
        }
        // Kinds added to the API after 0.33: their text, rather than nothing.
        other => string_always(buf, 1, &other.as_str()),
    }
}

/// Bytes a length-delimited field of `len` bytes takes (a one-byte tag).
fn framed(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Starts a length-delimited field whose length is not known yet: its tag and a one-byte length,
/// which [`close`] fixes (moving the content when the length needs more bytes).
fn open(buf: &mut Vec<u8>, field: u32) -> usize {
    key(buf, field, WireType::LengthDelimited);
    buf.push(0);
    buf.len()
}

/// Inlined: a span closes about twenty fields, nearly all with the one-byte length (a call each
/// cost more than the write, callgrind).
#[inline(always)]
fn close(buf: &mut Vec<u8>, at: usize) {
    let len = buf.len() - at;
    if len < 0x80 {
        // The one-byte length `open` left room for (most fields).
        buf[at - 1] = len as u8;
        return;
    }
    close_long(buf, at, len);
}

/// [`close`] for a field of 128 bytes or more: its content moves to make room for the length.
#[cold]
#[inline(never)]
fn close_long(buf: &mut Vec<u8>, at: usize, len: usize) {
    let n = encoded_len_varint(len as u64);
    buf.resize(buf.len() + n - 1, 0);
    buf.copy_within(at..at + len, at + n - 1);
    let mut slot = &mut buf[at - 1..at - 1 + n];
    encode_varint(len as u64, &mut slot);
}

/// A field's key (its number and wire type); one byte for fields 1 to 15.
fn key(buf: &mut Vec<u8>, field: u32, wire: WireType) {
    let k = (field << 3) | wire as u32;
    if k < 0x80 {
        buf.push(k as u8);
    } else {
        encode_key(field, wire, buf);
    }
}

/// A varint, one byte for values under 128 (lengths, most counts).
fn uvarint(buf: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        buf.push(v as u8);
    } else {
        encode_varint(v, buf);
    }
}

/// A string field, left out when empty (proto3: the default is not written).
fn string(buf: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        string_always(buf, field, s);
    }
}

fn string_always(buf: &mut Vec<u8>, field: u32, s: &str) {
    bytes_always(buf, field, s.as_bytes());
}

fn bytes_always(buf: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(buf, field, WireType::LengthDelimited);
    uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

fn varint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, WireType::Varint);
        uvarint(buf, v);
    }
}

fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, WireType::SixtyFourBit);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(buf, field, WireType::ThirtyTwoBit);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::trace::v1::Span;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    fn context(trace: u128, span: u64, remote: bool, state: &str) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            remote,
            state.parse::<TraceState>().expect("a trace state"),
        )
    }

    /// Spans with every kind of field and value, secrets among them, from three scopes
    /// interleaved.
    fn batch() -> Vec<SpanData> {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let scopes = [
            InstrumentationScope::builder("lookout").build(),
            InstrumentationScope::builder("db")
                .with_version("1.2.3")
                .with_schema_url("https://opentelemetry.io/schemas/1.30.0")
                .with_attributes([KeyValue::new("pool", "main")])
                .build(),
            InstrumentationScope::builder("").build(),
        ];
        (0..12u64)
            .map(|i| SpanData {
                span_context: context(0xabc0 + u128::from(i), 100 + i, false, if i % 3 == 0 { "" } else { "vendor=x,other=y" }),
                parent_span_id: if i % 2 == 0 { SpanId::INVALID } else { SpanId::from(7 + i) },
                parent_span_is_remote: i % 4 == 1,
                span_kind: [SpanKind::Internal, SpanKind::Server, SpanKind::Client, SpanKind::Producer, SpanKind::Consumer][i as usize % 5].clone(),
                name: Cow::Owned(format!("span {i}")),
                start_time: start + Duration::from_millis(i),
                end_time: start + Duration::from_millis(i * 3 + 1),
                attributes: vec![
                    KeyValue::new("order.id", i as i64),
                    KeyValue::new("negative", -5_i64 - i as i64),
                    KeyValue::new("amount", 12.5 * i as f64),
                    KeyValue::new("retry", i % 2 == 0),
                    KeyValue::new("empty", ""),
                    KeyValue::new("user.password", "hunter2"),
                    KeyValue::new("api-token", 42_i64),
                    KeyValue::new("already", REDACTED),
                    KeyValue::new("note", "paid with 4111 1111 1111 1111 by Bearer abcdef123456"),
                    KeyValue::new("url.full", "https://user:pw@example.com/a?token=t0k3n&x=1"),
                    KeyValue::new("url.query", "code=abc&page=2"),
                    KeyValue::new("region", "eu-west-1 é ü"),
                    KeyValue::new("tags", Value::Array(Array::String(vec!["a".into(), "AKIAABCDEFGHIJKLMNOP".into(), "".into()]))),
                    KeyValue::new("ids", Value::Array(Array::I64(vec![1, -2, 0]))),
                    KeyValue::new("flags", Value::Array(Array::Bool(vec![true, false]))),
                    KeyValue::new("ratios", Value::Array(Array::F64(vec![0.0, -1.5, f64::MAX]))),
                    KeyValue::new("long", "x".repeat(300 * i as usize)),
                ],
                dropped_attributes_count: (i % 3) as u32,
                events: {
                    let mut events = SpanEvents::default();
                    events.events = vec![
                        Event::new("order checked", start + Duration::from_micros(5), vec![KeyValue::new("step", "validated")], 0),
                        Event::new("sent Bearer abcdefghijkl", UNIX_EPOCH, vec![], 2),
                    ];
                    events.dropped_count = (i % 2) as u32;
                    events
                },
                links: {
                    let mut links = SpanLinks::default();
                    if i % 3 == 1 {
                        links.links = vec![Link::new(context(0xfeed, 9, true, "k=v"), vec![KeyValue::new("secret", "s")], 1)];
                    }
                    links
                },
                status: match i % 3 {
                    0 => Status::Unset,
                    1 => Status::Ok,
                    _ => Status::error(format!("failed for card 4111-1111-1111-1111 ({i})")),
                },
                instrumentation_scope: scopes[i as usize % 3].clone(),
            })
            .collect()
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "checkout"),
                KeyValue::new("service.instance.id", "i-1"),
                KeyValue::new("host.cpus", 2_i64),
            ])
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build()
    }

    /// What opentelemetry-proto's conversion and the request's redaction make of `batch`.
    fn expected(batch: &[SpanData], resource: &Resource, redaction: &Redaction) -> ExportTraceServiceRequest {
        let attributes = ResourceAttributesWithSchema::from(resource);
        let mut request = ExportTraceServiceRequest {
            resource_spans: opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope(
                batch.to_vec(),
                &attributes,
            ),
        };
        request.redact(redaction);
        request
    }

    fn decode(part: &Bytes) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(part.clone()).expect("lookout's encoding decodes")
    }

    fn spans_of(request: &ExportTraceServiceRequest) -> Vec<Span> {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// The redaction configurations every comparison runs under.
    fn redactions() -> [Redaction; 4] {
        [
            Redaction::default(),
            Redaction::default().emails(true).extra_keys(["region"]),
            Redaction::default().allow_only(["order.id", "url.full"]),
            Redaction::off(),
        ]
    }

    #[test]
    fn writes_what_opentelemetry_proto_writes_redacted_the_same_way() {
        let batch = batch();
        let resource = resource();
        for redaction in redactions() {
            let parts = spans(&batch, &EncodedResource::new(&resource), &redaction, 4_000_000);
            assert_eq!(parts.parts.len(), 1, "one request");
            assert_eq!(parts.cut, 0);
            assert_eq!(parts.parts[0].1, 12, "spans counted");
            let got = decode(&parts.parts[0].0);
            let want = expected(&batch, &resource, &redaction);
            assert_eq!(got, want, "redaction {redaction:?}");
            // Same message, same bytes: prost writes fields in the same order.
            assert_eq!(parts.parts[0].0.len(), want.encoded_len());
        }
        // The secrets really are gone (the comparison above would pass with none redacted on
        // both sides).
        let parts = spans(&batch, &EncodedResource::new(&resource), &Redaction::default(), 4_000_000);
        let text = String::from_utf8_lossy(&parts.parts[0].0);
        for secret in ["hunter2", "4111", "abcdef123456", "pw@", "t0k3n", "AKIAABCDEFGHIJKLMNOP", "abcdefghijkl"] {
            assert!(!text.contains(secret), "{secret} left in the request");
        }
        assert!(text.contains("code=REDACTED&page=2"));
    }

    #[test]
    fn an_empty_resource_and_an_empty_batch() {
        let empty = Resource::builder_empty().build();
        let parts = spans(&[], &EncodedResource::new(&empty), &Redaction::default(), 4_000_000);
        assert!(parts.parts.is_empty(), "nothing to send");
        let batch = batch();
        let parts = spans(&batch[..1], &EncodedResource::new(&empty), &Redaction::default(), 4_000_000);
        assert_eq!(decode(&parts.parts[0].0), expected(&batch[..1], &empty, &Redaction::default()));
    }

    #[test]
    fn a_large_batch_is_cut_into_parts_under_the_limit_keeping_order_resource_and_scope() {
        let batch = batch();
        let resource = resource();
        let redaction = Redaction::default();
        let limit = 6_000;
        let parts = spans(&batch, &EncodedResource::new(&resource), &redaction, limit);
        assert!(parts.parts.len() > 3, "{} parts", parts.parts.len());
        assert_eq!(parts.cut, 0);
        let want = expected(&batch, &resource, &redaction);
        let mut spans = Vec::new();
        for (bytes, items) in &parts.parts {
            assert!(bytes.len() <= limit, "a part of {} bytes", bytes.len());
            let part = decode(bytes);
            assert_eq!(part.resource_spans.len(), 1);
            let rs = &part.resource_spans[0];
            assert_eq!(rs.resource, want.resource_spans[0].resource);
            assert_eq!(rs.schema_url, want.resource_spans[0].schema_url);
            for scope in &rs.scope_spans {
                let original = want.resource_spans[0]
                    .scope_spans
                    .iter()
                    .find(|s| s.scope == scope.scope)
                    .expect("a scope of the batch");
                assert_eq!(scope.schema_url, original.schema_url);
                assert!(scope.spans.iter().all(|s| original.spans.contains(s)));
            }
            let found = spans_of(&part);
            assert_eq!(found.len() as u64, *items);
            spans.extend(found);
        }
        assert_eq!(spans, spans_of(&want), "every span once, in order");
    }

    #[test]
    fn an_oversized_span_is_cut_to_fit_and_its_neighbours_are_untouched() {
        let mut batch = batch();
        batch.truncate(3);
        batch[1].attributes.push(KeyValue::new("huge", "y".repeat(20_000)));
        let resource = resource();
        let redaction = Redaction::default();
        let limit = 8_000;
        let parts = spans(&batch, &EncodedResource::new(&resource), &redaction, limit);
        assert_eq!(parts.cut, 1);
        let want = spans_of(&expected(&batch, &resource, &redaction));
        let got: Vec<Span> = parts.parts.iter().flat_map(|(b, _)| spans_of(&decode(b))).collect();
        assert!(parts.parts.iter().all(|(b, _)| b.len() <= limit));
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], want[0]);
        assert_eq!(got[2], want[2]);
        let huge = got[1].attributes.iter().find(|kv| kv.key == "huge").expect("the key stays");
        let Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) =
            huge.value.as_ref().and_then(|v| v.value.as_ref())
        else {
            panic!("a string value");
        };
        assert!(s.len() < 8_000 && s.starts_with("yyy"), "cut: {} bytes", s.len());
        assert_eq!(got[1].span_id, want[1].span_id);
        assert_eq!(got[1].name, want[1].name);
    }

    #[test]
    fn lengths_of_every_size_are_written_right() {
        // Values whose lengths cross the one-, two- and three-byte varint boundaries.
        let resource = resource();
        for len in [0, 1, 126, 127, 128, 129, 16_383, 16_384, 20_000] {
            let mut batch = batch();
            batch.truncate(1);
            batch[0].attributes = vec![KeyValue::new("v", "z".repeat(len))];
            let parts = spans(&batch, &EncodedResource::new(&resource), &Redaction::off(), 4_000_000);
            assert_eq!(decode(&parts.parts[0].0), expected(&batch, &resource, &Redaction::off()), "{len}");
        }
    }

    /// The batch encoded span by span, as lookout's span processor does at each span end.
    fn items(batch: &[SpanData], encoder: &SpanEncoder) -> Encoded {
        let mut out = Encoded::default();
        for span in batch {
            if !out.push_span(encoder, span, || span.instrumentation_scope.clone()) {
                out.items.push(Item::Whole(Box::new(span.clone())));
            }
        }
        out
    }

    /// The one span's bytes.
    fn one(span: &SpanData, encoder: &SpanEncoder) -> Vec<u8> {
        let mut bytes = Vec::new();
        assert!(encoder.encode(span, &mut bytes).is_some());
        bytes
    }

    #[test]
    fn spans_encoded_as_they_end_make_the_same_requests() {
        let batch = batch();
        let resource = resource();
        for redaction in redactions() {
            let encoded = EncodedResource::new(&resource);
            let encoder = SpanEncoder::new(redaction.clone(), 4_000_000);
            let items = items(&batch, &encoder);
            assert!(items.items.iter().all(|i| matches!(i, Item::Encoded { .. })));
            for limit in [4_000_000, 6_000] {
                let whole = spans(&batch, &encoded, &redaction, limit);
                let one_by_one = assemble(&items, &encoded, &redaction, limit);
                let bytes = |p: &Parts| p.parts.iter().map(|(b, n)| (b.to_vec(), *n)).collect::<Vec<_>>();
                assert_eq!(bytes(&one_by_one), bytes(&whole), "{redaction:?} limit {limit}");
            }
        }
    }

    #[test]
    fn a_span_too_large_to_share_a_request_is_kept_whole_and_cut() {
        let mut batch = batch();
        batch.truncate(3);
        batch[1].attributes.push(KeyValue::new("huge", "y".repeat(20_000)));
        let resource = EncodedResource::new(&resource());
        let redaction = Redaction::default();
        let items = items(&batch, &SpanEncoder::new(redaction.clone(), 8_000));
        assert!(matches!(items.items[1], Item::Whole(_)));
        assert!(matches!(items.items[0], Item::Encoded { .. }) && matches!(items.items[2], Item::Encoded { .. }));
        let got = assemble(&items, &resource, &redaction, 8_000);
        let want = spans(&batch, &resource, &redaction, 8_000);
        assert_eq!(got.cut, 1);
        let bytes = |p: &Parts| p.parts.iter().map(|(b, n)| (b.to_vec(), *n)).collect::<Vec<_>>();
        assert_eq!(bytes(&got), bytes(&want));
    }

    #[test]
    fn each_encoder_judges_keys_by_its_own_rules_on_a_shared_thread() {
        // Two pipelines on one thread: what one remembered of a key must not leak to the other.
        let span = batch().remove(0);
        let value_of = |bytes: Vec<u8>, key: &str| {
            let span = Span::decode(&bytes[..]).expect("a span");
            let kv = span.attributes.into_iter().find(|kv| kv.key == key).expect("the key");
            format!("{:?}", kv.value)
        };
        // Both on (keys judged and remembered); `negative` is secret to one only.
        let open = SpanEncoder::new(Redaction::default(), 4_000_000);
        let strict = SpanEncoder::new(Redaction::default().extra_keys(["negative"]), 4_000_000);
        for _ in 0..2 {
            assert!(value_of(one(&span, &open), "negative").contains("IntValue(-5)"));
            assert!(value_of(one(&span, &strict), "negative").contains(REDACTED));
        }
    }

    #[test]
    fn a_glance_reads_what_the_view_needs() {
        let encoder = SpanEncoder::new(Redaction::default(), 4_000_000);
        for span in batch() {
            let bytes = one(&span, &encoder);
            let g = glance(&bytes).expect("a span");
            assert_eq!(g.trace_id, span.span_context.trace_id());
            assert_eq!(g.name, span.name);
            assert_eq!(g.start, nanos(span.start_time));
            assert_eq!(g.end, nanos(span.end_time));
            assert_eq!(g.error, matches!(span.status, Status::Error { .. }));
        }
        assert!(glance(&[0x0a, 0x05, 1]).is_none(), "a field longer than the bytes");
    }

    #[test]
    fn batches_appended_keep_each_span_with_its_bytes() {
        let batch = batch();
        let encoder = SpanEncoder::new(Redaction::default(), 8_000);
        let whole = items(&batch, &encoder);
        let mut front = items(&batch[..3], &encoder);
        let mut back = items(&batch[3..], &encoder);
        let pieces = |e: &Encoded| -> Vec<Vec<u8>> { e.pieces().map(|(_, b)| b.to_vec()).collect() };
        let mut empty = Encoded::default();
        empty.append(&mut front);
        assert!(front.items.is_empty() && front.bytes.is_empty(), "taken whole");
        empty.append(&mut back);
        assert!(back.items.is_empty() && back.bytes.is_empty());
        assert_eq!(empty.items.len(), whole.items.len());
        assert_eq!(pieces(&empty), pieces(&whole));
        // And cut again: the front keeps its spans' bytes, the rest theirs.
        let rest_expected = pieces(&whole)[2..].to_vec();
        let front = empty.split_off_front(2);
        assert_eq!(pieces(&front), pieces(&whole)[..2].to_vec());
        assert_eq!(pieces(&empty), rest_expected);
    }

    #[test]
    fn a_backlog_is_taken_a_batch_at_a_time_with_its_own_bytes() {
        let mut batch = batch();
        batch[4].attributes.push(KeyValue::new("huge", "y".repeat(20_000)));
        let resource = EncodedResource::new(&resource());
        let redaction = Redaction::default();
        let mut waiting = items(&batch, &SpanEncoder::new(redaction.clone(), 8_000));
        let all = spans_of(&expected(&batch, &resource.resource, &redaction));
        let mut got = Vec::new();
        while !waiting.items.is_empty() {
            let front = waiting.split_off_front(5);
            assert!(front.items.len() <= 5);
            let parts = assemble(&front, &resource, &redaction, 8_000);
            got.extend(parts.parts.iter().flat_map(|(b, _)| spans_of(&decode(b))));
        }
        assert!(waiting.bytes.is_empty(), "every byte went with its span");
        // Each batch groups its spans by scope: compare span by span.
        let (mut got, mut all) = (got, all);
        got.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        all.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        assert_eq!(got.len(), all.len());
        let huge = batch[4].span_context.span_id().to_bytes().to_vec();
        for (got, want) in got.iter().zip(&all) {
            assert_eq!(got.span_id, want.span_id, "every span once");
            if got.span_id != huge {
                assert_eq!(got, want);
            }
        }
    }
}
