//! OpenMetrics exemplars for lookout's own duration histograms (`http.server.request.duration`
//! from lookout-tower, `function.duration` from `#[lookout::measured]`).
//!
//! An exemplar is one measurement of a histogram bucket together with the trace it belongs to:
//! `/metrics` prints it after the bucket (`# {trace_id="…",span_id="…"} 0.0123 1764680000.1`), and
//! Grafana turns it into a link from a latency spike to the trace in Jaeger. The OpenTelemetry Rust
//! SDK 0.33 keeps none (its data points' exemplar lists stay empty), so lookout keeps them here,
//! beside the SDK's aggregation, not instead of it:
//!
//! - a [`Reservoir`] per histogram series holds the latest exemplar of each bucket; a bucket looks
//!   at most once a second for a new one, which it keeps only from a sampled span, so the hot path
//!   pays a bucket search and one atomic load nearly always, and asks for the span context only
//!   when a slot is due (whether or not that span turns out to be sampled);
//! - reservoirs are registered by instrument name and attribute set ([`reservoir`]), at most
//!   [`MAX_SERIES`] of them (past it, series simply have no exemplars), and found again by the
//!   renderer from a collected data point ([`find`]).
//!
//! This crate depends on the OpenTelemetry API only, so instrumentation crates (lookout-tower)
//! can record exemplars without pulling an SDK or an exporter.
//!
//! ```
//! use lookout_exemplars::{find, reservoir};
//! use opentelemetry::KeyValue;
//! use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
//!
//! // When a series is bound: its reservoir, with the histogram's bucket bounds.
//! let attributes = [KeyValue::new("job", "sync")];
//! let r = reservoir("job.duration", &attributes, &[0.1, 1.0]).expect("room for it");
//! // Per measurement: the value, a millisecond clock, and the span context if it is asked for.
//! let span = SpanContext::new(
//!     TraceId::from_bytes([1; 16]),
//!     SpanId::from_bytes([2; 8]),
//!     TraceFlags::SAMPLED,
//!     false,
//!     TraceState::default(),
//! );
//! r.offer(0.25, 1, || Some(span));
//! // When rendering: the data point's reservoir, an exemplar per bucket (0.1 < 0.25 <= 1.0).
//! let found = find("job.duration", attributes.iter()).expect("registered");
//! assert_eq!(found.exemplar(1).map(|e| e.value), Some(0.25));
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceId};

/// At most this many histogram series keep exemplars (per process).
pub const MAX_SERIES: usize = 4096;

/// A bucket takes a new exemplar at most this often.
pub const MIN_INTERVAL_MS: u64 = 1000;

/// One measurement and the span it was made in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The trace of the measurement.
    pub trace_id: TraceId,
    /// The span of the measurement.
    pub span_id: SpanId,
    /// The measured value.
    pub value: f64,
    /// When, in seconds since the Unix epoch.
    pub unix_seconds: f64,
}

#[derive(Debug, Default)]
struct Slot {
    /// `now` of the last look for an exemplar (0: none yet), in the offering side's own clock.
    last_ms: AtomicU64,
    exemplar: Mutex<Option<Exemplar>>,
}

/// The exemplars of one histogram series: the latest per bucket.
#[derive(Debug)]
pub struct Reservoir {
    bounds: Box<[f64]>,
    slots: Box<[Slot]>,
}

impl Reservoir {
    fn new(bounds: &[f64]) -> Reservoir {
        Reservoir {
            bounds: bounds.into(),
            slots: (0..=bounds.len()).map(|_| Slot::default()).collect(),
        }
    }

    /// The bucket of `value`: the first bound it does not exceed (Prometheus `le` semantics), or
    /// the last (`+Inf`) bucket. A branch-free count: cheaper than a binary search over the 14 to
    /// 19 bounds of a duration histogram, whose branches a varying value would mispredict.
    #[inline]
    fn bucket(&self, value: f64) -> usize {
        self.bounds.iter().map(|b| usize::from(*b < value)).sum()
    }

    /// Offers a measurement made at `now_ms` (any millisecond clock that only moves forward, the
    /// same for every offer to this reservoir). `context` is asked only when the value's bucket is
    /// due for a new exemplar; a span context that is not sampled or not valid is not kept.
    #[inline]
    pub fn offer(&self, value: f64, now_ms: u64, context: impl FnOnce() -> Option<SpanContext>) {
        self.offer_every(value, now_ms, MIN_INTERVAL_MS, context);
    }

    /// [`Reservoir::offer`] on a clock of the caller's own units (a raw CPU counter, say):
    /// `interval` is [`MIN_INTERVAL_MS`] in those units. Every offer to one reservoir must use the
    /// same clock.
    #[inline]
    pub fn offer_every(
        &self,
        value: f64,
        now: u64,
        interval: u64,
        context: impl FnOnce() -> Option<SpanContext>,
    ) {
        let Some(slot) = self.slots.get(self.bucket(value)) else {
            return;
        };
        let last = slot.last_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < interval {
            return;
        }
        self.store(slot, last, value, now, context);
    }

    #[cold]
    fn store(
        &self,
        slot: &Slot,
        last: u64,
        value: f64,
        now_ms: u64,
        context: impl FnOnce() -> Option<SpanContext>,
    ) {
        // One offer per due slot wins; the others return. The slot is taken before the context
        // is asked for, so a program without sampled spans asks at most once a second per bucket.
        if slot
            .last_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let Some(cx) = context().filter(|cx| cx.is_valid() && cx.is_sampled()) else {
            return;
        };
        let unix_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        *slot.exemplar.lock().unwrap_or_else(|e| e.into_inner()) = Some(Exemplar {
            trace_id: cx.trace_id(),
            span_id: cx.span_id(),
            value,
            unix_seconds,
        });
    }

    /// The exemplar of bucket `index` (`0..=bounds.len()`, the last being `+Inf`), if any.
    pub fn exemplar(&self, index: usize) -> Option<Exemplar> {
        *self
            .slots
            .get(index)?
            .exemplar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket bounds the reservoir was made with.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }
}

type Key = (String, String);

type Registry = RwLock<HashMap<Key, Arc<Reservoir>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// An attribute set as one text, independent of the order of its attributes.
fn attributes_key<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> String {
    let mut pairs: Vec<(&str, String)> = attributes
        .map(|kv| (kv.key.as_str(), kv.value.as_str().into_owned()))
        .collect();
    pairs.sort_unstable();
    let mut key = String::new();
    for (k, v) in pairs {
        key.push_str(k);
        key.push('\u{1f}');
        key.push_str(&v);
        key.push('\u{1e}');
    }
    key
}

/// The reservoir of the series `attributes` of the histogram `instrument` with `bounds`, made on
/// first use. `None` once [`MAX_SERIES`] reservoirs exist. Call it when a series is bound, not per
/// measurement.
pub fn reservoir(
    instrument: &str,
    attributes: &[KeyValue],
    bounds: &[f64],
) -> Option<Arc<Reservoir>> {
    let key = (instrument.to_owned(), attributes_key(attributes.iter()));
    let registry = registry();
    if let Some(r) = registry.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Some(Arc::clone(r));
    }
    let mut series = registry.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = series.get(&key) {
        return Some(Arc::clone(r));
    }
    if series.len() >= MAX_SERIES {
        return None;
    }
    let r = Arc::new(Reservoir::new(bounds));
    series.insert(key, Arc::clone(&r));
    Some(r)
}

/// The reservoir of a collected data point: the histogram `instrument`, the point's attributes.
pub fn find<'a>(
    instrument: &str,
    attributes: impl Iterator<Item = &'a KeyValue>,
) -> Option<Arc<Reservoir>> {
    let key = (instrument.to_owned(), attributes_key(attributes));
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceFlags, TraceState};

    fn cx(sampled: bool, n: u8) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes([n; 16]),
            SpanId::from_bytes([n; 8]),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::default(),
        )
    }

    #[test]
    fn keeps_the_latest_sampled_measurement_per_bucket_at_most_once_a_second() {
        let attrs = [KeyValue::new("route", "/a"), KeyValue::new("method", "GET")];
        let r = reservoir("test.duration", &attrs, &[0.1, 1.0]).expect("room");
        r.offer(0.05, 1_000, || Some(cx(true, 1)));
        r.offer(0.5, 1_000, || Some(cx(false, 2)));
        r.offer(5.0, 1_000, || Some(cx(true, 3)));
        assert_eq!(
            r.exemplar(0).map(|e| e.trace_id),
            Some(TraceId::from_bytes([1; 16]))
        );
        assert_eq!(r.exemplar(1), None, "not sampled: not kept");
        let mut asked = false;
        r.offer(0.6, 1_200, || {
            asked = true;
            Some(cx(true, 9))
        });
        assert!(
            !asked,
            "an unsampled offer still spends the bucket's second"
        );
        assert_eq!(r.exemplar(2).map(|e| e.value), Some(5.0), "+Inf bucket");
        let mut asked = false;
        r.offer(0.07, 1_500, || {
            asked = true;
            Some(cx(true, 4))
        });
        assert!(!asked, "a bucket is not due within a second");
        r.offer(0.07, 2_100, || Some(cx(true, 4)));
        assert_eq!(
            r.exemplar(0).map(|e| e.span_id),
            Some(SpanId::from_bytes([4; 8]))
        );
        // A boundary value belongs to its bucket (le).
        r.offer(1.0, 3_000, || Some(cx(true, 5)));
        assert_eq!(r.exemplar(1).map(|e| e.value), Some(1.0));
    }

    #[test]
    fn found_again_by_attributes_in_any_order() {
        let attrs = [KeyValue::new("b", 2), KeyValue::new("a", "x")];
        let made = reservoir("test.find", &attrs, &[1.0]).expect("room");
        let reversed = [KeyValue::new("a", "x"), KeyValue::new("b", 2)];
        let found = find("test.find", reversed.iter()).expect("found");
        assert!(Arc::ptr_eq(&made, &found));
        assert!(find("test.find", [KeyValue::new("a", "y")].iter()).is_none());
        assert!(find("other", reversed.iter()).is_none());
    }
}
