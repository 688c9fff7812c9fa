//! Short metric time series, sampled from the pull reader's cumulative snapshot: counters as a
//! rate per second, gauges and up-down counters as their value, histograms as a rate with the
//! p50/p95/p99 of each interval (estimated from the bucket counts of the interval, linear within
//! a bucket), and the RED figures per HTTP route and per measured function.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, HistogramDataPoint, MetricData, ResourceMetrics};
use opentelemetry_semantic_conventions::attribute::{ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_ROUTE};
use opentelemetry_semantic_conventions::metric::HTTP_SERVER_REQUEST_DURATION;

use super::{ViewCounts, ViewOptions};
use crate::measure::DURATION;
use crate::metrics::quantile;

/// How a series' points read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeriesKind {
    /// A counter: each point is the increase per second over its interval.
    Rate,
    /// A gauge or up-down counter: each point is the value.
    Value,
    /// A histogram: each point is the measurements per second, with the interval's quantiles.
    Histogram,
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Point {
    /// When it was taken.
    pub time: SystemTime,
    /// The rate per second ([`SeriesKind::Rate`], [`SeriesKind::Histogram`], RED) or the value.
    pub value: f64,
    /// RED only: errors per second.
    pub errors: Option<f64>,
    /// Histograms and RED: the interval's median, 95th and 99th percentile (in the
    /// instrument's unit), when anything was measured.
    pub quantiles: Option<[f64; 3]>,
}

/// One series: an instrument with one set of attributes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Series {
    /// `name{key=value,...}`: unique.
    pub key: String,
    /// The instrument's name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// Its description.
    pub description: String,
    /// The attributes, sorted by key.
    pub attributes: Vec<(String, String)>,
    /// How its points read.
    pub kind: SeriesKind,
    /// Oldest first.
    pub points: Vec<Point>,
}

/// RED figures of one HTTP route or measured function, over the window.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Red {
    /// `route` or `function`.
    pub what: &'static str,
    /// `GET /users/{id}`, or the function's name.
    pub name: String,
    /// Requests (calls) per second, errors per second and the latency quantiles in seconds, per
    /// interval, oldest first.
    pub points: Vec<Point>,
}

struct Held {
    series: Series,
    points: VecDeque<Point>,
    /// The cumulative count (or sum) and buckets at the last sample.
    last: Option<(SystemTime, f64, Vec<u64>)>,
}

#[derive(Default)]
struct Group {
    count: u64,
    errors: u64,
    bounds: Vec<f64>,
    buckets: Vec<u64>,
}

struct RedHeld {
    what: &'static str,
    points: VecDeque<Point>,
    last: Option<(SystemTime, Group)>,
}

pub(crate) struct SeriesStore {
    max_series: usize,
    max_points: usize,
    window: std::time::Duration,
    held: BTreeMap<String, Held>,
    red: BTreeMap<String, RedHeld>,
    skipped: u64,
    version: u64,
}

impl SeriesStore {
    pub(crate) fn new(o: &ViewOptions) -> Self {
        SeriesStore {
            max_series: o.series,
            max_points: o.points(),
            window: o.metric_window,
            held: BTreeMap::new(),
            red: BTreeMap::new(),
            skipped: 0,
            version: 0,
        }
    }

    pub(crate) fn sample(&mut self, snapshot: &ResourceMetrics, now: SystemTime) {
        let mut groups: HashMap<(String, &'static str), Group> = HashMap::new();
        for metric in snapshot.scope_metrics().flat_map(|s| s.metrics()) {
            let (name, unit, description) = (metric.name(), metric.unit(), metric.description());
            let mut add = |attrs: Vec<&KeyValue>, kind, cumulative: f64, buckets: Vec<u64>, bounds: &[f64]| {
                let attributes = sorted(attrs);
                let key = key_of(name, &attributes);
                self.point(
                    key,
                    || Series {
                        key: String::new(),
                        name: name.to_owned(),
                        unit: unit.to_owned(),
                        description: description.to_owned(),
                        attributes,
                        kind,
                        points: Vec::new(),
                    },
                    now,
                    cumulative,
                    buckets,
                    bounds,
                );
            };
            match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        red_group(name, p, &mut groups);
                        let bounds: Vec<f64> = p.bounds().collect();
                        add(p.attributes().collect(), SeriesKind::Histogram, p.count() as f64, p.bucket_counts().collect(), &bounds);
                    }
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    for p in h.data_points() {
                        let bounds: Vec<f64> = p.bounds().collect();
                        add(p.attributes().collect(), SeriesKind::Histogram, p.count() as f64, p.bucket_counts().collect(), &bounds);
                    }
                }
                AggregatedMetrics::F64(MetricData::Sum(s)) => {
                    let kind = if s.is_monotonic() { SeriesKind::Rate } else { SeriesKind::Value };
                    for p in s.data_points() {
                        add(p.attributes().collect(), kind, p.value(), Vec::new(), &[]);
                    }
                }
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    let kind = if s.is_monotonic() { SeriesKind::Rate } else { SeriesKind::Value };
                    for p in s.data_points() {
                        add(p.attributes().collect(), kind, p.value() as f64, Vec::new(), &[]);
                    }
                }
                AggregatedMetrics::I64(MetricData::Sum(s)) => {
                    let kind = if s.is_monotonic() { SeriesKind::Rate } else { SeriesKind::Value };
                    for p in s.data_points() {
                        add(p.attributes().collect(), kind, p.value() as f64, Vec::new(), &[]);
                    }
                }
                AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        add(p.attributes().collect(), SeriesKind::Value, p.value(), Vec::new(), &[]);
                    }
                }
                AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        add(p.attributes().collect(), SeriesKind::Value, p.value() as f64, Vec::new(), &[]);
                    }
                }
                AggregatedMetrics::I64(MetricData::Gauge(g)) => {
                    for p in g.data_points() {
                        add(p.attributes().collect(), SeriesKind::Value, p.value() as f64, Vec::new(), &[]);
                    }
                }
                AggregatedMetrics::F64(MetricData::ExponentialHistogram(h)) => {
                    for p in h.data_points() {
                        add(p.attributes().collect(), SeriesKind::Histogram, p.count() as f64, Vec::new(), &[]);
                    }
                }
                _ => {}
            }
        }
        for ((name, what), group) in groups {
            self.red_point(name, what, group, now);
        }
        self.forget_stale(now);
        self.version += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn point(
        &mut self,
        key: String,
        series: impl FnOnce() -> Series,
        now: SystemTime,
        cumulative: f64,
        buckets: Vec<u64>,
        bounds: &[f64],
    ) {
        if !self.held.contains_key(&key) {
            if self.held.len() + self.red.len() >= self.max_series {
                self.skipped += 1;
                return;
            }
            let mut s = series();
            s.key = key.clone();
            self.held.insert(
                key.clone(),
                Held {
                    series: s,
                    points: VecDeque::new(),
                    last: None,
                },
            );
        }
        let Some(held) = self.held.get_mut(&key) else { return };
        let kind = held.series.kind;
        let point = match (kind, &held.last) {
            (SeriesKind::Value, _) => Some(Point {
                time: now,
                value: cumulative,
                errors: None,
                quantiles: None,
            }),
            (_, None) => None,
            (_, Some((at, before, old_buckets))) => {
                let dt = now.duration_since(*at).unwrap_or_default().as_secs_f64();
                // A reset (a new meter provider): count from zero.
                let delta = if cumulative >= *before { cumulative - before } else { cumulative };
                let quantiles = (kind == SeriesKind::Histogram && !bounds.is_empty())
                    .then(|| quantiles_of(bounds, &delta_of(&buckets, old_buckets)))
                    .flatten();
                (dt > 0.0).then(|| Point {
                    time: now,
                    value: delta / dt,
                    errors: None,
                    quantiles,
                })
            }
        };
        held.last = Some((now, cumulative, buckets));
        if let Some(p) = point {
            held.points.push_back(p);
            while held.points.len() > self.max_points {
                held.points.pop_front();
            }
        }
    }

    fn red_point(&mut self, name: String, what: &'static str, group: Group, now: SystemTime) {
        if !self.red.contains_key(&name) {
            if self.held.len() + self.red.len() >= self.max_series {
                self.skipped += 1;
                return;
            }
            self.red.insert(
                name.clone(),
                RedHeld {
                    what,
                    points: VecDeque::new(),
                    last: None,
                },
            );
        }
        let Some(held) = self.red.get_mut(&name) else { return };
        if let Some((at, before)) = &held.last {
            let dt = now.duration_since(*at).unwrap_or_default().as_secs_f64();
            let reset = group.count < before.count;
            let (count, errors, buckets) = if reset {
                (group.count, group.errors, group.buckets.clone())
            } else {
                (
                    group.count - before.count,
                    group.errors.saturating_sub(before.errors),
                    delta_of(&group.buckets, &before.buckets),
                )
            };
            if dt > 0.0 {
                held.points.push_back(Point {
                    time: now,
                    value: count as f64 / dt,
                    errors: Some(errors as f64 / dt),
                    quantiles: quantiles_of(&group.bounds, &buckets),
                });
                while held.points.len() > self.max_points {
                    held.points.pop_front();
                }
            }
        }
        held.last = Some((now, group));
    }

    /// Series with no sample in the whole window go.
    fn forget_stale(&mut self, now: SystemTime) {
        let window = self.window;
        let fresh = |last: Option<SystemTime>| {
            last.is_none_or(|t| now.duration_since(t).unwrap_or_default() <= window)
        };
        self.held.retain(|_, h| fresh(h.last.as_ref().map(|l| l.0)));
        self.red.retain(|_, h| fresh(h.last.as_ref().map(|l| l.0)));
    }

    pub(crate) fn all(&self) -> Vec<Series> {
        self.held.values().map(snapshot).collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<Series> {
        self.held.get(key).map(snapshot)
    }

    pub(crate) fn red(&self) -> Vec<Red> {
        let mut out: Vec<Red> = self
            .red
            .iter()
            .map(|(name, h)| Red {
                what: h.what,
                name: name.clone(),
                points: h.points.iter().copied().collect(),
            })
            .collect();
        // Routes first, then functions.
        out.sort_by(|a, b| (a.what != "route", &a.name).cmp(&(b.what != "route", &b.name)));
        out
    }

    pub(crate) fn count(&self, c: &mut ViewCounts) {
        c.series = self.held.len() + self.red.len();
        c.series_skipped = self.skipped;
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

fn snapshot(h: &Held) -> Series {
    let mut s = h.series.clone();
    s.points = h.points.iter().copied().collect();
    s
}

fn sorted(attrs: Vec<&KeyValue>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = attrs
        .into_iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    out.sort();
    out
}

fn key_of(name: &str, attributes: &[(String, String)]) -> String {
    let attrs: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", attrs.join(","))
}

fn delta_of(now: &[u64], before: &[u64]) -> Vec<u64> {
    if now.len() != before.len() {
        return now.to_vec();
    }
    now.iter().zip(before).map(|(n, b)| n.saturating_sub(*b)).collect()
}

fn quantiles_of(bounds: &[f64], buckets: &[u64]) -> Option<[f64; 3]> {
    let count: u64 = buckets.iter().sum();
    if count == 0 || bounds.is_empty() {
        return None;
    }
    let q = |x| quantile(bounds, buckets, count, None, None, x);
    Some([q(0.5)?, q(0.95)?, q(0.99)?])
}

/// Adds a point of `http.server.request.duration` to its route's RED group, and one of
/// `function.duration` to its function's.
fn red_group(
    name: &str,
    p: &HistogramDataPoint<f64>,
    groups: &mut HashMap<(String, &'static str), Group>,
) {
    let attr = |key: &str| {
        p.attributes()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    let (group, what) = if name == HTTP_SERVER_REQUEST_DURATION {
        let method = attr(HTTP_REQUEST_METHOD).unwrap_or_default();
        let route = attr(HTTP_ROUTE).unwrap_or_else(|| "(no route)".to_owned());
        (format!("{method} {route}").trim().to_owned(), "route")
    } else if name == DURATION {
        let Some(function) = attr("function") else { return };
        (function, "function")
    } else {
        return;
    };
    let g = groups.entry((group, what)).or_default();
    g.count += p.count();
    if attr(ERROR_TYPE).is_some() {
        g.errors += p.count();
    }
    let buckets: Vec<u64> = p.bucket_counts().collect();
    if g.buckets.is_empty() {
        g.bounds = p.bounds().collect();
        g.buckets = buckets;
    } else if g.buckets.len() == buckets.len() {
        for (a, b) in g.buckets.iter_mut().zip(buckets) {
            *a += b;
        }
    }
}
