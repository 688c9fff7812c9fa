//! Per-operation statistics (the seeds' `OperationMetrics`), read from a collected snapshot of
//! the `function.*` instruments: nothing is kept beside the SDK's aggregation.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics,
};

use crate::measure::{CALLS, CONCURRENT, DURATION, LAST_CALL};

/// What one measured function or timed operation has done.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStats {
    /// The function name (or the [`timer`](crate::timer) name).
    pub name: String,
    /// The module path (`None` for timers).
    pub module: Option<String>,
    /// Finished calls.
    pub calls: u64,
    /// Calls counted as errors.
    pub errors: u64,
    /// Errors by `error.type` (`""` when the error had no type).
    pub errors_by_type: BTreeMap<String, u64>,
    /// Calls in progress now.
    pub in_progress: i64,
    /// Shortest call (exact; estimated from the buckets after a reset).
    pub min: Option<Duration>,
    /// Mean call duration.
    pub avg: Option<Duration>,
    /// Longest call (exact; estimated from the buckets after a reset).
    pub max: Option<Duration>,
    /// Median, estimated from the histogram buckets (linear within a bucket).
    pub p50: Option<Duration>,
    /// 95th percentile, estimated likewise.
    pub p95: Option<Duration>,
    /// 99th percentile, estimated likewise.
    pub p99: Option<Duration>,
    /// When a call last finished.
    pub last_call: Option<SystemTime>,
}

impl OperationStats {
    /// `errors / calls` (0 with no calls).
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }
}

/// Cumulative counts of one operation, as read from a snapshot.
#[derive(Debug, Clone, Default)]
struct Raw {
    ok: u64,
    errors: BTreeMap<String, u64>,
    in_progress: i64,
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    bounds: Vec<f64>,
    buckets: Vec<u64>,
    last_call: Option<f64>,
}

type Key = (String, Option<String>);

/// A point to count operations from (see [`operations_since`]): what [`operations`] would
/// report at the time it was taken is subtracted.
#[derive(Debug, Clone, Default)]
pub struct Baseline(HashMap<Key, Raw>);

impl Baseline {
    /// The counts in `snapshot`.
    pub fn of(snapshot: &ResourceMetrics) -> Baseline {
        Baseline(read(snapshot))
    }
}

fn text(v: &Value) -> String {
    v.as_str().into_owned()
}

fn key_of<'a>(
    attributes: impl Iterator<Item = &'a opentelemetry::KeyValue>,
) -> (Key, Vec<(String, String)>) {
    let mut name = String::new();
    let mut module = None;
    let mut rest = Vec::new();
    for kv in attributes {
        match kv.key.as_str() {
            "function" => name = text(&kv.value),
            "module" => module = Some(text(&kv.value)),
            other => rest.push((other.to_owned(), text(&kv.value))),
        }
    }
    ((name, module), rest)
}

fn read(snapshot: &ResourceMetrics) -> HashMap<Key, Raw> {
    let mut ops: HashMap<Key, Raw> = HashMap::new();
    let metrics = snapshot
        .scope_metrics()
        .filter(|s| s.scope().name() == "lookout")
        .flat_map(|s| s.metrics());
    for metric in metrics {
        match (metric.name(), metric.data()) {
            (CALLS, AggregatedMetrics::U64(MetricData::Sum(sum))) => {
                for p in sum.data_points() {
                    let (key, rest) = key_of(p.attributes());
                    if key.0.is_empty() {
                        continue;
                    }
                    let raw = ops.entry(key).or_default();
                    let result = rest
                        .iter()
                        .find(|(k, _)| k == "result")
                        .map(|(_, v)| v.as_str());
                    if result == Some("error") {
                        let ty = rest
                            .iter()
                            .find(|(k, _)| {
                                k == opentelemetry_semantic_conventions::attribute::ERROR_TYPE
                            })
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        *raw.errors.entry(ty).or_default() += p.value();
                    } else {
                        raw.ok += p.value();
                    }
                }
            }
            (DURATION, AggregatedMetrics::F64(MetricData::Histogram(h))) => {
                for p in h.data_points() {
                    let (key, _) = key_of(p.attributes());
                    if key.0.is_empty() {
                        continue;
                    }
                    fill_histogram(ops.entry(key).or_default(), p);
                }
            }
            (CONCURRENT, AggregatedMetrics::I64(MetricData::Sum(sum))) => {
                for p in sum.data_points() {
                    let (key, _) = key_of(p.attributes());
                    if !key.0.is_empty() {
                        ops.entry(key).or_default().in_progress = p.value();
                    }
                }
            }
            (LAST_CALL, AggregatedMetrics::F64(MetricData::Gauge(g))) => {
                for p in g.data_points() {
                    let (key, _) = key_of(p.attributes());
                    if !key.0.is_empty() {
                        ops.entry(key).or_default().last_call = Some(p.value());
                    }
                }
            }
            _ => {}
        }
    }
    ops
}

fn fill_histogram(raw: &mut Raw, p: &HistogramDataPoint<f64>) {
    raw.count = p.count();
    raw.sum = p.sum();
    raw.min = p.min();
    raw.max = p.max();
    raw.bounds = p.bounds().collect();
    raw.buckets = p.bucket_counts().collect();
}

/// Statistics of every measured function and timed operation in `snapshot` (a collect from
/// [`Metrics::collect`](super::Metrics::collect)), sorted by name.
pub fn operations(snapshot: &ResourceMetrics) -> Vec<OperationStats> {
    operations_since(snapshot, None)
}

/// Like [`operations`], counting only what happened after `baseline` was taken. Minimum and
/// maximum are then estimated from the histogram buckets (the SDK keeps them only since start).
pub fn operations_since(
    snapshot: &ResourceMetrics,
    baseline: Option<&Baseline>,
) -> Vec<OperationStats> {
    let mut out: Vec<OperationStats> = read(snapshot)
        .into_iter()
        .map(|(key, raw)| {
            let raw = match baseline.and_then(|b| b.0.get(&key)) {
                Some(base) => subtract(raw, base),
                None => raw,
            };
            stats(key, &raw)
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.module).cmp(&(&b.name, &b.module)));
    out
}

fn subtract(now: Raw, base: &Raw) -> Raw {
    let mut errors = now.errors;
    for (ty, n) in &base.errors {
        if let Some(e) = errors.get_mut(ty) {
            *e = e.saturating_sub(*n);
        }
    }
    errors.retain(|_, n| *n > 0);
    let same_buckets = now.bounds == base.bounds && now.buckets.len() == base.buckets.len();
    let buckets: Vec<u64> = if same_buckets {
        now.buckets
            .iter()
            .zip(&base.buckets)
            .map(|(n, b)| n.saturating_sub(*b))
            .collect()
    } else {
        now.buckets.clone()
    };
    let (min, max) = estimated_extremes(&now.bounds, &buckets, now.min, now.max);
    Raw {
        ok: now.ok.saturating_sub(base.ok),
        errors,
        in_progress: now.in_progress,
        count: now.count.saturating_sub(base.count),
        sum: (now.sum - base.sum).max(0.0),
        min,
        max,
        bounds: now.bounds,
        buckets,
        last_call: now.last_call.filter(|t| Some(*t) != base.last_call),
    }
}

/// The lower bound of the first and the upper bound of the last non-empty bucket, within the
/// exact extremes since start.
fn estimated_extremes(
    bounds: &[f64],
    buckets: &[u64],
    min: Option<f64>,
    max: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let first = buckets.iter().position(|n| *n > 0);
    let last = buckets.iter().rposition(|n| *n > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return (None, None);
    };
    let lo = if first == 0 {
        min
    } else {
        bounds.get(first - 1).copied()
    };
    let hi = bounds.get(last).copied().or(max);
    (
        lo.map(|l| min.map_or(l, |m| l.max(m))),
        hi.map(|h| max.map_or(h, |m| h.min(m))),
    )
}

fn secs(s: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(s).ok()
}

fn stats((name, module): Key, raw: &Raw) -> OperationStats {
    let errors: u64 = raw.errors.values().sum();
    let calls = raw.ok + errors;
    let avg = (raw.count > 0).then(|| raw.sum / raw.count as f64);
    let q = |q| quantile(&raw.bounds, &raw.buckets, raw.count, raw.min, raw.max, q).and_then(secs);
    OperationStats {
        name,
        module,
        calls,
        errors,
        errors_by_type: raw.errors.clone(),
        in_progress: raw.in_progress,
        min: raw.min.filter(|_| raw.count > 0).and_then(secs),
        avg: avg.and_then(secs),
        max: raw.max.filter(|_| raw.count > 0).and_then(secs),
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
        last_call: raw.last_call.and_then(secs).map(|d| UNIX_EPOCH + d),
    }
}

/// The `q` quantile of an explicit-bucket histogram: the bucket holding rank `q * count`, then
/// linear interpolation inside it; the first and last buckets are bounded by min and max.
pub(crate) fn quantile(
    bounds: &[f64],
    buckets: &[u64],
    count: u64,
    min: Option<f64>,
    max: Option<f64>,
    q: f64,
) -> Option<f64> {
    if count == 0 || buckets.is_empty() {
        return None;
    }
    let rank = q * count as f64;
    let mut below = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        if (below + n) as f64 >= rank {
            let mut lo = if i == 0 {
                min.unwrap_or(0.0)
            } else {
                bounds[i - 1]
            };
            let mut hi = bounds.get(i).copied().or(max).unwrap_or(lo);
            if let Some(m) = min {
                lo = lo.max(m);
            }
            if let Some(m) = max {
                hi = hi.min(m);
            }
            let within = ((rank - below as f64) / *n as f64).clamp(0.0, 1.0);
            return Some(lo + (hi - lo).max(0.0) * within);
        }
        below += n;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets_and_respect_extremes() {
        let bounds = [1.0, 2.0, 4.0];
        // 10 in (0,1], 10 in (1,2], 0 in (2,4], 0 above
        let buckets = [10, 10, 0, 0];
        let q = |x| quantile(&bounds, &buckets, 20, Some(0.5), Some(1.8), x).unwrap_or(f64::NAN);
        assert!((q(0.5) - 1.0).abs() < 1e-9, "{}", q(0.5));
        assert!((q(0.25) - 0.75).abs() < 1e-9, "{}", q(0.25));
        // the 95th is in (1, 2] capped by max 1.8: 1 + 0.8 * 0.9
        assert!((q(0.95) - 1.72).abs() < 1e-9, "{}", q(0.95));
        assert_eq!(quantile(&bounds, &[0, 0, 0, 0], 0, None, None, 0.5), None);
        // all in the overflow bucket: between the last bound and max
        let q = quantile(&bounds, &[0, 0, 0, 4], 4, Some(5.0), Some(9.0), 0.5);
        assert_eq!(q, Some(7.0));
    }

    #[test]
    fn extremes_after_reset_come_from_the_buckets() {
        let bounds = [1.0, 2.0, 4.0];
        assert_eq!(
            estimated_extremes(&bounds, &[0, 3, 1, 0], Some(0.1), Some(3.5)),
            (Some(1.0), Some(3.5))
        );
        assert_eq!(
            estimated_extremes(&bounds, &[0, 0, 0, 0], Some(0.1), Some(3.5)),
            (None, None)
        );
    }
}
