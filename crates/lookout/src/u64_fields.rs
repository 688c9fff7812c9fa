//! tracing-opentelemetry 0.34 records `u64` span fields through `record_debug`, so they reach
//! OTLP as strings (tracing #3104). lookout sets them back to integers when the span ends, with no
//! work on the span itself and, in the usual case, nothing stored per span:
//! - [`U64Fields`], placed *before* tracing-opentelemetry's layer, notes per callsite which of its
//!   fields have carried a `u64` (a field's type at a callsite is the type of its expression, so
//!   the first span tells what every later one holds); when a span closes — just before
//!   tracing-opentelemetry's layer ends the OpenTelemetry span — it hands the callsite's fields
//!   and those positions to the closing thread;
//! - lookout's span processor (`SpanIntake::on_end`, called by that layer's close, on the same
//!   thread) gives them back to the ended span's attributes ([`apply_closing`]): the string value
//!   of such a key, the decimal tracing-opentelemetry wrote, becomes the integer, in place;
//! - [`U64FieldsDone`], placed after it, clears what the close left (an unsampled span ends with no
//!   `on_end`), so nothing crosses to another span.
//!
//! What the callsite cannot tell is kept per span, in the span's extensions, with the exact
//! values: a field recorded later (`Span::record`, whose value can be of any type), a field whose
//! type differs between spans of one callsite (a span in a generic function: one callsite for
//! every instantiation), and every callsite once [`CALLSITES`] are known. (A span of such a
//! generic callsite that was already open when the callsite first showed its second type ends with
//! that field as a string, tracing-opentelemetry's own form: once per callsite, at most.)
//!
//! History (BENCHMARKS.md, span cost against the peers): setting the values again on the
//! OpenTelemetry span while it was created cost 2,600 instructions a span with a `u64` field;
//! keeping them in each span's extensions, 1,300; the per-callsite positions, a few hundred.

use std::cell::RefCell;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use opentelemetry::{KeyValue, Value};
use tracing::field::{Field, FieldSet, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Notes `u64` fields and hands them over at close; placed before the span layer.
#[derive(Debug, Default)]
pub(crate) struct U64Fields;

/// Clears the hand-over after the span layer's close; placed after the span layer.
#[derive(Debug, Default)]
pub(crate) struct U64FieldsDone;

/// How many callsites with `u64` fields are told apart; past this, spans of further callsites
/// keep their values in their extensions (the exact, slower way).
pub(crate) const CALLSITES: usize = 1024;

/// One callsite: its metadata's address (0: free) and, by field position (the first 64), the
/// fields seen holding a `u64` and those seen holding something else.
struct Callsite {
    meta: AtomicUsize,
    u64s: AtomicU64,
    others: AtomicU64,
}

/// An open-addressed table written once per callsite and field type, read with plain loads: no
/// lock and no shared write on a span's path once its callsite is known.
static TABLE: [Callsite; CALLSITES] = [const {
    Callsite {
        meta: AtomicUsize::new(0),
        u64s: AtomicU64::new(0),
        others: AtomicU64::new(0),
    }
}; CALLSITES];

/// Whether [`TABLE`] has any callsite: while it has none, a close costs nothing.
static NOTED: AtomicBool = AtomicBool::new(false);

/// Spans with [`Kept`] values not closed yet.
static OPEN: AtomicUsize = AtomicUsize::new(0);

fn address(meta: &'static Metadata<'static>) -> usize {
    std::ptr::from_ref(meta) as usize
}

/// How far a callsite may be from its home slot; a callsite that finds no room this near goes
/// the exact way, and a look-up never reads more than this many slots.
const PROBES: usize = 32;

/// The slots a callsite may be in, in probe order.
fn probe(meta: usize) -> impl Iterator<Item = &'static Callsite> {
    let home = ((meta as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize;
    (0..PROBES).map(move |i| &TABLE[(home + i) % CALLSITES])
}

/// The callsite's entry, if it has one.
fn find(meta: usize) -> Option<&'static Callsite> {
    for slot in probe(meta) {
        match slot.meta.load(Acquire) {
            m if m == meta => return Some(slot),
            0 => return None,
            _ => {}
        }
    }
    None
}

/// The callsite's entry, made if it has none; `None` when the table is full.
fn find_or_add(meta: usize) -> Option<&'static Callsite> {
    // Said before any entry is made (the entry's release publishes it), and written once: a
    // store on every span would be a shared write on its path.
    if !NOTED.load(Relaxed) {
        NOTED.store(true, Relaxed);
    }
    for slot in probe(meta) {
        let found = match slot.meta.load(Acquire) {
            0 => slot
                .meta
                .compare_exchange(0, meta, AcqRel, Acquire)
                .unwrap_or_else(|now| now),
            m => m,
        };
        if found == 0 || found == meta {
            return Some(slot);
        }
    }
    None
}

/// Adds `bits` to `mask` unless it has them all (a load, then a write only when something is new).
fn add(mask: &AtomicU64, bits: u64) -> u64 {
    let now = mask.load(Acquire);
    if now & bits == bits {
        return now;
    }
    mask.fetch_or(bits, AcqRel) | bits
}

fn bit(field: &Field) -> u64 {
    1_u64.checked_shl(field.index() as u32).unwrap_or(0)
}

/// Which fields of a span hold a `u64` and which hold a value tracing-opentelemetry writes as a
/// string (a field past the 64th is in neither: it goes the exact way).
#[derive(Default)]
struct Types {
    u64s: u64,
    others: u64,
    beyond: bool,
}

impl Visit for Types {
    fn record_u64(&mut self, field: &Field, _: u64) {
        match bit(field) {
            0 => self.beyond = true,
            b => self.u64s |= b,
        }
    }
    // Written as typed values: they never read back as a `u64`'s decimal.
    fn record_i64(&mut self, _: &Field, _: i64) {}
    fn record_f64(&mut self, _: &Field, _: f64) {}
    fn record_bool(&mut self, _: &Field, _: bool) {}
    fn record_debug(&mut self, field: &Field, _: &dyn std::fmt::Debug) {
        self.others |= bit(field);
    }
}

/// A span's own verdicts, in its extensions: per key, the latest value when it was a `u64` that
/// fits an `i64`, `None` when the latest value was anything else (the callsite's positions do not
/// apply to that key then).
#[derive(Default)]
struct Kept(Vec<(&'static str, Option<i64>)>);

impl Kept {
    fn set(&mut self, name: &'static str, value: Option<i64>) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(kept) => kept.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

/// Collects [`Kept`] verdicts: every field (`all`), or only the `u64` ones.
struct Exact {
    kept: Kept,
    all: bool,
}

impl Visit for Exact {
    fn record_u64(&mut self, field: &Field, value: u64) {
        // Values above i64::MAX have no OTLP integer form and stay strings.
        self.kept.set(field.name(), i64::try_from(value).ok());
    }
    fn record_debug(&mut self, field: &Field, _: &dyn std::fmt::Debug) {
        if self.all {
            self.kept.set(field.name(), None);
        }
    }
}

/// What a closing span hands to its `on_end`: its callsite's fields, the positions that hold a
/// `u64` there, and its own verdicts.
#[derive(Default)]
struct Closing {
    fields: Option<&'static FieldSet>,
    u64s: u64,
    kept: Vec<(&'static str, Option<i64>)>,
}

thread_local! {
    /// The closing span's hand-over, from its close to its `on_end` on this thread.
    static CLOSING: RefCell<Closing> = const {
        RefCell::new(Closing { fields: None, u64s: 0, kept: Vec::new() })
    };
}

fn keep<S>(id: &Id, ctx: &Context<'_, S>, found: Kept)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
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
                kept.set(name, value);
            }
        }
        None => {
            extensions.insert(found);
            OPEN.fetch_add(1, Relaxed);
        }
    }
}

impl<S> Layer<S> for U64Fields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut types = Types::default();
        attrs.record(&mut types);
        let meta = address(attrs.metadata());
        let exact = if types.u64s == 0 {
            // Nothing to give back for this span; note its other types if the callsite is known
            // (a field that held a `u64` in an earlier span of it is ambiguous from now on).
            if types.others != 0
                && let Some(site) = find(meta)
            {
                add(&site.others, types.others);
            }
            types.beyond
        } else {
            match find_or_add(meta) {
                Some(site) => {
                    let u64s = add(&site.u64s, types.u64s);
                    let others = add(&site.others, types.others);
                    types.beyond || types.u64s & u64s & others != 0
                }
                None => true,
            }
        };
        if exact {
            let mut found = Exact {
                kept: Kept::default(),
                all: false,
            };
            attrs.record(&mut found);
            keep(id, &ctx, found.kept);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        // A value recorded later can be of any type: the span keeps its own verdict per key.
        let mut found = Exact {
            kept: Kept::default(),
            all: true,
        };
        values.record(&mut found);
        keep(id, &ctx, found.kept);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let open = OPEN.load(Relaxed) != 0;
        if !open && !NOTED.load(Relaxed) {
            return;
        }
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let meta = span.metadata();
        // Positions that held a `u64` and never anything else at this callsite.
        let u64s = find(address(meta)).map_or(0, |site| {
            site.u64s.load(Acquire) & !site.others.load(Acquire)
        });
        let kept = if open {
            span.extensions_mut().remove::<Kept>()
        } else {
            None
        };
        if kept.is_some() {
            OPEN.fetch_sub(1, Relaxed);
        }
        if u64s == 0 && kept.is_none() {
            return;
        }
        let _ = CLOSING.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                *c = Closing {
                    fields: Some(meta.fields()),
                    u64s,
                    kept: kept.map(|k| k.0).unwrap_or_default(),
                };
            }
        });
    }
}

impl<S: Subscriber> Layer<S> for U64FieldsDone {
    fn on_close(&self, _: Id, _: Context<'_, S>) {
        // Left only when the span had values and ended without `on_end` (not sampled).
        let _ = CLOSING.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut()
                && c.fields.is_some()
            {
                c.fields = None;
                c.u64s = 0;
                c.kept.clear();
            }
        });
    }
}

/// Gives the closing span's `u64` values back to its attributes: the last attribute of each such
/// key, if it holds an integer's decimal string (as tracing-opentelemetry wrote it; the span's own
/// value when it kept one), becomes the integer. Called by the span processor's `on_end` on the
/// closing thread.
pub(crate) fn apply_closing(attributes: &mut [KeyValue]) {
    fn give_back(attributes: &mut [KeyValue], name: &str, expected: Option<i64>) {
        if let Some(kv) = attributes
            .iter_mut()
            .rev()
            .find(|kv| same_key(kv.key.as_str(), name))
            && let Value::String(s) = &kv.value
            && let Ok(value) = s.as_str().parse::<i64>()
            && expected.is_none_or(|e| e == value)
        {
            kv.value = Value::I64(value);
        }
    }
    let _ = CLOSING.try_with(|c| {
        let Ok(mut closing) = c.try_borrow_mut() else {
            return;
        };
        let Some(fields) = closing.fields.take() else {
            return;
        };
        let u64s = std::mem::take(&mut closing.u64s);
        if u64s != 0 {
            for field in fields.iter() {
                if bit(&field) & u64s != 0
                    && !closing.kept.iter().any(|(n, _)| *n == field.name())
                {
                    give_back(attributes, field.name(), None);
                }
            }
        }
        for (name, value) in closing.kept.drain(..) {
            if let Some(value) = value {
                give_back(attributes, name, Some(value));
            }
        }
    });
}

/// Whether two attribute keys are equal: compared inline, eight bytes at a time, not through
/// `memcmp` (keys are short and compared a dozen times a span; the call cost more than the bytes).
#[inline]
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
    a8.by_ref().zip(b8.by_ref()).all(|(x, y)| word(x) == word(y))
        && a8.remainder().iter().zip(b8.remainder()).all(|(x, y)| x == y)
}

/// Removes earlier attributes whose key appears again later, keeping the last value.
pub(crate) fn dedup_keep_last(attributes: &mut Vec<KeyValue>) {
    // In place, without allocating unless a key is repeated (a field recorded again: rare).
    fn replaced(attributes: &[KeyValue], i: usize) -> bool {
        let key = attributes[i].key.as_str();
        attributes[i + 1..]
            .iter()
            .any(|later| same_key(later.key.as_str(), key))
    }
    // The usual span has a handful of attributes, all keys different: their keys read once onto
    // the stack, then compared by length first.
    const FEW: usize = 16;
    if attributes.len() <= FEW {
        let mut keys = [""; FEW];
        for (slot, kv) in keys.iter_mut().zip(attributes.iter()) {
            *slot = kv.key.as_str();
        }
        let keys = &keys[..attributes.len()];
        let repeated = keys
            .iter()
            .enumerate()
            .any(|(i, k)| keys[i + 1..].iter().any(|later| same_key(later, k)));
        if !repeated {
            return;
        }
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
    fn keys_compare_by_every_byte() {
        for (a, b, same) in [
            ("", "", true),
            ("order.id", "order.id", true),
            ("order.id", "order.ic", false),
            ("http.request.method", "http.request.method", true),
            ("http.request.method", "http.request.methoD", false),
            ("http.request.method", "xttp.request.method", false),
            ("abc", "abcd", false),
        ] {
            assert_eq!(same_key(a, b), same, "{a} {b}");
        }
    }

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
